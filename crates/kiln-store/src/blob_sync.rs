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

use rusqlite::{Connection, OptionalExtension, params};

use crate::Digest;
use crate::Store;
use crate::boot::boot_id;
use crate::db::{self, now};
use crate::error::{IoContext, Result};
use crate::layout::{Layout, hash_file};

/// Records `digest` as written in this boot and not yet synced (or refreshes its row).
pub(crate) fn mark_tx(tx: &Connection, digest: &str) -> rusqlite::Result<()> {
    db::exec(
        tx,
        "INSERT INTO unsynced_blobs (digest, boot_id, created) VALUES (?1, ?2, ?3)
         ON CONFLICT(digest) DO UPDATE SET boot_id = excluded.boot_id, created = excluded.created",
        params![digest, boot_id(), now()],
    )?;
    Ok(())
}

/// Whether `digest` may not be on disk yet.
pub(crate) fn is_marked_tx(tx: &Connection, digest: &str) -> rusqlite::Result<bool> {
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
pub(crate) fn unmark_tx(tx: &Connection, digest: &str) -> rusqlite::Result<()> {
    db::exec(tx, "DELETE FROM unsynced_blobs WHERE digest = ?1", [digest])?;
    Ok(())
}

/// The rows of this boot created at or before `before`: (digest, created).
pub(crate) fn this_boot_rows(tx: &Connection, before: i64) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = tx.prepare_cached(
        "SELECT digest, created FROM unsynced_blobs WHERE boot_id = ?1 AND created <= ?2",
    )?;
    let rows = stmt.query_map(params![boot_id(), before], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Deletes the rows read by [`this_boot_rows`] before a syncfs, unless a later write
/// refreshed them. Returns how many went.
pub(crate) fn unmark_synced(tx: &Connection, rows: &[(String, i64)]) -> rusqlite::Result<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{Lease, RefKind};
    use crate::{LayerRecord, NewImage, Problem};
    use kiln_image::manifest::{DescriptorOut, build_manifest};

    fn rows(store: &Store) -> Vec<(String, String)> {
        store
            .read(|tx| {
                let mut stmt =
                    tx.prepare("SELECT digest, boot_id FROM unsynced_blobs ORDER BY digest")?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .unwrap()
    }

    fn age_rows(store: &Store, boot: Option<&str>) {
        store
            .write(|tx| {
                tx.execute(
                    "UPDATE unsynced_blobs SET created = created - 120, boot_id = coalesce(?1, boot_id)",
                    [boot],
                )?;
                Ok(())
            })
            .unwrap();
    }

    /// A crash and a reboot, as the store sees them: the rows come from an earlier boot and
    /// the boot file names it too; then a new process opens the store.
    fn reboot(root: &std::path::Path, store: Store) -> Store {
        store
            .write(|tx| {
                tx.execute("UPDATE unsynced_blobs SET boot_id = 'earlier'", [])?;
                Ok(())
            })
            .unwrap();
        std::fs::write(root.join(BOOT_FILE), "earlier\n").unwrap();
        drop(store);
        Store::open(root).unwrap()
    }

    fn tar_with(content: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "f", content).unwrap();
        b.into_inner().unwrap()
    }

    /// An image whose blobs are all written as the build's export writes them.
    fn deferred_image(store: &Store, lease: &Lease, layer: &[u8], tag: &str) -> (Digest, Digest) {
        let tar = tar_with(layer);
        let l = store.put_blob_deferred(lease, &tar).unwrap();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [l.digest.to_string()]},
        }))
        .unwrap();
        let c = store.put_blob_deferred(lease, &config).unwrap();
        let (manifest, mdigest) = build_manifest(
            &DescriptorOut::new("application/vnd.oci.image.config.v1+json", c.digest, c.size),
            &[DescriptorOut::new(
                "application/vnd.oci.image.layer.v1.tar",
                l.digest,
                l.size,
            )],
        );
        store.put_blob_deferred(lease, &manifest).unwrap();
        let tags = [kiln_image::ImageRef::parse(tag).unwrap().to_string()];
        let (rec, _) = store
            .record_image(
                &NewImage {
                    manifest_digest: mdigest,
                    manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                    config_digest: c.digest,
                    layers: vec![LayerRecord {
                        blob: l.digest,
                        diff_id: l.digest,
                        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                        compressed_size: l.size,
                        uncompressed_size: l.size,
                    }],
                    created: None,
                    architecture: "amd64".into(),
                    os: "linux".into(),
                    parent: None,
                },
                &tags,
            )
            .unwrap();
        (rec.id, l.digest)
    }

    #[test]
    fn deferred_blobs_are_marked_until_the_late_syncfs_and_durable_ones_never_are() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let lease = store.lease().unwrap();
        let durable = store.put_blob(&lease, b"pulled", None).unwrap();
        let deferred = store.put_blob_deferred(&lease, b"exported").unwrap();
        assert_eq!(
            rows(&store),
            vec![(deferred.digest.to_string(), boot_id().to_string())],
            "only the deferred blob is marked, with this boot"
        );
        assert_eq!(store.read_blob(&deferred.digest).unwrap(), b"exported");
        // Right after the build: no syncfs, the row stays.
        assert_eq!(store.settle_snapshots().unwrap().blobs_synced, 0);
        assert_eq!(rows(&store).len(), 1);
        // Past the writeback delay: the syncfs covers it, the row goes.
        age_rows(&store, None);
        assert_eq!(store.settle_snapshots().unwrap().blobs_synced, 1);
        assert!(rows(&store).is_empty());
        // A durable writer of a marked blob replaces it with its fsynced copy.
        let again = store.put_blob_deferred(&lease, b"again").unwrap();
        assert_eq!(rows(&store).len(), 1);
        store.put_blob(&lease, b"again", None).unwrap();
        assert!(rows(&store).is_empty(), "the fsynced copy is not marked");
        assert_eq!(store.read_blob(&again.digest).unwrap(), b"again");
        let _ = durable;
    }

    #[test]
    fn after_a_crash_a_torn_blob_is_dropped_with_its_cache_records_and_an_intact_one_kept() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let store = Store::open(&root).unwrap();
        let lease = store.lease().unwrap();
        let (torn_image, torn) = deferred_image(&store, &lease, b"torn layer", "torn:1");
        let (kept_image, kept) = deferred_image(&store, &lease, b"intact layer", "kept:1");
        // A snapshot the torn layer was made from, and the cache record of its step.
        let dir = store.prepare_snapshot_dir().unwrap();
        std::fs::write(dir.join("f"), "torn layer").unwrap();
        store.commit_snapshot(&lease, "snap", None, &dir).unwrap();
        let layer = store.layers(&torn_image).unwrap().remove(0);
        store.record_snapshot_layer("snap", "tar", &layer).unwrap();
        store
            .cache_put(
                "step",
                b"{}",
                &[
                    (RefKind::Snapshot, "snap"),
                    (RefKind::Blob, &torn.to_string()),
                ],
            )
            .unwrap();
        store
            .cache_put("other", b"{}", &[(RefKind::Blob, &kept.to_string())])
            .unwrap();
        assert_eq!(rows(&store).len(), 6, "three blobs per image");
        drop(lease);
        // The power went out before the writeback: the torn layer's file is short.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(store.blob_path(&torn))
            .unwrap();
        f.set_len(100).unwrap();
        drop(f);

        let store = reboot(&root, store);
        assert!(rows(&store).is_empty(), "every row re-hashed");
        assert!(
            matches!(
                store.open_blob(&torn),
                Err(crate::Error::BlobNotFound { .. })
            ),
            "the torn blob is never served"
        );
        assert_eq!(
            store.cache_peek("step").unwrap(),
            None,
            "its cache record went"
        );
        assert!(
            store
                .lease()
                .unwrap()
                .use_snapshot_layers(&["snap"], "tar", &[])
                .unwrap()[0]
                .is_none(),
            "so did the record of the layer made from the snapshot"
        );
        assert!(store.cache_peek("other").unwrap().is_some());
        assert_eq!(store.read_blob(&kept).unwrap(), tar_with(b"intact layer"));
        assert!(store.image(&kept_image).unwrap().is_some());
        // The image that lists it is left for `system check` to report and repair.
        let report = store.check(false).unwrap();
        assert_eq!(
            report.problems.len(),
            1,
            "only the torn image: {:?}",
            report.problems
        );
        assert!(matches!(
            &report.problems[0],
            Problem::BrokenImage { image, .. } if *image == torn_image
        ));
        store.check(true).unwrap();
        assert!(store.check(false).unwrap().problems.is_empty());
        assert!(store.image(&kept_image).unwrap().is_some());
        // A later open of the same boot does not re-hash or sweep again.
        assert_eq!(
            std::fs::read_to_string(root.join(BOOT_FILE))
                .unwrap()
                .trim(),
            boot_id()
        );
    }

    #[test]
    fn a_blob_whose_row_a_power_loss_dropped_is_removed_at_the_first_open_of_a_boot() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let store = Store::open(&root).unwrap();
        let lease = store.lease().unwrap();
        let kept = store
            .put_blob(&lease, b"held by a cache record", None)
            .unwrap();
        store
            .cache_put("rec", b"{}", &[(RefKind::Blob, &kept.digest.to_string())])
            .unwrap();
        let lost = store
            .put_blob_deferred(&lease, b"lost with the WAL's tail")
            .unwrap();
        drop(lease);
        // The commits after the rename were lost: no row, nothing references the file.
        store
            .write(|tx| {
                tx.execute("DELETE FROM unsynced_blobs", [])?;
                tx.execute("DELETE FROM lease_refs", [])?;
                Ok(())
            })
            .unwrap();
        // Within the same boot, a reopen leaves it (a later prune collects it).
        let store = {
            drop(store);
            Store::open(&root).unwrap()
        };
        assert!(store.has_blob(&lost.digest));
        let store = reboot(&root, store);
        assert!(!store.has_blob(&lost.digest), "swept: it may be torn");
        assert!(store.has_blob(&kept.digest));
        // Without a boot file (an older store), the same sweep runs once.
        let again = {
            let lease = store.lease().unwrap();
            store.put_blob_deferred(&lease, b"x").unwrap()
        };
        std::fs::remove_file(root.join(BOOT_FILE)).unwrap();
        store
            .write(|tx| {
                tx.execute("DELETE FROM unsynced_blobs", [])?;
                Ok(())
            })
            .unwrap();
        drop(store);
        let store = Store::open(&root).unwrap();
        assert!(!store.has_blob(&again.digest));
        assert!(store.check(false).unwrap().problems.is_empty());
    }
}
