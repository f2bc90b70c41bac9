//! A generic build-cache table. The build engine stores its records here (opaque bytes,
//! typically JSON) with the blobs and snapshots each record holds on to; records are
//! touched on use and pruned by age or total size.

use rusqlite::{OptionalExtension, params};

use crate::Digest;
use crate::SnapshotInfo;
use crate::Store;
use crate::db::{self, now};
use crate::error::{Error, Result};
use crate::lease::RefKind;
use crate::snapshot::SNAPSHOT_COLUMNS;

/// How old a use mark must be before [`Store::cache_touch`] renews it: LRU order needs no
/// finer time, and rebuilds in between then write nothing.
const TOUCH_SECS: i64 = 60;

/// A stored build-cache record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRecord {
    /// The record's key.
    pub key: String,
    /// Its value, as stored.
    pub value: Vec<u8>,
    /// Bytes accounted to it: the value plus the content it references.
    pub size: u64,
    /// Insert time, unix seconds.
    pub created: i64,
    /// Last `cache_get`, unix seconds.
    pub last_used: i64,
    /// What it references.
    pub refs: Vec<(RefKind, String)>,
}

/// What [`Store::cache_use`] found: the record's value and the snapshots it references
/// that exist.
#[derive(Debug, Clone)]
pub struct CacheHit {
    /// The record's value.
    pub value: Vec<u8>,
    /// The snapshots it references that exist (a missing one means the hit is unusable).
    pub snapshots: Vec<SnapshotInfo>,
    /// Whether [`Store::cache_touch`] would change the record (its mark is a minute old or
    /// it never counted a use): a rebuild whose hits are all fresh skips the write.
    pub stale: bool,
}

/// Limits for [`Store::cache_prune`]; records are removed least recently used first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CachePrune {
    /// Remove records not used for this many seconds.
    pub unused_for: Option<i64>,
    /// Then remove records until the total accounted size is at most this.
    pub keep_bytes: Option<u64>,
    /// Remove everything.
    pub all: bool,
}

/// Total and count of cache records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    /// Number of records.
    pub count: u64,
    /// Sum of their accounted sizes.
    pub bytes: u64,
}

impl Store {
    /// Looks up a record and marks it used.
    pub fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.write(|tx| {
            let value: Option<Vec<u8>> =
                db::query_row(tx, "SELECT value FROM cache WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()?;
            if value.is_some() {
                db::exec(
                    tx,
                    "UPDATE cache SET last_used = ?2, uses = uses + 1 WHERE key = ?1",
                    params![key, now()],
                )?;
            }
            Ok(value)
        })
    }

