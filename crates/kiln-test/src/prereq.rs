//! What a test needs from the machine, asserted: root, a command, a file. A missing command or
//! file is installed once per test process by `scripts/install-deps.sh` when the tests run as
//! root (set `KILN_TEST_INSTALL=0` to forbid that); if it is still missing, the test fails with
//! the Debian package and the command that installs it. Nothing here lets a test pass without
//! running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The shared install script, for messages: run from the workspace root.
pub const INSTALL_COMMAND: &str = "bash scripts/install-deps.sh";

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/install-deps.sh");

/// Where commands are looked for after `PATH`: sbin is often missing from a user's `PATH`, and
/// tools such as `dockerd`, `runc` and `mkfs.ext4` live there.
const EXTRA_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Whether the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Fails the test unless it runs as root; `what` says what needs it.
pub fn require_root(what: &str) {
    assert!(
        is_root(),
        "{what}: needs root; run the tests as root (sudo -E cargo test --workspace --release)"
    );
}

/// The path of command `name`, from Debian's `package`: installed when missing (as root),
/// else the test fails saying what to install.
pub fn require_command(name: &str, package: &str) -> PathBuf {
    if let Some(p) = find_command(name) {
        return p;
    }
    let install = install_missing();
    find_command(name).unwrap_or_else(|| {
        panic!(
            "this test needs the command `{name}` (Debian package {package}), which is not \
             installed{}: run `{INSTALL_COMMAND}` as root in the kiln checkout, or \
             `apt-get install -y {package}`",
            why_not_installed(install)
        )
    })
}

/// `path` (a file a package installs, such as `/bin/busybox` from busybox-static): installed
/// when missing (as root), else the test fails saying what to install.
pub fn require_file(path: &str, package: &str) -> PathBuf {
    let p = Path::new(path);
    if p.exists() {
        return p.to_path_buf();
    }
    let install = install_missing();
    assert!(
        p.exists(),
        "this test needs {path} (Debian package {package}), which is missing{}: run \
         `{INSTALL_COMMAND}` as root in the kiln checkout, or `apt-get install -y {package}`",
        why_not_installed(install)
    );
    p.to_path_buf()
}

/// `name` on `PATH` or in the usual system directories.
pub fn find_command(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs the install script once per process (the script itself serializes concurrent runs).
/// `Err` says why nothing was installed.
fn install_missing() -> &'static Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        if std::env::var_os("KILN_TEST_INSTALL").is_some_and(|v| v == "0") {
            return Err("KILN_TEST_INSTALL=0 forbids installing it".into());
        }
        if !is_root() {
            return Err("the tests do not run as root, so it was not installed".into());
        }
        // The script prints what it installs on the inherited stderr.
        match Command::new("bash").arg(SCRIPT).arg("tests").status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("{INSTALL_COMMAND} failed ({s})")),
            Err(e) => Err(format!("cannot run {SCRIPT}: {e}")),
        }
    })
}

fn why_not_installed(install: &Result<(), String>) -> String {
    match install {
        Ok(()) => " (and the install script did not provide it)".into(),
        Err(why) => format!(" ({why})"),
    }
}

/// An ordinary (non-root) user made for rootless tests: `useradd`ed once, with or without a
/// 65536-wide subordinate uid/gid range in `/etc/subuid` and `/etc/subgid`.
#[derive(Clone, Debug)]
pub struct TestUser {
    /// The login name.
    pub name: String,
    /// Its uid (and gid: `useradd` makes a group of the same name).
    pub uid: u32,
    /// Its home directory.
    pub home: PathBuf,
}

