//! The snapshot suite, after containerd's snapshotter testsuite: whiteout-sensitive cases run
//! through real overlay mounts, and through layer tars and back. Needs root.
//!
//! Modules: `hostile` (refused layer tars), `layers` (tar ↔ directory semantics and round
//! trips), `export` (deterministic layer blobs), `fuzz` (generated hostile layers never
//! escape the destination), `fixture` (helpers).

mod suite {
    pub mod export;
    pub mod fixture;
    pub mod fuzz;
    pub mod hostile;
    pub mod layers;
}

use kiln_snapshot::{
    ActiveSnapshot, Compression, DirTemp, ExportOptions, ExtractOptions, OverlayOptions,
    Snapshotter, export_layer, extract_layer, mount_readonly,
};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use suite::fixture::*;

/// A committed layer of the test's own layer store: `<root>/layers/<id>`.
#[derive(Clone, Debug, PartialEq)]
struct Layer {
    id: String,
    path: PathBuf,
}

impl Layer {
    fn id(&self) -> &str {
        &self.id
    }
    fn path(&self) -> &Path {
        &self.path
    }
}

/// Lower directories of a chain (top first).
fn lowers(chain: &[Layer]) -> Vec<PathBuf> {
    chain.iter().map(|l| l.path.clone()).collect()
}

/// A snapshotter with temp dirs under a fresh root, and layers kept beside them (as a store
/// keeps them: the committed upper renamed into place). Checked for leaked mounts when
/// dropped.
struct Env {
    tmp: tempfile::TempDir,
    sn: Snapshotter<DirTemp>,
}

impl Env {
    fn new() -> Env {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let sn = Snapshotter::new(DirTemp::new(&tmp.path().join("root/tmp")).unwrap());
        fs::create_dir_all(tmp.path().join("root/layers")).unwrap();
        Env { tmp, sn }
    }

    fn layer_path(&self, id: &str) -> PathBuf {
        self.tmp.path().join("root/layers").join(id)
    }

    /// Prepare on `parents`, let `f` change the rootfs, commit and keep the diff as `id`.
    fn layer(&self, id: &str, parents: &[Layer], f: impl FnOnce(&Path)) -> Layer {
        let active = self
            .sn
            .prepare(&lowers(parents), &OverlayOptions { volatile: true })
            .unwrap();
        f(active.rootfs());
        let diff = active.commit().unwrap();
        let path = self.layer_path(id);
        fs::rename(diff.path(), &path).unwrap();
        diff.keep();
        Layer {
            id: id.into(),
            path,
        }
    }

    /// What a container on `chain` (top first) sees.
    fn seen(&self, chain: &[Layer]) -> BTreeMap<String, Node> {
        let v = self.sn.view(&lowers(chain)).unwrap();
        dump(v.rootfs())
    }

    /// The temp dirs the snapshotter has not removed.
    fn temp_left(&self) -> usize {
        fs::read_dir(self.sn.dirs().root()).unwrap().count()
    }

    /// Export each layer as a tar and extract it under a new id: the chain seen through the
    /// re-extracted layers must equal the original.
    fn through_tars(&self, chain: &[Layer]) -> Vec<Layer> {
        let mut out = Vec::new();
        for l in chain {
            let mut blob = Vec::new();
            let info = export_layer(
                l.path(),
                &ExportOptions {
                    compression: Compression::Gzip,
                    ..Default::default()
                },
                &mut blob,
            )
            .unwrap();
            let id = format!("re-{}", l.id());
            let path = self.layer_path(&id);
            fs::create_dir(&path).unwrap();
            let stats = extract_layer(&blob[..], &path, &ExtractOptions::default()).unwrap();
            assert_eq!(stats.diff_id, info.diff_id);
            out.push(Layer { id, path });
        }
        out
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_eq!(
                mounts_under(self.tmp.path()),
                Vec::<String>::new(),
                "leaked mounts"
            );
        }
    }
}

