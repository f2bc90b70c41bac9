//! Image and tag records: what `images`, `inspect`, `tag` and `rmi` read and change.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Transaction, params};

use crate::Digest;
use crate::Store;
use crate::db::{self, now};
use crate::error::{Error, Result};

/// One image in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The image ID: the digest of its config blob.
    pub id: Digest,
    /// Digest of the manifest blob the store keeps for it.
    pub manifest_digest: Digest,
    /// Media type of that manifest (OCI or Docker schema 2).
    pub manifest_media_type: String,
    /// `created` from the config, unix seconds.
    pub created: Option<i64>,
    /// Sum of the uncompressed sizes of its layers (docker's SIZE column).
    pub size: u64,
    /// Config `architecture`.
    pub architecture: String,
    /// Config `os`.
    pub os: String,
    /// The image it was built on, when the builder recorded it.
    pub parent: Option<Digest>,
    /// When it entered this store, unix seconds.
    pub added: i64,
    /// Full references (`docker.io/library/busybox:latest`) that point at it, sorted.
    pub tags: Vec<String>,
    /// When a tag was last pointed at it, unix seconds.
    pub last_tagged: Option<i64>,
}

/// A layer blob and what it unpacks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRecord {
    /// The blob as stored (compressed or not).
    pub blob: Digest,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Media type of the blob.
    pub media_type: String,
    /// Size of the blob.
    pub compressed_size: u64,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
}

/// An image to record; its blobs must already be in the store (under a lease).
#[derive(Debug, Clone)]
pub struct NewImage {
    /// Manifest blob digest.
    pub manifest_digest: Digest,
    /// Manifest media type.
    pub manifest_media_type: String,
    /// Config blob digest (becomes the image ID).
    pub config_digest: Digest,
    /// Layers, base first.
    pub layers: Vec<LayerRecord>,
    /// Config `created`, unix seconds.
    pub created: Option<i64>,
    /// Config `architecture`.
    pub architecture: String,
    /// Config `os`.
    pub os: String,
    /// The image this one was built on, if known.
    pub parent: Option<Digest>,
}

/// What happened to a tag when it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagChange {
    /// The full reference.
    pub reference: String,
    /// The image it pointed at before, if another one.
    pub previous: Option<Digest>,
}

/// The chain ID of each layer: `chain[0] = diff[0]`, `chain[n] = sha256(chain[n-1] + " " + diff[n])`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => *d,
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

