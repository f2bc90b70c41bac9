//! Whiteouts: `.wh.NAME` hides NAME of lower layers, `.wh..wh..opq` hides all of a
//! directory's lower content. Per the OCI image spec they never hide what the same layer
//! writes, whatever the order of entries.

use super::Extractor;
use super::meta::Meta;
use super::path::EntryPath;
use super::root::Target;
use crate::error::EntryError;
use crate::remove::{list_dir, remove_at};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

pub(super) const PREFIX: &[u8] = b".wh.";
pub(super) const OPAQUE: &[u8] = b".wh..opq";
/// aufs' own bookkeeping entries (`.wh..wh.plnk`, `.wh..wh.aufs`): skipped, as Docker does.
pub(super) const AUFS_META: &[u8] = b".wh.";

impl Extractor {
    /// `path` is the `.wh.`-prefixed entry; `rest` is its name without the prefix.
    pub(super) fn whiteout(
        &mut self,
        path: &EntryPath,
        rest: &[u8],
        meta: &Meta,
    ) -> Result<(), EntryError> {
        let parent = EntryPath::from_comps(path.parent().to_vec());
        if rest == OPAQUE {
            self.stats.opaque_dirs += 1;
            self.root.dir(parent.comps())?;
            return match self.root.target {
                Target::Diff => self.set_opaque(&parent),
                Target::Apply => self.hide_lower(&parent),
            };
        }
        if rest.starts_with(AUFS_META) {
            return Ok(());
        }
        if rest.is_empty() || rest == b"." || rest == b".." {
            return Err(EntryError::InvalidName);
        }
        self.stats.whiteouts += 1;
        let hidden = parent.child(OsStr::from_bytes(rest));
        let name = OsStr::from_bytes(rest);
        let dir = self.root.dir(parent.comps())?;
        if self.root.created.contains(&hidden.key()) {
            // The layer itself wrote NAME: it stays, but it must not let lower content show.
            if is_dir(dir.as_fd(), name) {
                return match self.root.target {
                    Target::Diff => self.set_opaque(&hidden),
                    Target::Apply => self.hide_lower(&hidden),
                };
            }
            return Ok(());
        }
        match self.root.target {
            Target::Diff => {
                self.clear_slot(dir.as_fd(), name, false)?;
                let dir = self.root.dir(parent.comps())?;
                // Overlay's own whiteout: a 0:0 character device, mode 0.
                rustix::fs::mknodat(
                    dir.as_fd(),
                    name,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    0,
                )
                .map_err(EntryError::io("create whiteout device"))?;
                // Keep the entry's time so that exporting the diff again gives the same tar.
                let times = rustix::fs::Timestamps {
                    last_access: meta.mtime,
                    last_modification: meta.mtime,
                };
                rustix::fs::utimensat(dir.as_fd(), name, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(EntryError::io("set whiteout time"))?;
                self.whiteouts.insert(hidden.key());
                Ok(())
            }
            Target::Apply => {
                remove_at(dir.as_fd(), name).map_err(|source| EntryError::Io {
                    op: "remove whited-out path",
                    source,
                })?;
                self.root.invalidate();
                Ok(())
            }
        }
    }

    /// Apply mode: remove everything under `path` that this layer did not write.
    fn hide_lower(&mut self, path: &EntryPath) -> Result<(), EntryError> {
        let dir = self.root.dir(path.comps())?;
        let fd = rustix::fs::openat(
            dir.as_fd(),
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(EntryError::io("open directory"))?;
        let names = list_dir(fd.as_fd()).map_err(|source| EntryError::Io {
            op: "list directory",
            source,
        })?;
        for name in names {
            let child = path.child(&name);
            if self.root.created.contains(&child.key()) {
                if is_dir(fd.as_fd(), &name) {
                    self.hide_lower(&child)?;
                }
            } else {
                remove_at(fd.as_fd(), &name).map_err(|source| EntryError::Io {
                    op: "remove lower content of opaque directory",
                    source,
                })?;
                self.root.invalidate();
            }
        }
        Ok(())
    }
}

fn is_dir(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
        .unwrap_or(false)
}
