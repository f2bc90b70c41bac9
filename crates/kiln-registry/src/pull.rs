//! `pull`: a reference's image from its registry into the store.
//!
//! Index → the platform's manifest → config → layers. Layers download in parallel (three at
//! a time, docker's default) into blob writers under the store's `tmp/`; a dropped
//! connection resumes with an HTTP `Range` request where it stopped. While a layer
//! downloads it is decompressed and unpacked into a staging snapshot directory under
//! `tmp/` (kiln's extraction, as a build's lazy unpack does it), unless the store has its
//! snapshot. Each blob is checked against its digest (and a layer against its diff ID and
//! gzip CRCs) before it is renamed into `blobs/`, and only then is its snapshot committed
//! (renamed into `snapshots-v1/` and recorded), in manifest order, since a snapshot names
//! the one below it; the image and its tag are recorded in one transaction at the end.
//! A failure removes the staging directories, releases the pull's lease and collects what
//! it committed; a kill leaves temp files and directories and a lease of a dead process,
//! which the next `kiln` removes, while the layers already committed let the next pull skip
//! them.

mod verify;

use std::io::{Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use std::path::{Path, PathBuf};

use kiln_image::{Digest, ImageRef, Platform};
use kiln_store::{ImageRecord, LayerRecord, Lease, NewImage, Store, TagChange};
use ureq::SendBody;

use crate::client::{Session, Settings, error_message, read_small};
use crate::error::{Error, Result};
use crate::manifest::{self, Descriptor, Document};
use crate::progress::{Event, LayerStatus, Progress};
use kiln_image::compression::media_types as mt;

/// How many layers download at once (docker's `max-concurrent-downloads`).
pub const CONCURRENT_DOWNLOADS: usize = 3;
/// How many times a blob download is tried in all before the pull gives up (docker's
/// default `max-download-attempts`): a dropped connection or short body is resumed with
/// `Range` where it stopped, so each attempt keeps what the ones before it got.
pub const DOWNLOAD_ATTEMPTS: u32 = 5;
/// The pause before retry `n` is `n` times this.
const RETRY_DELAY: Duration = Duration::from_millis(250);
/// The largest config kiln reads.
const CONFIG_LIMIT: u64 = 32 << 20;

/// How to pull.
pub struct PullOptions<'a> {
    /// Registries, TLS, credentials.
    pub settings: &'a Settings,
    /// Which image of an index (default: the host's).
    pub platform: Platform,
    /// Where events go.
    pub progress: &'a dyn Progress,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image as recorded.
    pub image: ImageRecord,
    /// The digest the reference resolved to (an index's, when it named one).
    pub digest: Digest,
    /// The reference pulled (normalized; a digest reference has no tag).
    pub reference: ImageRef,
    /// True when the store already had this image under this name.
    pub up_to_date: bool,
    /// The tag set, with the image it pointed at before.
    pub tags: Vec<TagChange>,
}

/// Opens `reference` (a docker reference) for a pull, Docker Hub's mirrors first when
/// configured (see `mirrors`), and announces it as docker does once its manifest is found
/// (`PullingFrom` with the tag, docker's default tag when none, or the familiar
/// `NAME@DIGEST` of a digest reference): the session and the top document.
fn open_top(
    reference: &ImageRef,
    opts: &PullOptions<'_>,
) -> Result<(Session, crate::manifest::Fetched)> {
    let (wanted, shown) = match (reference.digest(), reference.tag()) {
        (Some(d), _) => (d.to_string(), reference.familiar()),
        (None, Some(t)) => (t.to_string(), t.to_string()),
        (None, None) => {
            let t = kiln_image::reference::DEFAULT_TAG.to_string();
            (t.clone(), t)
        }
    };
    let scopes = [crate::blobs::scope(reference.path(), false)];
    let opened = || {
        opts.progress.event(Event::PullingFrom {
            tag: shown.clone(),
            repository: reference.repository_familiar_path(),
        })
    };
    let (sess, top) =
        crate::mirrors::open::open_for_pull(opts.settings, reference, &wanted, &scopes, &opened)?;
    Ok((sess, top))
}

