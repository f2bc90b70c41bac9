//! Export: the target stage's chain of layers + its evolved config → layer, config and
//! manifest blobs in the store, tagged; then any extra `--output`s.
//!
//! Layer blobs are made here, not when a step runs: a step only commits its snapshot (a
//! directory), and most layers of a multi-stage build are never exported. For each layer of
//! the exported image the store is asked first whether an earlier export made that
//! snapshot's blob the same way (`Lease::use_snapshot_layers`); the others are tarred (and
//! compressed, with `--compression`) in parallel, and remembered on their snapshots.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln_store::{Digest, LayerRecord, NewImage};

use crate::error::{BuildError, Result};
use crate::event::Event;
use crate::export::outputs::Cancellable;
use crate::options::{LayerCompression, Output};
use crate::state::{Build, BuildOutcome, LayerRef, StepResult};

const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// How this build makes a layer blob from a directory: the key under which the store
/// remembers the blob made from a snapshot (`Lease::use_snapshot_layers`). The tar depends on
/// `SOURCE_DATE_EPOCH` (mtimes are clamped) and the blob on the compression; `tar1` names
/// the tar writer's format, so a change that alters its bytes can start afresh.
fn blob_variant(b: &Build<'_>) -> String {
    let compression = match b.opts.compression {
        LayerCompression::Uncompressed => "none",
        LayerCompression::Gzip => "gzip",
        LayerCompression::Zstd => "zstd",
    };
    match b.opts.source_date_epoch {
        Some(e) => format!("tar1;{compression};epoch={e}"),
        None => format!("tar1;{compression}"),
    }
}

/// The blob of every layer of `chain`, bottom first, each protected by the build's lease.
/// Base-image layers have theirs; a layer a step made gets the one an earlier export made
/// from its snapshot the same way, or a new one. New ones are made in parallel (at most
/// `--jobs` at once): they are independent.
pub(crate) fn layer_blobs(b: &Build<'_>, chain: &[LayerRef]) -> Result<Vec<LayerRecord>> {
    let variant = blob_variant(b);
    let built: Vec<&str> = chain
        .iter()
        .filter(|l| l.blob.is_none())
        .map(|l| l.snapshot.as_str())
        .collect();
    let known: Vec<Digest> = chain
        .iter()
        .filter_map(|l| l.blob.as_ref().map(|r| r.blob))
        .collect();
    // One transaction protects every blob this export reuses.
    let mut found = b
        .lease
        .use_snapshot_layers(&built, &variant, &known)?
        .into_iter();
    let mut out: Vec<Option<LayerRecord>> = Vec::with_capacity(chain.len());
    let mut missing = Vec::new();
    for (i, l) in chain.iter().enumerate() {
        let rec = match &l.blob {
            Some(rec) => Some(rec.clone()),
            None => found.next().flatten(),
        };
        if rec.is_none() {
            missing.push(i);
        }
        out.push(rec);
    }
    if !missing.is_empty() {
        let made: Mutex<Vec<(usize, Result<LayerRecord>)>> = Mutex::new(Vec::new());
        let next = AtomicUsize::new(0);
        let workers = b.opts.jobs.clamp(1, missing.len());
        std::thread::scope(|sc| {
            for _ in 0..workers {
                sc.spawn(|| {
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = missing.get(k) else { break };
                        let r = make_layer_blob(b, &chain[i], &variant);
                        let failed = r.is_err();
                        made.lock().unwrap().push((i, r));
                        if failed {
                            // Let the other workers stop early too.
                            next.store(missing.len(), Ordering::Relaxed);
                            break;
                        }
                    }
                });
            }
        });
        let mut made = made.into_inner().unwrap();
        made.sort_by_key(|(i, _)| *i);
        for (i, r) in made {
            out[i] = Some(r?);
        }
    }
    Ok(out
        .into_iter()
        .map(|l| l.expect("every layer has a blob"))
        .collect())
}

