//! A source tree (the build context or another stage's root): metadata, filtered walks and
//! the expansion of COPY/ADD source patterns into what gets copied.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use kiln_dockerfile::dockerignore::PatternSet;
use rustix::fs::{AtFlags, FileType, StatxFlags};

use super::ContextError;
use super::glob::{self, Pattern};
pub use crate::rootfs::path::read_names;
use crate::rootfs::path::{self as rootpath, Root};

/// The type of a file system entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDev,
    BlockDev,
    Socket,
}

/// A timestamp as the kernel keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Time {
    pub sec: i64,
    pub nsec: u32,
}

impl Time {
    pub fn as_nanos(self) -> i128 {
        i128::from(self.sec) * 1_000_000_000 + i128::from(self.nsec)
    }
}

/// What a walk or a stat reports about one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Permission and setuid/setgid/sticky bits (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u32,
    pub dev: u64,
    pub ino: u64,
    pub rdev: u64,
    pub atime: Time,
    pub mtime: Time,
    pub ctime: Time,
}

impl Meta {
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    fn from_statx(st: &rustix::fs::Statx) -> Meta {
        let mode = u32::from(st.stx_mode);
        let kind = match FileType::from_raw_mode(mode) {
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::Fifo => Kind::Fifo,
            FileType::CharacterDevice => Kind::CharDev,
            FileType::BlockDevice => Kind::BlockDev,
            FileType::Socket => Kind::Socket,
            _ => Kind::File,
        };
        let t = |ts: rustix::fs::StatxTimestamp| Time {
            sec: ts.tv_sec,
            nsec: ts.tv_nsec,
        };
        Meta {
            kind,
            mode: mode & 0o7777,
            uid: st.stx_uid,
            gid: st.stx_gid,
            size: st.stx_size,
            nlink: st.stx_nlink,
            dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            rdev: rustix::fs::makedev(st.stx_rdev_major, st.stx_rdev_minor),
            atime: t(st.stx_atime),
            mtime: t(st.stx_mtime),
            ctime: t(st.stx_ctime),
        }
    }
}

/// `lstat` of `name` relative to `dir`.
pub fn stat_at(dir: impl AsFd, name: &OsStr) -> io::Result<Meta> {
    let name: &OsStr = if name.is_empty() {
        OsStr::new(".")
    } else {
        name
    };
    let st = rustix::fs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    )?;
    Ok(Meta::from_statx(&st))
}

/// A file's extended attributes as (name, value), in the kernel's order, without overlayfs's
/// own (`trusted.overlay.*`, `user.overlay.*`), which belong to the snapshot, not the file.
/// What a COPY carries into the layer and what its content key covers.
pub fn file_xattrs(fd: impl AsFd) -> Vec<(Vec<u8>, Vec<u8>)> {
    let fd = fd.as_fd();
    let mut list = vec![0u8; 64 * 1024];
    let Ok(n) = rustix::fs::flistxattr(fd, &mut list[..]) else {
        return Vec::new();
    };
    let mut value = vec![0u8; 64 * 1024];
    list[..n]
        .split(|b| *b == 0)
        .filter(|n| {
            !n.is_empty() && !n.starts_with(b"trusted.overlay.") && !n.starts_with(b"user.overlay.")
        })
        .filter_map(|name| {
            let len = rustix::fs::fgetxattr(fd, OsStr::from_bytes(name), &mut value[..]).ok()?;
            Some((name.to_vec(), value[..len].to_vec()))
        })
        .collect()
}

/// `fstat` of an open fd.
pub fn stat_fd(fd: impl AsFd) -> io::Result<Meta> {
    let st = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)?;
    Ok(Meta::from_statx(&st))
}

/// One entry of a walk.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative to the walk's base; empty for the base itself.
    pub rel: PathBuf,
    pub meta: Meta,
    /// The target of a symlink.
    pub link: Option<OsString>,
}

