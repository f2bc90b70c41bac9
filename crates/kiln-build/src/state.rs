//! The shared state of one build and the values steps hand each other: the [`Build`] every
//! pipeline stage reads (store, lease, plan, options, opened contexts, memo tables), a step's
//! [`StepResult`] and its chain of [`LayerRef`]s. It uses only the types of plan and inputs;
//! solve, exec, rootfs and export depend on it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use kiln_store::{LayerRecord, Lease, Store};
use serde::{Deserialize, Serialize};

use crate::error::{BuildError, Result};
use crate::event::EventSink;
use crate::inputs::open::OpenContext;
use crate::options::BuildOptions;
use crate::plan::{LocalDir, Plan, StepIndex};

/// One layer of a rootfs chain: its diff directory and, when known, its blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRef {
    /// Snapshot key in the store.
    pub snapshot: String,
    /// Absolute path of the diff directory.
    #[serde(skip)]
    pub dir: PathBuf,
    /// The layer as a blob. Known for base-image layers; a layer a step made has none until
    /// an image that contains it is exported (`export::layer_blobs` makes it then, or finds
    /// the one an earlier export made). Cache records keep only the snapshot (records of
    /// older kilns also name a blob; it is ignored).
    #[serde(skip)]
    pub blob: Option<LayerRecord>,
}

/// What a finished step leaves for its dependents.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub key: String,
    /// Layers bottom first.
    pub chain: Arc<Vec<LayerRef>>,
    /// False when the step produced no filesystem change (its history entry is an empty layer).
    pub made_layer: bool,
    /// Latest run time (unix seconds) of this step and the layer steps before it in this build.
    pub created: i64,
}

/// The outcome of a successful build.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub image_id: String,
    pub manifest_digest: String,
    pub tags: Vec<String>,
    /// Steps taken from the cache / executed.
    pub cached: usize,
    pub executed: usize,
}

/// Shared state of one build.
pub(crate) struct Build<'a> {
    pub store: &'a Store,
    pub lease: Lease,
    pub opts: &'a BuildOptions,
    pub plan: &'a Plan,
    pub context: Option<OpenContext>,
    /// `--build-context NAME=DIR` directories that steps read, by name.
    pub named_dirs: BTreeMap<String, OpenContext>,
    pub events: EventSink,
    pub cancel: &'static AtomicBool,
    pub results: Mutex<Vec<Option<StepResult>>>,
    /// Steps of stages named in --no-cache-filter.
    pub no_cache_stages: Vec<usize>,
    pub counters: Mutex<(usize, usize)>,
    /// Unpacked base images by image id (shared between steps). One slot per image: the
    /// first step that needs an image unpacks it, the others wait for that instead of
    /// unpacking the same layers at the same time.
    pub base_chains: Mutex<BTreeMap<String, BaseSlot>>,
    /// The layers of every image the build reads, by image ID, held by `lease`.
    pub base_layers: BTreeMap<String, HeldImage>,
    /// Absolute context and Dockerfile paths (see [`crate::solve::explain::scope`]).
    pub explain_scope: (String, String),
    /// Cache keys hit, marked used in one transaction at the end.
    pub hits: Mutex<Vec<String>>,
    /// ADD URL sources downloaded while computing cache keys, by URL.
    pub downloads: Mutex<BTreeMap<String, crate::inputs::http::Fetched>>,
    /// ADD git sources resolved to commits while computing cache keys, by URL.
    pub git_commits: Mutex<BTreeMap<String, String>>,
    /// Where those downloads live (under the store's tmp/, removed with the build).
    pub download_dir: Mutex<Option<PathBuf>>,
}

/// An image the build reads, as its lease took it: manifest digest and layers.
pub(crate) type HeldImage = (kiln_store::Digest, Vec<LayerRecord>);

/// An image's unpacked chain, once the first step that needed it has made it.
pub(crate) type BaseSlot = Arc<Mutex<Option<Arc<Vec<LayerRef>>>>>;

impl Drop for Build<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.download_dir.lock().unwrap().take() {
            let _ = kiln_snapshot::remove_dir_all(&d);
        }
    }
}

impl Build<'_> {
    /// The opened local directory a step reads.
    pub(crate) fn local(&self, d: &LocalDir) -> Result<&OpenContext> {
        match d {
            LocalDir::Main => self.context.as_ref(),
            LocalDir::Named(n) => self.named_dirs.get(n),
        }
        .ok_or_else(|| BuildError::ContextNotOpen {
            dir: format!("{d:?}"),
        })
    }

    /// The result of a step that has finished.
    pub(crate) fn result(&self, i: StepIndex) -> StepResult {
        self.results.lock().unwrap()[i]
            .clone()
            .expect("dependency finished before its dependent")
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
