//! `push`: an image of the store to a registry.
//!
//! Layers the store keeps uncompressed (kiln's default, as Docker's store) are compressed
//! for the wire once (gzip, or zstd) and the result remembered by diff ID
//! ([`Store::record_wire_layer`]); a second push asks the registry for the remembered digest
//! (`HEAD`) and neither reads nor compresses the layer when it is there. A blob the registry
//! lacks is mounted from another repository of the same registry when the store knows one
//! that has it, else uploaded: `POST` then one `PUT` with the digest, or for blobs over
//! 64 MiB one streamed `PATCH` (chunks, when a chunk size is set) then the `PUT`. Layers go
//! up in parallel (five at a time, docker's default), then the config, then the manifest
//! under the tag.

use std::io::{Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kiln_image::compression::media_types as mt;
use kiln_image::manifest::{DescriptorOut, build_index, build_manifest};
use kiln_image::{Compression, Digest, ImageRef};
use kiln_store::{LayerRecord, Lease, RefKind, Store, WireLayer};
use ureq::SendBody;

use crate::blobs::{expect, has_blob, location, put_manifest, scope, with_query};
use crate::client::{Session, Settings, read_small};
use crate::error::{Error, Result};
use crate::progress::{Event, LayerStatus, Progress};

/// How many blobs upload at once (docker's `max-concurrent-uploads`).
pub const CONCURRENT_UPLOADS: usize = 5;
/// Blobs up to this size go up in one `PUT` with the bytes; larger ones in one `PATCH`
/// streaming the file (docker's way), then the `PUT` with the digest, unless a chunk size is
/// set (`KILN_PUSH_CHUNK_SIZE`, [`PushOptions::chunk_size`]): then in `PATCH` chunks of that
/// size. Measured against distribution 2.8 on loopback, a 182 MB blob took 1.8-2.0 s in
/// 64 MiB chunks and 0.8-1.4 s streamed in one request (each chunk is read before it is
/// sent, and the registry waits for it).
pub const CHUNK_SIZE: u64 = 64 << 20;
/// The gzip level of layers compressed for the wire. Measured on a 466 MiB tar of
/// `/usr/bin` (kiln's parallel compressor, zlib-rs): level 5 took 18% less CPU than 6 for
/// a blob 0.26% larger (182.7 against 182.2 MB; skopeo's gzip made 188.3 MB of it). zstd
/// keeps its default (3).
pub const WIRE_GZIP_LEVEL: i32 = 5;

/// How to push.
pub struct PushOptions<'a> {
    /// Registries, TLS, credentials.
    pub settings: &'a Settings,
    /// How uncompressed layers are compressed for the wire (gzip or zstd).
    pub compression: Compression,
    /// Where events go.
    pub progress: &'a dyn Progress,
    /// Blobs larger than this go up in `PATCH` chunks of this size (None:
    /// `KILN_PUSH_CHUNK_SIZE`, else no chunks: see [`CHUNK_SIZE`]).
    pub chunk_size: Option<u64>,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The reference pushed.
    pub reference: ImageRef,
    /// The tag.
    pub tag: String,
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
}

/// A blob as a manifest names it: digest, media type, size.
type Desc = (Digest, String, u64);

/// One blob to put in the registry.
#[derive(Debug, Clone)]
struct WireBlob {
    /// The layer's diff ID: docker's push lines name layers by it.
    diff_id: Digest,
    /// What the manifest says (None: to be made by compressing `layer`).
    desc: Option<(Digest, String, u64)>,
    layer: Option<LayerRecord>,
}

fn chunk_size(opts: &PushOptions<'_>) -> Option<u64> {
    if let Some(c) = opts.chunk_size.filter(|c| *c > 0) {
        return Some(c);
    }
    std::env::var("KILN_PUSH_CHUNK_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
}

/// The variant name under which a layer compressed for the wire is remembered.
fn variant(c: Compression) -> &'static str {
    match c {
        Compression::Zstd => "wire1;zstd",
        _ => "wire1;gzip",
    }
}

