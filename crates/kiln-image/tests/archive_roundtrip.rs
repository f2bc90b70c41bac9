//! Write → read round trips for the three formats, determinism, and docker-archives in the
//! older (`<id>/layer.tar`) shape.

mod common;

use std::fs;

use common::*;
use kiln_image::archive::MemoryBlobSource;
use kiln_image::{
    ArchiveFormat, ArchiveReader, Compression, Digest, ImageRef, open_archive,
    write_docker_archive, write_oci_archive, write_oci_layout,
};

fn check_layers_match(r: &ArchiveReader, img: &TestImage) {
    let a = &r.images()[0];
    assert_eq!(a.layers.len(), img.uncompressed.len());
    for (i, l) in a.layers.iter().enumerate() {
        assert_eq!(l.diff_id, Some(img.diff_ids[i]));
        let data = read_all(l.open_uncompressed().unwrap()).unwrap();
        assert!(data == img.uncompressed[i], "layer {i} content differs");
    }
    r.verify().unwrap();
}

#[test]
fn oci_archive_round_trip_keeps_everything() {
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let mut blobs = MemoryBlobSource::new();
        let img = two_layer(&mut blobs, c, &["app:1", "localhost:5000/team/app:v2"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img.tar");
        write_oci_archive(
            fs::File::create(&path).unwrap(),
            std::slice::from_ref(&img.export),
            &blobs,
        )
        .unwrap();

        let r = open_archive(&path).unwrap();
        assert_eq!(r.format(), ArchiveFormat::OciArchive);
        assert_eq!(r.images().len(), 1, "two tags of one image are one image");
        let a = &r.images()[0];
        assert_eq!(a.config_bytes, img.export.config);
        assert_eq!(a.config_digest, img.config_digest);
        let m = a.manifest.as_ref().unwrap();
        assert_eq!(m.bytes, img.export.manifest, "manifest bytes kept exactly");
        assert_eq!(m.digest, img.manifest_digest);
        let names: Vec<String> = a.names.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            names,
            ["docker.io/library/app:1", "localhost:5000/team/app:v2"]
        );
        assert_eq!(a.ref_names, ["1", "v2"]);
        assert_eq!(a.platform.to_string(), "linux/amd64");
        for (i, l) in a.layers.iter().enumerate() {
            assert_eq!(l.digest, Some(img.layer_digests[i]), "{c}");
            assert_eq!(l.compression, c);
            assert_eq!(l.media_type, c.layer_media_type(true));
            // The stored blob comes back byte for byte.
            let raw = read_all(l.open().unwrap()).unwrap();
            assert_eq!(Digest::of(&raw), img.layer_digests[i]);
        }
        check_layers_match(&r, &img);
    }
}

#[test]
fn oci_layout_round_trip_and_merge() {
    let mut blobs = MemoryBlobSource::new();
    let a = two_layer(&mut blobs, Compression::Gzip, &["app:1"]);
    let b = make_image(
        &mut blobs,
        &[layer_tar(&[("x", b"other")])],
        Compression::Zstd,
        &["other:latest"],
        "arm64",
    );
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    write_oci_layout(&layout, std::slice::from_ref(&a.export), &blobs).unwrap();
    write_oci_layout(&layout, std::slice::from_ref(&b.export), &blobs).unwrap();
    // Re-tagging: writing `a` again under the name `other:latest` replaces b's entry.
    let r = open_archive(&layout).unwrap();
    assert_eq!(r.format(), ArchiveFormat::OciLayout);
    assert_eq!(r.images().len(), 2);
    assert_eq!(r.images()[0].config_digest, a.config_digest);
    assert_eq!(r.images()[1].config_digest, b.config_digest);
    assert_eq!(r.images()[1].platform.to_string(), "linux/arm64");
    check_layers_match(&r, &a);

    let mut moved = a.export.clone();
    moved.tags = vec![ImageRef::parse("other").unwrap()];
    write_oci_layout(&layout, &[moved], &blobs).unwrap();
    let r = open_archive(&layout).unwrap();
    let names: Vec<(Digest, String)> = r
        .images()
        .iter()
        .flat_map(|i| i.names.iter().map(move |n| (i.config_digest, n.familiar())))
        .collect();
    assert!(names.contains(&(a.config_digest, "app:1".into())));
    assert!(names.contains(&(a.config_digest, "other:latest".into())));
    assert!(
        !names.contains(&(b.config_digest, "other:latest".into())),
        "{names:?}"
    );
}

