//! The execution context a step's RUN/COPY/ADD gets: the parts of the [`Build`] that exec
//! reads, borrowed, and the build's answers for the layer chains of other stages and images.

use std::sync::Arc;

use crate::error::Result;
use crate::exec::{Chains, ExecCtx};
use crate::plan::StepIndex;
use crate::state::{Build, LayerRef};

impl Build<'_> {
    /// What exec needs of this build for one step.
    pub(crate) fn exec_ctx(&self) -> ExecCtx<'_> {
        ExecCtx {
            store: self.store,
            lease: &self.lease,
            opts: self.opts,
            plan: self.plan,
            events: &self.events,
            cancel: self.cancel,
            context: self.context.as_ref(),
            named_dirs: &self.named_dirs,
            downloads: &self.downloads,
            git_commits: &self.git_commits,
            chains: self,
            keys: self,
        }
    }
}

impl Chains for Build<'_> {
    fn stage_chain(&self, step: StepIndex) -> Arc<Vec<LayerRef>> {
        self.results.lock().unwrap()[step]
            .as_ref()
            .map(|r| r.chain.clone())
            .unwrap_or_default()
    }

    fn image_chain(&self, id: &str) -> Result<Arc<Vec<LayerRef>>> {
        Build::image_chain(self, id)
    }
}