/// One image of a push, ready to go: its record and what each layer will be on the wire.
struct Prepared {
    image: kiln_store::ImageRecord,
    blobs: Vec<WireBlob>,
    sources: Vec<Vec<String>>,
}

/// Pushes the image `reference` names in `store` to its registry. A multi-platform image (a
/// tag that names an image index) goes up whole: each platform's image (blobs, then its
/// manifest by digest), then the index under the tag; the index is the stored one, same
/// digest, when every platform's manifest goes up as stored, else a new index over the
/// manifests pushed (the platforms, in order, are the same).
pub fn push(store: &Store, reference: &ImageRef, opts: &PushOptions<'_>) -> Result<Pushed> {
    push_as(store, None, reference, opts)
}

/// Pushes the store's image or image index `id` (an image ID or an index digest) under
/// `reference`, whatever the store names it: `kiln build -o type=registry,name=REF` pushes
/// so without tagging the store.
pub fn push_image(
    store: &Store,
    id: &Digest,
    reference: &ImageRef,
    opts: &PushOptions<'_>,
) -> Result<Pushed> {
    push_as(store, Some(id), reference, opts)
}

fn push_as(
    store: &Store,
    id: Option<&Digest>,
    reference: &ImageRef,
    opts: &PushOptions<'_>,
) -> Result<Pushed> {
    if opts.compression == Compression::None {
        return Err(Error::Invalid {
            what: "push".into(),
            reason: "layers go to a registry compressed: gzip or zstd".into(),
        });
    }
    // docker names the repository only: `An image does not exist locally with the tag: x`.
    let familiar = reference.name_only().familiar();
    let tag = reference
        .tag()
        .unwrap_or(kiln_image::reference::DEFAULT_TAG)
        .to_string();
    let named = reference.name_only().with_tag(&tag)?;
    let not_found = |e: kiln_store::Error| match e {
        kiln_store::Error::ImageNotFound(_) => Error::NoSuchLocalImage(familiar.clone()),
        e => e.into(),
    };
    let (index, image) = match id {
        None => match store.resolve_index(&named.to_string()).map_err(not_found)? {
            Some(ix) => (Some(ix), None),
            None => (
                None,
                Some(store.resolve_image(&named.to_string()).map_err(not_found)?),
            ),
        },
        Some(d) => match store.index(d)? {
            Some(ix) => (Some(ix), None),
            None => match store.image(d)? {
                Some(i) => (None, Some(i)),
                None => return Err(Error::NoSuchLocalImage(d.to_string())),
            },
        },
    };
    let images: Vec<kiln_store::ImageRecord> = match &index {
        Some(ix) => ix.entries.iter().map(|e| e.image.clone()).collect(),
        None => image.into_iter().collect(),
    };
    opts.progress.event(Event::PushRefersTo {
        repository: named.name(),
    });
    let repo = named.path().to_string();
    let registry = named.domain().to_string();
    let lease = store.lease()?;
    let mut prepared = Vec::with_capacity(images.len());
    for image in &images {
        let Some((image, layers)) = lease.use_image(&image.id)? else {
            return Err(Error::NoSuchLocalImage(familiar));
        };
        prepared.push(prepare(store, image, &layers, &registry, &repo, opts)?);
    }
    // Scopes: push here, pull where a mount could come from.
    let mut scopes = vec![scope(&repo, true)];
    for s in prepared.iter().flat_map(|p| p.sources.iter().flatten()) {
        let pull = scope(s, false);
        if !scopes.contains(&pull) {
            scopes.push(pull);
        }
    }
    // As docker: a registry that cannot be reached fails before the layers' lines; one that
    // refuses the credentials fails under them (docker's ping succeeds, its first upload
    // request is refused).
    let sess = match Session::open(opts.settings, &registry, &scopes) {
        Ok(s) => s,
        Err(e) => {
            if index.is_none()
                && matches!(
                    e,
                    Error::CredentialsRefused { .. } | Error::Unauthorized { .. }
                )
            {
                announce(&prepared[0].blobs, opts);
            }
            let _ = lease.release_and_collect();
            return Err(e);
        }
    };
    let announced = match &index {
        None => Some(announce(&prepared[0].blobs, opts)),
        Some(_) => None,
    };
    let result = (|| -> Result<(Digest, u64, Vec<Digest>)> {
        let Some(ix) = &index else {
            let p = &prepared[0];
            let (digest, size, _, pushed) = push_leased(
                store,
                &sess,
                &repo,
                &p.image,
                (&p.blobs, &p.sources),
                announced.clone(),
                &lease,
                opts,
                Some(&tag),
            )?;
            return Ok((digest, size, pushed));
        };
        let mut all_pushed = Vec::new();
        let mut descs = Vec::with_capacity(prepared.len());
        for (p, e) in prepared.iter().zip(&ix.entries) {
            let (digest, size, media_type, pushed) = push_leased(
                store,
                &sess,
                &repo,
                &p.image,
                (&p.blobs, &p.sources),
                None,
                &lease,
                opts,
                None,
            )?;
            all_pushed.extend(pushed);
            let mut d = DescriptorOut::new(&media_type, digest, size);
            d.platform = Some((&e.platform).into());
            descs.push(d);
        }
        let same = descs
            .iter()
            .zip(&ix.entries)
            .all(|(d, e)| d.digest == e.image.manifest_digest);
        let (bytes, media_type) = if same {
            (store.read_blob(&ix.digest)?, ix.media_type.clone())
        } else {
            (build_index(&descs), mt::OCI_INDEX.to_string())
        };
        put_manifest(&sess, &repo, &tag, &media_type, &bytes)?;
        Ok((Digest::of(&bytes), bytes.len() as u64, all_pushed))
    })();
    let (digest, size, pushed) = match result {
        Ok(r) => r,
        Err(Error::NoBasicAuthCredentials { .. }) => {
            let _ = lease.release_and_collect();
            return Err(Error::NoBasicAuthCredentials { request: None });
        }
        Err(e) => {
            let _ = lease.release_and_collect();
            return Err(e);
        }
    };
    // The repository digest names the index when one was pushed (docker's RepoDigests of a
    // multi-platform image); it is kept on the index's default image.
    let holder = match &index {
        Some(ix) => ix
            .default_entry()
            .map(|e| e.image.id)
            .unwrap_or(prepared[0].image.id),
        None => prepared[0].image.id,
    };
    store.record_repo_digest(&holder, &format!("{}@{digest}", named.name()))?;
    for d in pushed {
        store.record_blob_source(&d, &registry, &repo)?;
    }
    drop(lease);
    Ok(Pushed {
        reference: named,
        tag,
        digest,
        size,
    })
}

