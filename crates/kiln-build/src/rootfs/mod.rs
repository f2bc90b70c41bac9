//! Root file systems of steps. Every mount of a build goes through kiln-snapshot's
//! [`Snapshotter`]: a step's writable root is [`prepare`]d over its parent's chain (the upper
//! becomes the step's snapshot at commit), what a step reads of another stage or image is a
//! read-only [`view`]. Their directories, and a step's other temporary directories
//! ([`Scratch`]), are made in the store's tmp/ ([`StoreTemp`]) and go with the step.
//!
//! A step's result is its chain of [`LayerRef`]s ([`StepResult`]). Also here: path
//! resolution inside a root ([`path`]), a tar archive written into a root safely
//! ([`archive`]: ADD's extraction and remote contexts), USER/`--chown` lookup in the root's
//! passwd and group files ([`passwd`]), and base images unpacked into layer chains
//! ([`unpack`]).

pub mod archive;
pub mod passwd;
pub mod path;
pub(crate) mod unpack;

use std::path::PathBuf;
use std::sync::Arc;

use kiln_snapshot::{ActiveSnapshot, OverlayOptions, Snapshotter, TempDirs, View};
use kiln_store::{LayerRecord, Store};
use serde::{Deserialize, Serialize};

use crate::error::{BuildError, Result};

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

/// A step's cache record (the value of its row in the store's cache table): the layer it
/// produced (None = no change), as its snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CacheRecord {
    pub layer: Option<LayerRef>,
    /// When the step first ran (unix seconds): a fully cached rebuild reuses it as the image's
    /// `created`, so it gives the same image ID.
    #[serde(default)]
    pub created: i64,
}

/// The store's tmp/ as the place of snapshot directories: on the file system of the store's
/// snapshots, so a committed upper is renamed into place.
pub(crate) struct StoreTemp<'a>(pub &'a Store);

impl TempDirs for StoreTemp<'_> {
    type Error = BuildError;
    fn temp_dir(&self) -> Result<PathBuf> {
        Ok(self.0.prepare_snapshot_dir()?)
    }
}

/// The build's snapshotter.
pub(crate) fn snapshotter(store: &Store) -> Snapshotter<StoreTemp<'_>> {
    Snapshotter::new(StoreTemp(store))
}

/// Lower directories of a chain (bottom first) in overlay order (top first).
pub(crate) fn lowers(chain: &[LayerRef]) -> Vec<PathBuf> {
    chain.iter().rev().map(|l| l.dir.clone()).collect()
}

/// A writable root over `chain` (bottom first): a volatile overlay, whose upper becomes a
/// snapshot that kiln never syncs, as extracted base layers never were (a non-volatile
/// overlay syncs the whole upper file system at unmount: 0.3 s per 400 MB a step wrote, plus
/// whatever else was dirty there). See docs/snapshots.md.
pub(crate) fn prepare(store: &Store, chain: &[LayerRef]) -> Result<ActiveSnapshot> {
    snapshotter(store).prepare(&lowers(chain), &OverlayOptions { volatile: true })
}

/// A read-only view of `chain` (bottom first).
pub(crate) fn view(store: &Store, chain: &[LayerRef]) -> Result<View> {
    snapshotter(store).view(&lowers(chain))
}

/// Temporary directories of one step under the store's tmp/, removed on drop.
pub(crate) struct Scratch {
    pub dirs: Vec<PathBuf>,
}

impl Scratch {
    pub fn dir(&mut self, store: &Store) -> Result<PathBuf> {
        let d = StoreTemp(store).temp_dir()?;
        self.dirs.push(d.clone());
        Ok(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for d in &self.dirs {
            if d.exists() {
                let _ = kiln_snapshot::remove_dir_all(d);
            }
        }
    }
}
