//! Nothing is ever read outside the source root nor written outside the destination root:
//! hostile symlinks in the destination, in a stage root, in the context, and in archives.

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::Path;

use kiln_build::context::BuildContext;
use kiln_build::copy::{CopyRequest, CopySource, copy_into};

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
}

fn req<'a>(source: CopySource<'a>, patterns: &[&str], dest: &str) -> CopyRequest<'a> {
    CopyRequest::new(source, patterns, dest)
}

/// Layout: <tmp>/outside (a host dir that must stay untouched) and <tmp>/root (the dest).
struct World {
    _t: tempfile::TempDir,
    outside: std::path::PathBuf,
    root: std::path::PathBuf,
}

fn world() -> World {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    let root = t.path().join("root");
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(&root).unwrap();
    write(&outside, "victim", "original");
    World {
        outside,
        root,
        _t: t,
    }
}

fn untouched(w: &World) {
    let names: Vec<_> = fs::read_dir(&w.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("victim")],
        "outside dir changed"
    );
    assert_eq!(
        fs::read_to_string(w.outside.join("victim")).unwrap(),
        "original"
    );
}

#[test]
fn hostile_symlinks_in_dest_root_stay_inside() {
    let w = world();
    let c = tempfile::tempdir().unwrap();
    write(c.path(), "victim", "pwned");
    write(c.path(), "dir/victim", "pwned");
    let cx = BuildContext::open_with_dockerignore(c.path()).unwrap();
    // Absolute link to the host path of the outside dir, relative link climbing out,
    // a link to the victim file itself.
    symlink(&w.outside, w.root.join("abs")).unwrap();
    symlink("../../../../../../outside", w.root.join("rel")).unwrap();
    symlink(w.outside.join("victim"), w.root.join("file-link")).unwrap();
    for dest in [
        "/abs/",
        "/rel/",
        "/abs/victim",
        "/rel/victim",
        "/file-link",
        "/abs/../../outside/victim",
    ] {
        copy_into(&req(CopySource::Context(&cx), &["victim"], dest), &w.root).unwrap();
    }
    copy_into(&req(CopySource::Context(&cx), &["dir"], "/abs"), &w.root).unwrap();
    untouched(&w);
    // The writes landed re-rooted inside the destination.
    let abs_inside = w.root.join(w.outside.strip_prefix("/").unwrap());
    assert_eq!(
        fs::read_to_string(abs_inside.join("victim")).unwrap(),
        "pwned"
    );
    assert_eq!(
        fs::read_to_string(w.root.join("outside/victim")).unwrap(),
        "pwned"
    );
}

#[test]
fn symlinked_dir_inside_copied_tree_is_not_followed_in_dest() {
    // The destination already has sub -> /outside-ish; copying a tree with a real `sub`
    // directory must not write through the link.
    let w = world();
    symlink(&w.outside, w.root.join("sub")).unwrap();
    let c = tempfile::tempdir().unwrap();
    write(c.path(), "tree/sub/victim", "pwned");
    let cx = BuildContext::open_with_dockerignore(c.path()).unwrap();
    let e = copy_into(&req(CopySource::Context(&cx), &["tree"], "/"), &w.root);
    assert!(e.is_err(), "a directory cannot merge into a symlink");
    untouched(&w);
}

