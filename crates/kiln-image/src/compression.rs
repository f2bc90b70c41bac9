//! Layer compression: detection by magic bytes, media types, and decoders.

use std::fmt;
use std::io::{self, BufReader, Read};

/// OCI layer media types.
pub mod media_types {
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_ND: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    pub const OCI_LAYER_ND_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    pub const OCI_LAYER_ND_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Not official, but what docker/containerd use for zstd layers in docker manifests.
    pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
    pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

/// A media type that is not a layer type kiln knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported layer media type {0:?}")]
pub struct UnknownMediaType(pub String);

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// Detects compression from the first bytes of a stream (4 bytes are enough). Anything
    /// that is neither gzip nor zstd is taken as uncompressed.
    pub fn detect(first_bytes: &[u8]) -> Compression {
        if first_bytes.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if first_bytes.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The layer media type for this compression, OCI or docker flavour.
    pub fn layer_media_type(self, oci: bool) -> &'static str {
        use media_types::*;
        match (self, oci) {
            (Compression::None, true) => OCI_LAYER,
            (Compression::Gzip, true) => OCI_LAYER_GZIP,
            (Compression::Zstd, true) => OCI_LAYER_ZSTD,
            (Compression::None, false) => DOCKER_LAYER,
            (Compression::Gzip, false) => DOCKER_LAYER_GZIP,
            (Compression::Zstd, false) => DOCKER_LAYER_ZSTD,
        }
    }

    /// The compression a layer media type declares.
    pub fn from_media_type(media_type: &str) -> Result<Compression, UnknownMediaType> {
        use media_types::*;
        match media_type {
            OCI_LAYER | OCI_LAYER_ND | DOCKER_LAYER => Ok(Compression::None),
            OCI_LAYER_GZIP | OCI_LAYER_ND_GZIP | DOCKER_LAYER_GZIP | DOCKER_FOREIGN_LAYER_GZIP => {
                Ok(Compression::Gzip)
            }
            OCI_LAYER_ZSTD | OCI_LAYER_ND_ZSTD | DOCKER_LAYER_ZSTD => Ok(Compression::Zstd),
            other => Err(UnknownMediaType(other.into())),
        }
    }

    /// Whether `media_type` is any layer type kiln knows.
    pub fn is_layer_media_type(media_type: &str) -> bool {
        Self::from_media_type(media_type).is_ok()
    }

    /// Wraps `r` in the decoder for this compression.
    pub fn decoder<'a>(
        self,
        r: Box<dyn Read + Send + 'a>,
    ) -> io::Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Compression::None => r,
            // MultiGzDecoder: pigz-style and concatenated gzip members are one stream.
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(r))),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        })
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// Media type for a layer with `c` compression (OCI or docker flavour).
pub fn media_type_for_layer(c: Compression, oci: bool) -> &'static str {
    c.layer_media_type(oci)
}

/// Wraps `r` in a decoder chosen by sniffing its first bytes; uncompressed data passes
/// through unchanged. Also returns what was detected.
pub fn auto_decoder<'a>(
    mut r: Box<dyn Read + Send + 'a>,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let head = read_head(&mut r)?;
    let c = Compression::detect(&head);
    let whole: Box<dyn Read + Send + 'a> = Box::new(io::Cursor::new(head).chain(r));
    Ok((c, c.decoder(whole)?))
}

/// Same as [`auto_decoder`] without the detected kind.
pub fn decoder<'a>(r: Box<dyn Read + Send + 'a>) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(auto_decoder(r)?.1)
}

/// Reads up to 4 bytes (fewer only at end of stream): a reader may hand out the magic in
/// pieces, so one `read` is not enough.
pub(crate) fn read_head(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(head[..n].to_vec())
}
