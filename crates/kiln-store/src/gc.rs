//! Removing images and collecting what nothing references any more.
//!
//! Every removal runs in one write transaction, and dead blobs and snapshot directories are
//! moved out of sight (into `trash/`) while that transaction holds the write lock: a writer
//! records its lease before it makes a blob visible (see `lease`), so a blob that looks
//! unreferenced here cannot be one that a concurrent load is about to use. Nothing is
//! deleted before the commit; a process killed in between leaves trash entries that the next
//! open puts back or deletes, as the database then says (see `trash`).

use std::collections::{BTreeSet, HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};

use crate::Digest;
use crate::Store;
use crate::error::{Error, IoContext, Result};
use crate::image::{ImageRecord, Named, load_images, parse_digest};
use crate::image_index::{indexes_using, load_index};
use crate::lease::remove_dead_leases;
use crate::refs::blob_is_live;
use crate::trash::{Moved, Trash};

/// One line of `rmi`/`prune` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveEvent {
    /// A tag (full reference) was removed.
    Untagged(String),
    /// An image ID or a layer chain ID was deleted.
    Deleted(Digest),
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Containers removed (IDs).
    pub containers: Vec<String>,
    /// Image events, in order.
    pub images: Vec<RemoveEvent>,
    /// Build-cache record keys removed.
    pub cache: Vec<String>,
    /// Bytes freed on disk (blobs and snapshot directories).
    pub reclaimed: u64,
}

/// Which images `prune_images` considers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneScope {
    /// Untagged images that no other image builds on (docker's default).
    Dangling,
    /// Every image no container uses (`-a`).
    Unused,
}

/// What a sweep freed: its size, and the content itself, moved to the [`Trash`] under the
/// write lock and deleted after the commit.
#[derive(Debug, Default)]
pub(crate) struct Sweep {
    bytes: u64,
    pub(crate) trash: Trash,
    /// The file system was full: some dead content could not be moved and is left for
    /// another round.
    incomplete: bool,
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

impl Store {
    /// Which of `ids` other images are built on (recorded parent, or a prefix of another
    /// image's layers): docker's intermediate images, which `images` shows only with `-a`
    /// and which are never dangling. The same rule as `rmi` and prune, in one read.
    pub fn images_with_children(&self, ids: &[Digest]) -> Result<HashSet<Digest>> {
        self.read(|tx| {
            let mut out = HashSet::new();
            for id in ids {
                if has_children(tx, id)? {
                    out.insert(*id);
                }
            }
            Ok(out)
        })
    }

    /// Runs a collecting transaction: deletes what it moved to the trash once it committed,
    /// or puts it back if it failed. Returns its result and the bytes freed. On a full file
    /// system, where the trash has no room for every entry, more rounds collect the rest,
    /// each in the space the previous one freed.
    pub(crate) fn write_sweep<T>(
        &self,
        f: impl FnOnce(&Connection, &mut Sweep) -> Result<T>,
    ) -> Result<(T, u64)> {
        let mut sweep = Sweep::default();
        let v = match self.write(|tx| f(tx, &mut sweep)) {
            Ok(v) => v,
            Err(e) => {
                self.restore_trash(sweep.trash);
                return Err(e);
            }
        };
        self.empty_trash(sweep.trash);
        let mut freed = sweep.bytes;
        let mut incomplete = sweep.incomplete;
        while incomplete {
            let mut round = Sweep::default();
            if let Err(e) = self.write(|tx| self.collect_tx(tx, &mut round)) {
                self.restore_trash(round.trash);
                return Err(e);
            }
            let progress = !round.trash.is_empty();
            self.empty_trash(round.trash);
            freed += round.bytes;
            incomplete = round.incomplete && progress;
        }
        Ok((v, freed))
    }

