//! `system check`: verifies every blob's digest and every reference the metadata makes,
//! and with `repair` removes what is broken (a corrupt blob, the images that need it, a tag
//! or snapshot pointing nowhere, a cache record whose content is gone).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use rusqlite::{OptionalExtension, Transaction};

use crate::Digest;
use crate::Store;
use crate::blob::hash_file;
use crate::error::{IoContext, Result};
use crate::image::{image_layers, load_images};
use crate::layout::{Layout, remove_any};

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
    /// A snapshot row whose directory is missing.
    MissingSnapshotDir {
        /// The snapshot key.
        key: String,
    },
    /// A directory under `snapshots-v1/` that no row names.
    OrphanSnapshotDir(String),
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
            Problem::StrayFile(n) => write!(f, "blobs/sha256/{n}: not a blob name"),
            Problem::BrokenImage { image, reason } => write!(f, "image {image}: {reason}"),
            Problem::MissingSnapshotDir { key } => {
                write!(f, "snapshot {key}: directory is missing")
            }
            Problem::OrphanSnapshotDir(n) => {
                write!(
                    f,
                    "snapshots-v1/{n}: directory not recorded in the metadata"
                )
            }
            Problem::BrokenCacheRecord { key, missing } => {
                write!(f, "build cache record {key}: references missing {missing}")
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
    corrupt_blobs: Vec<Digest>,
    stray: Vec<String>,
    missing_snapshots: Vec<String>,
    orphan_dirs: Vec<String>,
    bad_cache: BTreeSet<String>,
}