/// What each layer of `image` will be on the wire, as far as known without compressing,
/// and the repositories of the same registry a blob could be mounted from.
fn prepare(
    store: &Store,
    image: kiln_store::ImageRecord,
    layers: &[LayerRecord],
    registry: &str,
    repo: &str,
    opts: &PushOptions<'_>,
) -> Result<Prepared> {
    let mut blobs = Vec::with_capacity(layers.len());
    for l in layers {
        let comp = Compression::from_media_type(&l.media_type).unwrap_or(Compression::None);
        let b = if comp != Compression::None {
            WireBlob {
                diff_id: l.diff_id,
                desc: Some((l.blob, l.media_type.clone(), l.compressed_size)),
                layer: None,
            }
        } else {
            WireBlob {
                diff_id: l.diff_id,
                desc: store
                    .wire_layer(&l.diff_id, variant(opts.compression))?
                    .map(|w| (w.blob, w.media_type, w.size)),
                layer: Some(l.clone()),
            }
        };
        blobs.push(b);
    }
    let mut sources: Vec<Vec<String>> = Vec::new();
    for b in &blobs {
        let s = match &b.desc {
            Some((d, ..)) => store
                .blob_sources(d, registry)?
                .into_iter()
                .filter(|r| r != repo)
                .collect(),
            None => Vec::new(),
        };
        sources.push(s);
    }
    Ok(Prepared {
        image,
        blobs,
        sources,
    })
}