pub(crate) fn parse_digest(s: &str) -> rusqlite::Result<Digest> {
    Digest::parse(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

const IMAGE_COLUMNS: &str =
    "id, manifest_digest, manifest_media_type, created, size, architecture, os, parent, added";

fn image_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ImageRecord> {
    Ok(ImageRecord {
        id: parse_digest(&r.get::<_, String>(0)?)?,
        manifest_digest: parse_digest(&r.get::<_, String>(1)?)?,
        manifest_media_type: r.get(2)?,
        created: r.get(3)?,
        size: r.get::<_, i64>(4)? as u64,
        architecture: r.get(5)?,
        os: r.get(6)?,
        parent: r
            .get::<_, Option<String>>(7)?
            .map(|p| parse_digest(&p))
            .transpose()?,
        added: r.get(8)?,
        tags: Vec::new(),
        last_tagged: None,
    })
}

pub(crate) fn load_images(
    tx: &Transaction<'_>,
    filter_id: Option<&Digest>,
) -> Result<Vec<ImageRecord>> {
    let mut images: Vec<ImageRecord> = match filter_id {
        Some(id) => {
            let mut stmt =
                tx.prepare(&format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = ?1"))?;
            stmt.query_map([id.to_string()], image_from_row)?
                .collect::<rusqlite::Result<_>>()?
        }
        None => {
            let mut stmt = tx.prepare(&format!("SELECT {IMAGE_COLUMNS} FROM images"))?;
            stmt.query_map([], image_from_row)?
                .collect::<rusqlite::Result<_>>()?
        }
    };
    let mut tags: BTreeMap<String, (Vec<String>, i64)> = BTreeMap::new();
    {
        let mut stmt =
            tx.prepare("SELECT reference, image_id, updated FROM tags ORDER BY reference")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (reference, id, updated) = row?;
            let e = tags.entry(id).or_default();
            e.0.push(reference);
            e.1 = e.1.max(updated);
        }
    }
    for img in &mut images {
        if let Some((t, updated)) = tags.remove(&img.id.to_string()) {
            img.tags = t;
            img.last_tagged = Some(updated);
        }
    }
    Ok(images)
}

pub(crate) fn image_layers(tx: &Transaction<'_>, id: &Digest) -> Result<Vec<LayerRecord>> {
    let mut stmt = tx.prepare(
        "SELECT l.blob_digest, l.diff_id, l.media_type, l.compressed_size, l.uncompressed_size
         FROM image_layers il JOIN layers l ON l.blob_digest = il.blob_digest
         WHERE il.image_id = ?1 ORDER BY il.position",
    )?;
    let rows = stmt.query_map([id.to_string()], |r| {
        Ok(LayerRecord {
            blob: parse_digest(&r.get::<_, String>(0)?)?,
            diff_id: parse_digest(&r.get::<_, String>(1)?)?,
            media_type: r.get(2)?,
            compressed_size: r.get::<_, i64>(3)? as u64,
            uncompressed_size: r.get::<_, i64>(4)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Points `reference` at `id`; returns the image it pointed at before, if another one.
pub(crate) fn set_tag(tx: &Transaction<'_>, reference: &str, id: &Digest) -> Result<TagChange> {
    if reference.contains('@') {
        return Err(Error::DigestTag(reference.to_string()));
    }
    let previous: Option<String> = db::query_row(
        tx,
        "SELECT image_id FROM tags WHERE reference = ?1",
        [reference],
        |r| r.get(0),
    )
    .optional()?;
    // Re-tagging an image with the tag it has (every no-op rebuild) writes nothing.
    if previous.as_deref() != Some(id.to_string().as_str()) {
        db::exec(
            tx,
            "INSERT INTO tags (reference, image_id, updated) VALUES (?1, ?2, ?3)
             ON CONFLICT(reference) DO UPDATE SET image_id = excluded.image_id, updated = excluded.updated",
            params![reference, id.to_string(), now()],
        )?;
    }
    let previous = previous
        .filter(|p| *p != id.to_string())
        .map(|p| parse_digest(&p))
        .transpose()?;
    Ok(TagChange {
        reference: reference.to_string(),
        previous,
    })
}

impl Store {
    /// Records an image and points `tags` (full references) at it, in one transaction.
    /// Fails if one of its blobs is missing, so the database never names absent content.
    pub fn record_image(
        &self,
        image: &NewImage,
        tags: &[String],
    ) -> Result<(ImageRecord, Vec<TagChange>)> {
        let mut needed = vec![image.manifest_digest, image.config_digest];
        needed.extend(image.layers.iter().map(|l| l.blob));
        let diff_ids: Vec<Digest> = image.layers.iter().map(|l| l.diff_id).collect();
        let chains = chain_ids(&diff_ids);
        let size: u64 = image.layers.iter().map(|l| l.uncompressed_size).sum();
        let id = image.config_digest;
        let (record, changes) = self.write(|tx| {
            for d in &needed {
                if !self.has_blob(d) {
                    return Err(Error::BlobNotFound {
                        digest: d.to_string(),
                    });
                }
            }
            let exists: bool = db::query_row(
                tx, "SELECT 1 FROM images WHERE id = ?1", [id.to_string()], |_| Ok(()))
                .optional()?
                .is_some();
            if !exists {
                db::exec(tx,
                    "INSERT INTO images (id, manifest_digest, manifest_media_type, created, size, architecture, os, parent, added)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        id.to_string(),
                        image.manifest_digest.to_string(),
                        image.manifest_media_type,
                        image.created,
                        size as i64,
                        image.architecture,
                        image.os,
                        image.parent.map(|p| p.to_string()),
                        now(),
                    ],
                )?;
                for (pos, (layer, chain)) in image.layers.iter().zip(&chains).enumerate() {
                    db::exec(tx,
                        "INSERT OR IGNORE INTO layers (blob_digest, diff_id, media_type, compressed_size, uncompressed_size)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            layer.blob.to_string(),
                            layer.diff_id.to_string(),
                            layer.media_type,
                            layer.compressed_size as i64,
                            layer.uncompressed_size as i64,
                        ],
                    )?;
                    db::exec(tx,
                        "INSERT INTO image_layers (image_id, position, blob_digest, chain_id) VALUES (?1, ?2, ?3, ?4)",
                        params![id.to_string(), pos as i64, layer.blob.to_string(), chain.to_string()],
                    )?;
                }
            }
            let mut changes = Vec::new();
            for t in tags {
                changes.push(set_tag(tx, t, &id)?);
            }
            // Read back in the same transaction: a concurrent prune may remove it right after.
            let record = load_images(tx, Some(&id))?
                .pop()
                .ok_or_else(|| Error::ImageNotFound(id.to_string()))?;
            Ok((record, changes))
        })?;
        if !tags.is_empty() {
            self.sync_index()?;
        }
        Ok((record, changes))
    }

    /// Every image, newest first (by config `created`, then by arrival).
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let mut images = self.read(|tx| load_images(tx, None))?;
        images.sort_by(|a, b| {
            (b.created.unwrap_or(0), b.added, b.id).cmp(&(a.created.unwrap_or(0), a.added, a.id))
        });
        Ok(images)
    }

    /// One image by ID.
    pub fn image(&self, id: &Digest) -> Result<Option<ImageRecord>> {
        Ok(self.read(|tx| load_images(tx, Some(id)))?.pop())
    }

    /// An image's config document, parsed (its digest checked).
    pub fn image_config(&self, id: &Digest) -> Result<serde_json::Value> {
        let bytes = self.read_blob(id)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            what: format!("config {id}"),
            source: e,
        })
    }

    /// An image's layers, base first.
    pub fn layers(&self, id: &Digest) -> Result<Vec<LayerRecord>> {
        self.read(|tx| image_layers(tx, id))
    }

    /// Finds an image the way docker does: a full ID (`sha256:<hex>` or `<hex>`), a
    /// reference (`busybox` = `docker.io/library/busybox:latest`), or a unique ID prefix.
    pub fn resolve_image(&self, name: &str) -> Result<ImageRecord> {
        let not_found = || Error::ImageNotFound(name.to_string());
        let bare = name.strip_prefix("sha256:").unwrap_or(name);
        let is_hex =
            !bare.is_empty() && bare.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if is_hex && bare.len() == 64 {
            let id = Digest::from_hex(bare).map_err(|_| not_found())?;
            return self.image(&id)?.ok_or_else(not_found);
        }
        if !name.starts_with("sha256:") {
            if let Ok(full) = crate::reference::normalize(name) {
                let found: Option<String> = self.read(|tx| {
                    Ok(db::query_row(
                        tx,
                        "SELECT image_id FROM tags WHERE reference = ?1",
                        [&full],
                        |r| r.get(0),
                    )
                    .optional()?)
                })?;
                if let Some(id) = found {
                    let id = Digest::parse(&id).map_err(|_| not_found())?;
                    return self.image(&id)?.ok_or_else(not_found);
                }
            } else if !is_hex {
                return Err(crate::reference::normalize(name).unwrap_err());
            }
        }
        if is_hex {
            let pattern = format!("sha256:{bare}%");
            let ids: Vec<String> = self.read(|tx| {
                let mut stmt = tx.prepare("SELECT id FROM images WHERE id LIKE ?1")?;
                let rows = stmt.query_map([pattern], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })?;
            match ids.len() {
                0 => {}
                1 => {
                    let id = Digest::parse(&ids[0]).map_err(|_| not_found())?;
                    return self.image(&id)?.ok_or_else(not_found);
                }
                n => {
                    return Err(Error::AmbiguousImage {
                        prefix: name.to_string(),
                        count: n,
                    });
                }
            }
        }
        Err(not_found())
    }

    /// Points `reference` (any form; normalized here) at image `id`.
    pub fn tag(&self, id: &Digest, reference: &str) -> Result<TagChange> {
        let full = crate::reference::normalize(reference)?;
        let change = self.write(|tx| {
            let exists = db::query_row(
                tx,
                "SELECT 1 FROM images WHERE id = ?1",
                [id.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
            if !exists {
                return Err(Error::ImageNotFound(id.to_string()));
            }
            set_tag(tx, &full, id)
        })?;
        self.sync_index()?;
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let chains = chain_ids(&[a, b]);
        assert_eq!(chains[0], a);
        assert_eq!(chains[1], Digest::of(format!("{a} {b}").as_bytes()));
    }
}
