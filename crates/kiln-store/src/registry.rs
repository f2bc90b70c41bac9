//! What registry transfers remember (kiln-registry's `pull` and `push`): the repository
//! digests of an image (docker's `RepoDigests`), the blob each uncompressed layer became
//! when it was compressed for the wire (so a second push neither compresses again nor, when
//! the registry has it, reads the layer at all), and the repositories a blob is known to be
//! in (for cross-repository mounts).

use rusqlite::params;

use crate::Digest;
use crate::Store;
use crate::db::{self, now};
use crate::error::Result;
use crate::image::parse_digest;

/// A layer compressed for a registry, as remembered by [`Store::record_wire_layer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireLayer {
    /// The compressed blob's digest.
    pub blob: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Store {
    /// Records `reference` (`REPO@sha256:…`, full form) as a repository digest of `image`.
    pub fn record_repo_digest(&self, image: &Digest, reference: &str) -> Result<()> {
        self.write(|tx| {
            db::exec(
                tx,
                "INSERT INTO repo_digests (reference, image_id, updated) VALUES (?1, ?2, ?3)
                 ON CONFLICT(reference) DO UPDATE SET image_id = excluded.image_id, updated = excluded.updated",
                params![reference, image.to_string(), now()],
            )?;
            Ok(())
        })
    }

    /// The repository digests of `image` (full form), sorted.
    pub fn repo_digests(&self, image: &Digest) -> Result<Vec<String>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT reference FROM repo_digests WHERE image_id = ?1 ORDER BY reference",
            )?;
            let rows = stmt.query_map([image.to_string()], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Remembers that the layer `diff_id` compressed as `variant` is `layer`. A hint: the
    /// blob may be collected later; the registry may still have it.
    pub fn record_wire_layer(
        &self,
        diff_id: &Digest,
        variant: &str,
        layer: &WireLayer,
    ) -> Result<()> {
        self.write(|tx| {
            db::exec(
                tx,
                "INSERT OR REPLACE INTO wire_layers (diff_id, variant, blob_digest, media_type, size)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    diff_id.to_string(),
                    variant,
                    layer.blob.to_string(),
                    layer.media_type,
                    layer.size as i64
                ],
            )?;
            Ok(())
        })
    }

    /// What [`Store::record_wire_layer`] remembered for `diff_id` and `variant`.
    pub fn wire_layer(&self, diff_id: &Digest, variant: &str) -> Result<Option<WireLayer>> {
        self.read(|tx| {
            let row = rusqlite::OptionalExtension::optional(db::query_row(
                tx,
                "SELECT blob_digest, media_type, size FROM wire_layers WHERE diff_id = ?1 AND variant = ?2",
                params![diff_id.to_string(), variant],
                |r| {
                    Ok(WireLayer {
                        blob: parse_digest(&r.get::<_, String>(0)?)?,
                        media_type: r.get(1)?,
                        size: r.get::<_, i64>(2)? as u64,
                    })
                },
            ))?;
            Ok(row)
        })
    }

    /// Remembers that `registry` has `blob` in `repository`.
    pub fn record_blob_source(
        &self,
        blob: &Digest,
        registry: &str,
        repository: &str,
    ) -> Result<()> {
        self.write(|tx| {
            db::exec(
                tx,
                "INSERT OR IGNORE INTO blob_sources (blob_digest, registry, repository) VALUES (?1, ?2, ?3)",
                params![blob.to_string(), registry, repository],
            )?;
            Ok(())
        })
    }

    /// The repositories of `registry` known to hold `blob`.
    pub fn blob_sources(&self, blob: &Digest, registry: &str) -> Result<Vec<String>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT repository FROM blob_sources WHERE blob_digest = ?1 AND registry = ?2 ORDER BY repository",
            )?;
            let rows = stmt.query_map(params![blob.to_string(), registry], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}
