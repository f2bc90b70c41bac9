//! Deleting content only after the transaction that unreferences it has committed.
//!
//! A collection decides what to delete inside a write transaction and, still holding the
//! write lock, moves each dead blob or snapshot directory out of sight into `trash/`: a
//! concurrent writer then either saw the reference that kept it, or no longer finds the file
//! and writes it again. Only after the commit are the trash entries deleted.
//!
//! A process killed before its commit leaves entries in `trash/` whose transaction rolled
//! back: the database still references them. The next `Store::open` that finds entries of a
//! dead owner sorts them under the write lock: an entry the database still needs goes back
//! where it came from (unless that place has been filled again since), anything else is
//! deleted. So neither a crash before the commit (the content returns) nor after it (the
//! content goes) leaves the database naming a missing blob or directory.
//!
//! ```text
//! trash/<pid>.<start>.blob-<hex>.<n>     a blob from blobs/sha256/<hex>
//! trash/<pid>.<start>.snap-<dir>.<n>     a snapshot directory from snapshots-v1/<dir>
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;

use crate::Digest;
use crate::Store;
use crate::error::{IoContext, Result};
use crate::layout::{Layout, ProcessId, remove_any};
use crate::refs::{blob_is_live, snapshot_dir_is_recorded};

/// Where a trash entry came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// `blobs/sha256/<hex>`.
    Blob(Digest),
    /// `snapshots-v1/<dir>`.
    Snapshot(String),
}

impl Origin {
    fn tag(&self) -> (&'static str, String) {
        match self {
            Origin::Blob(d) => ("blob", d.hex()),
            Origin::Snapshot(dir) => ("snap", dir.clone()),
        }
    }

    fn parse(name: &str) -> Option<(ProcessId, Origin)> {
        let owner = ProcessId::parse_tmp_name(name)?;
        // `<pid>.<start>.<kind>-<what>.<n>`
        let rest = name.splitn(3, '.').nth(2)?;
        let (kind, what) = rest.split_once('-')?;
        let what = &what[..what.rfind('.')?];
        let origin = match kind {
            "blob" => Origin::Blob(Digest::from_hex(what).ok()?),
            "snap" if !what.is_empty() && !what.contains('/') => Origin::Snapshot(what.into()),
            _ => return None,
        };
        Some((owner, origin))
    }
}

/// Content moved out of sight inside a transaction: deleted after its commit
/// ([`Store::empty_trash`]) or put back if it failed ([`Store::restore_trash`]).
#[derive(Debug, Default)]
pub(crate) struct Trash {
    entries: Vec<(PathBuf, Origin)>,
}

