//! A decoder that detects a layer's compression from the stream's first bytes (layers in
//! docker archives carry no media type). The `Compression` type is kiln-image's.

use crate::error::{Error, Result};
use kiln_image::Compression;
use std::io::{self, BufReader, Read};

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