impl Entry {
    pub fn depth(&self) -> usize {
        if self.rel.as_os_str().is_empty() {
            0
        } else {
            self.rel
                .as_os_str()
                .as_bytes()
                .split(|b| *b == b'/')
                .count()
        }
    }
}

/// Filters applied while walking below a selected source.
#[derive(Default, Clone, Copy)]
pub struct WalkFilter<'a> {
    /// `COPY --exclude`, matched against paths relative to the walk base.
    pub exclude: Option<&'a PatternSet>,
    /// `COPY --parents` include pattern, matched against paths relative to the walk base.
    pub include: Option<&'a PatternSet>,
    /// Literal leading components of the include pattern: at depth `d` only the entry named
    /// `restrict[d]` can hold matches, so nothing else is read.
    pub restrict: &'a [OsString],
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Decision {
    Include,
    /// Excluded, but an exception may re-include something below: walk it and keep it only
    /// as the parent of what is kept.
    Descend,
    Skip,
}

/// A subdirectory's walk: whether anything below was kept, and its entries.
type SubWalk = Result<(bool, Vec<Entry>), ContextError>;

/// What one COPY/ADD source selects.
#[derive(Debug, Clone)]
pub enum Selected {
    /// One path, copied as BuildKit copies a source: a directory's contents, a file, the
    /// target of a symlink named directly.
    Path {
        /// The path as named (cleaned, relative to the root): gives the destination its name.
        requested: PathBuf,
        /// Where it resolved to, the final symlink followed.
        resolved: PathBuf,
        meta: Meta,
    },
    /// `COPY --parents`: the tree below `base`, filtered by `include`, keeping the paths
    /// relative to `base`.
    Parents {
        base: PathBuf,
        include: PatternSet,
        include_text: String,
        restrict: Vec<OsString>,
    },
}

/// A directory tree sources are read from: the build context (with its `.dockerignore`,
/// owners reported as 0:0 as BuildKit's context transfer does) or a stage's root.
#[derive(Debug)]
pub struct SourceTree {
    root: Root,
    ignore: Option<PatternSet>,
    reset_owner: bool,
}

fn lossy(p: &Path) -> std::borrow::Cow<'_, str> {
    p.as_os_str().to_string_lossy()
}

fn join(base: &Path, name: &OsStr) -> PathBuf {
    if base.as_os_str().is_empty() {
        PathBuf::from(name)
    } else {
        base.join(name)
    }
}

