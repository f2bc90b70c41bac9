//! Layer compression: which codecs exist, their media types, and a decoder that detects the
//! codec from the stream's first bytes (layers in docker archives carry no media type).

use crate::error::{Error, Result};
use std::io::{self, BufReader, Read};

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (RFC 1952), possibly several members.
    Gzip,
    /// zstd, possibly several frames.
    Zstd,
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// The Docker schema 2 layer media type (Docker has none for zstd; the OCI one is used).
    pub fn docker_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
            Compression::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const BZIP2_MAGIC: &[u8] = b"BZh";
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];

/// Detect the compression of `reader` from its first bytes and return a reader of the
/// decompressed tar. An empty stream is an uncompressed (empty) tar.
pub fn decompress<'a, R: Read + 'a>(mut reader: R) -> Result<(Compression, Box<dyn Read + 'a>)> {
    let head = read_head(&mut reader, XZ_MAGIC.len()).map_err(|source| Error::Archive {
        after: None,
        source,
    })?;
    let buf = BufReader::with_capacity(256 * 1024, io::Cursor::new(head.clone()).chain(reader));
    if head.starts_with(GZIP_MAGIC) {
        Ok((
            Compression::Gzip,
            Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        ))
    } else if head.starts_with(ZSTD_MAGIC) {
        let dec =
            zstd::stream::read::Decoder::with_buffer(buf).map_err(|source| Error::Archive {
                after: None,
                source,
            })?;
        Ok((Compression::Zstd, Box::new(dec)))
    } else if head.starts_with(BZIP2_MAGIC) {
        Err(Error::UnsupportedCompression("bzip2"))
    } else if head.starts_with(XZ_MAGIC) {
        Err(Error::UnsupportedCompression("xz"))
    } else {
        Ok((Compression::None, Box::new(buf)))
    }
}

/// Read up to `n` bytes (fewer only at end of stream).
fn read_head<R: Read>(reader: &mut R, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    reader.by_ref().take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(c: Compression, data: &[u8]) -> Vec<u8> {
        let compressed = match c {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(data, 1).unwrap(),
        };
        let (got, mut r) = decompress(&compressed[..]).unwrap();
        assert_eq!(got, c);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn detects_and_decodes_each_codec() {
        let data = b"0123456789".repeat(5000);
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            assert_eq!(roundtrip(c, &data), data, "{c:?}");
        }
        assert_eq!(roundtrip(Compression::None, b"ab"), b"ab");
        assert_eq!(roundtrip(Compression::None, b""), b"");
    }

    #[test]
    fn refuses_bzip2_and_xz() {
        assert!(matches!(
            decompress(&b"BZh91AY"[..]),
            Err(Error::UnsupportedCompression("bzip2"))
        ));
        assert!(matches!(
            decompress(&[0xfd, b'7', b'z', b'X', b'Z', 0, 1][..]),
            Err(Error::UnsupportedCompression("xz"))
        ));
    }
}