#[test]
fn docker_archive_round_trip_decompresses_layers() {
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let mut blobs = MemoryBlobSource::new();
        let img = two_layer(&mut blobs, c, &["app:1", "app:latest"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img.tar");
        write_docker_archive(
            fs::File::create(&path).unwrap(),
            std::slice::from_ref(&img.export),
            &blobs,
        )
        .unwrap();

        let r = open_archive(&path).unwrap();
        assert_eq!(r.format(), ArchiveFormat::DockerArchive);
        assert_eq!(r.images().len(), 1);
        let a = &r.images()[0];
        assert_eq!(
            a.config_bytes, img.export.config,
            "config kept byte for byte: same image ID"
        );
        let names: Vec<String> = a.names.iter().map(|n| n.familiar()).collect();
        assert_eq!(names, ["app:1", "app:latest"]);
        for (i, l) in a.layers.iter().enumerate() {
            assert_eq!(
                l.compression,
                Compression::None,
                "docker-archive layers are uncompressed"
            );
            assert_eq!(l.digest, Some(img.diff_ids[i]));
            assert_eq!(l.media_type, Compression::None.layer_media_type(true));
        }
        // The embedded OCI view (Docker ≥ 25 layout) was found and attached.
        let m = a
            .manifest
            .as_ref()
            .expect("OCI manifest inside the docker-archive");
        assert_eq!(m.manifest.layers().len(), 2);
        check_layers_match(&r, &img);
    }
}

#[test]
fn output_is_deterministic() {
    let mut blobs = MemoryBlobSource::new();
    let a = two_layer(&mut blobs, Compression::Gzip, &["app:1"]);
    let b = make_image(
        &mut blobs,
        &[layer_tar(&[("y", b"2")])],
        Compression::Gzip,
        &[],
        "amd64",
    );
    let images = [a.export.clone(), b.export.clone()];
    let d1 = write_docker_archive(Vec::new(), &images, &blobs).unwrap();
    let d2 = write_docker_archive(Vec::new(), &images, &blobs).unwrap();
    assert!(d1 == d2, "docker-archive bytes differ between two writes");
    let o1 = write_oci_archive(Vec::new(), &images, &blobs).unwrap();
    let o2 = write_oci_archive(Vec::new(), &images, &blobs).unwrap();
    assert!(o1 == o2, "oci-archive bytes differ between two writes");

    // Entries are sorted and headers fixed.
    let mut ar = tar::Archive::new(&d1[..]);
    let mut names = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        assert_eq!(e.header().mtime().unwrap(), 0);
        assert_eq!(e.header().uid().unwrap(), 0);
        names.push(e.path().unwrap().to_string_lossy().into_owned());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.contains(&"manifest.json".to_string()));

    // An untagged image is kept, with no names.
    let path = tempfile::NamedTempFile::new().unwrap();
    fs::write(path.path(), &d1).unwrap();
    let r = open_archive(path.path()).unwrap();
    assert_eq!(r.images().len(), 2);
    assert!(r.images()[1].names.is_empty());
}

#[test]
fn whole_archive_compressed_with_gzip_or_zstd() {
    let mut blobs = MemoryBlobSource::new();
    let img = two_layer(&mut blobs, Compression::Gzip, &["app:1"]);
    let tar = write_docker_archive(Vec::new(), std::slice::from_ref(&img.export), &blobs).unwrap();
    for c in [Compression::Gzip, Compression::Zstd] {
        let f = tempfile::NamedTempFile::new().unwrap();
        fs::write(f.path(), compress(&tar, c)).unwrap();
        let r = open_archive(f.path()).unwrap();
        assert_eq!(r.images()[0].config_digest, img.config_digest);
        check_layers_match(&r, &img);
    }
}

