//! Hostile layer tars: each is refused with an error naming the entry, and nothing is written
//! outside the destination.

use super::fixture::*;
use kiln_snapshot::{EntryError, Error, ExtractOptions, apply_layer, extract_layer};
use std::fs;
use std::path::Path;

/// A tempdir holding `outside/` (must stay empty) and `a/b/dest/` (the extraction root).
fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir(t.path().join("outside")).unwrap();
    let dest = t.path().join("a/b/dest");
    fs::create_dir_all(&dest).unwrap();
    (t, dest)
}

fn assert_nothing_outside(t: &Path) {
    assert_eq!(listing(&t.join("outside")), Vec::<String>::new());
    let mut top = listing(t);
    top.retain(|p| !p.starts_with("a/b/dest/") && !p.starts_with("outside"));
    assert_eq!(top, ["a", "a/b", "a/b/dest"]);
}

fn entry_error(r: kiln_snapshot::Result<kiln_snapshot::ExtractStats>) -> (String, EntryError) {
    match r {
        Err(Error::Entry { entry, kind }) => (entry, kind),
        other => panic!("expected an entry error, got {other:?}"),
    }
}

#[test]
fn dotdot_escape_is_refused() {
    let (t, dest) = setup();
    let tar = RawTar::new()
        .file("ok", b"fine")
        .file("../../x", b"evil")
        .finish();
    let (entry, kind) = entry_error(extract_layer(&tar[..], &dest, &ExtractOptions::default()));
    assert_eq!(entry, "../../x");
    assert!(matches!(kind, EntryError::EscapesRoot), "{kind}");
    assert!(!t.path().join("a/x").exists());
    assert_nothing_outside(t.path());
}

#[test]
fn absolute_path_is_refused() {
    let (t, dest) = setup();
    let target = format!("{}/outside/x", t.path().display());
    let tar = RawTar::new().file(&target, b"evil").finish();
    let (entry, kind) = entry_error(extract_layer(&tar[..], &dest, &ExtractOptions::default()));
    assert_eq!(entry, target);
    assert!(matches!(kind, EntryError::AbsolutePath), "{kind}");
    assert_nothing_outside(t.path());
    let (_, kind) = entry_error(extract_layer(
        &RawTar::new().file("/etc/kiln-x", b"").finish()[..],
        &dest,
        &ExtractOptions::default(),
    ));
    assert!(matches!(kind, EntryError::AbsolutePath));
    assert!(!Path::new("/etc/kiln-x").exists());
}

#[test]
fn write_through_absolute_symlink_is_refused() {
    for apply in [false, true] {
        let (t, dest) = setup();
        let outside = t.path().join("outside");
        let tar = RawTar::new()
            .link("evil", tar::EntryType::Symlink, outside.to_str().unwrap())
            .file("evil/x", b"evil")
            .finish();
        let r = if apply {
            apply_layer(&tar[..], &dest, &ExtractOptions::default())
        } else {
            extract_layer(&tar[..], &dest, &ExtractOptions::default())
        };
        let (entry, kind) = entry_error(r);
        assert_eq!(entry, "evil/x");
        assert!(
            matches!(&kind, EntryError::ThroughSymlink { component } if component == "evil"),
            "{kind}"
        );
        assert_nothing_outside(t.path());
    }
}

#[test]
fn write_through_relative_symlink_is_refused() {
    let (t, dest) = setup();
    let tar = RawTar::new()
        .link("a", tar::EntryType::Symlink, "../../..")
        .dir("a/outside/")
        .file("a/outside/x", b"evil")
        .finish();
    let (entry, kind) = entry_error(extract_layer(&tar[..], &dest, &ExtractOptions::default()));
    assert_eq!(entry, "a/outside/");
    assert!(matches!(kind, EntryError::ThroughSymlink { .. }), "{kind}");
    assert_nothing_outside(t.path());
}

