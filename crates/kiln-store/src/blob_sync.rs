//! Blobs written without fsync ([`crate::BlobWriter::deferred_sync`]: the build's export).
//!
//! Such a blob is recorded in `unsynced_blobs` (its digest, this boot's id, the time) in the
//! same transaction that protects it and renames it into `blobs/`, so a visible unsynced blob
//! always has its row. The row goes when the blob is known to be on disk:
//!
//! - `Store::settle_snapshots` (a build's start) reads the rows of this boot older than the
//!   kernel's writeback delay, runs the one `syncfs` it runs for snapshots, and deletes exactly
//!   the rows it read (each rename happened before its row committed, so before the syncfs);
//! - a durable writer of the same digest (pull, load) replaces the file with its fsynced copy
//!   and deletes the row.
//!
//! After a power loss or kernel crash, [`Store::recover_unsynced_blobs`] (run by the first
//! `Store::open` of each boot) re-hashes every blob whose row comes from an earlier boot. An
//! intact one loses its row. A torn or missing one is removed with the cache records and
//! `snapshot_layers` rows that use it, so the next build re-runs those steps and makes it
//! again; an image that lists it is left for `kiln system check` to report (and `--repair` to
//! remove), as any damaged image is, until a build makes the blob again.
//!
//! SQLite runs with `synchronous=NORMAL`: a power loss may drop the last commits. Those are a
//! suffix of the WAL, so a lost row takes every later reference to its blob with it (the lease
//! row is in the same transaction; images, cache records and `snapshot_layers` rows come
//! later) and leaves the file, possibly torn, referenced by nothing. So the same first open
//! of a boot also removes every blob file nothing references (after dropping the leases of
//! the earlier boot's processes): a later writer never finds such a file and takes it for
//! intact.

use std::io::Write;

use rusqlite::{OptionalExtension, Transaction, params};

use crate::Digest;
use crate::Store;
use crate::blob::hash_file;
use crate::db::{self, now};
use crate::error::{IoContext, Result};
use crate::layout::Layout;
use crate::snapshot::boot_id;

/// Records `digest` as written in this boot and not yet synced (or refreshes its row).
pub(crate) fn mark_tx(tx: &Transaction<'_>, digest: &str) -> rusqlite::Result<()> {
    db::exec(
        tx,
        "INSERT INTO unsynced_blobs (digest, boot_id, created) VALUES (?1, ?2, ?3)
         ON CONFLICT(digest) DO UPDATE SET boot_id = excluded.boot_id, created = excluded.created",
        params![digest, boot_id(), now()],
    )?;
    Ok(())
}

