//! COPY/ADD steps: locate the sources (context, another stage's rootfs, an image) and hand
//! the request to [`crate::copy`], which implements Docker's semantics.

use std::path::Path;

use crate::copy::{CopyRequest, CopySource, copy_into, http};
use crate::error::{BuildError, Result};
use crate::plan::{CopyFrom, CopyOp, StepIndex};
use crate::rootfs::{Scratch, mount_chain};
use crate::state::Build;

pub fn copy(
    b: &Build<'_>,
    i: StepIndex,
    c: &CopyOp,
    merged: &Path,
    scratch: &mut Scratch,
) -> Result<()> {
    let step = &b.plan.steps[i];
    let fail = |message: String| BuildError::Step {
        step: step.name.clone(),
        line: step.line,
        message,
        output: String::new(),
    };
    let mut _mount = None;
    let source = if !c.inline.is_empty() {
        CopySource::Inline(
            c.inline
                .iter()
                .map(|(n, content)| (n.clone(), content.clone().into_bytes()))
                .collect(),
        )
    } else {
        match &c.from {
            CopyFrom::Context(dir) => CopySource::Context(&b.local(dir)?.context),
            CopyFrom::Stage(s) => {
                let chain = b.results.lock().unwrap()[*s]
                    .as_ref()
                    .map(|r| r.chain.clone())
                    .unwrap_or_default();
                let (m, dir) = mount_chain(b, scratch, &chain, None)?;
                _mount = Some(m);
                CopySource::Dir(dir)
            }
            CopyFrom::Image(idx) => {
                let chain = b.image_chain(&b.plan.images[*idx].id)?;
                let (m, dir) = mount_chain(b, scratch, &chain, None)?;
                _mount = Some(m);
                CopySource::Dir(dir)
            }
        }
    };
    let req = CopyRequest {
        source,
        patterns: c.sources.clone(),
        dest: c.dest.clone(),
        workdir: c.workdir.clone(),
        chown: c.chown.clone(),
        chmod: c.chmod.clone(),
        parents: c.parents,
        exclude: c.exclude.clone(),
        is_add: c.is_add,
        link: c.link,
        checksum: c.checksum.clone(),
        unpack: c.unpack,
        git_commits: b.git_commits.lock().unwrap().clone(),
        keep_git_dir: c.keep_git_dir,
        prefetched: {
            let d = b.downloads.lock().unwrap();
            c.sources
                .iter()
                .filter_map(|s| d.get(s).map(|f| (s.clone(), f.clone())))
                .collect()
        },
    };
    copy_into(&req, merged).map_err(|e| fail(e.to_string()))?;
    Ok(())
}

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
    let src = crate::copy::git::parse(url);
    let commit = crate::copy::git::resolve(url, &src)?;
    b.git_commits
        .lock()
        .unwrap()
        .insert(url.to_string(), commit.clone());
    Ok(commit)
}