/// The user `name`, made if missing (idempotent, safe across test processes): `useradd -m`,
/// and with `subids` exactly one 65536-wide range in `/etc/subuid` and `/etc/subgid` (an
/// existing range is kept), without `subids` none at all. Needs root: fails the test otherwise.
pub fn test_user(name: &str, subids: bool) -> TestUser {
    require_root(&format!("creating the test user {name}"));
    require_command("useradd", "passwd");
    require_command("runuser", "util-linux");
    require_command("newuidmap", "uidmap");
    let _lock = users_lock();
    if user_id(name).is_none() {
        let out = Command::new(find_command("useradd").unwrap())
            .args(["-m", "-s", "/bin/sh", name])
            .output()
            .unwrap_or_else(|e| panic!("cannot run useradd: {e}"));
        assert!(
            out.status.success() || user_id(name).is_some(),
            "useradd -m {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let uid = user_id(name).unwrap_or_else(|| panic!("user {name} missing after useradd"));
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let mine = |l: &&str| l.split(':').next() == Some(name);
        let has = text.lines().any(|l| mine(&l));
        let new = if subids && !has {
            let start = text
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    Some(f.get(1)?.parse::<u64>().ok()? + f.get(2)?.parse::<u64>().ok()?)
                })
                .fold(100_000, u64::max);
            Some(format!("{text}{name}:{start}:65536\n"))
        } else if !subids && has {
            Some(
                text.lines()
                    .filter(|l| !mine(l))
                    .map(|l| format!("{l}\n"))
                    .collect(),
            )
        } else {
            None
        };
        if let Some(new) = new {
            let tmp = format!("{file}.kiln-test");
            std::fs::write(&tmp, new).unwrap_or_else(|e| panic!("writing {tmp}: {e}"));
            std::fs::rename(&tmp, file).unwrap_or_else(|e| panic!("renaming {tmp}: {e}"));
        }
    }
    TestUser {
        name: name.to_string(),
        uid,
        home: PathBuf::from(format!("/home/{name}")),
    }
}

impl TestUser {
    /// `program` run as this user (`runuser -u`) with a clean environment: only `HOME`,
    /// `USER`, `LOGNAME` and `PATH=/usr/local/bin:/usr/bin:/bin` (more: [`TestUser::command_env`]).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.command_env(program, &[])
    }

    /// As [`TestUser::command`], with extra `KEY=VALUE` variables (such as `KILN_ROOT=...`
    /// or a different `PATH`, which replaces the default).
    pub fn command_env(
        &self,
        program: impl AsRef<std::ffi::OsStr>,
        env: &[(&str, &str)],
    ) -> Command {
        let mut c = Command::new(find_command("runuser").expect("runuser"));
        c.args(["-u", &self.name, "--", "/usr/bin/env", "-i"]);
        c.arg(format!("HOME={}", self.home.display()));
        c.arg(format!("USER={}", self.name));
        c.arg(format!("LOGNAME={}", self.name));
        if !env.iter().any(|(k, _)| *k == "PATH") {
            c.arg("PATH=/usr/local/bin:/usr/bin:/bin");
        }
        for (k, v) in env {
            c.arg(format!("{k}={v}"));
        }
        c.arg(program);
        c
    }

    /// `exe` if this user can execute it where it is, else a copy in a fresh 0755 directory
    /// under /tmp (kept for the test process's life).
    pub fn executable(&self, exe: &Path) -> PathBuf {
        let ok = self
            .command("/bin/sh")
            .args(["-c", "test -x \"$1\"", "sh"])
            .arg(exe)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return exe.to_path_buf();
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("kiln-test-bin-")
            .tempdir_in("/tmp")
            .expect("temp dir")
            .keep();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.join(exe.file_name().unwrap());
        std::fs::copy(exe, &copy).unwrap_or_else(|e| panic!("copying {}: {e}", exe.display()));
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        copy
    }
}

/// The uid of user `name`, if it exists.
pub fn user_id(name: &str) -> Option<u32> {
    let out = Command::new("id").args(["-u", name]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Serializes user creation and /etc/sub[ug]id edits across test processes.
fn users_lock() -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/kiln-test-users.lock")
        .expect("opening /tmp/kiln-test-users.lock");
    f.lock().expect("locking /tmp/kiln-test-users.lock");
    f
}

/// The binfmt_misc handler `name` (such as `qemu-aarch64`): registered, enabled and with the F
/// (fix-binary) flag, so foreign programs run inside a container's root. Fails the test saying
/// what to install otherwise (Debian's qemu-user-static registers its handlers so).
pub fn require_binfmt(name: &str) -> PathBuf {
    let path = Path::new("/proc/sys/fs/binfmt_misc").join(name);
    let ok = |p: &Path| {
        std::fs::read_to_string(p).is_ok_and(|t| {
            t.lines().next() == Some("enabled")
                && t.lines()
                    .any(|l| l.strip_prefix("flags:").is_some_and(|f| f.contains('F')))
        })
    };
    if ok(&path) {
        return path;
    }
    let install = install_missing();
    assert!(
        ok(&path),
        "this test needs the binfmt_misc handler {} (enabled, with the F flag), which is \
         missing{}: run `{INSTALL_COMMAND}` as root in the kiln checkout, or mount binfmt_misc \
         (`mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc`) and \
         `apt-get install -y qemu-user-static`",
        path.display(),
        why_not_installed(install)
    );
    path
}
