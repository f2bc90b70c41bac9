//! Parallel gzip, pigz-style: the input is cut into fixed 1 MiB chunks, each compressed as raw
//! deflate on a worker thread (ending on a byte boundary with a sync flush, the last with the
//! final block), and the pieces are written in order between one gzip header and trailer.
//!
//! Chunk boundaries depend only on the input, never on the number of threads, so the output
//! is the same bytes on every machine. flate2's zlib-rs backend cannot take a preset
//! dictionary, so each chunk starts with an empty window; with 1 MiB chunks that costs well
//! under 1% in size (pigz's 128 KiB chunks with dictionaries trade the other way).
//! Own code instead of `gzp`: no `'static` bound on the writer, and no second deflate backend.

use flate2::{Compress, FlushCompress, Status};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const CHUNK: usize = 1 << 20;

struct Job {
    input: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Vec<u8>>>,
}

/// A gzip encoder compressing on `threads` worker threads.
pub(crate) struct ParGzWriter<W: Write> {
    inner: Option<W>,
    buf: Vec<u8>,
    level: u32,
    crc: crc32fast::Hasher,
    total: u64,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    header_written: bool,
}

impl<W: Write> ParGzWriter<W> {
    pub(crate) fn new(inner: W, level: u32, threads: usize) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    loop {
                        // Hold the lock only to take a job.
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let out = deflate_chunk(&job.input, level, job.last);
                        let _ = job.reply.send(out);
                    }
                })
            })
            .collect();
        ParGzWriter {
            inner: Some(inner),
            buf: Vec::with_capacity(CHUNK),
            level,
            crc: crc32fast::Hasher::new(),
            total: 0,
            jobs: Some(tx),
            workers,
            pending: VecDeque::new(),
            max_pending: threads * 2,
            header_written: false,
        }
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        if !self.header_written {
            // mtime 0, no name: the same bytes every time. XFL as zlib sets it, OS = unknown.
            let xfl = match self.level {
                9 => 2,
                1 => 4,
                _ => 0,
            };
            self.out()?
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
            self.header_written = true;
        }
        while self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        let input = std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(if last { 0 } else { CHUNK }),
        );
        let (reply, rx) = sync_channel(1);
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))?;
        jobs.send(Job { input, last, reply })
            .map_err(|_| io::Error::other("gzip worker thread exited"))?;
        self.pending.push_back(rx);
        Ok(())
    }

    fn out(&mut self) -> io::Result<&mut W> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let out = rx
                .recv()
                .map_err(|_| io::Error::other("gzip worker thread panicked"))??;
            self.out()?.write_all(&out)?;
        }
        Ok(())
    }

    /// Write the last chunk and the trailer; returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        let crc = std::mem::take(&mut self.crc).finalize();
        let isize = (self.total & 0xffff_ffff) as u32;
        let out = self.out()?;
        out.write_all(&crc.to_le_bytes())?;
        out.write_all(&isize.to_le_bytes())?;
        out.flush()?;
        self.shutdown();
        self.inner
            .take()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))
    }

    fn shutdown(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<W: Write> Drop for ParGzWriter<W> {
    fn drop(&mut self) {
        self.pending.clear();
        self.shutdown();
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.crc.update(&data[..n]);
        self.total += n as u64;
        if self.buf.len() == CHUNK {
            self.submit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Output can only be flushed at chunk boundaries; flushing mid-chunk would make the
        // bytes depend on when callers flush.
        Ok(())
    }
}

/// Raw deflate of one chunk: sync-flushed (byte aligned, not final) unless it is the last.
fn deflate_chunk(input: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == input.len();
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete once zlib stops before filling the output.
            _ if !last && all_in && out.len() < out.capacity() => break,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gz(data: &[u8], threads: usize) -> Vec<u8> {
        let mut w = ParGzWriter::new(Vec::new(), 6, threads);
        // Odd write sizes cross chunk boundaries.
        for piece in data.chunks(777_777) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn sample(len: usize) -> Vec<u8> {
        let mut x: u32 = 1;
        (0..len)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i % 3 == 0 {
                    (x >> 24) as u8
                } else {
                    b'a' + (i % 7) as u8
                }
            })
            .collect()
    }

    #[test]
    fn round_trips_and_is_independent_of_threads() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345] {
            let data = sample(len);
            let one = gz(&data, 1);
            let four = gz(&data, 4);
            assert_eq!(one, four, "len {len}");
            assert_eq!(gunzip(&one), data, "len {len}");
            // The trailer is checked by the decoder; the header carries no time or name.
            assert_eq!(&one[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        }
    }

    #[test]
    fn dropping_unfinished_writer_does_not_hang() {
        let mut w = ParGzWriter::new(Vec::new(), 6, 2);
        w.write_all(&sample(3 * CHUNK)).unwrap();
        drop(w);
    }
}
