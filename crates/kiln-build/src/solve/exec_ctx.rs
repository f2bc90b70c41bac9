//! The execution context a step's RUN/COPY/ADD gets: the parts of the [`Build`] that exec
//! reads, borrowed, and the build's answers for the layer chains of other stages and images.

use std::sync::Arc;

use crate::error::{BuildError, Result};
use crate::exec::{Chains, ExecCtx};
use crate::plan::StepIndex;
use crate::rootfs::LayerRef;
use crate::state::Build;

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
            remote: &self.remote,
            chains: self,
            keys: self,
        }
    }
}

impl Chains for Build<'_> {
    fn stage_chain(&self, step: StepIndex) -> Result<Arc<Vec<LayerRef>>> {
        let chain = self.results.lock().unwrap()[step]
            .as_ref()
            .map(|r| r.chain.clone())
            .unwrap_or_default();
        // Layers still in a remote cache are fetched now: the step reads them.
        self.remote_cache.ensure_local(&self.cache_local(), &chain)
    }

    fn image_chain(&self, id: &str) -> Result<Arc<Vec<LayerRef>>> {
        Build::image_chain(self, id)
    }
}

impl Build<'_> {
    /// The layer chain of a stored image, unpacking layers that are not snapshots yet.
    pub(crate) fn image_chain(&self, id: &str) -> Result<Arc<Vec<LayerRef>>> {
        self.image_chain_unpacking(id, &|| {})
    }

    /// [`Self::image_chain`], calling `before_unpack` first if a layer must be unpacked.
    pub(crate) fn image_chain_unpacking(
        &self,
        id: &str,
        before_unpack: &dyn Fn(),
    ) -> Result<Arc<Vec<LayerRef>>> {
        let slot = self
            .base_chains
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock().unwrap();
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        let (_, layers) = self
            .base_layers
            .get(id)
            .ok_or_else(|| BuildError::ImageNotResolved { id: id.to_string() })?;
        let chain = Arc::new(crate::rootfs::unpack::image_chain_with(
            self.store,
            &self.lease,
            id,
            layers,
            before_unpack,
        )?);
        *slot = Some(chain.clone());
        Ok(chain)
    }
}
