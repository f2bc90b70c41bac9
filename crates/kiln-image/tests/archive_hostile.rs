//! Hostile and broken archives: each must give a clear error naming what is wrong, never a
//! panic and never a silent success.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use kiln_image::archive::MemoryBlobSource;
use kiln_image::{
    ArchiveError, Compression, ContentMismatch, Digest, open_archive, write_docker_archive,
    write_oci_archive,
};

fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    fs::write(f.path(), bytes).unwrap();
    f
}

fn open_err(bytes: &[u8]) -> ArchiveError {
    let f = file_with(bytes);
    let e = open_archive(f.path()).expect_err("hostile archive was accepted");
    // Every message names the archive.
    assert!(
        e.to_string().contains(&f.path().display().to_string()),
        "{e}"
    );
    e
}

/// An OCI archive of the standard image, as (member name, bytes) so tests can tamper.
fn oci_members() -> (TestImage, Vec<(String, Vec<u8>)>) {
    let mut blobs = MemoryBlobSource::new();
    let img = two_layer(&mut blobs, Compression::Gzip, &["app:1"]);
    let tar = write_oci_archive(Vec::new(), std::slice::from_ref(&img.export), &blobs).unwrap();
    let mut ar = tar::Archive::new(&tar[..]);
    let mut members = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type().is_dir() {
            continue;
        }
        let name = e.path().unwrap().to_string_lossy().into_owned();
        members.push((name, read_all(&mut e).unwrap()));
    }
    (img, members)
}

fn tar_of(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = members.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    raw_tar(&refs)
}

#[test]
fn zero_bytes() {
    assert!(matches!(open_err(b""), ArchiveError::Empty { .. }));
}

#[test]
fn garbage() {
    let junk: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let e = open_err(&junk);
    assert!(
        matches!(
            e,
            ArchiveError::BadTar { .. } | ArchiveError::UnknownFormat { .. }
        ),
        "{e}"
    );
    let e = open_err(b"hello, I am not a tarball");
    assert!(
        matches!(
            e,
            ArchiveError::BadTar { .. } | ArchiveError::UnknownFormat { .. }
        ),
        "{e}"
    );
}

#[test]
fn tar_without_image_metadata() {
    let e = open_err(&raw_tar(&[("etc/passwd", b"root:x:0:0")]));
    assert!(matches!(e, ArchiveError::UnknownFormat { .. }), "{e}");
    assert!(e.to_string().contains("manifest.json"));
}