#[test]
fn hardlink_to_host_file_is_refused() {
    let (t, dest) = setup();
    for target in [
        "/etc/shadow",
        "../../../../etc/shadow",
        "etc/shadow",
        "../outside",
    ] {
        let tar = RawTar::new()
            .link("shadow", tar::EntryType::Link, target)
            .finish();
        let (entry, kind) = entry_error(extract_layer(&tar[..], &dest, &ExtractOptions::default()));
        assert_eq!(entry, "shadow");
        assert!(
            matches!(&kind, EntryError::HardlinkOutsideLayer { target: t } if t == target),
            "{kind}"
        );
    }
    assert!(!dest.join("shadow").exists());
    assert_nothing_outside(t.path());
}

#[test]
fn hardlink_through_own_symlink_is_refused() {
    let (t, dest) = setup();
    fs::write(t.path().join("outside/secret"), b"s").unwrap();
    let tar = RawTar::new()
        .link("l", tar::EntryType::Symlink, "../../../outside")
        .link("h", tar::EntryType::Link, "l/secret")
        .finish();
    let (_, kind) = entry_error(extract_layer(&tar[..], &dest, &ExtractOptions::default()));
    assert!(
        matches!(kind, EntryError::HardlinkOutsideLayer { .. }),
        "{kind}"
    );
    assert!(!dest.join("h").exists());
}

#[test]
fn file_replacing_a_symlink_does_not_write_through_it() {
    let (t, dest) = setup();
    let victim = t.path().join("outside/victim");
    fs::write(&victim, b"original").unwrap();
    let tar = RawTar::new()
        .link("f", tar::EntryType::Symlink, victim.to_str().unwrap())
        .file("f", b"replaced")
        .finish();
    extract_layer(&tar[..], &dest, &ExtractOptions::default()).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"original");
    assert_eq!(fs::read(dest.join("f")).unwrap(), b"replaced");
    assert!(fs::symlink_metadata(dest.join("f")).unwrap().is_file());
}

#[test]
fn truncated_gzip_is_an_error() {
    let (t, dest) = setup();
    let big: Vec<u8> = (0..400_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let tar = RawTar::new().file("a", &big).file("b", &big).finish();
    let gz = gzip(&tar);
    let cut = &gz[..gz.len() / 2];
    let err = extract_layer(cut, &dest, &ExtractOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            &err,
            Error::Archive { .. }
                | Error::Entry {
                    kind: EntryError::Io { .. },
                    ..
                }
        ),
        "{msg}"
    );
    assert_nothing_outside(t.path());
}

#[test]
fn garbage_is_an_error() {
    let (t, dest) = setup();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
        .collect();
    let err = extract_layer(&garbage[..], &dest, &ExtractOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Archive { .. }), "{err}");
    // Gzip magic followed by garbage.
    let mut fake = vec![0x1f, 0x8b];
    fake.extend_from_slice(&garbage);
    let err = extract_layer(&fake[..], &dest, &ExtractOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Archive { .. }), "{err}");
    assert_nothing_outside(t.path());
    assert_eq!(listing(&dest), Vec::<String>::new());
}

#[test]
fn devices_are_refused_without_permission() {
    let (_t, dest) = setup();
    let tar = RawTar::new().device("dev/null", 1, 3).finish();
    let opts = ExtractOptions {
        allow_devices: false,
        ..Default::default()
    };
    let (entry, kind) = entry_error(extract_layer(&tar[..], &dest, &opts));
    assert_eq!(entry, "dev/null");
    assert!(matches!(kind, EntryError::DeviceRefused));
}

#[test]
fn empty_stream_is_an_empty_layer() {
    let (_t, dest) = setup();
    let stats = extract_layer(&[][..], &dest, &ExtractOptions::default()).unwrap();
    assert_eq!(stats.entries, 0);
    assert_eq!(listing(&dest), Vec::<String>::new());
}
