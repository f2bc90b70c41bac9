//! `save`: images from the store into a docker-archive or an oci-archive, through
//! kiln-image's writers; the store is their [`BlobSource`].

use std::io::{self, Read, Write};

use kiln_image::{
    BlobSource, ExportImage, ExportIndex, ImageRef, write_docker_archive,
    write_oci_archive_with_indexes,
};

use crate::error::{Error, Result};
use crate::{Digest, ImageRecord, IndexRecord, Store};

/// Archive format for [`Store::save`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFormat {
    /// What `docker save` writes (uncompressed layers, `manifest.json`, plus an OCI index).
    Docker,
    /// A tar of an OCI image layout (blobs as stored).
    Oci,
}

impl BlobSource for Store {
    fn open(&self, digest: &Digest) -> io::Result<Box<dyn Read + '_>> {
        let f = std::fs::File::open(self.blob_path(digest))?;
        Ok(Box::new(io::BufReader::with_capacity(1 << 20, f)))
    }
    fn size(&self, digest: &Digest) -> io::Result<u64> {
        Ok(std::fs::metadata(self.blob_path(digest))?.len())
    }
}

impl Store {
    /// Writes `images`, each with the names to record for it, to `out`. Every blob is
    /// checked against its digest while it is copied.
    pub fn save<W: Write>(
        &self,
        images: &[(ImageRecord, Vec<ImageRef>)],
        format: SaveFormat,
        out: W,
    ) -> Result<W> {
        self.save_with_indexes(images, &[], format, out)
    }

    /// [`Store::save`] with multi-platform images too: each index is written whole (its
    /// blob as stored, every platform's image) with its names. Only an oci-archive can hold
    /// an index; a docker-archive holds one image per name (pick a platform first).
    pub fn save_with_indexes<W: Write>(
        &self,
        images: &[(ImageRecord, Vec<ImageRef>)],
        indexes: &[(IndexRecord, Vec<ImageRef>)],
        format: SaveFormat,
        out: W,
    ) -> Result<W> {
        if format == SaveFormat::Docker && !indexes.is_empty() {
            return Err(Error::InvalidImage {
                what: format!("image index {}", indexes[0].0.digest),
                reason: "a docker-archive holds one platform per image: save one platform, or \
                         the whole index as an oci-archive"
                    .into(),
            });
        }
        // Held while the archive is written: an `rmi` or prune meanwhile removes the image,
        // not the content this save is copying.
        let lease = self.lease()?;
        let all = images.iter().map(|(img, _)| img).chain(
            indexes
                .iter()
                .flat_map(|(ix, _)| ix.entries.iter().map(|e| &e.image)),
        );
        for img in all {
            if lease.use_image(&img.id)?.is_none() {
                return Err(crate::Error::ImageNotFound(img.id.to_string()));
            }
        }
        let mut export_indexes = Vec::with_capacity(indexes.len());
        for (ix, tags) in indexes {
            let mut images = Vec::with_capacity(ix.entries.len());
            for e in &ix.entries {
                images.push(ExportImage {
                    manifest: self.read_blob(&e.image.manifest_digest)?,
                    config: self.read_blob(&e.image.id)?,
                    tags: Vec::new(),
                });
            }
            export_indexes.push(ExportIndex {
                bytes: self.read_blob(&ix.digest)?,
                media_type: ix.media_type.clone(),
                images,
                tags: tags.clone(),
            });
        }
        let mut export = Vec::with_capacity(images.len());
        for (img, tags) in images {
            export.push(ExportImage {
                manifest: self.read_blob(&img.manifest_digest)?,
                config: self.read_blob(&img.id)?,
                tags: tags.clone(),
            });
        }
        let out = match format {
            SaveFormat::Docker => write_docker_archive(out, &export, self)?,
            SaveFormat::Oci => write_oci_archive_with_indexes(out, &export, &export_indexes, self)?,
        };
        drop(lease);
        Ok(out)
    }
}
