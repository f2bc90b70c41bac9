//! The build cache as `docker system df -v`, `docker builder prune` and `buildx du` see it:
//! cache records, the cache mounts of `RUN --mount=type=cache` (directories under
//! `cache-mounts-v1/`, seeds in progress included), and content nothing references any more
//! (unpacked snapshots and blobs a collection would remove).
//!
//! Sizes count what removing the entry frees on disk: content an image also uses is not the
//! cache's, so the sum of the sizes is what `builder prune -a` then frees. A record that
//! references content an image uses is *shared*; without `--all` a prune keeps shared
//! records (docker's "dangling build cache" is the rest).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::Connection;

use crate::Store;
use crate::db::now;
use crate::error::{IoContext, Result};
use crate::refs::blob_is_live;

/// What kind of build cache an entry is (docker's CACHE TYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheKind {
    /// A build step's result.
    Regular,
    /// A `RUN --mount=type=cache` directory.
    CacheMount,
    /// The builder's own bookkeeping (explain records, download metadata): removed only
    /// with `--all`, as BuildKit keeps its internal records.
    Internal,
}

impl CacheKind {
    /// docker's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::Regular => "regular",
            CacheKind::CacheMount => "exec.cachemount",
            CacheKind::Internal => "internal",
        }
    }

    /// Parses docker's name (as `--filter type=` takes it).
    pub fn parse(s: &str) -> Option<CacheKind> {
        [
            CacheKind::Regular,
            CacheKind::CacheMount,
            CacheKind::Internal,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One entry of the build cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The record key, the cache mount's directory name, or the orphan's snapshot key or
    /// blob digest.
    pub id: String,
    /// Its kind.
    pub kind: CacheKind,
    /// Bytes removing it frees (content images also use is not counted).
    pub size: u64,
    /// When it was made, unix seconds.
    pub created: i64,
    /// When a build last used it, unix seconds; None if never since it was made.
    pub last_used: Option<i64>,
    /// How many builds used it (uses within one minute count once).
    pub uses: u64,
    /// A running build holds it.
    pub in_use: bool,
    /// It references content an image uses.
    pub shared: bool,
}

/// Which entries [`Store::prune_build_cache`] removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildCachePrune {
    /// Shared entries too (`--all`); otherwise only dangling ones.
    pub all: bool,
    /// Only entries unused for at least this many seconds (`until=`).
    pub unused_for: Option<i64>,
    /// Only entries of these kinds (`type=`; empty: any).
    pub kinds: Vec<CacheKind>,
    /// Only entries whose ID, or the digest part of it, starts with one of these (`id=`;
    /// empty: any).
    pub ids: Vec<String>,
    /// Remove the least recently used of the selected entries only until the whole cache
    /// is at most this big (`--keep-storage`).
    pub keep_bytes: Option<u64>,
}

impl BuildCachePrune {
    /// Whether `e` passes the filters (`unused_for`, `kinds`, `ids`) at time `t`.
    pub fn matches(&self, e: &CacheEntry, t: i64) -> bool {
        if let Some(age) = self.unused_for
            && t - e.last_used.unwrap_or(e.created) < age
        {
            return false;
        }
        (self.kinds.is_empty() || self.kinds.contains(&e.kind))
            && (self.ids.is_empty()
                || self.ids.iter().any(|p| {
                    // The full ID, or the digest without its prefixes (as `df -v` shows it).
                    let bare = e.id.rsplit(':').next().unwrap_or(&e.id);
                    e.id.starts_with(p.as_str()) || bare.starts_with(p.as_str())
                }))
    }

    /// Whether a prune removes `e` (before `keep_bytes` is applied): never what a running
    /// build holds, shared entries only with `all`.
    pub fn selects(&self, e: &CacheEntry, t: i64) -> bool {
        !e.in_use
            && (self.all || !(e.shared || e.kind == CacheKind::Internal))
            && self.matches(e, t)
    }
}

/// What [`Store::prune_build_cache`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildCachePruneReport {
    /// IDs of the entries removed.
    pub removed: Vec<String>,
    /// Bytes freed on disk.
    pub reclaimed: u64,
}

const CACHE_MOUNTS: &str = "cache-mounts-v1";

impl Store {
    /// Where `RUN --mount=type=cache` directories live.
    pub fn cache_mounts_dir(&self) -> std::path::PathBuf {
        self.root().join(CACHE_MOUNTS)
    }

    /// Every build-cache entry: records least recently used first, then cache mounts, then
    /// orphaned content.
    pub fn build_cache(&self) -> Result<Vec<CacheEntry>> {
        let mut entries = self.read(|tx| self.cache_entries_tx(tx))?;
        entries.extend(self.cache_mount_entries()?);
        Ok(entries)
    }

    /// Removes the entries `opts` selects, then collects what nothing references. Waits for
    /// running builds.
    pub fn prune_build_cache(&self, opts: &BuildCachePrune) -> Result<BuildCachePruneReport> {
        let _guard = self.collect_guard(true)?;
        self.with_reserve(|| self.prune_build_cache_locked(opts))
    }

