//! Shared fixtures: the prerequisites (failing, never skipping), a busybox rootfs made from Debian's busybox-static, a spec for it, and a
//! runner that captures stdout and stderr.

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_runtime::oci_spec::runtime::Spec;
use kiln_runtime::{Executor, ExitStatus, Result, Stdio, docker_default_spec};

/// Fails the test, loudly, unless it runs as root and Debian's busybox-static is installed (as
/// root, a missing busybox is installed by scripts/install-deps.sh first).
pub fn require_root() {
    kiln_test::prereq::require_root("kiln-runtime's tests (namespaces and mounts)");
    kiln_test::prereq::require_file("/bin/busybox", "busybox-static");
}

/// A rootfs with `/bin/busybox` and a symlink per applet (`busybox --install -s`), plus
/// passwd/group files.
pub fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("kiln-rt-rootfs-")
        .tempdir()
        .unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    // Hard-linked, not copied: a copy is open for writing while other tests clone their
    // containers, and an inherited descriptor makes its exec fail with ETXTBSY.
    if fs::hard_link("/bin/busybox", bin.join("busybox")).is_err() {
        fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    }
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for name in String::from_utf8(list.stdout).unwrap().lines() {
        if name != "busybox" {
            symlink("/bin/busybox", bin.join(name)).unwrap();
        }
    }
    fs::create_dir_all(dir.path().join("etc")).unwrap();
    fs::write(
        dir.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("etc/group"),
        "root:x:0:\ntty:x:5:\napp:x:1000:\n",
    )
    .unwrap();
    dir
}

/// Docker's default spec for `rootfs`, running `sh -c script`.
pub fn spec(rootfs: &Path, script: &str) -> Spec {
    let mut spec = docker_default_spec();
    spec.root_mut()
        .as_mut()
        .unwrap()
        .set_path(rootfs.to_path_buf());
    spec.process_mut().as_mut().unwrap().set_args(Some(vec![
        "/bin/sh".into(),
        "-c".into(),
        script.into(),
    ]));
    spec
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Run and capture both streams.
pub fn run(executor: &Executor, spec: &Spec) -> Result<Output> {
    let (mut out_r, out_w) = std::io::pipe().unwrap();
    let (mut err_r, err_w) = std::io::pipe().unwrap();
    let stdin = fs::File::open("/dev/null").unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_r.read_to_string(&mut s);
        s
    });
    let result = executor.run(spec, Stdio::new(stdin, out_w, err_w));
    let mut stdout = String::new();
    let _ = out_r.read_to_string(&mut stdout);
    let stderr = reader.join().unwrap();
    result.map(|status| Output {
        status,
        stdout,
        stderr,
    })
}

/// Run and require exit 0; return stdout.
pub fn run_ok(executor: &Executor, spec: &Spec) -> String {
    let out = run(executor, spec).unwrap();
    assert!(
        out.status.success(),
        "status {} stdout {:?} stderr {:?}",
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// The external executor: runc, installed when missing (as root), else the test fails saying
/// what to install.
pub fn runc() -> Executor {
    kiln_test::prereq::require_command("runc", "runc");
    Executor::from_name("runc").unwrap_or_else(|e| panic!("runc is installed but unusable: {e}"))
}

/// Processes on the host whose command line contains `needle` (NUL-separated args joined by
/// spaces).
pub fn processes_with(needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = entry.path().join("cmdline");
        if let Ok(bytes) = fs::read(&cmdline) {
            let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
            if text.contains(needle) {
                found.push(entry.path());
            }
        }
    }
    found
}

pub fn mountinfo() -> String {
    fs::read_to_string("/proc/self/mountinfo").unwrap()
}
