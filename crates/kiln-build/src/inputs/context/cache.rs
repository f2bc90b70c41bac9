//! A persistent cache of file content digests, keyed by what the kernel says about a file.
//!
//! An entry is valid while (dev, inode, size, mtime, ctime) are unchanged: any write changes
//! ctime, and ctime cannot be set from user space, so a rebuild with nothing changed reads no
//! file contents. Files changed within the last second are not remembered, because timestamps
//! are coarse and a second write within the same tick would look unchanged ("racy git").
//!
//! File format (little-endian): `KILNCSC1`, u64 count, then per entry dev, ino, size (u64),
//! mtime, ctime (i64 ns), digest (32 bytes), age (u32); then the sha256 of all of the above.
//! A damaged or foreign file loads as an empty cache: the cache is only a speed-up.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::ContextError;
use super::tree::Meta;

const MAGIC: &[u8; 8] = b"KILNCSC1";
const RECORD: usize = 8 * 5 + 32 + 4;
/// Entries unused for this many saves are dropped.
const MAX_AGE: u32 = 8;
/// Files whose ctime is this close to the hashing time are not remembered.
const RACY_NS: i128 = 1_000_000_000;

/// Keys are (dev, inode) pairs the kernel hands out, not attacker-chosen strings: a multiply
/// mix is enough, and SipHash was a visible part of a 50,000-file no-op build.
#[derive(Default, Clone, Copy)]
struct InodeHasher(u64);

impl std::hash::Hasher for InodeHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type InodeMap = HashMap<(u64, u64), Rec, std::hash::BuildHasherDefault<InodeHasher>>;

#[derive(Debug, Clone, Copy)]
struct Rec {
    size: u64,
    mtime: i64,
    ctime: i64,
    digest: [u8; 32],
    age: u32,
    used: bool,
}

/// Counters for one cache's life in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Files whose digest came from the cache.
    pub hits: u64,
    /// Files whose contents were read.
    pub misses: u64,
    /// Bytes read to hash files.
    pub bytes_hashed: u64,
}

/// File digests remembered between builds. Shared by threads (`&self` everywhere).
#[derive(Debug, Default)]
pub struct ChecksumCache {
    path: Option<PathBuf>,
    map: Mutex<InodeMap>,
    hits: AtomicU64,
    misses: AtomicU64,
    bytes: AtomicU64,
    /// Set by a `put`: only then is there anything new to save.
    dirty: std::sync::atomic::AtomicBool,
    /// A load still decoding on another thread ([`ChecksumCache::load_in_background`]).
    pending: Mutex<Option<std::thread::JoinHandle<InodeMap>>>,
    /// Set once `pending` has been merged into `map`.
    ready: std::sync::OnceLock<()>,
}

fn ns(t: super::tree::Time) -> i64 {
    i64::try_from(t.as_nanos()).unwrap_or(i64::MAX)
}

impl ChecksumCache {
    /// A cache that is never saved.
    pub fn in_memory() -> ChecksumCache {
        ChecksumCache::default()
    }

    /// Load the cache at `path`; a missing or unreadable file gives an empty cache that
    /// [`ChecksumCache::save`] will write there.
    pub fn load(path: &Path) -> ChecksumCache {
        let map = std::fs::read(path)
            .ok()
            .and_then(|b| decode(&b))
            .unwrap_or_default();
        ChecksumCache {
            path: Some(path.to_path_buf()),
            map: Mutex::new(map),
            ..ChecksumCache::default()
        }
    }

