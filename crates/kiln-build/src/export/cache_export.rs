//! `--cache-to`: the build's cache records ([`crate::export::cache_records`]) written as
//! kiln's cache artifact ([`crate::cache_artifact`]) to a registry or an OCI layout directory,
//! after the image is in the store (`type=inline` goes into the image's config instead).
//!
//! `mode=min` writes the records of the steps the exported image is made of (its stage, and
//! the stages it starts `FROM`); `mode=max` those of every step the build ran or hit. Each
//! record's layer goes as a blob compressed as `compression=` asks (gzip by default), made
//! once per snapshot and remembered like any export's. With `cache-mounts=true` the
//! directories of the build's `RUN --mount=type=cache` mounts go too, a tar each.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kiln_image::Compression;
use kiln_registry::Settings;

use crate::cache_artifact::location::Target;
use crate::cache_artifact::{
    ARTIFACT_TYPE, CONFIG_MEDIA_TYPE, CacheConfig, CacheMount, Descriptor, LayerEntry,
    MANIFEST_MEDIA_TYPE, Record, VERSION,
};
use crate::cache_options::{CacheDest, CacheExport};
use crate::error::{BuildError, Result};
use crate::event::Event;
use crate::export::image::image_compression;
use crate::options::{CompressionSpec, LayerCompression};
use crate::plan::Op;
use crate::rootfs::LayerRef;
use crate::state::Build;

