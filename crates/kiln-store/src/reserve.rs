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

impl Error {
    /// Did this fail because the file system (or the database on it) is full?
    pub fn is_disk_full(&self) -> bool {
        let sql_full = |e: &rusqlite::Error| matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull);
        match self {
            Error::Io { source, .. } => source.raw_os_error() == Some(libc::ENOSPC),
            Error::Db { source, .. } | Error::Sql(source) => sql_full(source),
            _ => false,
        }
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
        let _ = make_reserve(&self.layout().tmp_dir(), &path);
    }

    /// Runs a removal; if it fails because the disk is full, frees the reserve and runs it
    /// again. The reserve is made again afterwards when there is room.
    pub(crate) fn with_reserve<T>(&self, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        let r = match f() {
            Err(e)
                if e.is_disk_full()
                    && std::fs::remove_file(self.layout().reserve_path()).is_ok() =>
            {
                f()
            }
            other => other,
        };
        self.ensure_reserve();
        r
    }
}

fn make_reserve(tmp: &Path, dest: &Path) -> std::io::Result<()> {
    let f = tempfile::Builder::new()
        .prefix(&Layout::tmp_prefix("reserve"))
        .tempfile_in(tmp)?;
    // Allocated blocks, not a sparse file: set_len would reserve nothing.
    // SAFETY: posix_fallocate on an open descriptor has no memory effects.
    let rc = unsafe {
        libc::posix_fallocate(
            std::os::fd::AsRawFd::as_raw_fd(f.as_file()),
            0,
            RESERVE_BYTES,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    f.persist(dest).map_err(|e| e.error)?;
    Ok(())
}
