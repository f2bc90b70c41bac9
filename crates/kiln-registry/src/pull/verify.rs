//! A layer's diff ID and its tar, checked (and the tar unpacked) while the layer downloads,
//! on three threads beside the download: one decompresses, one checks each gzip member's
//! CRC-32 and length (as gzip readers do) and passes the tar on, one unpacks the tar into a
//! staging snapshot directory with kiln's extraction (`kiln_snapshot::extract_layer_tar`,
//! the lazy unpack's code and rules: an entry that would escape its root, a tar that does
//! not parse, ... refuse the layer) and hashes it for the diff ID. A layer whose snapshot
//! the store already has is not unpacked: its tar's headers are read with the same rules
//! (`check_layer_tar`) and the middle thread hashes it. The stages overlap, so a pull costs
//! about as long as its slowest stage (inflating, or writing the files) instead of the sum.
//!
//! gzip is decoded here, member by member (pigz-style and concatenated members are one
//! stream, as for `MultiGzDecoder`), straight from the downloaded chunks into large output
//! buffers: no reader layers copying bytes between them. zstd goes through its decoder;
//! an uncompressed layer goes to the hasher as it is.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use flate2::{Decompress, FlushDecompress, Status};
use kiln_image::{Compression, Digest, Hasher};

/// The tar's digest and length (and what unpacking it did), or why the layer was refused.
pub(super) type Verified = Result<Checked, Refused>;

/// What the verifier found in a layer it accepted.
#[derive(Debug)]
pub(super) struct Checked {
    /// sha256 of the tar: the layer's diff ID if the config is right.
    pub diff_id: Digest,
    /// The tar's length.
    pub len: u64,
    /// The extraction's counts, when the tar was unpacked.
    pub unpacked: Option<kiln_snapshot::ExtractStats>,
}

/// What to do with the tar besides hashing it.
#[derive(Debug, Clone)]
pub(super) enum Tar {
    /// Read its headers with the extraction's rules; write nothing.
    Check,
    /// Unpack it into this (empty, store staging) directory.
    Unpack(PathBuf),
}

/// A running verifier: send the blob's bytes, in order, then drop `tx` and join `handle`.
pub(super) struct Verifier {
    pub tx: SyncSender<Vec<u8>>,
    pub handle: JoinHandle<Verified>,
    /// Compressed bytes the decompressor has taken so far (docker's `Extracting` count).
    pub consumed: Arc<AtomicU64>,
    /// Closed (disconnected) when the verifier has its answer: wait on it with a timeout.
    pub done: Receiver<()>,
}

/// Why a layer was refused.
#[derive(Debug)]
pub(super) enum Refused {
    /// It does not decompress (or a gzip member's CRC-32 or length is wrong).
    Decompress(io::Error),
    /// Its tar would not extract: the entry and why, as extraction says it.
    Tar(kiln_snapshot::Error),
    /// The host refused to unpack it (no space, I/O error): not the tar's fault.
    Unpack(kiln_snapshot::Error),
}

impl Refused {
    /// An extraction error, classified: an error the system gave (a raw OS error: ENOSPC,
    /// EIO, EACCES on the store) is the host's; the rest are the tar's.
    fn of_extraction(e: kiln_snapshot::Error) -> Refused {
        let os = match &e {
            kiln_snapshot::Error::Io { source, .. } => source.raw_os_error(),
            kiln_snapshot::Error::Entry {
                kind: kiln_snapshot::EntryError::Io { source, .. },
                ..
            } => source.raw_os_error(),
            _ => None,
        };
        match os {
            Some(_) => Refused::Unpack(e),
            None => Refused::Tar(e),
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Decompress(e) => write!(f, "does not decompress: {e}"),
            Refused::Tar(e) => write!(f, "refused, its tar would not extract safely: {e}"),
            Refused::Unpack(e) => write!(f, "could not be unpacked: {e}"),
        }
    }
}

/// Decompressed bytes go to the hasher in buffers of this size.
const OUT_CHUNK: usize = 1 << 20;
/// Downloaded chunks waiting for the decompressor (at most this many).
const IN_QUEUE: usize = 64;