#[test]
fn missing_directory_is_an_io_error() {
    let e = open_archive(Path::new("/nonexistent/kiln/archive.tar")).unwrap_err();
    assert!(matches!(e, ArchiveError::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/kiln/archive.tar"));
}

#[test]
fn traversal_member_names_are_refused() {
    let (_, mut members) = oci_members();
    members.push(("../../etc/x".into(), b"pwned".to_vec()));
    let e = open_err(&tar_of(&members));
    assert!(
        matches!(&e, ArchiveError::UnsafeName { name, .. } if name == "../../etc/x"),
        "{e}"
    );

    let (_, mut members) = oci_members();
    members.push(("/etc/x".into(), b"pwned".to_vec()));
    let e = open_err(&tar_of(&members));
    assert!(matches!(&e, ArchiveError::UnsafeName { .. }), "{e}");
}

#[test]
fn escaping_symlink_is_refused() {
    let tar = raw_tar_with_link(
        &[("manifest.json", b"[]")],
        &[("x/layer.tar", "../../../etc/shadow")],
    );
    let e = open_err(&tar);
    assert!(matches!(&e, ArchiveError::UnsafeName { .. }), "{e}");
    assert!(e.to_string().contains("etc/shadow"), "{e}");
}

#[test]
fn lying_manifest_blob_digest() {
    let (img, mut members) = oci_members();
    let path = img.manifest_digest.blob_path();
    for (n, b) in &mut members {
        if *n == path {
            // Same size, different bytes.
            let i = b.iter().position(|&c| c == b'2').unwrap();
            b[i] = b'3';
        }
    }
    let e = open_err(&tar_of(&members));
    match &e {
        ArchiveError::Mismatch {
            source: ContentMismatch::Digest { expected, .. },
            ..
        } => assert_eq!(*expected, img.manifest_digest),
        other => panic!("expected a digest mismatch, got {other}"),
    }
    assert!(
        e.to_string().contains(&img.manifest_digest.to_string()),
        "{e}"
    );
}

#[test]
fn lying_layer_blob_is_caught_while_streaming() {
    let (img, mut members) = oci_members();
    let path = img.layer_digests[0].blob_path();
    for (n, b) in &mut members {
        if *n == path {
            let last = b.len() - 1;
            b[last] ^= 0xff;
        }
    }
    // Opening only checks sizes; the content check happens as the layer is read.
    let f = file_with(&tar_of(&members));
    let r = open_archive(f.path()).unwrap();
    let layer = &r.images()[0].layers[0];
    let err = read_all(layer.open().unwrap()).unwrap_err();
    let m = ContentMismatch::find(&err).expect("a ContentMismatch inside the io::Error");
    assert!(
        matches!(m, ContentMismatch::Digest { expected, .. } if *expected == img.layer_digests[0])
    );
    let e = r.verify().unwrap_err();
    assert!(matches!(e, ArchiveError::Mismatch { .. }), "{e}");
    assert!(e.to_string().contains(&path), "{e}");
}

#[test]
fn layer_whose_diff_id_lies() {
    // Blob digest is right but the config's diff_id does not match the uncompressed bytes.
    let mut blobs = MemoryBlobSource::new();
    let l = layer_tar(&[("a", b"1")]);
    let mut img = make_image(&mut blobs, &[l], Compression::Gzip, &["x:1"], "amd64");
    let wrong = Digest::of(b"not the layer");
    let config = config_json(&[wrong], "amd64");
    let cd = kiln_image::manifest::DescriptorOut::new(
        kiln_image::compression::media_types::OCI_CONFIG,
        Digest::of(&config),
        config.len() as u64,
    );
    let blob = compress(&img.uncompressed[0], Compression::Gzip);
    let ld = kiln_image::manifest::DescriptorOut::new(
        Compression::Gzip.layer_media_type(true),
        Digest::of(&blob),
        blob.len() as u64,
    );
    let (manifest, _) = kiln_image::manifest::build_manifest(&cd, &[ld]);
    img.export.manifest = manifest;
    img.export.config = config;
    let tar = write_oci_archive(Vec::new(), std::slice::from_ref(&img.export), &blobs).unwrap();
    let f = file_with(&tar);
    let r = open_archive(f.path()).unwrap();
    let e = r.verify().unwrap_err();
    assert!(e.to_string().contains(&wrong.to_string()), "{e}");
    // Writing it as a docker-archive (which must decompress) refuses it too.
    let e =
        write_docker_archive(Vec::new(), std::slice::from_ref(&img.export), &blobs).unwrap_err();
    assert!(matches!(e, ArchiveError::Blob { .. }), "{e}");
}

#[test]
fn manifest_naming_a_missing_blob() {
    let (img, members) = oci_members();
    let path = img.layer_digests[1].blob_path();
    let kept: Vec<_> = members.into_iter().filter(|(n, _)| *n != path).collect();
    let e = open_err(&tar_of(&kept));
    assert!(
        matches!(&e, ArchiveError::MissingMember { member, .. } if *member == path),
        "{e}"
    );
    assert!(e.to_string().contains(&path));
}

#[test]
fn docker_manifest_naming_a_missing_layer() {
    let config = config_json(&[Digest::of(b"x")], "amd64");
    let cfg = format!("{}.json", Digest::of(&config).hex());
    let manifest =
        format!(r#"[{{"Config":"{cfg}","RepoTags":["a:b"],"Layers":["nope/layer.tar"]}}]"#);
    let e = open_err(&raw_tar(&[
        (&cfg, &config),
        ("manifest.json", manifest.as_bytes()),
    ]));
    assert!(
        matches!(&e, ArchiveError::MissingMember { member, .. } if member == "nope/layer.tar"),
        "{e}"
    );
}

#[test]
fn docker_config_lying_about_its_id() {
    let config = config_json(&[], "amd64");
    let cfg = format!("{}.json", Digest::of(b"something else").hex());
    let manifest = format!(r#"[{{"Config":"{cfg}","RepoTags":null,"Layers":[]}}]"#);
    let e = open_err(&raw_tar(&[
        (&cfg, &config),
        ("manifest.json", manifest.as_bytes()),
    ]));
    assert!(matches!(e, ArchiveError::Mismatch { .. }), "{e}");
}

#[test]
fn layer_count_mismatch_and_bad_json() {
    let config = config_json(&[Digest::of(b"x"), Digest::of(b"y")], "amd64");
    let cfg = format!("{}.json", Digest::of(&config).hex());
    let layer = layer_tar(&[("a", b"1")]);
    let manifest = format!(r#"[{{"Config":"{cfg}","Layers":["l/layer.tar"]}}]"#);
    let e = open_err(&raw_tar(&[
        (&cfg, &config),
        ("l/layer.tar", &layer),
        ("manifest.json", manifest.as_bytes()),
    ]));
    assert!(matches!(e, ArchiveError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("diff_ids"), "{e}");

    let e = open_err(&raw_tar(&[("manifest.json", b"{not json")]));
    assert!(
        matches!(&e, ArchiveError::BadJson { member, .. } if member == "manifest.json"),
        "{e}"
    );
    let e = open_err(&raw_tar(&[("manifest.json", b"[]")]));
    assert!(e.to_string().contains("no images"), "{e}");
    let e = open_err(&raw_tar(&[(
        "manifest.json",
        br#"[{"Config":"../x.json","Layers":[]}]"#,
    )]));
    assert!(matches!(e, ArchiveError::UnsafeName { .. }), "{e}");
}

#[test]
fn truncated_tar() {
    let mut blobs = MemoryBlobSource::new();
    let img = two_layer(&mut blobs, Compression::None, &["app:1"]);
    let tar = write_docker_archive(Vec::new(), std::slice::from_ref(&img.export), &blobs).unwrap();
    // Cut in the middle of the data of some member, and in the middle of a header.
    for cut in [tar.len() / 2 + 100, 512 * 3 + 17, 700] {
        let f = file_with(&tar[..cut]);
        match open_archive(f.path()) {
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        ArchiveError::BadTar { .. }
                            | ArchiveError::MissingMember { .. }
                            | ArchiveError::UnknownFormat { .. }
                    ),
                    "cut at {cut}: {e}"
                );
            }
            Ok(r) => panic!(
                "truncated archive (cut at {cut}) opened with {} images",
                r.images().len()
            ),
        }
    }
}

#[test]
fn truncated_gzip_archive() {
    let mut blobs = MemoryBlobSource::new();
    let img = two_layer(&mut blobs, Compression::None, &["app:1"]);
    let tar = write_docker_archive(Vec::new(), std::slice::from_ref(&img.export), &blobs).unwrap();
    let gz = compress(&tar, Compression::Gzip);
    let e = open_err(&gz[..gz.len() - 20]);
    assert!(
        matches!(
            e,
            ArchiveError::BadCompression {
                compression: Compression::Gzip,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn truncated_gzip_layer() {
    // A layer blob that is a truncated gzip stream, in a legacy docker-archive (no digest to
    // catch it early): reading the layer fails with a clear error.
    let l = layer_tar(&[("a", &[1u8; 50_000])]);
    let gz = compress(&l, Compression::Gzip);
    let cut = &gz[..gz.len() / 2];
    let config = config_json(&[Digest::of(&l)], "amd64");
    let cfg = format!("{}.json", Digest::of(&config).hex());
    let manifest = format!(r#"[{{"Config":"{cfg}","Layers":["l/layer.tar"]}}]"#);
    let f = file_with(&raw_tar(&[
        (&cfg, &config),
        ("l/layer.tar", cut),
        ("manifest.json", manifest.as_bytes()),
    ]));
    let r = open_archive(f.path()).unwrap();
    let e = r.verify().unwrap_err();
    assert!(matches!(e, ArchiveError::BadCompression { .. }), "{e}");
    assert!(e.to_string().contains("l/layer.tar"), "{e}");
}

#[test]
fn oci_layout_symlink_out_of_the_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    fs::create_dir(&layout).unwrap();
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    fs::write(
        dir.path().join("secret.json"),
        br#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink("../secret.json", layout.join("index.json")).unwrap();
    let e = open_archive(&layout).unwrap_err();
    assert!(matches!(e, ArchiveError::UnsafeName { .. }), "{e}");
}

/// index.json → index → (index, …): an index inside the image index is refused (its
/// platforms and names would be ambiguous), not flattened.
#[test]
fn an_index_inside_an_image_index_is_refused() {
    let inner = br#"{"schemaVersion":2,"manifests":[]}"#.to_vec();
    let d = Digest::of(&inner);
    let outer = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{d}","size":{}}}]}}"#,
        inner.len()
    )
    .into_bytes();
    let o = Digest::of(&outer);
    let top = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{o}","size":{}}}]}}"#,
        outer.len()
    );
    let members: Vec<(String, Vec<u8>)> = vec![
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        (d.blob_path(), inner),
        (o.blob_path(), outer),
        ("index.json".into(), top.into_bytes()),
    ];
    let e = open_err(&tar_of(&members)).to_string();
    assert!(e.contains("nested image indexes are not supported"), "{e}");
}

#[test]
fn nested_index_loop_is_bounded() {
    // index.json → index A → index A … (A names itself; impossible with real digests, so
    // make a chain deeper than the limit instead).
    let mut members: Vec<(String, Vec<u8>)> = vec![(
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    )];
    let mut child = br#"{"schemaVersion":2,"manifests":[]}"#.to_vec();
    for _ in 0..12 {
        let d = Digest::of(&child);
        members.push((d.blob_path(), child.clone()));
        child = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{d}","size":{}}}]}}"#,
            child.len()
        )
        .into_bytes();
    }
    members.push(("index.json".into(), child));
    let e = open_err(&tar_of(&members));
    assert!(e.to_string().contains("nested"), "{e}");
}

#[test]
fn writer_refuses_lying_blob_source() {
    let mut blobs = MemoryBlobSource::new();
    let img = two_layer(&mut blobs, Compression::Gzip, &["app:1"]);
    // Replace a layer's bytes with other bytes of the same length under the same digest.
    let mut evil = compress(&img.uncompressed[0], Compression::Gzip);
    let last = evil.len() - 1;
    evil[last] ^= 1;
    blobs.insert_as(img.layer_digests[0], evil);
    let e = write_oci_archive(Vec::new(), std::slice::from_ref(&img.export), &blobs).unwrap_err();
    assert!(
        matches!(&e, ArchiveError::Blob { digest, .. } if *digest == img.layer_digests[0]),
        "{e}"
    );
    let e =
        write_docker_archive(Vec::new(), std::slice::from_ref(&img.export), &blobs).unwrap_err();
    assert!(matches!(&e, ArchiveError::Blob { .. }), "{e}");

    // A config that is not the manifest's config.
    let mut bad = img.export.clone();
    bad.config.push(b' ');
    let e = write_oci_archive(Vec::new(), &[bad], &blobs).unwrap_err();
    assert!(matches!(e, ArchiveError::BadExportImage { .. }), "{e}");

    // A blob the source does not have.
    let e = write_oci_archive(
        Vec::new(),
        std::slice::from_ref(&img.export),
        &MemoryBlobSource::new(),
    )
    .unwrap_err();
    assert!(matches!(e, ArchiveError::Blob { .. }), "{e}");
}