/// Pulls `reference` into `store`. This is the call `kiln build` makes for a base image
/// it does not have.
pub fn pull(store: &Store, reference: &ImageRef, opts: &PullOptions<'_>) -> Result<Pulled> {
    let reference = reference.docker_ref();
    let repo = reference.path().to_string();
    let familiar = reference.familiar();
    let (sess, top) = open_top(&reference, opts)?;
    let image_manifest = match top.parse(&familiar)? {
        Document::Index(entries) => {
            let d = manifest::select_platform(&entries, &opts.platform).ok_or_else(|| {
                Error::NoMatchingPlatform {
                    platform: opts.platform.to_string(),
                }
            })?;
            manifest::fetch(&sess, &repo, &d.digest.to_string(), &familiar)?
        }
        Document::Image { .. } => top.clone(),
    };
    let Document::Image { config, layers } = image_manifest.parse(&familiar)? else {
        return Err(Error::Invalid {
            what: familiar,
            reason: "an index entry is itself an index".into(),
        });
    };
    let tag = reference.tag().map(|_| reference.to_string());
    let previous = match &tag {
        Some(t) => store.resolve_image(t).ok().map(|i| i.id),
        None => None,
    };
    let existed = store.image(&config.digest)?.is_some();
    let repo_digest = format!("{}@{}", reference.name(), top.digest);
    if existed {
        // The store has this image (all its blobs): only the name is new, if anything.
        let tags = match &tag {
            Some(t) => vec![store.tag(&config.digest, t)?],
            None => Vec::new(),
        };
        store.record_repo_digest(&config.digest, &repo_digest)?;
        if let Some(image) = store.image(&config.digest)? {
            return Ok(Pulled {
                up_to_date: tag.is_none() || previous == Some(image.id),
                image,
                digest: top.digest,
                reference,
                tags,
            });
        }
    }
    let lease = store.lease()?;
    let result = pull_leased(
        store,
        &sess,
        &repo,
        &image_manifest,
        &config,
        &layers,
        &lease,
        opts,
        tag.as_deref(),
    );
    let (image, tags) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = lease.release_and_collect();
            return Err(e);
        }
    };
    store.record_repo_digest(&image.id, &repo_digest)?;
    for l in &layers {
        store.record_blob_source(&l.digest, &sess.registry, &repo)?;
    }
    drop(lease);
    let image = store.image(&image.id)?.unwrap_or(image);
    Ok(Pulled {
        up_to_date: match &tag {
            Some(_) => previous == Some(image.id),
            None => existed,
        },
        image,
        digest: top.digest,
        reference,
        tags,
    })
}

/// What a pull of every platform did.
#[derive(Debug, Clone)]
pub enum PulledAll {
    /// The reference named one image (no index): pulled as [`pull`] does.
    Image(Box<Pulled>),
    /// The reference named an index: every platform's image and the index were stored.
    Index {
        /// The index's digest (the registry's).
        digest: Digest,
        /// The reference pulled.
        reference: ImageRef,
        /// The images, with their platforms, in the index's order.
        images: Vec<(Platform, ImageRecord)>,
        /// The tag set, with what it named before.
        tags: Vec<TagChange>,
        /// True when the store already had this index under this name.
        up_to_date: bool,
    },
}

