//! Docker image references: parsing and normalization as `distribution/reference` does it
//! (`ParseNormalizedNamed`, `TagNameOnly`, `FamiliarString`), with docker's error words.
//!
//! Grammar (from distribution/reference):
//! ```text
//! reference   := name [ ":" tag ] [ "@" digest ]
//! name        := [domain "/"] path-component ("/" path-component)*
//! domain      := host [":" port]        host := domain-name | "[" ipv6 "]"
//! path-comp   := [a-z0-9]+ (separator [a-z0-9]+)*   separator := "." | "_" | "__" | "-"+
//! tag         := [\w][\w.-]{0,127}
//! ```
//! A first component is a domain when it is `localhost`, contains `.` or `:`, or has
//! uppercase letters; otherwise the name is on Docker Hub (`docker.io`), and single-component
//! Hub names get `library/`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag a reference gets when it names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A normalized, named image reference: `docker.io/library/node:18-alpine`,
/// `localhost:5000/a/b:t`, `busybox@sha256:…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    /// Registry host (and port), e.g. `docker.io`, `localhost:5000`. Empty only for the odd
    /// names docker itself leaves without a domain (see [`ImageRef::domain`]).
    domain: String,
    /// Repository path inside the registry, e.g. `library/node`.
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not a valid image reference. The messages are docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    InvalidFormat { input: String },
    #[error("invalid reference format: repository name ({remote}) must be lowercase")]
    RemoteNotLowercase { input: String, remote: String },
    #[error("invalid reference format: repository name must be lowercase")]
    NameContainsUppercase { input: String },
    #[error("invalid reference format: repository name must have at least one component")]
    NameEmpty { input: String },
    #[error(
        "invalid reference format: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
    )]
    NameTooLong { input: String },
    #[error("invalid repository name ({input}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier { input: String },
    #[error("invalid tag format")]
    InvalidTag { input: String },
    #[error("invalid reference format: {source}")]
    InvalidDigest {
        input: String,
        #[source]
        source: crate::digest::DigestError,
    },
}

impl ReferenceError {
    /// The text that failed to parse.
    pub fn input(&self) -> &str {
        match self {
            ReferenceError::InvalidFormat { input }
            | ReferenceError::RemoteNotLowercase { input, .. }
            | ReferenceError::NameContainsUppercase { input }
            | ReferenceError::NameEmpty { input }
            | ReferenceError::NameTooLong { input }
            | ReferenceError::HexIdentifier { input }
            | ReferenceError::InvalidTag { input }
            | ReferenceError::InvalidDigest { input, .. } => input,
        }
    }
}

