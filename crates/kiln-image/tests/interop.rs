//! Acceptance by other tools: skopeo reads our docker-archives and oci-archives, umoci unpacks
//! our OCI layouts, and we read what skopeo writes; `docker load` takes our docker-archive and
//! we read what `docker save` writes. These fail (never skip) when a tool is missing; as root,
//! scripts/install-deps.sh installs it first (Debian's `skopeo`, `umoci`, `docker.io`).

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use kiln_image::archive::MemoryBlobSource;
use kiln_image::{
    ArchiveFormat, Compression, Digest, open_archive, write_docker_archive, write_oci_archive,
    write_oci_layout,
};
use kiln_test::docker::Docker;

/// Runs `tool` (skopeo or umoci: Debian packages of the same name) and returns its stdout.
fn run(tool: &str, args: &[&str]) -> Vec<u8> {
    let path = kiln_test::prereq::require_command(tool, tool);
    output(Command::new(path).args(args), tool, args)
}

fn output(cmd: &mut Command, tool: &str, args: &[&str]) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("tool printed JSON")
}

fn strs(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn hexes(ds: &[Digest]) -> Vec<String> {
    ds.iter().map(|d| d.to_string()).collect()
}

/// A layer with directories, as real layers have.
fn real_image(blobs: &mut MemoryBlobSource, c: Compression, tags: &[&str]) -> TestImage {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, dir) in [
        ("etc/", &b""[..], true),
        ("etc/hello", &b"hello\n"[..], false),
        ("etc/gone", &b"soon gone\n"[..], false),
        ("bin/", &b""[..], true),
        ("bin/tool", &b"#!/bin/sh\necho tool\n"[..], false),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        if dir {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
        } else {
            h.set_mode(0o755);
            h.set_size(data.len() as u64);
        }
        b.append_data(&mut h, name, data).unwrap();
    }
    let l1 = b.into_inner().unwrap();
    let l2 = layer_tar(&[("etc/hello", b"bye\n"), ("etc/.wh.gone", b"")]);
    make_image(blobs, &[l1, l2], c, tags, "amd64")
}

#[test]
fn skopeo_inspects_our_docker_archive() {
    let mut blobs = MemoryBlobSource::new();
    let img = real_image(&mut blobs, Compression::Gzip, &["kiln/test:1"]);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("d.tar");
    write_docker_archive(
        fs::File::create(&f).unwrap(),
        std::slice::from_ref(&img.export),
        &blobs,
    )
    .unwrap();
    let spec = format!("docker-archive:{}", f.display());

    let v = json(&run("skopeo", &["inspect", &spec]));
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Os"], "linux");
    // docker-archive layers are the uncompressed tars: their digests are the diff IDs.
    assert_eq!(strs(&v["Layers"]), hexes(&img.diff_ids));
    let config = run("skopeo", &["inspect", "--raw", "--config", &spec]);
    assert_eq!(
        config, img.export.config,
        "skopeo sees our config byte for byte"
    );

    // By name, as `docker load` would list it.
    let named = format!("{spec}:kiln/test:1");
    let v = json(&run("skopeo", &["inspect", &named]));
    assert_eq!(strs(&v["Layers"]), hexes(&img.diff_ids));
}

#[test]
fn skopeo_inspects_our_oci_archive() {
    for c in [Compression::Gzip, Compression::Zstd] {
        let mut blobs = MemoryBlobSource::new();
        let img = real_image(&mut blobs, c, &["kiln/test:1"]);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("o.tar");
        write_oci_archive(
            fs::File::create(&f).unwrap(),
            std::slice::from_ref(&img.export),
            &blobs,
        )
        .unwrap();
        let spec = format!("oci-archive:{}", f.display());
        let v = json(&run("skopeo", &["inspect", &spec]));
        assert_eq!(v["Digest"], img.manifest_digest.to_string());
        assert_eq!(strs(&v["Layers"]), hexes(&img.layer_digests));
        let raw = run("skopeo", &["inspect", "--raw", &spec]);
        assert_eq!(raw, img.export.manifest);
        // The tag is the OCI ref name.
        let v = json(&run("skopeo", &["inspect", &format!("{spec}:1")]));
        assert_eq!(v["Digest"], img.manifest_digest.to_string());
    }
}

fn check_rootfs(rootfs: &Path) {
    assert_eq!(fs::read(rootfs.join("etc/hello")).unwrap(), b"bye\n");
    assert!(!rootfs.join("etc/gone").exists(), "whiteout not applied");
    assert!(rootfs.join("bin/tool").is_file());
}

