//! `system check`: verifies every blob's digest and every reference the metadata makes,
//! and with `repair` removes what is broken (a corrupt blob, the images that need it, a tag
//! or snapshot pointing nowhere, a cache record whose content is gone).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use rusqlite::{Connection, OptionalExtension};

use crate::Digest;
use crate::Store;
use crate::error::{IoContext, Result};
use crate::image::{image_layers, load_images};
use crate::layout::hash_file;
use crate::layout::remove_any;
use crate::trash::Trash;

/// One inconsistency found by [`Store::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// SQLite's own integrity or foreign-key check failed.
    Database(String),
    /// A blob's content does not hash to its name.
    CorruptBlob {
        /// The name it is stored under.
        digest: Digest,
        /// What its content hashes to.
        actual: Digest,
    },
    /// A file under `blobs/sha256/` whose name is not a digest.
    StrayFile(String),
    /// An image whose content is missing, corrupt or inconsistent.
    BrokenImage {
        /// The image ID.
        image: Digest,
        /// What is wrong.
        reason: String,
    },
    /// An image index whose blob is missing or corrupt, or disagrees with its recorded
    /// images, or that lists a broken image.
    BrokenIndex {
        /// The index digest.
        index: Digest,
        /// What is wrong.
        reason: String,
    },
    /// A snapshot row whose directory is missing.
    MissingSnapshotDir {
        /// The snapshot key.
        key: String,
    },
    /// A directory under `snapshots-v1/` that no row names.
    OrphanSnapshotDir(String),
    /// A directory under `containers/` that no container row names and no process has a
    /// mount in (left by a run that failed before kiln cleaned up after it).
    OrphanContainerDir(String),
    /// A container recorded as running whose supervisor process is gone (killed, or the host
    /// rebooted).
    DeadSupervisor {
        /// The container ID.
        id: String,
        /// The supervisor's pid.
        pid: u32,
    },
    /// A build-cache record referencing missing content.
    BrokenCacheRecord {
        /// The record key.
        key: String,
        /// What it references that is gone.
        missing: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Database(m) => write!(f, "metadata database: {m}"),
            Problem::CorruptBlob { digest, actual } => {
                write!(f, "blob {digest}: content hashes to {actual}")
            }
            Problem::StrayFile(n) => {
                write!(
                    f,
                    "blobs/sha256/{n}: not a blob (not a digest name, or not a regular file)"
                )
            }
            Problem::BrokenImage { image, reason } => write!(f, "image {image}: {reason}"),
            Problem::BrokenIndex { index, reason } => write!(f, "image index {index}: {reason}"),
            Problem::MissingSnapshotDir { key } => {
                write!(f, "snapshot {key}: directory is missing")
            }
            Problem::OrphanSnapshotDir(n) => {
                write!(f, "snapshots-v1/{n}: not recorded in the metadata")
            }
            Problem::BrokenCacheRecord { key, missing } => {
                write!(f, "build cache record {key}: references missing {missing}")
            }
            Problem::OrphanContainerDir(id) => {
                write!(
                    f,
                    "containers/{id}: no container is recorded for this directory"
                )
            }
            Problem::DeadSupervisor { id, pid } => write!(
                f,
                "container {}: recorded as running, but its supervisor (pid {pid}) is gone",
                &id[..id.len().min(12)]
            ),
        }
    }
}