fn names(m: &BTreeMap<String, Node>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

#[test]
fn remove_directory_in_lower_layer() {
    let e = Env::new();
    let base = e.layer("base", &[], |r| {
        fs::create_dir_all(r.join("lib/sub")).unwrap();
        fs::write(r.join("lib/sub/a"), b"a").unwrap();
        fs::write(r.join("keep"), b"k").unwrap();
    });
    let top = e.layer("top", std::slice::from_ref(&base), |r| {
        fs::remove_dir_all(r.join("lib")).unwrap()
    });
    let chain = [top.clone(), base.clone()];
    assert_eq!(names(&e.seen(&chain)), ["keep"]);
    // The upper holds a single whiteout for the directory.
    assert_eq!(names(&dump(top.path())), ["lib"]);
    assert_eq!(dump(top.path())["lib"].kind, "char");
    let re = e.through_tars(&chain);
    assert_eq!(e.seen(&re), e.seen(&chain));
}

#[test]
fn deleted_files_in_child_snapshot() {
    let e = Env::new();
    let base = e.layer("base", &[], |r| {
        fs::create_dir(r.join("d")).unwrap();
        for f in ["f1", "f2", "d/f3"] {
            fs::write(r.join(f), f).unwrap();
        }
    });
    let child = e.layer("child", std::slice::from_ref(&base), |r| {
        fs::remove_file(r.join("f1")).unwrap();
        fs::remove_file(r.join("d/f3")).unwrap();
    });
    let chain = [child.clone(), base.clone()];
    assert_eq!(names(&e.seen(&chain)), ["d", "f2"]);
    // And recreating a deleted file in a grandchild shows it again.
    let grand = e.layer("grand", &chain, |r| {
        fs::write(r.join("f1"), b"again").unwrap()
    });
    let chain3 = [grand, child, base];
    assert_eq!(
        e.seen(&chain3)["f1"].content.as_deref(),
        Some(&b"again"[..])
    );
    let re = e.through_tars(&chain3);
    assert_eq!(e.seen(&re), e.seen(&chain3));
}

#[test]
fn layers_128_mount() {
    let e = Env::new();
    let mut chain: Vec<Layer> = Vec::new();
    for i in 0..128 {
        let id = format!("l{i:03}");
        let path = e.layer_path(&id);
        fs::create_dir(&path).unwrap();
        fs::write(path.join(format!("f{i:03}")), i.to_string()).unwrap();
        fs::write(path.join("common"), i.to_string()).unwrap();
        let l = Layer { id, path };
        chain.insert(0, l);
    }
    let seen = e.seen(&chain);
    assert_eq!(seen.len(), 129);
    assert_eq!(seen["common"].content.as_deref(), Some(&b"127"[..]));
    assert_eq!(seen["f000"].content.as_deref(), Some(&b"0"[..]));
    // Writable too, with the upper on top of all 128.
    let top = e.layer("top", &chain, |r| {
        assert_eq!(fs::read(r.join("f064")).unwrap(), b"64");
        fs::remove_file(r.join("f000")).unwrap();
    });
    chain.insert(0, top);
    assert_eq!(e.seen(&chain).len(), 128);
}

#[test]
fn opaque_directory_hides_lower_content() {
    let e = Env::new();
    let base = e.layer("base", &[], |r| {
        fs::create_dir(r.join("etc")).unwrap();
        fs::write(r.join("etc/old1"), b"1").unwrap();
        fs::write(r.join("etc/old2"), b"2").unwrap();
    });
    let top = e.layer("top", std::slice::from_ref(&base), |r| {
        fs::remove_dir_all(r.join("etc")).unwrap();
        fs::create_dir(r.join("etc")).unwrap();
        fs::write(r.join("etc/new"), b"n").unwrap();
    });
    assert!(dump(top.path())["etc"].opaque);
    let chain = [top, base];
    assert_eq!(names(&e.seen(&chain)), ["etc", "etc/new"]);
    let re = e.through_tars(&chain);
    assert!(dump(re[0].path())["etc"].opaque);
    assert_eq!(e.seen(&re), e.seen(&chain));
}

#[test]
fn directory_rename_is_copy_plus_whiteout() {
    let e = Env::new();
    let base = e.layer("base", &[], |r| {
        fs::create_dir_all(r.join("old/sub")).unwrap();
        fs::write(r.join("old/sub/x"), b"x").unwrap();
    });
    let top = e.layer("top", std::slice::from_ref(&base), |r| {
        // redirect_dir=off: the kernel refuses, as `mv` expects, and `mv` falls back to
        // copy and delete.
        let err = fs::rename(r.join("old"), r.join("new")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EXDEV));
        fs::create_dir_all(r.join("new/sub")).unwrap();
        fs::copy(r.join("old/sub/x"), r.join("new/sub/x")).unwrap();
        fs::remove_dir_all(r.join("old")).unwrap();
    });
    let up = dump(top.path());
    assert_eq!(up["old"].kind, "char");
    assert_eq!(up["new/sub/x"].content.as_deref(), Some(&b"x"[..]));
    let chain = [top, base];
    assert_eq!(names(&e.seen(&chain)), ["new", "new/sub", "new/sub/x"]);
    let re = e.through_tars(&chain);
    assert_eq!(e.seen(&re), e.seen(&chain));
}

