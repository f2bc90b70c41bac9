//! The one lifecycle of a mounted snapshot, shaped like containerd's snapshotter:
//!
//! - [`Snapshotter::prepare`]`(lowers)` → an [`ActiveSnapshot`]: a writable overlay of the
//!   lower layer directories (top first; none for FROM scratch) over a fresh upper directory.
//!   The upper *is* the diff: everything written through [`ActiveSnapshot::rootfs`] lands there
//!   in overlay form (deletions as whiteouts).
//! - [`Snapshotter::view`]`(lowers)` → a read-only [`View`] of the lowers.
//! - [`ActiveSnapshot::commit`] → unmount and hand over the upper directory as a [`Diff`], for
//!   the caller to keep (kiln-build gives it to the store's `commit_snapshot`).
//! - Dropping an active snapshot, a view or an uncommitted diff unmounts it and removes its
//!   directories: nothing is left behind on an error path.
//!
//! The snapshotter does not know where layers are kept. Its caller gives it the lower
//! directories and, through [`TempDirs`], fresh directories on the file system the layers live
//! on (so a committed upper can be renamed into place). kiln-build's temp dirs are in the
//! store's tmp/; [`DirTemp`] puts them under any directory (tests, tools).
//!
//! Writable snapshots are mounted `volatile` when asked ([`OverlayOptions`]): no sync at
//! unmount, so an upper is unusable after a crash — right for build steps, whose upper is
//! committed or thrown away, and for containers of `kiln run`: an active snapshot over an
//! image's layer chain that lives as long as the container (its rootfs is
//! [`ActiveSnapshot::rootfs`], its changes the upper; `docker commit` would be
//! [`ActiveSnapshot::commit`]).

use crate::error::{Error, Result, io_err};
use crate::overlay::{OverlayMount, OverlayOptions, mount_overlay, mount_readonly};
use crate::remove::remove_dir_all;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a snapshotter's directories come from: each call returns a new, empty directory on
/// the file system of the layers, which the snapshot owns (and removes) from then on.
pub trait TempDirs {
    /// The caller's error type; snapshot errors convert into it.
    type Error: From<Error>;
    /// A new, empty directory.
    fn temp_dir(&self) -> std::result::Result<PathBuf, Self::Error>;
}

/// Temp dirs under a directory the caller gives (created if needed).
#[derive(Clone, Debug)]
pub struct DirTemp {
    root: PathBuf,
}

impl DirTemp {
    /// Temp dirs under `root`.
    pub fn new(root: &Path) -> Result<DirTemp> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(io_err("create", root))?;
        Ok(DirTemp {
            root: root.to_path_buf(),
        })
    }

    /// The directory they are made in.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TempDirs for DirTemp {
    type Error = Error;
    fn temp_dir(&self) -> Result<PathBuf> {
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let p = self.root.join(format!("{}-{n}", std::process::id()));
            match fs::DirBuilder::new().mode(0o755).create(&p) {
                Ok(()) => return Ok(p),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create", &p)(e)),
            }
        }
    }
}

/// The directories of a snapshot whose caller keeps them ([`Snapshotter::prepare_in`]): all
/// existing, on one file system; `work` is overlayfs's scratch directory.
#[derive(Clone, Copy, Debug)]
pub struct KeptDirs<'a> {
    /// The writable layer.
    pub upper: &'a Path,
    /// overlayfs's work directory (same file system as `upper`).
    pub work: &'a Path,
    /// Where the merged root is mounted.
    pub rootfs: &'a Path,
}

/// Prepares writable snapshots and read-only views of layer directories, with directories
/// from `D`.
#[derive(Clone, Debug)]
pub struct Snapshotter<D> {
    dirs: D,
}

/// Directories a snapshot owns, removed (after their mount is gone) on drop.
#[derive(Debug, Default)]
struct Owned(Vec<PathBuf>);

impl Drop for Owned {
    fn drop(&mut self) {
        for d in &self.0 {
            if d.exists() {
                let _ = remove_dir_all(d);
            }
        }
    }
}

/// A writable snapshot: an overlay of its lowers with a fresh upper directory, mounted until
/// committed or dropped (dropping discards it).
#[derive(Debug)]
pub struct ActiveSnapshot {
    // Field order is drop order: unmount first, then remove the directories.
    mount: Option<OverlayMount>,
    upper: PathBuf,
    rootfs: PathBuf,
    dirs: Owned,
}

impl ActiveSnapshot {
    /// The merged root file system to write to (or run a process in).
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// The upper directory: everything written so far, in overlay form.
    pub fn upper(&self) -> &Path {
        &self.upper
    }

