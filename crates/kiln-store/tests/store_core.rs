//! Store core: blobs, leases, images and tags, removal and collection, snapshots, cache,
//! containers and check — against a real store in a temp directory.

use kiln_image::Digest;
use kiln_image::manifest::{DescriptorOut, build_manifest};
use kiln_store::{
    CachePrune, ContainerState, Error, LayerRecord, NewImage, Problem, PruneScope, RefKind,
    RemoveEvent, Store,
};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("root")).unwrap();
    (dir, store)
}

fn tar_with(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

/// Writes a one-layer (or more) image's blobs and records it with `tags`.
fn add_image(store: &Store, layers: &[&[u8]], created: &str, tags: &[&str]) -> Digest {
    let lease = store.lease().unwrap();
    let mut recs = Vec::new();
    let mut descs = Vec::new();
    for content in layers {
        let tar = tar_with("f", content);
        let info = store.put_blob(&lease, &tar, None).unwrap();
        recs.push(LayerRecord {
            blob: info.digest,
            diff_id: info.digest,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            compressed_size: info.size,
            uncompressed_size: info.size,
        });
        descs.push(DescriptorOut::new(
            "application/vnd.oci.image.layer.v1.tar",
            info.digest,
            info.size,
        ));
    }
    let diff_ids: Vec<String> = recs.iter().map(|r| r.diff_id.to_string()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": created,
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cinfo = store.put_blob(&lease, &config, None).unwrap();
    let (manifest, mdigest) = build_manifest(
        &DescriptorOut::new(
            "application/vnd.oci.image.config.v1+json",
            cinfo.digest,
            cinfo.size,
        ),
        &descs,
    );
    store.put_blob(&lease, &manifest, Some(&mdigest)).unwrap();
    let tags: Vec<String> = tags
        .iter()
        .map(|t| kiln_image::ImageRef::parse(t).unwrap().to_string())
        .collect();
    let (rec, _) = store
        .record_image(
            &NewImage {
                manifest_digest: mdigest,
                manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                config_digest: cinfo.digest,
                layers: recs,
                created: Some(1_700_000_000),
                architecture: "amd64".into(),
                os: "linux".into(),
                parent: None,
            },
            &tags,
        )
        .unwrap();
    rec.id
}

fn blob_count(store: &Store) -> usize {
    std::fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .count()
}

#[test]
fn blob_with_lying_digest_is_rejected_and_never_visible() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let claimed = Digest::of(b"something else");
    let err = store
        .put_blob(&lease, b"hello", Some(&claimed))
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(!store.has_blob(&claimed));
    assert_eq!(blob_count(&store), 0);
    assert_eq!(
        std::fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0
    );
    let ok = store
        .put_blob(&lease, b"hello", Some(&Digest::of(b"hello")))
        .unwrap();
    assert_eq!(ok.size, 5);
    assert_eq!(store.read_blob(&ok.digest).unwrap(), b"hello");
    assert_eq!(store.blob_size(&ok.digest).unwrap(), 5);
}

#[test]
fn images_resolve_by_name_full_id_and_prefix() {
    let (_d, store) = store();
    let id = add_image(&store, &[b"one"], "2023-01-01T00:00:00Z", &["busybox"]);
    assert_eq!(store.resolve_image("busybox").unwrap().id, id);
    assert_eq!(store.resolve_image("busybox:latest").unwrap().id, id);
    assert_eq!(
        store.resolve_image("docker.io/library/busybox").unwrap().id,
        id
    );
    assert_eq!(store.resolve_image(&id.to_string()).unwrap().id, id);
    assert_eq!(store.resolve_image(&id.hex()[..12]).unwrap().id, id);
    assert!(matches!(
        store.resolve_image("nope"),
        Err(Error::ImageNotFound(_))
    ));
    let img = store.image(&id).unwrap().unwrap();
    assert_eq!(
        img.tags,
        vec!["docker.io/library/busybox:latest".to_string()]
    );
    let layers = store.layers(&id).unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(img.size, layers[0].uncompressed_size);
}

#[test]
fn moving_a_tag_reports_the_previous_image() {
    let (_d, store) = store();
    let a = add_image(&store, &[b"a"], "2023-01-01T00:00:00Z", &["app:1"]);
    let b = add_image(&store, &[b"b"], "2023-01-01T00:00:00Z", &[]);
    let change = store.tag(&b, "app:1").unwrap();
    assert_eq!(change.previous, Some(a));
    assert_eq!(store.resolve_image("app:1").unwrap().id, b);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.root().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
}

/// A tag never claims a digest: `name@sha256:…` would make `FROM name@sha256:…` resolve to an
/// image whose manifest has another digest.
#[test]
fn a_tag_with_a_digest_is_refused() {
    let (_d, store) = store();
    let a = add_image(&store, &[b"a"], "2023-01-01T00:00:00Z", &[]);
    let forged = format!("app@sha256:{}", "0".repeat(64));
    let err = store.tag(&a, &forged).unwrap_err();
    assert!(matches!(err, Error::DigestTag(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "refusing to create a tag with a digest reference"
    );
    assert!(store.resolve_image(&forged).is_err());
    assert!(store.image(&a).unwrap().unwrap().tags.is_empty());
}

#[test]
fn rmi_by_tag_untags_then_deletes_with_its_blobs() {
    let (_d, store) = store();
    let id = add_image(
        &store,
        &[b"x", b"y"],
        "2023-01-01T00:00:00Z",
        &["a:1", "a:2"],
    );
    let before = blob_count(&store);
    assert_eq!(before, 4);
    let (events, freed) = store.remove_image("a:1", false).unwrap();
    assert_eq!(
        events,
        vec![RemoveEvent::Untagged("docker.io/library/a:1".into())]
    );
    assert_eq!(freed, 0);
    // By ID with one tag left: untag + delete image + both layer chain IDs.
    let (events, freed) = store.remove_image(&id.hex()[..12], false).unwrap();
    assert_eq!(
        events[0],
        RemoveEvent::Untagged("docker.io/library/a:2".into())
    );
    assert_eq!(events[1], RemoveEvent::Deleted(id));
    assert_eq!(events.len(), 4);
    assert!(freed > 0);
    assert_eq!(blob_count(&store), 0);
    assert!(store.images().unwrap().is_empty());
}

#[test]
fn rmi_by_id_with_several_tags_needs_force() {
    let (_d, store) = store();
    let id = add_image(&store, &[b"x"], "2023-01-01T00:00:00Z", &["a:1", "b:1"]);
    let err = store.remove_image(&id.to_string(), false).unwrap_err();
    assert!(err.to_string().contains("must be forced"), "{err}");
    let (events, _) = store.remove_image(&id.to_string(), true).unwrap();
    assert_eq!(events.len(), 4); // 2 untagged, image, layer
}

#[test]
fn rmi_refuses_an_image_a_container_uses() {
    let (_d, store) = store();
    let id = add_image(&store, &[b"x"], "2023-01-01T00:00:00Z", &["a:1"]);
    store
        .add_container("c0ffee", Some("web"), &id, ContainerState::Running)
        .unwrap();
    let err = store.remove_image(&id.to_string(), true).unwrap_err();
    assert!(
        err.to_string().contains("running container c0ffee"),
        "{err}"
    );
    let err = store.remove_image("a:1", false).unwrap_err();
    assert!(err.to_string().contains("must force"), "{err}");
    // Forced untag keeps the image for the container.
    store
        .set_container_state("c0ffee", ContainerState::Exited)
        .unwrap();
    let (events, _) = store.remove_image("a:1", true).unwrap();
    assert_eq!(events.len(), 1);
    assert!(store.image(&id).unwrap().is_some());
    let report = store.prune_images(PruneScope::Unused, &|_| false).unwrap();
    assert!(report.images.is_empty());
    let report = store.system_prune(PruneScope::Dangling).unwrap();
    assert_eq!(report.containers, vec!["c0ffee".to_string()]);
    assert!(store.image(&id).unwrap().is_none());
}

#[test]
fn shared_layers_survive_removal_of_one_image() {
    let (_d, store) = store();
    let a = add_image(&store, &[b"base", b"a"], "2023-01-01T00:00:00Z", &["a"]);
    let b = add_image(&store, &[b"base", b"b"], "2023-01-01T00:00:00Z", &["b"]);
    store.remove_image("a", false).unwrap();
    assert!(store.image(&a).unwrap().is_none());
    for l in store.layers(&b).unwrap() {
        assert!(store.has_blob(&l.blob));
    }
    assert!(store.check(false).unwrap().problems.is_empty());
}

#[test]
fn prune_dangling_keeps_tagged_and_all_removes_unused() {
    let (_d, store) = store();
    let tagged = add_image(&store, &[b"t"], "2023-01-01T00:00:00Z", &["t"]);
    let dangling = add_image(&store, &[b"d"], "2023-01-01T00:00:00Z", &[]);
    let r = store
        .prune_images(PruneScope::Dangling, &|_| false)
        .unwrap();
    assert!(r.images.contains(&RemoveEvent::Deleted(dangling)));
    assert!(store.image(&tagged).unwrap().is_some());
    assert!(r.reclaimed > 0);
    let r = store.prune_images(PruneScope::Unused, &|_| false).unwrap();
    assert_eq!(
        r.images[0],
        RemoveEvent::Untagged("docker.io/library/t:latest".into())
    );
    assert!(store.images().unwrap().is_empty());
    assert_eq!(blob_count(&store), 0);
}

#[test]
fn leased_blobs_survive_garbage_collection_until_released() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let info = store.put_blob(&lease, b"fresh", None).unwrap();
    store.collect_garbage().unwrap();
    assert!(store.has_blob(&info.digest));
    drop(lease);
    let freed = store.collect_garbage().unwrap();
    assert_eq!(freed, 5);
    assert!(!store.has_blob(&info.digest));
}

#[test]
fn snapshots_commit_atomically_and_are_collected_when_unreferenced() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let dir = store.prepare_snapshot_dir().unwrap();
    std::fs::write(dir.join("file"), b"12345").unwrap();
    let snap = store.commit_snapshot(&lease, "k1", None, &dir).unwrap();
    assert!(!dir.exists());
    assert_eq!(std::fs::read(snap.path.join("file")).unwrap(), b"12345");
    assert_eq!(snap.size, 5);
    // A second writer for the same key loses quietly.
    let dir2 = store.prepare_snapshot_dir().unwrap();
    let again = store.commit_snapshot(&lease, "k1", None, &dir2).unwrap();
    assert_eq!(again.path, snap.path);
    assert!(!dir2.exists());
    // Children need their parent.
    let dir3 = store.prepare_snapshot_dir().unwrap();
    let err = store
        .commit_snapshot(&lease, "k2", Some("nope"), &dir3)
        .unwrap_err();
    assert!(matches!(err, Error::SnapshotParentMissing { .. }));
    // Not from tmp: refused.
    assert!(matches!(
        store.commit_snapshot(&lease, "k3", None, std::path::Path::new("/etc")),
        Err(Error::NotStoreTemp { .. })
    ));
    store
        .cache_put("rec", b"{}", &[(RefKind::Snapshot, "k1")])
        .unwrap();
    drop(lease);
    store.collect_garbage().unwrap();
    assert!(snap.path.exists(), "cache record keeps it");
    let (removed, freed) = store
        .cache_prune(CachePrune {
            all: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(removed, vec!["rec".to_string()]);
    assert_eq!(freed, 5);
    assert!(!snap.path.exists());
    assert!(store.snapshot("k1").unwrap().is_none());
}

#[test]
fn prehashed_blob_writers_take_the_callers_digest_and_hashing_ones_check_it() {
    use std::io::Write;
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    // Prehashed: the caller's digest names the blob (no second hash).
    let mut w = store.blob_writer_prehashed().unwrap();
    w.write_all(b"layer tar").unwrap();
    let info = w
        .finish_prehashed(Digest::of(b"layer tar"))
        .unwrap()
        .commit(&lease, None)
        .unwrap();
    assert_eq!(store.read_blob(&info.digest).unwrap(), b"layer tar");
    // A prehashed writer cannot finish without a digest.
    let mut w = store.blob_writer_prehashed().unwrap();
    w.write_all(b"x").unwrap();
    assert!(w.finish().is_err());
    // A hashing writer refuses a digest that is not its content's: nothing becomes visible.
    let mut w = store.blob_writer().unwrap();
    w.write_all(b"real").unwrap();
    let err = w.finish_prehashed(Digest::of(b"claimed")).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(!store.has_blob(&Digest::of(b"claimed")));
    assert_eq!(blob_count(&store), 1);
    assert_eq!(
        std::fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0
    );
    // Large blobs start their writeback as they go; the content is still exact.
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut w = store.blob_writer().unwrap();
    for c in big.chunks(100_000) {
        w.write_all(c).unwrap();
    }
    let info = w.finish().unwrap().commit(&lease, None).unwrap();
    assert_eq!(info.digest, Digest::of(&big));
    assert_eq!(std::fs::read(store.blob_path(&info.digest)).unwrap(), big);
}

#[test]
fn layers_made_from_snapshots_are_remembered_per_variant_until_their_blob_goes() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let look = |lease: &kiln_store::Lease, variant: &str| {
        lease
            .use_snapshot_layers(&["step:a"], variant, &[])
            .unwrap()
            .pop()
            .unwrap()
    };
    let dir = store.prepare_snapshot_dir().unwrap();
    std::fs::write(dir.join("f"), b"data").unwrap();
    store.commit_snapshot(&lease, "step:a", None, &dir).unwrap();
    assert_eq!(look(&lease, "tar1;none"), None, "nothing made yet");
    let tar = tar_with("f", b"data");
    let blob = store.put_blob(&lease, &tar, None).unwrap();
    let rec = LayerRecord {
        blob: blob.digest,
        diff_id: blob.digest,
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        compressed_size: blob.size,
        uncompressed_size: blob.size,
    };
    store
        .record_snapshot_layer("step:a", "tar1;none", &rec)
        .unwrap();
    // Recording again (a concurrent export of the same snapshot) is fine.
    store
        .record_snapshot_layer("step:a", "tar1;none", &rec)
        .unwrap();
    assert!(
        store
            .record_snapshot_layer("step:nope", "tar1;none", &rec)
            .is_err(),
        "only snapshots that exist"
    );
    store
        .cache_put("rec", b"{}", &[(RefKind::Snapshot, "step:a")])
        .unwrap();
    drop(lease);
    // Another way of making it (compression, SOURCE_DATE_EPOCH) is another blob.
    let lease = store.lease().unwrap();
    assert_eq!(look(&lease, "tar1;gzip"), None);
    // The record keeps nothing alive: with no image or lease holding it, the blob goes,
    // and so does the record.
    store.collect_garbage().unwrap();
    assert!(!store.has_blob(&blob.digest));
    assert_eq!(look(&lease, "tar1;none"), None);
    let blob2 = store.put_blob(&lease, &tar, None).unwrap();
    assert_eq!(blob2.digest, blob.digest);
    assert_eq!(
        look(&lease, "tar1;none"),
        None,
        "the record went with the blob"
    );
    store
        .record_snapshot_layer("step:a", "tar1;none", &rec)
        .unwrap();
    drop(lease);
    // A lookup protects the blob under the caller's lease, and so are the other blobs given.
    let lease = store.lease().unwrap();
    let other = store.put_blob(&lease, b"base layer", None).unwrap();
    drop(lease);
    let lease = store.lease().unwrap();
    assert_eq!(
        lease
            .use_snapshot_layers(&["step:a", "step:none"], "tar1;none", &[other.digest])
            .unwrap(),
        vec![Some(rec.clone()), None]
    );
    store.collect_garbage().unwrap();
    assert!(
        store.has_blob(&blob.digest),
        "protected by the lookup's lease"
    );
    assert!(
        store.has_blob(&other.digest),
        "protected by the lookup's lease"
    );
    drop(lease);
    // The record goes with its snapshot.
    store
        .cache_prune(CachePrune {
            all: true,
            ..Default::default()
        })
        .unwrap();
    assert!(store.snapshot("step:a").unwrap().is_none());
    let dir = store.prepare_snapshot_dir().unwrap();
    let lease = store.lease().unwrap();
    store.commit_snapshot(&lease, "step:a", None, &dir).unwrap();
    let _ = store.put_blob(&lease, &tar, None).unwrap();
    assert_eq!(look(&lease, "tar1;none"), None);
    assert!(store.check(false).unwrap().is_clean());
}

#[test]
fn cache_records_round_trip_and_prune_by_size() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let blob = store.put_blob(&lease, b"layer-bytes", None).unwrap();
    store
        .cache_put("a", b"1", &[(RefKind::Blob, &blob.digest.to_string())])
        .unwrap();
    store.cache_put("b", b"22", &[]).unwrap();
    assert_eq!(store.cache_get("a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(store.cache_get("zz").unwrap(), None);
    let usage = store.cache_usage().unwrap();
    assert_eq!(usage.count, 2);
    assert_eq!(usage.bytes, 1 + 11 + 2);
    let err = store
        .cache_put("c", b"", &[(RefKind::Snapshot, "missing")])
        .unwrap_err();
    assert!(matches!(err, Error::SnapshotNotFound { .. }));
    drop(lease);
    let (removed, _) = store
        .cache_prune(CachePrune {
            keep_bytes: Some(2),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(store.cache_records().unwrap().len(), 1);
}

#[test]
fn check_finds_and_repairs_a_corrupt_blob_and_its_image() {
    let (_d, store) = store();
    let id = add_image(&store, &[b"x"], "2023-01-01T00:00:00Z", &["a"]);
    let keep = add_image(&store, &[b"y"], "2023-01-01T00:00:00Z", &["b"]);
    let report = store.check(false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.blobs_checked, 6);
    let layer = store.layers(&id).unwrap()[0].blob;
    std::fs::write(store.blob_path(&layer), b"bit rot").unwrap();
    std::fs::write(store.root().join("blobs/sha256/junk"), b"?").unwrap();
    std::fs::create_dir(store.root().join("snapshots-v1/orphan")).unwrap();
    let report = store.check(false).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, Problem::CorruptBlob { .. }))
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, Problem::BrokenImage { image, .. } if *image == id))
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, Problem::StrayFile(_)))
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, Problem::OrphanSnapshotDir(_)))
    );
    assert!(!report.is_clean());
    let repaired = store.check(true).unwrap();
    assert!(repaired.repaired);
    let after = store.check(false).unwrap();
    assert!(after.problems.is_empty(), "{:?}", after.problems);
    assert!(store.image(&id).unwrap().is_none());
    assert!(store.image(&keep).unwrap().is_some());
}

