//! Running one layer step: an overlay of the parent chain with a fresh upper directory, the
//! operation (RUN container, COPY/ADD, WORKDIR mkdir) on the merged view, then the upper
//! directory becomes the step's snapshot (a `COPY --link` copies into the empty upper
//! directory alone). No layer blob is made here: only an export needs
//! one (see `export::layer_blobs`), and most layers of a multi-stage build are never exported.

pub mod copy;
mod copy_step;
pub(crate) mod run;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kiln_store::{Lease, Store};

use crate::error::{BuildError, Result};
use crate::event::EventSink;
use crate::inputs::open::OpenContext;
use crate::inputs::sources::RemoteSources;
use crate::key::KeyInputs;
use crate::options::BuildOptions;
use crate::plan::{LocalDir, Op, Plan, StepIndex};
use crate::rootfs::Scratch;
use crate::rootfs::path::{self as rootpath, Owner, Root};
use crate::rootfs::{LayerRef, StepResult};

/// What RUN, COPY and ADD read of the build, and nothing else: solve makes one from its
/// build for each step it executes.
pub(crate) struct ExecCtx<'a> {
    /// Temporary directories, snapshots and cache mounts.
    pub store: &'a Store,
    /// Holds the snapshot a step commits until its cache record is in.
    pub lease: &'a Lease,
    /// The executor (`--runtime`), `--secret`, `--ssh`, `--add-host`, `--ulimit`,
    /// `--shm-size`, `--network` and the other settings a RUN applies.
    pub opts: &'a BuildOptions,
    /// The steps (name, line and operation of the one executed) and the images they read.
    pub plan: &'a Plan,
    pub events: &'a EventSink,
    pub cancel: &'static AtomicBool,
    /// The build context and the `--build-context NAME=DIR` directories, opened.
    pub context: Option<&'a OpenContext>,
    pub named_dirs: &'a BTreeMap<String, OpenContext>,
    /// ADD URL sources downloaded and git sources resolved to commits while the keys were
    /// computed.
    pub remote: &'a RemoteSources,
    /// The layer chains of other stages and of images a step reads.
    pub chains: &'a dyn Chains,
    /// The build's answers for what is keyed (a cache mount's `from=` seed is part of the
    /// cache's identity).
    pub keys: &'a dyn KeyInputs,
}

/// Layer chains a step reads besides its parent's (`COPY --from`, `RUN --mount=from=`).
pub(crate) trait Chains: Sync {
    /// The chain of finished step `step` (the last step of a stage).
    fn stage_chain(&self, step: StepIndex) -> Result<Arc<Vec<LayerRef>>>;
    /// The chain of a stored image, unpacked when needed.
    fn image_chain(&self, id: &str) -> Result<Arc<Vec<LayerRef>>>;
}

impl ExecCtx<'_> {
    /// The opened local directory a step reads.
    pub(crate) fn local(&self, d: &LocalDir) -> Result<&OpenContext> {
        match d {
            LocalDir::Main => self.context,
            LocalDir::Named(n) => self.named_dirs.get(n),
        }
        .ok_or_else(|| BuildError::ContextNotOpen {
            dir: format!("{d:?}"),
        })
    }
}

/// Run step `i` on top of `parent`; returns the new layer, or None when nothing changed.
pub fn execute(
    b: &ExecCtx<'_>,
    i: StepIndex,
    parent: &StepResult,
    key: &str,
) -> Result<Option<LayerRef>> {
    let step = &b.plan.steps[i];
    let mut scratch = Scratch { dirs: Vec::new() };
    let linked = crate::key::is_linked(&step.op);
    // `--link`: into an empty root (the upper directory alone); overlay stacks it later.
    let lower: &[LayerRef] = if linked { &[] } else { &parent.chain };
    let active = crate::rootfs::prepare(b.store, lower)?;
    let merged = active.rootfs();
    match &step.op {
        Op::Run(r) => crate::exec::run::run(b, i, r, merged, &mut scratch)?,
        Op::Copy(c) => crate::exec::copy_step::copy(b, i, c, merged)?,
        Op::Mkdir { path, user } => mkdir(merged, path, user.as_deref())?,
        Op::Base(_) => unreachable!(),
    }
    if is_empty_dir(active.upper())? {
        return Ok(None);
    }
    // Unmounted; the upper is the new snapshot (removed by `diff` unless the store takes it).
    let diff = active.commit()?;
    // A step that runs again with the same key (`--no-cache`, or a record pruned while its
    // snapshot stayed) gets a new snapshot key rather than deleting what it just wrote: the
    // old snapshot goes at the next collection. Deleting thousands of files here made the
    // next step's file creation crawl on ext4 without a journal (its allocator skips inodes
    // freed in the last 30 s to 5 min, scanning for each new one): `--no-cache` rebuilds of
    // the incremental bench case took 5.8-7.8 s instead of ~3 s.
    let mut snapshot_key = format!("step:{key}");
    if b.store.has_snapshot(&snapshot_key)? {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        snapshot_key = format!("step:{key}:{}.{nanos}", std::process::id());
    }
    // A linked layer is stacked on whatever parent a build gives it: it records none.
    let parent_snap = parent
        .chain
        .last()
        .filter(|_| !linked)
        .map(|l| l.snapshot.clone());
    let info =
        b.store
            .commit_snapshot(b.lease, &snapshot_key, parent_snap.as_deref(), diff.path())?;
    diff.keep();
    Ok(Some(LayerRef {
        snapshot: snapshot_key,
        dir: info.path,
        blob: None,
    }))
}

fn is_empty_dir(p: &Path) -> Result<bool> {
    let mut rd = std::fs::read_dir(p).map_err(|e| BuildError::io("reading", p, e))?;
    Ok(rd.next().is_none())
}

/// WORKDIR: create the directory inside the rootfs (symlinks resolved inside it), owned by
/// USER when one is set, as BuildKit does.
fn mkdir(merged: &Path, path: &str, user: Option<&str>) -> Result<()> {
    let root = Root::open(merged).map_err(|e| BuildError::io("opening rootfs", merged, e))?;
    let owner = match user {
        Some(u) => {
            let id = crate::rootfs::passwd::resolve_user(merged, u)?;
            Some(Owner {
                uid: id.uid,
                gid: id.gid,
            })
        }
        None => None,
    };
    let resolved =
        rootpath::resolve(root.fd(), path.as_bytes(), true, &|_| true).map_err(|source| {
            BuildError::WorkdirPath {
                path: path.to_string(),
                source,
            }
        })?;
    rootpath::mkdir_all(root.fd(), &resolved.rel, 0o755, owner).map_err(|source| {
        BuildError::Workdir {
            path: path.to_string(),
            source,
        }
    })?;
    Ok(())
}