    /// [`Store::prune_build_cache`], unless a build is running (then None).
    pub fn prune_build_cache_if_idle(
        &self,
        opts: &BuildCachePrune,
    ) -> Result<Option<BuildCachePruneReport>> {
        match self.collect_guard(false)? {
            Some(_guard) => self.prune_build_cache_locked(opts).map(Some),
            None => Ok(None),
        }
    }

    fn prune_build_cache_locked(&self, opts: &BuildCachePrune) -> Result<BuildCachePruneReport> {
        let t = now();
        let mounts = self.cache_mount_entries()?;
        let (removed, freed) = self.write_sweep(|tx, sweep| {
            let mut entries = self.cache_entries_tx(tx)?;
            entries.extend(mounts.iter().cloned());
            let mut total: u64 = entries.iter().map(|e| e.size).sum();
            let mut chosen: Vec<&CacheEntry> =
                entries.iter().filter(|e| opts.selects(e, t)).collect();
            if let Some(keep) = opts.keep_bytes {
                chosen.sort_by_key(|e| (e.last_used.unwrap_or(e.created), e.id.clone()));
                let mut kept = Vec::new();
                for e in chosen {
                    if total <= keep {
                        break;
                    }
                    total -= e.size;
                    kept.push(e);
                }
                chosen = kept;
            }
            for e in &chosen {
                // Orphaned content has no record: the collection below removes it.
                if e.kind != CacheKind::CacheMount {
                    tx.execute("DELETE FROM cache WHERE key = ?1", [&e.id])?;
                }
            }
            let chosen: Vec<CacheEntry> = chosen.into_iter().cloned().collect();
            self.collect_tx(tx, sweep)?;
            Ok(chosen)
        })?;
        let mut reclaimed = freed;
        for e in removed.iter().filter(|e| e.kind == CacheKind::CacheMount) {
            reclaimed += self.remove_cache_mount(&e.id)?;
        }
        Ok(BuildCachePruneReport {
            removed: removed.into_iter().map(|e| e.id).collect(),
            reclaimed,
        })
    }