#[test]
fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = Store::open(dir.path()).unwrap();
        add_image(&store, &[b"x"], "2023-01-01T00:00:00Z", &["a"])
    };
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.resolve_image("a").unwrap().id, id);
    assert!(store.check(false).unwrap().problems.is_empty());
}

#[test]
fn a_running_build_keeps_prunes_from_removing_cache_records() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let dir = store.prepare_snapshot_dir().unwrap();
    std::fs::write(dir.join("f"), b"abc").unwrap();
    let snap = store.commit_snapshot(&lease, "s1", None, &dir).unwrap();
    store
        .cache_put("rec", b"{}", &[(RefKind::Snapshot, "s1")])
        .unwrap();
    drop(lease);
    let all = CachePrune {
        all: true,
        ..Default::default()
    };
    // A cache hit is read-only and names the record's snapshots.
    let guard = store.build_guard().unwrap();
    let hit = store.cache_use("rec").unwrap().unwrap();
    assert_eq!(hit.snapshots.len(), 1);
    assert_eq!(hit.snapshots[0].path, snap.path);
    // Another process's view (a second handle opens its own lock file description).
    let other = Store::open(store.root()).unwrap();
    assert!(other.builds_running());
    assert_eq!(other.cache_prune_if_idle(all).unwrap(), None);
    assert!(snap.path.exists());
    // A blocking prune waits for the build, then removes the record and its snapshot.
    let pruner = std::thread::spawn(move || other.cache_prune(all).unwrap());
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!pruner.is_finished(), "prune must wait for the build");
    assert!(snap.path.exists());
    store.cache_touch(&["rec".to_string()]).unwrap();
    drop(guard);
    let (removed, _) = pruner.join().unwrap();
    assert_eq!(removed, vec!["rec".to_string()]);
    assert!(!snap.path.exists());
    assert!(!store.builds_running());
}