impl ImageRef {
    /// Parses a reference as docker's CLI does for `docker pull/tag/run NAME`: normalized
    /// (`node` → `docker.io/library/node`) and, when it names neither tag nor digest, tagged
    /// `latest`. `name:tag@digest` keeps both.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let mut r = Self::parse_named(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parses and normalizes without adding a default tag (`ParseNormalizedNamed`).
    pub fn parse_named(s: &str) -> Result<Self, ReferenceError> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::HexIdentifier { input: s.into() });
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote = remainder
            .split_once(':')
            .map_or(remainder.as_str(), |(r, _)| r);
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::RemoteNotLowercase {
                input: s.into(),
                remote: remote.into(),
            });
        }
        let full = format!("{domain}/{remainder}");
        parse_full(&full).map_err(|e| e.with_input(s))
    }

    /// Builds a reference from a name (normalized as [`ImageRef::parse_named`]) and a tag.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !is_tag(tag) {
            return Err(ReferenceError::InvalidTag { input: tag.into() });
        }
        Ok(ImageRef {
            tag: Some(tag.into()),
            ..self.clone()
        })
    }

    /// The same name with this digest (any tag kept).
    pub fn with_digest(&self, digest: Digest) -> Self {
        ImageRef {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The bare repository name, without tag or digest.
    pub fn name_only(&self) -> Self {
        ImageRef {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }

    /// docker's `ParseDockerRef` form: a reference with both tag and digest loses the tag
    /// (the digest is what gets pulled).
    pub fn docker_ref(&self) -> Self {
        if self.digest.is_some() {
            ImageRef {
                tag: None,
                ..self.clone()
            }
        } else {
            self.clone()
        }
    }

    /// Registry host and port: `docker.io`, `localhost:5000`, `localhost`. docker leaves a
    /// few odd names (first component with `_` and `.`, such as `a_b.com/x`) without a
    /// domain; then this is empty, as it is in docker.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Repository path: `library/node`, `a/b`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Full repository name: `docker.io/library/node`.
    pub fn name(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The repository name as docker shows it: `node`, `dmcgowan/app`, `localhost/busybox`,
    /// `localhost:5000/a/b` (the `REPOSITORY` column of `docker images`).
    pub fn repository_familiar(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            if let Some(rest) = self.path.strip_prefix(OFFICIAL_REPO_PREFIX)
                && !rest.contains('/')
            {
                return rest.to_string();
            }
            return self.path.clone();
        }
        self.name()
    }

    /// The whole reference as docker prints it: `node:18`, `localhost/busybox:latest`,
    /// `busybox:latest@sha256:…`.
    pub fn familiar(&self) -> String {
        let mut s = self.repository_familiar();
        self.push_suffix(&mut s);
        s
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

impl fmt::Display for ImageRef {
    /// The full normalized form: `docker.io/library/node:18-alpine`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageRef({self})")
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;
    /// Same as [`ImageRef::parse`] (adds `latest`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

impl serde::Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ImageRef {
    /// Deserializes without adding a default tag, so a round trip is exact.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ImageRef::parse_named(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether `s` matches docker's tag grammar `[\w][\w.-]{0,127}`.
pub fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

impl ReferenceError {
    fn with_input(self, input: &str) -> Self {
        let input = input.to_string();
        match self {
            ReferenceError::InvalidFormat { .. } => ReferenceError::InvalidFormat { input },
            ReferenceError::RemoteNotLowercase { remote, .. } => {
                ReferenceError::RemoteNotLowercase { input, remote }
            }
            ReferenceError::NameContainsUppercase { .. } => {
                ReferenceError::NameContainsUppercase { input }
            }
            ReferenceError::NameEmpty { .. } => ReferenceError::NameEmpty { input },
            ReferenceError::NameTooLong { .. } => ReferenceError::NameTooLong { input },
            ReferenceError::HexIdentifier { .. } => ReferenceError::HexIdentifier { input },
            ReferenceError::InvalidTag { .. } => ReferenceError::InvalidTag { input },
            ReferenceError::InvalidDigest { source, .. } => {
                ReferenceError::InvalidDigest { input, source }
            }
        }
    }
}

/// docker's `splitDockerDomain`: decides whether the first component is a registry.
fn split_docker_domain(name: &str) -> (String, String) {
    let Some((maybe_domain, maybe_remote)) = name.split_once('/') else {
        return (
            DEFAULT_DOMAIN.into(),
            format!("{OFFICIAL_REPO_PREFIX}{name}"),
        );
    };
    let (domain, mut remote) = if maybe_domain == "localhost"
        || maybe_domain.contains(['.', ':'])
        || maybe_domain.to_lowercase() != maybe_domain
    {
        if maybe_domain == LEGACY_DEFAULT_DOMAIN {
            (DEFAULT_DOMAIN.to_string(), maybe_remote.to_string())
        } else {
            (maybe_domain.to_string(), maybe_remote.to_string())
        }
    } else {
        (DEFAULT_DOMAIN.to_string(), name.to_string())
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        remote = format!("{OFFICIAL_REPO_PREFIX}{remote}");
    }
    (domain, remote)
}

/// docker's `Parse` of an already domain-qualified string.
fn parse_full(s: &str) -> Result<ImageRef, ReferenceError> {
    match match_reference(s) {
        Some(m) => {
            if m.name.len() > NAME_TOTAL_LENGTH_MAX {
                return Err(ReferenceError::NameTooLong { input: s.into() });
            }
            let digest = match m.digest {
                Some(d) => {
                    Some(
                        Digest::parse(d).map_err(|source| ReferenceError::InvalidDigest {
                            input: s.into(),
                            source,
                        })?,
                    )
                }
                None => None,
            };
            let (domain, path) = split_name(m.name);
            Ok(ImageRef {
                domain: domain.into(),
                path: path.into(),
                tag: m.tag.map(str::to_string),
                digest,
            })
        }
        None if s.is_empty() => Err(ReferenceError::NameEmpty { input: s.into() }),
        None if match_reference(&s.to_lowercase()).is_some() => {
            Err(ReferenceError::NameContainsUppercase { input: s.into() })
        }
        None => Err(ReferenceError::InvalidFormat { input: s.into() }),
    }
}

struct RefMatch<'a> {
    name: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

/// The anchored reference grammar, matched by hand. Neither name nor tag can hold `@`, and
/// a `:` followed by no `/` can only start the tag (a port is always followed by a path).
fn match_reference(s: &str) -> Option<RefMatch<'_>> {
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest
        && !is_digest_pattern(d)
    {
        return None;
    }
    let (name, tag) = match name_tag.rfind(':') {
        Some(i) if !name_tag[i + 1..].contains('/') => (&name_tag[..i], Some(&name_tag[i + 1..])),
        _ => (name_tag, None),
    };
    if let Some(t) = tag
        && !is_tag(t)
    {
        return None;
    }
    if !is_name(name) {
        return None;
    }
    Some(RefMatch { name, tag, digest })
}

fn is_name(s: &str) -> bool {
    if let Some((first, rest)) = s.split_once('/')
        && is_domain_and_port(first)
        && is_remote_name(rest)
    {
        return true;
    }
    is_remote_name(s)
}

/// Splits a valid name into (domain, path) as docker's anchored name regexp does: the first
/// component is the domain whenever it can be.
fn split_name(name: &str) -> (&str, &str) {
    if let Some((first, rest)) = name.split_once('/')
        && is_domain_and_port(first)
        && is_remote_name(rest)
    {
        return (first, rest);
    }
    ("", name)
}

fn is_remote_name(s: &str) -> bool {
    s.split('/').all(is_path_component)
}

fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

fn is_domain_and_port(s: &str) -> bool {
    let (host, port) = if s.starts_with('[') {
        let Some(end) = s.find(']') else {
            return false;
        };
        let inner = &s[1..end];
        if inner.is_empty() || !inner.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
            return false;
        }
        (None, &s[end + 1..])
    } else {
        match s.find(':') {
            Some(i) => (Some(&s[..i]), &s[i..]),
            None => (Some(s), ""),
        }
    };
    if let Some(h) = host
        && !h.split('.').all(is_domain_component)
    {
        return false;
    }
    port.is_empty()
        || (port.len() > 1
            && port.starts_with(':')
            && port[1..].bytes().all(|c| c.is_ascii_digit()))
}

fn is_domain_component(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
}

/// `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`
fn is_digest_pattern(s: &str) -> bool {
    let Some((alg, hex)) = s.split_once(':') else {
        return false;
    };
    let alg_ok = alg.split(['-', '_', '+', '.']).all(|part| {
        let b = part.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    });
    alg_ok && hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit())
}