/// Whether `digest` may not be on disk yet.
pub(crate) fn is_marked_tx(tx: &Transaction<'_>, digest: &str) -> rusqlite::Result<bool> {
    Ok(db::query_row(
        tx,
        "SELECT 1 FROM unsynced_blobs WHERE digest = ?1",
        [digest],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// `digest` is durable now (or gone).
pub(crate) fn unmark_tx(tx: &Transaction<'_>, digest: &str) -> rusqlite::Result<()> {
    db::exec(tx, "DELETE FROM unsynced_blobs WHERE digest = ?1", [digest])?;
    Ok(())
}

/// The rows of this boot created at or before `before`: (digest, created).
pub(crate) fn this_boot_rows(
    tx: &Transaction<'_>,
    before: i64,
) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = tx.prepare_cached(
        "SELECT digest, created FROM unsynced_blobs WHERE boot_id = ?1 AND created <= ?2",
    )?;
    let rows = stmt.query_map(params![boot_id(), before], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Deletes the rows read by [`this_boot_rows`] before a syncfs, unless a later write
/// refreshed them. Returns how many went.
pub(crate) fn unmark_synced(tx: &Transaction<'_>, rows: &[(String, i64)]) -> rusqlite::Result<usize> {
    let mut n = 0;
    for (digest, created) in rows {
        n += db::exec(
            tx,
            "DELETE FROM unsynced_blobs WHERE digest = ?1 AND created = ?2 AND boot_id = ?3",
            params![digest, created, boot_id()],
        )?;
    }
    Ok(n)
}

/// What [`Store::recover_unsynced_blobs`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveredBlobs {
    /// Blobs of an earlier boot that were never synced, re-hashed and found intact.
    pub intact: usize,
    /// Those found torn or missing: removed, with the cache records using them.
    pub dropped: Vec<Digest>,
    /// Blob files nothing referenced, removed (bytes).
    pub unreferenced_bytes: u64,
}

/// Name of the file under the root that holds the boot id of the last recovery.
const BOOT_FILE: &str = "boot-id";

impl Store {
    /// Runs [`Store::recover_unsynced_blobs`] once per boot: when `ROOT/boot-id` does not
    /// hold this boot's id. A store this process cannot write (read-only) is left as it is.
    pub(crate) fn recover_after_boot(&self) -> Result<()> {
        let boot = boot_id();
        let path = self.root().join(BOOT_FILE);
        if !boot.is_empty() && std::fs::read_to_string(&path).is_ok_and(|s| s.trim() == boot) {
            return Ok(());
        }
        // The new boot file first (in tmp/): if the store is not writable, stop here.
        let tmp = self.layout().tmp_dir();
        let Ok(mut f) = tempfile::Builder::new()
            .prefix(&Layout::tmp_prefix("file"))
            .tempfile_in(&tmp)
        else {
            return Ok(());
        };
        f.write_all(format!("{boot}\n").as_bytes())
            .ctx("writing", f.path().to_path_buf())?;
        self.recover_unsynced_blobs()?;
        // Not fsynced: if this is lost, the next open recovers again (and finds nothing).
        f.persist(&path)
            .map_err(|e| crate::Error::io("renaming into", &path, e.error))?;
        Ok(())
    }

    /// After a crash: re-hashes each blob written without fsync in an earlier boot and never
    /// synced; removes a torn or missing one with the cache records and `snapshot_layers`
    /// rows using it (images listing it are left to `kiln system check`); then removes blob
    /// files nothing references and the leases of dead processes (see the module docs). One
    /// write transaction; `Store::open` runs it at the first open of each boot.
    pub fn recover_unsynced_blobs(&self) -> Result<RecoveredBlobs> {
        let boot = boot_id();
        let (mut out, freed) = self.write_sweep(|tx, sweep| {
            let mut out = RecoveredBlobs::default();
            crate::lease::remove_dead_leases(tx)?;
            let rows: Vec<String> = {
                let mut stmt = tx.prepare(
                    "SELECT digest FROM unsynced_blobs WHERE boot_id IS NULL OR boot_id != ?1",
                )?;
                let rows = stmt.query_map([boot], |r| r.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for key in rows {
                let intact = match Digest::parse(&key) {
                    Ok(d) => {
                        let path = self.blob_path(&d);
                        matches!(hash_file(&path), Ok((actual, _)) if actual == d)
                            .then_some(())
                            .ok_or(d)
                    }
                    // Not a digest: nothing to keep.
                    Err(_) => Ok(()),
                };
                match intact {
                    Ok(()) => out.intact += 1,
                    Err(d) => {
                        self.trash_blob(&mut sweep.trash, &d)?;
                        tx.execute(
                            "DELETE FROM cache WHERE key IN
                             (SELECT cache_key FROM cache_refs WHERE kind = 'blob' AND target = ?1)",
                            [&key],
                        )?;
                        tx.execute("DELETE FROM snapshot_layers WHERE blob_digest = ?1", [&key])?;
                        tx.execute("DELETE FROM wire_layers WHERE blob_digest = ?1", [&key])?;
                        out.dropped.push(d);
                    }
                }
                unmark_tx(tx, &key)?;
            }
            self.sweep_unreferenced_blobs(tx, sweep)?;
            Ok(out)
        })?;
        out.unreferenced_bytes = freed;
        Ok(out)
    }
}
