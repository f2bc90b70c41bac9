//! ADD of an http(s) URL: download, verify `--checksum`, name the file after the URL.

use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::inputs::context::tree::Time;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("failed to load {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("invalid checksum {checksum:?}: {why}")]
    BadChecksum { checksum: String, why: &'static str },
    #[error("digest mismatch for {url}: expected {expected}, got {actual}")]
    Mismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{url}: git sources are not supported yet")]
    Git { url: String },
}

/// A downloaded file.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The file (in the directory given to [`fetch`]).
    pub path: std::path::PathBuf,
    /// The name BuildKit gives it: the URL path's last component, or `__unnamed__`.
    pub name: String,
    /// `sha256:<hex>` of the content.
    pub digest: String,
    pub last_modified: Option<Time>,
}

pub use crate::plan::source::{is_git, is_url};

/// The file name BuildKit uses for a URL.
pub fn url_file_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_decode(path);
    let base = decoded
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    if base.is_empty() || base == "." || base == ".." {
        "__unnamed__".to_string()
    } else {
        base.to_string()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Parse `--checksum` (`sha256:<64 hex>`).
pub fn parse_checksum(c: &str) -> Result<String, HttpError> {
    let bad = |why| HttpError::BadChecksum {
        checksum: c.to_string(),
        why,
    };
    let (alg, hex) = c
        .split_once(':')
        .ok_or_else(|| bad("expected sha256:<hex>"))?;
    if alg != "sha256" {
        return Err(bad("only sha256 is supported"));
    }
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(bad("expected 64 lowercase hex digits"));
    }
    Ok(c.to_string())
}

/// Download `url` into a new file in `dir`, verifying `checksum` when given.
pub fn fetch(url: &str, checksum: Option<&str>, dir: &Path) -> Result<Fetched, HttpError> {
    if is_git(url) {
        return Err(HttpError::Git {
            url: url.to_string(),
        });
    }
    let expected = checksum.map(parse_checksum).transpose()?;
    let fail = |message: String| HttpError::Fetch {
        url: url.to_string(),
        message,
    };
    let resp = agent().get(url).call().map_err(|e| fail(e.to_string()))?;
    let f = save_body(url, resp, dir)?;
    if let Some(expected) = expected
        && expected != f.digest
    {
        return Err(HttpError::Mismatch {
            url: url.to_string(),
            expected,
            actual: f.digest,
        });
    }
    Ok(f)
}

/// Stream a response body into `dir/download`, hashing it.
fn save_body(
    url: &str,
    resp: ureq::http::Response<ureq::Body>,
    dir: &Path,
) -> Result<Fetched, HttpError> {
    let fail = |message: String| HttpError::Fetch {
        url: url.to_string(),
        message,
    };
    let last_modified = resp
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    let name = url_file_name(url);
    let path = dir.join("download");
    let mut file = std::fs::File::create(&path).map_err(|e| fail(e.to_string()))?;
    let mut body = resp.into_body();
    let mut reader = body.as_reader();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(e.to_string())),
        };
        h.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(|e| fail(e.to_string()))?;
    }
    let digest = format!("sha256:{}", hex::encode(h.finalize()));
    Ok(Fetched {
        path,
        name,
        digest,
        last_modified,
    })
}

/// What was learned about a URL's content the last time it was downloaded, for a
/// conditional request (BuildKit's http source keeps the same).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UrlMeta {
    pub etag: Option<String>,
    /// The `Last-Modified` header as sent.
    pub last_modified: Option<String>,
    /// `sha256:<hex>` of the content.
    pub digest: String,
}

/// The outcome of [`probe`].
#[derive(Debug)]
pub enum Probe {
    /// The server says the content is the one `known` describes (304).
    NotModified,
    /// The content, downloaded now.
    Fetched(Fetched, UrlMeta),
}

/// Ask for `url` with `If-None-Match` / `If-Modified-Since` from `known`; download it into `dir`
/// unless the server answers 304. Used to key ADD of a URL by its content.
pub fn probe(url: &str, known: Option<&UrlMeta>, dir: &Path) -> Result<Probe, HttpError> {
    let fail = |message: String| HttpError::Fetch {
        url: url.to_string(),
        message,
    };
    let mut req = agent().get(url);
    if let Some(k) = known {
        if let Some(e) = &k.etag {
            req = req.header("If-None-Match", e);
        }
        if let Some(m) = &k.last_modified {
            req = req.header("If-Modified-Since", m);
        }
    }
    let resp = req.call().map_err(|e| fail(e.to_string()))?;
    if resp.status() == 304 && known.is_some() {
        return Ok(Probe::NotModified);
    }
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let etag = header("etag");
    let last_modified_raw = header("last-modified");
    let fetched = save_body(url, resp, dir)?;
    let meta = UrlMeta {
        etag,
        last_modified: last_modified_raw,
        digest: fetched.digest.clone(),
    };
    Ok(Probe::Fetched(fetched, meta))
}

/// Parse an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send.
pub fn parse_http_date(s: &str) -> Option<Time> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as i64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<i64> = parts[4]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(Time {
        sec: days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2],
        nsec: 0,
    })
}

/// A server that accepts and never answers must not hang a build: connecting and the
/// response's headers get a time limit (a long body does not: big downloads are slow).
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(std::time::Duration::from_secs(30)))
        .timeout_recv_response(Some(std::time::Duration::from_secs(120)))
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        assert_eq!(
            url_file_name("https://x.org/a/b/tool.tar.gz?x=1"),
            "tool.tar.gz"
        );
        assert_eq!(url_file_name("https://x.org/"), "__unnamed__");
        assert_eq!(url_file_name("https://x.org"), "__unnamed__");
        assert_eq!(url_file_name("http://x.org/my%20file"), "my file");
        assert!(is_git("https://github.com/o/r.git"));
        assert!(!is_git("https://x.org/r.tar"));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").map(|t| t.sec),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("garbage"), None);
        assert!(parse_checksum("sha256:abc").is_err());
        assert!(parse_checksum("md5:abc").is_err());
    }
}
