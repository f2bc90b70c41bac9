//! Image indexes (multi-platform images) in the store: recording, tags, platform resolution,
//! and how removal, prune, collection and check treat them — against a real store in a temp
//! directory.

use kiln_image::manifest::{DescriptorOut, build_manifest};
use kiln_image::{Digest, Platform};
use kiln_store::{Error, LayerRecord, NewImage, PruneScope, RemoveEvent, Store};

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

/// Records a one-layer image whose config says `platform`, tagged `tags`.
fn add_image(store: &Store, platform: &str, content: &[u8], tags: &[&str]) -> Digest {
    let p = Platform::parse(platform).unwrap();
    let lease = store.lease().unwrap();
    let tar = tar_with("f", content);
    let info = store.put_blob(&lease, &tar, None).unwrap();
    let mut config = serde_json::json!({
        "architecture": p.architecture, "os": p.os, "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [info.digest.to_string()]},
    });
    if let Some(v) = &p.variant {
        config["variant"] = v.clone().into();
    }
    let config = serde_json::to_vec(&config).unwrap();
    let cinfo = store.put_blob(&lease, &config, None).unwrap();
    let (manifest, mdigest) = build_manifest(
        &DescriptorOut::new(
            "application/vnd.oci.image.config.v1+json",
            cinfo.digest,
            cinfo.size,
        ),
        &[DescriptorOut::new(
            "application/vnd.oci.image.layer.v1.tar",
            info.digest,
            info.size,
        )],
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
                layers: vec![LayerRecord {
                    blob: info.digest,
                    diff_id: info.digest,
                    media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                    compressed_size: info.size,
                    uncompressed_size: info.size,
                }],
                created: Some(1_700_000_000),
                architecture: p.architecture.clone(),
                os: p.os.clone(),
                parent: None,
            },
            &tags,
        )
        .unwrap();
    rec.id
}

fn plat(s: &str) -> Platform {
    Platform::parse(s).unwrap()
}

/// amd64 + arm64 + arm/v7 images under one index tagged `multi`.
fn three_platforms(store: &Store) -> (Digest, [Digest; 3]) {
    let amd = add_image(store, "linux/amd64", b"amd64", &[]);
    let arm64 = add_image(store, "linux/arm64", b"arm64", &[]);
    let arm = add_image(store, "linux/arm/v7", b"arm", &[]);
    let index = store
        .put_index(&[
            (plat("linux/amd64"), amd),
            (plat("linux/arm64"), arm64),
            (plat("linux/arm/v7"), arm),
        ])
        .unwrap();
    store.tag_index(&index, "multi").unwrap();
    (index, [amd, arm64, arm])
}

fn host_is_amd64() {
    assert_eq!(
        Platform::host().architecture,
        "amd64",
        "these tests expect an amd64 host (the index's first entry is amd64)"
    );
}

