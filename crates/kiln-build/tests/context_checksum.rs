//! Context content keys: stable for identical content, sensitive to what matters (content,
//! mode, names), blind to what does not (mtime, unselected and ignored files), and served from
//! the persistent metadata cache on a rebuild with nothing changed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kiln_build::context::{BuildContext, ChecksumCache, SelectOptions};

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
}

/// Backdate a file so the cache trusts it (files changed within the last second are not
/// remembered: timestamps are coarse).
fn age(root: &Path) {
    for e in walk(root) {
        let t = filetime(-3600);
        let _ = rustix::fs::utimensat(
            rustix::fs::CWD,
            &e,
            &t,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        );
    }
}

fn filetime(offset: i64) -> rustix::fs::Timestamps {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = rustix::fs::Timespec {
        tv_sec: now + offset,
        tv_nsec: 0,
    };
    rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

fn app(root: &Path) {
    write(root, "package.json", "{\"name\":\"app\"}");
    write(root, "package-lock.json", "{\"lock\":1}");
    write(root, "src/App.jsx", "export default 1;");
    write(root, "src/index.js", "import App from './App';");
    write(root, "public/index.html", "<html/>");
}

fn key(cx: &BuildContext, srcs: &[&str], cache: &ChecksumCache) -> String {
    let s: Vec<String> = srcs.iter().map(|s| s.to_string()).collect();
    cx.checksum(&s, &SelectOptions::default(), cache).unwrap()
}

#[test]
fn identical_content_same_key_anywhere() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    app(a.path());
    app(b.path());
    let ca = BuildContext::open_with_dockerignore(a.path()).unwrap();
    let cb = BuildContext::open_with_dockerignore(b.path()).unwrap();
    let c = ChecksumCache::in_memory();
    let k = key(&ca, &["."], &c);
    assert!(k.starts_with("sha256:") && k.len() == 71);
    assert_eq!(k, key(&cb, &["."], &c));
    assert_eq!(k, key(&ca, &["."], &c), "stable across calls");
    assert_ne!(k, key(&ca, &["src"], &c));
}

#[test]
fn only_selected_paths_feed_the_key() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    app(p);
    let cx = BuildContext::open_with_dockerignore(p).unwrap();
    let c = ChecksumCache::in_memory();
    let pkg = key(&cx, &["package*.json"], &c);
    let all = key(&cx, &["."], &c);
    write(p, "src/App.jsx", "export default 2;");
    assert_eq!(
        pkg,
        key(&cx, &["package*.json"], &c),
        "editing src/ keeps COPY package*.json cached"
    );
    assert_ne!(all, key(&cx, &["."], &c));
    write(p, "package.json", "{\"name\":\"app2\"}");
    assert_ne!(pkg, key(&cx, &["package*.json"], &c));
    // A new file matching the wildcard changes the key too.
    let before = key(&cx, &["package*.json"], &c);
    write(p, "package-extra.json", "{}");
    assert_ne!(before, key(&cx, &["package*.json"], &c));
}

#[test]
fn mode_and_names_matter_mtime_does_not() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    app(p);
    let cx = BuildContext::open_with_dockerignore(p).unwrap();
    let c = ChecksumCache::in_memory();
    let k0 = key(&cx, &["src"], &c);
    age(p);
    assert_eq!(k0, key(&cx, &["src"], &c), "mtime is not part of the key");
    fs::set_permissions(p.join("src/index.js"), fs::Permissions::from_mode(0o755)).unwrap();
    let k1 = key(&cx, &["src"], &c);
    assert_ne!(k0, k1, "mode is part of the key");
    fs::rename(p.join("src/index.js"), p.join("src/main.js")).unwrap();
    assert_ne!(k1, key(&cx, &["src"], &c), "names are part of the key");
    std::os::unix::fs::symlink("App.jsx", p.join("src/link")).unwrap();
    let k2 = key(&cx, &["src"], &c);
    fs::remove_file(p.join("src/link")).unwrap();
    std::os::unix::fs::symlink("main.js", p.join("src/link")).unwrap();
    assert_ne!(
        k2,
        key(&cx, &["src"], &c),
        "symlink targets are part of the key"
    );
}

