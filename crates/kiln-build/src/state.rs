//! The shared state of one build: the [`Build`] that solve drives and export reads (store,
//! lease, plan, options, opened contexts, memo tables). Only solve and export use it; the
//! stages before them get what they need of it (exec an [`crate::exec::ExecCtx`], key a
//! `KeyInputs`, inputs and rootfs the store and values).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use kiln_store::{LayerRecord, Lease, Store};

use crate::error::{BuildError, Result};
use crate::event::EventSink;
use crate::inputs::open::OpenContext;
use crate::inputs::sources::RemoteSources;
use crate::options::BuildOptions;
use crate::plan::{LocalDir, Plan, StepIndex};
use crate::rootfs::{CacheRecord, LayerRef, StepResult};
use crate::solve::remote_cache::{Local, RemoteCache};

/// The outcome of a successful build.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub image_id: String,
    pub manifest_digest: String,
    pub tags: Vec<String>,
    /// Steps taken from the cache / executed.
    pub cached: usize,
    pub executed: usize,
    /// Warnings to show after the build (a `--cache-from` that could not be read, a
    /// `--cache-to` with `ignore-error=true` that failed).
    pub warnings: Vec<String>,
    /// With several `--target`s, each target's image in the order asked (the fields above
    /// are the first's); empty otherwise.
    pub targets: Vec<TargetImage>,
}

/// The image of one of several targets.
#[derive(Debug, Clone)]
pub struct TargetImage {
    /// As `--target` named it.
    pub target: String,
    pub image_id: String,
    pub manifest_digest: String,
    pub tags: Vec<String>,
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
    /// ADD URL and git sources resolved while computing cache keys.
    pub remote: RemoteSources,
    /// When the build started (for its build record): a clock and unix milliseconds.
    pub started: std::time::Instant,
    pub started_ms: i64,
    /// When each step started and ended, and whether it was a cache hit (by step index).
    pub timings: Mutex<Vec<StepTiming>>,
    /// The caches `--cache-from` names.
    pub remote_cache: RemoteCache,
    /// Each layer step's cache key and record, hit or run (by step index): what
    /// `--cache-to` exports.
    pub step_records: Mutex<Vec<Option<(String, CacheRecord)>>>,
    /// The `stage-files:` digests this build's keys used (record name → digest).
    pub stage_files_seen: Mutex<BTreeMap<String, String>>,
}

/// When a step ran, from the build's start; `cached` for a cache hit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StepTiming {
    pub start: Option<std::time::Duration>,
    pub end: Option<std::time::Duration>,
    pub cached: bool,
}

/// An image the build reads, as its lease took it: manifest digest and layers.
pub(crate) type HeldImage = (kiln_store::Digest, Vec<LayerRecord>);

/// An image's unpacked chain, once the first step that needed it has made it.
pub(crate) type BaseSlot = Arc<Mutex<Option<Arc<Vec<LayerRef>>>>>;

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

    /// Where layers of remote cache hits are made local.
    pub(crate) fn cache_local(&self) -> Local<'_> {
        Local {
            store: self.store,
            lease: &self.lease,
            epoch: self.opts.source_date_epoch,
        }
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