/// A hit says whether marking it used would change anything: a new record (never used) is
/// stale, one marked in the last minute is not, so a rebuild of fresh hits writes nothing.
#[test]
fn a_cache_hit_is_stale_until_it_is_marked_used() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let dir = store.prepare_snapshot_dir().unwrap();
    std::fs::write(dir.join("f"), b"abc").unwrap();
    store.commit_snapshot(&lease, "s1", None, &dir).unwrap();
    store
        .cache_put("rec", b"{}", &[(RefKind::Snapshot, "s1")])
        .unwrap();
    drop(lease);
    assert!(store.cache_use("rec").unwrap().unwrap().stale);
    store.cache_touch(&["rec".to_string()]).unwrap();
    assert!(!store.cache_use("rec").unwrap().unwrap().stale);
    assert!(store.cache_use("missing").unwrap().is_none());
}

/// A collection killed before its commit left a still-referenced blob and a snapshot
/// directory in `trash/` (its transaction rolled back); one killed after its commit left
/// content nothing references. The next open puts the first back and deletes the second.
#[test]
fn trash_of_a_killed_collection_is_put_back_or_deleted_as_the_database_says() {
    let (dir, store) = store();
    let id = add_image(&store, &[b"kept"], "2024-01-01T00:00:00Z", &["keep:1"]);
    let layer = store.layers(&id).unwrap()[0].blob;
    let lease = store.lease().unwrap();
    let snap_dir = store.prepare_snapshot_dir().unwrap();
    std::fs::write(snap_dir.join("f"), b"x").unwrap();
    let snap = store
        .commit_snapshot(&lease, "step:kept", None, &snap_dir)
        .unwrap();
    store
        .cache_put("kept", b"{}", &[(RefKind::Snapshot, "step:kept")])
        .unwrap();
    drop(lease);
    let root = dir.path().join("root");
    let dead = "0.1"; // pid 0 never runs a userspace process: a dead owner
    // Rolled back: the database still names the layer blob and the snapshot.
    std::fs::rename(
        root.join("blobs/sha256").join(layer.hex()),
        root.join(format!("trash/{dead}.blob-{}.0", layer.hex())),
    )
    .unwrap();
    let snap_name = snap.path.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::rename(
        &snap.path,
        root.join(format!("trash/{dead}.snap-{snap_name}.1")),
    )
    .unwrap();
    // Committed: an unreferenced blob's entry.
    let gone = Digest::of(b"nobody uses this");
    std::fs::write(
        root.join(format!("trash/{dead}.blob-{}.2", gone.hex())),
        b"nobody uses this",
    )
    .unwrap();
    drop(store);
    let store = Store::open(&root).unwrap();
    assert!(store.has_blob(&layer), "the referenced blob was put back");
    assert!(snap.path.is_dir(), "the recorded snapshot was put back");
    assert!(!store.has_blob(&gone));
    assert_eq!(std::fs::read_dir(root.join("trash")).unwrap().count(), 0);
    let report = store.check(false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// `check` sees a consistent state: an image recorded after its hashing pass started is
/// verified under the lock, not taken for broken.
#[test]
fn check_verifies_blobs_that_appear_after_its_hashing_pass() {
    let (_dir, store) = store();
    add_image(&store, &[b"one"], "2024-01-01T00:00:00Z", &["one:1"]);
    // Many blobs make the unlocked pass long enough for a writer to finish meanwhile.
    let lease = store.lease().unwrap();
    for i in 0..2000u32 {
        store.put_blob(&lease, &i.to_le_bytes(), None).unwrap();
    }
    std::thread::scope(|sc| {
        let checker = sc.spawn(|| {
            (0..10)
                .map(|i| store.check(i % 2 == 0).unwrap())
                .collect::<Vec<_>>()
        });
        for i in 0..30u8 {
            add_image(
                &store,
                &[&[i; 3]],
                "2024-01-01T00:00:00Z",
                &[&format!("n:{i}")],
            );
        }
        for r in checker.join().unwrap() {
            assert!(r.problems.is_empty(), "{:?}", r.problems);
        }
    });
    assert_eq!(store.images().unwrap().len(), 31);
}

/// A trash entry whose content does not match its name is never put back, even where the
/// database names the blob: it is deleted, and `check` then reports the image honestly.
#[test]
fn trash_entries_that_do_not_hold_their_blob_are_not_put_back() {
    let (dir, store) = store();
    let id = add_image(&store, &[b"real"], "2024-01-01T00:00:00Z", &["real:1"]);
    let layer = store.layers(&id).unwrap()[0].blob;
    let root = dir.path().join("root");
    std::fs::remove_file(root.join("blobs/sha256").join(layer.hex())).unwrap();
    std::fs::write(
        root.join(format!("trash/0.1.blob-{}.0", layer.hex())),
        b"planted",
    )
    .unwrap();
    drop(store);
    let store = Store::open(&root).unwrap();
    assert!(!store.has_blob(&layer));
    assert_eq!(std::fs::read_dir(root.join("trash")).unwrap().count(), 0);
    let report = store.check(false).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, Problem::BrokenImage { .. })),
        "{:?}",
        report.problems
    );
}

