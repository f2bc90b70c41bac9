//! Raw blob and manifest transfers for artifacts that are not images (kiln's build cache):
//! a blob read as a stream, a blob uploaded from a file unless the registry has it, and a
//! manifest put under a tag. The caller verifies what it reads (the digest it asked for).
//! [`push`](crate::push) builds its image transfers (chunked, mounted, compressed uploads) on
//! the same requests; [`pull`](crate::pull) keeps its own (ranged, resumed, verified).

use std::io::Read;
use std::path::Path;

use kiln_image::Digest;
use ureq::SendBody;

use crate::client::{Session, error_message, read_small};
use crate::error::{Error, Result};

/// The scopes a session needs to read (`pull`) or also write (`pull,push`) `repository`.
pub fn scope(repository: &str, write: bool) -> String {
    if write {
        format!("repository:{repository}:pull,push")
    } else {
        format!("repository:{repository}:pull")
    }
}

/// Blob `digest` of `repository` as a stream (unverified: the caller hashes what it reads).
pub fn open_blob(sess: &Session, repository: &str, digest: &Digest) -> Result<impl Read + use<>> {
    let url = sess.url(&format!("{repository}/blobs/{digest}"));
    let resp = sess.send("GET", &url, &[], SendBody::none())?;
    let status = resp.status().as_u16();
    if status != 200 {
        let body = read_small(resp, 1 << 16, &url).unwrap_or_default();
        let message = match status {
            404 => format!("blob unknown: {digest}"),
            _ => error_message(&body).1,
        };
        return Err(Error::Status {
            method: "GET",
            url,
            status,
            message,
        });
    }
    Ok(resp.into_body().into_reader())
}

/// Whether `repository` has blob `digest` (`HEAD`).
pub fn has_blob(sess: &Session, repository: &str, digest: &Digest) -> Result<bool> {
    let url = sess.url(&format!("{repository}/blobs/{digest}"));
    let resp = sess.send("HEAD", &url, &[], SendBody::none())?;
    match resp.status().as_u16() {
        200 => Ok(true),
        404 => Ok(false),
        status => Err(Error::Status {
            method: "HEAD",
            url,
            status,
            message: String::new(),
        }),
    }
}

/// Uploads the file at `path` as blob `digest` of `repository` (one monolithic `PUT`), unless
/// the registry has it already. Returns whether it was uploaded.
pub fn put_blob(sess: &Session, repository: &str, digest: &Digest, path: &Path) -> Result<bool> {
    if has_blob(sess, repository, digest)? {
        return Ok(false);
    }
    let start = sess.url(&format!("{repository}/blobs/uploads/"));
    let resp = sess.send("POST", &start, &[], SendBody::none())?;
    let resp = expect(resp, "POST", &start, &[202])?;
    let loc = location(sess, &resp, &start)?;
    drop(resp);
    let file = std::fs::File::open(path).map_err(|e| Error::Read {
        what: path.display().to_string(),
        source: e,
    })?;
    let put = with_query(&loc, "digest", &digest.to_string());
    let resp = sess.send(
        "PUT",
        &put,
        &[("Content-Type", "application/octet-stream")],
        &file,
    )?;
    expect(resp, "PUT", &put, &[201])?;
    Ok(true)
}

/// Puts `bytes` (of `media_type`) as manifest `reference` (a tag) of `repository`.
pub fn put_manifest(
    sess: &Session,
    repository: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> Result<()> {
    let url = sess.url(&format!("{repository}/manifests/{reference}"));
    let resp = sess.send("PUT", &url, &[("Content-Type", media_type)], bytes)?;
    expect(resp, "PUT", &url, &[200, 201])?;
    Ok(())
}

/// Where an upload goes on: the response's `Location`, made absolute.
pub(crate) fn location(
    sess: &Session,
    resp: &ureq::http::Response<ureq::Body>,
    url: &str,
) -> Result<String> {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(|l| sess.absolute(l))
        .ok_or_else(|| Error::Invalid {
            what: url.to_string(),
            reason: "upload response without a Location".into(),
        })
}

/// `url` with `k=v` added to its query.
pub(crate) fn with_query(url: &str, k: &str, v: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{k}={v}")
}

/// `resp` if its status is one of `ok`, else the registry's error.
pub(crate) fn expect(
    resp: ureq::http::Response<ureq::Body>,
    method: &'static str,
    url: &str,
    ok: &[u16],
) -> Result<ureq::http::Response<ureq::Body>> {
    let status = resp.status().as_u16();
    if ok.contains(&status) {
        return Ok(resp);
    }
    let body = read_small(resp, 1 << 16, url).unwrap_or_default();
    let (code, message) = error_message(&body);
    Err(Error::Status {
        method,
        url: url.to_string(),
        status,
        message: format!("{code} {message}").trim().to_string(),
    })
}