    /// Whether nothing was written (the upper directory is empty).
    pub fn is_unchanged(&self) -> Result<bool> {
        let mut rd = fs::read_dir(&self.upper).map_err(io_err("read directory", &self.upper))?;
        Ok(rd.next().is_none())
    }

    /// Unmount now, reporting a failure (dropping unmounts too, silently); directories the
    /// snapshot owns are removed, the caller's ([`Snapshotter::prepare_in`]) stay.
    pub fn unmount(mut self) -> Result<()> {
        match self.mount.take() {
            Some(m) => m.unmount(),
            None => Ok(()),
        }
    }

    /// Unmount and hand over the upper directory, the snapshot's diff. The other directories
    /// are removed.
    pub fn commit(mut self) -> Result<Diff> {
        if let Some(m) = self.mount.take() {
            m.unmount()?;
        }
        let upper = std::mem::take(&mut self.upper);
        self.dirs.0.retain(|d| d != &upper);
        Ok(Diff { path: Some(upper) })
    }
}

/// The upper directory of a committed snapshot. It is removed on drop unless the caller has
/// moved it elsewhere and said so with [`Diff::keep`].
#[derive(Debug)]
pub struct Diff {
    path: Option<PathBuf>,
}

impl Diff {
    /// The directory.
    pub fn path(&self) -> &Path {
        self.path
            .as_deref()
            .expect("a diff has its path until kept")
    }

    /// The directory is the caller's now (renamed into a store): do not remove it.
    pub fn keep(mut self) -> PathBuf {
        self.path.take().expect("a diff has its path until kept")
    }
}

impl Drop for Diff {
    fn drop(&mut self) {
        if let Some(p) = self.path.take()
            && p.exists()
        {
            let _ = remove_dir_all(&p);
        }
    }
}

/// A read-only view of layers, unmounted and removed on drop.
#[derive(Debug)]
pub struct View {
    mount: Option<OverlayMount>,
    rootfs: PathBuf,
    _dirs: Owned,
}

impl View {
    /// The merged, read-only root file system.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }
}

impl Drop for View {
    fn drop(&mut self) {
        drop(self.mount.take());
    }
}

impl<D: TempDirs> Snapshotter<D> {
    /// A snapshotter that takes its directories from `dirs`.
    pub fn new(dirs: D) -> Snapshotter<D> {
        Snapshotter { dirs }
    }

    /// Where its directories come from.
    pub fn dirs(&self) -> &D {
        &self.dirs
    }

    /// A writable snapshot over `lowers` (layer directories, top first; empty for FROM
    /// scratch, where the upper itself is bind-mounted as the root file system).
    pub fn prepare(
        &self,
        lowers: &[PathBuf],
        opts: &OverlayOptions,
    ) -> std::result::Result<ActiveSnapshot, D::Error> {
        let mut dirs = Owned::default();
        let upper = self.dir(&mut dirs)?;
        let work = self.dir(&mut dirs)?;
        let rootfs = self.dir(&mut dirs)?;
        let mount = mount_overlay(lowers, &upper, &work, &rootfs, opts)?;
        Ok(ActiveSnapshot {
            mount: Some(mount),
            upper,
            rootfs,
            dirs,
        })
    }

    /// A writable snapshot over `lowers` (top first) in directories the caller keeps: a
    /// container's upper outlives each run of it (stop, then start again), so only the mount
    /// goes when the snapshot is dropped or unmounted; the directories stay the caller's.
    pub fn prepare_in(
        &self,
        lowers: &[PathBuf],
        dirs: &KeptDirs<'_>,
        opts: &OverlayOptions,
    ) -> std::result::Result<ActiveSnapshot, D::Error> {
        let mount = mount_overlay(lowers, dirs.upper, dirs.work, dirs.rootfs, opts)?;
        Ok(ActiveSnapshot {
            mount: Some(mount),
            upper: dirs.upper.to_path_buf(),
            rootfs: dirs.rootfs.to_path_buf(),
            dirs: Owned::default(),
        })
    }

    /// A read-only view of `lowers` (top first; none gives an empty read-only root).
    pub fn view(&self, lowers: &[PathBuf]) -> std::result::Result<View, D::Error> {
        let mut dirs = Owned::default();
        let rootfs = self.dir(&mut dirs)?;
        let mount = mount_readonly(lowers, &rootfs)?;
        Ok(View {
            mount: Some(mount),
            rootfs,
            _dirs: dirs,
        })
    }

    fn dir(&self, owned: &mut Owned) -> std::result::Result<PathBuf, D::Error> {
        let d = self.dirs.temp_dir()?;
        owned.0.push(d.clone());
        Ok(d)
    }
}