/// Pulls `reference` with every platform its index lists (`kiln pull --all-platforms`, as
/// `skopeo copy --all`): each platform's image is stored untagged, then the index (the
/// registry's bytes, so the same digest; a new index over the images when the registry's
/// lists other things too: attestations, artifacts), and the tag names the index. A
/// reference to a single image is pulled as [`pull`] does. `opts.platform` is not used.
pub fn pull_all(store: &Store, reference: &ImageRef, opts: &PullOptions<'_>) -> Result<PulledAll> {
    let reference = reference.docker_ref();
    let repo = reference.path().to_string();
    let familiar = reference.familiar();
    let (sess, top) = open_top(&reference, opts)?;
    let Document::Index(entries) = top.parse(&familiar)? else {
        return pull(store, &reference, opts).map(|p| PulledAll::Image(Box::new(p)));
    };
    let tag = reference.tag().map(|_| reference.to_string());
    let previous = match &tag {
        Some(t) => store.resolve_index(t).ok().flatten().map(|i| i.digest),
        None => None,
    };
    let lease = store.lease()?;
    let result = (|| -> Result<(Vec<(Platform, ImageRecord)>, bool)> {
        let mut images = Vec::new();
        let mut all = true;
        for d in &entries {
            let is_image = matches!(
                d.media_type.as_str(),
                mt::OCI_MANIFEST | mt::DOCKER_MANIFEST
            );
            let platform = d
                .platform
                .as_ref()
                .map(|p| Platform::new(&p.os, &p.architecture, p.variant.as_deref()));
            // BuildKit's attestations are listed as unknown/unknown.
            let Some(platform) = platform.filter(|p| is_image && p.os != "unknown") else {
                all = false;
                continue;
            };
            let m = manifest::fetch(&sess, &repo, &d.digest.to_string(), &familiar)?;
            let Document::Image { config, layers } = m.parse(&familiar)? else {
                return Err(Error::Invalid {
                    what: familiar.clone(),
                    reason: "an index entry is itself an index".into(),
                });
            };
            let image = match store.image(&config.digest)? {
                Some(i) if i.manifest_digest == m.digest => {
                    lease.use_image(&i.id)?;
                    i
                }
                _ => {
                    let (image, _) = pull_leased(
                        store, &sess, &repo, &m, &config, &layers, &lease, opts, None,
                    )?;
                    for l in &layers {
                        store.record_blob_source(&l.digest, &sess.registry, &repo)?;
                    }
                    image
                }
            };
            images.push((platform, image));
        }
        Ok((images, all))
    })();
    let (images, all) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = lease.release_and_collect();
            return Err(e);
        }
    };
    if images.is_empty() {
        let _ = lease.release_and_collect();
        return Err(Error::Invalid {
            what: familiar,
            reason: "the index lists no image manifests".into(),
        });
    }
    let ids: Vec<(Platform, Digest)> = images.iter().map(|(p, i)| (p.clone(), i.id)).collect();
    let recorded = (|| -> Result<(Digest, Vec<TagChange>)> {
        let digest = if all {
            store.record_index(&lease, &top.bytes, &top.media_type, &ids)?
        } else {
            store.put_index(&ids)?
        };
        let mut tags = Vec::new();
        if let Some(t) = &tag {
            tags.push(store.tag_index(&digest, t)?);
        }
        if let Some(ix) = store.index(&digest)?
            && let Some(e) = ix.default_entry()
        {
            store
                .record_repo_digest(&e.image.id, &format!("{}@{}", reference.name(), top.digest))?;
        }
        Ok((digest, tags))
    })();
    let (digest, tags) = match recorded {
        Ok(r) => r,
        Err(e) => {
            let _ = lease.release_and_collect();
            return Err(e);
        }
    };
    drop(lease);
    Ok(PulledAll::Index {
        up_to_date: tag.is_some() && previous == Some(digest),
        digest,
        reference,
        images,
        tags,
    })
}

trait FamiliarPath {
    fn repository_familiar_path(&self) -> String;
}

impl FamiliarPath for ImageRef {
    /// docker's "Pulling from" name: the path (`library/busybox`, `x`).
    fn repository_familiar_path(&self) -> String {
        self.path().to_string()
    }
}

