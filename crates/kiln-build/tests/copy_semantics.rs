//! COPY/ADD semantics at the library level, one test per conformance case about COPY/ADD
//! (../shared/conformance/cases): build a context and a destination root, run `copy_into`,
//! check the resulting tree (modes, owners, links, contents).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use kiln_build::context::BuildContext;
use kiln_build::copy::{CopyError, CopyRequest, CopySource, copy_into};
use kiln_dockerfile::dockerignore::PatternSet;

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
}

fn chmod(root: &Path, rel: &str, mode: u32) {
    fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(root: &Path, rel: &str) -> u32 {
    fs::symlink_metadata(root.join(rel)).unwrap().mode() & 0o7777
}

fn owner(root: &Path, rel: &str) -> (u32, u32) {
    let m = fs::symlink_metadata(root.join(rel)).unwrap();
    (m.uid(), m.gid())
}

fn read(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap()
}

fn exists(root: &Path, rel: &str) -> bool {
    fs::symlink_metadata(root.join(rel)).is_ok()
}

fn req<'a>(source: CopySource<'a>, patterns: &[&str], dest: &str) -> CopyRequest<'a> {
    CopyRequest::new(source, patterns, dest)
}

fn ctx(dir: &Path) -> BuildContext {
    BuildContext::open_with_dockerignore(dir).unwrap()
}

/// A destination root that looks like a small image: /etc/passwd and /etc/group.
fn image_root() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\napp:x:1001:1001::/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    );
    write(
        d.path(),
        "etc/group",
        "root:x:0:\napp:x:1001:\nnogroup:x:65534:\nstaff:x:50:app\n",
    );
    d
}

#[test]
fn copy_file_dest() {
    let c = tempfile::tempdir().unwrap();
    write(c.path(), "one.txt", "one\n");
    write(c.path(), "two.txt", "two\n");
    let cx = ctx(c.path());
    let d = image_root();
    let r = d.path();
    fs::create_dir(r.join("existing")).unwrap();
    let run = |p: &[&str], dest: &str, wd: &str| {
        let mut q = req(CopySource::Context(&cx), p, dest);
        q.workdir = wd.into();
        copy_into(&q, r).unwrap()
    };
    run(&["one.txt"], "/into/", "/");
    assert_eq!(read(r, "into/one.txt"), "one\n");
    assert_eq!(mode(r, "into"), 0o755);
    run(&["one.txt"], "/renamed", "/");
    assert_eq!(read(r, "renamed"), "one\n");
    run(&["one.txt"], "/existing", "/");
    assert_eq!(read(r, "existing/one.txt"), "one\n");
    run(&["one.txt", "two.txt"], "/multi/", "/");
    assert_eq!(read(r, "multi/two.txt"), "two\n");
    // Several sources onto a path without a slash: each is copied onto it, the last wins
    // (dockerd 20.10's BuildKit; tests/conformance/copy-multi-no-slash).
    run(&["one.txt", "two.txt"], "/multi2", "/");
    assert_eq!(read(r, "multi2"), "two\n");
    // ... and into it when it is a directory already.
    run(&["one.txt", "two.txt"], "/multi", "/");
    assert_eq!(read(r, "multi/one.txt"), "one\n");
    run(&["two.txt"], ".", "/work");
    assert_eq!(read(r, "work/two.txt"), "two\n");
    run(&["two.txt"], "sub/", "/work");
    assert_eq!(read(r, "work/sub/two.txt"), "two\n");
    run(&["one.txt"], "/into/deeper/nested/file.txt", "/work");
    assert_eq!(read(r, "into/deeper/nested/file.txt"), "one\n");
    assert_eq!(owner(r, "into/deeper/nested/file.txt"), (0, 0));
    assert_eq!(mode(r, "into/deeper/nested"), 0o755);
    // Replacing a file keeps the copy semantics; a file cannot replace a directory.
    run(&["two.txt"], "/renamed", "/");
    assert_eq!(read(r, "renamed"), "two\n");
}

