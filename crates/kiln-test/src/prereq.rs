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
