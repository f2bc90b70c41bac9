//! The build's answers to [`KeyInputs`]: context checksums, other stages' files and keys,
//! base images, remote sources and RUN settings, read from the build's state. The key itself
//! ([`crate::key`]) stays a pure function of the step and these answers.

use crate::error::{BuildError, Result};
use crate::inputs::context::SelectOptions;
use crate::inputs::context::checksum::{ListedDigest, sources_digest_listed};
use crate::key::{KeyInputs, StepKey, key_of};
use crate::plan::{LocalDir, StepIndex};
use crate::rootfs::StepResult;
use crate::state::Build;

impl KeyInputs for Build<'_> {
    fn context(
        &self,
        dir: &LocalDir,
        sources: &[String],
        sel: &SelectOptions,
        listing: usize,
    ) -> Result<ListedDigest> {
        let ctx = self.local(dir)?;
        sources_digest_listed(ctx.context.tree(), sources, sel, &ctx.cache, listing)
            .map_err(BuildError::from)
    }

    fn stage_files(
        &self,
        step: StepIndex,
        stage_step: StepIndex,
        sources: &[String],
        sel: &SelectOptions,
    ) -> Result<String> {
        let res = self.result(stage_step);
        let record = crate::inputs::stage_files::record_name(&res, sources, sel);
        let local = self
            .store
            .cache_peek(&record)?
            .and_then(|v| String::from_utf8(v).ok())
            .filter(|d| d.starts_with("sha256:"));
        let d = match local.or_else(|| self.remote_cache.stage_files(&record)) {
            Some(d) => d,
            None => {
                // The stage's files are read: a layer still in a remote cache comes first.
                let res = StepResult {
                    chain: self
                        .remote_cache
                        .ensure_local(&self.cache_local(), &res.chain)?,
                    ..res
                };
                crate::inputs::stage_files::digest(
                    self.store,
                    &self.plan.steps[step],
                    &res,
                    sources,
                    sel,
                )?
            }
        };
        self.stage_files_seen
            .lock()
            .unwrap()
            .insert(record, d.clone());
        Ok(d)
    }

    fn stage_key(&self, stage_step: StepIndex) -> String {
        self.result(stage_step).key
    }

    fn stage_name(&self, stage_step: StepIndex) -> String {
        self.plan.graph.stages[self.plan.steps[stage_step].stage]
            .display
            .clone()
    }

    fn image(&self, idx: usize) -> (String, String) {
        let i = &self.plan.images[idx];
        (i.reference.clone(), i.id.clone())
    }

    fn git_commit(&self, url: &str) -> Result<String> {
        self.remote.git_commit(url)
    }

    fn url_digest(&self, url: &str) -> Result<String> {
        self.remote.url_content_digest(self.store, url)
    }

    fn run_settings(&self) -> Vec<(&'static str, String)> {
        let o = &self.opts;
        let mut out = Vec::new();
        for h in &o.extra_hosts {
            out.push(("extra-host", format!("{}={}", h.name, h.ip)));
        }
        if let Some(size) = o.shm_size {
            out.push(("shm-size", size.to_string()));
        }
        for u in &o.ulimits {
            out.push(("ulimit", format!("{}={}:{}", u.resource, u.soft, u.hard)));
        }
        out
    }
}

/// The key of layer step `i` of the build, on top of `parent`.
pub fn step_key(b: &Build<'_>, i: StepIndex, parent: &StepResult) -> Result<StepKey> {
    key_of(&b.plan.steps, i, &parent.key, b)
}
