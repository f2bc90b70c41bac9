//! `--cache-from`: caches other machines exported ([`crate::cache_artifact`]), read when the
//! build starts (manifests and configs only: a few kilobytes), consulted when the store's own
//! cache misses.
//!
//! A remote hit is lazy: its layer enters the chain as a pending [`LayerRef`] (snapshot key
//! `remote:KEY`, no directory), and only a step that mounts the chain, a `COPY --from` that
//! reads it, or the export turns it into a snapshot ([`RemoteCache::ensure_local`]): the blob
//! is downloaded into the store's tmp/, checked against its digest (refused, and nothing kept,
//! when it does not match), decompressed into a blob that must be the record's diff ID,
//! unpacked into a snapshot, and recorded as a local cache record, so the next build hits
//! locally. The tar's bytes are the exporter's, so the image's layers, config and manifest
//! are the exporter's too.
//!
//! A source that cannot be read (unreachable, no such tag, not a kiln cache) is a warning, as
//! in BuildKit: the build goes on without it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use kiln_image::Compression;
use kiln_registry::Settings;
use kiln_store::{LayerRecord, Lease, RefKind, Store};

use crate::cache_artifact::location::Source;
use crate::cache_artifact::{
    CONFIG_LIMIT, CONFIG_MEDIA_TYPE, CacheConfig, CacheError, CacheManifest, Descriptor,
    INLINE_KEY, Record, parse_config,
};
use crate::cache_options::CacheImport;
use crate::error::{BuildError, Result};
use crate::key::KeyInputs;
use crate::rootfs::{CacheRecord, LayerRef};

/// Snapshot-key prefix of a layer that is still in a remote cache.
const PENDING: &str = "remote:";

/// A record found in a source, with its layer's blob.
struct Found {
    source: usize,
    record: Record,
    blob: Option<Descriptor>,
}

/// A cache mount's contents in a source.
struct FoundMount {
    source: usize,
    blob: Descriptor,
    entry: crate::cache_artifact::CacheMount,
}

type Slot = Arc<OnceLock<std::result::Result<LayerRef, Arc<CacheError>>>>;

/// The caches `--cache-from` names, as read at the start of the build.
#[derive(Default)]
pub(crate) struct RemoteCache {
    sources: Vec<Source>,
    records: HashMap<String, Found>,
    stage_files: HashMap<String, String>,
    /// By directory name in the store's `cache-mounts-v1/`.
    mounts: HashMap<String, FoundMount>,
    /// Layers made local, by cache key (the first step that needs one makes it; others wait).
    local: Mutex<HashMap<String, Slot>>,
    /// Cache mounts restored by this build (a mount is restored once).
    restored: Mutex<Vec<String>>,
}

/// Where remote layers become local: the build's store and lease, and its
/// `SOURCE_DATE_EPOCH` (which decides whether an imported tar is this build's layer blob).
pub(crate) struct Local<'a> {
    pub store: &'a Store,
    pub lease: &'a Lease,
    pub epoch: Option<i64>,
}

/// A remote record's result, as a cache hit gives it.
pub(crate) struct RemoteHit {
    pub created: i64,
    pub layer: Option<LayerRef>,
}

impl RemoteCache {
    /// Reads every source; returns the cache and one warning per source that could not be
    /// read. Earlier sources win where two have the same key.
    pub fn load(imports: &[CacheImport]) -> (RemoteCache, Vec<String>) {
        let mut rc = RemoteCache::default();
        let mut warnings = Vec::new();
        if imports.is_empty() {
            return (rc, warnings);
        }
        let settings = Settings::from_env();
        for imp in imports {
            match read_source(imp, &settings) {
                Ok((source, config, layers)) => {
                    let si = rc.sources.len();
                    rc.add(si, &source.name, config, &layers, &mut warnings);
                    rc.sources.push(source);
                }
                Err(e) => warnings.push(format!("failed to import cache {}: {e}", name_of(imp))),
            }
        }
        (rc, warnings)
    }

