//! Export: the target stage's chain of layers + its evolved config → layer, config and
//! manifest blobs in the store, tagged; then any extra `--output`s.
//!
//! Layer blobs are made here, not when a step runs: a step only commits its snapshot (a
//! directory), and most layers of a multi-stage build are never exported. For each layer of
//! the exported image the store is asked first whether an earlier export made that
//! snapshot's blob the same way (`Lease::use_snapshot_layers`); the others are tarred (and
//! compressed, with `--compression`) in parallel, and remembered on their snapshots.
//!
//! Each image output has its own compression (`compression=`, `compression-level=`,
//! `force-compression=`): an archive gets layer blobs made (or base-image blobs transcoded)
//! for it, remembered the same way, and a manifest of its own over the same config.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln_store::{Digest, LayerRecord, NewImage};

use crate::error::{BuildError, Result};
use crate::event::Event;
use kiln_image::Compression;
use kiln_image::compression::media_types;

use crate::export::outputs::{ArchiveKind, Cancellable};
use crate::options::{ArchiveOutput, CompressionSpec, LayerCompression, Output};
use crate::rootfs::{LayerRef, StepResult};
use crate::state::{Build, BuildOutcome, TargetImage};

const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

pub(crate) fn image_compression(c: LayerCompression) -> Compression {
    match c {
        LayerCompression::Uncompressed => Compression::None,
        LayerCompression::Gzip => Compression::Gzip,
        LayerCompression::Zstd => Compression::Zstd,
    }
}

/// How this build makes a layer blob from a directory: the key under which the store
/// remembers the blob made from a snapshot (`Lease::use_snapshot_layers`). The tar depends on
/// `SOURCE_DATE_EPOCH` (mtimes are clamped) and the blob on the compression and its level;
/// `tar1` names the tar writer's format, so a change that alters its bytes can start afresh.
fn blob_variant(b: &Build<'_>, spec: &CompressionSpec) -> String {
    let compression = match spec.kind {
        LayerCompression::Uncompressed => "none",
        LayerCompression::Gzip => "gzip",
        LayerCompression::Zstd => "zstd",
    };
    let mut v = format!("tar1;{compression}");
    if let Some(l) = spec.level {
        v.push_str(&format!(";level={l}"));
    }
    if let Some(e) = b.opts.source_date_epoch {
        v.push_str(&format!(";epoch={e}"));
    }
    v
}

/// The key under which a base-image layer's blob transcoded to `spec` is remembered on its
/// snapshot: the result depends only on the layer's tar (its diff ID), the format and level.
fn transcode_variant(spec: &CompressionSpec) -> String {
    match spec.level {
        Some(l) => format!("xcode1;{};level={l}", spec.kind.name()),
        None => format!("xcode1;{}", spec.kind.name()),
    }
}

/// Whether a base-image layer stored compressed as `have` gets a new blob for `spec`.
/// BuildKit's rule: a layer compressed in another format is kept unless `force-compression`;
/// one in the same format is kept at any level. kiln adds: an uncompressed layer is one that
/// has no compressed blob yet (kiln's store keeps layers uncompressed, as Docker's does), so
/// it gets the asked compression as the layers this build made do.
pub(crate) fn needs_conversion(have: Compression, spec: &CompressionSpec) -> bool {
    let want = image_compression(spec.kind);
    have != want && (spec.force || have == Compression::None)
}

/// What an export does for one layer.
enum Job<'a> {
    /// Tar (and compress) the snapshot's directory.
    Make,
    /// Transcode this stored blob.
    Transcode(&'a LayerRecord),
}