/// Writes every registry and local `--cache-to`. A failure is an error naming the
/// destination, or a warning (returned) with `ignore-error=true`.
pub(crate) fn export_caches(b: &Build<'_>) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for c in &b.opts.cache_to {
        if matches!(c.dest, CacheDest::Inline) {
            continue;
        }
        let t = std::time::Instant::now();
        let what = describe(&c.dest);
        b.events.send(Event::Export {
            message: format!("exporting cache to {what}"),
            elapsed: None,
        });
        match export_one(b, c) {
            // The next message closes the open "exporting cache to" line, as BuildKit's
            // sub-steps follow each other.
            Ok(digest) => b.events.send(Event::Export {
                message: format!("writing cache manifest {digest}"),
                elapsed: Some(t.elapsed()),
            }),
            Err(e) if c.ignore_error => {
                warnings.push(format!("failed to export cache to {what}: {e}"));
            }
            Err(e) => {
                return Err(BuildError::CacheExport {
                    dest: what,
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(warnings)
}

fn describe(dest: &CacheDest) -> String {
    match dest {
        CacheDest::Registry { reference } => format!("registry {reference}"),
        CacheDest::Local { dest, .. } => format!("local directory {}", dest.display()),
        CacheDest::Inline => "the image config".into(),
    }
}

/// One artifact: layer blobs, cache mounts, config, then the manifest under the tag.
fn export_one(b: &Build<'_>, c: &CacheExport) -> Result<kiln_image::Digest> {
    let recs = crate::export::cache_records::records(b, c.mode);
    // Layers still in a remote cache (this build hit them there) are made local first.
    let pending: Vec<LayerRef> = recs.iter().filter_map(|(_, r)| r.layer.clone()).collect();
    let chain = b
        .remote_cache
        .ensure_local(&b.cache_local(), &Arc::new(pending))?;
    let spec = CompressionSpec {
        kind: match c.compression {
            Compression::None => LayerCompression::Uncompressed,
            Compression::Gzip => LayerCompression::Gzip,
            Compression::Zstd => LayerCompression::Zstd,
        },
        level: c.compression_level,
        force: true,
    };
    let blobs = crate::export::image::layer_blobs(b, &chain, &spec)?;
    let mut layers: Vec<Descriptor> = Vec::new();
    let mut index: BTreeMap<kiln_image::Digest, usize> = BTreeMap::new();
    let mut add = |layers: &mut Vec<Descriptor>, d: Descriptor| -> usize {
        *index.entry(d.digest).or_insert_with(|| {
            layers.push(d);
            layers.len() - 1
        })
    };
    let tar = crate::cache_artifact::tar_variant(b.opts.source_date_epoch);
    let mut records = Vec::with_capacity(recs.len());
    let mut blob_iter = blobs.iter();
    for (key, rec) in &recs {
        let layer = match &rec.layer {
            None => None,
            Some(_) => {
                let l = blob_iter.next().expect("a blob per layer");
                let media = Compression::from_media_type(&l.media_type)
                    .map_err(|source| BuildError::LayerMediaType {
                        blob: l.blob.to_string(),
                        source,
                    })?
                    .layer_media_type(true)
                    .to_string();
                let i = add(
                    &mut layers,
                    Descriptor {
                        media_type: media,
                        digest: l.blob,
                        size: l.compressed_size,
                    },
                );
                Some(LayerEntry {
                    blob: i,
                    diff_id: l.diff_id,
                    uncompressed_size: l.uncompressed_size,
                    tar: tar.clone(),
                })
            }
        };
        records.push(Record {
            key: key.clone(),
            created: rec.created,
            layer,
        });
    }
    let target = Target::open(&c.dest, &Settings::from_env())?;
    let scratch = b.store.prepare_snapshot_dir()?;
    let r = (|| -> Result<kiln_image::Digest> {
        for l in &layers {
            target.put_blob(&l.digest, &b.store.blob_path(&l.digest))?;
        }
        let mut mounts = Vec::new();
        if c.cache_mounts {
            for (id, dir, meta, pending) in cache_mount_blobs(b, &spec)? {
                let info = pending.info();
                target.put_blob(&info.digest, pending.path())?;
                let i = add(
                    &mut layers,
                    Descriptor {
                        media_type: image_compression(spec.kind).layer_media_type(true).into(),
                        digest: info.digest,
                        size: info.size,
                    },
                );
                use std::os::unix::fs::MetadataExt;
                mounts.push(CacheMount {
                    id,
                    dir,
                    blob: i,
                    mode: Some(meta.mode() & 0o7777),
                    uid: Some(meta.uid()),
                    gid: Some(meta.gid()),
                });
            }
        }
        let config = CacheConfig {
            version: VERSION,
            mode: c.mode.name().into(),
            records,
            stage_files: crate::export::cache_records::stage_files(b),
            cache_mounts: mounts,
        };
        let config_bytes = serde_json::to_vec(&config).map_err(|source| BuildError::Encode {
            what: "the cache config",
            source,
        })?;
        let config_digest = target.put_bytes(&config_bytes, &scratch)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": {
                "mediaType": CONFIG_MEDIA_TYPE,
                "digest": config_digest.to_string(),
                "size": config_bytes.len(),
            },
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|source| BuildError::Encode {
            what: "the cache manifest",
            source,
        })?;
        Ok(target.put_manifest(&bytes, &scratch)?)
    })();
    let _ = kiln_snapshot::remove_dir_all(&scratch);
    r
}

/// The build's cache mounts that have content, each as a tar in the store's tmp/ (removed
/// when the returned blob is dropped): (id, directory name, its metadata, blob).
fn cache_mount_blobs(
    b: &Build<'_>,
    spec: &CompressionSpec,
) -> Result<Vec<(String, String, std::fs::Metadata, kiln_store::PendingBlob)>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for step in &b.plan.steps {
        let Op::Run(r) = &step.op else { continue };
        for (id, dir) in crate::exec::run::cache_mount_dirs(b.store, b, r)? {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if !seen.insert(name.clone()) {
                continue;
            }
            let has_content = std::fs::read_dir(&dir)
                .map(|mut rd| rd.next().is_some())
                .unwrap_or(false);
            if !has_content {
                continue;
            }
            let meta = std::fs::metadata(&dir).map_err(|e| BuildError::io("reading", &dir, e))?;
            let mut w = b.store.blob_writer_prehashed()?;
            let info = kiln_snapshot::export_layer(
                &dir,
                &kiln_snapshot::ExportOptions {
                    compression: image_compression(spec.kind),
                    level: spec.level,
                    ..Default::default()
                },
                &mut w,
            )
            .map_err(|e| BuildError::ExportLayer {
                dir: dir.clone(),
                source: Box::new(e),
            })?;
            out.push((id, name, meta, w.finish_prehashed(info.digest)?));
        }
    }
    Ok(out)
}
