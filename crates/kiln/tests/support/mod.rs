//! What the end-to-end CLI test files share: the binary, the prerequisites (a missing one fails
//! the test, never skips it; as root, scripts/install-deps.sh installs a missing package
//! first), the busybox base image (made once per test run by scripts/make-busybox-image.sh),
//! and a build context with its own store.
#![allow(dead_code)] // each test file is its own crate and uses part of this

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_kiln")
}

/// Fails the test, loudly, unless it runs as root.
pub fn require_root() {
    kiln_test::prereq::require_root("these tests (overlay mounts, namespaces, loop devices)");
}

/// The path of command `name` from Debian's `package`: installed when missing and the tests
/// run as root, else the test fails naming the package and `bash scripts/install-deps.sh`.
pub fn require_command(name: &str, package: &str) -> PathBuf {
    kiln_test::prereq::require_command(name, package)
}

/// The busybox docker-archive, made once per test run.
pub fn busybox_archive() -> &'static Path {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        kiln_test::prereq::require_file("/bin/busybox", "busybox-static");
        let dir = std::env::temp_dir().join(format!("kiln-cli-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("busybox.tar");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-image.sh");
        let st = Command::new("bash")
            .arg(&script)
            .arg(&out)
            .output()
            .expect("running make-busybox-image.sh");
        assert!(
            st.status.success(),
            "make-busybox-image.sh failed (needs busybox-static): {}",
            String::from_utf8_lossy(&st.stderr)
        );
        out
    })
}

/// A build context directory and a store with busybox loaded, in one temp directory.
pub struct Ctx {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub ctx: PathBuf,
}

impl Ctx {
    pub fn new() -> Ctx {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let ctx = tmp.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        let c = Ctx { tmp, root, ctx };
        let out = c.kiln(&["load", "-q", "-i", busybox_archive().to_str().unwrap()]);
        assert!(
            out.status.success(),
            "load: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c
    }

    pub fn file(&self, rel: &str, content: &str) -> &Self {
        let p = self.ctx.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn kiln(&self, args: &[&str]) -> Output {
        self.kiln_in(None, args)
    }

    /// Run kiln with `cwd` as its working directory (default: the test's).
    pub fn kiln_in(&self, cwd: Option<&Path>, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin());
        cmd.env("KILN_ROOT", &self.root)
            .env_remove("SOURCE_DATE_EPOCH")
            .args(args);
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        cmd.output().unwrap()
    }

    /// `kiln build --progress=plain ARGS CONTEXT`; returns (exit code, stdout, stderr).
    pub fn build(&self, args: &[&str]) -> (i32, String, String) {
        let ctx = self.ctx.to_str().unwrap().to_string();
        let mut a = vec!["build", "--progress=plain"];
        a.extend_from_slice(args);
        a.push(&ctx);
        let out = self.kiln(&a);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    pub fn build_ok(&self, args: &[&str]) -> String {
        let (code, _, err) = self.build(args);
        assert_eq!(code, 0, "build failed:\n{err}");
        err
    }

    pub fn image_id(&self, args: &[&str]) -> String {
        let mut a = vec!["-q"];
        a.extend_from_slice(args);
        let (code, out, err) = self.build(&a);
        assert_eq!(code, 0, "build failed:\n{err}");
        out.trim().to_string()
    }

    /// The final filesystem of a build, via `--output type=local`.
    pub fn export(&self, args: &[&str]) -> PathBuf {
        let dest = self.fresh("out");
        let o = format!("type=local,dest={}", dest.display());
        let mut a = vec!["-o", o.as_str()];
        a.extend_from_slice(args);
        self.build_ok(&a);
        dest
    }

    /// A path in the test's temporary directory that does not exist yet.
    pub fn fresh(&self, prefix: &str) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        self.tmp
            .path()
            .join(format!("{prefix}-{}", N.fetch_add(1, Ordering::SeqCst)))
    }

    pub fn tmp_is_empty(&self) -> bool {
        std::fs::read_dir(self.root.join("tmp"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true)
    }
}

/// `kiln ARGS` in `c`'s store that must succeed; its stdout.
pub fn ok(c: &Ctx, args: &[&str]) -> String {
    let (code, so, se) = out(&c.kiln(args));
    assert_eq!(code, 0, "kiln {args:?} failed: {se}{so}");
    so
}

/// Exit code (-1 for a signal), stdout and stderr of a finished command.
pub fn out(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A store for container tests: its containers are force-removed when the test ends, also
/// when it fails, so a failed assertion leaves no running container behind.
pub struct RunCtx(pub Ctx);

impl RunCtx {
    pub fn new() -> RunCtx {
        RunCtx(Ctx::new())
    }
}

impl std::ops::Deref for RunCtx {
    type Target = Ctx;
    fn deref(&self) -> &Ctx {
        &self.0
    }
}

impl Drop for RunCtx {
    fn drop(&mut self) {
        let ids = self.0.kiln(&["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.0.kiln(&["rm", "-f", id]);
        }
    }
}

/// What the kernel path of container `id`'s published ports left on the host: lines of
/// `nft list table ip kiln` naming it, and its veth (`kiln` + the ID's first 11 characters).
/// Empty when nothing is left; a table that does not exist holds nothing.
pub fn net_leftovers(id: &str) -> Vec<String> {
    let nft = require_command("nft", "nftables");
    let out = Command::new(nft)
        .args(["list", "table", "ip", "kiln"])
        .output()
        .expect("running nft");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut left: Vec<String> = text
        .lines()
        .filter(|l| l.contains(id))
        .map(|l| l.trim().to_string())
        .collect();
    let veth = format!("kiln{}", &id[..11]);
    if Path::new("/sys/class/net").join(&veth).exists() {
        left.push(format!("veth {veth}"));
    }
    left
}

/// [`net_leftovers`] once they are gone, or what is still there after 10 s: the veth goes with
/// the container's network namespace, which the kernel tears down on its own time.
pub fn net_leftovers_after_wait(id: &str) -> Vec<String> {
    let t0 = std::time::Instant::now();
    loop {
        let left = net_leftovers(id);
        if left.is_empty() || t0.elapsed() > std::time::Duration::from_secs(10) {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