/// Each layer's first line, `Preparing` (then `Waiting` behind the five uploads), in
/// docker's order: the top layer first, the base last. Returns the layers to upload, in
/// that order: a layer that appears twice in the image (the same diff ID) goes up once
/// and is shown once, as docker does (the manifest still lists it at both places).
fn announce(blobs: &[WireBlob], opts: &PushOptions<'_>) -> Vec<usize> {
    let unique: Vec<usize> = (0..blobs.len())
        .rev()
        .filter(|&i| first_of(blobs, i) == i)
        .collect();
    for &i in &unique {
        opts.progress.event(Event::Layer {
            digest: blobs[i].diff_id,
            status: LayerStatus::Preparing,
        });
    }
    for &i in unique.iter().skip(CONCURRENT_UPLOADS) {
        opts.progress.event(Event::Layer {
            digest: blobs[i].diff_id,
            status: LayerStatus::Waiting,
        });
    }
    unique
}

/// The first index of the layer at `i` (by diff ID).
fn first_of(blobs: &[WireBlob], i: usize) -> usize {
    blobs
        .iter()
        .position(|o| o.diff_id == blobs[i].diff_id)
        .unwrap_or(i)
}

/// Pushes one image's blobs (`announce`d already when `unique` is given) and its manifest.
/// Returns the manifest's digest, size and media type, and the blobs pushed. Without a tag
/// the manifest goes up by its digest (a platform of an index).
#[allow(clippy::too_many_arguments)]
fn push_leased(
    store: &Store,
    sess: &Session,
    repo: &str,
    image: &kiln_store::ImageRecord,
    (blobs, sources): (&[WireBlob], &[Vec<String>]),
    unique: Option<Vec<usize>>,
    lease: &Lease,
    opts: &PushOptions<'_>,
    tag: Option<&str>,
) -> Result<(Digest, u64, String, Vec<Digest>)> {
    let first: Vec<usize> = (0..blobs.len()).map(|i| first_of(blobs, i)).collect();
    let unique = unique.unwrap_or_else(|| announce(blobs, opts));
    let results: Mutex<Vec<Option<Result<Desc>>>> =
        Mutex::new((0..blobs.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    std::thread::scope(|sc| {
        for _ in 0..CONCURRENT_UPLOADS.min(unique.len()).max(1) {
            sc.spawn(|| {
                loop {
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = unique.get(k) else { break };
                    let b = &blobs[i];
                    let r = push_layer(store, sess, repo, b, &sources[i], lease, opts);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    results.lock().unwrap()[i] = Some(r);
                }
            });
        }
    });
    let mut pushed = results.into_inner().unwrap();
    let mut descs: Vec<Desc> = Vec::with_capacity(blobs.len());
    for i in 0..blobs.len() {
        let d = if first[i] == i {
            match pushed[i].take() {
                Some(r) => r?,
                None => break,
            }
        } else {
            descs[first[i]].clone()
        };
        descs.push(d);
    }
    if descs.len() != blobs.len() {
        return Err(Error::Invalid {
            what: "push".into(),
            reason: "a layer was not pushed".into(),
        });
    }
    // The config.
    let config_size = store.blob_size(&image.id)?;
    if !has_blob(sess, repo, &image.id)? {
        upload(
            sess,
            repo,
            &image.id,
            config_size,
            &store.blob_path(&image.id),
            None,
            opts,
        )?;
    }
    // The manifest: the stored one when every layer goes as stored (a pulled image keeps
    // its digest), else a new one over the wire blobs.
    let stored = store.read_blob(&image.manifest_digest)?;
    let unchanged = blobs.iter().all(|b| b.layer.is_none());
    let (bytes, media_type) = if unchanged {
        (stored, image.manifest_media_type.clone())
    } else {
        let docker = image.manifest_media_type == mt::DOCKER_MANIFEST;
        let config_type = serde_json::from_slice::<serde_json::Value>(&stored)
            .ok()
            .and_then(|v| {
                v.pointer("/config/mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| {
                if docker {
                    mt::DOCKER_CONFIG
                } else {
                    mt::OCI_CONFIG
                }
                .to_string()
            });
        let layer_descs: Vec<DescriptorOut> = descs
            .iter()
            .map(|(d, m, s)| {
                let m = if docker {
                    docker_layer_type(m)
                } else {
                    oci_layer_type(m)
                };
                DescriptorOut::new(m, *d, *s)
            })
            .collect();
        let config = DescriptorOut::new(&config_type, image.id, config_size);
        if docker {
            let v = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": mt::DOCKER_MANIFEST,
                "config": config,
                "layers": layer_descs,
            });
            (
                serde_json::to_vec(&v).expect("JSON"),
                mt::DOCKER_MANIFEST.to_string(),
            )
        } else {
            (
                build_manifest(&config, &layer_descs).0,
                mt::OCI_MANIFEST.to_string(),
            )
        }
    };
    let digest = Digest::of(&bytes);
    let by_digest = digest.to_string();
    put_manifest(sess, repo, tag.unwrap_or(&by_digest), &media_type, &bytes)?;
    let mut pushed: Vec<Digest> = descs.iter().map(|d| d.0).collect();
    pushed.push(image.id);
    Ok((digest, bytes.len() as u64, media_type, pushed))
}

fn oci_layer_type(m: &str) -> &'static str {
    match Compression::from_media_type(m).unwrap_or(Compression::Gzip) {
        Compression::Zstd => mt::OCI_LAYER_ZSTD,
        Compression::None => mt::OCI_LAYER,
        Compression::Gzip => mt::OCI_LAYER_GZIP,
    }
}

