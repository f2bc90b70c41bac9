//! Paths resolved inside a root directory, as if the root were `/`.
//!
//! Build containers, stage roots and the build context are all directory trees whose symlinks
//! must never lead outside them: an absolute link target is re-rooted at the root, and `..`
//! stops at the root (the semantics of `openat2(RESOLVE_IN_ROOT)` and containerd's
//! `fs.RootPath`). Resolution walks one component at a time with `lstat`/`readlink` relative
//! to the root's directory fd, so a visibility filter (the build context's `.dockerignore`)
//! can hide entries on the way. Files are then opened with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`, so a tree changed between resolution and use makes the open fail
//! instead of escaping.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, StatxFlags};

/// Most symlinks followed while resolving one path (Linux allows 40; containerd 255).
const MAX_SYMLINKS: usize = 255;

/// A directory opened as the root of path resolution.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Open `path` (a directory; symlinks in `path` itself are followed by the host).
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Use an already open directory as a root.
    pub fn from_fd(fd: OwnedFd, path: PathBuf) -> Root {
        Root { fd, path }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The host path the root was opened from (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Host path of a resolved relative path (for messages and read-only helpers).
    pub fn host_path(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }
}

/// The result of [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Relative to the root, no symlinks (up to `missing_from`), no `.`/`..`; empty = the root.
    pub rel: PathBuf,
    /// Does the whole path exist (and is it visible)?
    pub exists: bool,
}

/// Why a path could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("too many levels of symbolic links resolving {path:?}")]
    Loop { path: String },
    #[error("{path:?}: a component before {component:?} is not a directory")]
    NotDir { path: String, component: String },
    #[error("resolving {path:?}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Split `p` into clean components as `path.Clean("/" + p)` would, `..` clamped at the root.
pub fn clean_components(p: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in p.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Clean `p` to a relative path (no leading `/`, no `.`/`..`); "" means the root.
pub fn clean_rel(p: &str) -> String {
    let comps = clean_components(p.as_bytes());
    let joined: Vec<u8> = comps.join(&b'/');
    String::from_utf8(joined).unwrap_or_default()
}

/// Resolve `path` inside `root`. Every symlink met is followed inside the root; the final
/// component is followed only if `follow_final`. `visible(rel)` may hide existing entries
/// (they then resolve as missing). A missing component ends resolution: the rest is appended
/// lexically and `exists` is false.
pub fn resolve(
    root: BorrowedFd<'_>,
    path: &[u8],
    follow_final: bool,
    visible: &dyn Fn(&Path) -> bool,
) -> Result<Resolved, ResolveError> {
    let shown = || String::from_utf8_lossy(path).into_owned();
    let mut todo: VecDeque<Vec<u8>> = path
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut links = 0usize;
    while let Some(comp) = todo.pop_front() {
        match comp.as_slice() {
            b"." => continue,
            b".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        done.push(comp);
        let rel = join(&done);
        let st = match rustix::fs::statx(
            root,
            rel.as_path(),
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::TYPE,
        ) {
            Ok(st) => Some(st),
            Err(rustix::io::Errno::NOENT) => None,
            Err(rustix::io::Errno::NOTDIR) => {
                return Err(ResolveError::NotDir {
                    path: shown(),
                    component: String::from_utf8_lossy(done.last().map_or(&[][..], |c| c))
                        .into_owned(),
                });
            }
            Err(e) => {
                return Err(ResolveError::Io {
                    path: shown(),
                    source: e.into(),
                });
            }
        };
        let st = match st {
            Some(st) if visible(&rel) => st,
            _ => {
                // Missing: the remainder is appended lexically.
                for c in todo.drain(..) {
                    match c.as_slice() {
                        b"." => {}
                        b".." => {
                            done.pop();
                        }
                        _ => done.push(c),
                    }
                }
                return Ok(Resolved {
                    rel: join(&done),
                    exists: false,
                });
            }
        };
        let kind = FileType::from_raw_mode(u32::from(st.stx_mode));
        if kind == FileType::Symlink && (follow_final || !todo.is_empty()) {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(ResolveError::Loop { path: shown() });
            }
            let target = rustix::fs::readlinkat(root, rel.as_path(), Vec::new()).map_err(|e| {
                ResolveError::Io {
                    path: shown(),
                    source: e.into(),
                }
            })?;
            let target = target.into_bytes();
            done.pop();
            if target.first() == Some(&b'/') {
                done.clear();
            }
            for c in target.split(|b| *b == b'/').rev() {
                if !c.is_empty() {
                    todo.push_front(c.to_vec());
                }
            }
        } else if kind != FileType::Directory && !todo.is_empty() {
            // A file in the middle of a path: only `..`/`.` could follow legally, but Linux
            // refuses those too (ENOTDIR).
            return Err(ResolveError::NotDir {
                path: shown(),
                component: String::from_utf8_lossy(&done[done.len() - 1]).into_owned(),
            });
        }
    }
    Ok(Resolved {
        rel: join(&done),
        exists: true,
    })
}

fn join(comps: &[Vec<u8>]) -> PathBuf {
    PathBuf::from(OsString::from_vec(comps.join(&b'/')))
}

fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

fn dot(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

/// Open the directory `rel` (already resolved: no symlinks) beneath `root`.
pub fn open_dir(root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat2(
        root,
        dot(rel),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        beneath(),
    )?)
}

/// Open the regular file `rel` (already resolved) beneath `root` for reading.
pub fn open_file(root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat2(
        root,
        dot(rel),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
        beneath(),
    )?)
}

