//! kiln-image: the image vocabulary every other kiln crate speaks.
//!
//! - [`Digest`]: sha256 content digests, plus streaming [`DigestWriter`] / [`VerifyingReader`].
//! - [`ImageRef`]: docker references, normalized as docker does (`node:18` →
//!   `docker.io/library/node:18`), with docker's error messages.
//! - [`Platform`]: `linux/amd64`, `linux/arm/v7`, normalized as containerd does.
//! - [`Compression`]: none/gzip/zstd, by magic bytes or media type, and decoders.
//! - [`archive`]: docker-archive, oci-archive and OCI layout readers and writers.
//!
//! OCI types come from [`oci_spec`], re-exported so callers use the same version.

pub use oci_spec;

pub mod archive;
pub mod compression;
pub mod digest;
pub mod manifest;
pub mod platform;
pub mod reference;

pub use archive::{
    ArchiveError, ArchiveFormat, ArchiveImage, ArchiveIndex, ArchiveLayer, ArchiveManifest,
    ArchiveReader, BlobSource, ExportImage, ExportIndex, open_archive, write_docker_archive,
    write_oci_archive, write_oci_archive_with_indexes, write_oci_layout,
};
pub use compression::{Compression, media_type_for_layer};
pub use digest::{ContentMismatch, Digest, DigestError, DigestWriter, Hasher, VerifyingReader};
pub use platform::{Platform, PlatformError};
pub use reference::{ImageRef, ReferenceError};
