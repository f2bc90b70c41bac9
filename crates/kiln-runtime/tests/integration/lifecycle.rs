//! Cancellation, cleanup and concurrency: nothing may outlive a run, on success or failure.

use std::fs;
use std::time::{Duration, Instant};

use kiln_runtime::oci_spec::runtime::Mount;
use kiln_runtime::{Executor, ExitStatus, Stdio, bind_mount};

use crate::util::{mountinfo, processes_with, require_root, rootfs, run, spec};

const E: Executor = Executor::Embedded;

#[test]
fn kill_from_another_thread_ends_the_whole_container() {
    require_root();
    let root = rootfs();
    // A background grandchild and a foreground sleep; killing PID 1 must take both.
    let s = spec(root.path(), "sleep 7301 & sleep 7302");
    let container = E.spawn(&s, Stdio::null().unwrap()).unwrap();
    let killer = container.killer();
    let start = Instant::now();
    // Until both have exec'd: before that, the shell and its fork both have both numbers in
    // their command lines.
    // (Generous: on a loaded machine the two execs can take seconds.)
    // Exactly `sleep N`: before the fork, the shell alone holds both numbers (one match
    // each), which is not "started" (CI run 11 saw that pass the old check).
    let exact = |cmd: &str| {
        processes_with(cmd)
            .iter()
            .filter(|p| {
                std::fs::read(p.join("cmdline"))
                    .is_ok_and(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim() == cmd)
            })
            .count()
    };
    while (exact("sleep 7301") != 1
        || exact("sleep 7302") != 1
        || processes_with("sleep 7301").len() != 1)
        && start.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        processes_with("sleep 7301").len(),
        1,
        "sleep 7301 never started"
    );
    let killed = Instant::now();
    std::thread::spawn(move || killer.kill().unwrap())
        .join()
        .unwrap();
    let status = container.wait().unwrap();
    assert_eq!(status, ExitStatus::Signal(libc::SIGKILL));
    // A hang guard, not a timing: the sleeps would last two hours.
    assert!(killed.elapsed() < Duration::from_secs(30));
    assert!(processes_with("sleep 7301").is_empty());
    assert!(processes_with("sleep 7302").is_empty());
}

#[test]
fn dropping_an_unwaited_container_kills_and_reaps_it() {
    require_root();
    let root = rootfs();
    let container = E
        .spawn(&spec(root.path(), "sleep 7303"), Stdio::null().unwrap())
        .unwrap();
    let pid = container.pid();
    let killer = container.killer();
    drop(container);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(processes_with("sleep 7303").is_empty());
    // Killing an ended container is harmless.
    killer.kill().unwrap();
}

#[test]
fn background_processes_die_with_the_main_process() {
    require_root();
    let root = rootfs();
    let out = run(&E, &spec(root.path(), "sleep 7304 & echo started")).unwrap();
    assert_eq!(out.stdout, "started\n");
    assert!(processes_with("sleep 7304").is_empty());
}

#[test]
fn no_mounts_leak_on_success_or_failure() {
    require_root();
    let before = mountinfo();
    let root = rootfs();
    let data = tempfile::tempdir().unwrap();
    let mut ok = spec(root.path(), "true");
    ok.mounts_mut()
        .as_mut()
        .unwrap()
        .push(bind_mount(data.path(), "/data", false));
    assert!(run(&E, &ok).unwrap().status.success());

    // Fails after several mounts were made.
    let mut bad = ok.clone();
    let mut m = Mount::default();
    m.set_destination("/bad".into());
    m.set_typ(Some("nosuchfs".into()));
    bad.mounts_mut().as_mut().unwrap().push(m);
    assert!(run(&E, &bad).is_err());

    // Fails at exec, after pivot_root.
    let mut missing = ok.clone();
    missing
        .process_mut()
        .as_mut()
        .unwrap()
        .set_args(Some(vec!["nosuchcmd-7305".into()]));
    assert!(run(&E, &missing).is_err());
    assert_eq!(mountinfo(), before);
    assert!(processes_with("nosuchcmd-7305").is_empty());
}

#[test]
fn twenty_concurrent_runs_from_threads() {
    require_root();
    let root = rootfs();
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let s = spec(root.path(), &format!("echo run-{i}; exit {}", i % 4));
            std::thread::spawn(move || run(&E, &s).unwrap())
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let out = t.join().unwrap();
        assert_eq!(out.stdout, format!("run-{i}\n"));
        assert_eq!(out.status, ExitStatus::Code((i % 4) as i32));
    }
    // Every run leaves the rootfs as it found it but for mount points.
    assert!(
        fs::read_dir(root.path().join("proc"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn container_dies_with_the_thread_that_spawned_it() {
    require_root();
    let root = rootfs();
    let s = spec(root.path(), "sleep 7306");
    // The spawning thread ends while the container runs: the parent-death signal fires, as it
    // would if kiln itself were killed.
    let container = std::thread::spawn(move || E.spawn(&s, Stdio::null().unwrap()).unwrap())
        .join()
        .unwrap();
    let start = Instant::now();
    assert_eq!(container.wait().unwrap(), ExitStatus::Signal(libc::SIGKILL));
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(processes_with("sleep 7306").is_empty());
}