/// Split a resolved relative path into its parent and its final name.
pub fn split_parent(rel: &Path) -> (PathBuf, Option<OsString>) {
    let b = rel.as_os_str().as_bytes();
    match b.iter().rposition(|c| *c == b'/') {
        Some(i) => (
            PathBuf::from(OsStr::from_bytes(&b[..i])),
            Some(OsStr::from_bytes(&b[i + 1..]).to_os_string()),
        ),
        None if b.is_empty() => (PathBuf::new(), None),
        None => (PathBuf::new(), Some(rel.as_os_str().to_os_string())),
    }
}

/// Ownership applied to directories `mkdir_all` creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Create the directory `rel` and its missing parents beneath `root`, each with `mode`
/// (umask ignored) and `owner`. Existing directories are left as they are; a non-directory
/// in the way is an error. Symlinks are never followed (resolve the path first). Returns the
/// directory's fd and the relative paths created, parents first.
pub fn mkdir_all(
    root: BorrowedFd<'_>,
    rel: &Path,
    mode: u32,
    owner: Option<Owner>,
) -> io::Result<(OwnedFd, Vec<PathBuf>)> {
    let mut created = Vec::new();
    let mut fd = open_dir(root, Path::new(""))?;
    let mut sofar = PathBuf::new();
    for comp in clean_components(rel.as_os_str().as_bytes()) {
        let name = OsStr::from_bytes(comp);
        sofar.push(name);
        match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(mode & 0o7777)) {
            Ok(()) => {
                let child = open_child_dir(&fd, name)?;
                // mkdir applies the umask; set the exact mode, then the owner.
                rustix::fs::fchmod(&child, Mode::from_raw_mode(mode & 0o7777))?;
                if let Some(o) = owner {
                    chown_fd(&child, o.uid, o.gid)?;
                    // chown clears setuid/setgid bits; restore them.
                    rustix::fs::fchmod(&child, Mode::from_raw_mode(mode & 0o7777))?;
                }
                created.push(sofar.clone());
                fd = child;
            }
            Err(rustix::io::Errno::EXIST) => {
                fd = open_child_dir(&fd, name).map_err(|e| {
                    if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
                        || e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
                    {
                        io::Error::new(
                            io::ErrorKind::NotADirectory,
                            format!("{} exists and is not a directory", sofar.display()),
                        )
                    } else {
                        e
                    }
                })?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((fd, created))
}

/// Open the directory `name` inside `dir` without following a symlink.
pub fn open_child_dir(dir: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )?)
}

/// `fchown` with plain ids.
pub fn chown_fd(fd: &OwnedFd, uid: u32, gid: u32) -> io::Result<()> {
    let (u, g) = ids(uid, gid)?;
    Ok(rustix::fs::fchown(fd, Some(u), Some(g))?)
}

/// `fchownat(dir, name, AT_SYMLINK_NOFOLLOW)` with plain ids.
pub fn lchown_at(dir: &OwnedFd, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
    let (u, g) = ids(uid, gid)?;
    Ok(rustix::fs::chownat(
        dir,
        name,
        Some(u),
        Some(g),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// `-1` means "leave unchanged" to chown(2): refuse it as an id.
fn ids(uid: u32, gid: u32) -> io::Result<(rustix::fs::Uid, rustix::fs::Gid)> {
    if uid == u32::MAX || gid == u32::MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid owner {uid}:{gid}"),
        ));
    }
    Ok((
        rustix::fs::Uid::from_raw(uid),
        rustix::fs::Gid::from_raw(gid),
    ))
}

/// Names in a directory (no `.`/`..`), sorted bytewise.
pub fn read_names(fd: &OwnedFd) -> io::Result<Vec<OsString>> {
    let mut dir = rustix::fs::Dir::read_from(fd)?;
    let mut names = Vec::new();
    while let Some(ent) = dir.read() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        names.push(OsStr::from_bytes(n).to_os_string());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Whether `name` in `dir` is a directory (not following a symlink).
pub fn is_dir_at(dir: impl AsFd, name: &OsStr) -> io::Result<bool> {
    let st = rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::TYPE)?;
    Ok(FileType::from_raw_mode(st.stx_mode as _) == FileType::Directory)
}
