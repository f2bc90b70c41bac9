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
use crate::layout::{Layout, remove_any, sync_parent};
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
                "INSERT INTO snapshots (key, dir, parent, size, created, last_used) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![key, dir, parent, size as i64, t],
            )?;
            Ok(true)
        })?;
        if committed {
            sync_parent(&dest)?;
        } else {
            remove_any(prepared)?;
        }
        self.snapshot(key)?.ok_or_else(|| Error::SnapshotNotFound {
            key: key.to_string(),
        })
    }

    /// Looks a snapshot up (and marks it used).
    pub fn snapshot(&self, key: &str) -> Result<Option<SnapshotInfo>> {
        let snapdir = self.layout().snapshots_dir();
        self.write(|tx| {
            db::exec(
                tx,
                "UPDATE snapshots SET last_used = ?2 WHERE key = ?1",
                params![key, now()],
            )?;
            Ok(db::query_row(
                tx,
                "SELECT key, dir, parent, size, created, last_used FROM snapshots WHERE key = ?1",
                [key],
                |r| {
                    Ok(SnapshotInfo {
                        key: r.get(0)?,
                        path: snapdir.join(r.get::<_, String>(1)?),
                        parent: r.get(2)?,
                        size: r.get::<_, i64>(3)? as u64,
                        created: r.get(4)?,
                        last_used: r.get(5)?,
                    })
                },
            )
            .optional()?)
        })
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
            let mut stmt = tx.prepare(
                "SELECT key, dir, parent, size, created, last_used FROM snapshots ORDER BY key",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(SnapshotInfo {
                    key: r.get(0)?,
                    path: snapdir.join(r.get::<_, String>(1)?),
                    parent: r.get(2)?,
                    size: r.get::<_, i64>(3)? as u64,
                    created: r.get(4)?,
                    last_used: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}