    /// [`ChecksumCache::load`] on another thread: a 50,000-file cache takes ~10 ms to read and
    /// decode, which overlaps the context walk that comes first. The first lookup waits.
    pub fn load_in_background(path: &Path) -> ChecksumCache {
        let p = path.to_path_buf();
        let handle = std::thread::spawn(move || {
            std::fs::read(&p)
                .ok()
                .and_then(|b| decode(&b))
                .unwrap_or_default()
        });
        ChecksumCache {
            path: Some(path.to_path_buf()),
            pending: Mutex::new(Some(handle)),
            ..ChecksumCache::default()
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes_hashed: self.bytes.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InodeMap> {
        self.ready.get_or_init(|| {
            let handle = self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(h) = handle {
                // A loader that panicked leaves an empty cache: it is only a speed-up.
                let loaded = h.join().unwrap_or_default();
                let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
                if map.is_empty() {
                    *map = loaded;
                } else {
                    for (k, v) in loaded {
                        map.entry(k).or_insert(v);
                    }
                }
            }
        });
        // A panic elsewhere while holding the lock leaves a usable map.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The remembered digest of a file with this metadata, if still valid.
    pub fn get(&self, m: &Meta) -> Option<[u8; 32]> {
        let mut map = self.lock();
        let r = map.get_mut(&(m.dev, m.ino))?;
        if r.size != m.size || r.mtime != ns(m.mtime) || r.ctime != ns(m.ctime) {
            return None;
        }
        r.used = true;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(r.digest)
    }

    /// Remember a digest computed now (unless the file changed too recently to trust).
    pub fn put(&self, m: &Meta, digest: [u8; 32], now: super::tree::Time, bytes: u64) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let newest = m.ctime.as_nanos().max(m.mtime.as_nanos());
        if newest > now.as_nanos() - RACY_NS {
            return;
        }
        self.dirty.store(true, Ordering::Relaxed);
        self.lock().insert(
            (m.dev, m.ino),
            Rec {
                size: m.size,
                mtime: ns(m.mtime),
                ctime: ns(m.ctime),
                digest,
                age: 0,
                used: true,
            },
        );
    }

    /// Write the cache to its path atomically (temporary file, rename) when a digest was added
    /// since it was loaded: a build that hashed nothing leaves the file alone (its entries then
    /// age only on builds that change something). Entries unused for several saves are dropped.
    /// No fsync: a torn file fails its checksum and loads as empty, which only costs hashing.
    /// A cache from [`ChecksumCache::in_memory`] saves nothing.
    pub fn save(&self) -> Result<(), ContextError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let err = |message: String| ContextError::Cache {
            path: path.clone(),
            message,
        };
        let bytes = {
            let mut map = self.lock();
            map.retain(|_, r| {
                if r.used {
                    r.age = 0;
                    r.used = false;
                } else {
                    r.age += 1;
                }
                r.age <= MAX_AGE
            });
            encode(&map)
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| err(format!("create {}: {e}", dir.display())))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| err(e.to_string()))?;
        tmp.write_all(&bytes).map_err(|e| err(e.to_string()))?;
        tmp.persist(path).map_err(|e| err(e.error.to_string()))?;
        Ok(())
    }
}

fn encode(map: &InodeMap) -> Vec<u8> {
    let mut keys: Vec<_> = map.keys().copied().collect();
    keys.sort_unstable();
    let mut out = Vec::with_capacity(16 + keys.len() * RECORD + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
    for k in keys {
        let r = &map[&k];
        out.extend_from_slice(&k.0.to_le_bytes());
        out.extend_from_slice(&k.1.to_le_bytes());
        out.extend_from_slice(&r.size.to_le_bytes());
        out.extend_from_slice(&r.mtime.to_le_bytes());
        out.extend_from_slice(&r.ctime.to_le_bytes());
        out.extend_from_slice(&r.digest);
        out.extend_from_slice(&r.age.to_le_bytes());
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

fn decode(b: &[u8]) -> Option<InodeMap> {
    if b.len() < 16 + 32 || &b[..8] != MAGIC {
        return None;
    }
    let (body, sum) = b.split_at(b.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let count = usize::try_from(u64::from_le_bytes(body[8..16].try_into().ok()?)).ok()?;
    if body.len() != 16 + count.checked_mul(RECORD)? {
        return None;
    }
    let u = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
    let i = |s: &[u8]| i64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
    let mut map = InodeMap::with_capacity_and_hasher(count, Default::default());
    for rec in body[16..].chunks_exact(RECORD) {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&rec[40..72]);
        map.insert(
            (u(&rec[0..8]), u(&rec[8..16])),
            Rec {
                size: u(&rec[16..24]),
                mtime: i(&rec[24..32]),
                ctime: i(&rec[32..40]),
                digest,
                age: u32::from_le_bytes(rec[72..76].try_into().unwrap_or([0; 4])),
                used: false,
            },
        );
    }
    Some(map)
}