#[test]
fn copy_dir_contents() {
    let c = tempfile::tempdir().unwrap();
    write(c.path(), "tree/top.txt", "top");
    write(c.path(), "tree/run.sh", "#!/bin/sh\n");
    chmod(c.path(), "tree/run.sh", 0o755);
    write(c.path(), "tree/empty-later/.keep", "");
    write(c.path(), "tree/sub/s.txt", "s");
    write(c.path(), "tree/sub/deeper/d.txt", "d");
    chmod(c.path(), "tree/sub", 0o700);
    let cx = ctx(c.path());
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    copy_into(&req(CopySource::Context(&cx), &["tree"], "/dest"), r).unwrap();
    assert_eq!(read(r, "dest/top.txt"), "top");
    assert!(!exists(r, "dest/tree"));
    assert_eq!(mode(r, "dest/run.sh"), 0o755);
    assert_eq!(mode(r, "dest/top.txt"), 0o644);
    // The created destination stays 0755; nested dirs keep their mode.
    assert_eq!(mode(r, "dest"), 0o755);
    assert_eq!(mode(r, "dest/sub"), 0o700);
    assert_eq!(read(r, "dest/sub/deeper/d.txt"), "d");
    copy_into(
        &req(CopySource::Context(&cx), &["tree/"], "/dest-slash/"),
        r,
    )
    .unwrap();
    assert_eq!(read(r, "dest-slash/sub/s.txt"), "s");
    copy_into(
        &req(CopySource::Context(&cx), &["tree/sub"], "/dest/sub-again"),
        r,
    )
    .unwrap();
    assert_eq!(read(r, "dest/sub-again/deeper/d.txt"), "d");
    copy_into(
        &req(
            CopySource::Context(&cx),
            &["tree/sub", "tree/empty-later"],
            "/merged/",
        ),
        r,
    )
    .unwrap();
    assert_eq!(read(r, "merged/s.txt"), "s");
    assert!(exists(r, "merged/.keep"));
    assert!(exists(r, "merged/deeper/d.txt"));
    // mtimes come from the source.
    let src_m = fs::metadata(c.path().join("tree/top.txt")).unwrap().mtime();
    assert_eq!(fs::metadata(r.join("dest/top.txt")).unwrap().mtime(), src_m);
}

#[test]
fn copy_wildcards() {
    let c = tempfile::tempdir().unwrap();
    for f in [
        "a.md",
        "ab.md",
        "b.md",
        "config.yaml",
        "package.json",
        "package-lock.json",
        "packages.txt",
        "lib/x.js",
        "lib/y.txt",
    ] {
        write(c.path(), f, f);
    }
    let cx = ctx(c.path());
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    let mut q = req(CopySource::Context(&cx), &["package*.json"], "./");
    q.workdir = "/app".into();
    copy_into(&q, r).unwrap();
    assert!(exists(r, "app/package.json") && exists(r, "app/package-lock.json"));
    assert!(!exists(r, "app/packages.txt"));
    copy_into(&req(CopySource::Context(&cx), &["?.md"], "/docs/"), r).unwrap();
    assert!(exists(r, "docs/a.md") && exists(r, "docs/b.md") && !exists(r, "docs/ab.md"));
    copy_into(
        &req(CopySource::Context(&cx), &["[ab]*.md"], "/brackets/"),
        r,
    )
    .unwrap();
    assert!(exists(r, "brackets/ab.md") && exists(r, "brackets/a.md"));
    copy_into(&req(CopySource::Context(&cx), &["lib/*.js"], "/lib-js/"), r).unwrap();
    assert!(exists(r, "lib-js/x.js") && !exists(r, "lib-js/y.txt"));
    copy_into(
        &req(
            CopySource::Context(&cx),
            &["conf*.yaml", "package.json"],
            "/mixed/",
        ),
        r,
    )
    .unwrap();
    assert!(exists(r, "mixed/config.yaml") && exists(r, "mixed/package.json"));
    // A wildcard matching nothing copies nothing (BuildKit allows empty wildcards)...
    copy_into(&req(CopySource::Context(&cx), &["nomatch*"], "/none/"), r).unwrap();
    assert!(!exists(r, "none"));
    // ...but a plain path that does not exist is an error naming it.
    let e = copy_into(&req(CopySource::Context(&cx), &["missing.txt"], "/x/"), r).unwrap_err();
    assert!(e.to_string().contains("\"/missing.txt\": not found"), "{e}");
    // A malformed pattern is an error.
    assert!(copy_into(&req(CopySource::Context(&cx), &["[a"], "/x/"), r).is_err());
}

