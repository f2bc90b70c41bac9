//! Rootless kiln, end to end: ordinary users made for the tests (`kilntest`, `kilntest2` with a
//! 65536-wide subordinate range each, `kilntestnosub` without one; kiln_test's `test_user`)
//! build with the real binary, and their images are byte-identical to root's. The tests run
//! as root (to make the users and the root-side builds) and fail loudly otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln_test::prereq::{TestUser, test_user};

mod support;
use support::*;

/// The multi-stage Dockerfile both sides build: owners 0, 1001 and 65534, a setuid bit, a
/// symlink, a fifo, a whiteout (`/data/gone`) and an opaque directory (`/opq`), files copied
/// from a stage and from the context with --chown.
const DOCKERFILE: &str = "\
FROM localhost/busybox:latest AS base
RUN mkdir -p /data/keep /data/gone /opq /home/app \\
 && echo a > /data/gone/x && echo b > /opq/old && echo k > /data/keep/k \\
 && chown -R 1001:1001 /data/keep /home/app \\
 && touch /nobody && chown 65534:65534 /nobody && chmod 4755 /nobody \\
 && ln -s /data/keep/k /link && mkfifo /fifo
FROM base
RUN rm -rf /data/gone /opq && mkdir /opq && echo new > /opq/new && chown 1001 /opq/new
COPY --from=base --chown=1001:1001 /data/keep /app
COPY --chown=65534:65534 ctxfile /ctxfile
USER 1001
";

