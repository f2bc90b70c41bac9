//! Writing selected source trees into the destination root with fsutil's `cp -a` rules.
//!
//! Every write goes through directory fds opened without following symlinks, below a
//! destination path resolved inside the root, so nothing is ever written outside it.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};

use super::chmod::Chmod;
use super::{CopyError, CopyStats};
use crate::inputs::context::tree::{self, Entry, Kind, Meta, Time};
use crate::inputs::context::{SourceTree, WalkFilter};
use crate::rootfs::path::{self as rootpath, Owner, Root};

/// Options shared by every source of one COPY.
pub struct Copier<'a> {
    pub dest: &'a Root,
    pub owner: Option<Owner>,
    pub chmod: Option<&'a Chmod>,
    pub stats: CopyStats,
    /// Directories created for the destination (0755, `--chown` owner).
    pub dir_mode: u32,
}

fn io_at(path: &Path, source: io::Error) -> CopyError {
    CopyError::Io {
        path: format!("/{}", path.display()),
        source,
    }
}

fn ts(t: Time) -> Timespec {
    Timespec {
        tv_sec: t.sec,
        tv_nsec: i64::from(t.nsec),
    }
}

fn times(m: &Meta) -> Timestamps {
    Timestamps {
        last_access: ts(m.mtime),
        last_modification: ts(m.mtime),
    }
}

/// Where one selected source lands.
pub struct Placement {
    /// Resolved destination (relative to the dest root) of the source itself.
    pub dest: PathBuf,
    /// Is the source a directory (its contents merge into `dest`)?
    pub dir: bool,
}