#[test]
fn container_records_resolve_names_and_prefixes_and_refuse_taken_names() {
    let (_d, store) = store();
    let id = add_image(&store, &[b"x"], "2023-01-01T00:00:00Z", &["a:1"]);
    let new = |cid: &'static str, name: &'static str| kiln_store::NewContainer {
        id: cid,
        name,
        image: &id,
        image_ref: "a:1",
        config: "{}",
        snapshots: &[],
    };
    store.create_container(&new("abc111", "web")).unwrap();
    store.create_container(&new("abc222", "db")).unwrap();
    let err = store.create_container(&new("def333", "web")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Conflict. The container name \"/web\" is already in use by container \"abc111\". You have to remove (or rename) that container to be able to reuse that name."
    );
    assert_eq!(store.find_container("web").unwrap().id, "abc111");
    assert_eq!(store.find_container("/db").unwrap().id, "abc222");
    assert_eq!(
        store.find_container("abc2").unwrap().name.as_deref(),
        Some("db")
    );
    assert!(
        store
            .find_container("abc")
            .unwrap_err()
            .to_string()
            .contains("multiple IDs")
    );
    assert!(matches!(
        store.find_container("zzz"),
        Err(Error::ContainerNotFound(_))
    ));
    // This process as the supervisor: running; then exited with its code.
    store.container_started("abc111", 42, "[]").unwrap();
    let c = store.find_container("web").unwrap();
    assert_eq!((c.state, c.pid), (ContainerState::Running, 42));
    assert!(c.started_ns > 0);
    store.container_finished("abc111", 3, "", true).unwrap();
    let c = store.find_container("web").unwrap();
    assert_eq!(
        (c.state, c.exit_code, c.pid),
        (ContainerState::Exited, 3, 0)
    );
    assert!(store.rename_container("abc111", "db").is_err());
    store.rename_container("abc111", "web2").unwrap();
    // A container keeps its image: rmi by tag needs -f.
    assert!(store.remove_image("a:1", false).is_err());
    store.remove_container("abc111").unwrap();
    store.remove_container("abc222").unwrap();
    assert!(store.containers().unwrap().is_empty());
    store.remove_image("a:1", false).unwrap();
}