#[allow(clippy::too_many_arguments)]
fn pull_leased(
    store: &Store,
    sess: &Session,
    repo: &str,
    manifest: &manifest::Fetched,
    config: &Descriptor,
    layers: &[Descriptor],
    lease: &Lease,
    opts: &PullOptions<'_>,
    tag: Option<&str>,
) -> Result<(ImageRecord, Vec<TagChange>)> {
    // The config first: it names the diff IDs every layer is checked against.
    let config_bytes = if store.has_blob(&config.digest) {
        lease.protect(kiln_store::RefKind::Blob, &config.digest.to_string())?;
        store.read_blob(&config.digest)?
    } else {
        let url = sess.url(&format!("{repo}/blobs/{}", config.digest));
        let resp = sess.send("GET", &url, &[], SendBody::none())?;
        check_blob_status(resp.status().as_u16(), &url, &config.digest)?;
        let bytes = read_small(resp, CONFIG_LIMIT, &url)?;
        let actual = Digest::of(&bytes);
        if actual != config.digest {
            return Err(Error::DigestMismatch {
                what: format!("config {}", config.digest),
                expected: config.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        store.put_blob(lease, &bytes, Some(&config.digest))?;
        bytes
    };
    let cfg: serde_json::Value =
        serde_json::from_slice(&config_bytes).map_err(|e| Error::Invalid {
            what: format!("config {}", config.digest),
            reason: e.to_string(),
        })?;
    let diff_ids: Vec<Digest> = cfg
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().and_then(|s| Digest::parse(s).ok()))
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != layers.len() {
        return Err(Error::Invalid {
            what: format!("config {}", config.digest),
            reason: format!(
                "{} diff IDs for {} layers in the manifest",
                diff_ids.len(),
                layers.len()
            ),
        });
    }
    for l in layers {
        if !l.urls.is_empty() {
            return Err(Error::Invalid {
                what: format!("layer {}", l.digest),
                reason: "a foreign layer (urls); kiln does not fetch those".into(),
            });
        }
    }
    // Each layer's snapshot key (as builds and containers look it up).
    let keys: Vec<String> = kiln_store::chain_ids(&diff_ids)
        .iter()
        .map(kiln_store::layer_snapshot_key)
        .collect();
    // Layers: in parallel, in manifest order of start.
    let results: Mutex<Vec<Option<Result<LayerRecord>>>> =
        Mutex::new((0..layers.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    // docker's order: every layer's first line in manifest order (`Already exists` or
    // `Pulling fs layer`), so a terminal's lines are the manifest's.
    let mut missing: Vec<&Descriptor> = Vec::new();
    for l in layers {
        let status = if store.has_blob(&l.digest) {
            LayerStatus::AlreadyExists
        } else {
            missing.push(l);
            LayerStatus::PullingFsLayer
        };
        opts.progress.event(Event::Layer {
            digest: l.digest,
            status,
        });
    }
    // Snapshots are committed in manifest order (each names the one below it as parent,
    // which must exist), and `Pull complete` follows, as docker's (its layers are
    // registered one after the other): a layer done before those under it waits for them,
    // its unpacked directory still in `tmp/`.
    let completed = Mutex::new(Ordered {
        next: 0,
        done: (0..layers.len()).map(|_| None).collect(),
    });
    let complete = |i: usize, staged: Option<PathBuf>| -> Result<()> {
        let mut c = completed.lock().unwrap();
        c.done[i] = Some(staged);
        while c.next < layers.len() {
            let k = c.next;
            let Some(staged) = c.done[k].take() else {
                break;
            };
            if let Some(dir) = staged {
                let parent = k.checked_sub(1).map(|p| keys[p].as_str());
                if let Err(e) = store.commit_snapshot(lease, &keys[k], parent, &dir) {
                    discard(&dir);
                    return Err(e.into());
                }
            }
            let l = &layers[k];
            if missing.iter().any(|m| m.digest == l.digest) {
                opts.progress.event(Event::Layer {
                    digest: l.digest,
                    status: LayerStatus::PullComplete,
                });
            }
            c.next += 1;
        }
        Ok(())
    };
    // As docker: the layers queued behind the first downloads say so.
    for l in missing.iter().skip(CONCURRENT_DOWNLOADS) {
        opts.progress.event(Event::Layer {
            digest: l.digest,
            status: LayerStatus::Waiting,
        });
    }
    std::thread::scope(|sc| {
        for _ in 0..CONCURRENT_DOWNLOADS.min(layers.len()).max(1) {
            sc.spawn(|| {
                loop {
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(l) = layers.get(i) else { break };
                    let r = fetch_layer(
                        store,
                        sess,
                        repo,
                        l,
                        &diff_ids[i],
                        &keys[i],
                        lease,
                        opts.progress,
                    )
                    .and_then(|(record, staged)| complete(i, staged).map(|()| record));
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    results.lock().unwrap()[i] = Some(r);
                }
            });
        }
    });
    // After a failure, layers unpacked above the failed one were never committed.
    for dir in completed
        .into_inner()
        .unwrap()
        .done
        .into_iter()
        .flatten()
        .flatten()
    {
        discard(&dir);
    }
    let mut records = Vec::with_capacity(layers.len());
    for r in results.into_inner().unwrap().into_iter().flatten() {
        records.push(r?);
    }
    if records.len() != layers.len() {
        // A worker stopped after another's failure; that failure was returned above.
        return Err(Error::Invalid {
            what: "pull".into(),
            reason: "a layer was not fetched".into(),
        });
    }
    store.put_blob(lease, &manifest.bytes, Some(&manifest.digest))?;
    let platform_of = |k: &str| {
        cfg.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let created = cfg
        .get("created")
        .and_then(|v| v.as_str())
        .and_then(kiln_store::timestamp::parse_rfc3339);
    let tags: Vec<String> = tag.into_iter().map(str::to_string).collect();
    let (image, changes) = store.record_image(
        &NewImage {
            manifest_digest: manifest.digest,
            manifest_media_type: manifest.media_type.clone(),
            config_digest: config.digest,
            layers: records,
            created,
            architecture: platform_of("architecture"),
            os: platform_of("os"),
            parent: None,
        },
        &tags,
    )?;
    Ok((image, changes))
}

fn check_blob_status(status: u16, url: &str, digest: &Digest) -> Result<()> {
    match status {
        200 | 206 => Ok(()),
        404 => Err(Error::Status {
            method: "GET",
            url: url.to_string(),
            status,
            message: format!("blob unknown: {digest}"),
        }),
        _ => Err(Error::Status {
            method: "GET",
            url: url.to_string(),
            status,
            message: String::new(),
        }),
    }
}

/// Layers finished, waiting for the ones under them before their snapshots are committed.
struct Ordered {
    /// The lowest layer not yet committed.
    next: usize,
    /// Per layer: finished (`Some`), with its unpacked staging directory if it made one.
    done: Vec<Option<Option<PathBuf>>>,
}

/// Removes a staging directory (a failed or unneeded unpack). Best effort: what is left is
/// this process's temp entry, which the next open of the store removes once it has exited.
fn discard(dir: &Path) {
    let _ = kiln_snapshot::remove_dir_all(dir);
}

/// Decompresses the blob at `path`, hashes the tar and checks it as extraction would (or
/// unpacks it, as `tar` says): its digest must be `diff_id`. Returns the tar's length.
fn check_diff_id(
    path: &Path,
    media_type: &str,
    diff_id: &Digest,
    what: &str,
    tar: verify::Tar,
) -> Result<u64> {
    let verified = verify::verify_file(path, media_type, tar).map_err(|e| Error::Read {
        what: path.display().to_string(),
        source: e,
    })?;
    checked(verified, diff_id, what)
}

/// The verifier's answer against the config's diff ID: the tar's length, or why the layer is
/// refused (it does not decompress, its tar would not extract, or it is another tar).
fn checked(verified: verify::Verified, diff_id: &Digest, what: &str) -> Result<u64> {
    let c = verified.map_err(|e| Error::Invalid {
        what: what.to_string(),
        reason: e.to_string(),
    })?;
    if c.diff_id != *diff_id {
        return Err(Error::DigestMismatch {
            what: format!("{what} (uncompressed, against the config's diff_id)"),
            expected: diff_id.to_string(),
            actual: c.diff_id.to_string(),
        });
    }
    if let Some(stats) = &c.unpacked {
        warn_rootless_losses(what, stats);
    }
    Ok(c.len)
}

/// Rootless extraction leaves out what a user namespace cannot make (docs/rootless.md): said
/// once per layer on stderr, in the words of a build's lazy unpack (kiln-build's
/// `rootfs::unpack`), which this unpack replaces. Written to fd 2 without taking
/// `std::io::stderr()`'s lock, which a build's progress view holds while it pulls a base.
fn warn_rootless_losses(what: &str, stats: &kiln_snapshot::ExtractStats) {
    let short = what.strip_prefix("layer sha256:").unwrap_or(what);
    let short = &short[..short.len().min(12)];
    let mut lines = String::new();
    if stats.devices_skipped > 0 {
        lines += &format!(
            "kiln: warning: layer {short}: {} device node(s) not created: a rootless user namespace cannot make device nodes (the image's layer keeps them)\n",
            stats.devices_skipped
        );
    }
    if stats.xattrs_skipped > 0 {
        lines += &format!(
            "kiln: warning: layer {short}: {} trusted.* extended attribute(s) not set: rootless kiln cannot set them (the image's layer keeps them)\n",
            stats.xattrs_skipped
        );
    }
    if lines.is_empty() {
        return;
    }
    // SAFETY: fd 2 is open for the life of the process; it is only borrowed to duplicate it.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(2) };
    if let Ok(owned) = fd.try_clone_to_owned() {
        let _ = std::fs::File::from(owned).write_all(lines.as_bytes());
    }
}

/// Fetches (or re-checks the store's copy of) one layer, unpacking it into a staging
/// directory unless the store has its snapshot (`key`): the layer's record, and the
/// filled staging directory to commit once the layers under it are committed. On an error
/// the staging directory is gone.
#[allow(clippy::too_many_arguments)]
fn fetch_layer(
    store: &Store,
    sess: &Session,
    repo: &str,
    l: &Descriptor,
    diff_id: &Digest,
    key: &str,
    lease: &Lease,
    progress: &dyn Progress,
) -> Result<(LayerRecord, Option<PathBuf>)> {
    // The lease holds an existing snapshot until the image does: a layer above it may name
    // it as parent.
    let mut staging = match lease.use_snapshot(key)? {
        Some(_) => None,
        None => Some(store.prepare_snapshot_dir()?),
    };
    match fetch_layer_into(store, sess, repo, l, diff_id, lease, progress, &mut staging) {
        Ok(record) => Ok((record, staging)),
        Err(e) => {
            if let Some(dir) = &staging {
                discard(dir);
            }
            Err(e)
        }
    }
}

/// What to do with a layer's tar: unpack it into `staging`, or only check it.
fn tar_job(staging: &Option<PathBuf>) -> verify::Tar {
    match staging {
        Some(dir) => verify::Tar::Unpack(dir.clone()),
        None => verify::Tar::Check,
    }
}

#[allow(clippy::too_many_arguments)]
fn fetch_layer_into(
    store: &Store,
    sess: &Session,
    repo: &str,
    l: &Descriptor,
    diff_id: &Digest,
    lease: &Lease,
    progress: &dyn Progress,
    staging: &mut Option<PathBuf>,
) -> Result<LayerRecord> {
    let what = format!("layer {}", l.digest);
    if store.has_blob(&l.digest) {
        lease.protect(kiln_store::RefKind::Blob, &l.digest.to_string())?;
        let path = store.blob_path(&l.digest);
        let uncompressed = check_diff_id(&path, &l.media_type, diff_id, &what, tar_job(staging))?;
        return Ok(LayerRecord {
            blob: l.digest,
            diff_id: *diff_id,
            media_type: l.media_type.clone(),
            compressed_size: l.size,
            uncompressed_size: uncompressed,
        });
    }
    // The diff ID is checked, and the tar unpacked, while the blob downloads: threads
    // decompress the bytes as they arrive, check and hash the tar, and unpack it.
    let verify::Verifier {
        tx,
        handle: verifier,
        consumed,
        done: finished,
    } = verify::spawn(&l.media_type, tar_job(staging));
    let mut tx = Some(tx);
    let downloaded = download(store, sess, repo, l, progress, &mut tx);
    let streamed = tx.is_some();
    drop(tx);
    // The blob is sealed (flushed, fsynced, its digest computed) while the verifier
    // finishes the last bytes; the verifier is joined whatever happened.
    let sealed = downloaded.and_then(|mut w| {
        w.flush().map_err(|e| Error::Read {
            what: what.clone(),
            source: e,
        })?;
        progress.event(Event::Layer {
            digest: l.digest,
            status: LayerStatus::Verifying,
        });
        let pending = w.finish()?;
        if pending.info().digest != l.digest {
            return Err(Error::DigestMismatch {
                what: what.clone(),
                expected: l.digest.to_string(),
                actual: pending.info().digest.to_string(),
            });
        }
        Ok(pending)
    });
    if sealed.is_ok() {
        // docker's order: the blob is verified, then the layer extracts (here it has been
        // extracting all along; what is left of it shows).
        progress.event(Event::Layer {
            digest: l.digest,
            status: LayerStatus::DownloadComplete,
        });
        if streamed && staging.is_some() {
            loop {
                let done = consumed.load(Ordering::Relaxed).min(l.size);
                progress.event(Event::Layer {
                    digest: l.digest,
                    status: LayerStatus::Extracting(done, l.size),
                });
                match finished.recv_timeout(Duration::from_millis(100)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
        }
    }
    let verified = verifier.join();
    let pending = sealed?;
    let uncompressed = match (streamed, verified) {
        (true, Ok(v)) => checked(v, diff_id, &what)?,
        // The server restarted the blob (ignored a Range): check (and unpack) the file
        // instead, into a fresh directory.
        _ => {
            if let Some(old) = staging.take() {
                discard(&old);
                *staging = Some(store.prepare_snapshot_dir()?);
            }
            check_diff_id(
                pending.path(),
                &l.media_type,
                diff_id,
                &what,
                tar_job(staging),
            )?
        }
    };
    let info = pending.commit(lease, Some(&l.digest))?;
    Ok(LayerRecord {
        blob: info.digest,
        diff_id: *diff_id,
        media_type: l.media_type.clone(),
        compressed_size: info.size,
        uncompressed_size: uncompressed,
    })
}

/// Downloads a blob into a new blob writer, resuming with `Range` after a dropped
/// connection or a body that ends short, [`DOWNLOAD_ATTEMPTS`] attempts in all (a 404 or
/// another 4xx is not retried). A server that ignores the range (200) starts the blob over;
/// one that answers another range than asked is not trusted with this attempt's bytes. The
/// size is checked; the digest is the caller's.
fn download(
    store: &Store,
    sess: &Session,
    repo: &str,
    l: &Descriptor,
    progress: &dyn Progress,
    verifier: &mut Option<SyncSender<Vec<u8>>>,
) -> Result<kiln_store::BlobWriter> {
    let url = sess.url(&format!("{repo}/blobs/{}", l.digest));
    let what = format!("layer {}", l.digest);
    let mut w = store.blob_writer()?;
    let mut attempt = 1u32;
    let mut resumed_at: Vec<u64> = Vec::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let offset = w.len();
        let range = format!("bytes={offset}-");
        let headers: &[(&str, &str)] = if offset > 0 {
            &[("Range", &range)]
        } else {
            &[]
        };
        let err: Error = match sess.send("GET", &url, headers, SendBody::none()) {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let content_range = resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                if status >= 500 {
                    let body = read_small(resp, 1 << 16, &url).unwrap_or_default();
                    Error::Status {
                        method: "GET",
                        url: url.clone(),
                        status,
                        message: error_message(&body).1,
                    }
                } else if status == 206 && !range_starts_at(content_range.as_deref(), offset) {
                    Error::Invalid {
                        what: url.clone(),
                        reason: format!(
                            "asked for bytes {offset}- and answered with Content-Range {:?}",
                            content_range.unwrap_or_default()
                        ),
                    }
                } else {
                    check_blob_status(status, &url, &l.digest)?;
                    if offset > 0 && status == 200 {
                        // The server ignored the range: start over (and check the diff ID
                        // from the file at the end).
                        w = store.blob_writer()?;
                        *verifier = None;
                    }
                    let mut body = resp.into_body();
                    let mut reader = body.as_reader();
                    let mut read_err = None;
                    loop {
                        match reader.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                if w.len() + n as u64 > l.size {
                                    return Err(Error::DigestMismatch {
                                        what,
                                        expected: format!("{} ({} bytes)", l.digest, l.size),
                                        actual: format!("more than {} bytes", l.size),
                                    });
                                }
                                w.write_all(&buf[..n]).map_err(|e| Error::Read {
                                    what: what.clone(),
                                    source: e,
                                })?;
                                if let Some(v) = verifier
                                    && v.send(buf[..n].to_vec()).is_err()
                                {
                                    *verifier = None;
                                }
                                progress.event(Event::Layer {
                                    digest: l.digest,
                                    status: LayerStatus::Downloading(w.len(), l.size),
                                });
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => {
                                read_err = Some(e);
                                break;
                            }
                        }
                    }
                    if w.len() == l.size {
                        return Ok(w);
                    }
                    let short = format!("the body ended after {} of {} bytes", w.len(), l.size);
                    Error::Read {
                        what: url.clone(),
                        source: match read_err {
                            Some(e) => std::io::Error::new(e.kind(), format!("{short}: {e}")),
                            None => std::io::Error::new(std::io::ErrorKind::UnexpectedEof, short),
                        },
                    }
                }
            }
            Err(e @ Error::Http { .. }) => e,
            Err(e) => return Err(e),
        };
        if attempt >= DOWNLOAD_ATTEMPTS {
            return Err(Error::GaveUp {
                what,
                attempts: attempt,
                resumed: resumed_at,
                last: Box::new(err),
            });
        }
        let delay = RETRY_DELAY * attempt;
        attempt += 1;
        if !w.is_empty() {
            resumed_at.push(w.len());
        }
        progress.event(Event::Layer {
            digest: l.digest,
            status: LayerStatus::Retrying {
                offset: w.len(),
                attempt,
                of: DOWNLOAD_ATTEMPTS,
                delay,
            },
        });
        std::thread::sleep(delay);
    }
}

/// Whether a 206's `Content-Range: bytes START-END/SIZE` starts where it was asked to.
fn range_starts_at(content_range: Option<&str>, offset: u64) -> bool {
    content_range
        .and_then(|v| v.trim().strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|start| start.trim().parse::<u64>().ok())
        == Some(offset)
}
