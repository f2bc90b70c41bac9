//! `load`: images from a docker-archive, oci-archive or OCI layout into the store.
//!
//! Each layer is read once: the raw bytes go into a blob writer (hashed, checked against
//! the archive's digest) while a decoder behind it checks that they decompress to a valid
//! tar whose digest is the config's diff ID. Only then is the blob renamed in. The image is
//! recorded (with its tags) in one transaction at the end, so a failure or a kill at any
//! point leaves no partial image; blobs committed before a failure are collected at once.
//!
//! Multi-platform archives (an OCI archive or layout whose `index.json` names an image index
//! listing more than one image) load every platform: each image is recorded untagged, then
//! the index (its exact bytes when every descriptor it lists is an image the store keeps, so
//! its digest stays the archive's; otherwise a new index over the images), and the index's
//! names are tagged to it. An index listing one image loads as that image, as before.

use std::io::{self, Read, Write};
use std::path::Path;

use kiln_image::archive::ArchiveImage;
use kiln_image::compression::{self, Compression};
use kiln_image::manifest::{DescriptorOut, build_manifest};
use kiln_image::{
    ArchiveIndex, ArchiveLayer, ContentMismatch, Digest, Hasher, Platform, open_archive,
};

use crate::Store;
use crate::blob::BlobWriter;
use crate::error::{Error, IoContext, Result};
use crate::image::{ImageRecord, LayerRecord, NewImage, TagChange};
use crate::layout::Layout;
use crate::lease::Lease;

/// One image a load recorded.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The image as recorded.
    pub image: ImageRecord,
    /// The tags the archive gave it, and the images they pointed at before.
    pub tags: Vec<TagChange>,
}

/// One image index a load recorded.
#[derive(Debug, Clone)]
pub struct LoadedIndex {
    /// The index's digest (the archive's when its bytes were kept).
    pub digest: Digest,
    /// Its images with their platforms, in the index's order.
    pub entries: Vec<(Platform, ImageRecord)>,
    /// The tags the archive gave it, and what they named before.
    pub tags: Vec<TagChange>,
}

/// What a load recorded.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Single-platform images.
    pub images: Vec<LoadedImage>,
    /// Multi-platform images.
    pub indexes: Vec<LoadedIndex>,
}

/// Copies bytes read from `inner` into the blob writer.
struct Tee<'a, R> {
    inner: R,
    sink: &'a mut BlobWriter,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sink.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Hashes and counts what passes through.
struct Hashing<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl Store {
    /// Loads every image of the archive at `path` (file or directory); the images of a
    /// multi-platform index come untagged, after the single images (see [`Store::load_all`]).
    pub fn load(&self, path: &Path) -> Result<Vec<LoadedImage>> {
        Ok(flatten(self.load_all(path)?))
    }

    /// Loads every image and every multi-platform index of the archive at `path`.
    pub fn load_all(&self, path: &Path) -> Result<Loaded> {
        let archive = open_archive(path)?;
        let host = Platform::host();
        let images = archive.images();
        // Indexes that list more than one image are kept as indexes.
        let multi: Vec<&ArchiveIndex> = archive
            .indexes()
            .iter()
            .filter(|ix| ix.entries.iter().flatten().count() > 1)
            .collect();
        let in_index = |i: usize| {
            multi
                .iter()
                .any(|ix| ix.entries.iter().flatten().any(|(j, _)| *j == i))
        };
        let index_names = |i: usize| -> Vec<&kiln_image::ImageRef> {
            multi
                .iter()
                .filter(|ix| ix.entries.iter().flatten().any(|(j, _)| *j == i))
                .flat_map(|ix| ix.names.iter())
                .collect()
        };
        let mut loaded = Loaded::default();
        for (i, img) in images.iter().enumerate() {
            if in_index(i) {
                // Loaded with its index; its own names (given outside the index) as well.
                let named = index_names(i);
                if img.names.iter().all(|n| named.contains(&n)) {
                    continue;
                }
                let own: Vec<String> = img
                    .names
                    .iter()
                    .filter(|n| n.tag().is_some() && !named.contains(n))
                    .map(|n| n.to_string())
                    .collect();
                let lease = self.lease()?;
                let l = self
                    .load_image_leased(path, img, &own, &lease)
                    .inspect_err(|_| {
                        let _ = lease.release_and_collect();
                    })?;
                loaded.images.push(l);
                continue;
            }
            // Images named alike outside an index: load the host's variant of each name.
            let other_matches = images.iter().enumerate().any(|(j, o)| {
                j != i
                    && !in_index(j)
                    && o.platform.matches(&host)
                    && o.names.iter().any(|n| img.names.contains(n))
            });
            if !img.platform.matches(&host) && other_matches {
                continue;
            }
            loaded.images.push(self.load_image(path, img)?);
        }
        for ix in multi {
            loaded.indexes.push(self.load_index(path, images, ix)?);
        }
        Ok(loaded)
    }