#[test]
fn ignored_files_do_not_matter() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    app(p);
    write(p, ".dockerignore", "node_modules\n*.log\n");
    write(p, "node_modules/x/index.js", "1");
    let cx = BuildContext::open_with_dockerignore(p).unwrap();
    let c = ChecksumCache::in_memory();
    let k = key(&cx, &["."], &c);
    write(p, "node_modules/x/index.js", "2");
    write(p, "debug.log", "noise");
    assert_eq!(k, key(&cx, &["."], &c));
}

#[test]
fn warm_cache_reads_no_file_contents() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    app(p);
    for i in 0..50 {
        write(p, &format!("src/gen/f{i}.js"), &format!("// {i}\n"));
    }
    // Files changed within the last second are not remembered (coarse timestamps).
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let store = tempfile::tempdir().unwrap();
    let cache_path = store.path().join("context-cache-v2/abc");
    let cx = BuildContext::open_with_dockerignore(p).unwrap();
    let cold = ChecksumCache::load(&cache_path);
    assert!(cold.is_empty());
    let k = key(&cx, &["."], &cold);
    let s = cold.stats();
    assert_eq!(s.hits, 0);
    assert_eq!(s.misses, 55);
    assert!(s.bytes_hashed > 0);
    cold.save().unwrap();

    let warm = ChecksumCache::load(&cache_path);
    assert_eq!(warm.len(), 55);
    assert_eq!(k, key(&cx, &["."], &warm));
    let s = warm.stats();
    assert_eq!(
        (s.misses, s.bytes_hashed, s.hits),
        (0, 0, 55),
        "nothing read"
    );
    // Nothing new was hashed: saving leaves the file as it was (no rewrite on a no-op build).
    let before = fs::metadata(&cache_path).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    warm.save().unwrap();
    assert_eq!(
        fs::metadata(&cache_path).unwrap().modified().unwrap(),
        before
    );

    // One edit: exactly one file read again.
    write(p, "src/App.jsx", "export default 3;");
    let k2 = key(&cx, &["."], &warm);
    assert_ne!(k, k2);
    assert_eq!(warm.stats().misses, 1);
}

#[test]
fn damaged_cache_loads_empty() {
    let store = tempfile::tempdir().unwrap();
    let cp = store.path().join("cache");
    fs::write(&cp, b"KILNCSC1 garbage that is not a cache").unwrap();
    let c = ChecksumCache::load(&cp);
    assert!(c.is_empty());
    let d = tempfile::tempdir().unwrap();
    app(d.path());
    age(d.path());
    let cx = BuildContext::open_with_dockerignore(d.path()).unwrap();
    key(&cx, &["."], &c);
    c.save().unwrap();
    // Truncation (a torn write that atomic rename prevents) is detected too.
    let bytes = fs::read(&cp).unwrap();
    fs::write(&cp, &bytes[..bytes.len() - 5]).unwrap();
    assert!(ChecksumCache::load(&cp).is_empty());
}

#[test]
fn missing_source_is_an_error_naming_it() {
    let d = tempfile::tempdir().unwrap();
    app(d.path());
    let cx = BuildContext::open_with_dockerignore(d.path()).unwrap();
    let e = cx
        .checksum(
            &["nope/x.txt".into()],
            &SelectOptions::default(),
            &ChecksumCache::in_memory(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("\"/nope/x.txt\": not found"), "{e}");
}

#[test]
fn exclude_and_parents_change_the_selection() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    app(p);
    let cx = BuildContext::open_with_dockerignore(p).unwrap();
    let c = ChecksumCache::in_memory();
    let src = vec!["src".to_string()];
    let ex = SelectOptions {
        exclude: vec!["*.jsx".into()],
        ..Default::default()
    };
    let k = cx.checksum(&src, &ex, &c).unwrap();
    write(p, "src/App.jsx", "changed");
    assert_eq!(
        k,
        cx.checksum(&src, &ex, &c).unwrap(),
        "excluded files do not count"
    );
    let par = SelectOptions {
        parents: true,
        ..Default::default()
    };
    assert_ne!(
        cx.checksum(&["src/index.js".into()], &par, &c).unwrap(),
        cx.checksum(&["src/index.js".into()], &SelectOptions::default(), &c)
            .unwrap()
    );
}