#[test]
fn an_image_resolves_by_a_repository_digest_it_was_pulled_or_pushed_under() {
    let (_d, store) = store();
    let id = add_image(&store, &[b"one"], "2023-01-01T00:00:00Z", &[]);
    let other = add_image(&store, &[b"two"], "2023-01-01T00:00:00Z", &["busybox"]);
    let m = "sha256:72cb4253aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    store
        .record_repo_digest(&id, &format!("127.0.0.1:5055/other/bb@{m}"))
        .unwrap();
    for name in [
        format!("127.0.0.1:5055/other/bb@{m}"),
        // A tag beside the digest does not count, as in docker.
        format!("127.0.0.1:5055/other/bb:1@{m}"),
    ] {
        assert_eq!(store.resolve_image(&name).unwrap().id, id, "{name}");
    }
    // The digest under another repository, or another digest: not this image.
    assert!(matches!(
        store.resolve_image(&format!("127.0.0.1:5055/bb@{m}")),
        Err(Error::ImageNotFound(_))
    ));
    let m2 = m.replace("aaaa", "bbbb");
    assert!(matches!(
        store.resolve_image(&format!("127.0.0.1:5055/other/bb@{m2}")),
        Err(Error::ImageNotFound(_))
    ));
    assert_eq!(store.resolve_image("busybox").unwrap().id, other);
}

