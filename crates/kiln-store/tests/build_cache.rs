//! The build cache as `system df -v` / `builder prune` see it, and docker's image sizes —
//! against a real store in a temp directory.

use std::io::Write;

use kiln_image::Digest;
use kiln_image::manifest::{DescriptorOut, build_manifest};
use kiln_store::{BuildCachePrune, CacheKind, LayerRecord, NewImage, RefKind, Store};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("root")).unwrap();
    (dir, store)
}

/// A gzip layer: a 1000-byte file, a hard link to it, a symlink, and a FIFO.
fn layer_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1000);
    h.set_mode(0o644);
    b.append_data(&mut h, "data", &[7u8; 1000][..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    b.append_link(&mut h, "data-link", "data").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "sym", "some/where").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Fifo);
    h.set_size(0);
    b.append_data(&mut h, "fifo", std::io::empty()).unwrap();
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn add_image(store: &Store, tag: &str) -> Digest {
    let lease = store.lease().unwrap();
    let blob = layer_tar();
    let info = store.put_blob(&lease, &blob, None).unwrap();
    let diff_id = Digest::of(&{
        let mut out = Vec::new();
        std::io::copy(&mut flate2::read::GzDecoder::new(&blob[..]), &mut out).unwrap();
        out
    });
    let rec = LayerRecord {
        blob: info.digest,
        diff_id,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        compressed_size: info.size,
        uncompressed_size: 10240,
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    }))
    .unwrap();
    let cinfo = store.put_blob(&lease, &config, None).unwrap();
    let (manifest, mdigest) = build_manifest(
        &DescriptorOut::new(
            "application/vnd.oci.image.config.v1+json",
            cinfo.digest,
            cinfo.size,
        ),
        &[DescriptorOut::new(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            info.digest,
            info.size,
        )],
    );
    store.put_blob(&lease, &manifest, Some(&mdigest)).unwrap();
    let (img, _) = store
        .record_image(
            &NewImage {
                manifest_digest: mdigest,
                manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                config_digest: cinfo.digest,
                layers: vec![rec],
                created: Some(1_700_000_000),
                architecture: "amd64".into(),
                os: "linux".into(),
                parent: None,
            },
            &[kiln_image::ImageRef::parse(tag).unwrap().to_string()],
        )
        .unwrap();
    img.id
}

#[test]
fn image_size_is_the_unpacked_files_hard_links_once() {
    let (_d, store) = store();
    let id = add_image(&store, "sized:1");
    // 1000 (data and its hard link: one inode) + 10 ("some/where"); the FIFO counts 0.
    assert_eq!(store.layer_sizes(&id).unwrap(), vec![1010]);
    assert_eq!(store.image_size(&id).unwrap(), 1010);
    // Remembered: a second look does not need the blob.
    let layer = store.layers(&id).unwrap()[0].blob;
    std::fs::write(store.blob_path(&layer), b"gone").unwrap();
    assert_eq!(store.image_size(&id).unwrap(), 1010);
}

fn cache_mount(store: &Store, name: &str, bytes: usize) {
    let dir = store.cache_mounts_dir().join(name);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/f"), vec![1u8; bytes]).unwrap();
    std::fs::hard_link(dir.join("sub/f"), dir.join("again")).unwrap();
    std::os::unix::fs::symlink("sub/f", dir.join("link")).unwrap();
}

#[test]
fn entries_sizes_sharing_and_prune_selection() {
    let (_d, store) = store();
    let id = add_image(&store, "img:1");
    let image_blob = store.layers(&id).unwrap()[0].blob;
    let lease = store.lease().unwrap();
    let own = store.put_blob(&lease, &[9u8; 500], None).unwrap();
    store
        .cache_put(
            "sha256:aaaa",
            b"v",
            &[(RefKind::Blob, &own.digest.to_string())],
        )
        .unwrap();
    store
        .cache_put(
            "sha256:bbbb",
            b"v",
            &[(RefKind::Blob, &image_blob.to_string())],
        )
        .unwrap();
    store.cache_put("explain:sha256:cccc", b"v", &[]).unwrap();
    drop(lease);
    cache_mount(&store, "0123456789abcdef", 300);
    cache_mount(&store, ".seed-1-fedcba", 40);

    let entries = store.build_cache().unwrap();
    let find = |id: &str| entries.iter().find(|e| e.id == id).unwrap().clone();
    let a = find("sha256:aaaa");
    assert_eq!((a.kind, a.size, a.shared), (CacheKind::Regular, 500, false));
    let b = find("sha256:bbbb");
    // The image holds the blob: nothing freed by removing the record, and it is shared.
    assert_eq!((b.size, b.shared), (0, true));
    assert_eq!(find("explain:sha256:cccc").kind, CacheKind::Internal);
    let m = find("0123456789abcdef");
    // 300 bytes once for both links, plus the symlink's target "sub/f".
    assert_eq!((m.kind, m.size), (CacheKind::CacheMount, 305));
    assert_eq!(find(".seed-1-fedcba").size, 45);
    assert_eq!(entries.len(), 5);

    // Filters: by kind, by ID prefix (the digest part), by age.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let by_kind = BuildCachePrune {
        kinds: vec![CacheKind::CacheMount],
        ..Default::default()
    };
    assert_eq!(entries.iter().filter(|e| by_kind.selects(e, t)).count(), 2);
    let by_id = BuildCachePrune {
        all: true,
        ids: vec!["bbb".into()],
        ..Default::default()
    };
    assert_eq!(entries.iter().filter(|e| by_id.selects(e, t)).count(), 1);
    let old = BuildCachePrune {
        unused_for: Some(3600),
        ..Default::default()
    };
    assert_eq!(entries.iter().filter(|e| old.selects(e, t)).count(), 0);

    // Without all: the dangling record and the cache mounts; shared and internal stay.
    let report = store
        .prune_build_cache(&BuildCachePrune::default())
        .unwrap();
    let mut removed = report.removed.clone();
    removed.sort();
    assert_eq!(
        removed,
        [".seed-1-fedcba", "0123456789abcdef", "sha256:aaaa"]
    );
    assert_eq!(report.reclaimed, 500 + 305 + 45);
    assert!(!store.cache_mounts_dir().join("0123456789abcdef").exists());
    let left: Vec<String> = store
        .build_cache()
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");

    // keep_bytes above what is left removes nothing; all removes the rest, image kept.
    let report = store
        .prune_build_cache(&BuildCachePrune {
            all: true,
            keep_bytes: Some(1 << 20),
            ..Default::default()
        })
        .unwrap();
    assert!(report.removed.is_empty());
    let report = store
        .prune_build_cache(&BuildCachePrune {
            all: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(report.removed.len(), 2);
    assert!(store.build_cache().unwrap().is_empty());
    assert_eq!(store.image_size(&id).unwrap(), 1010);
}

#[test]
fn orphaned_content_is_listed_and_collected() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let blob = store.put_blob(&lease, &[3u8; 123], None).unwrap();
    drop(lease);
    let entries = store.build_cache().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].id, blob.digest.to_string());
    assert_eq!(entries[0].size, 123);
    let report = store
        .prune_build_cache(&BuildCachePrune::default())
        .unwrap();
    assert_eq!(report.reclaimed, 123);
    assert!(!store.has_blob(&blob.digest));
}
