//! Layer directories under a root the caller gives, shaped like containerd's snapshotter:
//! `prepare` an active snapshot (an overlay of committed layers plus a fresh upper), let a
//! process write to it, then `commit` it — its upper directory *is* the new layer. Active and
//! committed snapshots are different types, so writing to a committed layer cannot compile.
//!
//! ```text
//! <root>/
//!   layers/<id>/        committed layers: diffs in overlay form (read-only by convention)
//!   active/<unique>/    upper/ work/ merged/ of a prepared snapshot or a view
//!   tmp/<unique>/       layers being extracted, renamed into layers/ when complete
//! ```
//!
//! Ids are chosen by the caller (kiln-build uses the chain id's hex); the store keeps the
//! parent relations, this module only directories.

use crate::error::{Error, Result, io_err};
use crate::extract::{ExtractOptions, ExtractStats, extract_layer};
use crate::overlay::{OverlayMount, OverlayOptions, mount_overlay, mount_readonly};
use crate::remove::remove_dir_all;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Manages layer directories under one root.
#[derive(Clone, Debug)]
pub struct Snapshotter {
    root: PathBuf,
}

/// A committed layer directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    id: String,
    path: PathBuf,
}

impl Layer {
    /// The id it was committed under.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Its directory (a diff in overlay form).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A writable snapshot: an overlay of its parents with a fresh upper directory, mounted until
/// committed or dropped (dropping discards it).
#[derive(Debug)]
pub struct ActiveSnapshot {
    dir: PathBuf,
    mount: Option<OverlayMount>,
}

impl ActiveSnapshot {
    /// The merged root file system to run a process in.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("merged")
    }
    /// The upper directory: everything written so far, in overlay form.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
}

impl Drop for ActiveSnapshot {
    fn drop(&mut self) {
        drop(self.mount.take());
        let _ = remove_dir_all(&self.dir);
    }
}

/// A read-only view of committed layers, unmounted and removed on drop.
#[derive(Debug)]
pub struct View {
    dir: PathBuf,
    mount: Option<OverlayMount>,
}

impl View {
    /// The merged, read-only root file system.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("merged")
    }
}