#[test]
fn copy_symlinks() {
    let c = tempfile::tempdir().unwrap();
    write(c.path(), "tree/real/file.txt", "real");
    symlink("real/file.txt", c.path().join("tree/rel-link")).unwrap();
    symlink("/tree/real/file.txt", c.path().join("tree/abs-link")).unwrap();
    symlink("nowhere", c.path().join("tree/dangling")).unwrap();
    symlink("real", c.path().join("tree/dir-link")).unwrap();
    symlink("tree/real/file.txt", c.path().join("top-link")).unwrap();
    let cx = ctx(c.path());
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    copy_into(&req(CopySource::Context(&cx), &["tree"], "/tree"), r).unwrap();
    assert_eq!(
        fs::read_link(r.join("tree/rel-link")).unwrap(),
        Path::new("real/file.txt")
    );
    assert_eq!(
        fs::read_link(r.join("tree/abs-link")).unwrap(),
        Path::new("/tree/real/file.txt")
    );
    assert_eq!(
        fs::read_link(r.join("tree/dangling")).unwrap(),
        Path::new("nowhere")
    );
    assert_eq!(
        fs::read_link(r.join("tree/dir-link")).unwrap(),
        Path::new("real")
    );
    // A symlink named as the source is followed.
    copy_into(
        &req(CopySource::Context(&cx), &["top-link"], "/followed.txt"),
        r,
    )
    .unwrap();
    assert!(
        fs::symlink_metadata(r.join("followed.txt"))
            .unwrap()
            .is_file()
    );
    assert_eq!(read(r, "followed.txt"), "real");
    copy_into(
        &req(
            CopySource::Context(&cx),
            &["tree/dir-link"],
            "/via-dir-link/",
        ),
        r,
    )
    .unwrap();
    assert_eq!(read(r, "via-dir-link/file.txt"), "real");
    // An absolute link is followed inside the context: /tree/real/file.txt is the context's.
    copy_into(
        &req(CopySource::Context(&cx), &["tree/abs-link"], "/abs.txt"),
        r,
    )
    .unwrap();
    assert_eq!(read(r, "abs.txt"), "real");
}

#[test]
fn copy_chmod_and_chown() {
    let c = tempfile::tempdir().unwrap();
    write(c.path(), "f.txt", "f\n");
    write(c.path(), "d/sub/x.txt", "x");
    let cx = ctx(c.path());
    let d = image_root();
    let r = d.path();
    let with = |p: &str, dest: &str, chown: Option<&str>, chm: Option<&str>, add: bool| {
        let mut q = req(CopySource::Context(&cx), &[p], dest);
        q.chown = chown.map(String::from);
        q.chmod = chm.map(String::from);
        q.is_add = add;
        copy_into(&q, r)
    };
    with("f.txt", "/exec.txt", None, Some("0755"), false).unwrap();
    assert_eq!(mode(r, "exec.txt"), 0o755);
    with("f.txt", "/private/", None, Some("600"), false).unwrap();
    assert_eq!(mode(r, "private/f.txt"), 0o600);
    assert_eq!(mode(r, "private"), 0o755);
    with("d", "/dir750/", None, Some("0750"), false).unwrap();
    assert_eq!(mode(r, "dir750"), 0o755, "created destination stays 0755");
    assert_eq!(mode(r, "dir750/sub"), 0o750);
    assert_eq!(mode(r, "dir750/sub/x.txt"), 0o750);
    with("f.txt", "/both.txt", Some("app:app"), Some("0640"), false).unwrap();
    assert_eq!(
        (mode(r, "both.txt"), owner(r, "both.txt")),
        (0o640, (1001, 1001))
    );
    with("f.txt", "/added.txt", None, Some("0700"), true).unwrap();
    assert_eq!(mode(r, "added.txt"), 0o700);
    with("f.txt", "/sym.txt", None, Some("u+x,g=u"), false).unwrap();
    assert_eq!(mode(r, "sym.txt"), 0o774);
    assert!(matches!(
        with("f.txt", "/bad", None, Some("99999"), false),
        Err(CopyError::Chmod(_))
    ));

    // --chown: names, ids, uid only, new parents get the owner, existing dirs keep theirs.
    with("f.txt", "/by-name/", Some("app"), None, false).unwrap();
    assert_eq!(owner(r, "by-name/f.txt"), (1001, 1001));
    assert_eq!(owner(r, "by-name"), (1001, 1001));
    with("f.txt", "/by-names/", Some("app:nogroup"), None, false).unwrap();
    assert_eq!(owner(r, "by-names/f.txt"), (1001, 65534));
    with("f.txt", "/by-ids/", Some("1001:1001"), None, false).unwrap();
    assert_eq!(owner(r, "by-ids/f.txt"), (1001, 1001));
    with("f.txt", "/uid-only/", Some("4242"), None, false).unwrap();
    assert_eq!(owner(r, "uid-only/f.txt"), (4242, 4242));
    with("d", "/dir-owned/", Some("nobody:1001"), None, false).unwrap();
    assert_eq!(owner(r, "dir-owned/sub/x.txt"), (65534, 1001));
    assert_eq!(owner(r, "dir-owned/sub"), (65534, 1001));
    with("d", "/new/parents/of/dest/", Some("app"), None, false).unwrap();
    for p in [
        "new",
        "new/parents",
        "new/parents/of",
        "new/parents/of/dest",
    ] {
        assert_eq!(owner(r, p), (1001, 1001), "{p}");
    }
    fs::create_dir(r.join("pre-existing")).unwrap();
    with("f.txt", "/pre-existing/", Some("4242:4343"), None, false).unwrap();
    assert_eq!(owner(r, "pre-existing"), (0, 0));
    assert_eq!(owner(r, "pre-existing/f.txt"), (4242, 4343));
    // A name the image does not know is an error naming it.
    let e = with("f.txt", "/x", Some("ghost"), None, false).unwrap_err();
    assert!(e.to_string().contains("unable to find user ghost"), "{e}");
    let e = with("f.txt", "/x", Some("app:ghosts"), None, false).unwrap_err();
    assert!(e.to_string().contains("unable to find group ghosts"), "{e}");
}

