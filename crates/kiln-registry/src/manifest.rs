//! Manifests as registries serve them: fetched with a size limit, digest-checked, parsed
//! just enough to walk an index or an image.

use kiln_image::compression::media_types as mt;
use kiln_image::{Digest, Platform};
use serde::Deserialize;
use ureq::SendBody;

use crate::client::{Session, error_message, read_small};
use crate::error::{Error, Result};

/// containerd's limit on a manifest or index: a registry cannot make kiln read more.
pub const MANIFEST_LIMIT: u64 = 4 << 20;

/// The media types kiln asks for.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A descriptor (the fields kiln uses).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    #[serde(default)]
    pub media_type: String,
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Index entries: the platform.
    #[serde(default)]
    pub platform: Option<PlatformField>,
    /// Foreign layers: where they are.
    #[serde(default)]
    pub urls: Vec<String>,
}

/// An index entry's platform.
#[derive(Debug, Clone, Deserialize)]
pub struct PlatformField {
    /// OS.
    pub os: String,
    /// Architecture.
    pub architecture: String,
    /// Variant.
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// A fetched manifest or index.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The bytes as served (their digest is the manifest's).
    pub bytes: Vec<u8>,
    /// Their digest.
    pub digest: Digest,
    /// The media type (from the document, else the Content-Type).
    pub media_type: String,
}

/// What a fetched document is.
#[derive(Debug, Clone)]
pub enum Document {
    /// An index / manifest list.
    Index(Vec<Descriptor>),
    /// An image manifest.
    Image {
        /// Its config.
        config: Descriptor,
        /// Its layers, base first.
        layers: Vec<Descriptor>,
    },
}

impl Fetched {
    /// Parses the document.
    pub fn parse(&self, what: &str) -> Result<Document> {
        let invalid = |reason: String| Error::Invalid {
            what: what.to_string(),
            reason,
        };
        let p: Probe = serde_json::from_slice(&self.bytes)
            .map_err(|e| invalid(format!("invalid manifest JSON: {e}")))?;
        if p.schema_version == Some(1) {
            return Err(invalid(
                "a schema 1 manifest; kiln pulls schema 2 and OCI images only".into(),
            ));
        }
        let is_index = matches!(
            self.media_type.as_str(),
            mt::OCI_INDEX | mt::DOCKER_MANIFEST_LIST
        ) || (p.manifests.is_some() && p.config.is_none());
        if is_index {
            return Ok(Document::Index(p.manifests.unwrap_or_default()));
        }
        match (p.config, p.layers) {
            (Some(config), Some(layers)) => Ok(Document::Image { config, layers }),
            _ => Err(invalid(format!(
                "media type {:?}: neither an index nor an image manifest",
                p.media_type.unwrap_or_else(|| self.media_type.clone())
            ))),
        }
    }
}

/// The index entry for `want`, as containerd picks it (the first that matches).
pub fn select_platform<'a>(entries: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    entries.iter().find(|d| {
        d.platform.as_ref().is_some_and(|p| {
            want.matches(&Platform::new(&p.os, &p.architecture, p.variant.as_deref()))
        })
    })
}

/// GETs `repository`'s manifest `reference` (tag or digest); `familiar` names it in errors.
/// A tag is resolved with `HEAD` first, as docker does: the manifest is then fetched by the
/// digest the registry names (`Docker-Content-Digest`) and checked against it.
pub fn fetch(sess: &Session, repository: &str, reference: &str, familiar: &str) -> Result<Fetched> {
    if Digest::parse(reference).is_err() {
        let url = sess.url(&format!("{repository}/manifests/{reference}"));
        let head = sess.head(&url, &[("Accept", ACCEPT)])?;
        let named = head
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v.trim()).ok());
        if head.status() == 200
            && let Some(d) = named
        {
            return get(sess, repository, &d.to_string(), familiar);
        }
        // Anything else (a registry without the header, a refusal, no such tag): the GET
        // says what it is, as docker's client does (a HEAD answer has no body to say it).
    }
    get(sess, repository, reference, familiar)
}

fn get(sess: &Session, repository: &str, reference: &str, familiar: &str) -> Result<Fetched> {
    let url = sess.url(&format!("{repository}/manifests/{reference}"));
    let resp = sess.send("GET", &url, &[("Accept", ACCEPT)], SendBody::none())?;
    let status = resp.status().as_u16();
    if status == 404 {
        let body = read_small(resp, 1 << 16, &url).unwrap_or_default();
        let (code, message) = error_message(&body);
        let message = if message.is_empty() {
            "manifest unknown".to_string()
        } else {
            message
        };
        if code == "NAME_UNKNOWN" {
            return Err(Error::ManifestUnknown {
                reference: familiar.to_string(),
                message,
            });
        }
        return Err(Error::ManifestUnknown {
            reference: familiar.to_string(),
            message,
        });
    }
    if status == 403 {
        let body = read_small(resp, 1 << 16, &url).unwrap_or_default();
        return Err(Error::Denied {
            repository: familiar
                .split([':', '@'])
                .next()
                .unwrap_or(familiar)
                .to_string(),
            message: error_message(&body).1,
        });
    }
    if status != 200 {
        let body = read_small(resp, 1 << 16, &url).unwrap_or_default();
        return Err(Error::Status {
            method: "GET",
            url,
            status,
            message: error_message(&body).1,
        });
    }
    let too_large = |size| Error::ManifestTooLarge {
        reference: familiar.to_string(),
        size,
        limit: MANIFEST_LIMIT,
    };
    if let Some(len) = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > MANIFEST_LIMIT
    {
        return Err(too_large(len));
    }
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
        .unwrap_or_default();
    let bytes = resp
        .into_body()
        .into_with_config()
        .limit(MANIFEST_LIMIT + 1)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => too_large(MANIFEST_LIMIT + 1),
            e => Error::Read {
                what: url.clone(),
                source: std::io::Error::other(e),
            },
        })?;
    if bytes.len() as u64 > MANIFEST_LIMIT {
        return Err(too_large(bytes.len() as u64));
    }
    let digest = Digest::of(&bytes);
    if let Ok(want) = Digest::parse(reference)
        && want != digest
    {
        return Err(Error::DigestMismatch {
            what: format!("manifest {familiar}"),
            expected: want.to_string(),
            actual: digest.to_string(),
        });
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Mt {
        media_type: Option<String>,
    }
    let media_type = serde_json::from_slice::<Mt>(&bytes)
        .ok()
        .and_then(|m| m.media_type)
        .filter(|m| !m.is_empty())
        .unwrap_or(content_type);
    Ok(Fetched {
        bytes,
        digest,
        media_type,
    })
}
