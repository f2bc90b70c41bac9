//! Records of unpacked layer directories. kiln-snapshot fills a directory that the store
//! hands out under `tmp/`; [`Store::commit_snapshot`] moves it into `snapshots-v1/` and
//! records it in the same write transaction.

use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};

use crate::Digest;
use crate::LayerRecord;
use crate::Store;
use crate::db::{self, now};
use crate::error::{Error, IoContext, Result};
use crate::layout::{Layout, remove_any};
use crate::lease::{Lease, RefKind};

/// A committed snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its key (for image layers: the chain ID).
    pub key: String,
    /// Absolute path of its directory.
    pub path: PathBuf,
    /// The snapshot below it, if any.
    pub parent: Option<String>,
    /// Bytes used by its files (as measured at commit).
    pub size: u64,
    /// Commit time, unix seconds.
    pub created: i64,
    /// Last lookup, unix seconds.
    pub last_used: i64,
}

impl SnapshotInfo {
    /// A row whose first columns are `key, dir, parent, size, created, last_used`
    /// (see [`SNAPSHOT_COLUMNS`]), with `dir` under `snapdir`.
    pub(crate) fn from_row(snapdir: &Path, r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(SnapshotInfo {
            key: r.get(0)?,
            path: snapdir.join(r.get::<_, String>(1)?),
            parent: r.get(2)?,
            size: r.get::<_, i64>(3)? as u64,
            created: r.get(4)?,
            last_used: r.get(5)?,
        })
    }
}

/// The columns [`SnapshotInfo::from_row`] reads, in its order.
pub(crate) const SNAPSHOT_COLUMNS: &str = "key, dir, parent, size, created, last_used";

/// Mark snapshot `key` used and read it, inside the caller's write transaction.
pub(crate) fn use_snapshot_tx(
    tx: &rusqlite::Connection,
    snapdir: &Path,
    key: &str,
) -> rusqlite::Result<Option<SnapshotInfo>> {
    db::exec(
        tx,
        "UPDATE snapshots SET last_used = ?2 WHERE key = ?1",
        params![key, now()],
    )?;
    db::query_row(
        tx,
        &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE key = ?1"),
        [key],
        |r| SnapshotInfo::from_row(snapdir, r),
    )
    .optional()
}

/// The snapshot key of an image layer whose chain ID is `chain`: the one key under which a
/// pull unpacks the layer and a build or container looks it up.
pub fn layer_snapshot_key(chain: &Digest) -> String {
    format!("layer:{chain}")
}

fn dir_name(key: &str) -> String {
    Digest::of(key.as_bytes()).hex()[..32].to_string()
}

/// Total size of the regular files under `dir` (symlinks not followed).
fn tree_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ctx("reading", &d)? {
            let e = e.ctx("reading", &d)?;
            let m = e.path().symlink_metadata().ctx("inspecting", e.path())?;
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                total += m.len();
            }
        }
    }
    Ok(total)
}

impl Store {
    /// Creates an empty directory under `tmp/` for a snapshot to be filled, owned by this
    /// process (removed by a later open if this process dies before committing it).
    pub fn prepare_snapshot_dir(&self) -> Result<PathBuf> {
        let tmp = self.layout().tmp_dir();
        let dir = tempfile::Builder::new()
            .prefix(&Layout::tmp_prefix("snap"))
            .tempdir_in(&tmp)
            .ctx("creating a directory in", &tmp)?;
        Ok(dir.keep())
    }

    /// Moves `prepared` (from [`Store::prepare_snapshot_dir`]) into `snapshots-v1/` under
    /// `key` and records it, protected by `lease`. If another writer committed `key` first,
    /// `prepared` is discarded and the existing snapshot returned.
    pub fn commit_snapshot(
        &self,
        lease: &Lease,
        key: &str,
        parent: Option<&str>,
        prepared: &Path,
    ) -> Result<SnapshotInfo> {
        let tmp = self.layout().tmp_dir();
        if prepared.parent() != Some(tmp.as_path()) || !prepared.is_dir() {
            return Err(Error::NotStoreTemp {
                path: prepared.to_path_buf(),
                tmp,
            });
        }
        let size = tree_size(prepared)?;
        let dir = dir_name(key);
        let dest = self.layout().snapshots_dir().join(&dir);
        lease.protect(RefKind::Snapshot, key)?;
        let committed = self.write(|tx| {
            let existing: Option<String> = db::query_row(
                tx, "SELECT dir FROM snapshots WHERE key = ?1", [key], |r| r.get(0))
                .optional()?;
            if existing.is_some() {
                return Ok(false);
            }
            if let Some(p) = parent {
                let ok = db::query_row(
                    tx, "SELECT 1 FROM snapshots WHERE key = ?1", [p], |_| Ok(()))
                    .optional()?
                    .is_some();
                if !ok {
                    return Err(Error::SnapshotParentMissing {
                        key: key.to_string(),
                        parent: p.to_string(),
                    });
                }
            }
            // A leftover of a commit that died between rename and commit.
            remove_any(&dest)?;
            std::fs::rename(prepared, &dest).ctx("renaming into", &dest)?;
            let t = now();
            db::exec(tx,
                "INSERT INTO snapshots (key, dir, parent, size, created, last_used, boot_id, synced) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, 0)",
                params![key, dir, parent, size as i64, t, crate::boot::boot_id()],
            )?;
            Ok(true)
        })?;
        // No fsync of the rename: like the files inside, it is durable once a later syncfs
        // marks the snapshot synced, and a crash before that drops the row (see
        // `settle_snapshots`). It was one fsync per step of a cold build.
        if !committed {
            remove_any(prepared)?;
        }
        self.snapshot(key)?.ok_or_else(|| Error::SnapshotNotFound {
            key: key.to_string(),
        })
    }