#[test]
fn copy_under_symlink() {
    let c = tempfile::tempdir().unwrap();
    write(c.path(), "Dockerfile", "FROM x\n");
    let cx = ctx(c.path());
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    fs::create_dir_all(r.join("opt/real")).unwrap();
    symlink("/opt/real", r.join("opt/link")).unwrap();
    symlink("real", r.join("opt/rel")).unwrap();
    copy_into(
        &req(CopySource::Context(&cx), &["Dockerfile"], "/opt/link/"),
        r,
    )
    .unwrap();
    assert_eq!(read(r, "opt/real/Dockerfile"), "FROM x\n");
    copy_into(
        &req(
            CopySource::Context(&cx),
            &["Dockerfile"],
            "/opt/rel/sub/Dockerfile.copy",
        ),
        r,
    )
    .unwrap();
    assert_eq!(read(r, "opt/real/sub/Dockerfile.copy"), "FROM x\n");
    // The links themselves are untouched.
    assert_eq!(
        fs::read_link(r.join("opt/link")).unwrap(),
        Path::new("/opt/real")
    );
    // A relative dest under a symlinked WORKDIR.
    let mut q = req(CopySource::Context(&cx), &["Dockerfile"], "rel/");
    q.workdir = "/opt/link/wd".into();
    copy_into(&q, r).unwrap();
    assert!(exists(r, "opt/real/wd/rel/Dockerfile"));
}

#[test]
fn dockerignore_case() {
    let c = tempfile::tempdir().unwrap();
    let p = c.path();
    write(
        p,
        ".dockerignore",
        "# comments and blank lines are ignored\n\n*.log\n!logs/keep.log\n**/*.tmp\nsecret/\nnode_modules\nDockerfile\n.dockerignore\ndocs/*.md\n./notes.txt\n",
    );
    for f in [
        "Dockerfile",
        "README.md",
        "docs/guide.md",
        "logs/app.log",
        "logs/keep.log",
        "node_modules/pkg/index.js",
        "notes.txt",
        "secret/password",
        "src/main.c",
        "src/a/y.tmp",
        "src/a/b/x.tmp",
        "src/a/b/keep.c",
        "top.tmp",
        "top.log",
    ] {
        write(p, f, f);
    }
    let cx = ctx(p);
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    copy_into(&req(CopySource::Context(&cx), &["."], "/ctx"), r).unwrap();
    let mut listing = Vec::new();
    for e in walk(&r.join("ctx")) {
        listing.push(e);
    }
    listing.sort();
    assert_eq!(
        listing,
        // `*.log` is anchored at the root: logs/app.log stays (top.log goes).
        vec![
            "README.md",
            "docs",
            "logs",
            "logs/app.log",
            "logs/keep.log",
            "src",
            "src/a",
            "src/a/b",
            "src/a/b/keep.c",
            "src/main.c"
        ]
    );
    // Ignored files are absent for explicit sources too.
    let e = copy_into(
        &req(CopySource::Context(&cx), &["secret/password"], "/x"),
        r,
    )
    .unwrap_err();
    assert!(e.to_string().contains("not found"), "{e}");
    assert!(cx.is_ignored("Dockerfile") && cx.is_ignored("node_modules/pkg/index.js"));
    assert!(!cx.is_ignored("logs/keep.log"));
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                go(base, &p, out);
            }
        }
    }
    go(dir, dir, &mut out);
    out
}