/// Tar (and compress) a snapshot's directory into a new blob, hashing every byte once, and
/// remember it on the snapshot.
fn make_layer_blob(b: &Build<'_>, layer: &LayerRef, variant: &str) -> Result<LayerRecord> {
    let dir = &layer.dir;
    let compression = match b.opts.compression {
        LayerCompression::Uncompressed => kiln_snapshot::Compression::None,
        LayerCompression::Gzip => kiln_snapshot::Compression::Gzip,
        LayerCompression::Zstd => kiln_snapshot::Compression::Zstd,
    };
    let eopts = kiln_snapshot::ExportOptions {
        compression,
        tar: kiln_snapshot::TarOptions {
            source_date_epoch: b.opts.source_date_epoch,
        },
        ..Default::default()
    };
    // export_layer hashes exactly the bytes it writes (the blob digest; for an uncompressed
    // layer that is also the diff id), so the store need not hash them again.
    let mut w = b.store.blob_writer_prehashed()?;
    // A signal stops the write; dropping the writer removes the partial blob.
    let info = kiln_snapshot::export_layer(
        dir,
        &eopts,
        &mut Cancellable {
            inner: &mut w,
            cancel: b.cancel,
        },
    )
    .map_err(|e| {
        if b.cancel.load(Ordering::SeqCst) {
            BuildError::Cancelled
        } else {
            BuildError::Other(format!("exporting layer {}: {e}", dir.display()))
        }
    })?;
    let blob = w.finish_prehashed(info.digest)?.commit(&b.lease, None)?;
    let rec = LayerRecord {
        blob: blob.digest,
        diff_id: info.diff_id,
        media_type: info.media_type().to_string(),
        compressed_size: blob.size,
        uncompressed_size: info.uncompressed_size,
    };
    b.store
        .record_snapshot_layer(&layer.snapshot, variant, &rec)?;
    Ok(rec)
}

/// RFC 3339 UTC for unix seconds (no external time crate needed).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Config and manifest blobs: a rebuild from the cache makes the same bytes, so skip the
/// write (and its fsync) when the blob is already there.
fn put_small_blob(b: &Build<'_>, bytes: &[u8]) -> Result<kiln_store::BlobInfo> {
    let d = Digest::of(bytes);
    if b.store.has_blob(&d) {
        b.lease.protect(kiln_store::RefKind::Blob, &d.to_string())?;
        if b.store.has_blob(&d) {
            return Ok(kiln_store::BlobInfo {
                digest: d,
                size: bytes.len() as u64,
            });
        }
    }
    b.store
        .put_blob(&b.lease, bytes, None)
        .map_err(BuildError::from)
}

