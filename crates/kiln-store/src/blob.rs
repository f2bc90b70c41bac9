//! Content-addressed blobs: streamed into a temp file while hashing, checked, fsynced and
//! renamed into `blobs/sha256/<hex>`. A blob whose bytes do not match its digest is never
//! renamed, so every file under `blobs/` always holds exactly what its name says.
//!
//! A writer made [`BlobWriter::deferred_sync`] (the build's export) skips the fsync: its
//! blob is recorded in `unsynced_blobs` before it becomes visible, and `blob_sync` makes it
//! durable later or, after a crash, re-hashes it (see there).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::Digest;
use crate::Store;
use crate::error::{Error, IoContext, Result};
use crate::layout::{Layout, sync_parent};
use crate::lease::{Lease, RefKind};

/// What the store knows about a committed blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob's digest.
    pub digest: Digest,
    /// Its length in bytes.
    pub size: u64,
}

/// Streams bytes into the store. Call [`BlobWriter::finish`] then [`PendingBlob::commit`];
/// dropping either one leaves nothing behind.
///
/// A writer from [`Store::blob_writer`] hashes what it is given. One from
/// [`Store::blob_writer_prehashed`] does not: its caller hashes the same bytes in the same
/// pass (kiln-snapshot's layer export does, since for an uncompressed layer the diff ID *is*
/// the blob digest) and hands the digest to [`BlobWriter::finish_prehashed`], so no byte is
/// hashed twice.
pub struct BlobWriter {
    file: BufWriter<tempfile::NamedTempFile>,
    hasher: Option<kiln_image::Hasher>,
    len: u64,
    /// Bytes already handed to the kernel's writeback (see [`WRITEBACK_STEP`]).
    kicked: u64,
    /// fsync at [`BlobWriter::finish`] (else see [`BlobWriter::deferred_sync`]).
    durable: bool,
    store: Store,
}

/// A large blob starts its writeback every this many bytes, so that the fsync at the end
/// waits for the last few megabytes instead of all of them.
const WRITEBACK_STEP: u64 = 8 << 20;

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("path", &self.file.get_ref().path())
            .field("len", &self.len)
            .finish()
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.len += n as u64;
        let in_file = self.len - self.file.buffer().len() as u64;
        if self.durable && in_file - self.kicked >= WRITEBACK_STEP {
            start_writeback(
                self.file.get_ref().as_file(),
                self.kicked,
                in_file - self.kicked,
            );
            self.kicked = in_file;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` to disk now, without waiting
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`). Only a hint: durability still comes from the
/// fsync in [`BlobWriter::finish`].
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain system call on a descriptor we own; it reads no memory of ours.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

