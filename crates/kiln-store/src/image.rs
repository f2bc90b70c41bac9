//! Image and tag records: what `images`, `inspect`, `tag` and `rmi` read and change.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

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
    /// Config `variant` (`v7` for `linux/arm/v7`), when it has one and the store knows it
    /// (rows recorded before schema 10 do not).
    pub variant: Option<String>,
    /// The image it was built on, when the builder recorded it.
    pub parent: Option<Digest>,
    /// When it entered this store, unix seconds.
    pub added: i64,
    /// Full references (`docker.io/library/busybox:latest`) that point at it, sorted. A tag
    /// that points at an image index is not here even when this image is the index's entry
    /// for the host (see [`crate::IndexRecord`]).
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

/// What a name resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Named {
    /// An image, by ID.
    Image(Digest),
    /// An image index, by digest.
    Index(Digest),
}

/// What happened to a tag when it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagChange {
    /// The full reference.
    pub reference: String,
    /// The image (or image index) it pointed at before, if another one.
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

const IMAGE_COLUMNS: &str = "id, manifest_digest, manifest_media_type, created, size, architecture, os, parent, added, variant";

impl ImageRecord {
    /// The platform its config declares, normalized.
    pub fn platform(&self) -> kiln_image::Platform {
        kiln_image::Platform::new(&self.os, &self.architecture, self.variant.as_deref())
    }
}

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
        variant: r.get(9)?,
        tags: Vec::new(),
        last_tagged: None,
    })
}