pub fn export(b: &Build<'_>, results: &[StepResult]) -> Result<BuildOutcome> {
    let t = std::time::Instant::now();
    let stage = b
        .plan
        .stage(b.plan.target)
        .ok_or_else(|| BuildError::Other("target stage was not planned".into()))?;
    let last = &results[stage.last_step];
    let mut config = stage.config.clone();
    // SOURCE_DATE_EPOCH, else when the newest step of the image ran (so a rebuild from the
    // cache gives the same image ID), else now.
    let now = match (b.opts.source_date_epoch, last.created) {
        (Some(e), _) => e,
        (None, c) if c > 0 => c,
        _ => crate::state::unix_now(),
    };
    let created = rfc3339(now);
    config.created = Some(created.clone());
    // Metadata-only entries of this build get the image's time, as BuildKit's exporter gives them.
    for h in config.history.iter_mut().filter(|h| h.created.is_none()) {
        h.created = Some(created.clone());
    }
    for (h, s) in config.history.iter_mut().zip(&stage.history_steps) {
        if let Some(s) = s {
            h.empty_layer = !results[*s].made_layer;
            // With SOURCE_DATE_EPOCH every step of this build is dated to it, also one taken
            // from the cache of a build with another epoch (or none).
            let t = b.opts.source_date_epoch.unwrap_or(results[*s].created);
            h.created = Some(if t > 0 { rfc3339(t) } else { created.clone() });
        }
    }
    if !b.opts.labels.is_empty() {
        let labels = config.config.labels.get_or_insert_with(Default::default);
        for (k, v) in &b.opts.labels {
            labels.insert(k.clone(), v.clone());
        }
    }
    // Said when it starts too: a big layer takes seconds to tar and compress.
    b.events.send(Event::Export {
        message: "exporting layers".into(),
        elapsed: None,
    });
    let layers = layer_blobs(b, &last.chain)?;
    b.events.send(Event::Export {
        message: "exporting layers".into(),
        elapsed: Some(t.elapsed()),
    });
    let t = std::time::Instant::now();
    config.rootfs.kind = "layers".into();
    config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let config_bytes = serde_json::to_vec(&config).map_err(|source| BuildError::Encode {
        what: "the image config",
        source,
    })?;
    let cfg = put_small_blob(b, &config_bytes)?;
    let layers_json: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            serde_json::json!({"mediaType": l.media_type, "digest": l.blob.to_string(), "size": l.compressed_size})
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": cfg.digest.to_string(), "size": cfg.size},
        "layers": layers_json,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|source| BuildError::Encode {
        what: "the manifest",
        source,
    })?;
    let man = put_small_blob(b, &manifest_bytes)?;
    let new = NewImage {
        manifest_digest: man.digest,
        manifest_media_type: MANIFEST_MEDIA_TYPE.into(),
        config_digest: cfg.digest,
        layers: layers.clone(),
        created: Some(now),
        architecture: config.architecture.clone(),
        os: config.os.clone(),
        parent: None,
    };
    let tags: Vec<String> = b
        .opts
        .tags
        .iter()
        .map(|t| {
            kiln_image::ImageRef::parse(t)
                .map(|r| r.to_string())
                .map_err(|e| BuildError::Other(format!("invalid tag {t:?}: {e}")))
        })
        .collect::<Result<_>>()?;
    if b.cancel.load(Ordering::SeqCst) {
        return Err(BuildError::Cancelled);
    }
    b.store.record_image(&new, &tags)?;
    let image_id = cfg.digest.to_string();
    b.events.send(Event::Export {
        message: format!("writing image {image_id}"),
        elapsed: Some(t.elapsed()),
    });
    for tag in &b.opts.tags {
        // As docker names it: normalized, without a `:latest` the user did not write.
        let name = kiln_image::ImageRef::parse_named(tag)
            .map(|r| r.to_string())
            .unwrap_or_else(|_| tag.clone());
        b.events.send(Event::Export {
            message: format!("naming to {name}"),
            elapsed: None,
        });
    }
    for o in &b.opts.outputs {
        write_output(b, o, &image_id, last, &layers).map_err(|e| {
            if b.cancel.load(Ordering::SeqCst) {
                BuildError::Cancelled
            } else {
                e
            }
        })?;
    }
    Ok(BuildOutcome {
        image_id,
        manifest_digest: man.digest.to_string(),
        tags,
        cached: 0,
        executed: 0,
    })
}

fn write_output(
    b: &Build<'_>,
    o: &Output,
    image_id: &str,
    last: &StepResult,
    layers: &[LayerRecord],
) -> Result<()> {
    let t = std::time::Instant::now();
    match o {
        Output::Image => return Ok(()),
        Output::Docker(dest) | Output::Oci(dest) => {
            let (format, kind) = if matches!(o, Output::Docker(_)) {
                ("docker", kiln_store::SaveFormat::Docker)
            } else {
                ("oci", kiln_store::SaveFormat::Oci)
            };
            crate::outputs::save_archive(b.store, image_id, &b.opts.tags, kind, dest, b.cancel)?;
            b.events.send(Event::Export {
                message: format!("exporting to {format} archive {}", dest.display()),
                elapsed: Some(t.elapsed()),
            });
        }
        Output::Local(dir) => {
            crate::outputs::write_local(b, layers, dir)?;
            b.events.send(Event::Export {
                message: format!("copying files to {}", dir.display()),
                elapsed: Some(t.elapsed()),
            });
        }
        Output::Tar(file) => {
            crate::outputs::write_tar(b, &last.chain, file)?;
            b.events.send(Event::Export {
                message: format!("writing tar {}", file.display()),
                elapsed: Some(t.elapsed()),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_known_values() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