/// A second build on top of the first (loaded from root's `kiln save`), checking what the
/// extracted layers show: the whiteout and the opaque directory hide what they must.
const DOCKERFILE_ON_TOP: &str = "\
FROM rootless-test:latest
USER 0
RUN test ! -e /opq/old && test -e /opq/new && test ! -e /data/gone \\
 && [ \"$(stat -c %u:%g /app/k)\" = 1001:1001 ] && [ \"$(stat -c %u:%a /nobody)\" = 65534:4755 ] \\
 && [ \"$(stat -c %u /opq/new)\" = 1001 ] && echo checked > /checked
COPY --from=rootless-test:latest /opq /opq2
";

/// A directory every test user can read (tempfile makes 0700 ones), removed at the end.
struct Shared {
    dir: tempfile::TempDir,
}

impl Shared {
    fn new() -> Shared {
        let dir = tempfile::Builder::new()
            .prefix("kiln-rootless-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Shared { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A build context with `dockerfile` and a `ctxfile`, readable by everyone.
    fn context(&self, name: &str, dockerfile: &str) -> PathBuf {
        let d = self.path(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("Dockerfile"), dockerfile).unwrap();
        std::fs::write(d.join("ctxfile"), "from the context\n").unwrap();
        for p in [&d, &d.join("Dockerfile"), &d.join("ctxfile")] {
            let mode = if p.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        d
    }

    /// A directory owned by `user` (its store, its output files).
    fn owned_by(&self, name: &str, user: &TestUser) -> PathBuf {
        let d = self.path(name);
        std::fs::create_dir_all(&d).unwrap();
        std::os::unix::fs::chown(&d, Some(user.uid), Some(user.uid)).unwrap();
        d
    }

    /// The busybox archive, readable by everyone.
    fn busybox(&self) -> PathBuf {
        let p = self.path("busybox.tar");
        if !p.exists() {
            std::fs::copy(busybox_archive(), &p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        p
    }
}

/// An ordinary user's kiln: the binary (copied where the user may run it), and its runtime
/// directory under the test's temporary directory, whose namespace holder is killed at the
/// end (kiln started it for this test).
struct UserKiln {
    user: TestUser,
    exe: PathBuf,
    runtime: PathBuf,
}

impl UserKiln {
    fn new(shared: &Shared, name: &str) -> UserKiln {
        let user = test_user(name, true);
        let exe = user.executable(Path::new(bin()));
        let runtime = shared.owned_by(&format!("run-{name}"), &user);
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        UserKiln { user, exe, runtime }
    }

    /// `kiln ARGS` as the user, with `env` (KILN_ROOT, SOURCE_DATE_EPOCH...) on top of a clean
    /// environment and XDG_RUNTIME_DIR; killed after 5 minutes (a hang fails the test).
    fn run(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let rt = self.runtime.to_str().unwrap().to_string();
        let mut all = vec![("XDG_RUNTIME_DIR", rt.as_str())];
        all.extend_from_slice(env);
        let timeout = require_command("timeout", "coreutils");
        self.user
            .command_env(&timeout, &all)
            .args(["-s", "KILL", "300"])
            .arg(&self.exe)
            .args(args)
            .current_dir("/")
            .output()
            .unwrap()
    }

    fn ok(&self, env: &[(&str, &str)], args: &[&str]) -> String {
        let (code, so, se) = out(&self.run(env, args));
        assert_eq!(
            code, 0,
            "kiln {args:?} as {} failed:\n{se}{so}",
            self.user.name
        );
        so
    }
}

impl Drop for UserKiln {
    fn drop(&mut self) {
        let pid_file = self.runtime.join("kiln/userns.pid");
        if let Ok(text) = std::fs::read_to_string(pid_file)
            && let Some(pid) = text.split_whitespace().next().and_then(|p| p.parse().ok())
        {
            // SAFETY: signalling the holder kiln started for this test's user.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// root's kiln with its own store; SOURCE_DATE_EPOCH=0 for reproducible image IDs.
fn root_kiln(store: &Path, args: &[&str]) -> String {
    let o = Command::new(bin())
        .env("KILN_ROOT", store)
        .env("SOURCE_DATE_EPOCH", "0")
        .args(args)
        .output()
        .unwrap();
    let (code, so, se) = out(&o);
    assert_eq!(code, 0, "root kiln {args:?} failed:\n{se}{so}");
    so
}

/// The subordinate uid range start of `user` in /etc/subuid.
fn subuid_start(user: &str) -> u32 {
    std::fs::read_to_string("/etc/subuid")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == user).then(|| f[1].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no /etc/subuid line for {user}"))
}

/// Regular files named `name` under `dir` (not following symlinks).
fn find_named(dir: &Path, name: &str, found: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            find_named(&e.path(), name, found);
        } else if ft.is_file() && e.file_name() == name {
            found.push(e.path());
        }
    }
}

#[test]
fn rootless_build_is_byte_identical_to_roots() {
    require_root();
    let shared = Shared::new();
    let u = UserKiln::new(&shared, "kilntest");
    let ctx = shared.context("ctx", DOCKERFILE);
    let busybox = shared.busybox();
    let (ctx_s, bb) = (ctx.to_str().unwrap(), busybox.to_str().unwrap());

    // root
    let rstore = shared.path("root-store");
    root_kiln(&rstore, &["load", "-q", "-i", bb]);
    let root_id = root_kiln(&rstore, &["build", "-q", "-t", "rootless-test", ctx_s]);
    let root_tar = shared.path("root.tar");
    root_kiln(
        &rstore,
        &["save", "-o", root_tar.to_str().unwrap(), "rootless-test"],
    );

    // the user
    let ustore = shared.owned_by("user-store", &u.user);
    let env = [
        ("KILN_ROOT", ustore.to_str().unwrap()),
        ("SOURCE_DATE_EPOCH", "0"),
    ];
    u.ok(&env, &["load", "-q", "-i", bb]);
    let user_id = u.ok(&env, &["build", "-q", "-t", "rootless-test", ctx_s]);
    assert_eq!(user_id.trim(), root_id.trim(), "image IDs differ");
    let outdir = shared.owned_by("user-out", &u.user);
    let user_tar = outdir.join("user.tar");
    u.ok(
        &env,
        &["save", "-o", user_tar.to_str().unwrap(), "rootless-test"],
    );
    std::fs::set_permissions(&root_tar, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (a, b) = (
        std::fs::read(&root_tar).unwrap(),
        std::fs::read(&user_tar).unwrap(),
    );
    assert!(a == b, "kiln save bytes differ between root and rootless");

    // On the host the store's files belong to the user's subordinate IDs: layer uid 1001 is
    // START+1000 (uid 0 in the namespace is the user itself, 1.. are START..).
    use std::os::unix::fs::MetadataExt;
    let mut ks = Vec::new();
    find_named(&ustore, "k", &mut ks);
    assert!(!ks.is_empty(), "no file k in the user's snapshots");
    let want = subuid_start("kilntest") + 1000;
    for k in &ks {
        assert_eq!(std::fs::metadata(k).unwrap().uid(), want, "{}", k.display());
    }
    let store_meta = std::fs::metadata(&ustore).unwrap();
    assert_eq!(store_meta.uid(), u.user.uid);

    // Extraction: the user loads root's archive into a fresh store and builds on top of it
    // (whiteout and opaque marks converted to user.overlay.*); the result is root's again.
    let on_top = shared.context("ctx-on-top", DOCKERFILE_ON_TOP);
    let ustore2 = shared.owned_by("user-store-2", &u.user);
    let env2 = [
        ("KILN_ROOT", ustore2.to_str().unwrap()),
        ("SOURCE_DATE_EPOCH", "0"),
    ];
    u.ok(&env2, &["load", "-q", "-i", root_tar.to_str().unwrap()]);
    let user_top = u.ok(
        &env2,
        &["build", "-q", "-t", "on-top", on_top.to_str().unwrap()],
    );
    let root_top = root_kiln(
        &rstore,
        &["build", "-q", "-t", "on-top", on_top.to_str().unwrap()],
    );
    assert_eq!(user_top.trim(), root_top.trim(), "image IDs on top differ");
}

#[test]
fn demo_builds_as_an_ordinary_user_with_the_default_store() {
    require_root();
    let shared = Shared::new();
    let u = UserKiln::new(&shared, "kilntest");
    let data = shared.owned_by("xdg-data", &u.user);
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo");
    let demo = demo.canonicalize().unwrap();
    let (demo_s, bb) = (demo.to_str().unwrap(), shared.busybox());
    let env = [
        ("XDG_DATA_HOME", data.to_str().unwrap()),
        ("SOURCE_DATE_EPOCH", "0"),
    ];
    // The README demo's steps (scripts/demo.sh), as the user, in its default store.
    u.ok(&env, &["load", "-i", bb.to_str().unwrap()]);
    let graph = u.ok(&env, &["graph", demo_s]);
    assert!(graph.contains("build"), "{graph}");
    u.ok(
        &env,
        &[
            "build",
            "-q",
            "-t",
            "kiln-demo:build",
            "--target",
            "build",
            demo_s,
        ],
    );
    let id = u.ok(&env, &["build", "-q", "-t", "kiln-demo:latest", demo_s]);
    let again = u.run(
        &env,
        &[
            "build",
            "--progress=plain",
            "-t",
            "kiln-demo:latest",
            demo_s,
        ],
    );
    let (code, _, err) = out(&again);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.matches("CACHED").count() >= 3,
        "rebuild not from the cache:\n{err}"
    );
    let images = u.ok(&env, &["images", "--filter", "reference=kiln-demo*"]);
    assert!(images.contains("kiln-demo"), "{images}");
    let outdir = shared.owned_by("demo-out", &u.user);
    let o = format!("type=local,dest={}", outdir.join("out").display());
    u.ok(&env, &["build", "-q", "-o", &o, demo_s]);
    let info = std::fs::read_to_string(outdir.join("out/srv/www/build-info.txt")).unwrap();
    assert!(info.contains("toolchain"), "{info}");
    // The store is where XDG_DATA_HOME says, the user's alone (0700).
    let store = data.join("kiln");
    let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "store {} mode {mode:o}", store.display());

    // root builds the same image ID.
    let rstore = shared.path("root-store");
    root_kiln(&rstore, &["load", "-q", "-i", bb.to_str().unwrap()]);
    let root_id = root_kiln(&rstore, &["build", "-q", "-t", "kiln-demo:latest", demo_s]);
    assert_eq!(id.trim(), root_id.trim());
}

/// The README's demo command itself (`bash scripts/demo.sh`) as an ordinary user: base image,
/// graph, builds, cached rebuild, sizes, files, then `kiln run -d -p` answering on the port,
/// stop and rm, all rootless.
#[test]
fn the_readme_demo_script_runs_as_an_ordinary_user() {
    require_root();
    require_command("busybox", "busybox-static");
    require_command("python3", "python3");
    let shared = Shared::new();
    let u = UserKiln::new(&shared, "kilntest");
    let store = shared.owned_by("demo-store", &u.user);
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/demo.sh")
        .canonicalize()
        .unwrap();
    let timeout = require_command("timeout", "coreutils");
    let o = u
        .user
        .command_env(
            &timeout,
            &[
                ("XDG_RUNTIME_DIR", u.runtime.to_str().unwrap()),
                ("KILN", u.exe.to_str().unwrap()),
                ("KILN_ROOT", store.join("kiln").to_str().unwrap()),
            ],
        )
        .args(["-s", "KILL", "600", "bash"])
        .arg(&script)
        .current_dir("/")
        .output()
        .unwrap();
    let (code, so, se) = out(&o);
    assert_eq!(code, 0, "demo.sh as {} failed:\n{se}{so}", u.user.name);
    assert!(so.contains("Hello from kiln"), "no page fetched:\n{so}");
    assert!(so.contains("kiln-demo-web"), "{so}");
    // Nothing of the container is left: no row, no process of its supervisor.
    let ps = u.ok(
        &[("KILN_ROOT", store.join("kiln").to_str().unwrap())],
        &["ps", "-aq"],
    );
    assert_eq!(ps.trim(), "", "containers left: {ps}");
}

#[test]
fn two_users_never_see_each_others_images() {
    require_root();
    let shared = Shared::new();
    let a = UserKiln::new(&shared, "kilntest");
    let b = UserKiln::new(&shared, "kilntest2");
    let bb = shared.busybox();
    let data_a = shared.owned_by("data-a", &a.user);
    let data_b = shared.owned_by("data-b", &b.user);
    let env_a = [("XDG_DATA_HOME", data_a.to_str().unwrap())];
    let env_b = [("XDG_DATA_HOME", data_b.to_str().unwrap())];
    a.ok(&env_a, &["load", "-q", "-i", bb.to_str().unwrap()]);
    a.ok(&env_a, &["tag", "localhost/busybox:latest", "only-a:1"]);
    assert!(a.ok(&env_a, &["images"]).contains("only-a"));
    let imgs_b = b.ok(&env_b, &["images"]);
    assert!(!imgs_b.contains("only-a"), "{imgs_b}");
    // Nor by pointing at the other's store.
    let store_a = data_a.join("kiln");
    let peek = b.run(&[("KILN_ROOT", store_a.to_str().unwrap())], &["images"]);
    let (code, so, se) = out(&peek);
    assert_ne!(code, 0, "user b read user a's store:\n{so}");
    assert!(!so.contains("only-a"));
    assert!(
        se.contains("not writable") || se.contains("ermission denied"),
        "{se}"
    );
}

#[test]
fn without_a_subordinate_range_kiln_says_what_to_add() {
    require_root();
    let shared = Shared::new();
    let user = test_user("kilntestnosub", false);
    let exe = user.executable(Path::new(bin()));
    let store = shared.owned_by("store", &user);
    let o = user
        .command_env(&exe, &[("KILN_ROOT", store.to_str().unwrap())])
        .arg("images")
        .output()
        .unwrap();
    let (code, _, err) = out(&o);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no subordinate uid range") || err.contains("subordinate uid range"),
        "{err}"
    );
    assert!(err.contains("usermod --add-subuids"), "{err}");
    assert!(err.contains("kilntestnosub"), "{err}");
    assert!(err.contains("/etc/subuid"), "{err}");
    // Commands that need no store or namespace still work.
    let v = user
        .command_env(&exe, &[])
        .arg("--version")
        .output()
        .unwrap();
    assert!(v.status.success());
}

#[test]
fn without_newuidmap_kiln_says_install_uidmap() {
    require_root();
    let shared = Shared::new();
    let u = UserKiln::new(&shared, "kilntest");
    let store = shared.owned_by("store", &u.user);
    // A PATH without /usr/bin (where newuidmap is): only a directory with nothing in it.
    let empty = shared.path("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let o = u.run(
        &[
            ("KILN_ROOT", store.to_str().unwrap()),
            ("PATH", empty.to_str().unwrap()),
        ],
        &["images"],
    );
    let (code, _, err) = out(&o);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("newuidmap") && err.contains("install uidmap"),
        "{err}"
    );
}

#[test]
fn a_store_the_user_cannot_write_is_refused_clearly() {
    require_root();
    let shared = Shared::new();
    let u = UserKiln::new(&shared, "kilntest");
    let theirs = shared.path("roots-store");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = u.run(&[("KILN_ROOT", theirs.to_str().unwrap())], &["images"]);
    let (code, _, err) = out(&o);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "the store directory {} is not writable by this user",
            theirs.display()
        )) && err.contains("KILN_ROOT"),
        "{err}"
    );
    // Nothing was written there.
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0);
}

#[test]
fn overlay_refused_without_fuse_overlayfs_says_so() {
    require_root();
    let shared = Shared::new();
    let u = UserKiln::new(&shared, "kilntest");
    let store = shared.owned_by("store", &u.user);
    let ctx = shared.context("ctx", "FROM localhost/busybox:latest\nRUN true\n");
    let env = [("KILN_ROOT", store.to_str().unwrap())];
    u.ok(
        &env,
        &["load", "-q", "-i", shared.busybox().to_str().unwrap()],
    );
    // No honest way to make this kernel refuse an unprivileged overlay mount was found: the
    // test knob makes kiln take the kernel's EPERM path (crates/kiln-snapshot/src/overlay.rs).
    // The namespace exists already (the load above), so a PATH without fuse-overlayfs (and
    // without newuidmap, which joining does not need) is enough to hide the fallback.
    let empty = shared.path("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let o = u.run(
        &[
            ("KILN_ROOT", store.to_str().unwrap()),
            ("_KILN_TEST_OVERLAY_REFUSED", "1"),
            ("PATH", empty.to_str().unwrap()),
        ],
        &["build", "-q", ctx.to_str().unwrap()],
    );
    let (code, _, err) = out(&o);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the kernel refused overlayfs in kiln's rootless user namespace")
            && err.contains("apt-get install fuse-overlayfs")
            && err.contains("Linux 5.11"),
        "{err}"
    );
}

