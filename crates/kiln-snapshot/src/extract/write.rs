//! Writing each kind of tar entry at its place inside the root.

use super::meta::Meta;
use super::path::EntryPath;
use super::{DeferredDir, Extractor};
use crate::error::EntryError;
use crate::remove::remove_at;
use crate::xattr::opaque_xattr;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

/// Blocks of zeros this long are skipped with a seek, so sparse files stay sparse.
const HOLE_BLOCK: usize = 4096;

impl Extractor {
    /// Make room for a new entry at `name`: remove what is there, except an existing
    /// directory when the new entry is one too (their contents merge, as in every tar
    /// extractor). Returns whether a directory was kept.
    pub(super) fn clear_slot(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        new_is_dir: bool,
    ) -> Result<bool, EntryError> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(EntryError::io("stat existing entry")(e)),
            Ok(st) => {
                if new_is_dir && FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    return Ok(true);
                }
                remove_at(dir, name).map_err(|source| EntryError::Io {
                    op: "replace existing entry",
                    source,
                })?;
                self.root.invalidate();
                Ok(false)
            }
        }
    }

    pub(super) fn file<R: Read>(
        &mut self,
        path: &EntryPath,
        data: &mut R,
        meta: &Meta,
    ) -> Result<(), EntryError> {
        let name = leaf(path)?;
        let dir = self.root.dir(path.parent())?;
        self.clear_slot(dir.as_fd(), name, false)?;
        let fd = rustix::fs::openat(
            dir.as_fd(),
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(EntryError::io("create file"))?;
        let mut file = File::from(fd);
        let written = copy_sparse(data, &mut file)?;
        meta.apply_fd(file.as_fd(), self.opts.same_owner)?;
        self.root.created.insert(path.key());
        self.stats.files += 1;
        self.stats.file_bytes += written;
        Ok(())
    }

    pub(super) fn dir(&mut self, path: &EntryPath, meta: super::Meta) -> Result<(), EntryError> {
        self.stats.dirs += 1;
        let Some(name) = path.name() else {
            // `./`: the root's own metadata.
            self.deferred.push(DeferredDir {
                path: path.clone(),
                meta,
            });
            return Ok(());
        };
        let dir = self.root.dir(path.parent())?;
        let kept = self.clear_slot(dir.as_fd(), name, true)?;
        if !kept {
            rustix::fs::mkdirat(dir.as_fd(), name, Mode::from_raw_mode(0o700))
                .map_err(EntryError::io("create directory"))?;
        }
        let key = path.key();
        if self.whiteouts.remove(&key) {
            // A directory written where this layer put a whiteout replaces the lower one.
            self.set_opaque(path)?;
        }
        self.root.created.insert(key);
        self.deferred.push(DeferredDir {
            path: path.clone(),
            meta,
        });
        Ok(())
    }

    pub(super) fn symlink<R: Read>(
        &mut self,
        path: &EntryPath,
        entry: &tar::Entry<'_, R>,
        meta: &Meta,
    ) -> Result<(), EntryError> {
        let name = leaf(path)?;
        let target = entry
            .link_name_bytes()
            .ok_or(EntryError::InvalidName)?
            .into_owned();
        if target.is_empty() || target.contains(&0) {
            return Err(EntryError::InvalidName);
        }
        let dir = self.root.dir(path.parent())?;
        self.clear_slot(dir.as_fd(), name, false)?;
        rustix::fs::symlinkat(OsStr::from_bytes(&target), dir.as_fd(), name)
            .map_err(EntryError::io("create symlink"))?;
        meta.apply_at(dir.as_fd(), name, true, self.opts.same_owner)?;
        self.root.created.insert(path.key());
        self.stats.symlinks += 1;
        Ok(())
    }

    pub(super) fn hardlink<R: Read>(
        &mut self,
        path: &EntryPath,
        entry: &tar::Entry<'_, R>,
    ) -> Result<(), EntryError> {
        let name = leaf(path)?;
        let raw = entry
            .link_name_bytes()
            .ok_or(EntryError::InvalidName)?
            .into_owned();
        let shown = || String::from_utf8_lossy(&raw).into_owned();
        // Only files this layer wrote may be linked to: anything else could be a file of the
        // host (absolute or `..` targets) or of a lower layer (not in this diff).
        let target = EntryPath::parse(&raw)
            .map_err(|_| EntryError::HardlinkOutsideLayer { target: shown() })?;
        let Some(tname) = target.name() else {
            return Err(EntryError::HardlinkOutsideLayer { target: shown() });
        };
        if !self.root.created.contains(&target.key()) {
            return Err(EntryError::HardlinkOutsideLayer { target: shown() });
        }
        if target == *path {
            return Ok(());
        }
        let tdir = self.root.dir(target.parent())?;
        let st = rustix::fs::statat(tdir.as_fd(), tname, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(EntryError::io("stat link target"))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            return Err(EntryError::HardlinkOutsideLayer { target: shown() });
        }
        let dir = self.root.dir(path.parent())?;
        self.clear_slot(dir.as_fd(), name, false)?;
        // The target's directory may have been re-resolved by clear_slot; resolve again.
        let tdir = self.root.dir(target.parent())?;
        let dir2 = self.root.dir(path.parent())?;
        rustix::fs::linkat(tdir.as_fd(), tname, dir2.as_fd(), name, AtFlags::empty())
            .map_err(EntryError::io("create hard link"))?;
        self.root.created.insert(path.key());
        self.stats.hardlinks += 1;
        Ok(())
    }

    pub(super) fn device<R: Read>(
        &mut self,
        path: &EntryPath,
        kind: tar::EntryType,
        entry: &tar::Entry<'_, R>,
        meta: &Meta,
    ) -> Result<(), EntryError> {
        if !self.opts.allow_devices {
            return Err(EntryError::DeviceRefused);
        }
        let h = entry.header();
        let bad = |source| EntryError::Io {
            op: "parse device numbers",
            source,
        };
        let major = h.device_major().map_err(bad)?.unwrap_or(0);
        let minor = h.device_minor().map_err(bad)?.unwrap_or(0);
        let ft = if kind == tar::EntryType::Char {
            FileType::CharacterDevice
        } else {
            FileType::BlockDevice
        };
        match self.node(path, ft, rustix::fs::makedev(major, minor), meta) {
            // Rootless: the kernel makes no device node in a user namespace (only 0:0
            // whiteouts); leave it out, as Docker and buildah do, and count it.
            Err(EntryError::Io {
                op: "create node",
                source,
            }) if source.raw_os_error() == Some(libc::EPERM)
                && crate::xattr::in_user_namespace() =>
            {
                self.stats.devices_skipped += 1;
                Ok(())
            }
            r => r,
        }
    }

    pub(super) fn fifo(&mut self, path: &EntryPath, meta: &Meta) -> Result<(), EntryError> {
        self.node(path, FileType::Fifo, 0, meta)
    }

    fn node(
        &mut self,
        path: &EntryPath,
        ft: FileType,
        dev: rustix::fs::Dev,
        meta: &Meta,
    ) -> Result<(), EntryError> {
        let name = leaf(path)?;
        let dir = self.root.dir(path.parent())?;
        self.clear_slot(dir.as_fd(), name, false)?;
        rustix::fs::mknodat(dir.as_fd(), name, ft, Mode::from_raw_mode(0o600), dev)
            .map_err(EntryError::io("create node"))?;
        meta.apply_at(dir.as_fd(), name, false, self.opts.same_owner)?;
        self.root.created.insert(path.key());
        Ok(())
    }

    /// Mark the directory at `path` opaque (diff mode).
    pub(super) fn set_opaque(&mut self, path: &EntryPath) -> Result<(), EntryError> {
        let dir = self.root.dir(path.comps())?;
        let fd = rustix::fs::openat(
            dir.as_fd(),
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(EntryError::io("open directory"))?;
        let name = opaque_xattr();
        rustix::fs::fsetxattr(&fd, name, b"y", XattrFlags::empty()).map_err(|source| {
            EntryError::Io {
                op: "set opaque xattr",
                source: std::io::Error::new(
                    std::io::Error::from(source).kind(),
                    format!("{name}: {}", std::io::Error::from(source)),
                ),
            }
        })
    }
}

fn leaf(path: &EntryPath) -> Result<&OsStr, EntryError> {
    // Only directories may name the root (`./`).
    path.name().ok_or(EntryError::InvalidName)
}

/// Copy an entry's data, seeking over 4 KiB blocks of zeros; returns the file's length.
fn copy_sparse<R: Read>(data: &mut R, file: &mut File) -> Result<u64, EntryError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut len: u64 = 0;
    let mut pending_hole: u64 = 0;
    let write_err = |source| EntryError::Io {
        op: "write file",
        source,
    };
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(EntryError::Io {
                    op: "read entry data (truncated or corrupt layer)",
                    source,
                });
            }
        };
        // Write runs of data with one call each; seek over whole blocks of zeros.
        let mut run_start = 0;
        let mut pos = 0;
        while pos < n {
            let end = (pos + HOLE_BLOCK).min(n);
            let block = &buf[pos..end];
            if block.len() == HOLE_BLOCK && block.iter().all(|&b| b == 0) {
                if run_start < pos {
                    if pending_hole > 0 {
                        file.seek(SeekFrom::Current(pending_hole as i64))
                            .map_err(write_err)?;
                        pending_hole = 0;
                    }
                    file.write_all(&buf[run_start..pos]).map_err(write_err)?;
                }
                pending_hole += HOLE_BLOCK as u64;
                run_start = end;
            }
            pos = end;
        }
        if run_start < n {
            if pending_hole > 0 {
                file.seek(SeekFrom::Current(pending_hole as i64))
                    .map_err(write_err)?;
                pending_hole = 0;
            }
            file.write_all(&buf[run_start..n]).map_err(write_err)?;
        }
        len += n as u64;
    }
    if pending_hole > 0 {
        file.set_len(len).map_err(write_err)?;
    }
    Ok(len)
}