    /// Looks up a record without marking it used (a read transaction).
    pub fn cache_peek(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.read(|tx| {
            Ok(
                db::query_row(tx, "SELECT value FROM cache WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()?,
            )
        })
    }

    /// A cache hit, read-only: the record's value and the snapshots it references. The
    /// caller holds a [`crate::BuildGuard`], which keeps prunes from removing the record
    /// meanwhile; [`Store::cache_touch`] marks the records used once per build.
    pub fn cache_use(&self, key: &str) -> Result<Option<CacheHit>> {
        self.read(|tx| self.cache_use_tx(tx, key))
    }

    /// [`Store::cache_use`] of `key` and [`Store::cache_peek`] of `peek`, in one read
    /// transaction: a build looks up each step's record and the key its position had last
    /// time (`--explain`'s record) together, one transaction per cached step instead of two.
    pub fn cache_use_and_peek(
        &self,
        key: &str,
        peek: &str,
    ) -> Result<(Option<CacheHit>, Option<Vec<u8>>)> {
        self.read(|tx| {
            let hit = self.cache_use_tx(tx, key)?;
            let peeked = db::query_row(tx, "SELECT value FROM cache WHERE key = ?1", [peek], |r| {
                r.get(0)
            })
            .optional()?;
            Ok((hit, peeked))
        })
    }

    fn cache_use_tx(&self, tx: &rusqlite::Connection, key: &str) -> Result<Option<CacheHit>> {
        let snapdir = self.layout().snapshots_dir();
        let row: Option<(Vec<u8>, bool)> = db::query_row(
            tx,
            "SELECT value, last_used < ?2 OR uses = 0 FROM cache WHERE key = ?1",
            params![key, now() - TOUCH_SECS],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
        let Some((value, stale)) = row else {
            return Ok(None);
        };
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE key IN
             (SELECT target FROM cache_refs WHERE cache_key = ?1 AND kind = 'snapshot')"
        ))?;
        let snapshots = stmt
            .query_map([key], |r| SnapshotInfo::from_row(&snapdir, r))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(CacheHit {
            value,
            snapshots,
            stale,
        }))
    }

    /// Marks records (and the snapshots they reference) used now, in one transaction. Marks
    /// less than a minute old are left alone (once a record counts a use): LRU order does not
    /// need finer time, and repeated rebuilds then write nothing.
    pub fn cache_touch(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let t = now();
        self.write(|tx| {
            for key in keys {
                db::exec(
                    tx,
                    "UPDATE cache SET last_used = ?2, uses = uses + 1 WHERE key = ?1 AND (last_used < ?3 OR uses = 0)",
                    params![key, t, t - TOUCH_SECS],
                )?;
                db::exec(
                    tx,
                    "UPDATE snapshots SET last_used = ?2 WHERE last_used < ?3 AND key IN
                     (SELECT target FROM cache_refs WHERE cache_key = ?1 AND kind = 'snapshot')",
                    params![key, t, t - TOUCH_SECS],
                )?;
            }
            Ok(())
        })
    }

    /// Inserts or replaces a record. Every referenced blob and snapshot must exist; the
    /// caller holds them under a lease until this returns.
    pub fn cache_put(&self, key: &str, value: &[u8], refs: &[(RefKind, &str)]) -> Result<()> {
        let mut size = value.len() as u64;
        for (kind, target) in refs {
            if *kind == RefKind::Blob {
                let d = Digest::parse(target).map_err(|_| Error::InvalidDigest {
                    digest: target.to_string(),
                    reason: "expected sha256:<64 hex digits>",
                })?;
                size += self.blob_size(&d)?;
            }
        }
        self.write(|tx| {
            for (kind, target) in refs {
                if *kind == RefKind::Snapshot {
                    let s: Option<i64> = db::query_row(
                        tx, "SELECT size FROM snapshots WHERE key = ?1", [target], |r| r.get(0))
                        .optional()?;
                    match s {
                        Some(s) => size += s as u64,
                        None => {
                            return Err(Error::SnapshotNotFound {
                                key: target.to_string(),
                            });
                        }
                    }
                }
            }
            let t = now();
            db::exec(tx, "DELETE FROM cache WHERE key = ?1", [key])?;
            db::exec(tx,
                "INSERT INTO cache (key, value, size, created, last_used) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![key, value, size as i64, t],
            )?;
            for (kind, target) in refs {
                db::exec(tx,
                    "INSERT OR IGNORE INTO cache_refs (cache_key, kind, target) VALUES (?1, ?2, ?3)",
                    params![key, kind.as_str(), target],
                )?;
            }
            Ok(())
        })
    }

    /// Full records, least recently used first.
    pub fn cache_records(&self) -> Result<Vec<CacheRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT key, value, size, created, last_used FROM cache ORDER BY last_used, key",
            )?;
            let mut records: Vec<CacheRecord> = stmt
                .query_map([], |r| {
                    Ok(CacheRecord {
                        key: r.get(0)?,
                        value: r.get(1)?,
                        size: r.get::<_, i64>(2)? as u64,
                        created: r.get(3)?,
                        last_used: r.get(4)?,
                        refs: Vec::new(),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = tx.prepare(
                "SELECT kind, target FROM cache_refs WHERE cache_key = ?1 ORDER BY kind, target",
            )?;
            for rec in &mut records {
                let rows = stmt.query_map([&rec.key], |r| {
                    let kind: String = r.get(0)?;
                    let kind = if kind == "blob" {
                        RefKind::Blob
                    } else {
                        RefKind::Snapshot
                    };
                    Ok((kind, r.get::<_, String>(1)?))
                })?;
                rec.refs = rows.collect::<rusqlite::Result<_>>()?;
            }
            Ok(records)
        })
    }

    /// Count and accounted size of all records.
    pub fn cache_usage(&self) -> Result<CacheUsage> {
        self.read(|tx| {
            Ok(db::query_row(
                tx,
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM cache",
                [],
                |r| {
                    Ok(CacheUsage {
                        count: r.get::<_, i64>(0)? as u64,
                        bytes: r.get::<_, i64>(1)? as u64,
                    })
                },
            )?)
        })
    }

    /// Removes records by the given limits, then collects content nothing else holds.
    /// Returns the removed keys and the bytes freed on disk. Waits for running builds.
    pub fn cache_prune(&self, limits: CachePrune) -> Result<(Vec<String>, u64)> {
        let _guard = self.collect_guard(true)?;
        self.with_reserve(|| self.cache_prune_locked(&limits))
    }

    /// [`Store::cache_prune`], unless a build is running (then None).
    pub fn cache_prune_if_idle(&self, limits: CachePrune) -> Result<Option<(Vec<String>, u64)>> {
        match self.collect_guard(false)? {
            Some(_guard) => self.cache_prune_locked(&limits).map(Some),
            None => Ok(None),
        }
    }

    /// Call holding the collection lock exclusively.
    fn cache_prune_locked(&self, limits: &CachePrune) -> Result<(Vec<String>, u64)> {
        let removed = self.write(|tx| {
            let mut rows: Vec<(String, u64, i64)> = {
                let mut stmt =
                    tx.prepare("SELECT key, size, last_used FROM cache ORDER BY last_used, key")?;
                stmt.query_map([], |r| {
                    Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?))
                })?
                .collect::<rusqlite::Result<_>>()?
            };
            let mut removed = Vec::new();
            let t = now();
            let mut total: u64 = rows.iter().map(|r| r.1).sum();
            rows.retain(|(key, size, last_used)| {
                let old = limits.unused_for.is_some_and(|age| t - last_used >= age);
                if limits.all || old {
                    removed.push(key.clone());
                    total -= size;
                    false
                } else {
                    true
                }
            });
            if let Some(keep) = limits.keep_bytes {
                for (key, size, _) in rows {
                    if total <= keep {
                        break;
                    }
                    removed.push(key);
                    total -= size;
                }
            }
            for key in &removed {
                db::exec(tx, "DELETE FROM cache WHERE key = ?1", [key])?;
            }
            Ok(removed)
        })?;
        let freed = self.collect_garbage_once()?;
        Ok((removed, freed))
    }
}
