//! The bytes a [`Proxy`](super::Proxy) carried, per direction, as the container's network
//! counters would see them: *received* (client → container) and *sent* (container →
//! client). docker's published ports cross the container's `eth0`, so `docker stats` counts
//! their traffic in NET I/O; kiln's proxy reaches the container over its loopback, which
//! `stats` leaves out, so the proxy counts what it delivers and `stats` adds it.
//!
//! The counters can live in a 16-byte file (two native-endian `u64`, received then sent)
//! mapped shared: the proxy's threads add to it with atomic operations and another process
//! (`kiln stats`) maps it and reads it with atomic loads, current to the byte, with no thread
//! writing it out. [`Traffic::create_file`] makes a new file and renames it over the old one,
//! so a reader never maps a file being truncated.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

const LEN: usize = 16;

enum Cells {
    Heap(Box<[AtomicU64; 2]>),
    /// A shared mapping of `LEN` bytes, page-aligned (so both cells are 8-byte aligned).
    Mapped(*mut libc::c_void),
}

/// Received / sent byte counters of one proxy (see the module's comment).
pub struct Traffic {
    cells: Cells,
}

// SAFETY: the mapping is only accessed through atomics and unmapped in Drop.
unsafe impl Send for Traffic {}
// SAFETY: as above; every access is an atomic operation.
unsafe impl Sync for Traffic {}

impl Traffic {
    /// Counters in this process's memory only.
    pub fn in_memory() -> Traffic {
        Traffic {
            cells: Cells::Heap(Box::new([AtomicU64::new(0), AtomicU64::new(0)])),
        }
    }

    /// Counters at zero in a new file at `path` (made beside it, then renamed over it).
    pub fn create_file(path: &Path) -> io::Result<Traffic> {
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let made = (|| {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.set_len(LEN as u64)?;
            let t = map(&f, true)?;
            std::fs::rename(&tmp, path)?;
            Ok(t)
        })();
        if made.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        made
    }

    /// (received, sent) as recorded in the file at `path` by a proxy, maybe in another
    /// process; `None` when there is no such file (no port published).
    pub fn read_file(path: &Path) -> Option<(u64, u64)> {
        use std::os::unix::fs::OpenOptionsExt;
        // Not through a link planted in its place: only the proxy's own regular file counts.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .ok()?;
        let meta = f.metadata().ok()?;
        if !meta.is_file() || meta.len() != LEN as u64 {
            return None;
        }
        map(&f, false).ok().map(|t| t.get())
    }

    fn cell(&self, i: usize) -> &AtomicU64 {
        match &self.cells {
            Cells::Heap(b) => &b[i],
            // SAFETY: the mapping is LEN bytes, page-aligned, alive as long as self; cell i
            // is the aligned u64 at offset 8 * i, and every access to it is atomic.
            Cells::Mapped(p) => unsafe { AtomicU64::from_ptr(p.cast::<u64>().add(i)) },
        }
    }

    /// The cell of bytes delivered to the container.
    pub(crate) fn received(&self) -> &AtomicU64 {
        self.cell(0)
    }

    /// The cell of bytes delivered from the container to clients.
    pub(crate) fn sent(&self) -> &AtomicU64 {
        self.cell(1)
    }

    /// (received, sent) by the container through the proxy.
    pub fn get(&self) -> (u64, u64) {
        (
            self.received().load(Ordering::Relaxed),
            self.sent().load(Ordering::Relaxed),
        )
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        if let Cells::Mapped(p) = self.cells {
            // SAFETY: unmapping the LEN bytes mapped in `map`, used by nobody after this.
            unsafe { libc::munmap(p, LEN) };
        }
    }
}

fn map(f: &File, write: bool) -> io::Result<Traffic> {
    let prot = if write {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    };
    // SAFETY: a shared mapping of LEN bytes of a file at least that long; checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            LEN,
            prot,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(Traffic {
        cells: Cells::Mapped(p),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_counter_is_read_by_another_mapping() {
        let dir = std::env::temp_dir().join(format!("kiln-net-traffic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("traffic");
        assert_eq!(Traffic::read_file(&path), None);
        let t = Traffic::create_file(&path).unwrap();
        t.received().fetch_add(5, Ordering::Relaxed);
        t.sent().fetch_add(1 << 40, Ordering::Relaxed);
        assert_eq!(Traffic::read_file(&path), Some((5, 1 << 40)));
        // A new proxy's file starts at zero; the old mapping keeps its own (renamed-over) file.
        let t2 = Traffic::create_file(&path).unwrap();
        assert_eq!(Traffic::read_file(&path), Some((0, 0)));
        t.sent().fetch_add(1, Ordering::Relaxed);
        assert_eq!(t2.get(), (0, 0));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // A link in its place is not followed.
        let target = dir.join("target");
        std::fs::write(&target, [0xffu8; 16]).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert_eq!(Traffic::read_file(&path), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