    /// Moves to the trash each candidate blob nothing references; `None` means every blob
    /// file.
    fn sweep_blobs(
        &self,
        tx: &Connection,
        sweep: &mut Sweep,
        candidates: Option<&[Digest]>,
    ) -> Result<()> {
        let dir = self.layout().blobs_dir();
        let names: Vec<String> = match candidates {
            Some(c) => c.iter().map(|d| d.hex()).collect(),
            None => {
                let mut v = Vec::new();
                for e in std::fs::read_dir(&dir).ctx("reading", &dir)? {
                    let e = e.ctx("reading", &dir)?;
                    if let Some(n) = e.file_name().to_str() {
                        v.push(n.to_string());
                    }
                }
                v
            }
        };
        for hex in names {
            // Files whose names are not digests are `check`'s business, not GC's.
            let Ok(d) = Digest::from_hex(&hex) else {
                continue;
            };
            let key = d.to_string();
            if blob_is_live(tx, &key)? {
                continue;
            }
            let path = dir.join(&hex);
            let size = match std::fs::symlink_metadata(&path) {
                Ok(m) => m.len(),
                Err(_) => continue,
            };
            match self.trash_blob(&mut sweep.trash, &d)? {
                Moved::Yes => {}
                Moved::Missing => continue,
                // Left in place, unreferenced: a later round collects it.
                Moved::NoSpace => {
                    sweep.incomplete = true;
                    continue;
                }
            }
            tx.execute("DELETE FROM layers WHERE blob_digest = ?1", [&key])?;
            tx.execute("DELETE FROM snapshot_layers WHERE blob_digest = ?1", [&key])?;
            crate::blob_sync::unmark_tx(tx, &key)?;
            sweep.bytes += size;
        }
        Ok(())
    }

    /// Moves every blob file nothing references to the trash (see `blob_sync`).
    pub(crate) fn sweep_unreferenced_blobs(
        &self,
        tx: &Connection,
        sweep: &mut Sweep,
    ) -> Result<()> {
        self.sweep_blobs(tx, sweep, None)
    }

    /// Removes snapshot rows nothing references (directly or through a child) and moves
    /// their directories to the trash.
    fn sweep_snapshots(&self, tx: &Connection, sweep: &mut Sweep) -> Result<()> {
        let mut parent_of: HashMap<String, Option<String>> = HashMap::new();
        let mut dir_of: HashMap<String, (String, u64)> = HashMap::new();
        {
            let mut stmt = tx.prepare("SELECT key, parent, dir, size FROM snapshots")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            for row in rows {
                let (k, p, d, s) = row?;
                parent_of.insert(k.clone(), p);
                dir_of.insert(k, (d, s as u64));
            }
        }
        if parent_of.is_empty() {
            return Ok(());
        }
        let mut roots: Vec<String> = Vec::new();
        for sql in [
            // An image layer's snapshot is keyed `layer:<chain ID>` (layer_snapshot_key).
            "SELECT 'layer:' || chain_id FROM image_layers",
            "SELECT key FROM container_snapshots",
            "SELECT target FROM cache_refs WHERE kind = 'snapshot'",
            "SELECT target FROM lease_refs WHERE kind = 'snapshot'",
        ] {
            let mut stmt = tx.prepare(sql)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            for r in rows {
                roots.push(r?);
            }
        }
        let mut live: HashSet<String> = HashSet::new();
        for mut key in roots {
            while parent_of.contains_key(&key) && live.insert(key.clone()) {
                match parent_of.get(&key).cloned().flatten() {
                    Some(p) => key = p,
                    None => break,
                }
            }
        }
        let mut dead: Vec<&String> = parent_of.keys().filter(|k| !live.contains(*k)).collect();
        if dead.is_empty() {
            return Ok(());
        }
        // Children before parents: if the file system is full and a directory cannot be
        // moved, this one and the rest (its ancestors among them) stay, rows and all.
        let depth = |key: &str| {
            let mut d = 0usize;
            let mut k = key;
            while let Some(Some(p)) = parent_of.get(k)
                && d < parent_of.len()
            {
                d += 1;
                k = p.as_str();
            }
            d
        };
        dead.sort_by_cached_key(|k| (std::cmp::Reverse(depth(k.as_str())), k.to_string()));
        // Dead snapshots only have dead children; let the whole set go at commit.
        tx.pragma_update(None, "defer_foreign_keys", "ON")?;
        for key in dead {
            let (dir, size) = &dir_of[key];
            if self.trash_snapshot_dir(&mut sweep.trash, dir)? == Moved::NoSpace {
                sweep.incomplete = true;
                break;
            }
            tx.execute("DELETE FROM snapshots WHERE key = ?1", [key])?;
            sweep.bytes += size;
        }
        Ok(())
    }