    /// Records and orphaned content, sized by what the database and blob files say.
    fn cache_entries_tx(&self, tx: &Connection) -> Result<Vec<CacheEntry>> {
        let snapshots = snapshot_rows(tx)?;
        let leased_snaps = column(tx, "SELECT target FROM lease_refs WHERE kind = 'snapshot'")?;
        let leased_blobs = column(tx, "SELECT target FROM lease_refs WHERE kind = 'blob'")?;
        // What images (and running builds) keep alive without the build cache.
        let mut roots = column(tx, "SELECT 'layer:' || chain_id FROM image_layers")?;
        roots.extend(column(tx, "SELECT key FROM container_snapshots")?);
        roots.extend(leased_snaps.iter().cloned());
        let image_live = closure(&snapshots, roots);
        let mut owned: HashSet<String> = image_live.clone();
        let mut owned_blobs: HashSet<String> = HashSet::new();
        let mut entries = Vec::new();
        let records: Vec<(String, i64, i64, i64)> = {
            let mut stmt = tx.prepare(
                "SELECT key, created, last_used, uses FROM cache ORDER BY last_used, key",
            )?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut refs_stmt =
            tx.prepare("SELECT kind, target FROM cache_refs WHERE cache_key = ?1")?;
        for (key, created, last_used, uses) in records {
            let refs: Vec<(String, String)> = refs_stmt
                .query_map([&key], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            // Step results are keyed by their digest; other keys are bookkeeping.
            let kind = if key.starts_with("sha256:") {
                CacheKind::Regular
            } else {
                CacheKind::Internal
            };
            let mut e = CacheEntry {
                id: key,
                kind,
                size: 0,
                created,
                last_used: (uses > 0).then_some(last_used),
                uses: uses as u64,
                in_use: false,
                shared: false,
            };
            for (kind, target) in refs {
                if kind == "blob" {
                    e.in_use |= leased_blobs.contains(&target);
                    if image_blob(tx, &target)? {
                        e.shared = true;
                    } else if owned_blobs.insert(target.clone()) {
                        e.size += std::fs::symlink_metadata(self.blob_path_str(&target))
                            .map(|m| m.len())
                            .unwrap_or(0);
                    }
                    continue;
                }
                e.in_use |= leased_snaps.contains(&target);
                if image_live.contains(&target) || snapshot_in_image(tx, &target)? {
                    e.shared = true;
                }
                // The snapshot and the ancestors only the cache keeps.
                let mut k = Some(target);
                while let Some(key) = k {
                    let Some((parent, size, _)) = snapshots.get(&key) else {
                        break;
                    };
                    if !owned.insert(key.clone()) {
                        break;
                    }
                    e.size += size;
                    k = parent.clone();
                }
            }
            entries.push(e);
        }
        // Snapshots nothing references: the next collection removes them.
        for (key, (_, size, created)) in &snapshots {
            if !owned.contains(key) {
                entries.push(orphan(key.clone(), *size, *created));
            }
        }
        let dir = self.layout().blobs_dir();
        for e in std::fs::read_dir(&dir).ctx("reading", &dir)? {
            let e = e.ctx("reading", &dir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(d) = crate::Digest::from_hex(&name) else {
                continue;
            };
            let key = d.to_string();
            if !blob_is_live(tx, &key)? {
                let m = e.metadata().ctx("inspecting", e.path())?;
                entries.push(orphan(key, m.len(), mtime(&m)));
            }
        }
        Ok(entries)
    }

    fn blob_path_str(&self, digest: &str) -> std::path::PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.layout().blob_path(hex)
    }

    pub(crate) fn cache_mount_entries(&self) -> Result<Vec<CacheEntry>> {
        let dir = self.cache_mounts_dir();
        let mut out = Vec::new();
        let read = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).ctx("reading", &dir),
        };
        for e in read {
            let e = e.ctx("reading", &dir)?;
            let m = e.metadata().ctx("inspecting", e.path())?;
            let size = crate::content_size::tree_size(&e.path())?;
            let created = m
                .created()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or_else(|| mtime(&m), |d| d.as_secs() as i64);
            let used = mtime(&m);
            out.push(CacheEntry {
                id: e.file_name().to_string_lossy().into_owned(),
                kind: CacheKind::CacheMount,
                size,
                created,
                // The directory's mtime: a build that changed its top level. Cache mounts
                // keep no use count.
                last_used: (used > created).then_some(used),
                uses: 0,
                in_use: false,
                shared: false,
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Deletes a cache mount directory; returns its size. Renamed out of the way first, so
    /// a crash half-way leaves a `.del-` entry that the next prune lists and removes.
    pub(crate) fn remove_cache_mount(&self, name: &str) -> Result<u64> {
        let dir = self.cache_mounts_dir();
        let path = dir.join(name);
        let size = crate::content_size::tree_size(&path)?;
        let doomed = if name.starts_with(".del-") {
            path
        } else {
            let to = dir.join(format!(".del-{name}"));
            std::fs::rename(&path, &to).ctx("renaming", &path)?;
            to
        };
        remove_tree(&doomed)?;
        Ok(size)
    }
}

fn remove_tree(p: &Path) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).ctx("removing", p),
        Ok(_) => std::fs::remove_file(p).ctx("removing", p),
        Err(_) => Ok(()),
    }
}

/// Content nothing references: listed as dangling build cache, since any prune collects it.
fn orphan(id: String, size: u64, created: i64) -> CacheEntry {
    CacheEntry {
        id,
        kind: CacheKind::Regular,
        size,
        created,
        last_used: None,
        uses: 0,
        in_use: false,
        shared: false,
    }
}

fn mtime(m: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    m.mtime()
}

type SnapshotRows = HashMap<String, (Option<String>, u64, i64)>;

/// key → (parent, size, created).
fn snapshot_rows(tx: &Connection) -> Result<SnapshotRows> {
    let mut stmt = tx.prepare("SELECT key, parent, size, created FROM snapshots")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            (
                r.get::<_, Option<String>>(1)?,
                r.get::<_, i64>(2)? as u64,
                r.get::<_, i64>(3)?,
            ),
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn column(tx: &Connection, sql: &str) -> Result<HashSet<String>> {
    let mut stmt = tx.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The snapshots `roots` keep alive: themselves and their ancestors.
fn closure(snapshots: &SnapshotRows, roots: HashSet<String>) -> HashSet<String> {
    let mut live = HashSet::new();
    for root in roots {
        let mut k = Some(root);
        while let Some(key) = k {
            if !snapshots.contains_key(&key) || !live.insert(key.clone()) {
                break;
            }
            k = snapshots[&key].0.clone();
        }
    }
    live
}

/// Did snapshot `key` make a layer an image has (its unpacked form, or the directory a
/// build step exported)?
fn snapshot_in_image(tx: &Connection, key: &str) -> rusqlite::Result<bool> {
    use rusqlite::OptionalExtension;
    tx.query_row(
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM image_layers WHERE 'layer:' || chain_id = ?1)
            OR EXISTS (SELECT 1 FROM snapshot_layers sl
                JOIN layers l ON l.diff_id = sl.diff_id
                JOIN image_layers il ON il.blob_digest = l.blob_digest
                WHERE sl.snapshot = ?1)",
        [key],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
}

/// Does an image (or a running build) keep blob `digest`?
fn image_blob(tx: &Connection, digest: &str) -> rusqlite::Result<bool> {
    use rusqlite::OptionalExtension;
    tx.query_row(
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM images WHERE id = ?1 OR manifest_digest = ?1)
            OR EXISTS (SELECT 1 FROM image_layers WHERE blob_digest = ?1)
            OR EXISTS (SELECT 1 FROM lease_refs WHERE kind = 'blob' AND target = ?1)",
        [digest],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
}