#[test]
fn every_command_of_a_user_shares_one_user_namespace() {
    require_root();
    let shared = Shared::new();
    let u = UserKiln::new(&shared, "kilntest");
    let store = shared.owned_by("store", &u.user);
    let env = [("KILN_ROOT", store.to_str().unwrap())];
    u.ok(&env, &["images"]);
    let pid_file = u.runtime.join("kiln/userns.pid");
    let text = std::fs::read_to_string(&pid_file).unwrap();
    let pid: i32 = text.split_whitespace().next().unwrap().parse().unwrap();
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    let holder_ns = ns(&pid.to_string());
    assert_ne!(
        holder_ns,
        ns("self"),
        "the holder is in the host's namespace"
    );
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "kiln-userns");
    // A second kiln joins it: the same holder.
    u.ok(&env, &["images"]);
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), text);
    let mode = std::fs::metadata(u.runtime.join("kiln"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn device_nodes_of_a_base_image_are_left_out_with_a_warning() {
    require_root();
    let shared = Shared::new();
    let u = UserKiln::new(&shared, "kilntest");
    let bb = shared.busybox();
    // root makes an image with a device node in a layer.
    let rstore = shared.path("root-store");
    root_kiln(&rstore, &["load", "-q", "-i", bb.to_str().unwrap()]);
    let base = shared.context(
        "base",
        "FROM localhost/busybox:latest\nRUN mknod /null2 c 1 3 && echo kept > /f\n",
    );
    root_kiln(
        &rstore,
        &["build", "-q", "-t", "with-dev", base.to_str().unwrap()],
    );
    let tar = shared.path("with-dev.tar");
    root_kiln(&rstore, &["save", "-o", tar.to_str().unwrap(), "with-dev"]);
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();

    let ustore = shared.owned_by("user-store", &u.user);
    let env = [("KILN_ROOT", ustore.to_str().unwrap())];
    u.ok(&env, &["load", "-q", "-i", tar.to_str().unwrap()]);
    let on_top = shared.context(
        "on-top",
        "FROM with-dev\nRUN test ! -e /null2 && test \"$(cat /f)\" = kept\n",
    );
    let o = u.run(
        &env,
        &["build", "--progress=plain", on_top.to_str().unwrap()],
    );
    let (code, _, err) = out(&o);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "1 device node(s) not created: a rootless user namespace cannot make device nodes"
        ),
        "{err}"
    );
    // The image itself still has it: its saved layers are root's.
    let outdir = shared.owned_by("out", &u.user);
    let again = outdir.join("again.tar");
    u.ok(&env, &["save", "-o", again.to_str().unwrap(), "with-dev"]);
    assert!(std::fs::read(&tar).unwrap() == std::fs::read(&again).unwrap());
}