/// What [`Store::trash_blob`] and [`Store::trash_snapshot_dir`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moved {
    /// Moved; deleted after the commit.
    Yes,
    /// It was not there.
    Missing,
    /// The file system is full: left where it is.
    NoSpace,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Trash {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Store {
    fn origin_path(&self, origin: &Origin) -> PathBuf {
        match origin {
            Origin::Blob(d) => self.layout().blob_path(&d.hex()),
            Origin::Snapshot(dir) => self.layout().snapshots_dir().join(dir),
        }
    }

    fn move_to_trash(&self, trash: &mut Trash, origin: Origin) -> Result<Moved> {
        let from = self.origin_path(&origin);
        let (kind, what) = origin.tag();
        let to = self.layout().trash_dir().join(format!(
            "{}{what}.{}",
            Layout::tmp_prefix(kind),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::rename(&from, &to) {
            Ok(()) => {
                trash.entries.push((to, origin));
                Ok(Moved::Yes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Moved::Missing),
            // On a full disk the trash directory may have no room for another entry; the
            // caller keeps the content for a later round, after this one has freed space.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => Ok(Moved::NoSpace),
            Err(e) => Err(crate::Error::io("moving to trash", &from, e)),
        }
    }

    /// Inside a write transaction: moves blob `digest` to the trash.
    pub(crate) fn trash_blob(&self, trash: &mut Trash, digest: &Digest) -> Result<Moved> {
        self.move_to_trash(trash, Origin::Blob(*digest))
    }

    /// Inside a write transaction: moves `snapshots-v1/<dir>` to the trash.
    pub(crate) fn trash_snapshot_dir(&self, trash: &mut Trash, dir: &str) -> Result<Moved> {
        self.move_to_trash(trash, Origin::Snapshot(dir.to_string()))
    }

    /// After the commit: deletes what the transaction moved to the trash. A failure leaves
    /// entries that the next open deletes (their owner is gone by then).
    pub(crate) fn empty_trash(&self, trash: Trash) {
        for (p, _) in &trash.entries {
            let _ = remove_any(p);
        }
    }

    /// After a failed transaction: puts back what it moved (the database still names it).
    pub(crate) fn restore_trash(&self, trash: Trash) {
        for (p, origin) in trash.entries {
            let dest = self.origin_path(&origin);
            if dest.exists() {
                let _ = remove_any(&p);
            } else {
                let _ = std::fs::rename(&p, &dest);
            }
        }
    }

    /// Runs `f` in a write transaction that may move content to the trash; empties the trash
    /// after the commit, or puts it back when `f` or the commit fails.
    pub(crate) fn write_collecting<T>(
        &self,
        f: impl FnOnce(&Connection, &mut Trash) -> Result<T>,
    ) -> Result<T> {
        let mut trash = Trash::default();
        match self.write(|tx| f(tx, &mut trash)) {
            Ok(v) => {
                self.empty_trash(trash);
                Ok(v)
            }
            Err(e) => {
                self.restore_trash(trash);
                Err(e)
            }
        }
    }

    /// Sorts the trash entries of processes that died (see the module docs). Cheap when the
    /// trash holds none: one directory read.
    pub(crate) fn recover_trash(&self) -> Result<usize> {
        let dir = self.layout().trash_dir();
        let mut dead: Vec<(PathBuf, Option<Origin>)> = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(crate::Error::io("reading", &dir, e)),
        };
        for e in entries {
            let e = e.ctx("reading", &dir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            match Origin::parse(&name) {
                Some((owner, origin)) if !owner.is_alive() => dead.push((e.path(), Some(origin))),
                Some(_) => {}
                // Nothing else writes here.
                None => dead.push((e.path(), None)),
            }
        }
        if dead.is_empty() {
            return Ok(0);
        }
        let n = dead.len();
        let doomed = self.write(|tx| {
            let mut doomed = Vec::new();
            for (path, origin) in dead {
                let Some(origin) = origin else {
                    doomed.push(path);
                    continue;
                };
                let dest = self.origin_path(&origin);
                // A blob goes back only if it still holds what its name says.
                let intact = match &origin {
                    Origin::Blob(d) => crate::layout::hash_file(&path).is_ok_and(|(a, _)| a == *d),
                    Origin::Snapshot(_) => true,
                };
                if intact && still_needed(tx, &origin)? && !exists(&dest) {
                    std::fs::rename(&path, &dest).ctx("restoring from trash", &path)?;
                } else {
                    doomed.push(path);
                }
            }
            Ok(doomed)
        })?;
        for p in doomed {
            let _ = remove_any(&p);
        }
        Ok(n)
    }
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// Does the database still reference what a trash entry held (its transaction rolled back)?
fn still_needed(tx: &Connection, origin: &Origin) -> rusqlite::Result<bool> {
    match origin {
        Origin::Blob(d) => blob_is_live(tx, &d.to_string()),
        Origin::Snapshot(dir) => snapshot_dir_is_recorded(tx, dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_parse_back() {
        let d = Digest::of(b"x");
        let name = format!("{}{}.7", Layout::tmp_prefix("blob"), d.hex());
        let (owner, origin) = Origin::parse(&name).unwrap();
        assert_eq!(owner, ProcessId::current());
        assert_eq!(origin, Origin::Blob(d));
        let name = format!("{}0123abcd.0", Layout::tmp_prefix("snap"));
        assert_eq!(
            Origin::parse(&name).unwrap().1,
            Origin::Snapshot("0123abcd".into())
        );
        assert_eq!(Origin::parse("1.2.blob-nothex.0"), None);
        assert_eq!(Origin::parse("garbage"), None);
    }
}