impl Store {
    /// Verifies the store; with `repair`, removes what is broken.
    pub fn check(&self, repair: bool) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        // Hash outside any lock: this is the slow part and blobs never change once visible.
        let dir = self.layout().blobs_dir();
        let mut present: BTreeMap<Digest, u64> = BTreeMap::new();
        let mut corrupt: Vec<(Digest, Digest)> = Vec::new();
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
            report.blobs_checked += 1;
            if actual != d {
                corrupt.push((d, actual));
            } else {
                present.insert(d, size);
            }
        }

        let (findings, unreferenced) = self.write(|tx| {
            let mut f = Findings {
                problems: Vec::new(),
                bad_images: BTreeSet::new(),
                corrupt_blobs: corrupt.iter().map(|c| c.0).collect(),
                stray: stray.clone(),
                missing_snapshots: Vec::new(),
                orphan_dirs: Vec::new(),
                bad_cache: BTreeSet::new(),
            };
            for msg in db_checks(tx)? {
                f.problems.push(Problem::Database(msg));
            }
            for (digest, actual) in &corrupt {
                f.problems.push(Problem::CorruptBlob {
                    digest: *digest,
                    actual: *actual,
                });
            }
            for s in &stray {
                f.problems.push(Problem::StrayFile(s.clone()));
            }
            let images = load_images(tx, None)?;
            report.images_checked = images.len() as u64;
            let mut referenced: HashSet<Digest> = HashSet::new();
            for img in &images {
                referenced.insert(img.id);
                referenced.insert(img.manifest_digest);
                let layers = image_layers(tx, &img.id)?;
                referenced.extend(layers.iter().map(|l| l.blob));
                if let Some(reason) = self.image_problem(img, &layers, &present) {
                    f.bad_images.insert(img.id);
                    f.problems.push(Problem::BrokenImage {
                        image: img.id,
                        reason,
                    });
                }
            }
            self.check_snapshots(tx, &mut f)?;
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
                            present.contains_key(&d)
                        })
                    } else {
                        snapshot_keys.contains(&target) && !f.missing_snapshots.contains(&target)
                    };
                    if !ok && f.bad_cache.insert(key.clone()) {
                        f.problems.push(Problem::BrokenCacheRecord {
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
            let unreferenced: Vec<u64> = present
                .iter()
                .filter(|(d, _)| !referenced.contains(d))
                .map(|(_, s)| *s)
                .collect();
            Ok((f, unreferenced))
        })?;
        report.unreferenced_blobs = unreferenced.len() as u64;
        report.unreferenced_bytes = unreferenced.iter().sum();
        // index.json is derived from the database; a crash between a tag change and its
        // regeneration leaves it stale, which is not damage: rewrite it.
        let index_now = std::fs::read(self.layout().index_path()).unwrap_or_default();
        if index_now != self.render_index()? {
            self.sync_index()?;
        }
        report.problems = findings.problems.clone();
        if repair && !report.problems.is_empty() {
            self.repair(&findings)?;
            self.sync_index()?;
            report.repaired = true;
        }
        Ok(report)
    }

    /// Why an image is broken, if it is.
    fn image_problem(
        &self,
        img: &crate::ImageRecord,
        layers: &[crate::LayerRecord],
        present: &BTreeMap<Digest, u64>,
    ) -> Option<String> {
        for (what, d) in [("manifest", img.manifest_digest), ("config", img.id)] {
            if !present.contains_key(&d) {
                return Some(format!("{what} blob {d} is missing or corrupt"));
            }
        }
        for l in layers {
            if !present.contains_key(&l.blob) {
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

    fn check_snapshots(&self, tx: &Transaction<'_>, f: &mut Findings) -> Result<()> {
        let snapdir = self.layout().snapshots_dir();
        let rows: Vec<(String, String)> = {
            let mut stmt = tx.prepare("SELECT key, dir FROM snapshots ORDER BY key")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut known = HashSet::new();
        for (key, dir) in rows {
            if !snapdir.join(&dir).is_dir() {
                f.problems
                    .push(Problem::MissingSnapshotDir { key: key.clone() });
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
                f.problems.push(Problem::OrphanSnapshotDir(n.clone()));
                f.orphan_dirs.push(n);
            }
        }
        Ok(())
    }

    /// Delete the snapshots `keys` with their descendants and the cache records that use
    /// them; their directories move to `trash` (the caller removes it after the commit).
    /// Returns how many snapshots went.
    pub(crate) fn drop_snapshot_trees(
        &self,
        tx: &Transaction<'_>,
        keys: Vec<String>,
        trash: &mut Vec<std::path::PathBuf>,
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
                let from = self.layout().snapshots_dir().join(&dir);
                if from.exists() {
                    let to = self
                        .layout()
                        .tmp_dir()
                        .join(format!("{}{dir}", Layout::tmp_prefix("trash")));
                    std::fs::rename(&from, &to).ctx("moving to trash", &from)?;
                    trash.push(to);
                }
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

    fn repair(&self, f: &Findings) -> Result<()> {
        let mut trash = Vec::new();
        self.write(|tx| {
            let dir = self.layout().blobs_dir();
            for d in &f.corrupt_blobs {
                // Still corrupt? (blobs are immutable, but be sure before deleting)
                let path = dir.join(d.hex());
                if hash_file(&path).is_ok_and(|(a, _)| a != *d) {
                    remove_any(&path)?;
                }
            }
            for s in &f.stray {
                remove_any(&dir.join(s))?;
            }
            tx.pragma_update(None, "defer_foreign_keys", "ON")?;
            for id in &f.bad_images {
                let id = id.to_string();
                tx.execute("DELETE FROM containers WHERE image_id = ?1", [&id])?;
                tx.execute("DELETE FROM tags WHERE image_id = ?1", [&id])?;
                tx.execute("DELETE FROM image_layers WHERE image_id = ?1", [&id])?;
                tx.execute("UPDATE images SET parent = NULL WHERE parent = ?1", [&id])?;
                tx.execute("DELETE FROM images WHERE id = ?1", [&id])?;
            }
            // A missing snapshot takes its descendants with it.
            self.drop_snapshot_trees(tx, f.missing_snapshots.clone(), &mut trash)?;
            for n in &f.orphan_dirs {
                let from = self.layout().snapshots_dir().join(n);
                let to = self
                    .layout()
                    .tmp_dir()
                    .join(format!("{}{n}", Layout::tmp_prefix("trash")));
                if from.exists() {
                    std::fs::rename(&from, &to).ctx("moving to trash", &from)?;
                    trash.push(to);
                }
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
        })?;
        for t in trash {
            let _ = remove_any(&t);
        }
        Ok(())
    }
}

fn db_checks(tx: &Transaction<'_>) -> Result<Vec<String>> {
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
