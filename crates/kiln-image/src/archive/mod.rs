//! Image archives: **docker-archive** (what `docker save` writes), **oci-archive** (a tar of
//! an OCI layout) and **OCI image layout** directories. See `docs/formats.md`.
//!
//! Reading: [`open_archive`] detects the format and lists the images in it. Small documents
//! (manifests, configs, indexes) are read and digest-checked at open; layer blobs are checked
//! while they are streamed ([`ArchiveLayer::open`]), and a mismatch surfaces as an
//! `io::Error` of kind `InvalidData` carrying a [`ContentMismatch`].
//!
//! Writing: [`write_docker_archive`], [`write_oci_archive`], [`write_oci_layout`] take images
//! as manifest + config bytes ([`ExportImage`]) and pull blobs from a [`BlobSource`].

mod blobs;
mod docker_read;
mod oci_read;
mod source;
mod write;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::{ImageConfiguration, ImageManifest};

use crate::compression::{self, Compression};
use crate::digest::{ContentMismatch, Digest, VerifyingReader};
use crate::platform::Platform;
use crate::reference::ImageRef;

pub use blobs::{BlobSource, DirBlobSource, MemoryBlobSource};
pub use write::{
    ExportImage, ExportIndex, write_docker_archive, write_docker_archive_as_stored,
    write_oci_archive, write_oci_archive_with_indexes, write_oci_layout,
};

use source::Source;

/// Which format an archive is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `docker save` output (manifest.json); may also hold an OCI layout (Docker ≥ 25).
    DockerArchive,
    /// A tar of an OCI image layout.
    OciArchive,
    /// An OCI image layout directory.
    OciLayout,
    /// An unpacked docker-archive directory (manifest.json at its root).
    DockerDir,
}