impl Problem {
    /// What `system check --repair` does about it (a verb phrase: "deletes the file").
    pub fn repair_action(&self) -> &'static str {
        match self {
            Problem::Database(_) => {
                "removes the rows it can name; if SQLite's own check fails, restore the store from a backup or remove it"
            }
            Problem::CorruptBlob { .. } => {
                "deletes the blob and every image that needs it (load or build those again)"
            }
            Problem::StrayFile(_) => "deletes the file",
            Problem::BrokenImage { .. } => {
                "removes the image and its tags (load or build it again)"
            }
            Problem::BrokenIndex { .. } => {
                "removes the index and its tags; its intact images stay (load, pull or build it again)"
            }
            Problem::MissingSnapshotDir { .. } => {
                "forgets the snapshot, the snapshots built on it and the build-cache records that use them (the next build makes them again)"
            }
            Problem::OrphanSnapshotDir(_) | Problem::OrphanContainerDir(_) => {
                "deletes the directory"
            }
            Problem::BrokenCacheRecord { .. } => {
                "deletes the record (the next build runs that step again)"
            }
            Problem::DeadSupervisor { .. } => {
                "records the container as exited (137), so it can be started or removed"
            }
        }
    }
}

/// What [`Store::check`] found (and, with repair, fixed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Blobs whose digest was verified.
    pub blobs_checked: u64,
    /// Images checked.
    pub images_checked: u64,
    /// Problems found.
    pub problems: Vec<Problem>,
    /// Whether they were repaired.
    pub repaired: bool,
    /// Blobs nothing references (not a problem: `system prune` collects them).
    pub unreferenced_blobs: u64,
    /// Their total size.
    pub unreferenced_bytes: u64,
}

impl CheckReport {
    /// True when nothing is broken (or everything broken was repaired).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() || self.repaired
    }
}

struct Findings {
    problems: Vec<Problem>,
    bad_images: BTreeSet<Digest>,
    bad_indexes: BTreeSet<Digest>,
    corrupt_blobs: Vec<Digest>,
    stray: Vec<String>,
    missing_snapshots: Vec<String>,
    orphan_dirs: Vec<String>,
    orphan_containers: Vec<String>,
    bad_cache: BTreeSet<String>,
}

/// Blob digests verified so far. The full pass hashes every blob outside any lock; a blob
/// that appeared after it (a build or load that finished meanwhile) is hashed when the
/// locked pass meets it, so a concurrent writer's fresh image is never taken for broken.
struct Verified {
    dir: std::path::PathBuf,
    present: BTreeMap<Digest, u64>,
    corrupt: Vec<(Digest, Digest)>,
    checked: u64,
}

impl Verified {
    /// Is blob `d` in the store and intact? Only call under the write lock.
    fn ok(&mut self, d: &Digest) -> bool {
        let path = self.dir.join(d.hex());
        if self.present.contains_key(d) {
            // Hashed before the lock; a collection may have removed it since.
            return path.is_file();
        }
        if self.corrupt.iter().any(|(c, _)| c == d) {
            return false;
        }
        match hash_file(&path) {
            Ok((actual, size)) => {
                self.checked += 1;
                if actual == *d {
                    self.present.insert(*d, size);
                    true
                } else {
                    self.corrupt.push((*d, actual));
                    false
                }
            }
            Err(_) => false,
        }
    }
}

impl Store {
    /// Verifies the store; with `repair`, removes what is broken. The checks and the repair
    /// run in one write transaction, so they see one state of the store and a build or load
    /// that finishes meanwhile is either wholly seen or not at all.
    pub fn check(&self, repair: bool) -> Result<CheckReport> {
        if repair {
            // A repair deletes, which needs room on a full disk (see `reserve`).
            self.with_reserve(|| self.check_once(true))
        } else {
            self.check_once(false)
        }
    }

    fn check_once(&self, repair: bool) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        // Hash outside any lock: this is the slow part and blobs never change once visible.
        let dir = self.layout().blobs_dir();
        let mut verified = Verified {
            dir: dir.clone(),
            present: BTreeMap::new(),
            corrupt: Vec::new(),
            checked: 0,
        };
        let mut stray = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for e in std::fs::read_dir(&dir).ctx("reading", &dir)? {
            let e = e.ctx("reading", &dir)?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let Ok(d) = Digest::from_hex(&name) else {
                stray.push(name);
                continue;
            };
            let is_file = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
            if !is_file {
                stray.push(name);
                continue;
            }
            let (actual, size) = match hash_file(&path) {
                Ok(v) => v,
                // Removed by a concurrent prune since we listed it.
                Err(_) if !path.exists() => continue,
                Err(e) => return Err(e),
            };
            verified.checked += 1;
            if actual != d {
                verified.corrupt.push((d, actual));
            } else {
                verified.present.insert(d, size);
            }
        }

