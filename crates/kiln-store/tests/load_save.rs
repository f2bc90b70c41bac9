//! Loading and saving archives: round trips in both formats and hostile inputs, each of
//! which must fail clearly and leave the store exactly as it was.

mod support;

use std::io::Write;
use std::path::Path;

use kiln_image::Digest;
use kiln_store::{SaveFormat, Store};

fn blob_count(store: &Store) -> usize {
    std::fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .count()
}

fn assert_untouched(store: &Store) {
    assert_eq!(blob_count(store), 0, "no blob may stay behind");
    assert!(store.images().unwrap().is_empty());
    let report = store.check(false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        std::fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn busybox_loads_with_its_tag_and_round_trips_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, id) = support::busybox_archive(dir.path(), "localhost/busybox:latest");
    let store = Store::open(dir.path().join("a")).unwrap();
    let loaded = store.load(&archive).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].image.id.to_string(), id);
    assert_eq!(
        loaded[0].image.tags,
        vec!["localhost/busybox:latest".to_string()]
    );
    assert!(loaded[0].image.size > 1_000_000);
    assert!(store.check(false).unwrap().problems.is_empty());

    for format in [SaveFormat::Docker, SaveFormat::Oci] {
        let img = store.resolve_image("localhost/busybox").unwrap();
        let tags = vec![kiln_image::ImageRef::parse("localhost/busybox:latest").unwrap()];
        let out = dir.path().join(format!("{format:?}.tar"));
        let f = std::fs::File::create(&out).unwrap();
        store.save(&[(img.clone(), tags)], format, f).unwrap();
        let other = Store::open(dir.path().join(format!("{format:?}-store"))).unwrap();
        let again = other.load(&out).unwrap();
        assert_eq!(again[0].image.id, img.id, "{format:?}");
        assert_eq!(again[0].image.tags, img.tags, "{format:?}");
        assert!(other.check(false).unwrap().problems.is_empty());
    }
    // Loading the same archive twice changes nothing.
    let again = store.load(&archive).unwrap();
    assert!(again[0].tags[0].previous.is_none());
    assert_eq!(store.images().unwrap().len(), 1);
}

#[test]
fn load_from_a_reader_spools_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, id) = support::busybox_archive(dir.path(), "localhost/bb:1");
    let store = Store::open(dir.path().join("s")).unwrap();
    let mut f = std::fs::File::open(&archive).unwrap();
    let loaded = store.load_reader(&mut f).unwrap();
    assert_eq!(loaded[0].image.id.to_string(), id);
    assert_eq!(
        std::fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0
    );
}

/// Unpacks the busybox archive into a directory we can tamper with, then repacks it.
fn tamper(dir: &Path, edit: impl FnOnce(&Path)) -> std::path::PathBuf {
    let (archive, _) = support::busybox_archive(dir, "localhost/busybox:latest");
    let unpacked = dir.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    tar::Archive::new(std::fs::File::open(&archive).unwrap())
        .unpack(&unpacked)
        .unwrap();
    edit(&unpacked);
    let out = dir.join("tampered.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&out).unwrap());
    b.append_dir_all(".", &unpacked).unwrap();
    b.finish().unwrap();
    out
}

fn layer_file(unpacked: &Path) -> std::path::PathBuf {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    unpacked.join(m[0]["Layers"][0].as_str().unwrap())
}

#[test]
fn a_layer_whose_content_lies_about_its_digest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = tamper(dir.path(), |u| {
        let p = layer_file(u);
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len() / 2;
        bytes[n] ^= 0xff;
        std::fs::write(&p, bytes).unwrap();
    });
    let store = Store::open(dir.path().join("s")).unwrap();
    let err = store.load(&bad).unwrap_err().to_string();
    assert!(err.contains("sha256:"), "{err}");
    assert_untouched(&store);
}

#[test]
fn a_manifest_naming_a_missing_blob_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = tamper(dir.path(), |u| std::fs::remove_file(layer_file(u)).unwrap());
    let store = Store::open(dir.path().join("s")).unwrap();
    let err = store.load(&bad).unwrap_err().to_string();
    assert!(err.contains("not in the archive"), "{err}");
    assert_untouched(&store);
}

#[test]
fn empty_and_garbage_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let empty = dir.path().join("empty.tar");
    std::fs::write(&empty, b"").unwrap();
    let err = store.load(&empty).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    let garbage = dir.path().join("garbage.tar");
    let mut g = Vec::new();
    for i in 0..100_000u32 {
        g.extend_from_slice(&i.wrapping_mul(2654435761).to_le_bytes());
    }
    std::fs::write(&garbage, g).unwrap();
    assert!(store.load(&garbage).is_err());
    assert_untouched(&store);
}

/// An OCI layout with one gzip layer cut short; its descriptor digest matches the cut
/// bytes, so only decompression can notice.
#[test]
fn a_truncated_gzip_layer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let put = |bytes: &[u8]| -> (Digest, u64) {
        let d = Digest::of(bytes);
        std::fs::write(layout.join("blobs/sha256").join(d.hex()), bytes).unwrap();
        (d, bytes.len() as u64)
    };
    let mut tar = tar::Builder::new(Vec::new());
    let content = vec![7u8; 200_000];
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "big", &content[..]).unwrap();
    let tar = tar.into_inner().unwrap();
    let diff_id = Digest::of(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let (layer, lsize) = put(&gz[..gz.len() / 2]);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]}
    });
    let (cfg, csize) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.to_string(), "size": csize},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer.to_string(), "size": lsize}]
    });
    let (man, msize) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man.to_string(), "size": msize,
            "annotations": {"io.containerd.image.name": "localhost/trunc:1"}}]
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let err = store.load(&layout).unwrap_err().to_string();
    assert!(err.contains("gzip"), "{err}");
    assert_untouched(&store);
}