#[test]
fn fuse_overlayfs_fallback_builds_root_identical_images() {
    require_root();
    require_command("fuse-overlayfs", "fuse-overlayfs");
    let shared = Shared::new();
    let u = UserKiln::new(&shared, "kilntest");
    let ctx = shared.context("ctx", DOCKERFILE);
    let bb = shared.busybox();
    let (ctx_s, bb) = (ctx.to_str().unwrap(), bb.to_str().unwrap());
    let rstore = shared.path("root-store");
    root_kiln(&rstore, &["load", "-q", "-i", bb]);
    let root_id = root_kiln(&rstore, &["build", "-q", "-t", "rootless-test", ctx_s]);
    let ustore = shared.owned_by("user-store", &u.user);
    // The kernel's refusal simulated (see overlay_refused_without_fuse_overlayfs_says_so).
    let env = [
        ("KILN_ROOT", ustore.to_str().unwrap()),
        ("SOURCE_DATE_EPOCH", "0"),
        ("_KILN_TEST_OVERLAY_REFUSED", "1"),
    ];
    u.ok(&env, &["load", "-q", "-i", bb]);
    let o = u.run(&env, &["build", "-q", "-t", "rootless-test", ctx_s]);
    let (code, id, err) = out(&o);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("using fuse-overlayfs"),
        "the fallback was not announced: {err}"
    );
    assert_eq!(id.trim(), root_id.trim(), "image IDs differ");
    // Nothing left mounted or running.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(ustore.to_str().unwrap()), "{mounts}");
}

