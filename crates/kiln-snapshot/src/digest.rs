//! Hashing while data streams by. The digest type is kiln-image's (`sha256:<hex>`), so layer
//! digests flow into manifests and the store without conversion.

use kiln_image::{Digest, DigestWriter, Hasher};
use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

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

/// Size of the chunks [`ThreadedHashWriter`] writes and hashes.
const CHUNK: usize = 1 << 20;
/// Chunks in flight to the hashing thread (memory: about this many MiB, plus two).
const IN_FLIGHT: usize = 4;

/// A writer that hashes what passes through it on another thread: bytes are gathered into
/// 1 MiB chunks; each chunk is written to `inner` (one `write` of 1 MiB) and then handed to
/// the hashing thread, which hashes it while the next chunk is gathered and written. With
/// two cores, hashing a large layer then costs about as long as writing it, not the sum.
/// The digest covers exactly the bytes written to `inner`, in order.
pub(crate) struct ThreadedHashWriter<W: Write> {
    /// Always `Some` until `finish` takes it.
    inner: Option<W>,
    chunk: Vec<u8>,
    to_hasher: Option<SyncSender<Vec<u8>>>,
    /// Chunks the hasher is done with, for reuse.
    back: Receiver<Vec<u8>>,
    hasher: Option<JoinHandle<Hasher>>,
    len: u64,
}

impl<W: Write> ThreadedHashWriter<W> {
    pub(crate) fn new(inner: W) -> io::Result<Self> {
        let (to_hasher, jobs) = sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (give_back, back) = sync_channel::<Vec<u8>>(IN_FLIGHT + 2);
        let hasher = std::thread::Builder::new()
            .name("kiln-hash".into())
            .spawn(move || {
                let mut h = Hasher::new();
                for mut chunk in jobs {
                    h.update(&chunk);
                    chunk.clear();
                    // The writer may be gone or have enough spares; either is fine.
                    let _ = give_back.try_send(chunk);
                }
                h
            })?;
        Ok(ThreadedHashWriter {
            inner: Some(inner),
            chunk: Vec::with_capacity(CHUNK),
            to_hasher: Some(to_hasher),
            back,
            hasher: Some(hasher),
            len: 0,
        })
    }

    /// Writes the gathered chunk and passes it to the hashing thread.
    fn ship(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let inner = self.inner.as_mut().expect("writer used after finish");
        inner.write_all(&self.chunk)?;
        let spare = self
            .back
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let full = std::mem::replace(&mut self.chunk, spare);
        self.len += full.len() as u64;
        let tx = self.to_hasher.as_ref().expect("hasher runs until finish");
        tx.send(full)
            .map_err(|_| io::Error::other("the hashing thread stopped"))
    }

    /// Writes what is left and returns the inner writer, the digest and the length.
    pub(crate) fn finish(mut self) -> io::Result<(W, Digest, u64)> {
        self.ship()?;
        drop(self.to_hasher.take());
        let h = self
            .hasher
            .take()
            .expect("finish runs once")
            .join()
            .map_err(|_| io::Error::other("the hashing thread panicked"))?;
        debug_assert_eq!(h.len(), self.len);
        let inner = self.inner.take().expect("finish runs once");
        Ok((inner, h.finish(), self.len))
    }
}

impl<W: Write> Drop for ThreadedHashWriter<W> {
    fn drop(&mut self) {
        drop(self.to_hasher.take());
        if let Some(h) = self.hasher.take() {
            let _ = h.join();
        }
    }
}

impl<W: Write> Write for ThreadedHashWriter<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        while !buf.is_empty() {
            let room = CHUNK - self.chunk.len();
            let take = room.min(buf.len());
            self.chunk.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.chunk.len() == CHUNK {
                self.ship()?;
            }
        }
        Ok(n)
    }

    /// Writes the gathered bytes (a partial chunk) through to the inner writer.
    fn flush(&mut self) -> io::Result<()> {
        self.ship()?;
        self.inner
            .as_mut()
            .expect("writer used after finish")
            .flush()
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
    fn threaded_writer_hashes_what_it_writes() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 12345] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 1000) as u8).collect();
            let mut w = ThreadedHashWriter::new(Vec::new()).unwrap();
            // Odd write sizes, and a flush in the middle (a short chunk).
            let (a, b) = data.split_at(len / 3);
            for piece in a.chunks(4099) {
                w.write_all(piece).unwrap();
            }
            w.flush().unwrap();
            for piece in b.chunks(300_001) {
                w.write_all(piece).unwrap();
            }
            let (out, d, n) = w.finish().unwrap();
            assert_eq!(out, data);
            assert_eq!(n, len as u64);
            assert_eq!(d, Digest::of(&data), "len {len}");
        }
        // Dropped without finishing: the thread ends, nothing hangs.
        let mut w = ThreadedHashWriter::new(Vec::new()).unwrap();
        w.write_all(&vec![1u8; 3 * CHUNK]).unwrap();
        drop(w);
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
