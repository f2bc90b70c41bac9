//! Room to prune in: a few MiB kept allocated under the root so that removing content works
//! when the file system is 100% full — which is when users run `prune`.
//!
//! Deleting needs space too: SQLite appends the deletions to its write-ahead log before it
//! frees anything, and moving content to `trash/` may grow that directory. A collection that
//! fails because the disk is full gives the reserve back to the file system, tries once
//! more, and makes the reserve again afterwards if the space is there.

use std::path::Path;

use crate::Store;
use crate::error::{Error, Result};
use crate::layout::Layout;

/// Enough for the database log of removing tens of thousands of records.
const RESERVE_BYTES: i64 = 16 << 20;
/// Below this a reserve is not worth making.
const MIN_RESERVE_BYTES: u64 = 1 << 20;

impl Error {
    /// Did this fail because the file system (or the database on it) is full?
    pub fn is_disk_full(&self) -> bool {
        let sql_full = |e: &rusqlite::Error| matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull);
        match self {
            Error::Io { source, .. } => {
                source.raw_os_error() == Some(libc::ENOSPC)
                    || source.kind() == std::io::ErrorKind::StorageFull
            }
            Error::Db { source, .. } | Error::Sql(source) => sql_full(source),
            _ => false,
        }
    }
}

impl Error {
    /// Does this error mean the store itself is damaged (content the metadata names is
    /// missing or does not match its digest)? `kiln system check` says what and repairs it.
    pub fn suggests_damage(&self) -> bool {
        matches!(
            self,
            Error::DigestMismatch { .. }
                | Error::BlobNotFound { .. }
                | Error::SnapshotNotFound { .. }
        )
    }
}

impl Store {
    /// Makes the reserve file if it is missing. Best effort: on a full disk there is no room
    /// for it, and that is not an error.
    pub(crate) fn ensure_reserve(&self) {
        let path = self.layout().reserve_path();
        if path.exists() {
            return;
        }
        let tmp = self.layout().tmp_dir();
        if make_reserve(&tmp, &path, RESERVE_BYTES).is_err() {
            // A removal that freed less than the reserve it used: keep what room there is
            // (all but 64 KiB), so the next full-disk prune still has some.
            let free = free_bytes(self.root()).saturating_sub(64 << 10);
            if free >= MIN_RESERVE_BYTES {
                let _ = make_reserve(&tmp, &path, free.min(RESERVE_BYTES as u64) as i64);
            }
        }
    }

    /// Runs a removal; while it fails because the disk is full, gives back part of the
    /// reserve (1, then 2, 4, 8 MiB, then the rest) and runs it again. Most removals need a
    /// few KiB, so one full-disk prune does not use the whole reserve up. The reserve is made
    /// again afterwards when there is room.
    pub(crate) fn with_reserve<T>(&self, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        let path = self.layout().reserve_path();
        let mut step: u64 = 1 << 20;
        let r = loop {
            match f() {
                Err(e) if e.is_disk_full() => {
                    let Ok(len) = std::fs::metadata(&path).map(|m| m.len()) else {
                        break Err(e);
                    };
                    let released = if len > step {
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .and_then(|file| file.set_len(len - step))
                            .is_ok()
                    } else {
                        std::fs::remove_file(&path).is_ok()
                    };
                    if !released {
                        break Err(e);
                    }
                    step *= 2;
                }
                other => break other,
            }
        };
        self.ensure_reserve();
        r
    }
}

/// Bytes an unprivileged writer could still allocate on the file system of `path`.
fn free_bytes(path: &Path) -> u64 {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs fills the struct it is given from a NUL-terminated path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return 0;
        }
        st.f_bavail as u64 * st.f_frsize as u64
    }
}

fn make_reserve(tmp: &Path, dest: &Path, bytes: i64) -> std::io::Result<()> {
    let f = tempfile::Builder::new()
        .prefix(&Layout::tmp_prefix("reserve"))
        .tempfile_in(tmp)?;
    // Allocated blocks, not a sparse file: set_len would reserve nothing.
    // SAFETY: posix_fallocate on an open descriptor has no memory effects.
    let rc =
        unsafe { libc::posix_fallocate(std::os::fd::AsRawFd::as_raw_fd(f.as_file()), 0, bytes) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    f.persist(dest).map_err(|e| e.error)?;
    Ok(())
}
