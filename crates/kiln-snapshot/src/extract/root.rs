//! Resolving entry paths inside the extraction root without ever leaving it.
//!
//! Each parent component is opened relative to the one before with `O_NOFOLLOW`, so a symlink
//! is noticed instead of followed, and `..` never reaches the kernel (names are cleaned first).
//! A symlink in a parent is refused when this layer made it (a tar that writes through its own
//! symlink is the classic breakout) or when extracting a diff; when applying onto a merged
//! rootfs, a symlink left by a lower layer is followed with `openat2(RESOLVE_IN_ROOT)`, which
//! resolves it as if the root were `/` (what Docker and containerd do in a chroot).

use crate::error::{EntryError, Result, io_err};
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::HashSet;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// What the extraction produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// An overlay-form diff directory (whiteouts become 0:0 char devices).
    Diff,
    /// A merged root file system (whiteouts delete).
    Apply,
}

pub(crate) struct Root {
    fd: OwnedFd,
    pub(crate) target: Target,
    /// Every path this layer created, explicit entries and implied parents alike.
    pub(crate) created: HashSet<PathBuf>,
    cache: Option<(Vec<OsString>, Rc<OwnedFd>)>,
}

/// Most nested symlink targets made while resolving one parent (Linux follows 40 links).
const MAX_LINK_DEPTH: usize = 40;

const DIR_PATH: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Root {
    pub(crate) fn open(dest: &Path, target: Target) -> Result<Root> {
        let fd = rustix::fs::openat(
            CWD,
            dest,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err("open extraction root", dest)(e.into()))?;
        Ok(Root {
            fd,
            target,
            created: HashSet::new(),
            cache: None,
        })
    }

    /// Forget the cached parent: call after removing anything, since the cached directory
    /// may be gone.
    pub(crate) fn invalidate(&mut self) {
        self.cache = None;
    }

    /// An `O_PATH` descriptor of the directory `comps`, creating missing directories (mode
    /// 0755, owned by the caller) as tar extractors do for entries whose parents are implied.
    pub(crate) fn dir(&mut self, comps: &[OsString]) -> Result<Rc<OwnedFd>, EntryError> {
        if let Some((c, fd)) = &self.cache
            && c.as_slice() == comps
        {
            return Ok(fd.clone());
        }
        // A creating walk yields a directory or an error; `None` cannot happen (no panic).
        let fd = self
            .walk(comps, true)?
            .ok_or_else(|| EntryError::NotADirectory {
                component: comps
                    .iter()
                    .collect::<PathBuf>()
                    .to_string_lossy()
                    .into_owned(),
            })?;
        let fd = Rc::new(fd);
        self.cache = Some((comps.to_vec(), fd.clone()));
        Ok(fd)
    }

    /// Open the directory `comps` for reading (to set its metadata), without creating
    /// anything. `None` when it is no longer a directory reachable inside the root.
    pub(crate) fn open_existing_dir(
        &mut self,
        comps: &[OsString],
    ) -> Result<Option<OwnedFd>, EntryError> {
        let Some(dir) = self.walk(comps, false)? else {
            return Ok(None);
        };
        match rustix::fs::openat(
            &dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) => Err(EntryError::io("open directory")(e)),
        }
    }

    fn walk(&mut self, comps: &[OsString], create: bool) -> Result<Option<OwnedFd>, EntryError> {
        self.walk_at(comps, create, 0)
    }

    fn walk_at(
        &mut self,
        comps: &[OsString],
        create: bool,
        depth: usize,
    ) -> Result<Option<OwnedFd>, EntryError> {
        let mut cur = rustix::fs::openat(&self.fd, ".", DIR_PATH, Mode::empty())
            .map_err(EntryError::io("open root"))?;
        for (i, c) in comps.iter().enumerate() {
            cur = match rustix::fs::openat(&cur, c, DIR_PATH, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&cur, c, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(EntryError::io("create parent directory")(e)),
                    }
                    self.created.insert(comps[..=i].iter().collect());
                    rustix::fs::openat(&cur, c, DIR_PATH, Mode::empty())
                        .map_err(EntryError::io("open parent directory"))?
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                    let st = rustix::fs::statat(&cur, c, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(EntryError::io("stat parent"))?;
                    let prefix = &comps[..=i];
                    let shown = || {
                        prefix
                            .iter()
                            .collect::<PathBuf>()
                            .to_string_lossy()
                            .into_owned()
                    };
                    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                        if !create {
                            return Ok(None);
                        }
                        return Err(EntryError::NotADirectory { component: shown() });
                    }
                    let ours = self.created.contains(&prefix.iter().collect::<PathBuf>());
                    if self.target == Target::Diff || ours {
                        if !create {
                            return Ok(None);
                        }
                        return Err(EntryError::ThroughSymlink { component: shown() });
                    }
                    let rel: PathBuf = prefix.iter().collect();
                    let open_in_root = |fd: &OwnedFd| {
                        rustix::fs::openat2(
                            fd,
                            &rel,
                            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                            Mode::empty(),
                            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                        )
                    };
                    let mut opened = open_in_root(&self.fd);
                    if matches!(opened, Err(Errno::NOENT)) && create && depth < MAX_LINK_DEPTH {
                        // A lower layer's symlink to a directory that does not exist (yet):
                        // make its target, inside the root, as a chroot'ed `mkdir -p` would
                        // (containerd's MkdirAll under RootPath), then go through it.
                        let target = rustix::fs::readlinkat(&cur, c, Vec::new())
                            .map_err(EntryError::io("read symlinked parent"))?;
                        let target = target.as_bytes();
                        let mut t: Vec<OsString> = if target.first() == Some(&b'/') {
                            Vec::new()
                        } else {
                            comps[..i].to_vec()
                        };
                        for part in target.split(|b| *b == b'/') {
                            match part {
                                b"" | b"." => {}
                                b".." => {
                                    t.pop();
                                }
                                p => t.push(std::ffi::OsStr::from_bytes(p).to_os_string()),
                            }
                        }
                        self.walk_at(&t, true, depth + 1)?;
                        opened = open_in_root(&self.fd);
                    }
                    match opened {
                        Ok(fd) => fd,
                        Err(_) if !create => return Ok(None),
                        Err(e) => {
                            return Err(
                                EntryError::io("resolve symlinked parent inside the root")(e),
                            );
                        }
                    }
                }
                Err(e) => return Err(EntryError::io("open parent directory")(e)),
            };
        }
        Ok(Some(cur))
    }
}