impl SourceTree {
    /// A stage root: nothing hidden, owners kept.
    pub fn open_dir(path: &Path) -> Result<SourceTree, ContextError> {
        // Host paths derived from the tree (bind mount sources, messages) must not depend on
        // the working directory: `kiln build .` gives a relative path, and the runtime takes
        // only absolute bind sources.
        let path = &std::path::absolute(path).map_err(|source| ContextError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let root = Root::open(path).map_err(|source| ContextError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(SourceTree {
            root,
            ignore: None,
            reset_owner: false,
        })
    }

    /// The build context: `ignore` hides entries, owners read as 0:0.
    pub fn open_context(path: &Path, ignore: PatternSet) -> Result<SourceTree, ContextError> {
        let mut t = SourceTree::open_dir(path)?;
        t.ignore = (!ignore.is_empty()).then_some(ignore);
        t.reset_owner = true;
        Ok(t)
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    fn io_err(&self, rel: &Path, source: io::Error) -> ContextError {
        ContextError::Io {
            path: self.root.host_path(rel),
            source,
        }
    }

    fn fix_owner(&self, mut m: Meta) -> Meta {
        if self.reset_owner {
            m.uid = 0;
            m.gid = 0;
        }
        m
    }

    /// `lstat` of a resolved relative path.
    pub fn stat(&self, rel: &Path) -> Result<Meta, ContextError> {
        stat_at(self.root.fd(), rel.as_os_str())
            .map(|m| self.fix_owner(m))
            .map_err(|e| self.io_err(rel, e))
    }

    /// Is the entry at `rel` (relative to the root) hidden by `.dockerignore`? A directory
    /// that is excluded stays visible when an exception re-includes something below it.
    pub fn is_hidden(&self, rel: &Path) -> bool {
        let Some(ig) = &self.ignore else {
            return false;
        };
        let s = lossy(rel);
        if s.is_empty() || !ig.is_excluded(&s) {
            return false;
        }
        if ig.can_skip_dir(&s) {
            return true;
        }
        match stat_at(self.root.fd(), rel.as_os_str()) {
            Ok(m) if m.is_dir() => !self.has_visible_below(rel),
            _ => true,
        }
    }

    fn has_visible_below(&self, dir: &Path) -> bool {
        let Ok(fd) = rootpath::open_dir(self.root.fd(), dir) else {
            return false;
        };
        let Ok(names) = read_names(&fd) else {
            return false;
        };
        names.iter().any(|n| {
            let rel = join(dir, n);
            !self.is_hidden(&rel)
        })
    }

    /// Resolve `path` inside the tree (symlinks followed in the root, hidden entries absent).
    pub fn resolve(
        &self,
        path: &str,
        follow_final: bool,
    ) -> Result<rootpath::Resolved, ContextError> {
        let visible = |rel: &Path| !self.is_hidden(rel);
        Ok(rootpath::resolve(
            self.root.fd(),
            path.as_bytes(),
            follow_final,
            &visible,
        )?)
    }

    /// Open a resolved regular file for reading.
    pub fn open_file(&self, rel: &Path) -> Result<OwnedFd, ContextError> {
        rootpath::open_file(self.root.fd(), rel).map_err(|e| self.io_err(rel, e))
    }

    /// Walk `base` (resolved, relative to the root) in pre-order, names sorted bytewise as Go's
    /// `filepath.Walk` does. A non-directory base yields just itself.
    pub fn walk(&self, base: &Path, filter: &WalkFilter<'_>) -> Result<Vec<Entry>, ContextError> {
        let meta = self.stat(base)?;
        let mut out = vec![Entry {
            rel: PathBuf::new(),
            meta,
            link: self.read_link_if(base, &meta)?,
        }];
        if meta.is_dir() {
            let fd = rootpath::open_dir(self.root.fd(), base).map_err(|e| self.io_err(base, e))?;
            self.walk_dir(&fd, base, Path::new(""), 0, filter, &mut out)?;
        }
        Ok(out)
    }

    fn read_link_if(&self, rel: &Path, meta: &Meta) -> Result<Option<OsString>, ContextError> {
        if meta.kind != Kind::Symlink {
            return Ok(None);
        }
        let t = rustix::fs::readlinkat(self.root.fd(), rel, Vec::new())
            .map_err(|e| self.io_err(rel, e.into()))?;
        Ok(Some(OsStr::from_bytes(t.as_bytes()).to_os_string()))
    }

    fn decide(&self, ctx_rel: &Path, rel: &Path, is_dir: bool, f: &WalkFilter<'_>) -> Decision {
        let mut d = Decision::Include;
        if let Some(ig) = &self.ignore {
            let s = lossy(ctx_rel);
            if ig.is_excluded(&s) {
                d = d.max(if is_dir && !ig.can_skip_dir(&s) {
                    Decision::Descend
                } else {
                    Decision::Skip
                });
            }
        }
        if d == Decision::Skip || (f.exclude.is_none() && f.include.is_none()) {
            return d;
        }
        let s = lossy(rel);
        if let Some(ex) = f.exclude
            && ex.is_excluded(&s)
        {
            d = d.max(if is_dir && !ex.can_skip_dir(&s) {
                Decision::Descend
            } else {
                Decision::Skip
            });
        }
        if let Some(inc) = f.include
            && !inc.is_excluded(&s)
        {
            d = d.max(if is_dir {
                Decision::Descend
            } else {
                Decision::Skip
            });
        }
        d
    }

    /// Returns whether anything was kept below `dir`. Subdirectories are walked in parallel
    /// (the walk is mostly `statx` calls, which scale with cores); the output keeps
    /// pre-order with names sorted.
    fn walk_dir(
        &self,
        fd: &OwnedFd,
        ctx_rel: &Path,
        rel: &Path,
        depth: usize,
        f: &WalkFilter<'_>,
        out: &mut Vec<Entry>,
    ) -> Result<bool, ContextError> {
        let names = read_names(fd).map_err(|e| self.io_err(ctx_rel, e))?;
        // This directory's own entries first, with the subdirectories to enter.
        let mut children: Vec<(Entry, Decision, Option<OsString>)> = Vec::new();
        for name in names {
            if let Some(only) = f.restrict.get(depth)
                && only != &name
            {
                continue;
            }
            let child_ctx = join(ctx_rel, &name);
            let child_rel = join(rel, &name);
            let meta = match stat_at(fd, &name) {
                Ok(m) => self.fix_owner(m),
                // Removed while walking: as if it never was.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io_err(&child_ctx, e)),
            };
            let decision = self.decide(&child_ctx, &child_rel, meta.is_dir(), f);
            if decision == Decision::Skip {
                continue;
            }
            let link = if meta.kind == Kind::Symlink {
                let t = rustix::fs::readlinkat(fd, name.as_os_str(), Vec::new())
                    .map_err(|e| self.io_err(&child_ctx, e.into()))?;
                Some(OsStr::from_bytes(t.as_bytes()).to_os_string())
            } else {
                None
            };
            let entry = Entry {
                rel: child_rel,
                meta,
                link,
            };
            children.push((entry, decision, meta.is_dir().then_some(name)));
        }
        let walk_sub = |entry: &Entry, decision: Decision, name: &OsStr| {
            let child_ctx = join(ctx_rel, name);
            let child_fd =
                rootpath::open_child_dir(fd, name).map_err(|e| self.io_err(&child_ctx, e))?;
            // Below an included directory the include pattern is satisfied (a pattern
            // matching a directory matches everything in it).
            let inner = if decision == Decision::Include && f.include.is_some() {
                WalkFilter {
                    include: None,
                    restrict: &[],
                    ..*f
                }
            } else {
                *f
            };
            let mut sub = Vec::new();
            let below = self.walk_dir(
                &child_fd,
                &child_ctx,
                &entry.rel,
                depth + 1,
                &inner,
                &mut sub,
            )?;
            Ok::<_, ContextError>((below, sub))
        };
        let dirs = children.iter().filter(|c| c.2.is_some()).count();
        let subs: Vec<Option<SubWalk>> = if dirs >= 2 {
            use rayon::prelude::*;
            children
                .par_iter()
                .map(|(e, d, n)| n.as_ref().map(|n| walk_sub(e, *d, n)))
                .collect()
        } else {
            children
                .iter()
                .map(|(e, d, n)| n.as_ref().map(|n| walk_sub(e, *d, n)))
                .collect()
        };
        let mut kept = false;
        for ((entry, decision, _), sub) in children.into_iter().zip(subs) {
            match sub {
                None => out.push(entry),
                Some(r) => {
                    let (below, sub) = r?;
                    if decision == Decision::Descend && !below {
                        continue;
                    }
                    out.push(entry);
                    out.extend(sub);
                }
            }
            kept = true;
        }
        Ok(kept)
    }

    /// What `.dockerignore` hides below the directory `base` (resolved, relative to the root),
    /// as the fewest paths (relative to `base`) to mask so that a view of `base` shows what
    /// COPY would see: a hidden directory with nothing re-included below is one path, never
    /// its contents. Only directories are read (their entries' types come from `readdir`),
    /// so a large context costs one `getdents` per directory and no `stat` per file.
    pub fn hidden_below(&self, base: &Path) -> Result<Vec<PathBuf>, ContextError> {
        let mut masks = Vec::new();
        if self.ignore.is_some() {
            let fd = rootpath::open_dir(self.root.fd(), base).map_err(|e| self.io_err(base, e))?;
            self.hidden_in(&fd, base, Path::new(""), &mut masks)?;
        }
        Ok(masks)
    }

    /// Appends the masks below `dir`; returns whether anything below it stays visible.
    fn hidden_in(
        &self,
        fd: &OwnedFd,
        ctx_rel: &Path,
        rel: &Path,
        masks: &mut Vec<PathBuf>,
    ) -> Result<bool, ContextError> {
        let Some(ig) = &self.ignore else {
            return Ok(true);
        };
        let mut visible = false;
        for (name, kind) in read_names_typed(fd).map_err(|e| self.io_err(ctx_rel, e))? {
            let child_ctx = join(ctx_rel, &name);
            let child_rel = join(rel, &name);
            let is_dir = match kind {
                FileType::Directory => true,
                FileType::Unknown => stat_at(fd, &name).is_ok_and(|m| m.is_dir()),
                _ => false,
            };
            let s = lossy(&child_ctx);
            let excluded = ig.is_excluded(&s);
            if !is_dir || (excluded && ig.can_skip_dir(&s)) {
                if excluded {
                    masks.push(child_rel);
                } else {
                    visible = true;
                }
                continue;
            }
            let child_fd = match rootpath::open_child_dir(fd, &name) {
                Ok(f) => f,
                // Removed while walking: as if it never was.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io_err(&child_ctx, e)),
            };
            let mark = masks.len();
            let below = self.hidden_in(&child_fd, &child_ctx, &child_rel, masks)?;
            if excluded && !below {
                // Excluded and nothing re-included inside: hide the directory itself.
                masks.truncate(mark);
                masks.push(child_rel);
            } else {
                visible = true;
            }
        }
        Ok(visible)
    }

    /// Expand one COPY/ADD source as BuildKit does. `exclude` (`--exclude`) also drops
    /// wildcard matches themselves, as documented (BuildKit itself only filters below them).
    pub fn expand(
        &self,
        source: &str,
        parents: bool,
        exclude: Option<&PatternSet>,
    ) -> Result<Vec<Selected>, ContextError> {
        if parents {
            return self.expand_parents(source).map(|s| vec![s]);
        }
        let comps: Vec<String> = rootpath::clean_rel(source)
            .split('/')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        let (fixed, wild) = glob::split_wildcards(&comps);
        let fixed_path = fixed.join("/");
        let wants_dir = source.ends_with('/') || source.ends_with("/.");
        if wild.is_empty() {
            let r = self.resolve(&fixed_path, true)?;
            if !r.exists {
                return Err(ContextError::NotFound {
                    path: display_source(source),
                });
            }
            let meta = self.stat(&r.rel)?;
            if wants_dir && !meta.is_dir() {
                return Err(ContextError::NotADirectory {
                    path: display_source(source),
                });
            }
            return Ok(vec![Selected::Path {
                requested: PathBuf::from(fixed_path),
                resolved: r.rel,
                meta,
            }]);
        }
        let pats = wild
            .iter()
            .map(|w| Pattern::new(w))
            .collect::<Result<Vec<_>, _>>()?;
        let base = self.resolve(&fixed_path, true)?;
        if !base.exists {
            return Err(ContextError::NotFound {
                path: display_source(if fixed_path.is_empty() {
                    "/"
                } else {
                    &fixed_path
                }),
            });
        }
        let base_meta = self.stat(&base.rel)?;
        if !base_meta.is_dir() {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        self.glob_dir(
            &base.rel,
            Path::new(&fixed_path),
            Path::new(""),
            &pats,
            &mut found,
        )?;
        let mut out = Vec::new();
        for (requested, rel_to_base) in found {
            if let Some(ex) = exclude
                && ex.is_excluded(&lossy(&rel_to_base))
            {
                continue;
            }
            let r = self.resolve(
                &String::from_utf8_lossy(requested.as_os_str().as_bytes()),
                true,
            )?;
            // A matched symlink whose target is missing or hidden: BuildKit fails to stat it.
            if !r.exists {
                return Err(ContextError::NotFound {
                    path: display_source(&lossy(&requested)),
                });
            }
            let meta = self.stat(&r.rel)?;
            out.push(Selected::Path {
                requested,
                resolved: r.rel,
                meta,
            });
        }
        Ok(out)
    }

    fn glob_dir(
        &self,
        dir: &Path,
        requested_dir: &Path,
        rel_dir: &Path,
        pats: &[Pattern],
        out: &mut Vec<(PathBuf, PathBuf)>,
    ) -> Result<(), ContextError> {
        let fd = rootpath::open_dir(self.root.fd(), dir).map_err(|e| self.io_err(dir, e))?;
        let names = read_names(&fd).map_err(|e| self.io_err(dir, e))?;
        for name in names {
            let Some(ns) = name.to_str() else { continue };
            if !pats[0].matches(ns) {
                continue;
            }
            let child = join(dir, &name);
            if self.is_hidden(&child) {
                continue;
            }
            let requested = join(requested_dir, &name);
            let rel = join(rel_dir, &name);
            if pats.len() == 1 {
                out.push((requested, rel));
            } else if stat_at(&fd, &name).is_ok_and(|m| m.is_dir()) {
                // filepath.Walk does not follow symlinks: only real directories are entered.
                self.glob_dir(&child, &requested, &rel, &pats[1..], out)?;
            }
        }
        Ok(())
    }

    fn expand_parents(&self, source: &str) -> Result<Selected, ContextError> {
        let (parent, pattern) = match source.split_once("/./") {
            Some((p, pat)) => (p, pat),
            None => ("/", source),
        };
        let include_text = rootpath::clean_rel(pattern);
        let base = self.resolve(parent, true)?;
        if !base.exists || !self.stat(&base.rel)?.is_dir() {
            return Err(ContextError::NotFound {
                path: display_source(parent),
            });
        }
        let include = if include_text.is_empty() {
            PatternSet::default()
        } else {
            PatternSet::new(&[include_text.as_str()]).map_err(|e| ContextError::BadPattern {
                pattern: source.to_string(),
                message: e.message,
            })?
        };
        let comps: Vec<String> = include_text
            .split('/')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        let (fixed, wild) = glob::split_wildcards(&comps);
        if wild.is_empty() && !glob::contains_wildcards(parent) && !include_text.is_empty() {
            let full = format!("{}/{}", lossy(&base.rel), include_text);
            if !self.resolve(&full, false)?.exists {
                return Err(ContextError::NotFound {
                    path: display_source(&format!("{parent}/{include_text}")),
                });
            }
        }
        Ok(Selected::Parents {
            base: base.rel,
            include,
            include_text,
            restrict: fixed.into_iter().map(OsString::from).collect(),
        })
    }
}

/// A source as users wrote it, rooted at `/` as BuildKit prints it.
fn display_source(s: &str) -> String {
    let c = rootpath::clean_rel(s);
    format!("/{c}")
}

/// Names in a directory with their `readdir` types (no `.`/`..`), in directory order.
fn read_names_typed(fd: &OwnedFd) -> io::Result<Vec<(OsString, FileType)>> {
    let mut dir = rustix::fs::Dir::read_from(fd)?;
    let mut names = Vec::new();
    while let Some(ent) = dir.read() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        names.push((OsStr::from_bytes(n).to_os_string(), ent.file_type()));
    }
    Ok(names)
}
