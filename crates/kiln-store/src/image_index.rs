//! Image indexes (multi-platform images): one record per OCI image index (or Docker manifest
//! list) the store keeps, listing one image per platform.
//!
//! ```text
//! image_indexes(digest, media_type, size, added)          the index blob, kept alive by the row
//! index_entries(index_digest, position, image_id, platform)   one image per platform, in order
//! tags(reference, image_id, index_digest)                  a tag may name an index: `image_id`
//!                                                          then holds the host's entry
//! ```
//!
//! The rule that keeps old callers working: a tag that names an index also names one image
//! (the entry for the host's platform, or the first entry when the host is not in it), so
//! [`Store::resolve_image`] gives a runnable image for any name. Callers that care about
//! platforms ask [`Store::resolve_platform`] or [`Store::resolve_index`].
//!
//! Every entry's image is a row of `images` whose manifest is the one the index blob names
//! (an image's manifest never changes once recorded), so the index blob and the rows agree.
//! An index keeps its images alive: `rmi` of an entry's image is refused without `-f`, and
//! prune never removes one (see `gc.rs`).

use rusqlite::{Connection, OptionalExtension, params};

use kiln_image::Platform;
use kiln_image::compression::media_types;
use kiln_image::manifest::{DescriptorOut, build_index};

use crate::Digest;
use crate::Store;
use crate::db::{self, now};
use crate::error::{Error, Result};
use crate::image::{ImageRecord, Named, TagChange, load_images, parse_digest};
use crate::lease::Lease;

/// One platform of an image index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The platform the index gives for it (normalized).
    pub platform: Platform,
    /// The image.
    pub image: ImageRecord,
}

/// An image index in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRecord {
    /// Digest of the index blob (docker's containerd store shows it as the image ID).
    pub digest: Digest,
    /// Its media type (OCI image index or Docker manifest list).
    pub media_type: String,
    /// Size of the index blob.
    pub size: u64,
    /// When it entered this store, unix seconds.
    pub added: i64,
    /// Its images, in the index's order.
    pub entries: Vec<IndexEntry>,
    /// Full references that point at it, sorted.
    pub tags: Vec<String>,
    /// When a tag was last pointed at it, unix seconds.
    pub last_tagged: Option<i64>,
}

impl IndexRecord {
    /// The entry for `want`: one whose platform is exactly `want` first, else the first one
    /// that [`Platform::matches`] it (a missing variant on either side matches any).
    pub fn pick(&self, want: &Platform) -> Option<&IndexEntry> {
        let want = want.clone().normalize();
        self.entries
            .iter()
            .find(|e| e.platform == want)
            .or_else(|| self.entries.iter().find(|e| want.matches(&e.platform)))
    }

    /// The entry the index's tags resolve to for callers that want one image: the host's
    /// platform, else the first entry.
    pub fn default_entry(&self) -> Option<&IndexEntry> {
        self.pick(&Platform::host())
            .or_else(|| self.entries.first())
    }

    /// The platforms it holds, in order.
    pub fn platforms(&self) -> Vec<Platform> {
        self.entries.iter().map(|e| e.platform.clone()).collect()
    }

    /// Sum of its images' sizes (uncompressed layers; shared layers counted per image).
    pub fn size_of_images(&self) -> u64 {
        self.entries.iter().map(|e| e.image.size).sum()
    }

    /// Newest `created` of its images.
    pub fn created(&self) -> Option<i64> {
        self.entries.iter().filter_map(|e| e.image.created).max()
    }
}