        let (problems, unreferenced, repaired) = self.write_collecting(|tx, trash| {
            let mut f = Findings {
                problems: Vec::new(),
                bad_images: BTreeSet::new(),
                bad_indexes: BTreeSet::new(),
                corrupt_blobs: Vec::new(),
                stray: Vec::new(),
                missing_snapshots: Vec::new(),
                orphan_dirs: Vec::new(),
                orphan_containers: Vec::new(),
                bad_cache: BTreeSet::new(),
            };
            // Stray names seen before the lock and still there.
            f.stray = stray
                .iter()
                .filter(|n| std::fs::symlink_metadata(dir.join(n)).is_ok())
                .cloned()
                .collect();
            let images = load_images(tx, None)?;
            report.images_checked = images.len() as u64;
            let mut later = Vec::new();
            let mut referenced: HashSet<Digest> = HashSet::new();
            for img in &images {
                referenced.insert(img.id);
                referenced.insert(img.manifest_digest);
                let layers = image_layers(tx, &img.id)?;
                referenced.extend(layers.iter().map(|l| l.blob));
                if let Some(reason) = self.image_problem(img, &layers, &mut verified) {
                    f.bad_images.insert(img.id);
                    later.push(Problem::BrokenImage {
                        image: img.id,
                        reason,
                    });
                }
            }
            for digest in crate::gc::all_indexes(tx)? {
                referenced.insert(digest);
                if let Some(reason) =
                    self.index_problem(tx, &digest, &f.bad_images, &mut verified)?
                {
                    f.bad_indexes.insert(digest);
                    later.push(Problem::BrokenIndex {
                        index: digest,
                        reason,
                    });
                }
            }
            self.check_snapshots(tx, &mut f, &mut later)?;
            let snapshot_keys: HashSet<String> = {
                let mut stmt = tx.prepare("SELECT key FROM snapshots")?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            {
                let mut stmt = tx
                    .prepare("SELECT cache_key, kind, target FROM cache_refs ORDER BY cache_key")?;
                let rows = stmt.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })?;
                for row in rows {
                    let (key, kind, target) = row?;
                    let ok = if kind == "blob" {
                        Digest::parse(&target).is_ok_and(|d| {
                            referenced.insert(d);
                            verified.ok(&d)
                        })
                    } else {
                        snapshot_keys.contains(&target) && !f.missing_snapshots.contains(&target)
                    };
                    if !ok && f.bad_cache.insert(key.clone()) {
                        later.push(Problem::BrokenCacheRecord {
                            key,
                            missing: format!("{kind} {target}"),
                        });
                    }
                }
            }
            {
                let mut stmt = tx.prepare("SELECT target FROM lease_refs WHERE kind = 'blob'")?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
                for r in rows {
                    if let Ok(d) = Digest::parse(&r?) {
                        referenced.insert(d);
                    }
                }
            }
            for msg in db_checks(tx)? {
                f.problems.push(Problem::Database(msg));
            }
            for (digest, actual) in &verified.corrupt {
                f.corrupt_blobs.push(*digest);
                f.problems.push(Problem::CorruptBlob {
                    digest: *digest,
                    actual: *actual,
                });
            }
            for s in &f.stray {
                f.problems.push(Problem::StrayFile(s.clone()));
            }
            f.problems.extend(later);
            for (id, pid) in crate::container::dead_supervisors(tx, repair)? {
                f.problems.push(Problem::DeadSupervisor { id, pid });
            }
            for id in self.orphan_container_dirs(tx)? {
                f.problems.push(Problem::OrphanContainerDir(id.clone()));
                f.orphan_containers.push(id);
            }
            let unreferenced: Vec<u64> = verified
                .present
                .iter()
                .filter(|(d, _)| !referenced.contains(d))
                .map(|(_, s)| *s)
                .collect();
            let repaired = repair && !f.problems.is_empty();
            if repaired {
                self.repair_tx(tx, trash, &f)?;
            }
            Ok((f.problems, unreferenced, repaired))
        })?;
        report.blobs_checked = verified.checked;
        report.unreferenced_blobs = unreferenced.len() as u64;
        report.unreferenced_bytes = unreferenced.iter().sum();
        report.problems = problems;
        report.repaired = repaired;
        // index.json is derived from the database; a crash between a tag change and its
        // regeneration leaves it stale, which is not damage: rewrite it.
        let index_now = std::fs::read(self.layout().index_path()).unwrap_or_default();
        if repaired || index_now != self.render_index()? {
            self.sync_index()?;
        }
        Ok(report)
    }

    /// Why an image index is broken, if it is.
    fn index_problem(
        &self,
        tx: &Connection,
        digest: &Digest,
        bad_images: &BTreeSet<Digest>,
        verified: &mut Verified,
    ) -> Result<Option<String>> {
        if !verified.ok(digest) {
            return Ok(Some(format!("index blob {digest} is missing or corrupt")));
        }
        let Some(index) = crate::image_index::load_index(tx, digest)? else {
            return Ok(None);
        };
        if let Some(e) = index
            .entries
            .iter()
            .find(|e| bad_images.contains(&e.image.id))
        {
            return Ok(Some(format!(
                "its {} image {} is broken",
                e.platform, e.image.id
            )));
        }
        let doc: serde_json::Value = match self
            .read_blob(digest)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(v) => v,
            None => return Ok(Some("index blob is not JSON".into())),
        };
        let listed: Vec<&str> = doc["manifests"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["digest"].as_str()).collect())
            .unwrap_or_default();
        let recorded: Vec<String> = index
            .entries
            .iter()
            .map(|e| e.image.manifest_digest.to_string())
            .collect();
        if listed != recorded {
            return Ok(Some(format!(
                "the blob lists {} manifests, metadata records {} different ones",
                listed.len(),
                recorded.len()
            )));
        }
        Ok(None)
    }

    /// Why an image is broken, if it is.
    fn image_problem(
        &self,
        img: &crate::ImageRecord,
        layers: &[crate::LayerRecord],
        verified: &mut Verified,
    ) -> Option<String> {
        for (what, d) in [("manifest", img.manifest_digest), ("config", img.id)] {
            if !verified.ok(&d) {
                return Some(format!("{what} blob {d} is missing or corrupt"));
            }
        }
        for l in layers {
            if !verified.ok(&l.blob) {
                return Some(format!("layer blob {} is missing or corrupt", l.blob));
            }
        }
        let manifest = match self.read_blob(&img.manifest_digest) {
            Ok(m) => m,
            Err(e) => return Some(format!("reading manifest: {e}")),
        };
        let manifest: serde_json::Value = match serde_json::from_slice(&manifest) {
            Ok(v) => v,
            Err(e) => return Some(format!("manifest is not JSON: {e}")),
        };
        if manifest["config"]["digest"].as_str() != Some(&img.id.to_string()) {
            return Some("manifest names another config".into());
        }
        let listed: Vec<&str> = manifest["layers"]
            .as_array()
            .map(|a| a.iter().filter_map(|l| l["digest"].as_str()).collect())
            .unwrap_or_default();
        let recorded: Vec<String> = layers.iter().map(|l| l.blob.to_string()).collect();
        if listed != recorded {
            return Some(format!(
                "manifest lists {} layers, metadata records {} different ones",
                listed.len(),
                recorded.len()
            ));
        }
        let config = match self.read_blob(&img.id) {
            Ok(c) => c,
            Err(e) => return Some(format!("reading config: {e}")),
        };
        let config: serde_json::Value = match serde_json::from_slice(&config) {
            Ok(v) => v,
            Err(e) => return Some(format!("config is not JSON: {e}")),
        };
        let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str()).collect())
            .unwrap_or_default();
        let recorded: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
        if diff_ids != recorded {
            return Some("config rootfs.diff_ids differ from the recorded layers".into());
        }
        None
    }

    fn check_snapshots(
        &self,
        tx: &Connection,
        f: &mut Findings,
        problems: &mut Vec<Problem>,
    ) -> Result<()> {
        let snapdir = self.layout().snapshots_dir();
        let rows: Vec<(String, String)> = {
            let mut stmt = tx.prepare("SELECT key, dir FROM snapshots ORDER BY key")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut known = HashSet::new();
        for (key, dir) in rows {
            if !snapdir.join(&dir).is_dir() {
                problems.push(Problem::MissingSnapshotDir { key: key.clone() });
                f.missing_snapshots.push(key);
            }
            known.insert(dir);
        }
        let mut names = Vec::new();
        for e in std::fs::read_dir(&snapdir).ctx("reading", &snapdir)? {
            let e = e.ctx("reading", &snapdir)?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        for n in names {
            if !known.contains(&n) {
                problems.push(Problem::OrphanSnapshotDir(n.clone()));
                f.orphan_dirs.push(n);
            }
        }
        Ok(())
    }

    /// Delete the snapshots `keys` with their descendants and the cache records that use
    /// them; their directories move to `trash`. Returns how many snapshots went.
    pub(crate) fn drop_snapshot_trees(
        &self,
        tx: &Connection,
        keys: Vec<String>,
        trash: &mut Trash,
    ) -> Result<usize> {
        tx.pragma_update(None, "defer_foreign_keys", "ON")?;
        let mut gone = keys;
        let mut n = 0;
        while let Some(key) = gone.pop() {
            let children: Vec<String> = {
                let mut stmt = tx.prepare("SELECT key FROM snapshots WHERE parent = ?1")?;
                let rows = stmt.query_map([&key], |r| r.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let dir: Option<String> = tx
                .query_row("SELECT dir FROM snapshots WHERE key = ?1", [&key], |r| {
                    r.get(0)
                })
                .optional()?;
            if let Some(dir) = dir {
                self.trash_snapshot_dir(trash, &dir)?;
                n += 1;
            }
            tx.execute("DELETE FROM snapshots WHERE key = ?1", [&key])?;
            let users: Vec<String> = {
                let mut stmt = tx.prepare(
                    "SELECT cache_key FROM cache_refs WHERE kind = 'snapshot' AND target = ?1",
                )?;
                let rows = stmt.query_map([&key], |r| r.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for u in users {
                tx.execute("DELETE FROM cache WHERE key = ?1", [&u])?;
            }
            gone.extend(children);
        }
        Ok(n)
    }

    /// Removes what `f` found broken, inside the checking transaction.
    /// Directories under `containers/` with no row. A container's row is written before its
    /// directory and removed before it, and this runs under the write lock, so a directory
    /// without a row is a leftover, unless a process still has a mount inside it (a
    /// supervisor finishing a removal): those are left alone.
    fn orphan_container_dirs(&self, tx: &Connection) -> Result<Vec<String>> {
        let dir = self.root().join("containers");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let known: HashSet<String> = {
            let mut stmt = tx.prepare("SELECT id FROM containers")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut out: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !known.contains(n))
            .collect();
        if out.is_empty() {
            return Ok(out);
        }
        let mounted = mounts_of_all_processes();
        out.retain(|n| {
            let p = format!("{}/", dir.join(n).display());
            !mounted.iter().any(|m| m.starts_with(&p))
        });
        out.sort();
        Ok(out)
    }

    fn repair_tx(&self, tx: &Connection, trash: &mut Trash, f: &Findings) -> Result<()> {
        for id in &f.orphan_containers {
            remove_any(&self.root().join("containers").join(id))?;
        }
        let dir = self.layout().blobs_dir();
        for d in &f.corrupt_blobs {
            self.trash_blob(trash, d)?;
        }
        for s in &f.stray {
            remove_any(&dir.join(s))?;
        }
        tx.pragma_update(None, "defer_foreign_keys", "ON")?;
        for d in &f.bad_indexes {
            let d = d.to_string();
            tx.execute("DELETE FROM tags WHERE index_digest = ?1", [&d])?;
            tx.execute("DELETE FROM index_entries WHERE index_digest = ?1", [&d])?;
            tx.execute("DELETE FROM image_indexes WHERE digest = ?1", [&d])?;
        }
        for id in &f.bad_images {
            let id = id.to_string();
            tx.execute("DELETE FROM containers WHERE image_id = ?1", [&id])?;
            tx.execute("DELETE FROM tags WHERE image_id = ?1", [&id])?;
            tx.execute("DELETE FROM image_layers WHERE image_id = ?1", [&id])?;
            tx.execute("UPDATE images SET parent = NULL WHERE parent = ?1", [&id])?;
            tx.execute("DELETE FROM images WHERE id = ?1", [&id])?;
        }
        // A missing snapshot takes its descendants with it.
        self.drop_snapshot_trees(tx, f.missing_snapshots.clone(), trash)?;
        for n in &f.orphan_dirs {
            self.trash_snapshot_dir(trash, n)?;
        }
        for k in &f.bad_cache {
            tx.execute("DELETE FROM cache WHERE key = ?1", [k])?;
        }
        // Records of layers made from snapshots whose blob is gone (hints only).
        for d in &f.corrupt_blobs {
            tx.execute(
                "DELETE FROM snapshot_layers WHERE blob_digest = ?1",
                [d.to_string()],
            )?;
            crate::blob_sync::unmark_tx(tx, &d.to_string())?;
        }
        // Tags and layer rows left pointing nowhere.
        tx.execute(
            "DELETE FROM tags WHERE image_id NOT IN (SELECT id FROM images)",
            [],
        )?;
        tx.execute(
            "DELETE FROM layers WHERE blob_digest NOT IN (SELECT blob_digest FROM image_layers)
             AND blob_digest NOT IN (SELECT target FROM cache_refs WHERE kind = 'blob')",
            [],
        )?;
        Ok(())
    }
}

fn db_checks(tx: &Connection) -> Result<Vec<String>> {
    let mut out = Vec::new();
    {
        let mut stmt = tx.prepare("PRAGMA quick_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for r in rows {
            let r = r?;
            if r != "ok" {
                out.push(r);
            }
        }
    }
    let mut stmt = tx.prepare("PRAGMA foreign_key_check")?;
    let rows = stmt.query_map([], |r| {
        Ok(format!(
            "row {} of table {} references a missing row of {}",
            r.get::<_, Option<i64>>(1)?.unwrap_or(-1),
            r.get::<_, String>(0)?,
            r.get::<_, String>(2)?
        ))
    })?;
    for r in rows {
        out.push(r?);
    }
    Ok(out)
}

/// Every mount point any process sees (`/proc/*/mountinfo`, field 5), its private mount
/// namespace included.
fn mounts_of_all_processes() -> HashSet<String> {
    let mut out = HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.filter_map(|e| e.ok()) {
        if !p
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(p.path().join("mountinfo")) else {
            continue;
        };
        for line in text.lines() {
            if let Some(m) = line.split(' ').nth(4) {
                out.insert(format!("{m}/"));
            }
        }
    }
    out
}