impl Copier<'_> {
    /// Resolve `dest` (absolute inside the root) with all symlinks followed.
    pub fn resolve(&self, dest: &str) -> Result<rootpath::Resolved, CopyError> {
        rootpath::resolve(self.dest.fd(), dest.as_bytes(), true, &|_| true).map_err(|e| {
            CopyError::Dest {
                path: dest.to_string(),
                message: e.to_string(),
            }
        })
    }

    /// `mkdir -p` inside the root with the destination's directory mode and owner.
    pub fn mkdir_all(&self, rel: &Path) -> Result<OwnedFd, CopyError> {
        rootpath::mkdir_all(self.dest.fd(), rel, self.dir_mode, self.owner)
            .map(|(fd, _)| fd)
            .map_err(|e| io_at(rel, e))
    }

    /// BuildKit's `prepareTargetDir`: a non-directory source into an existing directory lands
    /// inside it under its own name; a directory source creates `dest` when missing.
    pub fn place(
        &self,
        dest: &str,
        src_name: &OsStr,
        src_is_dir: bool,
    ) -> Result<Placement, CopyError> {
        let r = self.resolve(dest)?;
        let existing = if r.exists {
            Some(tree::stat_at(self.dest.fd(), r.rel.as_os_str()).map_err(|e| io_at(&r.rel, e))?)
        } else {
            None
        };
        let mut target = r.rel.clone();
        if !src_is_dir && existing.is_some_and(|m| m.is_dir()) && !src_name.is_empty() {
            target = target.join(src_name);
        }
        let parent = if src_is_dir && existing.is_none() {
            target.clone()
        } else {
            rootpath::split_parent(&target).0
        };
        self.mkdir_all(&parent)?;
        Ok(Placement {
            dest: target,
            dir: src_is_dir,
        })
    }

    /// Copy the walk `entries` of `src` (rooted at `base` in the source tree) to `place`.
    pub fn copy_entries(
        &mut self,
        src: &SourceTree,
        base: &Path,
        entries: &[Entry],
        place: &Placement,
    ) -> Result<(), CopyError> {
        let Some(top) = entries.first() else {
            return Ok(());
        };
        let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
        if !top.meta.is_dir() {
            let (parent, name) = rootpath::split_parent(&place.dest);
            let name = name.ok_or_else(|| CopyError::Dest {
                path: "/".into(),
                message: "cannot replace the root directory with a file".into(),
            })?;
            let pfd = rootpath::open_dir(self.dest.fd(), &parent).map_err(|e| io_at(&parent, e))?;
            return self.write_leaf(src, base, top, &pfd, &name, &place.dest, &mut links);
        }
        // The destination directory: it exists now; BuildKit keeps its mode and owner and
        // gives it the source directory's times (after its contents are written).
        let top_fd = match rootpath::open_dir(self.dest.fd(), &place.dest) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
                return Err(CopyError::Dest {
                    path: format!("/{}", place.dest.display()),
                    message: "cannot copy a directory to a non-directory".into(),
                });
            }
            Err(e) => return Err(io_at(&place.dest, e)),
        };
        // Open directories by depth, with the times to give each when it is finished.
        let mut stack: Vec<(OwnedFd, PathBuf, Meta)> = vec![(top_fd, place.dest.clone(), top.meta)];
        for e in &entries[1..] {
            let depth = e.depth();
            while stack.len() > depth {
                if let Some((fd, _, m)) = stack.pop() {
                    set_times_fd(&fd, &m);
                }
            }
            let Some((pfd, prel, _)) = stack.last() else {
                break;
            };
            let name = e.rel.file_name().unwrap_or_default().to_os_string();
            let drel = prel.join(&name);
            if e.meta.is_dir() {
                let fd = self.write_dir(pfd, &name, &drel, &e.meta)?;
                stack.push((fd, drel, e.meta));
            } else {
                self.write_leaf(src, base, e, pfd, &name, &drel, &mut links)?;
            }
        }
        while let Some((fd, _, m)) = stack.pop() {
            set_times_fd(&fd, &m);
        }
        Ok(())
    }

    fn owner_of(&self, m: &Meta) -> (u32, u32) {
        match self.owner {
            Some(o) => (o.uid, o.gid),
            None => (m.uid, m.gid),
        }
    }

    fn mode_of(&self, m: &Meta) -> u32 {
        match self.chmod {
            Some(c) => c.apply(m.mode, m.is_dir()),
            None => m.mode,
        }
    }

    fn write_dir(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        drel: &Path,
        m: &Meta,
    ) -> Result<OwnedFd, CopyError> {
        match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(io_at(drel, e.into())),
        }
        let fd = rootpath::open_child_dir(parent, name).map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
                || e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
            {
                CopyError::Dest {
                    path: format!("/{}", drel.display()),
                    message: "cannot copy to non-directory".into(),
                }
            } else {
                io_at(drel, e)
            }
        })?;
        let (uid, gid) = self.owner_of(m);
        rootpath::chown_fd(&fd, uid, gid).map_err(|e| io_at(drel, e))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(self.mode_of(m)))
            .map_err(|e| io_at(drel, e.into()))?;
        self.stats.dirs += 1;
        Ok(fd)
    }

    /// Make room for a non-directory: an existing non-directory is replaced, a directory is
    /// an error (fsutil's `ensureEmptyFileTarget`).
    fn clear_target(&self, parent: &OwnedFd, name: &OsStr, drel: &Path) -> Result<(), CopyError> {
        match tree::stat_at(parent, name) {
            Ok(m) if m.is_dir() => Err(CopyError::Dest {
                path: format!("/{}", drel.display()),
                message: "cannot replace a directory with a file".into(),
            }),
            Ok(_) => rustix::fs::unlinkat(parent, name, AtFlags::empty())
                .map_err(|e| io_at(drel, e.into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_at(drel, e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write_leaf(
        &mut self,
        src: &SourceTree,
        base: &Path,
        e: &Entry,
        parent: &OwnedFd,
        name: &OsStr,
        drel: &Path,
        links: &mut HashMap<(u64, u64), PathBuf>,
    ) -> Result<(), CopyError> {
        let m = &e.meta;
        // As dockerd 20.10's BuildKit copies special files: FIFOs and sockets are left out,
        // a device node becomes an empty regular file (BuildKit reads the device; kiln never
        // opens one).
        if matches!(m.kind, Kind::Fifo | Kind::Socket) {
            return Ok(());
        }
        self.clear_target(parent, name, drel)?;
        let (uid, gid) = self.owner_of(m);
        match m.kind {
            Kind::CharDev | Kind::BlockDev => {
                let dfd = create_file(parent, name, drel)?;
                rootpath::chown_fd(&dfd, uid, gid).map_err(|err| io_at(drel, err))?;
                rustix::fs::fchmod(&dfd, Mode::from_raw_mode(self.mode_of(m)))
                    .map_err(|err| io_at(drel, err.into()))?;
                set_times_fd(&dfd, m);
                self.stats.files += 1;
            }
            Kind::File => {
                if m.nlink > 1 {
                    if let Some(first) = links.get(&(m.dev, m.ino)) {
                        rustix::fs::linkat(
                            self.dest.fd(),
                            first.as_path(),
                            parent,
                            name,
                            AtFlags::empty(),
                        )
                        .map_err(|err| io_at(drel, err.into()))?;
                        self.stats.hardlinks += 1;
                        return Ok(());
                    }
                    links.insert((m.dev, m.ino), drel.to_path_buf());
                }
                let srel = join_rel(base, &e.rel);
                let sfd = src.open_file(&srel)?;
                let dfd = create_file(parent, name, drel)?;
                let mut from = std::fs::File::from(sfd);
                let mut to = std::fs::File::from(dfd);
                let n = io::copy(&mut from, &mut to).map_err(|err| io_at(drel, err))?;
                self.stats.bytes += n;
                self.stats.files += 1;
                let dfd = OwnedFd::from(to);
                rootpath::chown_fd(&dfd, uid, gid).map_err(|err| io_at(drel, err))?;
                rustix::fs::fchmod(&dfd, Mode::from_raw_mode(self.mode_of(m)))
                    .map_err(|err| io_at(drel, err.into()))?;
                copy_xattrs(&OwnedFd::from(from), &dfd);
                set_times_fd(&dfd, m);
            }
            Kind::Symlink => {
                let target = e.link.clone().unwrap_or_default();
                rustix::fs::symlinkat(target.as_os_str(), parent, name)
                    .map_err(|err| io_at(drel, err.into()))?;
                rootpath::lchown_at(parent, name, uid, gid).map_err(|err| io_at(drel, err))?;
                let _ = rustix::fs::utimensat(parent, name, &times(m), AtFlags::SYMLINK_NOFOLLOW);
                self.stats.symlinks += 1;
            }
            Kind::Fifo | Kind::Socket | Kind::Dir => {}
        }
        Ok(())
    }

    /// Copy one selected tree (a `Selected::Path` or `Selected::Parents`) into `dest`.
    pub fn copy_tree(
        &mut self,
        src: &SourceTree,
        base: &Path,
        filter: &WalkFilter<'_>,
        dest: &str,
        src_name: &OsStr,
    ) -> Result<(), CopyError> {
        let entries = src.walk(base, filter)?;
        let Some(top) = entries.first() else {
            return Ok(());
        };
        let place = self.place(dest, src_name, top.meta.is_dir())?;
        self.copy_entries(src, base, &entries, &place)
    }
}

fn join_rel(base: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        base.to_path_buf()
    } else if base.as_os_str().is_empty() {
        rel.to_path_buf()
    } else {
        base.join(rel)
    }
}

fn set_times_fd(fd: &OwnedFd, m: &Meta) {
    // Times are best effort, as in fsutil for directories restored after their contents.
    let _ = rustix::fs::futimens(fd, &times(m));
}

/// Copy extended attributes (file capabilities, ACLs) best effort, as BuildKit does; overlay's
/// private attributes never travel.
/// A new regular file `name` in `parent` (never through a symlink, never over an entry that
/// is there), private until its owner and mode are set.
fn create_file(parent: &OwnedFd, name: &OsStr, drel: &Path) -> Result<OwnedFd, CopyError> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|err| io_at(drel, err.into()))
}

fn copy_xattrs(from: &OwnedFd, to: &OwnedFd) {
    for (name, value) in crate::inputs::context::tree::file_xattrs(from) {
        let _ = rustix::fs::fsetxattr(
            to.as_fd(),
            OsStr::from_bytes(&name),
            &value,
            rustix::fs::XattrFlags::empty(),
        );
    }
}

/// The last component of a cleaned relative path (empty for the root).
pub fn base_name(p: &Path) -> OsString {
    p.file_name().map(OsStr::to_os_string).unwrap_or_default()
}