    /// Spools `reader` (stdin) to a temp file under the store, then loads it.
    pub fn load_reader(&self, reader: &mut dyn Read) -> Result<Vec<LoadedImage>> {
        self.load_reader_all(reader).map(flatten)
    }

    /// Spools `reader` (stdin) to a temp file under the store, then loads it as
    /// [`Store::load_all`] does.
    pub fn load_reader_all(&self, reader: &mut dyn Read) -> Result<Loaded> {
        let tmp = self.layout().tmp_dir();
        let mut spool = tempfile::Builder::new()
            .prefix(&Layout::tmp_prefix("spool"))
            .tempfile_in(&tmp)
            .ctx("creating a temp file in", &tmp)?;
        let spool_path = spool.path().to_path_buf();
        let mut w = io::BufWriter::with_capacity(1 << 20, spool.as_file_mut());
        io::copy(reader, &mut w)
            .and_then(|_| w.flush())
            .ctx("reading the archive from standard input into", &spool_path)?;
        drop(w);
        self.load_all(spool.path())
    }

    /// Loads the images of `ix` untagged, records the index and tags it with its names, all
    /// under one lease (untagged images are prunable until the index holds them).
    fn load_index(
        &self,
        path: &Path,
        images: &[ArchiveImage],
        ix: &ArchiveIndex,
    ) -> Result<LoadedIndex> {
        let lease = self.lease()?;
        let result = (|| {
            let mut entries = Vec::new();
            for (i, platform) in ix.entries.iter().flatten() {
                let l = self.load_image_leased(path, &images[*i], &[], &lease)?;
                entries.push((platform.clone().normalize(), l.image));
            }
            let ids: Vec<(Platform, Digest)> =
                entries.iter().map(|(p, img)| (p.clone(), img.id)).collect();
            let digest = if ix.entries.iter().all(Option::is_some) {
                self.record_index(&lease, &ix.bytes, &ix.media_type, &ids)?
            } else {
                // Attestations or artifacts the store does not keep: an index over the images.
                self.put_index(&ids)?
            };
            let mut tags = Vec::new();
            for n in ix.names.iter().filter(|n| n.tag().is_some()) {
                tags.push(self.tag_index(&digest, &n.to_string())?);
            }
            Ok(LoadedIndex {
                digest,
                entries,
                tags,
            })
        })();
        if result.is_err() {
            let _ = lease.release_and_collect();
        }
        result
    }

    fn load_image(&self, path: &Path, img: &ArchiveImage) -> Result<LoadedImage> {
        let tags: Vec<String> = img
            .names
            .iter()
            .filter(|n| n.tag().is_some())
            .map(|n| n.to_string())
            .collect();
        let lease = self.lease()?;
        match self.load_image_leased(path, img, &tags, &lease) {
            Ok(l) => Ok(l),
            Err(e) => {
                // Leave the store as it was: drop what this load committed and nothing uses.
                let _ = lease.release_and_collect();
                Err(e)
            }
        }
    }