#[test]
fn umoci_unpacks_our_oci_layout() {
    let mut blobs = MemoryBlobSource::new();
    let img = real_image(&mut blobs, Compression::Gzip, &["kiln/test:1"]);
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    write_oci_layout(&layout, std::slice::from_ref(&img.export), &blobs).unwrap();
    let bundle = dir.path().join("bundle");
    run(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:1", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    check_rootfs(&bundle.join("rootfs"));
}

#[test]
fn we_read_what_skopeo_writes() {
    let mut blobs = MemoryBlobSource::new();
    let img = real_image(&mut blobs, Compression::Gzip, &["kiln/test:1"]);
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("o.tar");
    write_oci_archive(
        fs::File::create(&ours).unwrap(),
        std::slice::from_ref(&img.export),
        &blobs,
    )
    .unwrap();
    let src = format!("oci-archive:{}", ours.display());

    // skopeo's docker-archive (docker < 25 shape, written by containers/image).
    let theirs = dir.path().join("skopeo-docker.tar");
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            &src,
            &format!("docker-archive:{}:kiln/copy:2", theirs.display()),
        ],
    );
    let r = open_archive(&theirs).unwrap();
    assert_eq!(r.format(), ArchiveFormat::DockerArchive);
    let a = &r.images()[0];
    assert_eq!(
        a.config_digest, img.config_digest,
        "same image ID after skopeo"
    );
    assert_eq!(a.names[0].to_string(), "docker.io/kiln/copy:2");
    r.verify().unwrap();
    for (i, l) in a.layers.iter().enumerate() {
        assert_eq!(
            read_all(l.open_uncompressed().unwrap()).unwrap(),
            img.uncompressed[i]
        );
    }

    // skopeo's OCI layout directory.
    let layout = dir.path().join("skopeo-oci");
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            &src,
            &format!("oci:{}:v3", layout.display()),
        ],
    );
    let r = open_archive(&layout).unwrap();
    assert_eq!(r.format(), ArchiveFormat::OciLayout);
    let a = &r.images()[0];
    assert_eq!(a.config_digest, img.config_digest);
    assert_eq!(a.ref_names, ["v3"]);
    r.verify().unwrap();

    // And back: our docker-archive written from skopeo's layout blobs inspects the same.
    let export = kiln_image::ExportImage {
        manifest: a.manifest.as_ref().unwrap().bytes.clone(),
        config: a.config_bytes.clone(),
        tags: vec![kiln_image::ImageRef::parse("kiln/again:4").unwrap()],
    };
    let blob_dir = kiln_image::archive::DirBlobSource::new(layout.join("blobs"));
    let again = dir.path().join("again.tar");
    write_docker_archive(fs::File::create(&again).unwrap(), &[export], &blob_dir).unwrap();
    let v = json(&run(
        "skopeo",
        &["inspect", &format!("docker-archive:{}", again.display())],
    ));
    assert_eq!(strs(&v["Layers"]), hexes(&img.diff_ids));
}

/// `docker load` accepts our docker-archive with the same image ID and layers, and we read
/// what `docker save` writes back. Uses the Docker engine that answers, or starts dockerd
/// (and stops it) when none does.
#[test]
fn docker_loads_our_archive_and_we_read_docker_save() {
    let engine = Docker::engine();
    let docker = |args: &[&str]| output(engine.command().args(args), "docker", args);
    // A tag of this process's own: the engine may be shared with other test runs.
    let tag = format!("kiln-interop/test:{}", std::process::id());
    let mut blobs = MemoryBlobSource::new();
    let img = real_image(&mut blobs, Compression::Gzip, &[&tag]);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("d.tar");
    write_docker_archive(
        fs::File::create(&f).unwrap(),
        std::slice::from_ref(&img.export),
        &blobs,
    )
    .unwrap();
    let out = docker(&["load", "-i", f.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out).contains(&tag));
    let v = json(&docker(&["image", "inspect", &tag]));
    assert_eq!(
        v[0]["Id"],
        img.config_digest.to_string(),
        "docker computed the same image ID"
    );
    assert_eq!(strs(&v[0]["RootFS"]["Layers"]), hexes(&img.diff_ids));

    let saved = dir.path().join("saved.tar");
    docker(&["save", "-o", saved.to_str().unwrap(), &tag]);
    docker(&["rmi", &tag]);
    let r = open_archive(&saved).unwrap();
    let a = &r.images()[0];
    assert_eq!(a.config_digest, img.config_digest);
    assert_eq!(a.names[0].familiar(), tag);
    r.verify().unwrap();
    for (i, l) in a.layers.iter().enumerate() {
        assert_eq!(
            read_all(l.open_uncompressed().unwrap()).unwrap(),
            img.uncompressed[i]
        );
    }
}
