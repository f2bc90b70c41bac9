//! What keeps content alive: the reference queries that the collector and the trash recovery
//! share.

use rusqlite::{Connection, OptionalExtension};

/// Does an image, image index, layer row, cache record or lease reference blob `digest`?
pub(crate) fn blob_is_live(tx: &Connection, digest: &str) -> rusqlite::Result<bool> {
    tx.query_row(
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM images WHERE id = ?1 OR manifest_digest = ?1)
            OR EXISTS (SELECT 1 FROM image_indexes WHERE digest = ?1)
            OR EXISTS (SELECT 1 FROM image_layers WHERE blob_digest = ?1)
            OR EXISTS (SELECT 1 FROM cache_refs WHERE kind = 'blob' AND target = ?1)
            OR EXISTS (SELECT 1 FROM lease_refs WHERE kind = 'blob' AND target = ?1)",
        [digest],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
}

/// Does a snapshot row name directory `dir` under `snapshots-v1/`?
pub(crate) fn snapshot_dir_is_recorded(tx: &Connection, dir: &str) -> rusqlite::Result<bool> {
    Ok(tx
        .query_row("SELECT 1 FROM snapshots WHERE dir = ?1", [dir], |_| Ok(()))
        .optional()?
        .is_some())
}