    fn add(
        &mut self,
        si: usize,
        name: &str,
        config: CacheConfig,
        layers: &[Descriptor],
        warnings: &mut Vec<String>,
    ) {
        let blob = |i: usize| layers.get(i).cloned();
        for r in config.records {
            let desc = match &r.layer {
                Some(l) => match blob(l.blob) {
                    Some(d) => Some(d),
                    None => {
                        warnings.push(format!(
                            "cache {name}: record {} names layer {} of {}: skipped",
                            r.key,
                            l.blob,
                            layers.len()
                        ));
                        continue;
                    }
                },
                None => None,
            };
            self.records.entry(r.key.clone()).or_insert(Found {
                source: si,
                record: r,
                blob: desc,
            });
        }
        for s in config.stage_files {
            self.stage_files.entry(s.record).or_insert(s.digest);
        }
        for m in config.cache_mounts {
            if let Some(d) = blob(m.blob) {
                self.mounts.entry(m.dir.clone()).or_insert(FoundMount {
                    source: si,
                    blob: d,
                    entry: m,
                });
            }
        }
    }

    /// The record of `key`, if a source has it.
    pub fn lookup(&self, key: &str) -> Option<RemoteHit> {
        let f = self.records.get(key)?;
        Some(RemoteHit {
            created: f.record.created,
            layer: f.record.layer.as_ref().map(|_| LayerRef {
                snapshot: format!("{PENDING}{key}"),
                dir: Default::default(),
                blob: None,
            }),
        })
    }

    /// A `stage-files:` digest a source recorded.
    pub fn stage_files(&self, record: &str) -> Option<String> {
        self.stage_files.get(record).cloned()
    }

    /// `chain` with every pending layer made local (downloaded, checked, unpacked).
    pub fn ensure_local(
        &self,
        b: &Local<'_>,
        chain: &Arc<Vec<LayerRef>>,
    ) -> Result<Arc<Vec<LayerRef>>> {
        if !chain.iter().any(is_pending) {
            return Ok(chain.clone());
        }
        let mut out = Vec::with_capacity(chain.len());
        for l in chain.iter() {
            if !is_pending(l) {
                out.push(l.clone());
                continue;
            }
            let key = &l.snapshot[PENDING.len()..];
            let slot = self
                .local
                .lock()
                .unwrap()
                .entry(key.to_string())
                .or_default()
                .clone();
            let r = slot.get_or_init(|| self.materialize(b, key).map_err(Arc::new));
            match r {
                Ok(local) => out.push(local.clone()),
                Err(e) => return Err(BuildError::CacheImport(e.clone())),
            }
        }
        Ok(Arc::new(out))
    }

    /// `l` as made local, if it was a pending layer this build has fetched; else `l`.
    pub fn resolved(&self, l: &LayerRef) -> LayerRef {
        if !is_pending(l) {
            return l.clone();
        }
        let slot = self
            .local
            .lock()
            .unwrap()
            .get(&l.snapshot[PENDING.len()..])
            .cloned();
        match slot.as_ref().and_then(|s| s.get()) {
            Some(Ok(local)) => local.clone(),
            _ => l.clone(),
        }
    }

