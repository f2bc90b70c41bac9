//! A directory of the build context as a bind mount sees it: what `.dockerignore` hides is
//! absent, as in BuildKit, which never sends excluded files into the build.
//!
//! The view is an overlay whose top layer holds only whiteouts (0/0 character devices) for
//! the hidden paths ([`SourceTree::hidden_below`]), over the context directory itself. Its
//! cost is one `readdir` per context directory and one node per hidden path, whatever the
//! size of the included files (no copy, no hard link: hard links would fail across file
//! systems and share inodes a `rw` mount could then change). Rejected: materialising the
//! included tree (50k links or copies per RUN). The whiteout layer lives on a small tmpfs
//! ([`WhiteoutLayer`]): on the store's ext4 its thousands of inodes cost 1.4 s to make and
//! remove for a 50k-file context with 4k hidden paths (creations and deletions on ext4
//! without a journal are slow, see ARCHITECTURE.md); on tmpfs they cost nothing to remove.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps};

use super::tree::stat_at;
use super::{ContextError, SourceTree};

/// Write the whiteout layer for `masks` (relative to `base`, from
/// [`SourceTree::hidden_below`]) into the empty directory `layer`. Directories on the way
/// get the metadata of the context's own (an overlay shows a directory's mode, owner and
/// times from its topmost layer).
pub fn write_whiteouts(
    tree: &SourceTree,
    base: &Path,
    masks: &[PathBuf],
    layer: &Path,
) -> Result<(), ContextError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source: std::io::Error| ContextError::Io { path: p, source }
    };
    let mut dirs: Vec<PathBuf> = vec![PathBuf::new()];
    for m in masks {
        let mut sofar = PathBuf::new();
        if let Some(parent) = m.parent() {
            for c in parent.components() {
                sofar.push(c);
                let at = layer.join(&sofar);
                match std::fs::create_dir(&at) {
                    Ok(()) => dirs.push(sofar.clone()),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io(&at)(e)),
                }
            }
        }
        let at = layer.join(m);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &at,
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .map_err(|e| io(&at)(e.into()))?;
    }
    // Deepest first, so setting a directory's times is not undone by work inside it.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        let src = if d.as_os_str().is_empty() {
            base.to_path_buf()
        } else {
            base.join(&d)
        };
        let meta = stat_at(tree.root().fd(), src.as_os_str()).map_err(|e| ContextError::Io {
            path: tree.root().host_path(&src),
            source: e,
        })?;
        let at = layer.join(&d);
        let at: &OsStr = if d.as_os_str().is_empty() {
            layer.as_os_str()
        } else {
            at.as_os_str()
        };
        let set = || -> rustix::io::Result<()> {
            let cwd = rustix::fs::CWD;
            rustix::fs::chownat(
                cwd,
                at,
                Some(rustix::fs::Uid::from_raw(meta.uid)),
                Some(rustix::fs::Gid::from_raw(meta.gid)),
                AtFlags::empty(),
            )?;
            rustix::fs::chmodat(cwd, at, Mode::from_raw_mode(meta.mode), AtFlags::empty())?;
            let ts = |t: super::Time| Timespec {
                tv_sec: t.sec,
                tv_nsec: i64::from(t.nsec),
            };
            rustix::fs::utimensat(
                cwd,
                at,
                &Timestamps {
                    last_access: ts(meta.atime),
                    last_modification: ts(meta.mtime),
                },
                AtFlags::empty(),
            )
        };
        set().map_err(|e| io(Path::new(OsStr::from_bytes(at.as_bytes())))(e.into()))?;
    }
    Ok(())
}

/// A tmpfs mounted on a scratch directory to hold a whiteout layer; unmounted on drop (the
/// build's private mount namespace removes it anyway if kiln dies).
#[derive(Debug)]
pub struct WhiteoutLayer {
    dir: PathBuf,
}

impl WhiteoutLayer {
    pub fn mount(dir: &Path) -> std::io::Result<WhiteoutLayer> {
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        // SAFETY: NUL-terminated strings that live across the call.
        let r = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                c.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NOEXEC,
                c"mode=755".as_ptr().cast(),
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(WhiteoutLayer {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for WhiteoutLayer {
    fn drop(&mut self) {
        if let Ok(c) = std::ffi::CString::new(self.dir.as_os_str().as_bytes()) {
            // Lazily: an overlay that uses it may still be going away.
            // SAFETY: a NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}