impl Drop for View {
    fn drop(&mut self) {
        drop(self.mount.take());
        let _ = remove_dir_all(&self.dir);
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Snapshotter {
    /// Use (and create if needed) the snapshot root `root`.
    pub fn open(root: &Path) -> Result<Snapshotter> {
        for sub in ["layers", "active", "tmp"] {
            let p = root.join(sub);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&p)
                .map_err(io_err("create", &p))?;
        }
        Ok(Snapshotter {
            root: root.to_path_buf(),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn layer_path(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        Ok(self.root.join("layers").join(id))
    }

    /// The committed layer `id`.
    pub fn layer(&self, id: &str) -> Result<Layer> {
        let path = self.layer_path(id)?;
        match fs::symlink_metadata(&path) {
            Ok(md) if md.is_dir() => Ok(Layer {
                id: id.to_string(),
                path,
            }),
            Ok(_) => Err(Error::LayerNotFound {
                id: id.into(),
                root: self.root.clone(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::LayerNotFound {
                id: id.into(),
                root: self.root.clone(),
            }),
            Err(e) => Err(io_err("stat", &path)(e)),
        }
    }

    /// The ids of all committed layers, sorted.
    pub fn layers(&self) -> Result<Vec<String>> {
        let dir = self.root.join("layers");
        let mut ids = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err("read directory", &dir))? {
            let e = e.map_err(io_err("read directory", &dir))?;
            if let Some(s) = e.file_name().to_str() {
                ids.push(s.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn scratch_dir(&self, kind: &str) -> Result<PathBuf> {
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let p = self
                .root
                .join(kind)
                .join(format!("{}-{n}-{nanos:08x}", std::process::id()));
            match fs::DirBuilder::new().mode(0o755).create(&p) {
                Ok(()) => return Ok(p),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create", &p)(e)),
            }
        }
    }

    fn lowers(&self, parents: &[Layer]) -> Vec<PathBuf> {
        parents.iter().map(|l| l.path.clone()).collect()
    }

    /// A writable snapshot over `parents` (top layer first; empty for FROM scratch).
    pub fn prepare(&self, parents: &[Layer], opts: &OverlayOptions) -> Result<ActiveSnapshot> {
        let dir = self.scratch_dir("active")?;
        let mut active = ActiveSnapshot {
            dir: dir.clone(),
            mount: None,
        };
        for sub in ["upper", "work", "merged"] {
            let p = dir.join(sub);
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&p)
                .map_err(io_err("create", &p))?;
        }
        active.mount = Some(mount_overlay(
            &self.lowers(parents),
            &active.upper(),
            &dir.join("work"),
            &active.rootfs(),
            opts,
        )?);
        Ok(active)
    }

    /// A read-only view of `parents` (top first).
    pub fn view(&self, parents: &[Layer]) -> Result<View> {
        let dir = self.scratch_dir("active")?;
        let mut view = View {
            dir: dir.clone(),
            mount: None,
        };
        let merged = dir.join("merged");
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&merged)
            .map_err(io_err("create", &merged))?;
        view.mount = Some(mount_readonly(&self.lowers(parents), &merged)?);
        Ok(view)
    }

    /// Unmount `active` and keep its upper directory as layer `id`. If a layer `id` exists
    /// already (the same step committed concurrently), that one is kept and returned.
    pub fn commit(&self, mut active: ActiveSnapshot, id: &str) -> Result<Layer> {
        let dest = self.layer_path(id)?;
        if let Some(m) = active.mount.take() {
            m.unmount()?;
        }
        let upper = active.upper();
        rustix::fs::sync();
        match fs::rename(&upper, &dest) {
            Ok(()) => {}
            Err(e)
                if dest.is_dir()
                    && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {}
            Err(e) => return Err(io_err("commit layer to", &dest)(e)),
        }
        drop(active);
        Ok(Layer {
            id: id.to_string(),
            path: dest,
        })
    }

    /// Make layer `id` by letting `fill` write a fresh directory (e.g. files of a COPY step),
    /// renamed into place only when `fill` succeeds. An existing layer `id` is kept.
    pub fn create_layer<T>(
        &self,
        id: &str,
        fill: impl FnOnce(&Path) -> Result<T>,
    ) -> Result<(Layer, T)> {
        let dest = self.layer_path(id)?;
        let tmp = self.scratch_dir("tmp")?;
        let result = fill(&tmp);
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = remove_dir_all(&tmp);
                return Err(e);
            }
        };
        match fs::rename(&tmp, &dest) {
            Ok(()) => {}
            Err(e)
                if dest.is_dir()
                    && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) =>
            {
                let _ = remove_dir_all(&tmp);
            }
            Err(e) => {
                let _ = remove_dir_all(&tmp);
                return Err(io_err("create layer", &dest)(e));
            }
        }
        Ok((
            Layer {
                id: id.to_string(),
                path: dest,
            },
            value,
        ))
    }

    /// Extract a layer tar (gzip/zstd/plain) as layer `id`; on error nothing is left behind.
    pub fn import(
        &self,
        id: &str,
        reader: impl Read,
        opts: &ExtractOptions,
    ) -> Result<(Layer, ExtractStats)> {
        self.create_layer(id, |dir| extract_layer(reader, dir, opts))
    }

    /// Delete layer `id` (missing is fine). Snapshots mounted on it must be gone first.
    pub fn remove(&self, id: &str) -> Result<()> {
        let path = self.layer_path(id)?;
        // Rename first so a half-removed layer is never visible under its id.
        let trash = self.scratch_dir("tmp")?;
        let moved = trash.join("layer");
        match fs::rename(&path, &moved) {
            Ok(()) => remove_dir_all(&trash),
            Err(e) if e.kind() == io::ErrorKind::NotFound => remove_dir_all(&trash),
            Err(e) => {
                let _ = remove_dir_all(&trash);
                Err(io_err("remove layer", &path)(e))
            }
        }
    }

    /// Remove what crashed processes left in `active/` and `tmp/` (entries of live processes
    /// are kept). Stale mounts cannot exist when builds run in private mount namespaces.
    pub fn cleanup(&self) -> Result<u64> {
        let mut removed = 0;
        for kind in ["active", "tmp"] {
            let dir = self.root.join(kind);
            for e in fs::read_dir(&dir).map_err(io_err("read directory", &dir))? {
                let e = e.map_err(io_err("read directory", &dir))?;
                let name = e.file_name();
                let pid = name
                    .to_str()
                    .and_then(|s| s.split('-').next())
                    .and_then(|p| p.parse::<u32>().ok());
                let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
                if !alive {
                    let p = e.path();
                    let _ = rustix::mount::unmount(
                        p.join("merged"),
                        rustix::mount::UnmountFlags::DETACH,
                    );
                    remove_dir_all(&p)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidLayerId(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("0123abcdef").is_ok());
        assert!(validate_id("a.b_c-d").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "sha256:ab",
            ".hidden",
            &"x".repeat(129),
        ] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }
}