/// `kiln images` as `u` with XDG_RUNTIME_DIR set to `xdg` (instead of the test's own) and
/// its store at `store`.
fn with_runtime(u: &UserKiln, xdg: &Path, store: &Path) -> (i32, String, String) {
    let o = u
        .user
        .command_env(
            &u.exe,
            &[
                ("XDG_RUNTIME_DIR", xdg.to_str().unwrap()),
                ("KILN_ROOT", store.to_str().unwrap()),
            ],
        )
        .arg("images")
        .current_dir("/")
        .output()
        .unwrap();
    out(&o)
}

/// rv3 finding 2: a symlink planted as `userns.pid` (or `userns.lock`) in the runtime
/// directory is never followed: kiln refuses it by name, and the file it points at keeps its
/// bytes. With the link gone, kiln works.
#[test]
fn a_symlink_planted_as_the_holders_pid_file_is_not_followed() {
    require_root();
    let shared = Shared::new();
    let u = UserKiln::new(&shared, "kilntest");
    let store = shared.owned_by("store", &u.user);
    let rt = u.runtime.join("kiln");
    std::fs::create_dir(&rt).unwrap();
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&rt, Some(u.user.uid), Some(u.user.uid)).unwrap();
    let victim = shared.owned_by("victim-dir", &u.user).join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::chown(&victim, Some(u.user.uid), Some(u.user.uid)).unwrap();
    for name in ["userns.pid", "userns.lock"] {
        let link = rt.join(name);
        // (The first round's kiln made the lock file before it refused the pid file.)
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(u.user.uid), Some(u.user.uid)).unwrap();
        let (code, _, err) = with_runtime(&u, &u.runtime, &store);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(
            err.contains(&format!("{} is a symbolic link", link.display()))
                && err.contains("remove it"),
            "{name}: {err}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        std::fs::remove_file(&link).unwrap();
    }
    let (code, _, err) = with_runtime(&u, &u.runtime, &store);
    assert_eq!(code, 0, "{err}");
    assert!(
        !std::fs::symlink_metadata(rt.join("userns.pid"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

/// rv3 finding 2: `$XDG_RUNTIME_DIR/kiln` gets the checks of the /tmp/kiln-UID fallback. One
/// another user made (as in a shared XDG_RUNTIME_DIR=/tmp), one too open, a symlink, and a
/// missing XDG_RUNTIME_DIR are refused, each saying what to fix; a planted pid file there is
/// left as it is.
#[test]
fn a_runtime_dir_that_is_not_the_users_own_is_refused_clearly() {
    require_root();
    let shared = Shared::new();
    let u = UserKiln::new(&shared, "kilntest");
    let store = shared.owned_by("store", &u.user);
    // A shared runtime directory, as /tmp: 1777.
    let xdg = shared.path("shared-run");
    std::fs::create_dir(&xdg).unwrap();
    std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let rt = xdg.join("kiln");
    std::fs::create_dir(&rt).unwrap();
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(&rt, Some(54321), Some(54321)).unwrap();
    let planted = rt.join("userns.pid");
    std::fs::write(&planted, "1 2\n").unwrap();
    std::os::unix::fs::chown(&planted, Some(54321), Some(54321)).unwrap();
    let (code, _, err) = with_runtime(&u, &xdg, &store);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{} is owned by uid 54321", rt.display()))
            && err.contains("not a directory of yours with mode 0700")
            && err.contains("unset XDG_RUNTIME_DIR"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&planted).unwrap(), "1 2\n");

    // The user's own, but readable by others: chmod.
    std::fs::remove_dir_all(&rt).unwrap();
    std::fs::create_dir(&rt).unwrap();
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&rt, Some(u.user.uid), Some(u.user.uid)).unwrap();
    let (code, _, err) = with_runtime(&u, &xdg, &store);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("mode 0755") && err.contains(&format!("chmod 0700 {}", rt.display())),
        "{err}"
    );

    // A symlink (someone else's) to a directory of the user's.
    std::fs::remove_dir_all(&rt).unwrap();
    let mine = shared.owned_by("users-dir", &u.user);
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&mine, &rt).unwrap();
    std::os::unix::fs::lchown(&rt, Some(54321), Some(54321)).unwrap();
    let (code, _, err) = with_runtime(&u, &xdg, &store);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{} is a symbolic link", rt.display())),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 0);

    // XDG_RUNTIME_DIR missing (su or runuser without a login session).
    let missing = shared.path("no-such-run");
    let (code, _, err) = with_runtime(&u, &missing, &store);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "XDG_RUNTIME_DIR is {}, which does not exist",
            missing.display()
        )) && err.contains("unset XDG_RUNTIME_DIR")
            && err.contains("mkdir -m 0700"),
        "{err}"
    );
    // Not writable by the user (root's 0755).
    let roots = shared.path("roots-run");
    std::fs::create_dir(&roots).unwrap();
    std::fs::set_permissions(&roots, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, _, err) = with_runtime(&u, &roots, &store);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "XDG_RUNTIME_DIR is {}, where this user cannot create",
            roots.display()
        )) && err.contains("unset XDG_RUNTIME_DIR"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&roots).unwrap().count(), 0);
}