    /// Is there a snapshot with this key? (A read; marks nothing.)
    pub fn has_snapshot(&self, key: &str) -> Result<bool> {
        self.read(|tx| {
            Ok(
                db::query_row(tx, "SELECT 1 FROM snapshots WHERE key = ?1", [key], |_| {
                    Ok(())
                })
                .optional()?
                .is_some(),
            )
        })
    }

    /// Looks a snapshot up (and marks it used).
    pub fn snapshot(&self, key: &str) -> Result<Option<SnapshotInfo>> {
        let snapdir = self.layout().snapshots_dir();
        self.write(|tx| Ok(use_snapshot_tx(tx, &snapdir, key)?))
    }

    /// Remembers that `layer` was made from snapshot `key` the way `variant` names, so
    /// that [`Lease::use_snapshot_layers`] finds it. This keeps nothing alive: the blob stays
    /// while an image, cache record or lease holds it, and the record goes with the
    /// snapshot.
    pub fn record_snapshot_layer(
        &self,
        key: &str,
        variant: &str,
        layer: &LayerRecord,
    ) -> Result<()> {
        self.write(|tx| {
            db::exec(
                tx,
                "INSERT OR REPLACE INTO snapshot_layers
                 (snapshot, variant, diff_id, blob_digest, media_type, size, uncompressed_size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    key,
                    variant,
                    layer.diff_id.to_string(),
                    layer.blob.to_string(),
                    layer.media_type,
                    layer.compressed_size as i64,
                    layer.uncompressed_size as i64
                ],
            )?;
            Ok(())
        })
    }

