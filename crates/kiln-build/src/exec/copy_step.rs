//! COPY/ADD steps: locate the sources (context, another stage's rootfs, an image) and hand
//! the request to [`crate::exec::copy`], which implements Docker's semantics.

use std::path::Path;

use crate::error::{BuildError, Result};
use crate::exec::ExecCtx;
use crate::exec::copy::{CopyRequest, CopySource, copy_into};
use crate::plan::{CopyFrom, CopyOp, StepIndex};

pub fn copy(b: &ExecCtx<'_>, i: StepIndex, c: &CopyOp, merged: &Path) -> Result<()> {
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
                let chain = b.chains.stage_chain(*s)?;
                let v = crate::rootfs::view(b.store, &chain)?;
                let dir = v.rootfs().to_path_buf();
                _mount = Some(v);
                CopySource::Dir(dir)
            }
            CopyFrom::Image(idx) => {
                let chain = b.chains.image_chain(&b.plan.images[*idx].id)?;
                let v = crate::rootfs::view(b.store, &chain)?;
                let dir = v.rootfs().to_path_buf();
                _mount = Some(v);
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
        git_commits: b.remote.git_commits.lock().unwrap().clone(),
        keep_git_dir: c.keep_git_dir,
        prefetched: {
            let d = b.remote.downloads.lock().unwrap();
            c.sources
                .iter()
                .filter_map(|s| d.get(s).map(|f| (s.clone(), f.clone())))
                .collect()
        },
    };
    copy_into(&req, merged).map_err(|e| fail(e.to_string()))?;
    Ok(())
}