impl BlobWriter {
    /// Neither fsync this blob nor start its writeback early: the blob is recorded as
    /// unsynced when committed, and a later `syncfs` (`Store::settle_snapshots`) makes it
    /// durable; after a crash before that it is re-hashed and dropped if torn
    /// (`Store::recover_unsynced_blobs`). For blobs made on this machine from content it
    /// keeps (the build's export): an fsync there commits the file system's journal, which
    /// on ext4 first writes out everything the build just wrote (seconds for a large COPY).
    /// Blobs from elsewhere (pull, load) keep their fsync.
    pub fn deferred_sync(mut self) -> Self {
        self.durable = false;
        self
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Flushes and fsyncs the temp file and computes the digest; the blob is not visible yet.
    /// A writer from [`Store::blob_writer_prehashed`] must use
    /// [`BlobWriter::finish_prehashed`] instead (this returns an error).
    pub fn finish(mut self) -> Result<PendingBlob> {
        let Some(hasher) = self.hasher.take() else {
            return Err(Error::io(
                "finishing",
                self.file.get_ref().path().to_path_buf(),
                std::io::Error::other("a prehashed blob writer needs finish_prehashed"),
            ));
        };
        let digest = hasher.finish();
        self.seal(digest)
    }

    /// Like [`BlobWriter::finish`], with the digest of the bytes written computed by the
    /// caller. The caller must have hashed exactly the bytes it wrote here, in order (it is
    /// the one thing the store takes on trust; `system check` re-hashes every blob). A
    /// writer that hashes itself checks `digest` against its own.
    pub fn finish_prehashed(mut self, digest: Digest) -> Result<PendingBlob> {
        if let Some(h) = self.hasher.take() {
            let actual = h.finish();
            if actual != digest {
                return Err(Error::DigestMismatch {
                    what: format!("blob {digest}"),
                    expected: digest.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        self.seal(digest)
    }

    fn seal(self, digest: Digest) -> Result<PendingBlob> {
        let file = self
            .file
            .into_inner()
            .map_err(|e| Error::io("writing", PathBuf::from("blob temp file"), e.into_error()))?;
        if self.durable {
            file.as_file()
                .sync_all()
                .ctx("syncing", file.path().to_path_buf())?;
        }
        Ok(PendingBlob {
            file,
            info: BlobInfo {
                digest,
                size: self.len,
            },
            durable: self.durable,
            store: self.store,
        })
    }
}

/// A fully written, hashed, fsynced (unless deferred) blob still in `tmp/`: readable (to
/// verify what is inside before accepting it) but not yet in `blobs/`.
#[derive(Debug)]
pub struct PendingBlob {
    file: tempfile::NamedTempFile,
    info: BlobInfo,
    durable: bool,
    store: Store,
}

impl PendingBlob {
    /// Digest and size of the bytes written.
    pub fn info(&self) -> BlobInfo {
        self.info
    }

    /// Where the temp file is, to read it back before committing.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Checks the content against `expected` (if given) and moves it into `blobs/`,
    /// protected by `lease` until something references it. On a mismatch the temp file is
    /// removed and nothing becomes visible.
    pub fn commit(self, lease: &Lease, expected: Option<&Digest>) -> Result<BlobInfo> {
        if let Some(expected) = expected
            && *expected != self.info.digest
        {
            return Err(Error::DigestMismatch {
                what: format!("blob {expected}"),
                expected: expected.to_string(),
                actual: self.info.digest.to_string(),
            });
        }
        let digest = self.info.digest;
        let key = digest.to_string();
        let dest = self.store.layout().blob_path(&digest.hex());
        if !self.durable {
            // Protect and mark unsynced, then make visible, in one transaction: the rename
            // happens under the write lock, so a settle that read the mark before its syncfs
            // knows the file was in place (see `blob_sync`). An existing file is kept (a
            // durable one is then marked needlessly: a re-hash after a crash, nothing worse).
            let file = self.file;
            lease.write_refs(|tx| {
                crate::lease::protect_tx(tx, lease, RefKind::Blob, &key)?;
                crate::blob_sync::mark_tx(tx, &key)?;
                match file.persist_noclobber(&dest) {
                    Ok(_) => Ok(()),
                    Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                    Err(e) => Err(Error::io("renaming into", &dest, e.error)),
                }
            })?;
            return Ok(self.info);
        }
        // Protect first, then make visible: a prune holding the write lock either sees the
        // lease row or does not see the file (see `gc`).
        let marked = lease.write_refs(|tx| {
            crate::lease::protect_tx(tx, lease, RefKind::Blob, &key)?;
            Ok(crate::blob_sync::is_marked_tx(tx, &key)?)
        })?;
        if !marked && dest.exists() {
            // Same name, same bytes, durable: keep the existing file, drop ours.
            return Ok(self.info);
        }
        // Absent, or there but not yet synced: ours is, so it replaces that one.
        self.file
            .persist(&dest)
            .map_err(|e| Error::io("renaming into", &dest, e.error))?;
        sync_parent(&dest)?;
        if marked {
            self.store
                .write(|tx| Ok(crate::blob_sync::unmark_tx(tx, &key)?))?;
        }
        Ok(self.info)
    }
}

impl Store {
    /// Starts writing a blob.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        self.new_blob_writer(Some(kiln_image::Hasher::new()))
    }

    /// Starts writing a blob whose digest the caller computes while writing it (see
    /// [`BlobWriter`]); finish it with [`BlobWriter::finish_prehashed`].
    pub fn blob_writer_prehashed(&self) -> Result<BlobWriter> {
        self.new_blob_writer(None)
    }

    fn new_blob_writer(&self, hasher: Option<kiln_image::Hasher>) -> Result<BlobWriter> {
        let tmp = self.layout().tmp_dir();
        let file = tempfile::Builder::new()
            .prefix(&Layout::tmp_prefix("blob"))
            .tempfile_in(&tmp)
            .ctx("creating a temp file in", &tmp)?;
        Ok(BlobWriter {
            file: BufWriter::with_capacity(1 << 20, file),
            hasher,
            len: 0,
            kicked: 0,
            durable: true,
            store: self.clone(),
        })
    }

    /// Writes `bytes` as a blob, checking them against `expected` if given.
    pub fn put_blob(
        &self,
        lease: &Lease,
        bytes: &[u8],
        expected: Option<&Digest>,
    ) -> Result<BlobInfo> {
        let mut w = self.blob_writer()?;
        w.write_all(bytes)
            .map_err(|e| Error::io("writing", PathBuf::from("blob temp file"), e))?;
        w.finish()?.commit(lease, expected)
    }

    /// [`Store::put_blob`] without the fsync (see [`BlobWriter::deferred_sync`]): for the
    /// config and manifest blobs of a build's export.
    pub fn put_blob_deferred(&self, lease: &Lease, bytes: &[u8]) -> Result<BlobInfo> {
        let mut w = self.blob_writer()?.deferred_sync();
        w.write_all(bytes)
            .map_err(|e| Error::io("writing", PathBuf::from("blob temp file"), e))?;
        w.finish()?.commit(lease, None)
    }

    /// Streams `reader` into a blob, checking it against `expected` if given.
    pub fn copy_blob(
        &self,
        lease: &Lease,
        reader: &mut dyn Read,
        expected: Option<&Digest>,
    ) -> Result<BlobInfo> {
        let mut w = self.blob_writer()?;
        std::io::copy(reader, &mut w)
            .map_err(|e| Error::io("copying into", PathBuf::from("blob temp file"), e))?;
        w.finish()?.commit(lease, expected)
    }

    /// Where a blob lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.layout().blob_path(&digest.hex())
    }

    /// Whether the blob is in the store.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::BlobNotFound {
                digest: digest.to_string(),
            },
            _ => Error::io("opening", &path, e),
        })
    }

    /// A blob's size in bytes.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest);
        match std::fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::BlobNotFound {
                digest: digest.to_string(),
            }),
            Err(e) => Err(Error::io("inspecting", &path, e)),
        }
    }

    /// Reads a (small) blob fully and checks its digest, for manifests and configs that
    /// are parsed: a bit flip on disk must not become a wrong image.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut f = self.open_blob(digest)?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .ctx("reading", self.blob_path(digest))?;
        let actual = Digest::of(&buf);
        if actual != *digest {
            return Err(Error::DigestMismatch {
                what: self.blob_path(digest).display().to_string(),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(buf)
    }
}