fn docker_layer_type(m: &str) -> &'static str {
    match Compression::from_media_type(m).unwrap_or(Compression::Gzip) {
        Compression::Zstd => mt::DOCKER_LAYER_ZSTD,
        Compression::None => mt::DOCKER_LAYER,
        Compression::Gzip => mt::DOCKER_LAYER_GZIP,
    }
}

/// One layer: skipped when the registry has it, mounted, or uploaded (compressed first if
/// the store keeps it uncompressed and no wire blob is known).
fn push_layer(
    store: &Store,
    sess: &Session,
    repo: &str,
    b: &WireBlob,
    sources: &[String],
    lease: &Lease,
    opts: &PushOptions<'_>,
) -> Result<(Digest, String, u64)> {
    if let Some((d, m, s)) = &b.desc {
        if has_blob(sess, repo, d)? {
            opts.progress.event(Event::Layer {
                digest: b.diff_id,
                status: LayerStatus::LayerAlreadyExists,
            });
            return Ok((*d, m.clone(), *s));
        }
        for from in sources {
            if mount(sess, repo, d, from)? {
                opts.progress.event(Event::Layer {
                    digest: b.diff_id,
                    status: LayerStatus::MountedFrom(from.clone()),
                });
                return Ok((*d, m.clone(), *s));
            }
        }
        if store.has_blob(d) {
            lease.protect(RefKind::Blob, &d.to_string())?;
            if store.has_blob(d) {
                upload(
                    sess,
                    repo,
                    d,
                    *s,
                    &store.blob_path(d),
                    Some(b.diff_id),
                    opts,
                )?;
                return Ok((*d, m.clone(), *s));
            }
        }
    }
    let layer = b.layer.as_ref().ok_or_else(|| {
        Error::Store(kiln_store::Error::BlobNotFound {
            digest: b.desc.as_ref().map(|d| d.0.to_string()).unwrap_or_default(),
        })
    })?;
    // First push of this layer this way: compress it once, into the store (remembered)
    // and up to the registry in the same pass.
    let w = compress_and_upload(store, sess, repo, layer, lease, opts)?;
    Ok((w.blob, w.media_type, w.size))
}

/// Writes to two places.
struct Tee<'a, A, B> {
    a: &'a mut A,
    b: B,
}

impl<A: Write, B: Write> Write for Tee<'_, A, B> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.a.write_all(buf)?;
        self.b.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.a.flush()?;
        self.b.flush()
    }
}