#[test]
fn stage_root_symlinks_resolve_inside_the_stage() {
    let w = world();
    let stage = tempfile::tempdir().unwrap();
    symlink(w.outside.join("victim"), stage.path().join("abs-link")).unwrap();
    symlink(
        "../../../../../../../../etc/hostname",
        stage.path().join("rel-link"),
    )
    .unwrap();
    symlink(&w.outside, stage.path().join("dir-link")).unwrap();
    let src = || CopySource::Dir(stage.path().to_path_buf());
    // Followed inside the stage root: those targets do not exist there.
    for p in ["/abs-link", "/rel-link", "/dir-link/victim"] {
        let e = copy_into(&req(src(), &[p], "/x"), &w.root).unwrap_err();
        assert!(e.to_string().contains("not found"), "{p}: {e}");
    }
    // Copying the tree keeps the links as links; nothing from outside is read.
    copy_into(&req(src(), &["/"], "/copied/"), &w.root).unwrap();
    assert!(
        fs::symlink_metadata(w.root.join("copied/abs-link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // A stage file named like the host's resolves to the stage's own copy.
    write(stage.path(), "etc/hostname", "stage-host");
    copy_into(&req(src(), &["/rel-link"], "/h"), &w.root).unwrap();
    assert_eq!(fs::read_to_string(w.root.join("h")).unwrap(), "stage-host");
    untouched(&w);
}

#[test]
fn context_never_left_and_ignored_files_unreachable() {
    let w = world();
    let c = tempfile::tempdir().unwrap();
    write(c.path(), ".dockerignore", "secret\n");
    write(c.path(), "secret", "s3cret");
    symlink(w.outside.join("victim"), c.path().join("out")).unwrap();
    symlink("secret", c.path().join("to-secret")).unwrap();
    symlink("../../..", c.path().join("up")).unwrap();
    let cx = BuildContext::open_with_dockerignore(c.path()).unwrap();
    for p in ["out", "to-secret", "../outside/victim", "up/outside/victim"] {
        let e = copy_into(&req(CopySource::Context(&cx), &[p], "/x"), &w.root);
        assert!(e.is_err(), "{p} must not be readable");
    }
    assert!(!w.root.join("x").exists());
    // `COPY . /ctx` keeps the links as links and leaves the secret out.
    copy_into(&req(CopySource::Context(&cx), &["."], "/ctx"), &w.root).unwrap();
    assert!(
        fs::symlink_metadata(w.root.join("ctx/out"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!w.root.join("ctx/secret").exists());
}

fn tar_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().unwrap()
}

fn entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &[u8],
    kind: tar::EntryType,
    link: &str,
    data: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    // Raw names: the tar crate refuses `..` in set_path.
    let gnu = h.as_gnu_mut().unwrap();
    gnu.name[..name.len()].copy_from_slice(name);
    if !link.is_empty() {
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
}

#[test]
fn hostile_archives_stay_inside_the_destination() {
    let w = world();
    let victim = w.outside.join("victim");
    let data = tar_with(|b| {
        entry(
            b,
            b"../../../../../outside/victim",
            tar::EntryType::Regular,
            "",
            b"pwned",
        );
        entry(b, b"/abs-victim", tar::EntryType::Regular, "", b"abs");
        entry(
            b,
            b"esc",
            tar::EntryType::Symlink,
            victim.to_str().unwrap(),
            b"",
        );
        entry(
            b,
            b"esc",
            tar::EntryType::Regular,
            "",
            b"replaced the link, not written through",
        );
        entry(
            b,
            b"dirlink",
            tar::EntryType::Symlink,
            w.outside.to_str().unwrap(),
            b"",
        );
        entry(
            b,
            b"dirlink/victim",
            tar::EntryType::Regular,
            "",
            b"through a dir link",
        );
        entry(
            b,
            b"hard",
            tar::EntryType::Link,
            "../../../../outside/victim",
            b"",
        );
    });
    let c = tempfile::tempdir().unwrap();
    let mut f = fs::File::create(c.path().join("evil.tar")).unwrap();
    f.write_all(&data).unwrap();
    drop(f);
    let cx = BuildContext::open_with_dockerignore(c.path()).unwrap();
    let mut q = req(CopySource::Context(&cx), &["evil.tar"], "/x/");
    q.is_add = true;
    let r = copy_into(&q, &w.root);
    // The hard link to a path outside resolves inside (to x/outside/victim, written by the
    // first entry), or fails; either way nothing outside changes.
    let _ = r;
    untouched(&w);
    assert_eq!(
        fs::read_to_string(w.root.join("x/outside/victim")).unwrap(),
        "pwned"
    );
    assert_eq!(
        fs::read_to_string(w.root.join("x/abs-victim")).unwrap(),
        "abs"
    );
    assert!(
        fs::symlink_metadata(w.root.join("x/esc"))
            .unwrap()
            .is_file()
    );
}
