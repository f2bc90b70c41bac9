//! Layer export: normalized, deterministic tars and blobs.

use super::fixture::*;
use super::layers::rich_tree;
use kiln_snapshot::{Compression, ExportOptions, TarOptions, export_layer, write_layer_tar};
use std::fs;
use std::io::Read;
use std::path::Path;

fn entries(tar: &[u8]) -> Vec<(String, tar::EntryType, u64, String)> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            assert!(
                h.username_bytes().unwrap_or_default().is_empty()
                    && h.groupname_bytes().unwrap_or_default().is_empty()
            );
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                h.entry_type(),
                h.mtime().unwrap(),
                link,
            )
        })
        .collect()
}

#[test]
fn tar_is_sorted_normalized_and_overlay_free() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::create_dir_all(d.join("b/c")).unwrap();
    fs::write(d.join("b/c/f"), b"x").unwrap();
    fs::write(d.join("a"), b"a").unwrap();
    fs::write(d.join("B"), b"upper case sorts first").unwrap();
    // Two whiteouts sharing one inode, as overlayfs makes them.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("gone1"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    fs::hard_link(d.join("gone1"), d.join("b/gone2")).unwrap();
    set_xattr(&d.join("b"), "trusted.overlay.opaque", b"y");
    set_xattr(&d.join("a"), "trusted.overlay.impure", b"y");
    let mut tar = Vec::new();
    let stats = write_layer_tar(d, &mut tar, &TarOptions::default()).unwrap();
    assert_eq!(stats.tar_size, tar.len() as u64);
    let names: Vec<_> = entries(&tar)
        .into_iter()
        .map(|(n, k, _, _)| (n, k))
        .collect();
    use tar::EntryType as T;
    assert_eq!(
        names,
        [
            ("B".to_string(), T::Regular),
            ("a".into(), T::Regular),
            ("b/".into(), T::Directory),
            ("b/.wh..wh..opq".into(), T::Regular),
            ("b/c/".into(), T::Directory),
            ("b/c/f".into(), T::Regular),
            ("b/.wh.gone2".into(), T::Regular),
            (".wh.gone1".into(), T::Regular),
        ]
    );
    // No overlay xattrs leak into the tar.
    assert!(
        !tar.windows(b"trusted.overlay".len())
            .any(|w| w == b"trusted.overlay")
    );
    // GNU tar reads it.
    let p = t.path().join("l.tar");
    fs::write(&p, &tar).unwrap();
    let out = std::process::Command::new("tar")
        .arg("-tvf")
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn source_date_epoch_clamps_mtimes() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::write(d.join("new"), b"n").unwrap();
    fs::write(d.join("old"), b"o").unwrap();
    let old = rustix::fs::Timespec {
        tv_sec: 1000,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        d.join("old"),
        &rustix::fs::Timestamps {
            last_access: old,
            last_modification: old,
        },
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    let mut tar = Vec::new();
    write_layer_tar(
        d,
        &mut tar,
        &TarOptions {
            source_date_epoch: Some(2000),
        },
    )
    .unwrap();
    let times: Vec<_> = entries(&tar)
        .into_iter()
        .map(|(n, _, m, _)| (n, m))
        .collect();
    assert_eq!(
        times,
        [("new".to_string(), 2000), ("old".to_string(), 1000)]
    );
}

fn export(
    dir: &Path,
    c: Compression,
    threads: usize,
) -> (kiln_snapshot::LayerDescriptorInfo, Vec<u8>) {
    let mut blob = Vec::new();
    let opts = ExportOptions {
        compression: c,
        threads: Some(threads),
        tar: TarOptions {
            source_date_epoch: Some(1_700_000_000),
        },
        ..Default::default()
    };
    let info = export_layer(dir, &opts, &mut blob).unwrap();
    (info, blob)
}

#[test]
fn export_is_deterministic_and_digests_match_the_bytes() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("d");
    fs::create_dir(&d).unwrap();
    rich_tree(&d);
    // Enough data for several parallel gzip chunks.
    let big: Vec<u8> = (0..5_000_000u32).map(|i| ((i / 3) % 253) as u8).collect();
    fs::write(d.join("big"), &big).unwrap();
    let (plain, tar) = export(&d, Compression::None, 1);
    assert_eq!(plain.digest, plain.diff_id);
    assert_eq!(plain.size, tar.len() as u64);
    for c in [Compression::Gzip, Compression::Zstd] {
        let (a, blob_a) = export(&d, c, 1);
        let (b, blob_b) = export(&d, c, 3);
        assert_eq!(a, b, "{c:?}");
        assert!(
            blob_a == blob_b,
            "{c:?}: bytes differ between 1 and 3 threads"
        );
        assert_eq!(a.diff_id, plain.diff_id, "{c:?}");
        assert_eq!(a.uncompressed_size, tar.len() as u64);
        assert_eq!(a.size, blob_a.len() as u64);
        assert_eq!(
            a.digest.to_string(),
            format!("sha256:{}", sha256_hex(&blob_a))
        );
        assert!(a.size < tar.len() as u64 / 2, "{c:?} did not compress");
        let (_, mut r) = kiln_snapshot::decompress(&blob_a[..]).unwrap();
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert!(back == tar, "{c:?} does not decompress to the tar");
        assert_eq!(a.media_type(), c.layer_media_type(true));
    }
    // gunzip (the reference implementation) accepts the parallel gzip stream.
    let (_, gz) = export(&d, Compression::Gzip, 2);
    let p = t.path().join("l.tar.gz");
    fs::write(&p, &gz).unwrap();
    let st = std::process::Command::new("gzip")
        .arg("-t")
        .arg(&p)
        .status()
        .unwrap();
    assert!(st.success());
}

fn sha256_hex(b: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            std::io::Write::write_all(c.stdin.as_mut().unwrap(), b)?;
            drop(c.stdin.take());
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}