/// Compresses an uncompressed layer blob for the wire, streaming the result both into the
/// store (remembered by diff ID, for the next push) and to the registry (one chunked
/// `PATCH`, then the `PUT` with the digest once it is known): compression and upload
/// overlap instead of adding up, and the compressed bytes are never read back.
fn compress_and_upload(
    store: &Store,
    sess: &Session,
    repo: &str,
    layer: &LayerRecord,
    lease: &Lease,
    opts: &PushOptions<'_>,
) -> Result<WireLayer> {
    opts.progress.event(Event::Layer {
        digest: layer.diff_id,
        status: LayerStatus::Compressing,
    });
    let what = format!("compressing layer {}", layer.blob);
    let start = sess.url(&format!("{repo}/blobs/uploads/"));
    let resp = sess.send("POST", &start, &[], SendBody::none())?;
    let resp = expect(resp, "POST", &start, &[202])?;
    let loc = location(sess, &resp, &start)?;
    drop(resp);
    // Progress by the uncompressed bytes read: the compressed size is not known before the end.
    let f = Counted {
        inner: store.open_blob(&layer.blob)?,
        done: 0,
        total: layer.uncompressed_size,
        digest: layer.diff_id,
        progress: opts.progress,
    };
    let mut w = store.blob_writer_prehashed()?;
    let (mut pipe_r, pipe_w) = std::io::pipe().map_err(|e| Error::Read {
        what: what.clone(),
        source: e,
    })?;
    let compression = opts.compression;
    let (compressed, sent) = std::thread::scope(|sc| {
        let worker = sc.spawn(|| {
            let out = Tee {
                a: &mut w,
                b: pipe_w,
            };
            // `out` (and the pipe's write end) is dropped when this returns: the upload
            // sees the end of the body.
            kiln_snapshot::compress_tar(
                std::io::BufReader::with_capacity(1 << 20, f),
                &kiln_snapshot::ExportOptions {
                    compression,
                    level: (compression == Compression::Gzip).then_some(WIRE_GZIP_LEVEL),
                    ..Default::default()
                },
                out,
            )
        });
        let sent = sess
            .send(
                "PATCH",
                &loc,
                &[("Content-Type", "application/octet-stream")],
                SendBody::from_reader(&mut pipe_r),
            )
            .and_then(|r| expect(r, "PATCH", &loc, &[202]))
            .and_then(|r| location(sess, &r, &loc));
        // A failed upload closes the pipe, so the compressor stops too.
        drop(pipe_r);
        (worker.join().expect("the compressor does not panic"), sent)
    });
    let info = compressed.map_err(|e| Error::Read {
        what: what.clone(),
        source: e,
    })?;
    let loc = sent?;
    if info.diff_id != layer.diff_id {
        return Err(Error::DigestMismatch {
            what,
            expected: layer.diff_id.to_string(),
            actual: info.diff_id.to_string(),
        });
    }
    let put_url = with_query(&loc, "digest", &info.digest.to_string());
    let resp = sess.send("PUT", &put_url, &[], SendBody::none())?;
    expect(resp, "PUT", &put_url, &[201])?;
    let blob = w.finish_prehashed(info.digest)?.commit(lease, None)?;
    let wire = WireLayer {
        blob: blob.digest,
        media_type: opts.compression.layer_media_type(true).to_string(),
        size: blob.size,
    };
    store.record_wire_layer(&layer.diff_id, variant(opts.compression), &wire)?;
    opts.progress.event(Event::Layer {
        digest: layer.diff_id,
        status: LayerStatus::Pushed,
    });
    Ok(wire)
}

/// A layer's uncompressed bytes on their way to the compressor, reported as `Pushing`.
struct Counted<'a, R> {
    inner: R,
    done: u64,
    total: u64,
    digest: Digest,
    progress: &'a dyn Progress,
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.done += n as u64;
            self.progress.event(Event::Layer {
                digest: self.digest,
                status: LayerStatus::Pushing(self.done, self.total),
            });
        }
        Ok(n)
    }
}

/// Tries a cross-repository mount; false when the registry wants an upload instead.
fn mount(sess: &Session, repo: &str, d: &Digest, from: &str) -> Result<bool> {
    let url = sess.url(&format!("{repo}/blobs/uploads/?mount={d}&from={from}"));
    let resp = sess.send("POST", &url, &[], SendBody::none())?;
    let status = resp.status().as_u16();
    let _ = read_small(resp, 1 << 16, &url);
    Ok(status == 201)
}