/// The blob of every layer of `chain`, bottom first, compressed as `spec` asks, each
/// protected by the build's lease. A base-image layer keeps its blob or gets a transcoded
/// one ([`needs_conversion`]); a layer a step made gets the one an earlier export made from
/// its snapshot the same way, or a new one. New ones are made in parallel (at most `--jobs`
/// at once): they are independent.
pub(crate) fn layer_blobs(
    b: &Build<'_>,
    chain: &[LayerRef],
    spec: &CompressionSpec,
) -> Result<Vec<LayerRecord>> {
    let variant = blob_variant(b, spec);
    let xvariant = transcode_variant(spec);
    let converts = |rec: &LayerRecord| -> Result<bool> {
        let have = media_compression(rec)?;
        Ok(needs_conversion(have, spec))
    };
    let mut built = Vec::new();
    let mut xcode = Vec::new();
    for l in chain {
        match &l.blob {
            None => built.push(l.snapshot.as_str()),
            Some(rec) if converts(rec)? => xcode.push(l.snapshot.as_str()),
            Some(_) => {}
        }
    }
    // Every base blob is protected: kept ones are exported, converted ones are read.
    let known: Vec<Digest> = chain
        .iter()
        .filter_map(|l| l.blob.as_ref().map(|r| r.blob))
        .collect();
    let mut found = b
        .lease
        .use_snapshot_layers(&built, &variant, &known)?
        .into_iter();
    let mut found_x = if xcode.is_empty() {
        Vec::new()
    } else {
        b.lease.use_snapshot_layers(&xcode, &xvariant, &[])?
    }
    .into_iter();
    let mut out: Vec<Option<LayerRecord>> = Vec::with_capacity(chain.len());
    let mut missing = Vec::new();
    for (i, l) in chain.iter().enumerate() {
        let rec = match &l.blob {
            None => found.next().flatten().ok_or(Job::Make),
            Some(rec) if converts(rec)? => found_x.next().flatten().ok_or(Job::Transcode(rec)),
            Some(rec) => Ok(rec.clone()),
        };
        match rec {
            Ok(rec) => out.push(Some(rec)),
            Err(job) => {
                missing.push((i, job));
                out.push(None);
            }
        }
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
                        let Some((i, job)) = missing.get(k) else {
                            break;
                        };
                        let r = match job {
                            Job::Make => make_layer_blob(b, &chain[*i], spec, &variant),
                            Job::Transcode(src) => {
                                transcode_blob(b, &chain[*i], src, spec, &xvariant)
                            }
                        };
                        let failed = r.is_err();
                        made.lock().unwrap().push((*i, r));
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

fn export_options(b: &Build<'_>, spec: &CompressionSpec) -> kiln_snapshot::ExportOptions {
    kiln_snapshot::ExportOptions {
        compression: image_compression(spec.kind),
        level: spec.level,
        tar: kiln_snapshot::TarOptions {
            source_date_epoch: b.opts.source_date_epoch,
        },
        ..Default::default()
    }
}

/// The compression a layer's media type declares.
fn media_compression(rec: &LayerRecord) -> Result<Compression> {
    Compression::from_media_type(&rec.media_type).map_err(|source| BuildError::LayerMediaType {
        blob: rec.blob.to_string(),
        source,
    })
}

/// An export error, or `Cancelled` when a signal stopped it.
fn export_error(b: &Build<'_>, e: BuildError) -> BuildError {
    if b.cancel.load(Ordering::SeqCst) {
        BuildError::Cancelled
    } else {
        e
    }
}

/// Tar (and compress) a snapshot's directory into a new blob, hashing every byte once, and
/// remember it on the snapshot.
fn make_layer_blob(
    b: &Build<'_>,
    layer: &LayerRef,
    spec: &CompressionSpec,
    variant: &str,
) -> Result<LayerRecord> {
    let dir = &layer.dir;
    let eopts = export_options(b, spec);
    // export_layer hashes exactly the bytes it writes (the blob digest; for an uncompressed
    // layer that is also the diff id), so the store need not hash them again. No fsync: the
    // store syncs it later or re-hashes it after a crash (kiln-store's `blob_sync`).
    let mut w = b.store.blob_writer_prehashed()?.deferred_sync();
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
        export_error(
            b,
            BuildError::ExportLayer {
                dir: dir.clone(),
                source: Box::new(e),
            },
        )
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

/// A base-image layer's stored blob decompressed and compressed again as `spec` asks; the
/// tar read must be the layer's diff ID. Remembered on the layer's snapshot.
fn transcode_blob(
    b: &Build<'_>,
    layer: &LayerRef,
    src: &LayerRecord,
    spec: &CompressionSpec,
    variant: &str,
) -> Result<LayerRecord> {
    let what = |source: std::io::Error| {
        export_error(
            b,
            BuildError::Transcode {
                blob: src.blob.to_string(),
                to: spec.kind.name(),
                source,
            },
        )
    };
    let have = media_compression(src).map_err(|e| export_error(b, e))?;
    let mut f = b.store.open_blob(&src.blob)?;
    let reader = Cancellable {
        inner: &mut f,
        cancel: b.cancel,
    };
    let tar = have
        .decoder(Box::new(std::io::BufReader::with_capacity(1 << 20, reader)))
        .map_err(what)?;
    let mut w = b.store.blob_writer_prehashed()?.deferred_sync();
    let info = kiln_snapshot::compress_tar(
        tar,
        &export_options(b, spec),
        &mut Cancellable {
            inner: &mut w,
            cancel: b.cancel,
        },
    )
    .map_err(what)?;
    if info.diff_id != src.diff_id {
        return Err(export_error(
            b,
            BuildError::TranscodeDiffId {
                blob: src.blob.to_string(),
                to: spec.kind.name(),
                got: info.diff_id.to_string(),
                want: src.diff_id.to_string(),
            },
        ));
    }
    let blob = w.finish_prehashed(info.digest)?.commit(&b.lease, None)?;
    let rec = LayerRecord {
        blob: blob.digest,
        diff_id: info.diff_id,
        media_type: image_compression(spec.kind)
            .layer_media_type(true)
            .to_string(),
        compressed_size: blob.size,
        uncompressed_size: info.uncompressed_size,
    };
    b.store
        .record_snapshot_layer(&layer.snapshot, variant, &rec)?;
    Ok(rec)
}

/// An image manifest over `config` and `layers`, with OCI or docker media types.
fn manifest_json(
    config: &kiln_store::BlobInfo,
    layers: &[LayerRecord],
    oci: bool,
) -> Result<Vec<u8>> {
    let layers_json = layers
        .iter()
        .map(|l| {
            let c = media_compression(l)?;
            Ok(serde_json::json!({
                "mediaType": c.layer_media_type(oci),
                "digest": l.blob.to_string(),
                "size": l.compressed_size,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    let (manifest_type, config_type) = if oci {
        (MANIFEST_MEDIA_TYPE, CONFIG_MEDIA_TYPE)
    } else {
        (media_types::DOCKER_MANIFEST, media_types::DOCKER_CONFIG)
    };
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": config.digest.to_string(), "size": config.size},
        "layers": layers_json,
    });
    serde_json::to_vec(&manifest).map_err(|source| BuildError::Encode {
        what: "the manifest",
        source,
    })
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
/// write when the blob is already there. Not fsynced either, as the layers (an fsync of any
/// new file commits the journal, which writes out what the build left dirty). The ones
/// already stored are protected in one write transaction (a no-op rebuild's config and
/// manifest: one transaction, not two), then looked at again: a collection either saw the
/// lease's rows or had already removed the file, which is then written anew.
fn put_small_blobs<const N: usize>(
    b: &Build<'_>,
    blobs: [&[u8]; N],
) -> Result<[kiln_store::BlobInfo; N]> {
    let digests = blobs.map(Digest::of);
    let present: Vec<String> = digests
        .iter()
        .filter(|d| b.store.has_blob(d))
        .map(|d| d.to_string())
        .collect();
    if !present.is_empty() {
        let targets: Vec<&str> = present.iter().map(String::as_str).collect();
        b.lease.protect_all(kiln_store::RefKind::Blob, &targets)?;
    }
    let mut out = Vec::with_capacity(N);
    for (bytes, d) in blobs.iter().zip(&digests) {
        let kept = present.contains(&d.to_string()) && b.store.has_blob(d);
        out.push(if kept {
            kiln_store::BlobInfo {
                digest: *d,
                size: bytes.len() as u64,
            }
        } else {
            b.store.put_blob_deferred(&b.lease, bytes)?
        });
    }
    Ok(out
        .try_into()
        .unwrap_or_else(|_| unreachable!("one BlobInfo per blob")))
}

/// The target stage's config as the image gets it: dated (SOURCE_DATE_EPOCH, else when the
/// newest step of the image ran, else now; history entries by their steps) and labelled
/// (`--label`). Also returns that time.
fn dated_config(
    b: &Build<'_>,
    stage: &crate::plan::PlannedStage,
    results: &[StepResult],
) -> (crate::plan::config::ImageConfig, i64) {
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
    (config, now)
}

/// "naming to NAME" for each tag, named as docker names it: normalized, without a `:latest`
/// the user did not write.
fn say_names(b: &Build<'_>, tags: &[String]) {
    for tag in tags {
        let name = kiln_image::ImageRef::parse_named(tag)
            .map(|r| r.to_string())
            .unwrap_or_else(|_| tag.clone());
        b.events.send(Event::Export {
            message: format!("naming to {name}"),
            elapsed: None,
        });
    }
}

/// Stores the image of every target: the one `--target` (or the last stage) with the `-t`
/// tags and the `--output`s, or each of several `--target NAME[=TAG]`s with its own tags.
/// (Several platforms: [`crate::export::platforms::export`].)
pub fn export(b: &Build<'_>, results: &[StepResult]) -> Result<BuildOutcome> {
    if b.opts.targets.len() < 2 {
        let target = Target {
            stage: b.plan.target,
            variant: 0,
            name: b.opts.target.clone(),
            tags: &b.opts.tags,
            outputs: &b.opts.outputs,
        };
        return export_target(b, results, &target);
    }
    let mut done = Vec::new();
    for (spec, &stage) in b.opts.targets.iter().zip(&b.plan.targets) {
        b.events.send(Event::Export {
            message: format!("exporting target {}", spec.name),
            elapsed: None,
        });
        let target = Target {
            stage,
            variant: 0,
            name: Some(spec.name.clone()),
            tags: &spec.tags,
            outputs: &[],
        };
        let out = export_target(b, results, &target)?;
        done.push(TargetImage {
            target: spec.name.clone(),
            image_id: out.image_id,
            manifest_digest: out.manifest_digest,
            tags: out.tags,
        });
    }
    let first = &done[0];
    Ok(BuildOutcome {
        image_id: first.image_id.clone(),
        manifest_digest: first.manifest_digest.clone(),
        tags: first.tags.clone(),
        cached: 0,
        executed: 0,
        warnings: Vec::new(),
        targets: done,
    })
}

/// One image a build exports.
pub(crate) struct Target<'a> {
    /// Its stage's index.
    pub stage: usize,
    /// The platform variant it is built for ([`crate::plan::Plan::variants`]).
    pub variant: usize,
    /// As `--target` named it.
    pub name: Option<String>,
    pub tags: &'a [String],
    pub outputs: &'a [Output],
}

pub(crate) fn export_target(
    b: &Build<'_>,
    results: &[StepResult],
    target: &Target<'_>,
) -> Result<BuildOutcome> {
    let t = std::time::Instant::now();
    let stage = b
        .plan
        .stage_in(target.variant, target.stage)
        .ok_or(BuildError::TargetNotPlanned)?;
    let last = &results[stage.last_step];
    let (mut config, now) = dated_config(b, stage, results);
    let mut origins =
        crate::export::record::chain_origins(b, target.variant, target.stage, results);
    let chain = if b.opts.squash {
        let keep = crate::export::squash::base_layers(stage, results);
        let squashed = crate::export::squash::squash_chain(b, &last.chain, keep)?;
        if last.chain.len() > keep {
            crate::export::squash::squash_history(b, stage, &mut config, last.chain.len() - keep);
            if origins.len() == last.chain.len() {
                origins.truncate(keep);
                origins.push(kiln_store::LayerOrigin {
                    kind: kiln_store::OriginKind::Squash,
                    source: stage.display.clone(),
                });
            }
        }
        squashed
    } else {
        std::sync::Arc::clone(&last.chain)
    };
    // Said when it starts too: a big layer takes seconds to tar and compress.
    b.events.send(Event::Export {
        message: "exporting layers".into(),
        elapsed: None,
    });
    let store_spec = b.opts.compression.unwrap_or_default();
    let layers = layer_blobs(b, &chain, &store_spec)?;
    b.events.send(Event::Export {
        message: "exporting layers".into(),
        elapsed: Some(t.elapsed()),
    });
    let t = std::time::Instant::now();
    config.rootfs.kind = "layers".into();
    config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let mut config_bytes = serde_json::to_vec(&config).map_err(|source| BuildError::Encode {
        what: "the image config",
        source,
    })?;
    // `--cache-to type=inline`: the records ride in the config, after its own keys.
    if let Some(inline) = crate::export::cache_records::inline_records(b, &last.chain, &layers)?
        && config_bytes.last() == Some(&b'}')
    {
        config_bytes.pop();
        config_bytes
            .extend_from_slice(format!(",\"{}\":", crate::cache_artifact::INLINE_KEY).as_bytes());
        config_bytes.extend_from_slice(&inline);
        config_bytes.push(b'}');
    }
    // The manifest names the config by digest and size: both known before it is stored.
    let cfg = kiln_store::BlobInfo {
        digest: Digest::of(&config_bytes),
        size: config_bytes.len() as u64,
    };
    let manifest_bytes = manifest_json(&cfg, &layers, true)?;
    let [cfg, man] = put_small_blobs(b, [&config_bytes, &manifest_bytes])?;
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
    let tags: Vec<String> = target
        .tags
        .iter()
        .map(|t| {
            kiln_image::ImageRef::parse(t)
                .map(|r| r.to_string())
                .map_err(|source| BuildError::InvalidName {
                    what: "tag",
                    name: t.clone(),
                    source,
                })
        })
        .collect::<Result<_>>()?;
    if b.cancel.load(Ordering::SeqCst) {
        return Err(BuildError::Cancelled);
    }
    let (record, _) = b.store.record_image(&new, &tags)?;
    crate::export::record::record_build(
        b,
        &cfg.digest,
        results,
        target.stage,
        target.variant,
        target.name.clone(),
        origins,
    )?;
    let image_id = cfg.digest.to_string();
    if record.manifest_digest != man.digest {
        // Its ID is its config, which names the same diff IDs whatever the compression.
        b.events.send(Event::Export {
            message: format!(
                "image {image_id} is already in the store: it keeps its manifest {} (layers as they were stored)",
                record.manifest_digest
            ),
            elapsed: None,
        });
    }
    b.events.send(Event::Export {
        message: format!("writing image {image_id}"),
        elapsed: Some(t.elapsed()),
    });
    say_names(b, target.tags);
    let stored = StoredImage {
        config: &cfg,
        config_bytes: &config_bytes,
        manifest: &manifest_bytes,
        spec: store_spec,
        layers: &layers,
    };
    for o in target.outputs {
        write_output(b, o, &stored, &chain).map_err(|e| {
            if b.cancel.load(Ordering::SeqCst) {
                BuildError::Cancelled
            } else {
                e
            }
        })?;
    }
    Ok(BuildOutcome {
        image_id,
        manifest_digest: record.manifest_digest.to_string(),
        tags,
        cached: 0,
        executed: 0,
        warnings: Vec::new(),
        targets: Vec::new(),
    })
}

/// What the export recorded in the store, for the outputs written after it.
struct StoredImage<'a> {
    config: &'a kiln_store::BlobInfo,
    config_bytes: &'a [u8],
    /// The manifest this build made for the store (OCI media types).
    manifest: &'a [u8],
    spec: CompressionSpec,
    layers: &'a [LayerRecord],
}

fn write_output(
    b: &Build<'_>,
    o: &Output,
    stored: &StoredImage<'_>,
    chain: &[LayerRef],
) -> Result<()> {
    let t = std::time::Instant::now();
    match o {
        Output::Image => return Ok(()),
        Output::Docker(a) | Output::Oci(a) => {
            let docker = matches!(o, Output::Docker(_));
            let format = if docker { "docker" } else { "oci" };
            let image = archive_image(b, a, docker, stored, chain)?;
            let kind = match (
                docker,
                a.compression.or(b.opts.compression),
                a.oci_media_types,
            ) {
                (false, _, _) => ArchiveKind::Oci,
                // Nothing asked: what `docker save` writes.
                (true, None, None) => ArchiveKind::DockerSave,
                (true, _, _) => ArchiveKind::Docker,
            };
            crate::export::outputs::write_archive(b.store, &image, kind, &a.dest, b.cancel)?;
            b.events.send(Event::Export {
                message: format!("exporting to {format} archive {}", a.dest.display()),
                elapsed: Some(t.elapsed()),
            });
        }
        Output::Local(dir) => {
            crate::export::outputs::write_local(b, stored.layers, dir)?;
            b.events.send(Event::Export {
                message: format!("copying files to {}", dir.display()),
                elapsed: Some(t.elapsed()),
            });
        }
        Output::Tar(file) => {
            crate::export::outputs::write_tar(b, chain, file)?;
            b.events.send(Event::Export {
                message: format!("writing tar {}", file.display()),
                elapsed: Some(t.elapsed()),
            });
        }
    }
    Ok(())
}

/// The image an archive output holds: the stored image's config, with layer blobs compressed
/// as the output asks (its own `compression=`, else `--compression`'s) and the manifest's
/// media types it asks (`oci-mediatypes=`, else OCI for `type=oci` and docker's for
/// `type=docker`), named by the `-t` tags and its own `name=`s. Made from this build's
/// layers, not looked up by image ID: an image already in the store keeps its own manifest.
fn archive_image(
    b: &Build<'_>,
    a: &ArchiveOutput,
    docker: bool,
    stored: &StoredImage<'_>,
    chain: &[LayerRef],
) -> Result<kiln_image::ExportImage> {
    let mut names = Vec::new();
    for t in b.opts.tags.iter().chain(&a.names) {
        let r = kiln_image::ImageRef::parse(t).map_err(|source| BuildError::InvalidName {
            what: "name",
            name: t.clone(),
            source,
        })?;
        if !names.contains(&r) {
            names.push(r);
        }
    }
    let asked = a.compression.or(b.opts.compression);
    if docker && asked.is_none() && a.oci_media_types.is_none() {
        // `docker save`'s layout: the archive writer decompresses every layer.
        return Ok(kiln_image::ExportImage {
            manifest: stored.manifest.to_vec(),
            config: stored.config_bytes.to_vec(),
            tags: names,
        });
    }
    let spec = asked.unwrap_or_default();
    let oci = a.oci_media_types.unwrap_or(!docker);
    let layers = if spec == stored.spec {
        stored.layers.to_vec()
    } else {
        layer_blobs(b, chain, &spec)?
    };
    for (l, s) in layers.iter().zip(stored.layers) {
        if l.diff_id != s.diff_id {
            return Err(BuildError::OutputDiffId {
                blob: l.blob.to_string(),
                compression: spec.kind.name(),
                got: l.diff_id.to_string(),
                want: s.diff_id.to_string(),
            });
        }
    }
    Ok(kiln_image::ExportImage {
        manifest: manifest_json(stored.config, &layers, oci)?,
        config: stored.config_bytes.to_vec(),
        tags: names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_layers_convert_as_buildkit_converts_them() {
        let spec = |kind, force| CompressionSpec {
            kind,
            level: None,
            force,
        };
        use LayerCompression::*;
        // Uncompressed stored layers have no compressed blob yet: they get the asked one.
        assert!(needs_conversion(Compression::None, &spec(Gzip, false)));
        assert!(!needs_conversion(
            Compression::None,
            &spec(Uncompressed, false)
        ));
        // Compressed another way: kept unless forced.
        assert!(!needs_conversion(Compression::Gzip, &spec(Zstd, false)));
        assert!(needs_conversion(Compression::Gzip, &spec(Zstd, true)));
        assert!(!needs_conversion(
            Compression::Zstd,
            &spec(Uncompressed, false)
        ));
        assert!(needs_conversion(
            Compression::Zstd,
            &spec(Uncompressed, true)
        ));
        // The same format is kept, forced or not, whatever the level.
        let mut s = spec(Gzip, true);
        s.level = Some(9);
        assert!(!needs_conversion(Compression::Gzip, &s));
    }

    #[test]
    fn transcode_variants_name_format_and_level() {
        let mut s = CompressionSpec {
            kind: LayerCompression::Zstd,
            level: None,
            force: true,
        };
        assert_eq!(transcode_variant(&s), "xcode1;zstd");
        s.level = Some(19);
        assert_eq!(transcode_variant(&s), "xcode1;zstd;level=19");
    }

    #[test]
    fn cache_tar_variant_is_the_uncompressed_blob_variant() {
        // Checked through the strings blob_variant builds (it needs a build for the epoch).
        assert_eq!(crate::cache_artifact::tar_variant(None), "tar1;none");
        assert_eq!(
            crate::cache_artifact::tar_variant(Some(7)),
            "tar1;none;epoch=7"
        );
    }

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