/// Reads index `digest` (with its entries and tags) in `tx`; None if there is no such index.
pub(crate) fn load_index(tx: &Connection, digest: &Digest) -> Result<Option<IndexRecord>> {
    let key = digest.to_string();
    let Some((media_type, size, added)) = db::query_row(
        tx,
        "SELECT media_type, size, added FROM image_indexes WHERE digest = ?1",
        [&key],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        },
    )
    .optional()?
    else {
        return Ok(None);
    };
    let rows: Vec<(String, String)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT image_id, platform FROM index_entries WHERE index_digest = ?1 ORDER BY position",
        )?;
        let rows = stmt.query_map([&key], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut entries = Vec::with_capacity(rows.len());
    for (image_id, platform) in rows {
        let id = parse_digest(&image_id)?;
        let image = load_images(tx, Some(&id))?
            .pop()
            .ok_or_else(|| Error::ImageNotFound(image_id.clone()))?;
        let platform = Platform::parse(&platform).map_err(|e| Error::InvalidImage {
            what: format!("image index {digest}"),
            reason: e.to_string(),
        })?;
        entries.push(IndexEntry { platform, image });
    }
    let mut tags = Vec::new();
    let mut last_tagged = None;
    {
        let mut stmt = tx.prepare_cached(
            "SELECT reference, updated FROM tags WHERE index_digest = ?1 ORDER BY reference",
        )?;
        let rows = stmt.query_map([&key], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for r in rows {
            let (t, u) = r?;
            tags.push(t);
            last_tagged = Some(last_tagged.unwrap_or(u).max(u));
        }
    }
    Ok(Some(IndexRecord {
        digest: *digest,
        media_type,
        size: size as u64,
        added,
        entries,
        tags,
        last_tagged,
    }))
}

/// Digests of the indexes that list image `id`.
pub(crate) fn indexes_using(tx: &Connection, id: &Digest) -> Result<Vec<Digest>> {
    let mut stmt = tx.prepare_cached(
        "SELECT DISTINCT index_digest FROM index_entries WHERE image_id = ?1 ORDER BY index_digest",
    )?;
    let rows = stmt.query_map([id.to_string()], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(parse_digest(&r?)?);
    }
    Ok(out)
}

/// Points `reference` (full) at index `index`, its `image_id` at `image`.
pub(crate) fn set_index_tag(
    tx: &Connection,
    reference: &str,
    index: &Digest,
    image: &Digest,
) -> Result<TagChange> {
    crate::image::write_tag(tx, reference, image, Some(index))
}

impl Store {
    /// Writes an OCI image index over `entries` (each an image already in the store, by ID,
    /// and the platform to list it under) and records it; returns the index's digest.
    ///
    /// The blob is `application/vnd.oci.image.index.v1+json`, one descriptor per entry in
    /// the given order: the image's manifest (digest, size, media type) with `platform`
    /// (os, architecture, variant). Its bytes are deterministic, so the same entries give
    /// the same digest. Each platform must agree with the image's config (os and
    /// architecture, and variant when both say one) and appear once.
    pub fn put_index(&self, entries: &[(Platform, Digest)]) -> Result<Digest> {
        if entries.is_empty() {
            return Err(Error::InvalidImage {
                what: "image index".into(),
                reason: "an image index needs at least one image".into(),
            });
        }
        let mut descs = Vec::with_capacity(entries.len());
        for (platform, id) in entries {
            let image = self
                .image(id)?
                .ok_or_else(|| Error::ImageNotFound(id.to_string()))?;
            let mut d = DescriptorOut::new(
                &image.manifest_media_type,
                image.manifest_digest,
                self.blob_size(&image.manifest_digest)?,
            );
            d.platform = Some(platform.into());
            descs.push(d);
        }
        let bytes = build_index(&descs);
        let lease = self.lease()?;
        self.record_index(&lease, &bytes, media_types::OCI_INDEX, entries)
    }

    /// Records an index blob given as bytes (one pulled or loaded as it was, so its digest
    /// stays the registry's or the archive's). `entries` lists, in order, the image of each
    /// of the blob's manifests and its platform; each image's manifest must be the one the
    /// blob names at that position, and the blob must name no other manifest. The blob is
    /// written under `lease`; the rows make it live.
    pub fn record_index(
        &self,
        lease: &Lease,
        bytes: &[u8],
        media_type: &str,
        entries: &[(Platform, Digest)],
    ) -> Result<Digest> {
        let what = || format!("image index {}", Digest::of(bytes));
        let invalid = |reason: String| Error::InvalidImage {
            what: what(),
            reason,
        };
        let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| Error::Json {
            what: what(),
            source: e,
        })?;
        let listed: Vec<String> = doc
            .get("manifests")
            .and_then(|m| m.as_array())
            .ok_or_else(|| invalid("no \"manifests\" list".into()))?
            .iter()
            .map(|m| {
                m.get("digest")
                    .and_then(|d| d.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| invalid("a manifest descriptor has no digest".into()))
            })
            .collect::<Result<_>>()?;
        if listed.len() != entries.len() {
            return Err(invalid(format!(
                "it lists {} manifests, {} images were given",
                listed.len(),
                entries.len()
            )));
        }
        for (i, (p, _)) in entries.iter().enumerate() {
            // Rows are read back with Platform::parse: a platform it refuses (a hostile
            // archive's `../x`, `evil arch`, a 100 kB name) must never be written.
            let text = p.to_string();
            if let Err(e) = Platform::parse(&text) {
                return Err(invalid(format!("manifest {}: platform {e}", i + 1)));
            }
            if entries[..i].iter().any(|(q, _)| q == p) {
                return Err(invalid(format!("platform {p} appears twice")));
            }
        }
        let info = self.put_blob(lease, bytes, None)?;
        let digest = info.digest;
        self.write(|tx| {
            for (pos, ((platform, id), listed)) in entries.iter().zip(&listed).enumerate() {
                let image = load_images(tx, Some(id))?
                    .pop()
                    .ok_or_else(|| Error::ImageNotFound(id.to_string()))?;
                if image.manifest_digest.to_string() != *listed {
                    return Err(invalid(format!(
                        "manifest {} lists {listed}, but image {id} has manifest {}",
                        pos + 1,
                        image.manifest_digest
                    )));
                }
                let own = image.platform();
                let platform = platform.clone().normalize();
                if own.os != platform.os
                    || own.architecture != platform.architecture
                    || own
                        .variant
                        .as_ref()
                        .is_some_and(|v| platform.variant.as_ref().is_some_and(|w| v != w))
                {
                    return Err(invalid(format!(
                        "image {id} is {own}, listed as {platform}"
                    )));
                }
                if pos == 0 {
                    db::exec(
                        tx,
                        "INSERT OR IGNORE INTO image_indexes (digest, media_type, size, added) VALUES (?1, ?2, ?3, ?4)",
                        params![digest.to_string(), media_type, info.size as i64, now()],
                    )?;
                }
                db::exec(
                    tx,
                    "INSERT OR IGNORE INTO index_entries (index_digest, position, image_id, platform) VALUES (?1, ?2, ?3, ?4)",
                    params![digest.to_string(), pos as i64, id.to_string(), platform.to_string()],
                )?;
            }
            Ok(())
        })?;
        Ok(digest)
    }

    /// Points `reference` (any form; normalized here) at index `index`. Callers that resolve
    /// the tag to one image get the index's entry for the host platform (or its first).
    pub fn tag_index(&self, index: &Digest, reference: &str) -> Result<TagChange> {
        let full = crate::reference::normalize(reference)?;
        let change = self.write(|tx| {
            let record =
                load_index(tx, index)?.ok_or_else(|| Error::ImageNotFound(index.to_string()))?;
            let entry = record
                .default_entry()
                .ok_or_else(|| Error::ImageNotFound(index.to_string()))?;
            set_index_tag(tx, &full, index, &entry.image.id)
        })?;
        self.sync_index()?;
        Ok(change)
    }

    /// One index by digest.
    pub fn index(&self, digest: &Digest) -> Result<Option<IndexRecord>> {
        self.read(|tx| load_index(tx, digest))
    }

    /// Every index, newest first (by its images' `created`, then by arrival).
    pub fn indexes(&self) -> Result<Vec<IndexRecord>> {
        let mut out = self.read(|tx| {
            let digests: Vec<String> = {
                let mut stmt = tx.prepare("SELECT digest FROM image_indexes")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut out = Vec::with_capacity(digests.len());
            for d in digests {
                if let Some(r) = load_index(tx, &parse_digest(&d)?)? {
                    out.push(r);
                }
            }
            Ok(out)
        })?;
        out.sort_by(|a, b| {
            (b.created().unwrap_or(0), b.added, b.digest).cmp(&(
                a.created().unwrap_or(0),
                a.added,
                a.digest,
            ))
        });
        Ok(out)
    }

    /// The indexes that list image `id` (an image they list is kept while they exist).
    pub fn indexes_using(&self, id: &Digest) -> Result<Vec<Digest>> {
        self.read(|tx| indexes_using(tx, id))
    }

    /// The index `name` names (a tag pointing at one, its digest, or a unique prefix of it);
    /// None when `name` names a single image. Fails as [`Store::resolve_image`] does when
    /// `name` names nothing.
    pub fn resolve_index(&self, name: &str) -> Result<Option<IndexRecord>> {
        match self.resolve_name(name)? {
            Named::Image(_) => Ok(None),
            Named::Index(d) => Ok(Some(
                self.index(&d)?
                    .ok_or_else(|| Error::ImageNotFound(name.to_string()))?,
            )),
        }
    }

    /// The image `name` names for platform `want`: from an index, the entry that matches
    /// (see [`IndexRecord::pick`]); a single image, when its platform matches. Otherwise an
    /// error in docker's words that lists the platforms there are.
    pub fn resolve_platform(&self, name: &str, want: &Platform) -> Result<ImageRecord> {
        match self.resolve_name(name)? {
            Named::Index(d) => {
                let index = self
                    .index(&d)?
                    .ok_or_else(|| Error::ImageNotFound(name.to_string()))?;
                match index.pick(want) {
                    Some(e) => Ok(e.image.clone()),
                    None => Err(Error::NoMatchingManifest {
                        wanted: want.clone().normalize(),
                        available: index.platforms(),
                    }),
                }
            }
            Named::Image(id) => {
                let image = self
                    .image(&id)?
                    .ok_or_else(|| Error::ImageNotFound(name.to_string()))?;
                if want.matches(&image.platform()) {
                    Ok(image)
                } else {
                    Err(Error::PlatformMismatch {
                        reference: name.to_string(),
                        wanted: want.clone().normalize(),
                        actual: Box::new(image.platform()),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(os: &str, arch: &str, variant: Option<&str>) -> ImageRecord {
        ImageRecord {
            id: Digest::of(format!("{os}{arch}{variant:?}").as_bytes()),
            manifest_digest: Digest::of(b"m"),
            manifest_media_type: media_types::OCI_MANIFEST.into(),
            created: None,
            size: 0,
            architecture: arch.into(),
            os: os.into(),
            variant: variant.map(str::to_string),
            parent: None,
            added: 0,
            tags: vec![],
            last_tagged: None,
        }
    }

    fn index(platforms: &[&str]) -> IndexRecord {
        IndexRecord {
            digest: Digest::of(b"i"),
            media_type: media_types::OCI_INDEX.into(),
            size: 0,
            added: 0,
            entries: platforms
                .iter()
                .map(|p| {
                    let platform = Platform::parse(p).unwrap();
                    IndexEntry {
                        image: image(
                            &platform.os,
                            &platform.architecture,
                            platform.variant.as_deref(),
                        ),
                        platform,
                    }
                })
                .collect(),
            tags: vec![],
            last_tagged: None,
        }
    }

    #[test]
    fn pick_prefers_the_exact_platform_then_a_match() {
        let i = index(&[
            "linux/amd64/v3",
            "linux/amd64",
            "linux/arm/v6",
            "linux/arm/v7",
        ]);
        let p = |s: &str| {
            i.pick(&Platform::parse(s).unwrap())
                .map(|e| e.platform.to_string())
        };
        assert_eq!(p("linux/amd64").as_deref(), Some("linux/amd64"));
        assert_eq!(p("linux/amd64/v3").as_deref(), Some("linux/amd64/v3"));
        // `arm` is arm/v7.
        assert_eq!(p("linux/arm").as_deref(), Some("linux/arm/v7"));
        assert_eq!(p("linux/arm/v6").as_deref(), Some("linux/arm/v6"));
        assert_eq!(p("linux/arm64"), None);
        let j = index(&["linux/arm64", "linux/riscv64"]);
        assert_eq!(
            j.pick(&Platform::parse("linux/arm64/v8").unwrap())
                .map(|e| e.platform.to_string())
                .as_deref(),
            Some("linux/arm64")
        );
    }
}