/// Starts the decompressing, hashing and tar threads for a layer of `media_type` (a plain
/// or unknown type is sniffed by its magic bytes, as `load` does). The decompressor reads
/// to the end of the channel whatever happens, so a sender never blocks on it. On an error
/// an `Unpack` directory is left half-written: the caller removes it.
pub(super) fn spawn(media_type: &str, tar: Tar) -> Verifier {
    let (tx, rx) = sync_channel::<Vec<u8>>(IN_QUEUE);
    let declared = Compression::from_media_type(media_type).unwrap_or(Compression::None);
    let consumed = Arc::new(AtomicU64::new(0));
    let counter = consumed.clone();
    let (done_tx, done) = sync_channel::<()>(0);
    let handle = std::thread::spawn(move || {
        let _done = done_tx; // dropped on return
        let mut input = Input {
            rx,
            chunk: Vec::new(),
            pos: 0,
            consumed: counter,
        };
        let result = decode(declared, &mut input, tar);
        while input.rx.recv().is_ok() {}
        result
    });
    Verifier {
        tx,
        handle,
        consumed,
        done,
    }
}

/// Checks (or unpacks, as `tar` says) a layer blob on disk. The outer error is reading the
/// file; the inner result is the verifier's.
pub(super) fn verify_file(path: &Path, media_type: &str, tar: Tar) -> io::Result<Verified> {
    let mut f = std::fs::File::open(path)?;
    let Verifier { tx, handle, .. } = spawn(media_type, tar);
    let read = (|| -> io::Result<()> {
        loop {
            let mut buf = vec![0u8; 1 << 20];
            let n = read_full(&mut f, &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            if tx.send(buf).is_err() {
                return Ok(());
            }
        }
    })();
    drop(tx);
    let verified = handle.join().unwrap_or_else(|_| {
        Err(Refused::Decompress(io::Error::other(
            "the layer verifier panicked",
        )))
    });
    read?;
    Ok(verified)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The downloaded bytes, chunk by chunk as the channel brings them.
struct Input {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    /// Bytes consumed, for progress (updated per call, not per byte).
    consumed: Arc<AtomicU64>,
}

impl Input {
    /// The unread part of the current chunk; empty only at the end of the stream.
    fn fill(&mut self) -> &[u8] {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                Err(_) => return &[],
            }
        }
        &self.chunk[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        self.count(n);
    }

    fn count(&self, n: usize) {
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The next `n` bytes without consuming them (fewer only at the end of the stream):
    /// later chunks are joined to the current one as needed.
    fn peek(&mut self, n: usize) -> &[u8] {
        self.fill();
        while self.chunk.len() - self.pos < n {
            match self.rx.recv() {
                Ok(c) => {
                    self.chunk.drain(..self.pos);
                    self.pos = 0;
                    self.chunk.extend_from_slice(&c);
                }
                Err(_) => break,
            }
        }
        let end = self.chunk.len().min(self.pos + n);
        &self.chunk[self.pos..end]
    }

    fn byte(&mut self) -> io::Result<u8> {
        match self.fill().first() {
            Some(&b) => {
                self.pos += 1;
                self.count(1);
                Ok(b)
            }
            None => Err(truncated()),
        }
    }

    fn skip(&mut self, mut n: usize) -> io::Result<()> {
        while n > 0 {
            let avail = self.fill().len();
            if avail == 0 {
                return Err(truncated());
            }
            let k = avail.min(n);
            self.pos += k;
            self.count(k);
            n -= k;
        }
        Ok(())
    }

    fn u16_le(&mut self) -> io::Result<u16> {
        Ok(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }

    fn u32_le(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes([
            self.byte()?,
            self.byte()?,
            self.byte()?,
            self.byte()?,
        ]))
    }
}

impl Read for Input {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill();
        let n = out.len().min(avail.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.pos += n;
        self.count(n);
        Ok(n)
    }
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the compressed stream ends early",
    )
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// What the decompressor hands the hasher.
enum Msg {
    /// Decompressed bytes, in order.
    Data(Vec<u8>),
    /// A gzip member ended here; its trailer's CRC-32 and length (mod 2^32) to check.
    MemberEnd { crc: u32, isize: u32 },
}

/// The decompressor's end of the hashing thread: full buffers go out, empty ones come back.
struct Output {
    tx: Option<SyncSender<Msg>>,
    pool: Receiver<Vec<u8>>,
    buf: Vec<u8>,
}

impl Output {
    fn new(tx: SyncSender<Msg>, pool: Receiver<Vec<u8>>) -> Output {
        Output {
            tx: Some(tx),
            pool,
            buf: Vec::with_capacity(OUT_CHUNK),
        }
    }

    fn send(&mut self, m: Msg) -> io::Result<()> {
        match &self.tx {
            Some(tx) if tx.send(m).is_ok() => Ok(()),
            _ => Err(io::Error::other("the layer hasher stopped")),
        }
    }

    /// Sends what the buffer holds and takes an empty one.
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = match self.pool.try_recv() {
            Ok(mut b) if b.capacity() >= OUT_CHUNK => {
                b.clear();
                b
            }
            _ => Vec::with_capacity(OUT_CHUNK),
        };
        let full = std::mem::replace(&mut self.buf, next);
        self.send(Msg::Data(full))
    }

    /// A buffer with room in it.
    fn room(&mut self) -> io::Result<&mut Vec<u8>> {
        if self.buf.len() == self.buf.capacity() {
            self.flush()?;
        }
        Ok(&mut self.buf)
    }
}

fn decode(declared: Compression, input: &mut Input, tar: Tar) -> Verified {
    let (htx, hrx) = sync_channel::<Msg>(8);
    let (pool_tx, pool_rx) = channel::<Vec<u8>>();
    let (ctx, crx) = sync_channel::<Vec<u8>>(8);
    let checker_pool = pool_tx.clone();
    // Extraction hashes what it reads; a check only skips through, so the hasher hashes.
    let sha = matches!(tar, Tar::Check);
    let checker = std::thread::spawn(move || check(crx, checker_pool, tar));
    let hasher = std::thread::spawn(move || hash(hrx, ctx, pool_tx, sha));
    let mut out = Output::new(htx, pool_rx);
    let comp = if declared == Compression::None {
        Compression::detect(input.peek(4))
    } else {
        declared
    };
    let decoded = match comp {
        Compression::Gzip => gunzip(input, &mut out),
        Compression::Zstd => unzstd(input, &mut out),
        Compression::None => plain(input, &mut out),
    };
    let decoded = decoded.and_then(|()| out.flush());
    out.tx = None;
    let hashed = hasher
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the layer hasher panicked")));
    let checked = checker.join().unwrap_or_else(|_| {
        Err(Refused::Tar(kiln_snapshot::Error::Archive {
            after: None,
            source: io::Error::other("the layer tar checker panicked"),
        }))
    });
    decoded.map_err(Refused::Decompress)?;
    let hashed = hashed.map_err(Refused::Decompress)?;
    let unpacked = checked?;
    let (diff_id, len) = match (&unpacked, hashed) {
        (Some(stats), _) => (stats.diff_id, stats.tar_size),
        (None, Some(h)) => h,
        (None, None) => unreachable!("a check hashes in the hasher"),
    };
    Ok(Checked {
        diff_id,
        len,
        unpacked,
    })
}

/// Unpacks the tar (or reads its headers as extraction would, skipping file contents);
/// buffers go back to the pool. Reads the channel to its end whatever happens.
fn check(
    rx: Receiver<Vec<u8>>,
    pool: Sender<Vec<u8>>,
    tar: Tar,
) -> Result<Option<kiln_snapshot::ExtractStats>, Refused> {
    let mut stream = TarStream {
        rx,
        pool,
        chunk: Vec::new(),
        pos: 0,
        offset: 0,
        ended: false,
    };
    let checked = match &tar {
        Tar::Check => kiln_snapshot::check_layer_tar(&mut stream)
            .map(|_| None)
            .map_err(Refused::Tar),
        Tar::Unpack(dir) => {
            let opts = kiln_snapshot::ExtractOptions::default();
            kiln_snapshot::extract_layer_tar(&mut stream, dir, &opts)
                .map(Some)
                .map_err(|e| Refused::of_extraction(stream.truncation(e)))
        }
    };
    while let Ok(c) = stream.rx.recv() {
        let _ = stream.pool.send(c);
    }
    checked
}

/// The decompressed tar as the hasher passes it on: read, or skipped forward without a copy.
struct TarStream {
    rx: Receiver<Vec<u8>>,
    pool: Sender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    offset: u64,
    /// The stream has ended (the tar reader asked for more than there was).
    ended: bool,
}

impl TarStream {
    /// A tar that stops inside an entry makes the `tar` crate fail at the next header
    /// ("unexpected EOF during skip"); said as the check says it, where the stream ended
    /// after a whole entry was read.
    fn truncation(&self, e: kiln_snapshot::Error) -> kiln_snapshot::Error {
        match e {
            kiln_snapshot::Error::Archive {
                after: Some(after),
                source,
            } if self.ended && source.raw_os_error().is_none() => kiln_snapshot::Error::Archive {
                after: Some(after),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the tar ends inside an entry (truncated)",
                ),
            },
            e => e,
        }
    }

    /// Makes the next non-empty chunk current; false at the end of the stream.
    fn advance(&mut self) -> bool {
        while let Ok(c) = self.rx.recv() {
            let done = std::mem::replace(&mut self.chunk, c);
            self.pos = 0;
            if done.capacity() > 0 {
                let _ = self.pool.send(done);
            }
            if !self.chunk.is_empty() {
                return true;
            }
        }
        self.ended = true;
        false
    }
}

