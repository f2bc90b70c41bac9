//! Leases: how a writer keeps a concurrent prune from deleting what it has just written
//! but not yet referenced.
//!
//! A lease is a row naming its owner process (pid + start time). Before a blob or snapshot
//! becomes visible, the writer records it under its lease in a write transaction; the
//! garbage collector holds the write lock for its whole mark-and-sweep, so it either sees
//! the lease row or does not see the file yet. Dropping the lease removes the row; the rows
//! of a process that died are removed by the next collection.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rusqlite::params;

use crate::Store;
use crate::db::{self, now};
use crate::error::Result;
use crate::layout::ProcessId;

/// What a lease or cache record holds on to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    /// A blob, by digest string.
    Blob,
    /// A snapshot, by key.
    Snapshot,
}

impl RefKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RefKind::Blob => "blob",
            RefKind::Snapshot => "snapshot",
        }
    }
}

/// Protection for content written but not yet referenced by an image or cache record.
/// Released on drop.
#[derive(Debug)]
pub struct Lease {
    store: Store,
    id: String,
    me: ProcessId,
    /// Whether the lease's row exists: it is written by the first transaction that protects
    /// something (a lease that protects nothing needs no row), so taking a lease is no write
    /// transaction of its own, and dropping an unused one none either.
    has_row: AtomicBool,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Takes a new lease for this process.
    pub fn lease(&self) -> Result<Lease> {
        let me = ProcessId::current();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let id = format!(
            "{}.{}.{}.{}",
            me.pid,
            me.start,
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        Ok(Lease {
            store: self.clone(),
            id,
            me,
            has_row: AtomicBool::new(false),
        })
    }
}

impl Lease {
    /// Runs `f` in a write transaction that first makes sure the lease's row exists (the refs
    /// `f` adds point at it).
    pub(crate) fn write_refs<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
    ) -> Result<T> {
        let out = self.store.write(|tx| {
            if !self.has_row.load(Ordering::Relaxed) {
                db::exec(
                    tx,
                    "INSERT OR IGNORE INTO leases (id, pid, start_time, created) VALUES (?1, ?2, ?3, ?4)",
                    params![self.id, self.me.pid, self.me.start as i64, now()],
                )?;
            }
            f(tx)
        })?;
        self.has_row.store(true, Ordering::Relaxed);
        Ok(out)
    }

    /// Records that this lease holds `target` (a digest string or snapshot key).
    pub fn protect(&self, kind: RefKind, target: &str) -> Result<()> {
        self.write_refs(|tx| Ok(protect_tx(tx, self, kind, target)?))
    }

    /// [`Lease::protect`] for several targets, in one write transaction.
    pub fn protect_all(&self, kind: RefKind, targets: &[&str]) -> Result<()> {
        self.write_refs(|tx| {
            for t in targets {
                protect_tx(tx, self, kind, t)?;
            }
            Ok(())
        })
    }

    /// For a build or container reading image `id`: protects its manifest, config and layer
    /// blobs and returns its layers, in one transaction; None if the image is gone. From then
    /// on the content stays while the lease lives, even if the image is removed (`rmi`
    /// untags it and the next collection after the lease ends deletes the content), so a
    /// build never loses its base half-way.
    pub fn use_image(
        &self,
        id: &crate::Digest,
    ) -> Result<Option<(crate::ImageRecord, Vec<crate::LayerRecord>)>> {
        self.write_refs(|tx| {
            let Some(img) = crate::image::load_images(tx, Some(id))?.pop() else {
                return Ok(None);
            };
            let layers = crate::image::image_layers(tx, id)?;
            let blobs = [img.manifest_digest, img.id]
                .into_iter()
                .chain(layers.iter().map(|l| l.blob));
            for d in blobs {
                db::exec(
                    tx,
                    "INSERT OR IGNORE INTO lease_refs (lease_id, kind, target) VALUES (?1, 'blob', ?2)",
                    params![self.id, d.to_string()],
                )?;
            }
            Ok(Some((img, layers)))
        })
    }