#[test]
fn heredoc_copy() {
    let d = image_root();
    let r = d.path();
    let mut q = req(
        CopySource::Inline(vec![("EOF".into(), b"[server]\nport = 8080\n".to_vec())]),
        &[],
        "config.ini",
    );
    q.workdir = "/etc/app".into();
    copy_into(&q, r).unwrap();
    assert_eq!(read(r, "etc/app/config.ini"), "[server]\nport = 8080\n");
    assert_eq!(
        (
            mode(r, "etc/app/config.ini"),
            owner(r, "etc/app/config.ini")
        ),
        (0o644, (0, 0))
    );
    let mut q = req(
        CopySource::Inline(vec![("EOF".into(), b"s3cret\n".to_vec())]),
        &[],
        "/home/app/secret.txt",
    );
    q.chown = Some("app:app".into());
    q.chmod = Some("0600".into());
    copy_into(&q, r).unwrap();
    assert_eq!(
        (
            mode(r, "home/app/secret.txt"),
            owner(r, "home/app/secret.txt")
        ),
        (0o600, (1001, 1001))
    );
}

#[test]
fn copy_exclude_selfcheck() {
    let c = tempfile::tempdir().unwrap();
    for f in [
        "home.go",
        "home.md",
        "home.txt",
        "homer.go",
        "home/keep.go",
        "home/sub/skip.txt",
    ] {
        write(c.path(), f, f);
    }
    let cx = ctx(c.path());
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    let mut q = req(CopySource::Context(&cx), &["hom*"], "/mydir/");
    q.exclude = vec!["*.txt".into()];
    copy_into(&q, r).unwrap();
    assert!(
        exists(r, "mydir/home.md") && exists(r, "mydir/home.go") && exists(r, "mydir/homer.go")
    );
    assert!(!exists(r, "mydir/home.txt"));
    assert!(exists(r, "mydir/keep.go"));
    let mut q = req(CopySource::Context(&cx), &["hom*"], "/mydir2/");
    q.exclude = vec!["*.txt".into(), "*.md".into()];
    copy_into(&q, r).unwrap();
    assert!(
        exists(r, "mydir2/home.go")
            && !exists(r, "mydir2/home.md")
            && !exists(r, "mydir2/home.txt")
    );
    // Patterns apply below directory sources, relative to them (dockerignore rules).
    let mut q = req(CopySource::Context(&cx), &["home"], "/h/");
    q.exclude = vec!["**/*.txt".into()];
    copy_into(&q, r).unwrap();
    assert!(exists(r, "h/keep.go") && !exists(r, "h/sub/skip.txt"));
}

#[test]
fn copy_parents_selfcheck() {
    let c = tempfile::tempdir().unwrap();
    for f in [
        "x/a.txt",
        "x/y/b.txt",
        "x/y/c.txt",
        "src/a.txt",
        "src/x/b.txt",
        "src/x/y/c.txt",
        "src/x/y/skip.md",
    ] {
        write(c.path(), f, f);
    }
    let cx = ctx(c.path());
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    copy_into(
        &req(
            CopySource::Context(&cx),
            &["x/a.txt", "x/y/b.txt"],
            "/no-parents/",
        ),
        r,
    )
    .unwrap();
    assert!(exists(r, "no-parents/a.txt") && exists(r, "no-parents/b.txt"));
    let par = |p: &[&str], dest: &str| {
        let mut q = req(CopySource::Context(&cx), p, dest);
        q.parents = true;
        copy_into(&q, r)
    };
    par(&["x/a.txt", "x/y/b.txt"], "/parents/").unwrap();
    assert!(
        exists(r, "parents/x/a.txt")
            && exists(r, "parents/x/y/b.txt")
            && !exists(r, "parents/a.txt")
    );
    assert_eq!(read(r, "parents/x/y/b.txt"), "x/y/b.txt");
    assert!(!exists(r, "parents/x/y/c.txt"));
    par(&["./x/./y/*.txt"], "/dot/").unwrap();
    assert!(exists(r, "dot/y/b.txt") && exists(r, "dot/y/c.txt") && !exists(r, "dot/x"));
    par(&["src/**/*.txt"], "/glob/").unwrap();
    for f in ["glob/src/a.txt", "glob/src/x/b.txt", "glob/src/x/y/c.txt"] {
        assert!(exists(r, f), "{f}");
    }
    assert!(!exists(r, "glob/src/x/y/skip.md"));
    let e = par(&["x/missing.txt"], "/p2/").unwrap_err();
    assert!(e.to_string().contains("not found"), "{e}");
}

