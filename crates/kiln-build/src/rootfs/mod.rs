//! Root file systems of steps: a chain of layer directories mounted as one overlay (read-write
//! over a fresh upper directory, or read-only), in temporary directories under the store's
//! tmp/ that go with the step.

pub mod passwd;
pub mod path;
pub(crate) mod unpack;

use std::path::{Path, PathBuf};

use crate::error::{BuildError, Result};
use crate::state::{Build, LayerRef};

/// Temporary directories of one step under the store's tmp/, removed on drop.
pub(crate) struct Scratch {
    pub dirs: Vec<PathBuf>,
}

impl Scratch {
    pub fn dir(&mut self, b: &Build<'_>) -> Result<PathBuf> {
        let d = b.store.prepare_snapshot_dir()?;
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

/// Mount the chain (top first) at a new directory: read-write with `upper` (a volatile
/// overlay), else read-only.
pub(crate) fn mount_chain(
    b: &Build<'_>,
    scratch: &mut Scratch,
    chain: &[LayerRef],
    upper: Option<&Path>,
) -> Result<(kiln_snapshot::OverlayMount, PathBuf)> {
    let lowers: Vec<PathBuf> = chain.iter().rev().map(|l| l.dir.clone()).collect();
    let target = scratch.dir(b)?;
    let m = match upper {
        Some(up) => {
            let work = scratch.dir(b)?;
            kiln_snapshot::mount_overlay(
                &lowers,
                up,
                &work,
                &target,
                // No sync of the whole upper file system at unmount (a non-volatile overlay
                // syncs it, which cost 0.3 s per 400 MB a step wrote, plus whatever else
                // was dirty on that file system). The upper becomes a snapshot that kiln
                // never syncs, as extracted base layers never were: docs/snapshots.md.
                &kiln_snapshot::OverlayOptions { volatile: true },
            )
        }
        None => kiln_snapshot::mount_readonly(&lowers, &target),
    }
    .map_err(|e| BuildError::Other(format!("mounting the rootfs: {e}")))?;
    Ok((m, target))
}