    /// For an export: protects `blobs` and the blobs of the layers recorded as made from
    /// `snapshots` the way `variant` names ([`Store::record_snapshot_layer`]), and returns
    /// those layers (None where none was made, or its blob has been collected since), in
    /// one transaction. A returned layer's blob is in the store and stays there while the
    /// lease lives.
    pub fn use_snapshot_layers(
        &self,
        snapshots: &[&str],
        variant: &str,
        blobs: &[crate::Digest],
    ) -> Result<Vec<Option<crate::LayerRecord>>> {
        let found = self.write_refs(|tx| {
            let mut found = Vec::with_capacity(snapshots.len());
            for key in snapshots {
                let row: Option<(String, String, String, i64, i64)> =
                    rusqlite::OptionalExtension::optional(db::query_row(
                        tx,
                        "SELECT diff_id, blob_digest, media_type, size, uncompressed_size
                         FROM snapshot_layers WHERE snapshot = ?1 AND variant = ?2",
                        params![key, variant],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                    ))?;
                let rec = row.and_then(|(diff_id, blob, media_type, size, usize)| {
                    Some(crate::LayerRecord {
                        blob: crate::Digest::parse(&blob).ok()?,
                        diff_id: crate::Digest::parse(&diff_id).ok()?,
                        media_type,
                        compressed_size: size as u64,
                        uncompressed_size: usize as u64,
                    })
                });
                found.push(rec);
            }
            let protect = blobs.iter().chain(found.iter().flatten().map(|l| &l.blob));
            for d in protect {
                db::exec(
                    tx,
                    "INSERT OR IGNORE INTO lease_refs (lease_id, kind, target) VALUES (?1, 'blob', ?2)",
                    params![self.id, d.to_string()],
                )?;
            }
            Ok(found)
        })?;
        // Protected first, then looked at: a collection either saw the lease row or had
        // already removed the file.
        Ok(found
            .into_iter()
            .map(|l| l.filter(|l| self.store.has_blob(&l.blob)))
            .collect())
    }

    /// Ends the lease and deletes, at once, the blobs and snapshots it protected that
    /// nothing else references (a failed load must leave the store as it was).
    pub fn release_and_collect(self) -> Result<u64> {
        let blobs: Vec<crate::Digest> = self.store.read(|tx| {
            let mut stmt =
                tx.prepare("SELECT target FROM lease_refs WHERE lease_id = ?1 AND kind = 'blob'")?;
            let rows = stmt.query_map([&self.id], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for r in rows {
                if let Ok(d) = crate::Digest::parse(&r?) {
                    out.push(d);
                }
            }
            Ok(out)
        })?;
        let store = self.store.clone();
        drop(self);
        store.collect_unused(&blobs)
    }

    /// The lease's identifier.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.has_row.load(Ordering::Relaxed) {
            return;
        }
        // A failure here only delays collection until this process is gone.
        let _ = self.store.write(|tx| {
            db::exec(tx, "DELETE FROM leases WHERE id = ?1", params![self.id])?;
            Ok(())
        });
    }
}

/// [`Lease::protect`] inside a transaction of [`Lease::write_refs`].
pub(crate) fn protect_tx(
    tx: &rusqlite::Connection,
    lease: &Lease,
    kind: RefKind,
    target: &str,
) -> rusqlite::Result<()> {
    db::exec(
        tx,
        "INSERT OR IGNORE INTO lease_refs (lease_id, kind, target) VALUES (?1, ?2, ?3)",
        params![lease.id, kind.as_str(), target],
    )?;
    Ok(())
}

/// Removes the leases of processes that no longer run. Call inside a write transaction.
pub(crate) fn remove_dead_leases(tx: &rusqlite::Connection) -> rusqlite::Result<usize> {
    let mut dead = Vec::new();
    {
        let mut stmt = tx.prepare("SELECT id, pid, start_time FROM leases")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (id, pid, start) = row?;
            let owner = ProcessId {
                pid,
                start: start as u64,
            };
            if !owner.is_alive() {
                dead.push(id);
            }
        }
    }
    for id in &dead {
        db::exec(tx, "DELETE FROM leases WHERE id = ?1", params![id])?;
    }
    Ok(dead.len())
}