    /// Removes an image by reference or ID, with docker's rules: a reference only untags
    /// (and deletes the image when that was its last tag); an ID deletes the image and all
    /// its tags (`force` is needed when it has several, or when other images were built on
    /// it: they keep their layers). An image a running container uses is never deleted.
    pub fn remove_image(&self, name: &str, force: bool) -> Result<(Vec<RemoveEvent>, u64)> {
        self.with_reserve(|| self.remove_image_once(name, force))
    }

    fn remove_image_once(&self, name: &str, force: bool) -> Result<(Vec<RemoveEvent>, u64)> {
        if let Named::Index(digest) = self.resolve_name(name)? {
            return self.remove_index_once(name, &digest, force);
        }
        let image = self.resolve_image(name)?;
        let by_reference = crate::reference::normalize(name)
            .ok()
            .filter(|full| image.tags.contains(full) && !looks_like_id(name, &image.id));
        let (events, reclaimed) = self.write_sweep(|tx, sweep| {
            let Some(current) = load_images(tx, Some(&image.id))?.pop() else {
                return Err(Error::ImageNotFound(name.to_string()));
            };
            let users = container_users(tx, &current.id)?;
            let mut events = Vec::new();
            if let Some(full) = &by_reference {
                if !current.tags.contains(full) {
                    return Err(Error::ImageNotFound(name.to_string()));
                }
                if let Some((cid, _)) = users.first()
                    && !force
                {
                    return Err(Error::Conflict(format!(
                        "unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                        &cid[..cid.len().min(12)],
                        short(&current.id)
                    )));
                }
                tx.execute("DELETE FROM tags WHERE reference = ?1", [full])?;
                events.push(RemoveEvent::Untagged(full.clone()));
                if current.tags.len() == 1
                    && users.is_empty()
                    && !has_children(tx, &current.id)?
                    && indexes_using(tx, &current.id)?.is_empty()
                {
                    events.extend(self.delete_image_tx(tx, &current, sweep)?);
                }
                return Ok(events);
            }
            if let Some((cid, state)) = users.iter().find(|(_, s)| s == "running") {
                return Err(Error::Conflict(format!(
                    "unable to delete {} (cannot be forced) - image is being used by {state} container {}",
                    short(&current.id),
                    &cid[..cid.len().min(12)]
                )));
            }
            let indexes = indexes_using(tx, &current.id)?;
            if let Some(index) = indexes.first() {
                if !force {
                    return Err(Error::Conflict(format!(
                        "unable to delete {} (must be forced) - image is a platform of image index {}",
                        short(&current.id),
                        short(index)
                    )));
                }
                // Forced: the indexes that list it go first (an index never names a missing
                // image); their other images stay, untagged unless tagged themselves.
                for index in &indexes {
                    events.extend(self.delete_index_tx(tx, index, sweep)?);
                }
            }
            if has_children(tx, &current.id)? {
                if !force {
                    return Err(Error::Conflict(format!(
                        "unable to delete {} (must be forced) - image has dependent child images",
                        short(&current.id)
                    )));
                }
                // Forced: the children keep their own layers; they just lose the link.
                tx.execute(
                    "UPDATE images SET parent = NULL WHERE parent = ?1",
                    [current.id.to_string()],
                )?;
            }
            if current.tags.len() > 1 && !force {
                return Err(Error::Conflict(format!(
                    "unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    short(&current.id)
                )));
            }
            if let Some((cid, _)) = users.first() {
                if !force {
                    return Err(Error::Conflict(format!(
                        "unable to delete {} (must be forced) - image is being used by stopped container {}",
                        short(&current.id),
                        &cid[..cid.len().min(12)]
                    )));
                }
                // Forced: untag, but the container keeps its image.
                for t in &current.tags {
                    tx.execute("DELETE FROM tags WHERE reference = ?1", [t])?;
                    events.push(RemoveEvent::Untagged(t.clone()));
                }
                return Ok(events);
            }
            for t in &current.tags {
                tx.execute("DELETE FROM tags WHERE reference = ?1", [t])?;
                events.push(RemoveEvent::Untagged(t.clone()));
            }
            events.extend(self.delete_image_tx(tx, &current, sweep)?);
            Ok(events)
        })?;
        if events.iter().any(|e| matches!(e, RemoveEvent::Untagged(_))) {
            // Derived from the database: on a full disk it may fail after the removal has
            // committed; the next tag change or `system check` rewrites it.
            let _ = self.sync_index();
        }
        Ok((events, reclaimed))
    }