#[test]
fn long_unicode_names() {
    let c = tempfile::tempdir().unwrap();
    let long = "x".repeat(120);
    write(c.path(), "ctx/name with spaces.txt", "s");
    write(c.path(), "ctx/ünïcødé-目录/файл ☃.txt", "u");
    write(c.path(), &format!("ctx/{long}/{long}-file.txt"), "l");
    symlink(
        format!("{long}/{long}-file.txt"),
        c.path().join("ctx/😀-link"),
    )
    .unwrap();
    let cx = ctx(c.path());
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    copy_into(&req(CopySource::Context(&cx), &["ctx"], "/ctx"), r).unwrap();
    assert_eq!(read(r, "ctx/ünïcødé-目录/файл ☃.txt"), "u");
    assert_eq!(read(r, &format!("ctx/{long}/{long}-file.txt")), "l");
    assert_eq!(read(r, "ctx/name with spaces.txt"), "s");
    assert_eq!(read(r, "ctx/😀-link"), "l");
    copy_into(
        &req(CopySource::Context(&cx), &["ctx/ünïcødé-*/*.txt"], "/u/"),
        r,
    )
    .unwrap();
    assert!(exists(r, "u/файл ☃.txt"));
}

#[test]
fn copy_from_stage_special_files() {
    // A stage root like the special-files case: other owners, setuid/setgid/sticky bits,
    // empty dirs, mode 000, hard links, a symlink, a fifo.
    let s = tempfile::tempdir().unwrap();
    let p = s.path().join("special");
    fs::create_dir(&p).unwrap();
    write(&p, "owned", "owned");
    std::os::unix::fs::chown(p.join("owned"), Some(1234), Some(5678)).unwrap();
    write(&p, "suid", "x");
    chmod(&p, "suid", 0o4755);
    write(&p, "sgid", "g");
    chmod(&p, "sgid", 0o2750);
    fs::create_dir(p.join("sticky")).unwrap();
    chmod(&p, "sticky", 0o1777);
    fs::create_dir(p.join("empty-dir")).unwrap();
    fs::create_dir(p.join("private-empty")).unwrap();
    chmod(&p, "private-empty", 0o700);
    write(&p, "noperm", "nothing");
    chmod(&p, "noperm", 0);
    write(&p, "orig", "linked");
    fs::hard_link(p.join("orig"), p.join("hard1")).unwrap();
    fs::create_dir(p.join("sub")).unwrap();
    fs::hard_link(p.join("orig"), p.join("sub/hard2")).unwrap();
    symlink("orig", p.join("soft")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    write(&p, "empty-file", "");
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    let stats = copy_into(
        &req(
            CopySource::Dir(s.path().to_path_buf()),
            &["/special"],
            "/special",
        ),
        r,
    )
    .unwrap();
    assert_eq!(
        owner(r, "special/owned"),
        (1234, 5678),
        "stage owners are kept"
    );
    assert_eq!(mode(r, "special/suid"), 0o4755);
    assert_eq!(mode(r, "special/sgid"), 0o2750);
    assert_eq!(mode(r, "special/sticky"), 0o1777);
    assert_eq!(mode(r, "special/private-empty"), 0o700);
    assert_eq!(mode(r, "special/noperm"), 0);
    let ino = |rel: &str| fs::metadata(r.join(rel)).unwrap().ino();
    assert_eq!(ino("special/orig"), ino("special/hard1"));
    assert_eq!(ino("special/orig"), ino("special/sub/hard2"));
    assert_eq!(stats.hardlinks, 2);
    assert_eq!(
        fs::read_link(r.join("special/soft")).unwrap(),
        Path::new("orig")
    );
    // As dockerd 20.10's BuildKit: FIFOs are left out (device nodes become empty files,
    // tests/conformance/copy-from-special-files).
    assert!(fs::symlink_metadata(r.join("special/fifo")).is_err());
    assert_eq!(fs::metadata(r.join("special/empty-file")).unwrap().len(), 0);
    // COPY --from=stage by index-like plain paths and several files into a dir.
    copy_into(
        &req(
            CopySource::Dir(s.path().to_path_buf()),
            &["/special/orig", "/special/sgid"],
            "/big/",
        ),
        r,
    )
    .unwrap();
    assert_eq!(read(r, "big/orig"), "linked");
}

#[test]
fn large_and_sparse_files() {
    let s = tempfile::tempdir().unwrap();
    let nums: String = (1..200_000).map(|i| format!("{i}\n")).collect();
    write(s.path(), "numbers.txt", &nums);
    let f = fs::File::create(s.path().join("sparse.bin")).unwrap();
    f.set_len(3 << 20).unwrap();
    drop(f);
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    copy_into(
        &req(
            CopySource::Dir(s.path().to_path_buf()),
            &["/numbers.txt", "/sparse.bin"],
            "/big/",
        ),
        r,
    )
    .unwrap();
    assert_eq!(read(r, "big/numbers.txt"), nums);
    let sparse = fs::read(r.join("big/sparse.bin")).unwrap();
    assert_eq!(sparse.len(), 3 << 20);
    assert!(sparse.iter().all(|b| *b == 0));
}

#[test]
fn copy_ignores_user_and_copy_of_root_dot() {
    // user-ownership: COPY ignores USER (no chown → 0:0 from the context).
    let c = tempfile::tempdir().unwrap();
    write(c.path(), "Dockerfile", "x");
    let cx = BuildContext::open(c.path(), PatternSet::default()).unwrap();
    let d = image_root();
    copy_into(
        &req(
            CopySource::Context(&cx),
            &["Dockerfile"],
            "/copied-as-nobody",
        ),
        d.path(),
    )
    .unwrap();
    assert_eq!(owner(d.path(), "copied-as-nobody"), (0, 0));
    // workdir COPY part: relative to WORKDIR /a/b.
    let mut q = req(CopySource::Context(&cx), &["Dockerfile"], "rel/");
    q.workdir = "/a/b".into();
    copy_into(&q, d.path()).unwrap();
    assert!(exists(d.path(), "a/b/rel/Dockerfile"));
}

#[test]
fn passwd_for_run_users() {
    use kiln_build::copy::passwd::{Identity, resolve_user};
    let d = image_root();
    let r = d.path();
    assert_eq!(
        resolve_user(r, "app").unwrap(),
        Identity {
            uid: 1001,
            gid: 1001,
            additional_gids: vec![50]
        }
    );
    assert_eq!(resolve_user(r, "").unwrap().uid, 0);
    assert_eq!(
        resolve_user(r, "2000:3000").unwrap(),
        Identity {
            uid: 2000,
            gid: 3000,
            additional_gids: vec![]
        }
    );
    assert_eq!(resolve_user(r, "4242").unwrap().gid, 0);
    assert_eq!(resolve_user(r, "app:root").unwrap().gid, 0);
    assert_eq!(resolve_user(r, "nobody").unwrap().uid, 65534);
    let e = resolve_user(r, "ghost").unwrap_err();
    assert!(e.to_string().contains("unable to find user ghost"), "{e}");
    // /etc/passwd is read inside the root: a link to the host's file is re-rooted.
    let e2 = tempfile::tempdir().unwrap();
    fs::create_dir(e2.path().join("etc")).unwrap();
    symlink("/etc/shadow", e2.path().join("etc/passwd")).unwrap();
    assert!(
        resolve_user(e2.path(), "root").is_err()
            || resolve_user(e2.path(), "root").unwrap().uid == 0
    );
    assert!(resolve_user(e2.path(), "daemon").is_err());
    // No /etc/passwd at all: no user is root (0:0), a named one is an error, as in runc.
    let bare = tempfile::tempdir().unwrap();
    assert_eq!(
        resolve_user(bare.path(), "").unwrap(),
        Identity {
            uid: 0,
            gid: 0,
            additional_gids: vec![]
        }
    );
    assert!(resolve_user(bare.path(), "root").is_err());
}