pub(crate) fn load_images(tx: &Connection, filter_id: Option<&Digest>) -> Result<Vec<ImageRecord>> {
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
            tx.prepare("SELECT reference, image_id, updated FROM tags WHERE index_digest IS NULL ORDER BY reference")?;
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

pub(crate) fn image_layers(tx: &Connection, id: &Digest) -> Result<Vec<LayerRecord>> {
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
pub(crate) fn set_tag(tx: &Connection, reference: &str, id: &Digest) -> Result<TagChange> {
    write_tag(tx, reference, id, None)
}

/// Points `reference` at image `image`, or at index `index` (whose entry for this machine is
/// `image`); returns what it named before (an index by its digest, or an image), if another.
pub(crate) fn write_tag(
    tx: &Connection,
    reference: &str,
    image: &Digest,
    index: Option<&Digest>,
) -> Result<TagChange> {
    if reference.contains('@') {
        return Err(Error::DigestTag(reference.to_string()));
    }
    let previous: Option<String> = db::query_row(
        tx,
        "SELECT COALESCE(index_digest, image_id) FROM tags WHERE reference = ?1",
        [reference],
        |r| r.get(0),
    )
    .optional()?;
    let key = index.unwrap_or(image).to_string();
    // Re-tagging with the tag it has (every no-op rebuild) writes nothing.
    if previous.as_deref() != Some(key.as_str()) {
        db::exec(
            tx,
            "INSERT INTO tags (reference, image_id, updated, index_digest) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(reference) DO UPDATE SET image_id = excluded.image_id,
                 updated = excluded.updated, index_digest = excluded.index_digest",
            params![
                reference,
                image.to_string(),
                now(),
                index.map(|d| d.to_string())
            ],
        )?;
    }
    let previous = previous
        .filter(|p| *p != key)
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
        // A platform kiln's own parser refuses (`..`, spaces, 100 kB names) is never written:
        // indexes and `--platform` read these columns back through it.
        let platform = format!("{}/{}", image.os, image.architecture);
        if let Err(e) = kiln_image::Platform::parse(&platform) {
            return Err(Error::InvalidImage {
                what: format!("image {}", image.config_digest),
                reason: format!("its config's platform {e}"),
            });
        }
        let mut needed = vec![image.manifest_digest, image.config_digest];
        needed.extend(image.layers.iter().map(|l| l.blob));
        let diff_ids: Vec<Digest> = image.layers.iter().map(|l| l.diff_id).collect();
        let chains = chain_ids(&diff_ids);
        let size: u64 = image.layers.iter().map(|l| l.uncompressed_size).sum();
        let id = image.config_digest;
        // The config's variant, which NewImage does not carry; read only for a new image.
        let variant_of = || -> Result<Option<String>> {
            let bytes = self.read_blob(&id)?;
            let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
                what: format!("config {id}"),
                source: e,
            })?;
            Ok(v.get("variant")
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
                .map(str::to_string))
        };
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
                let variant = variant_of()?;
                db::exec(tx,
                    "INSERT INTO images (id, manifest_digest, manifest_media_type, created, size, architecture, os, parent, added, variant)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
                        variant,
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
    /// A name of an image index (a tag pointing at one, or its digest) gives the index's
    /// image for the host platform, or its first one when the host is not in it; see
    /// [`Store::resolve_platform`] to choose another platform.
    pub fn resolve_image(&self, name: &str) -> Result<ImageRecord> {
        match self.resolve_name(name)? {
            Named::Image(id) => self
                .image(&id)?
                .ok_or_else(|| Error::ImageNotFound(name.to_string())),
            Named::Index(d) => {
                let index = self
                    .index(&d)?
                    .ok_or_else(|| Error::ImageNotFound(name.to_string()))?;
                let entry = index
                    .pick(&kiln_image::Platform::host())
                    .or_else(|| index.entries.first())
                    .ok_or_else(|| Error::ImageNotFound(name.to_string()))?;
                Ok(entry.image.clone())
            }
        }
    }

    /// What `name` names: an image or an image index (by tag, full digest or unique prefix).
    pub(crate) fn resolve_name(&self, name: &str) -> Result<Named> {
        let not_found = || Error::ImageNotFound(name.to_string());
        let bare = name.strip_prefix("sha256:").unwrap_or(name);
        let is_hex =
            !bare.is_empty() && bare.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if is_hex && bare.len() == 64 {
            let id = Digest::from_hex(bare).map_err(|_| not_found())?;
            let key = id.to_string();
            let found = self.read(|tx| {
                if db::query_row(tx, "SELECT 1 FROM images WHERE id = ?1", [&key], |_| Ok(()))
                    .optional()?
                    .is_some()
                {
                    return Ok(Some(Named::Image(id)));
                }
                Ok(db::query_row(
                    tx,
                    "SELECT 1 FROM image_indexes WHERE digest = ?1",
                    [&key],
                    |_| Ok(()),
                )
                .optional()?
                .map(|_| Named::Index(id)))
            })?;
            return found.ok_or_else(not_found);
        }
        if !name.starts_with("sha256:") {
            if let Ok(full) = crate::reference::normalize(name) {
                let found: Option<(String, Option<String>)> = self.read(|tx| {
                    Ok(db::query_row(
                        tx,
                        "SELECT image_id, index_digest FROM tags WHERE reference = ?1",
                        [&full],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?)
                })?;
                match found {
                    Some((_, Some(index))) => {
                        return Ok(Named::Index(
                            Digest::parse(&index).map_err(|_| not_found())?,
                        ));
                    }
                    Some((id, None)) => {
                        return Ok(Named::Image(Digest::parse(&id).map_err(|_| not_found())?));
                    }
                    None => {}
                }
                // `REPO@sha256:…`: an image pulled or pushed under that repository digest, as
                // docker resolves it from RepoDigests (a tag beside the digest does not count).
                if let Ok(r) = crate::ImageRef::parse(name)
                    && let Some(d) = r.digest()
                {
                    let key = format!("{}@{d}", r.name());
                    let id: Option<String> = self.read(|tx| {
                        Ok(db::query_row(
                            tx,
                            "SELECT image_id FROM repo_digests WHERE reference = ?1",
                            [&key],
                            |r| r.get(0),
                        )
                        .optional()?)
                    })?;
                    if let Some(id) = id {
                        return Ok(Named::Image(Digest::parse(&id).map_err(|_| not_found())?));
                    }
                }
            } else if !is_hex {
                return Err(crate::reference::normalize(name).unwrap_err());
            }
        }
        if is_hex {
            let pattern = format!("sha256:{bare}%");
            let found: Vec<(String, bool)> = self.read(|tx| {
                let mut stmt = tx.prepare(
                    "SELECT id, 0 FROM images WHERE id LIKE ?1
                     UNION ALL SELECT digest, 1 FROM image_indexes WHERE digest LIKE ?1",
                )?;
                let rows = stmt.query_map([pattern], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })?;
            match found.as_slice() {
                [] => {}
                [(d, is_index)] => {
                    let d = Digest::parse(d).map_err(|_| not_found())?;
                    return Ok(if *is_index {
                        Named::Index(d)
                    } else {
                        Named::Image(d)
                    });
                }
                more => {
                    return Err(Error::AmbiguousImage {
                        prefix: name.to_string(),
                        count: more.len(),
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
