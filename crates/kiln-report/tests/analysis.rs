//! The analyses on hand-made layers in a real store (no root needed): merge semantics
//! (whiteouts, opaque directories, hard links, a file over a directory), exact wasted and
//! duplicated bytes, compressed blobs, diff lines, and build records.

use std::io::Write;

use kiln_image::Digest;
use kiln_image::manifest::{DescriptorOut, build_manifest};
use kiln_report::layer::{Kind, index_layer};
use kiln_report::merge::{LostHow, merge};
use kiln_store::{BuildRecord, LayerRecord, NewImage, StageRecord, Store};

/// One tar entry.
enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    FileAs(&'a str, &'a [u8], u32, u64),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        match e {
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::File(p, c) | E::FileAs(p, c, _, _) => {
                let (mode, uid) = match e {
                    E::FileAs(_, _, m, u) => (*m, *u),
                    _ => (0o644, 0),
                };
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(mode);
                h.set_uid(uid);
                h.set_gid(uid);
                h.set_size(c.len() as u64);
                b.append_data(&mut h, p, *c).unwrap();
            }
            E::Link(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
            E::Hard(p, t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("root")).unwrap();
    (dir, store)
}

/// Records an image of `layers` (blob bytes, maybe gzip) with `history` and `config`.
fn add_image(
    store: &Store,
    layers: &[(Vec<u8>, bool)],
    history: &[&str],
    config: serde_json::Value,
    tag: &str,
) -> Digest {
    let lease = store.lease().unwrap();
    let mut recs = Vec::new();
    let mut descs = Vec::new();
    for (blob, gz) in layers {
        let info = store.put_blob(&lease, blob, None).unwrap();
        let media = if *gz {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        } else {
            "application/vnd.oci.image.layer.v1.tar"
        };
        let diff_id = if *gz {
            let mut d = flate2::read::GzDecoder::new(&blob[..]);
            let mut raw = Vec::new();
            std::io::Read::read_to_end(&mut d, &mut raw).unwrap();
            Digest::of(&raw)
        } else {
            info.digest
        };
        recs.push(LayerRecord {
            blob: info.digest,
            diff_id,
            media_type: media.into(),
            compressed_size: info.size,
            uncompressed_size: info.size,
        });
        descs.push(DescriptorOut::new(media, info.digest, info.size));
    }
    let diff_ids: Vec<String> = recs.iter().map(|r| r.diff_id.to_string()).collect();
    let history: Vec<serde_json::Value> = history
        .iter()
        .map(|h| serde_json::json!({"created_by": h}))
        .collect();
    let cfg = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": config,
        "history": history,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cinfo = store.put_blob(&lease, &cfg, None).unwrap();
    let (manifest, mdigest) = build_manifest(
        &DescriptorOut::new(
            "application/vnd.oci.image.config.v1+json",
            cinfo.digest,
            cinfo.size,
        ),
        &descs,
    );
    store.put_blob(&lease, &manifest, Some(&mdigest)).unwrap();
    let (rec, _) = store
        .record_image(
            &NewImage {
                manifest_digest: mdigest,
                manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                config_digest: cinfo.digest,
                layers: recs,
                created: None,
                architecture: "amd64".into(),
                os: "linux".into(),
                parent: None,
            },
            &[kiln_image::ImageRef::parse(tag).unwrap().to_string()],
        )
        .unwrap();
    rec.id
}

#[test]
fn whiteouts_opaque_dirs_and_a_file_over_a_directory() {
    let l0 = tar_of(&[
        E::Dir("a/"),
        E::File("a/x", b"12345"),
        E::Dir("a/sub/"),
        E::File("a/sub/y", b"123"),
        E::Dir("o/"),
        E::File("o/old", b"1234567"),
        E::Dir("d/"),
        E::File("d/f", b"12"),
        E::File("keep", b"k"),
    ]);
    // Layer 1: the opaque marker comes after a new file of the same directory (it must not
    // hide it), `a` is whited out, the directory `d` becomes a file.
    let l1 = tar_of(&[
        E::Dir("o/"),
        E::File("o/new", b"n"),
        E::File("o/.wh..wh..opq", b""),
        E::File(".wh.a", b""),
        E::File("d", b"now a file"),
    ]);
    let i0 = index_layer(&l0[..]).unwrap();
    let i1 = index_layer(&l1[..]).unwrap();
    assert_eq!(i0.size, 5 + 3 + 7 + 2 + 1);
    assert_eq!(i0.tar_bytes, l0.len() as u64);
    let m = merge([&i0, &i1]);
    let paths: Vec<&str> = m.files.keys().map(|s| s.as_str()).collect();
    assert_eq!(paths, ["/d", "/keep", "/o", "/o/new"]);
    assert_eq!(m.files["/d"].meta.kind, Kind::File);
    let mut lost: Vec<(String, u64, LostHow)> = m
        .lost
        .iter()
        .map(|l| (l.path.clone(), l.size, l.how))
        .collect();
    lost.sort();
    assert_eq!(
        lost,
        [
            ("/a/sub/y".to_string(), 3, LostHow::Deleted),
            ("/a/x".to_string(), 5, LostHow::Deleted),
            ("/d/f".to_string(), 2, LostHow::Deleted),
            ("/o/old".to_string(), 7, LostHow::Deleted),
        ]
    );
}

#[test]
fn hard_links_share_content_and_count_once() {
    let l0 = tar_of(&[E::File("f", b"hello"), E::Hard("g", "f"), E::Link("s", "f")]);
    let i = index_layer(&l0[..]).unwrap();
    // 5 bytes once, plus the symlink's target length (docker's count).
    assert_eq!(i.size, 5 + 1);
    let m = merge([&i]);
    assert_eq!(m.files["/g"].meta.digest, m.files["/f"].meta.digest);
    assert!(m.files["/g"].meta.hardlink);
    assert_eq!(m.files["/s"].meta.link.as_deref(), Some("f"));
}

#[test]
fn report_counts_wasted_duplicates_and_leftovers_exactly() {
    let (_d, store) = store();
    let big = vec![7u8; 10_000];
    let dup = vec![9u8; 4096];
    let l0 = tar_of(&[
        E::Dir("app/"),
        E::File("app/w1", &big),
        E::File("app/w2", &[1u8; 3000]),
        E::File("app/chmod", &[2u8; 100]),
        E::File("app/d1", &dup),
    ]);
    let l1 = tar_of(&[
        E::Dir("app/"),
        E::File("app/w1", &[3u8; 500]),
        E::File("app/.wh.w2", b""),
        E::FileAs("app/chmod", &[2u8; 100], 0o755, 0),
        E::File("app/d2", &dup),
        E::Dir("root/"),
        E::Dir("root/.cache/"),
        E::File("root/.cache/pip", &[4u8; 123]),
        E::Dir("src/"),
        E::Dir("src/.git/"),
        E::File("src/.git/HEAD", b"ref: refs/heads/main\n"),
    ]);
    // The second layer is stored gzip-compressed: read through the decoder.
    let id = add_image(
        &store,
        &[(l0, false), (gzip(&l1), true)],
        &["COPY app /app", "RUN change things"],
        serde_json::json!({"Cmd": ["sh"]}),
        "fat:1",
    );
    let imgs = kiln_report::load_images(&store, &["fat:1"]).unwrap();
    let r = kiln_report::report::report(&imgs[0], None, None, &Default::default());
    assert_eq!(r.image.id, id.to_string());
    let l0_size = 10_000 + 3000 + 100 + 4096;
    let l1_size = 500 + 100 + 4096 + 123 + 21;
    assert_eq!(r.image.size, l0_size + l1_size);
    assert_eq!(r.layers[0].size, l0_size);
    assert_eq!(r.layers[1].created_by.as_deref(), Some("RUN change things"));
    // w1 overwritten (10000), w2 deleted (3000), chmod copied up (100).
    assert_eq!(r.wasted.bytes, 13_100);
    assert_eq!(r.wasted.count, 3);
    assert_eq!(
        r.wasted.efficiency,
        100.0 - (13_100.0 / (l0_size + l1_size) as f64 * 1000.0).round() / 10.0
    );
    let chmod = r
        .wasted
        .files
        .iter()
        .find(|l| l.path == "/app/chmod")
        .unwrap();
    assert!(chmod.same_content);
    assert_eq!(r.duplicates.bytes, 4096);
    assert_eq!(r.duplicates.groups[0].paths, ["/app/d1", "/app/d2"]);
    let found: Vec<(&str, &str, u64)> = r
        .leftovers
        .iter()
        .map(|l| (l.kind.word(), l.path.as_str(), l.size))
        .collect();
    assert_eq!(
        found,
        [("cache", "/root/.cache", 123), (".git", "/src/.git", 21)]
    );
    // Text mentions the same figures.
    let text = kiln_report::text::render(&r);
    assert!(text.contains("Wasted: 13.1kB (13100 bytes)"), "{text}");
}

#[test]
fn diff_lines_and_config_changes() {
    let (_d, store) = store();
    let a = tar_of(&[
        E::Dir("etc/"),
        E::File("etc/passwd", b"root:x:0:0\n"),
        E::File("etc/gone", b"x"),
        E::Link("etc/l", "passwd"),
        E::FileAs("etc/own", b"o", 0o644, 0),
    ]);
    let b = tar_of(&[
        E::Dir("etc/"),
        E::File("etc/passwd", b"root:x:0:0\napp:x:1000\n"),
        E::Link("etc/l", "group"),
        E::FileAs("etc/own", b"o", 0o600, 1000),
        E::File("etc/new", b"n"),
    ]);
    add_image(
        &store,
        &[(a, false)],
        &["a"],
        serde_json::json!({"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Labels": {"v": "1"}}),
        "one",
    );
    add_image(
        &store,
        &[(b, false)],
        &["b"],
        serde_json::json!({"Env": ["PATH=/bin", "B=2"], "Cmd": ["sh", "-c", "x"], "User": "app",
            "ExposedPorts": {"80/tcp": {}}, "Labels": {"v": "2"}}),
        "two",
    );
    let imgs = kiln_report::load_images(&store, &["one", "two"]).unwrap();
    let d = kiln_report::diff::diff_images(&imgs[0], &imgs[1]);
    assert_eq!(
        kiln_report::diff::render_text(&d),
        "\
D /etc/gone
C /etc/l (link passwd → group)
A /etc/new
C /etc/own (mode 0644 → 0600, owner 0:0 → 1000:1000)
C /etc/passwd (size 11 → 22)
D config Env A=1
A config Env B=2
C config Cmd ([\"sh\"] → [\"sh\",\"-c\",\"x\"])
C config User (unset → app)
A config ExposedPorts 80/tcp
C config Labels v (1 → 2)
"
    );
    assert_eq!(d.stat.added, 1);
    assert_eq!(d.stat.removed_bytes, 1);
    assert_eq!(d.stat.changed, 3);
    // Same image: nothing.
    let same = kiln_report::load_images(&store, &["one", "one"]).unwrap();
    assert!(kiln_report::diff::diff_images(&same[0], &same[1]).is_empty());
}

#[test]
fn build_records_round_trip_show_in_the_report_and_go_with_the_image() {
    let (_d, store) = store();
    let id = add_image(
        &store,
        &[(tar_of(&[E::File("f", &[0u8; 1000])]), false)],
        &["COPY f /f"],
        serde_json::json!({}),
        "app",
    );
    let rec = BuildRecord {
        image_id: id,
        target: None,
        started_ms: 1_700_000_000_000,
        duration_ms: 1234,
        stages: vec![
            StageRecord {
                index: 0,
                name: Some("builder".into()),
                base: "node:18".into(),
                size: 4000,
                duration_ms: 1000,
                steps: 3,
                cached_steps: 1,
                is_final: false,
                base_stage: None,
                uses: Vec::new(),
            },
            StageRecord {
                index: 1,
                name: None,
                base: "nginx:alpine".into(),
                size: 1000,
                duration_ms: 200,
                steps: 1,
                cached_steps: 1,
                is_final: true,
                base_stage: None,
                uses: vec![0],
            },
        ],
        layers: vec![kiln_store::LayerOrigin {
            kind: kiln_store::OriginKind::CopyFrom,
            source: "builder".into(),
        }],
    };
    store.record_build(&rec).unwrap();
    assert_eq!(store.latest_build_record(&id).unwrap(), Some(rec.clone()));
    // Only the newest KEEP_PER_IMAGE are kept.
    for _ in 0..kiln_store::KEEP_PER_IMAGE + 2 {
        store.record_build(&rec).unwrap();
    }
    assert_eq!(
        store.build_records(&id).unwrap().len() as i64,
        kiln_store::KEEP_PER_IMAGE
    );

    let imgs = kiln_report::load_images(&store, &["app"]).unwrap();
    let r = kiln_report::report::report(&imgs[0], Some(&rec), None, &Default::default());
    let b = r.build.as_ref().unwrap();
    assert_eq!(b.stages[1].name, "stage-1");
    // The image (1000 bytes) against the biggest build stage (4000): 75% stayed behind.
    assert_eq!(b.biggest_build_stage, Some(("builder".into(), 4000, 75.0)));
    let text = kiln_report::text::render(&r);
    assert!(
        text.contains("is 75.0% smaller than its biggest build stage builder (4kB)"),
        "{text}"
    );
    // COPY --from=builder: the file, its directory and the image's bytes are builder's.
    let from_builder = kiln_report::origin::OriginBytes {
        origin: "stage builder".into(),
        bytes: 1000,
        files: 1,
    };
    assert_eq!(r.shipped_from, std::slice::from_ref(&from_builder));
    assert_eq!(r.directories[0].origins, [from_builder]);
    assert_eq!(r.files[0].origin.as_deref(), Some("stage builder"));
    assert_eq!(r.layers[0].origin.as_deref(), Some("stage builder"));
    assert!(text.contains("/f  ← stage builder"), "{text}");

    // A record of an image the store does not have is refused.
    let mut missing = rec.clone();
    missing.image_id = Digest::of(b"nope");
    assert!(matches!(
        store.record_build(&missing),
        Err(kiln_store::Error::ImageNotFound(_))
    ));

    // Removing the image removes its records.
    store.remove_image("app", true).unwrap();
    assert!(store.build_records(&id).unwrap().is_empty());
}

#[test]
fn a_layer_is_indexed_once_and_the_index_kept_in_the_store() {
    let (_d, store) = store();
    let layer = tar_of(&[
        E::Dir("app"),
        E::File("app/a", b"hello"),
        E::File("app/b", b"hello"),
    ]);
    let id = add_image(
        &store,
        &[(layer, false)],
        &["COPY . /app"],
        serde_json::json!({}),
        "app",
    );
    let first = kiln_report::load_images(&store, &["app"]).unwrap();
    let blob = first[0].blobs[0];
    let kept = store
        .layer_files(&[blob], kiln_report::stored::FORMAT)
        .unwrap();
    assert!(kept[0].is_some(), "the index was not kept");
    // The blob is not read again: a report of an image whose blob is now garbage still works,
    // from the kept index, and says the same.
    let path = store.blob_path(&blob);
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&path, perms).unwrap();
    std::fs::write(&path, b"not a tar").unwrap();
    let again = kiln_report::load_images(&store, &["app"]).unwrap();
    let opts = Default::default();
    let (a, b) = (
        kiln_report::report::report(&first[0], None, None, &opts),
        kiln_report::report::report(&again[0], None, None, &opts),
    );
    assert_eq!(
        serde_json::to_value(&a).unwrap(),
        serde_json::to_value(&b).unwrap()
    );
    assert_eq!(b.duplicates.bytes, 5);
    // A kept index that does not decode is made again from the blob (here: garbage, an error).
    store
        .put_layer_files(kiln_report::stored::FORMAT, &[(blob, vec![1, 2, 3])])
        .unwrap();
    assert!(kiln_report::load_images(&store, &["app"]).is_err());
    // The index goes with its layer.
    store.remove_image("app", true).unwrap();
    let _ = id;
    assert_eq!(
        store
            .layer_files(&[blob], kiln_report::stored::FORMAT)
            .unwrap(),
        [None]
    );
}
