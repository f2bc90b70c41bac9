//! Container start latency: `sh -c 'echo hi'` in a busybox rootfs, run N times per contender,
//! interleaved so that machine noise hits all of them alike.
//!
//! Contenders: the embedded executor (in-process clone3; with docker's seccomp filter, and
//! without it), runc through the external executor,
//! the bare `unshare -m -p -u -i -f chroot` floor, and a plain fork+exec of a trivial program
//! (what a re-exec design, `/proc/self/exe __init`, would add on top of the embedded path).
//!
//! Run as root: `cargo bench -p kiln-runtime --bench latency` (`LATENCY_RUNS=N` to change N).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kiln_runtime::{Executor, Stdio, docker_default_spec};

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/bin/busybox").exists() {
        eprintln!("latency bench skipped: needs root and /bin/busybox (busybox-static)");
        return;
    }
    let runs: usize = std::env::var("LATENCY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(41);
    let root = tempfile::tempdir().expect("tempdir");
    make_rootfs(root.path());

    let mut spec = docker_default_spec();
    spec.root_mut()
        .as_mut()
        .expect("root")
        .set_path(root.path().to_path_buf());
    spec.process_mut()
        .as_mut()
        .expect("process")
        .set_args(Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()]));

    // The same run without docker's seccomp filter: what compiling and installing it costs.
    let mut unconfined = spec.clone();
    kiln_runtime::seccomp::set_seccomp(&mut unconfined, None).expect("no profile");

    let runc = Executor::from_name("runc").ok();
    let mut names = vec![
        "embedded (in-process)",
        "embedded, no seccomp",
        "unshare+chroot floor",
        "fork+exec /bin/true",
    ];
    if runc.is_some() {
        names.push("runc run (external)");
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for _ in 0..runs {
        samples[0].push(time(|| {
            let status = Executor::Embedded
                .run(&spec, Stdio::null().expect("null"))
                .expect("embedded run");
            assert!(status.success());
        }));
        samples[1].push(time(|| {
            let status = Executor::Embedded
                .run(&unconfined, Stdio::null().expect("null"))
                .expect("embedded run");
            assert!(status.success());
        }));
        samples[2].push(time(|| {
            let status = Command::new("unshare")
                .args(["-m", "-p", "-u", "-i", "-f", "chroot"])
                .arg(root.path())
                .args(["/bin/sh", "-c", "echo hi"])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("unshare");
            assert!(status.success());
        }));
        samples[3].push(time(|| {
            let status = Command::new("/bin/true").status().expect("true");
            assert!(status.success());
        }));
        if let Some(runc) = &runc {
            samples[4].push(time(|| {
                let status = runc
                    .run(&spec, Stdio::null().expect("null"))
                    .expect("runc run");
                assert!(status.success());
            }));
        }
    }
    println!("container start latency, `sh -c 'echo hi'`, {runs} interleaved runs each");
    println!(
        "{:<26} {:>9} {:>9} {:>9}",
        "contender", "median", "p25", "min"
    );
    for (name, mut s) in names.into_iter().zip(samples) {
        s.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<26} {:>7.2}ms {:>7.2}ms {:>7.2}ms",
            name,
            ms(s[s.len() / 2]),
            ms(s[s.len() / 4]),
            ms(s[0])
        );
    }
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn make_rootfs(root: &Path) {
    let bin = root.join("bin");
    fs::create_dir_all(&bin).expect("mkdir bin");
    fs::copy("/bin/busybox", bin.join("busybox")).expect("copy busybox");
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    for name in String::from_utf8_lossy(&list.stdout).lines() {
        if name != "busybox" {
            symlink("/bin/busybox", bin.join(name)).expect("symlink");
        }
    }
}