impl Read for TarStream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.chunk.len() && !self.advance() {
            return Ok(0);
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        self.offset += n as u64;
        Ok(n)
    }
}

impl io::Seek for TarStream {
    /// Forward only; past the end of the stream is an error (the tar is truncated).
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let n = match to {
            io::SeekFrom::Current(n) if n >= 0 => n as u64,
            io::SeekFrom::Start(n) if n >= self.offset => n - self.offset,
            _ => return Err(io::Error::other("the layer tar is read forward only")),
        };
        let mut left = n;
        while left > 0 {
            if self.pos == self.chunk.len() && !self.advance() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the tar ends inside an entry (truncated)",
                ));
            }
            let k = left.min((self.chunk.len() - self.pos) as u64);
            self.pos += k as usize;
            left -= k;
        }
        self.offset += n;
        Ok(self.offset)
    }
}

/// Hashes the tar; checks each gzip member's trailer against the bytes it covered. The
/// buffers go on to the tar checker.
fn hash(
    rx: Receiver<Msg>,
    checker: SyncSender<Vec<u8>>,
    pool: Sender<Vec<u8>>,
    sha: bool,
) -> io::Result<Option<(Digest, u64)>> {
    let mut checker = Some(checker);
    let mut h = Hasher::new();
    let mut crc = crc32fast::Hasher::new();
    let mut member_len: u64 = 0;
    let mut failed = None;
    for m in rx {
        if failed.is_some() {
            continue; // drain, so that the decompressor never blocks
        }
        match m {
            Msg::Data(b) => {
                if sha {
                    h.update(&b);
                }
                crc.update(&b);
                member_len += b.len() as u64;
                match &checker {
                    Some(c) => {
                        if let Err(back) = c.send(b) {
                            checker = None;
                            let _ = pool.send(back.0);
                        }
                    }
                    None => {
                        let _ = pool.send(b);
                    }
                }
            }
            Msg::MemberEnd { crc: want, isize } => {
                let got = std::mem::replace(&mut crc, crc32fast::Hasher::new()).finalize();
                if got != want {
                    failed = Some(invalid(format!(
                        "gzip CRC-32 mismatch: trailer {want:08x}, data {got:08x}"
                    )));
                } else if member_len as u32 != isize {
                    failed = Some(invalid(format!(
                        "gzip length mismatch: trailer {isize}, data {}",
                        member_len as u32
                    )));
                }
                member_len = 0;
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if !sha {
        return Ok(None);
    }
    let len = h.len();
    Ok(Some((h.finish(), len)))
}

fn plain(input: &mut Input, out: &mut Output) -> io::Result<()> {
    // Chunks go as they came: no copy.
    if input.pos < input.chunk.len() {
        let first = std::mem::take(&mut input.chunk);
        let rest = if input.pos == 0 {
            first
        } else {
            first[input.pos..].to_vec()
        };
        input.pos = 0;
        input.count(rest.len());
        out.send(Msg::Data(rest))?;
    }
    while let Ok(c) = input.rx.recv() {
        if !c.is_empty() {
            input.count(c.len());
            out.send(Msg::Data(c))?;
        }
    }
    Ok(())
}

fn unzstd(input: &mut Input, out: &mut Output) -> io::Result<()> {
    let mut dec = zstd::stream::read::Decoder::new(input)?;
    loop {
        let buf = out.room()?;
        let len = buf.len();
        buf.resize(buf.capacity(), 0);
        let n = match dec.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => {
                buf.truncate(len);
                return Err(e);
            }
        };
        buf.truncate(len + n);
        if n == 0 {
            return Ok(());
        }
    }
}

const FTEXT_MASK: u8 = 0xe0; // reserved flag bits: must be zero
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

/// Reads one gzip member header (RFC 1952 §2.3).
fn gzip_header(input: &mut Input) -> io::Result<()> {
    let (id1, id2, cm) = (input.byte()?, input.byte()?, input.byte()?);
    if (id1, id2) != (0x1f, 0x8b) {
        return Err(invalid("not a gzip stream (bad magic)"));
    }
    if cm != 8 {
        return Err(invalid(format!(
            "gzip compression method {cm} (only 8, deflate)"
        )));
    }
    let flags = input.byte()?;
    if flags & FTEXT_MASK != 0 {
        return Err(invalid("gzip header with reserved flags set"));
    }
    input.skip(6)?; // MTIME, XFL, OS
    if flags & FEXTRA != 0 {
        let xlen = input.u16_le()?;
        input.skip(usize::from(xlen))?;
    }
    for f in [FNAME, FCOMMENT] {
        if flags & f != 0 {
            while input.byte()? != 0 {}
        }
    }
    if flags & FHCRC != 0 {
        input.skip(2)?;
    }
    Ok(())
}

/// Inflates every gzip member of the stream.
fn gunzip(input: &mut Input, out: &mut Output) -> io::Result<()> {
    let mut dec = Decompress::new(false);
    let mut first = true;
    loop {
        if !first && input.fill().is_empty() {
            return Ok(());
        }
        first = false;
        gzip_header(input)?;
        dec.reset(false);
        loop {
            let avail = input.fill();
            if avail.is_empty() {
                return Err(truncated());
            }
            let (in0, out0) = (dec.total_in(), dec.total_out());
            // Safe to hold `avail` (borrowing `input`) and `out` at once: two objects.
            let buf = out.room()?;
            let status = dec
                .decompress_vec(avail, buf, FlushDecompress::None)
                .map_err(|e| invalid(format!("invalid deflate data: {e}")))?;
            let used = (dec.total_in() - in0) as usize;
            let made = dec.total_out() - out0;
            input.consume(used);
            match status {
                Status::StreamEnd => break,
                Status::Ok | Status::BufError => {
                    if used == 0 && made == 0 {
                        return Err(invalid("the deflate stream makes no progress"));
                    }
                }
            }
        }
        out.flush()?;
        let crc = input.u32_le()?;
        let isize = input.u32_le()?;
        out.send(Msg::MemberEnd { crc, isize })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn run_as(media_type: &str, blob: &[u8], piece: usize, tar: Tar) -> Verified {
        let v = spawn(media_type, tar);
        for c in blob.chunks(piece.max(1)) {
            v.tx.send(c.to_vec()).unwrap();
        }
        drop(v.tx);
        let r = v.handle.join().unwrap();
        if r.is_ok() {
            // Every compressed byte was taken (docker's `Extracting` count ends at the size).
            assert_eq!(v.consumed.load(Ordering::Relaxed), blob.len() as u64);
        }
        r
    }

    /// Checks the blob, and unpacks it into a fresh directory: both must agree, on the
    /// digest or on the error, word for word (the unpack refuses what the check refuses).
    fn run(media_type: &str, blob: &[u8], piece: usize) -> Result<(Digest, u64), Refused> {
        let checked = run_as(media_type, blob, piece, Tar::Check);
        let dir = tempfile::tempdir().unwrap();
        let unpacked = run_as(media_type, blob, piece, Tar::Unpack(dir.path().into()));
        match (&checked, &unpacked) {
            (Ok(c), Ok(u)) => {
                assert_eq!((c.diff_id, c.len), (u.diff_id, u.len));
                assert!(c.unpacked.is_none() && u.unpacked.is_some());
            }
            (Err(c), Err(u)) => assert_eq!(c.to_string(), u.to_string()),
            (c, u) => panic!("the check says {c:?}, the unpack {u:?}"),
        }
        checked.map(|c| (c.diff_id, c.len))
    }

    /// A tar of one file of compressible bytes with some noise (about 3 MB).
    fn data() -> Vec<u8> {
        tar_of(&[("f", &noise())])
    }

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *content).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn noise() -> Vec<u8> {
        let mut v = Vec::new();
        let mut x: u32 = 1;
        for i in 0..3_000_000u32 {
            // Compressible with some noise.
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            v.push(if i % 7 == 0 {
                (x >> 24) as u8
            } else {
                (i % 61) as u8
            });
        }
        v
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    const ZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

    #[test]
    fn every_kind_in_any_pieces_gives_the_tar_digest() {
        let d = data();
        let want = (Digest::of(&d), d.len() as u64);
        let g = gz(&d);
        let z = zstd::encode_all(&d[..], 3).unwrap();
        for piece in [1, 7, 4096, 1 << 20, usize::MAX] {
            if piece < 4096 {
                // Byte-sized pieces are slow on the big blob: a small one checks them.
                let small = &tar_of(&[("s", &noise()[..50_000])]);
                let got = run(GZ, &gz(small), piece).unwrap();
                assert_eq!(
                    got,
                    (Digest::of(small), small.len() as u64),
                    "piece {piece}"
                );
                continue;
            }
            assert_eq!(run(GZ, &g, piece).unwrap(), want, "gzip, piece {piece}");
            assert_eq!(run(ZST, &z, piece).unwrap(), want, "zstd, piece {piece}");
            assert_eq!(run(TAR, &d, piece).unwrap(), want, "tar, piece {piece}");
            // A plain type is sniffed.
            assert_eq!(run(TAR, &g, piece).unwrap(), want, "sniffed gzip");
            assert_eq!(run(TAR, &z, piece).unwrap(), want, "sniffed zstd");
        }
    }

    #[test]
    fn concatenated_members_are_one_stream_and_headers_with_fields_parse() {
        let d = data();
        let (a, b) = d.split_at(1_234_567);
        let mut blob = gz(a);
        // A member with FEXTRA, FNAME, FCOMMENT and FHCRC.
        let mut e = flate2::GzBuilder::new()
            .extra(vec![1, 2, 3])
            .filename("x.tar")
            .comment("hi")
            .write(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        blob.extend(e.finish().unwrap());
        blob.extend(gz(b""));
        assert_eq!(
            run(GZ, &blob, 65536).unwrap(),
            (Digest::of(&d), d.len() as u64)
        );
    }

    #[test]
    fn corrupt_and_truncated_streams_are_errors() {
        let d = data();
        let g = gz(&d);
        let e = run(GZ, &g[..g.len() - 9], 65536).unwrap_err();
        let Refused::Decompress(io) = &e else {
            panic!("{e}")
        };
        assert_eq!(io.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        let mut bad_crc = g.clone();
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;
        let e = run(GZ, &bad_crc, 65536).unwrap_err();
        assert!(e.to_string().contains("CRC-32"), "{e}");
        let mut bad_len = g.clone();
        bad_len[n - 1] ^= 1;
        let e = run(GZ, &bad_len, 65536).unwrap_err();
        assert!(e.to_string().contains("length"), "{e}");
        let mut garbage = g.clone();
        garbage.extend_from_slice(b"trailing");
        let e = run(GZ, &garbage, 65536).unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
        let mut flipped = g.clone();
        flipped[n / 2] ^= 0xff;
        assert!(run(GZ, &flipped, 65536).is_err());
        assert!(run(GZ, b"", 1).is_err(), "an empty gzip layer is no gzip");
        assert!(run(GZ, &d[..1000], 100).is_err());
    }

    #[test]
    fn tars_that_would_not_extract_are_refused_naming_the_entry() {
        let escape = tar_with_raw_name(b"../etc/x");
        let through_link = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, "l", "/etc").unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, "l/passwd", &b"x"[..]).unwrap();
            b.into_inner().unwrap()
        };
        let full = data();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "escape",
                escape,
                "\"../etc/x\": path escapes the root through `..`",
            ),
            (
                "through a symlink",
                through_link,
                "\"l/passwd\": parent \"l\" is a symbolic link",
            ),
            (
                "not a tar",
                noise()[..4096].to_vec(),
                "reading layer tar at its start",
            ),
            // Cut inside the file's data: the tar ends inside an entry.
            ("truncated", full[..full.len() / 2].to_vec(), "truncated"),
        ];
        for (what, tar, want) in cases {
            for (mt, blob) in [(TAR, tar.clone()), (GZ, gz(&tar))] {
                for piece in [7, 4096, 1 << 20] {
                    let e = run(mt, &blob, piece).unwrap_err();
                    assert!(
                        matches!(e, Refused::Tar(_)) && e.to_string().contains(want),
                        "{what}, {mt}, piece {piece}: {e}"
                    );
                }
            }
        }
        // The hasher's digest is the whole stream's, padding and trailing zeros included.
        let mut padded = data();
        padded.extend(std::iter::repeat_n(0u8, 10_000));
        assert_eq!(
            run(TAR, &padded, 65536).unwrap(),
            (Digest::of(&padded), padded.len() as u64)
        );
    }

    #[test]
    fn an_inflated_tar_is_not_sniffed_again() {
        // A gzip layer whose tar starts with gzip's magic (its first entry's name): the
        // lazy unpack inflates the blob once; so must the pull's, and extract that tar.
        let name = b"\x1f\x8b\x08name";
        let tar = tar_with_raw_name(name);
        let dir = tempfile::tempdir().unwrap();
        let c = run_as(GZ, &gz(&tar), 4096, Tar::Unpack(dir.path().into())).unwrap();
        assert_eq!(c.diff_id, Digest::of(&tar));
        assert_eq!(c.unpacked.unwrap().files, 1);
        use std::os::unix::ffi::OsStrExt;
        let p = dir.path().join(std::ffi::OsStr::from_bytes(name));
        assert_eq!(std::fs::read(p).unwrap(), b"x");
    }

    #[test]
    fn an_unpacked_layer_is_the_tars_files() {
        let d = data();
        let dir = tempfile::tempdir().unwrap();
        let c = run_as(GZ, &gz(&d), 65536, Tar::Unpack(dir.path().into())).unwrap();
        assert_eq!((c.diff_id, c.len), (Digest::of(&d), d.len() as u64));
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), noise());
    }

    /// A tar of one file whose name is `name` as written (tar::Builder refuses `..`).
    fn tar_with_raw_name(name: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        let mut v = h.as_bytes().to_vec();
        v.push(b'x');
        v.resize(1024 + 1024, 0);
        v
    }
}