#[test]
fn an_images_unpacked_layers_outlive_collections_and_prunes_until_the_image_goes() {
    let (_d, store) = store();
    let id = add_image(&store, &[b"base", b"top"], "2023-01-01T00:00:00Z", &["app"]);
    let diffs: Vec<Digest> = store
        .layers(&id)
        .unwrap()
        .iter()
        .map(|l| l.diff_id)
        .collect();
    let keys: Vec<String> = kiln_store::chain_ids(&diffs)
        .iter()
        .map(kiln_store::layer_snapshot_key)
        .collect();
    // Unpacked as a pull or a first run does: bottom layer first, each on its parent.
    let lease = store.lease().unwrap();
    let mut paths = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let dir = store.prepare_snapshot_dir().unwrap();
        std::fs::write(dir.join("f"), key.as_bytes()).unwrap();
        let parent = i.checked_sub(1).map(|p| keys[p].as_str());
        paths.push(
            store
                .commit_snapshot(&lease, key, parent, &dir)
                .unwrap()
                .path,
        );
    }
    drop(lease);
    store.collect_garbage().unwrap();
    store
        .prune_build_cache(&kiln_store::BuildCachePrune {
            all: true,
            ..Default::default()
        })
        .unwrap();
    for (key, path) in keys.iter().zip(&paths) {
        assert!(
            store.snapshot(key).unwrap().is_some(),
            "{key} was collected"
        );
        assert!(path.exists(), "{} was removed", path.display());
    }
    // The build cache does not list what the image keeps.
    assert!(
        store
            .build_cache()
            .unwrap()
            .iter()
            .all(|e| !keys.contains(&e.id)),
        "an image's unpacked layer is listed as build cache"
    );
    store.remove_image("app", false).unwrap();
    for (key, path) in keys.iter().zip(&paths) {
        assert!(
            store.snapshot(key).unwrap().is_none(),
            "{key} outlived its image"
        );
        assert!(!path.exists());
    }
}