#[test]
fn put_index_writes_an_oci_index_blob_with_platforms() {
    let (_d, store) = store();
    let (index, [amd, arm64, arm]) = three_platforms(&store);
    let bytes = store.read_blob(&index).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(doc["schemaVersion"], 2);
    let m = doc["manifests"].as_array().unwrap();
    assert_eq!(m.len(), 3);
    for (d, (id, os, arch, variant)) in m.iter().zip([
        (amd, "linux", "amd64", None),
        (arm64, "linux", "arm64", None),
        (arm, "linux", "arm", Some("v7")),
    ]) {
        let img = store.image(&id).unwrap().unwrap();
        assert_eq!(d["digest"], img.manifest_digest.to_string());
        assert_eq!(d["mediaType"], img.manifest_media_type);
        assert_eq!(
            d["size"].as_u64().unwrap(),
            store.blob_size(&img.manifest_digest).unwrap()
        );
        assert_eq!(d["platform"]["os"], os);
        assert_eq!(d["platform"]["architecture"], arch);
        assert_eq!(d["platform"]["variant"].as_str(), variant);
    }
    // Deterministic: the same entries give the same digest.
    let again = store
        .put_index(&[
            (plat("linux/amd64"), amd),
            (plat("linux/arm64"), arm64),
            (plat("linux/arm/v7"), arm),
        ])
        .unwrap();
    assert_eq!(again, index);
    let rec = store.index(&index).unwrap().unwrap();
    assert_eq!(
        rec.platforms()
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    );
    assert_eq!(rec.tags, ["docker.io/library/multi:latest"]);
    assert_eq!(rec.size, bytes.len() as u64);
    // The store's own index.json lists the tag as the index.
    let layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.root().join("index.json")).unwrap()).unwrap();
    assert_eq!(layout["manifests"][0]["digest"], index.to_string());
    assert_eq!(
        layout["manifests"][0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
}

#[test]
fn a_tag_to_an_index_resolves_to_the_host_entry_or_the_platform_asked_for() {
    host_is_amd64();
    let (_d, store) = store();
    let (index, [amd, arm64, arm]) = three_platforms(&store);
    assert_eq!(store.resolve_image("multi").unwrap().id, amd);
    // The index digest works as an image ID too (docker's containerd store shows it).
    assert_eq!(store.resolve_image(&index.to_string()).unwrap().id, amd);
    assert_eq!(store.resolve_image(&index.hex()[..12]).unwrap().id, amd);
    assert_eq!(store.resolve_index("multi").unwrap().unwrap().digest, index);
    assert!(store.resolve_index(&amd.to_string()).unwrap().is_none());
    assert_eq!(
        store
            .resolve_platform("multi", &plat("linux/arm64"))
            .unwrap()
            .id,
        arm64
    );
    assert_eq!(
        store
            .resolve_platform("multi", &plat("linux/arm64/v8"))
            .unwrap()
            .id,
        arm64
    );
    assert_eq!(
        store.resolve_platform("multi", &plat("arm")).unwrap().id,
        arm
    );
    let err = store
        .resolve_platform("multi", &plat("linux/riscv64"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no matching manifest for linux/riscv64 in the manifest list entries (it has: linux/amd64, linux/arm64, linux/arm/v7)"
    );
    // The image's own tags do not include the index's tag.
    assert!(store.image(&amd).unwrap().unwrap().tags.is_empty());
    // Single images: their platform or docker 24's error.
    add_image(&store, "linux/amd64", b"single", &["single"]);
    store
        .resolve_platform("single", &plat("linux/amd64"))
        .unwrap();
    let err = store
        .resolve_platform("single", &plat("linux/arm64"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "image with reference single was found but does not match the specified platform: wanted linux/arm64, actual: linux/amd64"
    );
    // The variant is recorded from the config.
    let rec = store.image(&arm).unwrap().unwrap();
    assert_eq!(rec.variant.as_deref(), Some("v7"));
    assert_eq!(rec.platform().to_string(), "linux/arm/v7");
}

#[test]
fn tagging_an_image_over_an_index_tag_and_back() {
    let (_d, store) = store();
    let (index, [amd, ..]) = three_platforms(&store);
    let other = add_image(&store, "linux/amd64", b"other", &[]);
    let change = store.tag(&other, "multi").unwrap();
    assert_eq!(change.previous, Some(index));
    assert!(store.resolve_index("multi").unwrap().is_none());
    assert_eq!(store.resolve_image("multi").unwrap().id, other);
    let change = store.tag_index(&index, "multi").unwrap();
    assert_eq!(change.previous, Some(other));
    assert_eq!(store.resolve_image("multi").unwrap().id, amd);
    assert!(store.image(&other).unwrap().unwrap().tags.is_empty());
}

#[test]
fn put_index_refuses_a_platform_the_image_is_not() {
    let (_d, store) = store();
    let amd = add_image(&store, "linux/amd64", b"amd64", &[]);
    let err = store.put_index(&[(plat("linux/arm64"), amd)]).unwrap_err();
    assert!(
        err.to_string()
            .contains("is linux/amd64, listed as linux/arm64"),
        "{err}"
    );
    let err = store
        .put_index(&[(plat("linux/amd64"), amd), (plat("linux/amd64"), amd)])
        .unwrap_err();
    assert!(err.to_string().contains("appears twice"), "{err}");
    assert!(store.put_index(&[]).is_err());
    let missing = Digest::of(b"nope");
    assert!(matches!(
        store.put_index(&[(plat("linux/amd64"), missing)]),
        Err(Error::ImageNotFound(_))
    ));
    assert!(store.indexes().unwrap().is_empty());
}

#[test]
fn an_index_keeps_its_images_through_prune_and_collection() {
    let (_d, store) = store();
    let (index, ids) = three_platforms(&store);
    let report = store
        .prune_images(PruneScope::Dangling, &|_| false)
        .unwrap();
    assert!(report.images.is_empty(), "{:?}", report.images);
    store.collect_garbage().unwrap();
    assert!(store.has_blob(&index));
    for id in ids {
        let img = store.image(&id).unwrap().unwrap();
        assert!(store.has_blob(&img.manifest_digest));
    }
    let check = store.check(false).unwrap();
    assert!(check.is_clean(), "{:?}", check.problems);
    assert_eq!(check.unreferenced_blobs, 0);
}

#[test]
fn rmi_of_an_image_an_index_lists_needs_force_and_takes_the_index() {
    let (_d, store) = store();
    let (index, [amd, arm64, arm]) = three_platforms(&store);
    let err = store.remove_image(&arm64.to_string(), false).unwrap_err();
    assert!(
        err.to_string()
            .contains("(must be forced) - image is a platform of image index"),
        "{err}"
    );
    let (events, _) = store.remove_image(&arm64.to_string(), true).unwrap();
    assert_eq!(
        events[..3],
        [
            RemoveEvent::Untagged("docker.io/library/multi:latest".into()),
            RemoveEvent::Deleted(index),
            RemoveEvent::Deleted(arm64),
        ]
    );
    assert!(store.index(&index).unwrap().is_none());
    assert!(!store.has_blob(&index));
    // The other platforms stay, untagged: dangling now.
    assert!(store.image(&amd).unwrap().is_some());
    let report = store
        .prune_images(PruneScope::Dangling, &|_| false)
        .unwrap();
    let deleted: Vec<_> = report
        .images
        .iter()
        .filter(|e| matches!(e, RemoveEvent::Deleted(d) if *d == amd || *d == arm))
        .collect();
    assert_eq!(deleted.len(), 2);
}

#[test]
fn rmi_of_an_index_tag_removes_the_index_and_the_images_only_it_kept() {
    let (_d, store) = store();
    let (index, [amd, arm64, arm]) = three_platforms(&store);
    // arm64 also has a tag of its own; a second tag keeps the index.
    store.tag(&arm64, "arm64only").unwrap();
    store.tag_index(&index, "multi:two").unwrap();
    let (events, _) = store.remove_image("multi", false).unwrap();
    assert_eq!(
        events,
        [RemoveEvent::Untagged(
            "docker.io/library/multi:latest".into()
        )]
    );
    assert!(store.index(&index).unwrap().is_some());
    let (events, freed) = store.remove_image("multi:two", false).unwrap();
    assert_eq!(
        events[..2],
        [
            RemoveEvent::Untagged("docker.io/library/multi:two".into()),
            RemoveEvent::Deleted(index),
        ]
    );
    assert!(events.contains(&RemoveEvent::Deleted(amd)));
    assert!(events.contains(&RemoveEvent::Deleted(arm)));
    assert!(!events.contains(&RemoveEvent::Deleted(arm64)));
    assert!(freed > 0);
    assert!(store.image(&arm64).unwrap().is_some());
    assert!(store.image(&amd).unwrap().is_none());
    assert!(!store.has_blob(&index));
    let check = store.check(false).unwrap();
    assert!(check.is_clean(), "{:?}", check.problems);
    assert_eq!(check.unreferenced_blobs, 0);
}

#[test]
fn rmi_of_an_index_by_digest_with_two_tags_needs_force() {
    let (_d, store) = store();
    let (index, _) = three_platforms(&store);
    store.tag_index(&index, "multi:two").unwrap();
    let err = store.remove_image(&index.to_string(), false).unwrap_err();
    assert!(
        err.to_string()
            .contains("referenced in multiple repositories"),
        "{err}"
    );
    let (events, _) = store.remove_image(&index.to_string(), true).unwrap();
    assert_eq!(
        events[..3],
        [
            RemoveEvent::Untagged("docker.io/library/multi:latest".into()),
            RemoveEvent::Untagged("docker.io/library/multi:two".into()),
            RemoveEvent::Deleted(index),
        ]
    );
    assert!(store.images().unwrap().is_empty());
    assert!(store.indexes().unwrap().is_empty());
}

#[test]
fn prune_all_removes_unused_indexes_and_dangling_prune_untagged_ones() {
    let (_d, store) = store();
    let (index, _) = three_platforms(&store);
    let report = store.prune_images(PruneScope::Unused, &|_| false).unwrap();
    assert!(report.images.contains(&RemoveEvent::Deleted(index)));
    assert!(store.images().unwrap().is_empty());
    // An untagged index is dangling.
    let a = add_image(&store, "linux/amd64", b"a", &[]);
    let b = add_image(&store, "linux/arm64", b"b", &[]);
    let untagged = store
        .put_index(&[(plat("linux/amd64"), a), (plat("linux/arm64"), b)])
        .unwrap();
    let report = store
        .prune_images(PruneScope::Dangling, &|_| false)
        .unwrap();
    assert_eq!(report.images[0], RemoveEvent::Deleted(untagged));
    assert!(store.images().unwrap().is_empty());
    assert_eq!(store.check(false).unwrap().unreferenced_blobs, 0);
}