    fn load_image_leased(
        &self,
        path: &Path,
        img: &ArchiveImage,
        tags: &[String],
        lease: &Lease,
    ) -> Result<LoadedImage> {
        let mut layers = Vec::with_capacity(img.layers.len());
        let mut descs = Vec::with_capacity(img.layers.len());
        for (n, layer) in img.layers.iter().enumerate() {
            let (rec, comp) = self.ingest_layer(path, n, layer, img.manifest.is_some(), lease)?;
            descs.push(DescriptorOut::new(
                comp.layer_media_type(true),
                rec.blob,
                rec.compressed_size,
            ));
            layers.push(rec);
        }
        let config = self.put_blob(lease, &img.config_bytes, Some(&img.config_digest))?;
        let (manifest_digest, manifest_media_type) = match &img.manifest {
            Some(m) => {
                self.put_blob(lease, &m.bytes, Some(&m.digest))?;
                (m.digest, m.media_type.clone())
            }
            None => {
                let (bytes, digest) = build_manifest(
                    &DescriptorOut::new(
                        kiln_image::compression::media_types::OCI_CONFIG,
                        config.digest,
                        config.size,
                    ),
                    &descs,
                );
                self.put_blob(lease, &bytes, Some(&digest))?;
                (
                    digest,
                    kiln_image::compression::media_types::OCI_MANIFEST.to_string(),
                )
            }
        };
        let created = img
            .config
            .created()
            .as_deref()
            .and_then(crate::timestamp::parse_rfc3339);
        let (image, changes) = self.record_image(
            &NewImage {
                manifest_digest,
                manifest_media_type,
                config_digest: img.config_digest,
                layers,
                created,
                architecture: img.platform.architecture.clone(),
                os: img.platform.os.clone(),
                parent: None,
            },
            tags,
        )?;
        Ok(LoadedImage {
            image,
            tags: changes,
        })
    }
}

/// The images of a load, single ones first, then each index's.
fn flatten(l: Loaded) -> Vec<LoadedImage> {
    let mut out = l.images;
    for ix in l.indexes {
        out.extend(ix.entries.into_iter().map(|(_, image)| LoadedImage {
            image,
            tags: Vec::new(),
        }));
    }
    out
}

impl Store {
    /// Streams one layer into a blob, checking its digest, that it decompresses to a tar,
    /// and that the tar's digest is the diff ID.
    fn ingest_layer(
        &self,
        path: &Path,
        n: usize,
        layer: &ArchiveLayer,
        has_manifest: bool,
        lease: &Lease,
    ) -> Result<(LayerRecord, Compression)> {
        let what = || format!("{}: layer {} ({})", path.display(), n + 1, layer.member);
        let read_err = |e: io::Error| -> Error {
            if ContentMismatch::find(&e).is_some() {
                return Error::Archive(layer.read_error(e));
            }
            match layer.compression {
                Compression::None => Error::InvalidImage {
                    what: what(),
                    reason: format!("not a valid tar stream: {e}"),
                },
                c => Error::InvalidImage {
                    what: what(),
                    reason: format!("corrupt or truncated {c} stream: {e}"),
                },
            }
        };
        let Some(diff_id) = layer.diff_id else {
            return Err(Error::InvalidImage {
                what: what(),
                reason: "the config's rootfs.diff_ids has no entry for this layer".into(),
            });
        };
        let raw = layer.open()?;
        let mut writer = self.blob_writer()?;
        let (comp, uncompressed, size) = {
            let mut tee = Tee {
                inner: raw,
                sink: &mut writer,
            };
            let (comp, uncompressed, size) = {
                let (comp, dec) =
                    compression::auto_decoder(Box::new(&mut tee)).map_err(read_err)?;
                let mut hashing = Hashing {
                    inner: dec,
                    hasher: Hasher::new(),
                };
                {
                    let mut tar = tar::Archive::new(&mut hashing);
                    for entry in tar.entries().map_err(read_err)? {
                        entry.map_err(read_err)?;
                    }
                }
                // The tar parser stops at the end-of-archive blocks; the digest covers all.
                io::copy(&mut hashing, &mut io::sink()).map_err(read_err)?;
                let size = hashing.hasher.len();
                (comp, hashing.hasher.finish(), size)
            };
            // Bytes after the compressed stream's end are part of the blob too.
            io::copy(&mut tee, &mut io::sink()).map_err(read_err)?;
            (comp, uncompressed, size)
        };
        if uncompressed != diff_id {
            return Err(Error::DigestMismatch {
                what: format!("{} (uncompressed, against the config's diff_id)", what()),
                expected: diff_id.to_string(),
                actual: uncompressed.to_string(),
            });
        }
        let pending = writer.finish()?;
        let info = pending.commit(lease, layer.digest.as_ref())?;
        // With a manifest, its descriptor's type stays true; without one we write an OCI
        // manifest whose type follows what the bytes are.
        let media_type = if has_manifest {
            layer.media_type.clone()
        } else {
            comp.layer_media_type(true).to_string()
        };
        Ok((
            LayerRecord {
                blob: info.digest,
                diff_id,
                media_type,
                compressed_size: info.size,
                uncompressed_size: size,
            },
            comp,
        ))
    }
}
