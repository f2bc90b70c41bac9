//! Mount points a run had to create, and their removal afterwards.
//!
//! The executor creates a missing mount target (a directory, or an empty file for a file bind
//! mount such as `/etc/hosts`) in the rootfs, which is the overlay's merged directory, so the
//! stub lands in the step's upper directory. Dockerd 20.10's BuildKit keeps such stubs for
//! `RUN --mount` targets (the conformance case `run-mount-bind` expects the empty directories),
//! while newer BuildKit (`executor/stubs.go`) removes them, always including `/etc/hosts` and
//! `/etc/resolv.conf`. The build engine chooses the paths: record before the run, remove after.

use std::fs::{self, File, FileTimes};
use std::path::{Component, Path, PathBuf};

/// Paths missing from a rootfs before a run (a mount target and its missing parents).
#[derive(Debug, Default, Clone)]
pub struct MountStubs {
    /// Host paths, deepest first.
    paths: Vec<PathBuf>,
}

impl MountStubs {
    /// Record which of `targets` (container paths such as `/etc/hosts`), and which of their
    /// parents, do not exist yet in `rootfs`. Symlinks are resolved inside `rootfs`.
    pub fn scan<I, P>(rootfs: &Path, targets: I) -> MountStubs
    where
        I: IntoIterator<Item = P>,
        P: AsRef<Path>,
    {
        let mut paths = Vec::new();
        for target in targets {
            let Some(mut p) = resolve_in_root(rootfs, target.as_ref()) else {
                continue;
            };
            while p != rootfs && fs::symlink_metadata(&p).is_err() {
                paths.push(p.clone());
                match p.parent() {
                    Some(parent) => p = parent.to_path_buf(),
                    None => break,
                }
            }
        }
        MountStubs { paths }
    }

    /// Like [`MountStubs::scan`], but records only the missing targets themselves, not their
    /// missing parents: dockerd 20.10's BuildKit removes the `/etc/hosts` and
    /// `/etc/resolv.conf` stubs after a RUN but leaves the `/etc` it had to create (a
    /// `FROM scratch` image with a RUN ships an empty `/etc`).
    pub fn scan_targets_only<I, P>(rootfs: &Path, targets: I) -> MountStubs
    where
        I: IntoIterator<Item = P>,
        P: AsRef<Path>,
    {
        let paths = targets
            .into_iter()
            .filter_map(|t| resolve_in_root(rootfs, t.as_ref()))
            .filter(|p| p != rootfs && fs::symlink_metadata(p).is_err())
            .collect();
        MountStubs { paths }
    }

    /// The recorded host paths, deepest first.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Remove every recorded path that is now an empty directory or an empty file, keeping the
    /// parent directory's timestamps (reproducible layers). Returns the paths removed.
    pub fn remove(&self) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        for p in &self.paths {
            let Ok(meta) = fs::symlink_metadata(p) else {
                continue;
            };
            let empty = if meta.is_dir() {
                fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())
            } else {
                meta.is_file() && meta.len() == 0
            };
            if !empty {
                continue;
            }
            let parent = p.parent().map(Path::to_path_buf);
            let times = parent.as_ref().and_then(|d| fs::metadata(d).ok());
            let ok = if meta.is_dir() {
                fs::remove_dir(p).is_ok()
            } else {
                fs::remove_file(p).is_ok()
            };
            if ok {
                removed.push(p.clone());
                if let (Some(dir), Some(t)) = (parent, times) {
                    let mut ft = FileTimes::new();
                    if let Ok(a) = t.accessed() {
                        ft = ft.set_accessed(a);
                    }
                    if let Ok(m) = t.modified() {
                        ft = ft.set_modified(m);
                    }
                    let _ = File::open(&dir).and_then(|f| f.set_times(ft));
                }
            }
        }
        removed
    }
}

/// Create a missing mount point (a directory, or an empty file when `file`) for the container
/// path `dest`, resolving symlinks inside `root` (an absolute symlink in an image points into
/// the image, never at the host).
pub(crate) fn create_mount_point(root: &Path, dest: &Path, file: bool) -> std::io::Result<()> {
    let path = resolve_in_root(root, dest)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ELOOP))?;
    if fs::symlink_metadata(&path).is_ok() {
        return Ok(());
    }
    if file {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    } else {
        fs::create_dir_all(&path)
    }
}

/// Join `path` to `root`, following symlinks but never leaving `root` (like BuildKit's
/// `fs.RootPath`). Missing components are kept as they are.
fn resolve_in_root(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut parts: Vec<std::ffi::OsString> = Vec::new();
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            parts.pop();
            continue;
        }
        let mut candidate: PathBuf = root.to_path_buf();
        candidate.extend(&parts);
        candidate.push(&name);
        match fs::read_link(&candidate) {
            Ok(target) => {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                if target.is_absolute() {
                    parts.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            Err(_) => parts.push(name),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&parts);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_created_by_a_run_are_removed_but_not_preexisting_or_filled_ones() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::write(r.join("etc/resolv.conf"), "nameserver 1.1.1.1\n").unwrap();
        let stubs = MountStubs::scan(r, ["/etc/hosts", "/etc/resolv.conf", "/mnt/a/b", "/c"]);
        assert_eq!(
            stubs.paths(),
            [
                r.join("etc/hosts"),
                r.join("mnt/a/b"),
                r.join("mnt/a"),
                r.join("mnt"),
                r.join("c"),
            ]
        );
        // What a run does: create the stubs; write into one of them.
        fs::write(r.join("etc/hosts"), "").unwrap();
        fs::create_dir_all(r.join("mnt/a/b")).unwrap();
        fs::create_dir_all(r.join("c")).unwrap();
        fs::write(r.join("c/kept"), "x").unwrap();
        let removed = stubs.remove();
        assert_eq!(removed.len(), 4, "{removed:?}");
        assert!(!r.join("etc/hosts").exists());
        assert!(!r.join("mnt").exists());
        assert!(r.join("etc/resolv.conf").exists());
        assert!(r.join("c/kept").exists());
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::os::unix::fs::symlink("/../../outside", r.join("link")).unwrap();
        assert_eq!(
            resolve_in_root(r, Path::new("/link/x")).unwrap(),
            r.join("outside/x")
        );
    }
}