/// Uploads the file at `path` as blob `d`: one `PUT` with the bytes, or one streamed `PATCH`
/// (or `PATCH` chunks, when a chunk size is set) then the `PUT` (see [`CHUNK_SIZE`]).
fn upload(
    sess: &Session,
    repo: &str,
    d: &Digest,
    size: u64,
    path: &std::path::Path,
    layer: Option<Digest>,
    opts: &PushOptions<'_>,
) -> Result<()> {
    let progress = opts.progress;
    let start = sess.url(&format!("{repo}/blobs/uploads/"));
    let resp = sess.send("POST", &start, &[], SendBody::none())?;
    let resp = expect(resp, "POST", &start, &[202])?;
    let mut loc = location(sess, &resp, &start)?;
    drop(resp);
    let mut file = std::fs::File::open(path).map_err(|e| Error::Read {
        what: path.display().to_string(),
        source: e,
    })?;
    let chunk = chunk_size(opts);
    let report = |done| {
        if let Some(l) = layer {
            progress.event(Event::Layer {
                digest: l,
                status: LayerStatus::Pushing(done, size),
            });
        }
    };
    if size <= chunk.unwrap_or(CHUNK_SIZE) {
        let put_url = with_query(&loc, "digest", &d.to_string());
        let resp = sess.send(
            "PUT",
            &put_url,
            &[("Content-Type", "application/octet-stream")],
            &file,
        )?;
        expect(resp, "PUT", &put_url, &[201])?;
        report(size);
    } else if let Some(chunk) = chunk {
        let mut offset = 0u64;
        let mut buf = vec![0u8; chunk as usize];
        while offset < size {
            let n = (size - offset).min(chunk) as usize;
            file.read_exact(&mut buf[..n]).map_err(|e| Error::Read {
                what: path.display().to_string(),
                source: e,
            })?;
            let range = format!("{}-{}", offset, offset + n as u64 - 1);
            let resp = sess.send(
                "PATCH",
                &loc,
                &[
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Range", &range),
                ],
                &buf[..n],
            )?;
            let resp = expect(resp, "PATCH", &loc, &[202])?;
            loc = location(sess, &resp, &loc)?;
            offset += n as u64;
            report(offset);
        }
        let put_url = with_query(&loc, "digest", &d.to_string());
        let resp = sess.send("PUT", &put_url, &[], SendBody::none())?;
        expect(resp, "PUT", &put_url, &[201])?;
    } else {
        // One request streams the whole file; the registry takes it as it comes.
        let mut body = Counting {
            inner: std::io::BufReader::with_capacity(1 << 20, &mut file),
            done: 0,
            reported: 0,
            report: &report,
        };
        let resp = sess.send(
            "PATCH",
            &loc,
            &[("Content-Type", "application/octet-stream")],
            SendBody::from_reader(&mut body),
        )?;
        let resp = expect(resp, "PATCH", &loc, &[202])?;
        let sent = body.done;
        loc = location(sess, &resp, &loc)?;
        drop(resp);
        if sent != size {
            return Err(Error::Read {
                what: path.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{sent} bytes read of {size}"),
                ),
            });
        }
        let put_url = with_query(&loc, "digest", &d.to_string());
        let resp = sess.send("PUT", &put_url, &[], SendBody::none())?;
        expect(resp, "PUT", &put_url, &[201])?;
        report(size);
    }
    if let Some(l) = layer {
        progress.event(Event::Layer {
            digest: l,
            status: LayerStatus::Pushed,
        });
    }
    Ok(())
}

/// A reader that reports how much went through it, every MiB.
struct Counting<'a, R, F: Fn(u64)> {
    inner: R,
    done: u64,
    reported: u64,
    report: &'a F,
}

impl<R: Read, F: Fn(u64)> Read for Counting<'_, R, F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done - self.reported >= 1 << 20 {
            (self.report)(self.done);
            self.reported = self.done;
        }
        Ok(n)
    }
}