    /// Download, check and unpack the layer of record `key`; record it locally.
    fn materialize(&self, b: &Local<'_>, key: &str) -> std::result::Result<LayerRef, CacheError> {
        let f = self
            .records
            .get(key)
            .expect("pending layers come from records");
        let source = &self.sources[f.source];
        let entry = f.record.layer.as_ref().expect("pending layers have one");
        let desc = f.blob.as_ref().expect("records with a layer have its blob");
        // The blob as served, in tmp/: nothing is visible before its digest is checked.
        let mut w = b.store.blob_writer()?;
        source.copy_blob(desc, &mut w)?;
        let wire = w.finish()?;
        // Its tar, as a blob of its own: the one an image of this layer lists.
        let compression =
            Compression::from_media_type(&desc.media_type).map_err(|e| CacheError::Invalid {
                from: source.name.clone(),
                reason: format!("layer {}: {e}", desc.digest),
            })?;
        let file = std::fs::File::open(wire.path())
            .map_err(|e| CacheError::io("opening", wire.path(), e))?;
        let mut tar = compression
            .decoder(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
            .map_err(|e| CacheError::io("decompressing", wire.path(), e))?;
        let mut tw = b.store.blob_writer()?;
        std::io::copy(&mut tar, &mut tw)
            .map_err(|e| CacheError::io("decompressing", wire.path(), e))?;
        drop(wire);
        let pending = tw.finish()?;
        if pending.info().digest != entry.diff_id {
            return Err(CacheError::DiffId {
                from: source.name.clone(),
                digest: desc.digest.to_string(),
                want: entry.diff_id.to_string(),
                got: pending.info().digest.to_string(),
            });
        }
        let info = pending.commit(b.lease, Some(&entry.diff_id))?;
        let dir = b.store.prepare_snapshot_dir()?;
        let blob = b.store.open_blob(&info.digest)?;
        if let Err(e) = kiln_snapshot::extract_layer(
            std::io::BufReader::with_capacity(1 << 20, blob),
            &dir,
            &kiln_snapshot::ExtractOptions::default(),
        ) {
            let _ = kiln_snapshot::remove_dir_all(&dir);
            return Err(CacheError::Invalid {
                from: source.name.clone(),
                reason: format!("unpacking layer {}: {e}", desc.digest),
            });
        }
        let mut snapshot = format!("step:{key}");
        if b.store.has_snapshot(&snapshot)? {
            snapshot = format!("step:{key}:{}.remote", std::process::id());
        }
        let snap = b.store.commit_snapshot(b.lease, &snapshot, None, &dir)?;
        let rec = LayerRecord {
            blob: info.digest,
            diff_id: entry.diff_id,
            media_type: Compression::None.layer_media_type(true).to_string(),
            compressed_size: info.size,
            uncompressed_size: info.size,
        };
        // This build would write the same tar: the exporter's bytes are its layer blob.
        if entry.tar == crate::cache_artifact::tar_variant(b.epoch) {
            b.store.record_snapshot_layer(&snapshot, &entry.tar, &rec)?;
        }
        let layer = LayerRef {
            snapshot: snapshot.clone(),
            dir: snap.path,
            blob: None,
        };
        let value = serde_json::to_vec(&CacheRecord {
            layer: Some(layer.clone()),
            created: f.record.created,
        })
        .expect("a cache record encodes");
        b.store
            .cache_put(key, &value, &[(RefKind::Snapshot, snapshot.as_str())])?;
        Ok(layer)
    }

    /// Restores the cache mounts of step `i` that are missing or empty in the store from a
    /// source that has them (`cache-mounts=true` on the exporting side).
    pub fn restore_cache_mounts(
        &self,
        b: &Local<'_>,
        keys: &dyn KeyInputs,
        r: &crate::plan::RunOp,
    ) -> Result<()> {
        if self.mounts.is_empty() {
            return Ok(());
        }
        for (_, dir) in crate::exec::run::cache_mount_dirs(b.store, keys, r)? {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let Some(m) = self.mounts.get(&name) else {
                continue;
            };
            {
                let mut done = self.restored.lock().unwrap();
                if done.contains(&name) {
                    continue;
                }
                done.push(name.clone());
            }
            if !is_empty_or_missing(&dir) {
                continue;
            }
            self.restore_mount(b, m, &dir)
                .map_err(|e| BuildError::CacheImport(Arc::new(e)))?;
        }
        Ok(())
    }

    fn restore_mount(
        &self,
        b: &Local<'_>,
        m: &FoundMount,
        dir: &Path,
    ) -> std::result::Result<(), CacheError> {
        let source = &self.sources[m.source];
        let mut w = b.store.blob_writer()?;
        source.copy_blob(&m.blob, &mut w)?;
        let wire = w.finish()?;
        let compression =
            Compression::from_media_type(&m.blob.media_type).map_err(|e| CacheError::Invalid {
                from: source.name.clone(),
                reason: format!("cache mount {}: {e}", m.entry.id),
            })?;
        let file = std::fs::File::open(wire.path())
            .map_err(|e| CacheError::io("opening", wire.path(), e))?;
        let tar = compression
            .decoder(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
            .map_err(|e| CacheError::io("decompressing", wire.path(), e))?;
        let parent = dir.parent().expect("cache mounts are below the store");
        std::fs::create_dir_all(parent).map_err(|e| CacheError::io("creating", parent, e))?;
        let tmp = parent.join(format!(
            ".import-{}-{}",
            std::process::id(),
            dir.file_name().unwrap_or_default().to_string_lossy()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp).map_err(|e| CacheError::io("creating", &tmp, e))?;
        if let Err(e) = kiln_snapshot::extract_layer(
            std::io::BufReader::new(tar),
            &tmp,
            &kiln_snapshot::ExtractOptions::default(),
        ) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(CacheError::Invalid {
                from: source.name.clone(),
                reason: format!("unpacking cache mount {}: {e}", m.entry.id),
            });
        }
        // The directory's own mode and owner, as the exporter's was, without setuid, setgid,
        // sticky or group/other write: the directory is on this host, under the store, and
        // the artifact is whoever pushed it.
        let e = &m.entry;
        let owned = (|| {
            if let Some(mode) = e.mode {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode & 0o755))
                    .map_err(|err| CacheError::io("chmod", &tmp, err))?;
            }
            if e.uid.is_some() || e.gid.is_some() {
                std::os::unix::fs::chown(&tmp, e.uid, e.gid)
                    .map_err(|err| CacheError::io("chown", &tmp, err))?;
            }
            Ok(())
        })();
        if let Err(err) = owned {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(err);
        }
        // An empty directory left by an earlier build gives way; a full one is kept.
        let _ = std::fs::remove_dir(dir);
        if std::fs::rename(&tmp, dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Ok(())
    }
}

fn is_pending(l: &LayerRef) -> bool {
    l.snapshot.starts_with(PENDING)
}

fn is_empty_or_missing(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut rd) => rd.next().is_none(),
        Err(_) => true,
    }
}

