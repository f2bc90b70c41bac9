//! ADD's remote sources, resolved once per build: the content digest of a URL (downloaded
//! now and kept for the step) and the commit a git source names.

use crate::error::{BuildError, Result};
use crate::inputs::http;
use crate::state::Build;

/// The content digest of an ADD URL source, as BuildKit keys it: a conditional GET with what
/// the last download of that URL learned (ETag, Last-Modified); on 304 the remembered digest,
/// else the content is downloaded now (and kept for the step, so it is fetched once).
pub fn url_content_digest(b: &Build<'_>, url: &str) -> Result<String> {
    if let Some(f) = b.downloads.lock().unwrap().get(url) {
        return Ok(f.digest.clone());
    }
    let record = format!("http:{url}");
    let known: Option<http::UrlMeta> = b
        .store
        .cache_peek(&record)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_slice(&v).ok());
    let dir = {
        let mut d = b.download_dir.lock().unwrap();
        if d.is_none() {
            *d = Some(b.store.prepare_snapshot_dir()?);
        }
        let n = b.downloads.lock().unwrap().len();
        let dir = d
            .as_ref()
            .unwrap()
            .join(format!("url{n}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| BuildError::io("creating", &dir, e))?;
        dir
    };
    match http::probe(url, known.as_ref(), &dir)? {
        http::Probe::NotModified => Ok(known.map(|k| k.digest).unwrap_or_default()),
        http::Probe::Fetched(f, meta) => {
            if known.as_ref() != Some(&meta)
                && let Ok(v) = serde_json::to_vec(&meta)
            {
                let _ = b.store.cache_put(&record, &v, &[]);
            }
            let digest = f.digest.clone();
            b.downloads.lock().unwrap().insert(url.to_string(), f);
            Ok(digest)
        }
    }
}

/// The commit an ADD git source names now (`git ls-remote`), resolved once per build.
pub fn git_commit(b: &Build<'_>, url: &str) -> Result<String> {
    if let Some(c) = b.git_commits.lock().unwrap().get(url) {
        return Ok(c.clone());
    }
    let src = crate::inputs::git::parse(url);
    let commit = crate::inputs::git::resolve(url, &src)?;
    b.git_commits
        .lock()
        .unwrap()
        .insert(url.to_string(), commit.clone());
    Ok(commit)
}