/// Everything that can go wrong reading or writing an archive. Read errors name the archive
/// and the member.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: empty file (0 bytes), not an image archive", path.display())]
    Empty { path: PathBuf },
    #[error("{}: not a docker-archive, oci-archive or OCI layout: {reason}", path.display())]
    UnknownFormat { path: PathBuf, reason: String },
    #[error("{}: corrupt or truncated tar: {source}", path.display())]
    BadTar {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: corrupt or truncated {compression} stream: {source}", path.display())]
    BadCompression {
        path: PathBuf,
        compression: Compression,
        #[source]
        source: io::Error,
    },
    #[error("{}: refusing member {name:?}: {reason}", path.display())]
    UnsafeName {
        path: PathBuf,
        name: String,
        reason: &'static str,
    },
    #[error("{}: {needed_by} names {member:?}, which is not in the archive", path.display())]
    MissingMember {
        path: PathBuf,
        member: String,
        needed_by: String,
    },
    #[error("{}: {member}: invalid {what}: {source}", path.display())]
    BadJson {
        path: PathBuf,
        member: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {source}", path.display())]
    Mismatch {
        path: PathBuf,
        #[source]
        source: ContentMismatch,
    },
    #[error("{}: {member}: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        member: String,
        reason: String,
    },
    /// Writing: the blob source failed for this blob.
    #[error("blob {digest}: {source}")]
    Blob {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    /// Writing: the image handed in is not consistent (bad manifest, config digest, …).
    #[error("image {index} ({what}): {reason}")]
    BadExportImage {
        index: usize,
        what: String,
        reason: String,
    },
    /// Writing: the destination failed.
    #[error("writing {}: {source}", dest.display())]
    Write {
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// An opened archive: the images in it, and access to their blobs.
#[derive(Debug)]
pub struct ArchiveReader {
    format: ArchiveFormat,
    images: Vec<ArchiveImage>,
    indexes: Vec<ArchiveIndex>,
}

impl ArchiveReader {
    pub fn format(&self) -> ArchiveFormat {
        self.format
    }

    /// The images, in archive order (manifest.json order, or index.json order).
    pub fn images(&self) -> &[ArchiveImage] {
        &self.images
    }

    /// The image indexes (OCI image indexes, Docker manifest lists) of an OCI archive or
    /// layout that list at least one of [`ArchiveReader::images`], in the order they were
    /// found. docker-archives have none (their manifest.json lists images).
    pub fn indexes(&self) -> &[ArchiveIndex] {
        &self.indexes
    }

    /// Reads every layer of every image to the end, checking blob digests and diff IDs.
    pub fn verify(&self) -> Result<(), ArchiveError> {
        for img in &self.images {
            for layer in &img.layers {
                layer.verify()?;
            }
        }
        Ok(())
    }
}

/// A manifest as found in the archive: its exact bytes (digests cover them) and parsed form.
#[derive(Clone, Debug)]
pub struct ArchiveManifest {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
    pub manifest: ImageManifest,
}

/// An image index found in an OCI archive or layout (a blob, not `index.json` itself).
#[derive(Clone, Debug)]
pub struct ArchiveIndex {
    /// Digest of its exact bytes.
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
    /// Names `index.json` gives it (`io.containerd.image.name`, or a full reference in
    /// `org.opencontainers.image.ref.name`).
    pub names: Vec<ImageRef>,
    /// One per manifest descriptor, in order: the image it names (a position in
    /// [`ArchiveReader::images`]) and the descriptor's platform (else the config's); None for
    /// a descriptor that names no runnable image (an attestation, an artifact, a nested index).
    pub entries: Vec<Option<(usize, Platform)>>,
}

/// One image found in an archive.
#[derive(Debug)]
pub struct ArchiveImage {
    /// Exact config bytes; their digest is the image ID.
    pub config_bytes: Vec<u8>,
    pub config_digest: Digest,
    pub config: ImageConfiguration,
    pub layers: Vec<ArchiveLayer>,
    /// Names found for this image (RepoTags, `io.containerd.image.name`, or a full reference
    /// in `org.opencontainers.image.ref.name`).
    pub names: Vec<ImageRef>,
    /// Raw `org.opencontainers.image.ref.name` values (often just a tag such as `latest`).
    pub ref_names: Vec<String>,
    /// The manifest, when the archive has one (OCI formats, Docker ≥ 25 docker-archives).
    pub manifest: Option<ArchiveManifest>,
    /// From the index descriptor when given, else from the config.
    pub platform: Platform,
}

/// One layer blob of an archived image.
#[derive(Clone, Debug)]
pub struct ArchiveLayer {
    /// The media type the manifest gives, or the docker type matching the detected
    /// compression when there is no manifest.
    pub media_type: String,
    pub compression: Compression,
    /// The blob's digest, when the format says it (OCI descriptors, `blobs/sha256/<hex>`).
    pub digest: Option<Digest>,
    /// The uncompressed digest from the config's `rootfs.diff_ids`.
    pub diff_id: Option<Digest>,
    /// Size of the blob as stored.
    pub size: u64,
    /// Member name inside the archive.
    pub member: String,
    source: Arc<Source>,
}

impl ArchiveLayer {
    /// The blob as stored (possibly compressed). When its digest is known it is checked as
    /// the stream is read (and for an uncompressed blob without a digest, its diff ID): the
    /// read that reaches the end fails with `InvalidData` on a mismatch.
    pub fn open(&self) -> Result<Box<dyn Read + Send>, ArchiveError> {
        let raw = self.source.open(&self.member, "manifest")?;
        let what = format!("{}: layer {}", self.source.path().display(), self.member);
        let expected = self.digest.or(match self.compression {
            Compression::None => self.diff_id,
            _ => None,
        });
        Ok(match expected {
            Some(d) => Box::new(VerifyingReader::new(raw, d, Some(self.size), what)),
            None => raw,
        })
    }

    /// The layer as an uncompressed tar stream, checked against the diff ID (and the blob
    /// digest) as it is read.
    pub fn open_uncompressed(&self) -> Result<Box<dyn Read + Send>, ArchiveError> {
        let raw = self.open()?;
        let wrap = |source| ArchiveError::Io {
            path: self.source.path().join(&self.member),
            source,
        };
        let (_, dec) = compression::auto_decoder(raw).map_err(wrap)?;
        let what = format!(
            "{}: layer {} (uncompressed)",
            self.source.path().display(),
            self.member
        );
        Ok(match (self.diff_id, self.compression) {
            // Uncompressed blobs are already checked against the diff ID by `open`.
            (Some(d), Compression::Gzip | Compression::Zstd) => {
                Box::new(VerifyingReader::new(dec, d, None, what))
            }
            _ => dec,
        })
    }

    /// Reads the whole layer, checking everything the archive lets us check.
    /// The blob digest is checked first, on its own, so a tampered compressed blob is
    /// reported as a digest mismatch rather than as whatever the decoder trips over.
    pub fn verify(&self) -> Result<(), ArchiveError> {
        if self.digest.is_some() && self.compression != Compression::None {
            let mut raw = self.open()?;
            io::copy(&mut raw, &mut io::sink()).map_err(|e| self.read_error(e))?;
        }
        let mut r = self.open_uncompressed()?;
        io::copy(&mut r, &mut io::sink()).map_err(|e| self.read_error(e))?;
        Ok(())
    }

    /// Turns a read error from [`ArchiveLayer::open`]'s stream into an [`ArchiveError`] that
    /// names the archive and blob.
    pub fn read_error(&self, e: io::Error) -> ArchiveError {
        if let Some(m) = ContentMismatch::find(&e) {
            return ArchiveError::Mismatch {
                path: self.source.path().to_path_buf(),
                source: m.clone(),
            };
        }
        if self.compression != Compression::None {
            return ArchiveError::BadCompression {
                path: self.source.path().join(&self.member),
                compression: self.compression,
                source: e,
            };
        }
        ArchiveError::Io {
            path: self.source.path().join(&self.member),
            source: e,
        }
    }
}

/// Opens an archive: a tar file (docker-archive or oci-archive, optionally gzip/zstd
/// compressed as a whole) or a directory (OCI layout, or an unpacked docker-archive). The
/// file must be seekable: spool stdin to a temporary file first.
pub fn open_archive(path: &Path) -> Result<ArchiveReader, ArchiveError> {
    let io_err = |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    let source = if meta.is_dir() {
        Source::open_dir(path)?
    } else {
        Source::open_tar(path, File::open(path).map_err(io_err)?)?
    };
    let is_dir = meta.is_dir();
    let source = Arc::new(source);
    if source.contains("manifest.json")? {
        let images = docker_read::read(&source)?;
        let format = if is_dir {
            ArchiveFormat::DockerDir
        } else {
            ArchiveFormat::DockerArchive
        };
        return Ok(ArchiveReader {
            format,
            images,
            indexes: Vec::new(),
        });
    }
    if source.contains("index.json")? || source.contains("oci-layout")? {
        let (images, indexes) = oci_read::read(&source)?;
        let format = if is_dir {
            ArchiveFormat::OciLayout
        } else {
            ArchiveFormat::OciArchive
        };
        return Ok(ArchiveReader {
            format,
            images,
            indexes,
        });
    }
    if source.contains("repositories")? {
        return Err(ArchiveError::UnknownFormat {
            path: path.to_path_buf(),
            reason: "it has a 'repositories' file but no manifest.json (archives from docker \
                     before 1.10 are not supported)"
                .into(),
        });
    }
    Err(ArchiveError::UnknownFormat {
        path: path.to_path_buf(),
        reason: "no manifest.json, index.json or oci-layout at its root".into(),
    })
}

/// Parses JSON from a member, naming the member on failure.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    source: &Source,
    member: &str,
    what: &'static str,
    bytes: &[u8],
) -> Result<T, ArchiveError> {
    serde_json::from_slice(bytes).map_err(|e| ArchiveError::BadJson {
        path: source.path().to_path_buf(),
        member: member.to_string(),
        what,
        source: e,
    })
}

/// Parses an image config (tolerating Docker's omissions), naming the member on failure.
pub(crate) fn parse_config(
    source: &Source,
    member: &str,
    bytes: &[u8],
) -> Result<ImageConfiguration, ArchiveError> {
    crate::manifest::parse_image_config(bytes).map_err(|e| ArchiveError::BadJson {
        path: source.path().to_path_buf(),
        member: member.to_string(),
        what: "image config",
        source: e,
    })
}

/// Reads a small blob and checks it against its descriptor's digest and size.
pub(crate) fn read_verified(
    source: &Source,
    digest: &Digest,
    size: Option<u64>,
    needed_by: &str,
) -> Result<Vec<u8>, ArchiveError> {
    let member = digest.blob_path();
    let bytes = source.read_small(&member, needed_by)?;
    check_bytes(source, &member, &bytes, digest, size)?;
    Ok(bytes)
}

pub(crate) fn check_bytes(
    source: &Source,
    member: &str,
    bytes: &[u8],
    digest: &Digest,
    size: Option<u64>,
) -> Result<(), ArchiveError> {
    let what = || format!("blob {member}");
    if let Some(size) = size
        && bytes.len() as u64 != size
    {
        return Err(ArchiveError::Mismatch {
            path: source.path().to_path_buf(),
            source: ContentMismatch::Size {
                what: what(),
                expected_digest: *digest,
                expected: size,
                actual: bytes.len() as u64,
            },
        });
    }
    let actual = Digest::of(bytes);
    if actual != *digest {
        return Err(ArchiveError::Mismatch {
            path: source.path().to_path_buf(),
            source: ContentMismatch::Digest {
                what: what(),
                expected: *digest,
                actual,
            },
        });
    }
    Ok(())
}

/// The compression of a member, from its first bytes.
pub(crate) fn sniff(
    source: &Source,
    member: &str,
    needed_by: &str,
) -> Result<Compression, ArchiveError> {
    let mut r = source.open(member, needed_by)?;
    let head = compression::read_head(&mut r).map_err(|e| ArchiveError::Io {
        path: source.path().join(member),
        source: e,
    })?;
    Ok(Compression::detect(&head))
}

/// diff IDs from a config, parsed.
pub(crate) fn diff_ids(
    source: &Source,
    member: &str,
    config: &ImageConfiguration,
) -> Result<Vec<Digest>, ArchiveError> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|s| {
            Digest::parse(s).map_err(|e| ArchiveError::Invalid {
                path: source.path().to_path_buf(),
                member: member.to_string(),
                reason: format!("rootfs.diff_ids: {e}"),
            })
        })
        .collect()
}