    /// `rmi` of an image index (`name` is one of its tags, or its digest): docker 25's
    /// containerd store. A tag is removed; the index goes with its last tag, and with it each
    /// of its images that nothing else keeps (a tag of its own, a container, another index, a
    /// child image). By digest, every tag goes (`force` when there are several).
    fn remove_index_once(
        &self,
        name: &str,
        digest: &Digest,
        force: bool,
    ) -> Result<(Vec<RemoveEvent>, u64)> {
        let by_reference = crate::reference::normalize(name)
            .ok()
            .filter(|_| !looks_like_id(name, digest));
        let (events, reclaimed) = self.write_sweep(|tx, sweep| {
            let Some(index) = load_index(tx, digest)? else {
                return Err(Error::ImageNotFound(name.to_string()));
            };
            let mut users = Vec::new();
            for e in &index.entries {
                for (cid, state) in container_users(tx, &e.image.id)? {
                    users.push((cid, state, e.image.id));
                }
            }
            let mut events = Vec::new();
            // A name that is not one of its tags named it by digest (or a prefix of it).
            let by_reference = by_reference.as_ref().filter(|f| index.tags.contains(f));
            let tags: Vec<String> = match by_reference {
                Some(full) => {
                    if let Some((cid, _, image)) = users.first()
                        && !force
                    {
                        return Err(Error::Conflict(format!(
                            "unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                            &cid[..cid.len().min(12)],
                            short(image)
                        )));
                    }
                    vec![full.clone()]
                }
                None => {
                    if let Some((cid, state, _)) = users.iter().find(|(_, s, _)| s == "running") {
                        return Err(Error::Conflict(format!(
                            "unable to delete {} (cannot be forced) - image is being used by {state} container {}",
                            short(digest),
                            &cid[..cid.len().min(12)]
                        )));
                    }
                    if index.tags.len() > 1 && !force {
                        return Err(Error::Conflict(format!(
                            "unable to delete {} (must be forced) - image is referenced in multiple repositories",
                            short(digest)
                        )));
                    }
                    if let Some((cid, _, _)) = users.first()
                        && !force
                    {
                        return Err(Error::Conflict(format!(
                            "unable to delete {} (must be forced) - image is being used by stopped container {}",
                            short(digest),
                            &cid[..cid.len().min(12)]
                        )));
                    }
                    index.tags.clone()
                }
            };
            for t in &tags {
                tx.execute("DELETE FROM tags WHERE reference = ?1", [t])?;
                events.push(RemoveEvent::Untagged(t.clone()));
            }
            if index.tags.len() > tags.len() {
                return Ok(events);
            }
            events.extend(self.delete_index_tx(tx, digest, sweep)?);
            for e in &index.entries {
                let Some(image) = load_images(tx, Some(&e.image.id))?.pop() else {
                    continue;
                };
                if image.tags.is_empty()
                    && container_users(tx, &image.id)?.is_empty()
                    && indexes_using(tx, &image.id)?.is_empty()
                    && !has_children(tx, &image.id)?
                {
                    events.extend(self.delete_image_tx(tx, &image, sweep)?);
                }
            }
            Ok(events)
        })?;
        if events.iter().any(|e| matches!(e, RemoveEvent::Untagged(_))) {
            let _ = self.sync_index();
        }
        Ok((events, reclaimed))
    }