fn name_of(imp: &CacheImport) -> String {
    match imp {
        CacheImport::Registry { reference } => reference.clone(),
        CacheImport::Local { src, .. } => src.display().to_string(),
    }
}

/// A source, its cache config and the blobs its records index: a kiln cache artifact's
/// layers, or, for an image with inline records, the image's layers.
fn read_source(
    imp: &CacheImport,
    settings: &Settings,
) -> std::result::Result<(Source, CacheConfig, Vec<Descriptor>), CacheError> {
    let (source, manifest) = Source::open(imp, settings)?;
    let m: CacheManifest = serde_json::from_slice(&manifest).map_err(|e| CacheError::Invalid {
        from: source.name.clone(),
        reason: format!("not a kiln cache or image manifest: {e}"),
    })?;
    let config_bytes = source.read_small(&m.config, CONFIG_LIMIT)?;
    let config = if m.config.media_type == CONFIG_MEDIA_TYPE {
        parse_config(&source.name, &config_bytes)?
    } else {
        // An image: its config may carry inline records.
        let v: serde_json::Value =
            serde_json::from_slice(&config_bytes).map_err(|e| CacheError::Invalid {
                from: source.name.clone(),
                reason: format!("image config: {e}"),
            })?;
        let inline = v.get(INLINE_KEY).ok_or_else(|| CacheError::Invalid {
            from: source.name.clone(),
            reason: "neither a kiln cache nor an image with inline cache records".into(),
        })?;
        let bytes = serde_json::to_vec(inline).expect("a JSON value encodes");
        parse_config(&source.name, &bytes)?
    };
    Ok((source, config, m.layers))
}
