//! `save`: images from the store into a docker-archive or an oci-archive, through
//! kiln-image's writers; the store is their [`BlobSource`].

use std::io::{self, Read, Write};

use kiln_image::{BlobSource, ExportImage, ImageRef, write_docker_archive, write_oci_archive};

use crate::error::Result;
use crate::{Digest, ImageRecord, Store};

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
        // Held while the archive is written: an `rmi` or prune meanwhile removes the image,
        // not the content this save is copying.
        let lease = self.lease()?;
        for (img, _) in images {
            if lease.use_image(&img.id)?.is_none() {
                return Err(crate::Error::ImageNotFound(img.id.to_string()));
            }
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
            SaveFormat::Oci => write_oci_archive(out, &export, self)?,
        };
        drop(lease);
        Ok(out)
    }
}
