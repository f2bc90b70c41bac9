//! The external executor (runc) passes the same basic tests.

use std::fs;

use kiln_runtime::{ExitStatus, RuntimeError, bind_mount};

use crate::util::{require_root, rootfs, run, run_ok, runc, spec};

#[test]
fn runc_exit_codes_and_output() {
    require_root();
    let runc = runc();
    let root = rootfs();
    let out = run(&runc, &spec(root.path(), "echo out; echo err >&2; exit 3")).unwrap();
    assert_eq!(out.status, ExitStatus::Code(3));
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    assert_eq!(run_ok(&runc, &spec(root.path(), "echo $$")), "1\n");
}

#[test]
fn runc_applies_user_cwd_env_caps_and_mounts() {
    require_root();
    let runc = runc();
    let root = rootfs();
    let data = tempfile::tempdir().unwrap();
    let mut s = spec(
        root.path(),
        "id -u; pwd; echo $X; grep CapBnd /proc/self/status; echo hi > /data/f",
    );
    let p = s.process_mut().as_mut().unwrap();
    p.set_env(Some(vec!["PATH=/bin".into(), "X=y".into()]));
    p.set_cwd("/w".into());
    s.mounts_mut()
        .as_mut()
        .unwrap()
        .push(bind_mount(data.path(), "/data", false));
    assert_eq!(run_ok(&runc, &s), "0\n/w\ny\nCapBnd:\t00000000a80425fb\n");
    assert_eq!(fs::read_to_string(data.path().join("f")).unwrap(), "hi\n");
}

#[test]
fn runc_missing_program_is_the_same_error() {
    require_root();
    let runc = runc();
    let root = rootfs();
    let mut s = spec(root.path(), "");
    s.process_mut()
        .as_mut()
        .unwrap()
        .set_args(Some(vec!["nosuchcmd".into()]));
    let err = run(&runc, &s).err().unwrap();
    assert!(matches!(err, RuntimeError::NotFound { .. }), "{err:?}");
}

#[test]
fn embedded_and_runc_agree() {
    require_root();
    let runc = runc();
    let root = rootfs();
    let script = "echo $$; id; hostname -s >/dev/null; ls /dev | sort | tr '\\n' ' '; \
        grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; ulimit -n; \
        cut -d' ' -f2,4 /proc/mounts | cut -d, -f1 | sort; cat /proc/timer_list | wc -c";
    let embedded = run_ok(
        &kiln_runtime::Executor::Embedded,
        &spec(root.path(), script),
    );
    let external = run_ok(&runc, &spec(root.path(), script));
    assert_eq!(embedded, external);
}

#[test]
fn runc_container_is_killed_through_the_runtime() {
    require_root();
    let runc = runc();
    let root = rootfs();
    let container = runc
        .spawn(
            &spec(root.path(), "sleep 7307 & sleep 7308"),
            kiln_runtime::Stdio::null().unwrap(),
        )
        .unwrap();
    let start = std::time::Instant::now();
    while crate::util::processes_with("sleep 7308").is_empty()
        && start.elapsed() < std::time::Duration::from_secs(10)
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    container.killer().kill().unwrap();
    // runc reports a container killed by SIGKILL as 128+9.
    assert_eq!(container.wait().unwrap(), ExitStatus::Code(137));
    assert!(crate::util::processes_with("sleep 7307").is_empty());
    assert!(crate::util::processes_with("sleep 7308").is_empty());
}
