//! Hashing while data streams by. The digest type is kiln-image's (`sha256:<hex>`), so layer
//! digests flow into manifests and the store without conversion.

use kiln_image::{Digest, DigestWriter, Hasher};
use std::io::{self, Read, Write};

/// A writer that hashes and counts what passes through it.
pub(crate) struct HashWriter<W: Write>(DigestWriter<W>);

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter(DigestWriter::new(inner))
    }

    pub(crate) fn into_parts(self) -> (W, Digest, u64) {
        self.0.finish()
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A reader that hashes and counts what is read through it.
pub(crate) struct HashReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: Hasher::new(),
        }
    }

    pub(crate) fn finish(self) -> (Digest, u64) {
        let n = self.hasher.len();
        (self.hasher.finish(), n)
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_the_well_known_sha256() {
        let (_, d, n) = HashWriter::new(Vec::new()).into_parts();
        assert_eq!(n, 0);
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn reader_and_writer_agree() {
        let data = b"kiln layer bytes".repeat(1000);
        let mut w = HashWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (out, dw, nw) = w.into_parts();
        let mut r = HashReader::new(&out[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        let (dr, nr) = r.finish();
        assert_eq!((dw, nw), (dr, nr));
        assert_eq!(nw, data.len() as u64);
    }
}