/// The shape docker < 25 writes: `<id>.json` config, `<id>/layer.tar`, a symlink for a
/// repeated layer, a `repositories` file, and here a gzip'd layer.tar as docker load accepts.
#[test]
fn reads_legacy_docker_save_layout() {
    let l1 = layer_tar(&[("a", b"1")]);
    let l2 = layer_tar(&[("b", b"2")]);
    let diff_ids = [Digest::of(&l1), Digest::of(&l2), Digest::of(&l1)];
    let config = config_json(&diff_ids, "amd64");
    let cfg_name = format!("{}.json", Digest::of(&config).hex());
    let manifest = serde_json::json!([{
        "Config": cfg_name,
        "RepoTags": ["busybox:latest"],
        "Layers": ["aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"],
    }]);
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let l2gz = compress(&l2, Compression::Gzip);
    let tar = raw_tar_with_link(
        &[
            (&cfg_name, &config),
            ("aaa/layer.tar", &l1),
            ("bbb/layer.tar", &l2gz),
            ("manifest.json", &manifest),
            ("repositories", br#"{"busybox":{"latest":"ccc"}}"#),
        ],
        &[("ccc/layer.tar", "../aaa/layer.tar")],
    );
    let f = tempfile::NamedTempFile::new().unwrap();
    fs::write(f.path(), &tar).unwrap();
    let r = open_archive(f.path()).unwrap();
    let a = &r.images()[0];
    assert_eq!(a.names[0].to_string(), "docker.io/library/busybox:latest");
    assert!(a.manifest.is_none());
    assert_eq!(a.layers[1].compression, Compression::Gzip);
    assert_eq!(
        a.layers[1].media_type,
        Compression::Gzip.layer_media_type(false)
    );
    assert_eq!(a.layers[0].digest, None);
    let got: Vec<Vec<u8>> = a
        .layers
        .iter()
        .map(|l| read_all(l.open_uncompressed().unwrap()).unwrap())
        .collect();
    assert_eq!(got, [l1.clone(), l2, l1]);
    r.verify().unwrap();
}

/// `FROM scratch` + metadata only: no layers, and Docker omits `diff_ids` from the config.
#[test]
fn image_without_layers() {
    let blobs = MemoryBlobSource::new();
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Labels":{"a":"b"}},"rootfs":{"type":"layers"}}"#.to_vec();
    let cd = kiln_image::manifest::DescriptorOut::new(
        kiln_image::compression::media_types::OCI_CONFIG,
        Digest::of(&config),
        config.len() as u64,
    );
    let (manifest, _) = kiln_image::manifest::build_manifest(&cd, &[]);
    let export = kiln_image::ExportImage {
        manifest,
        config: config.clone(),
        tags: vec![ImageRef::parse("empty:1").unwrap()],
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("d.tar");
    let o = dir.path().join("o.tar");
    let l = dir.path().join("layout");
    write_docker_archive(
        fs::File::create(&d).unwrap(),
        std::slice::from_ref(&export),
        &blobs,
    )
    .unwrap();
    write_oci_archive(
        fs::File::create(&o).unwrap(),
        std::slice::from_ref(&export),
        &blobs,
    )
    .unwrap();
    write_oci_layout(&l, std::slice::from_ref(&export), &blobs).unwrap();
    for p in [&d, &o, &l] {
        let r = open_archive(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(r.images()[0].config_bytes, config);
        assert!(r.images()[0].layers.is_empty());
    }
}

#[test]
fn oci_index_without_images_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    fs::write(
        dir.path().join("index.json"),
        br#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    let e = open_archive(dir.path()).unwrap_err();
    assert!(e.to_string().contains("no image"), "{e}");
}

/// A multi-platform image: index.json → nested index (named) → two platform manifests and a
/// BuildKit attestation manifest, which is skipped.
#[test]
fn nested_multi_platform_index() {
    let mut blobs = MemoryBlobSource::new();
    let amd = make_image(
        &mut blobs,
        &[layer_tar(&[("a", b"amd")])],
        Compression::Gzip,
        &[],
        "amd64",
    );
    let arm = make_image(
        &mut blobs,
        &[layer_tar(&[("a", b"arm")])],
        Compression::Gzip,
        &[],
        "arm64",
    );
    let att = make_image(
        &mut blobs,
        &[layer_tar(&[("s", b"{}")])],
        Compression::None,
        &[],
        "amd64",
    );
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    write_oci_layout(
        &layout,
        &[amd.export.clone(), arm.export.clone(), att.export.clone()],
        &blobs,
    )
    .unwrap();

    let desc = |img: &TestImage, platform: serde_json::Value| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": img.manifest_digest.to_string(),
            "size": img.export.manifest.len(),
            "platform": platform,
        })
    };
    let mut att_desc = desc(
        &att,
        serde_json::json!({"architecture": "unknown", "os": "unknown"}),
    );
    att_desc["annotations"] = serde_json::json!({
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": amd.manifest_digest.to_string(),
    });
    let inner = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            desc(&amd, serde_json::json!({"architecture": "amd64", "os": "linux"})),
            desc(&arm, serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"})),
            att_desc,
        ],
    }))
    .unwrap();
    let inner_digest = Digest::of(&inner);
    fs::write(layout.join(inner_digest.blob_path()), &inner).unwrap();
    let outer = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": inner_digest.to_string(),
            "size": inner.len(),
            "annotations": {
                "io.containerd.image.name": "docker.io/library/multi:1",
                "org.opencontainers.image.ref.name": "1",
            },
        }],
    });
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&outer).unwrap(),
    )
    .unwrap();

    let r = open_archive(&layout).unwrap();
    let imgs = r.images();
    assert_eq!(imgs.len(), 2, "the attestation manifest is not an image");
    assert_eq!(imgs[0].platform.to_string(), "linux/amd64");
    assert_eq!(imgs[1].platform.to_string(), "linux/arm64");
    assert_eq!(imgs[0].config_digest, amd.config_digest);
    assert_eq!(imgs[1].config_digest, arm.config_digest);
    for i in imgs {
        assert_eq!(
            i.names[0].familiar(),
            "multi:1",
            "names come from the outer entry"
        );
    }
    r.verify().unwrap();
}
