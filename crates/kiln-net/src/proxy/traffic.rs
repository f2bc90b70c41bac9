//! The bytes a [`Proxy`](super::Proxy) carried, per direction, as the container's network
//! counters would see them: *received* (client → container) and *sent* (container →
//! client). docker's published ports cross the container's `eth0`, so `docker stats` counts
//! their traffic in NET I/O; kiln's proxy reaches the container over its loopback, which
//! `stats` leaves out, so the proxy counts what it delivers and `stats` adds it.
//!
//! The counters can live in a 16-byte file (two native-endian `u64`, received then sent): the
//! proxy's threads add to atomics in memory, and a small thread writes them to the file with
//! `pwrite` every [`FLUSH`] and when the proxy stops, so another process (`kiln stats`) reads
//! them at most that old. (A shared mapping of the file was current to the byte, but a
//! truncation of the file by anyone with write access then killed the proxy's process with
//! SIGBUS; `pwrite` just extends the file again.) [`Traffic::create_file`] makes a new file
//! and renames it over the old one, so a reader never reads a file being truncated.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

const LEN: usize = 16;
/// How often the counters are written to their file.
const FLUSH: Duration = Duration::from_millis(200);

/// Received / sent byte counters of one proxy (see the module's comment).
pub struct Traffic {
    cells: Arc<[AtomicU64; 2]>,
    /// Held for its drop (the last write); `None` for in-memory counters.
    _flusher: Option<Flusher>,
}

/// The thread writing the counters to their file; stopped (after a last write) on drop.
struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn encode(cells: &[AtomicU64; 2]) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[..8].copy_from_slice(&cells[0].load(Ordering::Relaxed).to_ne_bytes());
    b[8..].copy_from_slice(&cells[1].load(Ordering::Relaxed).to_ne_bytes());
    b
}

impl Traffic {
    /// Counters in this process's memory only.
    pub fn in_memory() -> Traffic {
        Traffic {
            cells: Arc::new([AtomicU64::new(0), AtomicU64::new(0)]),
            _flusher: None,
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
            std::fs::rename(&tmp, path)?;
            Ok(f)
        })();
        let f = match made {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let cells: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (cells2, stop2) = (cells.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("kiln-net-traffic".into())
            .stack_size(64 * 1024)
            .spawn(move || flush_loop(&f, &cells2, &stop2))?;
        Ok(Traffic {
            cells,
            _flusher: Some(Flusher {
                stop,
                thread: Some(thread),
            }),
        })
    }

    /// (received, sent) as recorded in the file at `path` by a proxy, maybe in another
    /// process; `None` when there is no such file (no port published).
    pub fn read_file(path: &Path) -> Option<(u64, u64)> {
        use std::os::unix::fs::OpenOptionsExt;
        // Not through a link planted in its place: only the proxy's own regular file counts.
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .ok()?;
        let meta = f.metadata().ok()?;
        if !meta.is_file() || meta.len() != LEN as u64 {
            return None;
        }
        let mut b = [0u8; LEN];
        f.read_exact(&mut b).ok()?;
        let word = |r: &[u8]| u64::from_ne_bytes(r.try_into().unwrap_or([0; 8]));
        Some((word(&b[..8]), word(&b[8..])))
    }

    /// The cell of bytes delivered to the container.
    pub(crate) fn received(&self) -> &AtomicU64 {
        &self.cells[0]
    }

    /// The cell of bytes delivered from the container to clients.
    pub(crate) fn sent(&self) -> &AtomicU64 {
        &self.cells[1]
    }

    /// (received, sent) by the container through the proxy.
    pub fn get(&self) -> (u64, u64) {
        (
            self.received().load(Ordering::Relaxed),
            self.sent().load(Ordering::Relaxed),
        )
    }
}

/// Writes the counters to `f` whenever they changed, every [`FLUSH`], and once more when
/// stopped.
fn flush_loop(f: &File, cells: &[AtomicU64; 2], stop: &(Mutex<bool>, Condvar)) {
    let (lock, cv) = stop;
    // What the new file holds.
    let mut last = [0u8; LEN];
    let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let now = encode(cells);
        if now != last {
            let _ = f.write_all_at(&now, 0);
            last = now;
        }
        if *stopped {
            return;
        }
        stopped = cv
            .wait_timeout(stopped, FLUSH)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_counter_is_read_from_its_file_and_survives_truncation() {
        let dir = std::env::temp_dir().join(format!("kiln-net-traffic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("traffic");
        assert_eq!(Traffic::read_file(&path), None);
        let t = Traffic::create_file(&path).unwrap();
        t.received().fetch_add(5, Ordering::Relaxed);
        t.sent().fetch_add(1 << 40, Ordering::Relaxed);
        // Written within FLUSH.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while Traffic::read_file(&path) != Some((5, 1 << 40)) {
            assert!(std::time::Instant::now() < deadline, "not written");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Truncated by someone else: the next write extends it again (no SIGBUS, as a
        // mapping had).
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        t.received().fetch_add(1, Ordering::Relaxed);
        while Traffic::read_file(&path) != Some((6, 1 << 40)) {
            assert!(std::time::Instant::now() < deadline, "not written again");
            std::thread::sleep(Duration::from_millis(20));
        }
        // A new proxy's file starts at zero; the old counters keep their own (renamed-over) file.
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