    /// Deletes an index row (its tags and entries with it) and its blob; its images stay.
    /// Returns `Untagged` for each tag it still had, then `Deleted` for the index.
    fn delete_index_tx(
        &self,
        tx: &Connection,
        digest: &Digest,
        sweep: &mut Sweep,
    ) -> Result<Vec<RemoveEvent>> {
        let key = digest.to_string();
        let mut events = Vec::new();
        {
            let mut stmt = tx
                .prepare("SELECT reference FROM tags WHERE index_digest = ?1 ORDER BY reference")?;
            let rows = stmt.query_map([&key], |r| r.get::<_, String>(0))?;
            for r in rows {
                events.push(RemoveEvent::Untagged(r?));
            }
        }
        tx.execute("DELETE FROM tags WHERE index_digest = ?1", [&key])?;
        tx.execute("DELETE FROM index_entries WHERE index_digest = ?1", [&key])?;
        tx.execute("DELETE FROM image_indexes WHERE digest = ?1", [&key])?;
        self.sweep_blobs(tx, sweep, Some(&[*digest]))?;
        events.push(RemoveEvent::Deleted(*digest));
        Ok(events)
    }

    /// Deletes an untagged image row and the content only it used. Returns the `Deleted`
    /// events: the image ID, then the chain IDs of layers no other image uses, top first.
    fn delete_image_tx(
        &self,
        tx: &Connection,
        image: &ImageRecord,
        sweep: &mut Sweep,
    ) -> Result<Vec<RemoveEvent>> {
        let id = image.id.to_string();
        let mut layers: Vec<(String, String)> = Vec::new();
        {
            let mut stmt = tx.prepare(
                "SELECT blob_digest, chain_id FROM image_layers WHERE image_id = ?1 ORDER BY position DESC",
            )?;
            let rows = stmt.query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            for r in rows {
                layers.push(r?);
            }
        }
        tx.execute("DELETE FROM tags WHERE image_id = ?1", [&id])?;
        tx.execute("DELETE FROM image_layers WHERE image_id = ?1", [&id])?;
        tx.execute("DELETE FROM images WHERE id = ?1", [&id])?;
        let mut events = vec![RemoveEvent::Deleted(image.id)];
        let mut seen = BTreeSet::new();
        for (_, chain) in &layers {
            let still_used = tx
                .query_row(
                    "SELECT 1 FROM image_layers WHERE chain_id = ?1 LIMIT 1",
                    [chain],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !still_used && seen.insert(chain.clone()) {
                events.push(RemoveEvent::Deleted(parse_digest(chain)?));
            }
        }
        let mut candidates = vec![image.manifest_digest, image.id];
        for (blob, _) in &layers {
            candidates.push(parse_digest(blob)?);
        }
        self.sweep_blobs(tx, sweep, Some(&candidates))?;
        self.sweep_snapshots(tx, sweep)?;
        Ok(events)
    }

    /// `image prune`: removes dangling (or, with [`PruneScope::Unused`], all unused)
    /// images for which `keep` returns false, then the content they alone used.
    pub fn prune_images(
        &self,
        scope: PruneScope,
        keep: &dyn Fn(&ImageRecord) -> bool,
    ) -> Result<PruneReport> {
        self.with_reserve(|| self.prune_images_once(scope, keep))
    }

    fn prune_images_once(
        &self,
        scope: PruneScope,
        keep: &dyn Fn(&ImageRecord) -> bool,
    ) -> Result<PruneReport> {
        let (events, reclaimed) =
            self.write_sweep(|tx, sweep| self.prune_images_tx(tx, scope, keep, sweep))?;
        if events.iter().any(|e| matches!(e, RemoveEvent::Untagged(_))) {
            // Derived from the database: on a full disk it may fail after the removal has
            // committed; the next tag change or `system check` rewrites it.
            let _ = self.sync_index();
        }
        Ok(PruneReport {
            images: events,
            reclaimed,
            ..PruneReport::default()
        })
    }

    fn prune_images_tx(
        &self,
        tx: &Connection,
        scope: PruneScope,
        keep: &dyn Fn(&ImageRecord) -> bool,
        sweep: &mut Sweep,
    ) -> Result<Vec<RemoveEvent>> {
        let mut events = Vec::new();
        // Deleting a leaf can turn its parent into a prunable leaf, and deleting an index
        // frees its images; repeat until stable.
        loop {
            let mut removed_any = false;
            for digest in all_indexes(tx)? {
                let Some(index) = load_index(tx, &digest)? else {
                    continue;
                };
                if scope == PruneScope::Dangling && !index.tags.is_empty() {
                    continue;
                }
                let mut in_use = false;
                for e in &index.entries {
                    in_use |= !container_users(tx, &e.image.id)?.is_empty();
                }
                // The prune's filters (until=, label=) judge an index by its default image.
                let kept = index.default_entry().is_some_and(|e| keep(&e.image));
                if in_use || kept {
                    continue;
                }
                events.extend(self.delete_index_tx(tx, &digest, sweep)?);
                removed_any = true;
            }
            let images = load_images(tx, None)?;
            for img in images {
                if !container_users(tx, &img.id)?.is_empty()
                    || has_children(tx, &img.id)?
                    || !indexes_using(tx, &img.id)?.is_empty()
                {
                    continue;
                }
                if scope == PruneScope::Dangling && !img.tags.is_empty() {
                    continue;
                }
                if keep(&img) {
                    continue;
                }
                for t in &img.tags {
                    events.push(RemoveEvent::Untagged(t.clone()));
                }
                events.extend(self.delete_image_tx(tx, &img, sweep)?);
                removed_any = true;
            }
            if !removed_any {
                return Ok(events);
            }
        }
    }

    /// `system prune`: stopped containers, dangling (or unused) images, all build-cache
    /// records and cache mounts, then every blob and snapshot nothing references, and dead
    /// leases.
    pub fn system_prune(&self, scope: PruneScope) -> Result<PruneReport> {
        // It removes build-cache records: wait for running builds.
        let _guard = self.collect_guard(true)?;
        let mut report = self.with_reserve(|| self.system_prune_once(scope))?;
        // Cache mounts are build cache too.
        for mount in self.cache_mount_entries()? {
            report.reclaimed += self.remove_cache_mount(&mount.id)?;
            report.cache.push(mount.id);
        }
        Ok(report)
    }

    fn system_prune_once(&self, scope: PruneScope) -> Result<PruneReport> {
        let (mut report, reclaimed) = self.write_sweep(|tx, sweep| {
            let mut report = PruneReport::default();
            {
                let mut stmt =
                    tx.prepare("SELECT id FROM containers WHERE state NOT IN ('running', 'paused') ORDER BY id")?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
                for r in rows {
                    report.containers.push(r?);
                }
            }
            tx.execute("DELETE FROM containers WHERE state NOT IN ('running', 'paused')", [])?;
            report.images = self.prune_images_tx(tx, scope, &|_| false, sweep)?;
            {
                let mut stmt = tx.prepare("SELECT key, size FROM cache ORDER BY key")?;
                let rows =
                    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
                for r in rows {
                    let (k, s) = r?;
                    report.cache.push(k);
                    sweep.bytes += s as u64;
                }
            }
            tx.execute("DELETE FROM cache", [])?;
            self.collect_tx(tx, sweep)?;
            Ok(report)
        })?;
        report.reclaimed = reclaimed;
        for id in &report.containers {
            // Their writable layers and logs; the rows are gone, so nothing else names them.
            let _ = crate::layout::remove_any(&self.container_dir(id));
        }
        if report
            .images
            .iter()
            .any(|e| matches!(e, RemoveEvent::Untagged(_)))
        {
            // Derived from the database: on a full disk it may fail after the removal has
            // committed; the next tag change or `system check` rewrites it.
            let _ = self.sync_index();
        }
        Ok(report)
    }

    /// Deletes those of `blobs` that nothing references (and snapshots nothing references).
    /// Returns the bytes freed.
    pub fn collect_unused(&self, blobs: &[Digest]) -> Result<u64> {
        let ((), freed) = self.write_sweep(|tx, sweep| {
            self.sweep_blobs(tx, sweep, Some(blobs))?;
            self.sweep_snapshots(tx, sweep)
        })?;
        Ok(freed)
    }

    /// Deletes every blob and snapshot nothing references (and leases of dead processes).
    /// Returns the bytes freed.
    pub fn collect_garbage(&self) -> Result<u64> {
        self.with_reserve(|| self.collect_garbage_once())
    }

    pub(crate) fn collect_garbage_once(&self) -> Result<u64> {
        let ((), freed) = self.write_sweep(|tx, sweep| self.collect_tx(tx, sweep))?;
        Ok(freed)
    }

    pub(crate) fn collect_tx(&self, tx: &Connection, sweep: &mut Sweep) -> Result<()> {
        remove_dead_leases(tx)?;
        self.sweep_blobs(tx, sweep, None)?;
        self.sweep_snapshots(tx, sweep)?;
        // Directories under snapshots-v1/ without a row: a commit that died between its
        // rename and its transaction's commit.
        let known: HashSet<String> = {
            let mut stmt = tx.prepare("SELECT dir FROM snapshots")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let snapdir = self.layout().snapshots_dir();
        for e in std::fs::read_dir(&snapdir).ctx("reading", &snapdir)? {
            let e = e.ctx("reading", &snapdir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&name)
                && self.trash_snapshot_dir(&mut sweep.trash, &name)? == Moved::NoSpace
            {
                sweep.incomplete = true;
            }
        }
        Ok(())
    }
}

fn looks_like_id(name: &str, id: &Digest) -> bool {
    let bare = name.strip_prefix("sha256:").unwrap_or(name);
    name.starts_with("sha256:")
        || (!bare.is_empty() && id.hex().starts_with(bare) && bare.len() == 64)
}

pub(crate) fn all_indexes(tx: &Connection) -> Result<Vec<Digest>> {
    let mut stmt = tx.prepare("SELECT digest FROM image_indexes ORDER BY digest")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(parse_digest(&r?)?);
    }
    Ok(out)
}

fn container_users(tx: &Connection, id: &Digest) -> Result<Vec<(String, String)>> {
    let mut stmt =
        tx.prepare("SELECT id, state FROM containers WHERE image_id = ?1 ORDER BY id")?;
    let rows = stmt.query_map(params![id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Does another image build on this one: recorded as its parent, or (builds record none,
/// as BuildKit's) starting with all of this image's layers and adding more?
fn has_children(tx: &Connection, id: &Digest) -> Result<bool> {
    Ok(tx
        .query_row(
            "SELECT 1 FROM images WHERE parent = ?1
             UNION ALL
             SELECT 1 FROM image_layers top
               JOIN image_layers other ON other.chain_id = top.chain_id
                 AND other.position = top.position AND other.image_id != top.image_id
               WHERE top.image_id = ?1
                 AND top.position = (SELECT MAX(position) FROM image_layers WHERE image_id = ?1)
                 AND EXISTS (SELECT 1 FROM image_layers more
                   WHERE more.image_id = other.image_id AND more.position > top.position)
             LIMIT 1",
            [id.to_string()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}