    /// Every snapshot.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let snapdir = self.layout().snapshots_dir();
        self.read(|tx| {
            let mut stmt = tx.prepare(&format!(
                "SELECT {SNAPSHOT_COLUMNS} FROM snapshots ORDER BY key"
            ))?;
            let rows = stmt.query_map([], |r| SnapshotInfo::from_row(&snapdir, r))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}

/// Dirty data older than this has been written back by the kernel's flusher (30 s by
/// default), so a syncfs then costs next to nothing.
const WRITEBACK_SECS: i64 = 60;

/// What [`Store::settle_snapshots`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Unsynced snapshots of an earlier boot dropped (with descendants and cache records).
    pub dropped: usize,
    /// Snapshots of this boot now known to be on disk.
    pub synced: usize,
    /// Blobs written without fsync in this boot now known to be on disk (`blob_sync`).
    pub blobs_synced: usize,
}

impl Store {
    /// Make snapshot durability explicit; a build calls this first. Snapshots are written
    /// without fsync (volatile overlays), so after a power loss or kernel crash the ones
    /// written in the last seconds may be torn. A snapshot of an earlier boot that was never
    /// marked synced is dropped here, with its descendants and the cache records using it: a
    /// cache miss instead of a silently wrong layer. Snapshots of this boot older than the
    /// kernel's writeback delay are marked synced after one `syncfs` (cheap: nothing is dirty
    /// by then); newer ones wait for a later build, so a rebuild right after a build pays
    /// nothing.
    pub fn settle_snapshots(&self) -> Result<Settled> {
        let boot = crate::boot::boot_id();
        let (suspect, newest): (i64, Option<i64>) = self.read(|tx| {
            Ok(db::query_row(
                tx,
                "SELECT
                   (SELECT count(*) FROM snapshots WHERE synced = 0 AND (boot_id IS NULL OR boot_id != ?1)),
                   (SELECT max(c) FROM (
                      SELECT created AS c FROM snapshots WHERE synced = 0 AND boot_id = ?1
                      UNION ALL SELECT created FROM unsynced_blobs WHERE boot_id = ?1))",
                [boot],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })?;
        let mut out = Settled::default();
        if suspect > 0 {
            out.dropped = self.write_collecting(|tx, trash| {
                let keys: Vec<String> = {
                    let mut stmt = tx.prepare(
                        "SELECT key FROM snapshots WHERE synced = 0 AND (boot_id IS NULL OR boot_id != ?1)",
                    )?;
                    let rows = stmt.query_map([boot], |r| r.get::<_, String>(0))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                self.drop_snapshot_trees(tx, keys, trash)
            })?;
        }
        let t = now();
        if let Some(newest) = newest
            && newest <= t - WRITEBACK_SECS
        {
            // Read before the syncfs: each of these blobs was renamed into place before its
            // row committed, so the syncfs covers it (see `blob_sync`).
            let blobs =
                self.read(|tx| Ok(crate::blob_sync::this_boot_rows(tx, t - WRITEBACK_SECS)?))?;
            let root = std::fs::File::open(self.root()).ctx("opening", self.root())?;
            // SAFETY: syncfs on a valid, open descriptor has no memory effects.
            if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&root)) } != 0 {
                return Err(Error::io(
                    "syncfs",
                    self.root(),
                    std::io::Error::last_os_error(),
                ));
            }
            (out.synced, out.blobs_synced) = self.write(|tx| {
                let snaps = db::exec(
                    tx,
                    "UPDATE snapshots SET synced = 1 WHERE synced = 0 AND boot_id = ?1 AND created <= ?2",
                    params![boot, t - WRITEBACK_SECS],
                )?;
                Ok((snaps, crate::blob_sync::unmark_synced(tx, &blobs)?))
            })?;
        }
        Ok(out)
    }
}

impl Lease {
    /// Protects the snapshot `key` and looks it up (marking it used), in one transaction.
    /// The protection stays even when it does not exist yet: the caller is about to make it.
    pub fn use_snapshot(&self, key: &str) -> Result<Option<crate::SnapshotInfo>> {
        let snapdir = self.store().layout().snapshots_dir();
        self.write_refs(|tx| {
            db::exec(
                tx,
                "INSERT OR IGNORE INTO lease_refs (lease_id, kind, target) VALUES (?1, 'snapshot', ?2)",
                params![self.id(), key],
            )?;
            Ok(use_snapshot_tx(tx, &snapdir, key)?)
        })
    }
}

#[cfg(test)]
mod settle_tests {
    use super::*;

    fn commit(store: &Store, lease: &Lease, key: &str, parent: Option<&str>) -> PathBuf {
        let d = store.prepare_snapshot_dir().unwrap();
        std::fs::write(d.join("f"), key).unwrap();
        store.commit_snapshot(lease, key, parent, &d).unwrap().path
    }

    fn synced(store: &Store, key: &str) -> Option<i64> {
        store
            .read(|tx| {
                Ok(db::query_row(
                    tx,
                    "SELECT synced FROM snapshots WHERE key = ?1",
                    [key],
                    |r| r.get(0),
                )
                .optional()?)
            })
            .unwrap()
    }

    #[test]
    fn unsynced_snapshots_of_an_earlier_boot_are_dropped_and_old_ones_marked_durable() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let lease = store.lease().unwrap();
        let p1 = commit(&store, &lease, "s1", None);
        let p2 = commit(&store, &lease, "s2", Some("s1"));
        let p3 = commit(&store, &lease, "s3", None);
        store
            .cache_put("rec", b"{}", &[(RefKind::Snapshot, "s2")])
            .unwrap();
        assert_eq!(
            synced(&store, "s1"),
            Some(0),
            "new snapshots start unsynced"
        );
        // Nothing to do right after a build: no drop, no syncfs.
        assert_eq!(store.settle_snapshots().unwrap(), Settled::default());
        // s1 was written in a boot that ended without a sync: it and its child go.
        store
            .write(|tx| {
                Ok(db::exec(
                    tx,
                    "UPDATE snapshots SET boot_id = 'earlier' WHERE key = 's1'",
                    [],
                )?)
            })
            .unwrap();
        let s = store.settle_snapshots().unwrap();
        assert_eq!(s.dropped, 2);
        assert!(!p1.exists() && !p2.exists());
        assert_eq!(synced(&store, "s2"), None);
        assert_eq!(
            store.cache_peek("rec").unwrap(),
            None,
            "its cache record went too"
        );
        assert!(p3.exists());
        // s3 is older than the writeback delay: one syncfs marks it durable.
        store
            .write(|tx| {
                Ok(db::exec(
                    tx,
                    "UPDATE snapshots SET created = created - 120",
                    [],
                )?)
            })
            .unwrap();
        assert_eq!(store.settle_snapshots().unwrap().synced, 1);
        assert_eq!(synced(&store, "s3"), Some(1));
        let report = store.check(false).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}
