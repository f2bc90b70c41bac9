//! ADD's remote sources, resolved once per build: the content digest of a URL (downloaded
//! now and kept for the step) and the commit a git source names.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use kiln_store::Store;

use crate::error::{BuildError, Result};
use crate::inputs::http;

/// The remote sources of one build, resolved while its cache keys are computed and read
/// again when the steps run. The downloads live under the store's tmp/ and go with it.
#[derive(Default)]
pub(crate) struct RemoteSources {
    /// ADD URL sources downloaded while computing cache keys, by URL.
    pub downloads: Mutex<BTreeMap<String, http::Fetched>>,
    /// ADD git sources resolved to commits while computing cache keys, by URL.
    pub git_commits: Mutex<BTreeMap<String, String>>,
    /// Where those downloads live (under the store's tmp/).
    download_dir: Mutex<Option<PathBuf>>,
}

impl Drop for RemoteSources {
    fn drop(&mut self) {
        if let Some(d) = self.download_dir.lock().unwrap().take() {
            let _ = kiln_snapshot::remove_dir_all(&d);
        }
    }
}

impl RemoteSources {
    /// The content digest of an ADD URL source, as BuildKit keys it: a conditional GET with
    /// what the last download of that URL learned (ETag, Last-Modified); on 304 the
    /// remembered digest, else the content is downloaded now (and kept for the step, so it is
    /// fetched once).
    pub fn url_content_digest(&self, store: &Store, url: &str) -> Result<String> {
        if let Some(f) = self.downloads.lock().unwrap().get(url) {
            return Ok(f.digest.clone());
        }
        let record = format!("http:{url}");
        let known: Option<http::UrlMeta> = store
            .cache_peek(&record)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok());
        let dir = {
            let mut d = self.download_dir.lock().unwrap();
            if d.is_none() {
                *d = Some(store.prepare_snapshot_dir()?);
            }
            let n = self.downloads.lock().unwrap().len();
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
                    let _ = store.cache_put(&record, &v, &[]);
                }
                let digest = f.digest.clone();
                self.downloads.lock().unwrap().insert(url.to_string(), f);
                Ok(digest)
            }
        }
    }

    /// The commit an ADD git source names now (`git ls-remote`), resolved once per build.
    pub fn git_commit(&self, url: &str) -> Result<String> {
        if let Some(c) = self.git_commits.lock().unwrap().get(url) {
            return Ok(c.clone());
        }
        let src = crate::inputs::git::parse(url);
        let commit = crate::inputs::git::resolve(url, &src)?;
        self.git_commits
            .lock()
            .unwrap()
            .insert(url.to_string(), commit.clone());
        Ok(commit)
    }
}
