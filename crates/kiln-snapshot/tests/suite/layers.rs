//! Layer tar ↔ directory: whiteouts in both extraction modes, and round trips that must keep
//! modes, owners, xattrs, links, special files and mtimes.

use super::fixture::*;
use kiln_snapshot::{
    Compression, ExportOptions, ExtractOptions, TarOptions, apply_layer, export_layer,
    extract_layer, write_layer_tar,
};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn set_mtime(p: &Path, secs: i64) {
    let ts = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// A diff directory with one of everything a layer can hold.
pub fn rich_tree(d: &Path) {
    let long_dir = "d".repeat(120);
    fs::create_dir_all(d.join("usr/bin")).unwrap();
    fs::create_dir_all(d.join(format!("deep/{long_dir}/{}", "e".repeat(150)))).unwrap();
    fs::write(
        d.join(format!(
            "deep/{long_dir}/{}/{}",
            "e".repeat(150),
            "f".repeat(200)
        )),
        b"long",
    )
    .unwrap();
    fs::write(d.join("usr/bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    chmod(&d.join("usr/bin/tool"), 0o4755);
    fs::write(d.join("usr/bin/sgid"), b"x").unwrap();
    fs::create_dir(d.join("tmp")).unwrap();
    chmod(&d.join("tmp"), 0o1777);
    fs::write(d.join("owned"), b"owned by 1234:5678").unwrap();
    rustix::fs::chown(
        d.join("owned"),
        Some(rustix::fs::Uid::from_raw(1234)),
        Some(rustix::fs::Gid::from_raw(5678)),
    )
    .unwrap();
    rustix::fs::chown(
        d.join("usr/bin/sgid"),
        None,
        Some(rustix::fs::Gid::from_raw(42)),
    )
    .unwrap();
    chmod(&d.join("usr/bin/sgid"), 0o2711);
    // security.capability v2: cap_net_bind_service permitted + effective.
    let mut cap = vec![0x01, 0x00, 0x00, 0x02];
    cap.extend_from_slice(&(1u32 << 10).to_le_bytes());
    cap.extend_from_slice(&[0u8; 12]);
    fs::write(d.join("usr/bin/ping"), b"ping").unwrap();
    set_xattr(&d.join("usr/bin/ping"), "security.capability", &cap);
    set_xattr(&d.join("usr/bin/ping"), "user.note", b"\x00binary\xff");
    set_xattr(
        &d.join("usr/bin/ping"),
        "trusted.overlay.origin",
        b"dropped",
    );
    fs::write(d.join("hard1"), b"same inode").unwrap();
    fs::hard_link(d.join("hard1"), d.join("usr/hard2")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/tool", d.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../hard1", d.join("usr/rel-link")).unwrap();
    std::os::unix::fs::symlink("x".repeat(150), d.join("long-link")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    chmod(&d.join("fifo"), 0o640);
    fs::create_dir(d.join("dev")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("dev/null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    chmod(&d.join("dev/null"), 0o666);
    fs::write(d.join("ünïcødé 名前"), b"utf8").unwrap();
    fs::write(d.join("empty"), b"").unwrap();
    let sparse = fs::File::create(d.join("sparse")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    drop(sparse);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(d.join("sparse"))
        .unwrap();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(4 << 20)).unwrap();
    std::io::Write::write_all(&mut f, b"middle").unwrap();
    drop(f);
    // Overlay form: a whiteout and an opaque directory.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("usr/deleted"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    fs::create_dir(d.join("replaced")).unwrap();
    fs::write(d.join("replaced/new"), b"n").unwrap();
    set_xattr(&d.join("replaced"), "trusted.overlay.opaque", b"y");
    fs::create_dir(d.join("locked")).unwrap();
    fs::write(d.join("locked/inside"), b"i").unwrap();
    chmod(&d.join("locked"), 0o000);
    // Times last, deepest first, so creating children does not bump them again.
    for (i, p) in [
        "usr/bin/tool",
        "owned",
        "hard1",
        "usr/bin/ping",
        "empty",
        "sparse",
        "fifo",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&d.join(p), 1_000_000_000 + i as i64);
    }
    set_mtime(&d.join("abs-link"), 1_234_567_890);
    for dir in ["usr/bin", "usr", "tmp", "replaced", "locked", "dev"] {
        set_mtime(&d.join(dir), 1_500_000_000);
    }
}

fn tar_of(dir: &Path, opts: &TarOptions) -> Vec<u8> {
    let mut out = Vec::new();
    write_layer_tar(dir, &mut out, opts).unwrap();
    out
}

#[test]
fn round_trip_keeps_everything() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    rich_tree(&src);
    let tar = tar_of(&src, &TarOptions::default());
    let dst = t.path().join("dst");
    fs::create_dir(&dst).unwrap();
    let stats = extract_layer(&tar[..], &dst, &ExtractOptions::default()).unwrap();
    assert_eq!(stats.whiteouts, 1);
    assert_eq!(stats.opaque_dirs, 1);
    assert_eq!(stats.hardlinks, 1);
    let (a, b) = (dump_with_dir_times(&src), dump_with_dir_times(&dst));
    for (k, n) in &a {
        assert_eq!(Some(n), b.get(k), "{k}");
    }
    assert_eq!(
        a.len(),
        b.len(),
        "extra entries: {:?}",
        b.keys().filter(|k| !a.contains_key(*k)).collect::<Vec<_>>()
    );
    // The sparse file stayed sparse.
    let md = fs::metadata(dst.join("sparse")).unwrap();
    assert_eq!(md.len(), 8 << 20);
    assert!(
        md.blocks() * 512 < 1 << 20,
        "sparse file fully allocated: {} blocks",
        md.blocks()
    );
    // Exporting the extracted tree gives the very same bytes.
    assert_eq!(tar_of(&dst, &TarOptions::default()), tar);
    // And the diff-id extraction reports is the sha256 of those bytes.
    let info = export_layer(
        &dst,
        &ExportOptions {
            compression: Compression::None,
            ..Default::default()
        },
        &mut Vec::new(),
    )
    .unwrap();
    assert_eq!(info.diff_id, stats.diff_id);
}

#[test]
fn whiteouts_become_overlay_form() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let tar = RawTar::new()
        .file("etc/.wh.passwd", b"")
        .dir("var/")
        .file("var/.wh..wh..opq", b"")
        .file("var/new", b"n")
        .file(".wh..wh..plnk", b"")
        .dir("re/")
        .file(".wh.re", b"")
        .file("re/x", b"x")
        .finish();
    let stats = extract_layer(&tar[..], t.path(), &ExtractOptions::default()).unwrap();
    assert_eq!((stats.whiteouts, stats.opaque_dirs), (2, 1));
    let d = dump(t.path());
    assert_eq!((d["etc/passwd"].kind, d["etc/passwd"].rdev), ("char", 0));
    assert!(d["var"].opaque);
    assert_eq!(d["var/new"].content.as_deref(), Some(&b"n"[..]));
    assert!(!d.contains_key(".wh..wh..plnk"));
    // A whiteout naming a directory the same layer writes makes that directory opaque.
    assert!(d["re"].opaque && d["re/x"].kind == "file");
    // Whiteout first, then the directory: same result.
    let t2 = tempfile::tempdir().unwrap();
    let tar = RawTar::new()
        .file(".wh.re", b"")
        .dir("re/")
        .file("re/x", b"x")
        .finish();
    extract_layer(&tar[..], t2.path(), &ExtractOptions::default()).unwrap();
    let d = dump(t2.path());
    assert!(d["re"].opaque && d["re/x"].kind == "file" && d["re"].kind == "dir");
}

#[test]
fn apply_deletes_and_clears_opaque_dirs() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let base = RawTar::new()
        .file("a", b"a")
        .file("d/x", b"x")
        .file("d/sub/y", b"y")
        .file("keep", b"k")
        .link("lib", tar::EntryType::Symlink, "/usr/lib")
        .dir("usr/lib/")
        .finish();
    apply_layer(&base[..], t.path(), &ExtractOptions::default()).unwrap();
    let top = RawTar::new()
        .file(".wh.a", b"")
        .file("d/z", b"z")
        .file("d/.wh..wh..opq", b"")
        .file("lib/libfoo.so", b"so")
        .finish();
    apply_layer(&gzip(&top)[..], t.path(), &ExtractOptions::default()).unwrap();
    let names = listing(t.path());
    assert_eq!(
        names,
        [
            "d",
            "d/z",
            "keep",
            "lib",
            "usr",
            "usr/lib",
            "usr/lib/libfoo.so"
        ]
    );
    // The lower layer's absolute symlink was followed inside the root, not on the host.
    assert!(!Path::new("/usr/lib/libfoo.so").exists());
}

/// A lower layer's symlink to a directory that no layer made (yet): applying an entry below
/// it makes the target inside the root (as a chroot'ed `mkdir -p`), never on the host, and
/// `..` in the target stops at the root.
#[test]
fn apply_through_a_dangling_lower_symlink_makes_its_target_inside_the_root() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let host = format!("/kiln-dangling-{}", std::process::id());
    let base = RawTar::new()
        .link("link", tar::EntryType::Symlink, &format!("{host}/real"))
        .link("up", tar::EntryType::Symlink, "../../../../up-real")
        .link("chain", tar::EntryType::Symlink, "link/deeper")
        .finish();
    apply_layer(&base[..], t.path(), &ExtractOptions::default()).unwrap();
    let top = RawTar::new()
        .file("link/f", b"f")
        .file("up/g", b"g")
        .file("chain/h", b"h")
        .finish();
    apply_layer(&top[..], t.path(), &ExtractOptions::default()).unwrap();
    let inside = t.path().join(host.trim_start_matches('/'));
    assert_eq!(std::fs::read(inside.join("real/f")).unwrap(), b"f");
    assert_eq!(std::fs::read(inside.join("real/deeper/h")).unwrap(), b"h");
    assert_eq!(std::fs::read(t.path().join("up-real/g")).unwrap(), b"g");
    assert!(!Path::new(&host).exists(), "written on the host");
    assert!(
        fs::symlink_metadata(t.path().join("link"))
            .unwrap()
            .is_symlink()
    );
}

/// Also: headers with empty uid/gid fields (never set here) read as 0, as Go reads them.
#[test]
fn directory_metadata_is_set_after_contents() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("ro/").unwrap();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o500);
    h.set_mtime(1_111_111_111);
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("ro/f").unwrap();
    h.set_mode(0o444);
    h.set_size(1);
    h.set_mtime(5);
    h.set_cksum();
    b.append(&h, &b"f"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    extract_layer(&tar[..], t.path(), &ExtractOptions::default()).unwrap();
    let md = fs::metadata(t.path().join("ro")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.mtime()), (0o500, 1_111_111_111));
    assert_eq!(fs::metadata(t.path().join("ro/f")).unwrap().mtime(), 5);
}

/// A name over 100 bytes with a newline in it (and a symlink whose long target has one): kiln
/// reads back what it writes, and so does GNU tar.
#[test]
fn long_names_with_newlines_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let long = format!("{}\nbbb", "a".repeat(116));
    fs::write(src.join(&long), b"x").unwrap();
    let target = format!("/{}\nt", "b".repeat(120));
    std::os::unix::fs::symlink(&target, src.join("l")).unwrap();
    let tar = tar_of(&src, &TarOptions::default());
    let dst = t.path().join("dst");
    fs::create_dir(&dst).unwrap();
    extract_layer(&tar[..], &dst, &ExtractOptions::default()).unwrap();
    assert_eq!(fs::read(dst.join(&long)).unwrap(), b"x");
    assert_eq!(
        fs::read_link(dst.join("l")).unwrap(),
        std::path::PathBuf::from(&target)
    );
    // GNU tar lists the same two names.
    let path = t.path().join("l.tar");
    fs::write(&path, &tar).unwrap();
    let out = std::process::Command::new("tar")
        .args(["--list", "--quoting-style=escape", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(&format!("{}\\nbbb", "a".repeat(116))),
        "{listed}"
    );
}