#[test]
fn modified_lower_file_is_copied_up_whole() {
    let e = Env::new();
    let data = vec![7u8; 100_000];
    let base = e.layer("base", &[], |r| fs::write(r.join("f"), &data).unwrap());
    let top = e.layer("top", std::slice::from_ref(&base), |r| {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(r.join("f"), fs::Permissions::from_mode(0o600)).unwrap();
    });
    // metacopy=off: the upper has the data, not just the metadata.
    assert_eq!(fs::read(top.path().join("f")).unwrap(), data);
}

#[test]
fn views_are_read_only_and_scratch_works() {
    let e = Env::new();
    let v = e.sn.view(&[]).unwrap();
    assert_eq!(names(&dump(v.rootfs())), Vec::<&str>::new());
    assert_eq!(
        fs::write(v.rootfs().join("x"), b"x")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EROFS)
    );
    drop(v);
    let one = e.layer("one", &[], |r| fs::write(r.join("a"), b"a").unwrap());
    let v = e.sn.view(&lowers(std::slice::from_ref(&one))).unwrap();
    assert_eq!(
        fs::write(v.rootfs().join("x"), b"x")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EROFS)
    );
    drop(v);
    let two = e.layer("two", std::slice::from_ref(&one), |r| {
        fs::write(r.join("b"), b"b").unwrap()
    });
    let lowers = [two.path().to_path_buf(), one.path().to_path_buf()];
    let target = e.tmp.path().join("ro");
    fs::create_dir(&target).unwrap();
    let m = mount_readonly(&lowers, &target).unwrap();
    assert_eq!(names(&dump(&target)), ["a", "b"]);
    assert!(fs::write(target.join("x"), b"x").is_err());
    m.unmount().unwrap();
}

#[test]
fn dropped_active_snapshot_leaves_nothing() {
    let e = Env::new();
    let base = e.layer("base", &[], |r| fs::write(r.join("a"), b"a").unwrap());
    assert_eq!(e.temp_left(), 0, "a kept diff leaves no temp dir");
    for parents in [vec![], vec![base]] {
        let active: ActiveSnapshot =
            e.sn.prepare(&lowers(&parents), &OverlayOptions::default())
                .unwrap();
        fs::write(active.rootfs().join("junk"), b"j").unwrap();
        assert!(!active.is_unchanged().unwrap());
        drop(active);
        assert_eq!(e.temp_left(), 0);
        assert_eq!(mounts_under(e.tmp.path()), Vec::<String>::new());
    }
}

#[test]
fn commit_hands_over_the_upper_and_an_unkept_diff_is_removed() {
    let e = Env::new();
    let base = e.layer("base", &[], |r| {
        fs::write(r.join("old"), b"o").unwrap();
        fs::write(r.join("gone"), b"g").unwrap();
    });
    let active =
        e.sn.prepare(
            &lowers(std::slice::from_ref(&base)),
            &OverlayOptions::default(),
        )
        .unwrap();
    assert!(active.is_unchanged().unwrap());
    fs::write(active.rootfs().join("new"), b"n").unwrap();
    fs::remove_file(active.rootfs().join("gone")).unwrap();
    let diff = active.commit().unwrap();
    // Unmounted; only the upper is left, holding exactly the change.
    assert_eq!(mounts_under(e.tmp.path()), Vec::<String>::new());
    assert_eq!(e.temp_left(), 1);
    let up = dump(diff.path());
    assert_eq!(names(&up), ["gone", "new"]);
    assert_eq!(up["gone"].kind, "char");
    // Not kept (say, the store refused it): dropping removes it.
    drop(diff);
    assert_eq!(e.temp_left(), 0);
}
