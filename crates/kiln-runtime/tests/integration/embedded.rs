//! The embedded executor, feature by feature.

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};

use kiln_runtime::oci_spec::runtime::{LinuxNamespaceType, Mount};
use kiln_runtime::{
    Executor, ExitStatus, Network, RuntimeError, bind_mount, set_network, tmpfs_mount,
};

use crate::util::{require_root, rootfs, run, run_ok, spec};

const E: Executor = Executor::Embedded;

#[test]
fn exit_codes_and_signals_propagate() {
    require_root();
    let root = rootfs();
    assert_eq!(
        run(&E, &spec(root.path(), "exit 0")).unwrap().status,
        ExitStatus::Code(0)
    );
    assert_eq!(
        run(&E, &spec(root.path(), "exit 3")).unwrap().status,
        ExitStatus::Code(3)
    );
    // PID 1 ignores signals it has no handler for, even SIGKILL from inside; use a child.
    let killed = run(&E, &spec(root.path(), "sh -c 'kill -9 $$'; exit $?")).unwrap();
    assert_eq!(killed.status, ExitStatus::Code(137));
}

#[test]
fn stdout_and_stderr_are_captured_separately() {
    require_root();
    let root = rootfs();
    let out = run(&E, &spec(root.path(), "echo out; echo err >&2; echo more")).unwrap();
    assert_eq!(out.stdout, "out\nmore\n");
    assert_eq!(out.stderr, "err\n");
}

#[test]
fn process_is_pid_1_in_its_own_pid_namespace() {
    require_root();
    let root = rootfs();
    let out = run_ok(
        &E,
        &spec(root.path(), "echo $$; ls /proc | grep -c '^[0-9]'"),
    );
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines[0], "1");
    // sh, ls and grep (the pipeline) at most: no host processes are visible.
    let count: u32 = lines[1].parse().unwrap();
    assert!(count <= 3, "{out}");
}

#[test]
fn env_cwd_and_user_are_applied() {
    require_root();
    let root = rootfs();
    let mut s = spec(
        root.path(),
        "id -u; id -g; id -G; pwd; echo $GREETING; touch f; stat -c %u:%g f",
    );
    let p = s.process_mut().as_mut().unwrap();
    p.set_env(Some(vec![
        format!("PATH={}", kiln_runtime::DEFAULT_PATH),
        "GREETING=hello world".into(),
    ]));
    p.set_cwd("/home/app/work".into());
    let user = p.user_mut();
    user.set_uid(1000);
    user.set_gid(1000);
    user.set_additional_gids(Some(vec![1000, 5]));
    // The working directory does not exist: it is created (as root, like runc) and the user
    // needs to write into it.
    fs::create_dir_all(root.path().join("home/app/work")).unwrap();
    std::os::unix::fs::chown(root.path().join("home/app/work"), Some(1000), Some(1000)).unwrap();
    let out = run_ok(&E, &s);
    assert_eq!(
        out,
        "1000\n1000\n1000 5\n/home/app/work\nhello world\n1000:1000\n"
    );
    let meta = fs::metadata(root.path().join("home/app/work/f")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
}

#[test]
fn missing_working_directory_is_created() {
    require_root();
    let root = rootfs();
    let mut s = spec(root.path(), "pwd");
    s.process_mut().as_mut().unwrap().set_cwd("/a/b/c".into());
    assert_eq!(run_ok(&E, &s), "/a/b/c\n");
    assert!(root.path().join("a/b/c").is_dir());
}

#[test]
fn capabilities_are_dockers_defaults() {
    require_root();
    let root = rootfs();
    let out = run_ok(
        &E,
        &spec(
            root.path(),
            "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status",
        ),
    );
    let docker = "00000000a80425fb";
    assert!(out.contains(&format!("CapEff:\t{docker}")), "{out}");
    assert!(out.contains(&format!("CapPrm:\t{docker}")), "{out}");
    assert!(out.contains(&format!("CapBnd:\t{docker}")), "{out}");
    assert!(out.contains("CapInh:\t0000000000000000"), "{out}");
    assert!(out.contains("CapAmb:\t0000000000000000"), "{out}");
    // A non-root user ends up with no effective capabilities, as under Docker.
    let mut s = spec(root.path(), "grep CapEff /proc/self/status");
    s.process_mut().as_mut().unwrap().user_mut().set_uid(1000);
    assert_eq!(run_ok(&E, &s), "CapEff:\t0000000000000000\n");
}

#[test]
fn hostname_is_set_in_a_new_uts_namespace() {
    require_root();
    let root = rootfs();
    let mut s = spec(root.path(), "hostname");
    s.set_hostname(Some("kiln-sandbox".into()));
    assert_eq!(run_ok(&E, &s), "kiln-sandbox\n");
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(host.trim(), "kiln-sandbox");
}

#[test]
fn network_none_has_only_loopback_and_it_is_up() {
    require_root();
    let root = rootfs();
    let mut s = spec(
        root.path(),
        "ls /sys/class/net; cat /sys/class/net/lo/flags",
    );
    set_network(&mut s, Network::None);
    let out = run_ok(&E, &s);
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines[0], "lo", "{out}");
    let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & libc::IFF_UP as u32, libc::IFF_UP as u32, "{out}");
    assert_eq!(lines.len(), 2, "{out}");
}

#[test]
fn host_network_is_the_default() {
    require_root();
    let root = rootfs();
    let s = spec(root.path(), "ls /sys/class/net");
    assert!(
        !s.linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Network)
    );
    let mut host: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host.sort();
    let out = run_ok(&E, &s);
    let inside: Vec<String> = out.lines().map(str::to_string).collect();
    assert_eq!(inside, host);
}

#[test]
fn bind_mounts_read_write_and_read_only() {
    require_root();
    let root = rootfs();
    let rw = tempfile::tempdir().unwrap();
    let ro = tempfile::tempdir().unwrap();
    fs::write(ro.path().join("input"), "from host\n").unwrap();
    let mut s = spec(
        root.path(),
        "cat /in/input; echo written > /out/result; if touch /in/nope 2>/dev/null; then echo BAD; fi",
    );
    let mounts = s.mounts_mut().as_mut().unwrap();
    mounts.push(bind_mount(rw.path(), "/out", false));
    mounts.push(bind_mount(ro.path(), "/in", true));
    assert_eq!(run_ok(&E, &s), "from host\n");
    assert_eq!(
        fs::read_to_string(rw.path().join("result")).unwrap(),
        "written\n"
    );
    assert!(!ro.path().join("nope").exists());
    // The mount points were created in the rootfs (they stay, as with dockerd's BuildKit), and
    // nothing written through the mounts landed there.
    assert!(root.path().join("out").is_dir());
    assert_eq!(fs::read_dir(root.path().join("out")).unwrap().count(), 0);
}

#[test]
fn file_bind_mount_creates_an_empty_stub() {
    require_root();
    let root = rootfs();
    let hosts = tempfile::NamedTempFile::new().unwrap();
    fs::write(hosts.path(), "127.0.0.1 localhost kiln\n").unwrap();
    let mut s = spec(root.path(), "cat /etc/hosts");
    s.mounts_mut()
        .as_mut()
        .unwrap()
        .push(bind_mount(hosts.path(), "/etc/hosts", true));
    let stubs = kiln_runtime::MountStubs::scan(root.path(), ["/etc/hosts"]);
    assert_eq!(run_ok(&E, &s), "127.0.0.1 localhost kiln\n");
    let stub = root.path().join("etc/hosts");
    assert_eq!(fs::metadata(&stub).unwrap().len(), 0);
    assert_eq!(stubs.remove(), vec![stub.clone()]);
    assert!(!stub.exists());
}

#[test]
fn mount_targets_through_symlinks_stay_inside_the_root() {
    require_root();
    let root = rootfs();
    let outside = tempfile::tempdir().unwrap();
    // An absolute symlink in the image pointing at a host path: it must resolve in the rootfs.
    symlink(outside.path(), root.path().join("escape")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut s = spec(root.path(), "ls /escape/target >/dev/null && echo ok");
    s.mounts_mut()
        .as_mut()
        .unwrap()
        .push(bind_mount(data.path(), "/escape/target", true));
    assert_eq!(run_ok(&E, &s), "ok\n");
    assert!(!outside.path().join("target").exists());
    let inside = root
        .path()
        .join(outside.path().strip_prefix("/").unwrap())
        .join("target");
    assert!(inside.is_dir(), "{inside:?}");
}

#[test]
fn mounts_redirected_by_symlinks_onto_the_containers_own_file_systems_are_refused() {
    require_root();
    let root = rootfs();
    symlink("/proc", root.path().join("p")).unwrap();
    symlink("/", root.path().join("r")).unwrap();
    symlink("/dev", root.path().join("d")).unwrap();
    symlink("/tmp", root.path().join("t")).unwrap();
    fs::create_dir_all(root.path().join("tmp")).unwrap();
    for (dest, resolved, why) in [
        ("/d", "/dev", "through a symlink"),
        ("/r/sys", "/sys", "through a symlink"),
        ("/r/sys/fs", "/sys/fs", "through a symlink"),
        ("/p/sys", "/proc/sys", "below /proc"),
        ("/r/proc", "/proc", "only procfs"),
        ("/r", "/", "whole root"),
        ("/t/../r/dev", "/dev", "through a symlink"),
    ] {
        let mut s = spec(root.path(), "echo ran");
        s.mounts_mut()
            .as_mut()
            .unwrap()
            .push(tmpfs_mount(dest, &[]));
        let err = run(&E, &s).err().unwrap_or_else(|| panic!("{dest} ran"));
        let msg = err.to_string();
        match &err {
            RuntimeError::MountDestination {
                destination,
                resolved: r,
                ..
            } => {
                assert_eq!(destination, std::path::Path::new(dest), "{msg}");
                assert_eq!(r, std::path::Path::new(resolved), "{msg}");
            }
            other => panic!("{dest}: {other:?}"),
        }
        assert!(msg.contains(&format!("on {dest:?}")), "{msg}");
        assert!(msg.contains(&format!("resolves to {resolved:?}")), "{msg}");
        assert!(msg.contains(why), "{dest}: {msg}");
    }
    // A bind mount too, and a symlink reached through an earlier mount of the spec.
    let data = tempfile::tempdir().unwrap();
    symlink("/sys", data.path().join("s")).unwrap();
    let mut s = spec(root.path(), "echo ran");
    let mounts = s.mounts_mut().as_mut().unwrap();
    mounts.push(bind_mount(data.path(), "/data", true));
    mounts.push(tmpfs_mount("/data/s/kernel", &[]));
    let err = run(&E, &s).err().expect("ran");
    assert!(
        err.to_string().contains("resolves to \"/sys/kernel\""),
        "{err}"
    );

    // A symlink to an ordinary place is followed as before, and /dev/shm through one is fine.
    let mut s = spec(
        root.path(),
        "grep -c ' /tmp tmpfs' /proc/mounts; grep -c ' /dev/shm tmpfs' /proc/mounts",
    );
    let mounts = s.mounts_mut().as_mut().unwrap();
    mounts.push(tmpfs_mount("/t", &[]));
    mounts.push(tmpfs_mount("/d/shm", &[]));
    assert_eq!(run_ok(&E, &s), "1\n2\n");
}

#[test]
fn tmpfs_mounts_with_options_and_nothing_lands_in_the_rootfs() {
    require_root();
    let root = rootfs();
    let mut s = spec(
        root.path(),
        "echo x > /scratch/file && grep ' /scratch ' /proc/mounts && stat -c %a /scratch",
    );
    s.mounts_mut()
        .as_mut()
        .unwrap()
        .push(tmpfs_mount("/scratch", &["size=1m", "mode=1777"]));
    let out = run_ok(&E, &s);
    assert!(
        out.contains("tmpfs /scratch tmpfs rw,nosuid,nodev"),
        "{out}"
    );
    assert!(out.contains("size=1024k"), "{out}");
    assert!(out.ends_with("1777\n"), "{out}");
    assert!(root.path().join("scratch").is_dir());
    assert!(!root.path().join("scratch/file").exists());
}

#[test]
fn proc_dev_and_sys_work_as_in_docker() {
    require_root();
    let root = rootfs();
    let script = "echo hidden > /dev/null; head -c 4 /dev/zero | wc -c; \
        stat -c '%t,%T %a' /dev/null /dev/urandom /dev/tty; readlink /dev/fd; readlink /dev/stdout; \
        ls -d /dev/pts /dev/shm /dev/mqueue; \
        grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; \
        if touch /sys/x 2>/dev/null; then echo BAD; fi; \
        if echo 1 > /proc/sys/vm/drop_caches 2>/dev/null; then echo BAD; fi; \
        wc -c < /proc/timer_list; cat /proc/self/status | grep -c ^Pid";
    let out = run_ok(&E, &spec(root.path(), script));
    assert_eq!(
        out,
        "4\n1,3 666\n1,9 666\n5,0 666\n/proc/self/fd\n/proc/self/fd/1\n\
         /dev/mqueue\n/dev/pts\n/dev/shm\nro\n0\n1\n"
    );
}

#[test]
fn masked_and_readonly_paths_follow_docker() {
    require_root();
    let root = rootfs();
    let script = "cut -d' ' -f2,4 /proc/mounts | cut -d, -f1";
    let out = run_ok(&E, &spec(root.path(), script));
    // Only what this kernel has can be masked (this VM has no /proc/kcore).
    let exists = |p: &str| std::path::Path::new(p).exists();
    let mut checked = 0;
    for path in kiln_runtime::DEFAULT_MASKED_PATHS
        .iter()
        .filter(|p| exists(p))
    {
        // Files are hidden by a /dev/null bind (rw), directories by an empty read-only tmpfs.
        let mode = if std::path::Path::new(path).is_dir() {
            "ro"
        } else {
            "rw"
        };
        let line = format!("{path} {mode}");
        assert!(out.lines().any(|l| l == line), "missing {line:?} in {out}");
        checked += 1;
    }
    for path in kiln_runtime::DEFAULT_READONLY_PATHS
        .iter()
        .filter(|p| exists(p))
    {
        let line = format!("{path} ro");
        assert!(out.lines().any(|l| l == line), "missing {line:?} in {out}");
        checked += 1;
    }
    assert!(checked >= 6, "{out}");
    // Masked files read as empty (they are /dev/null).
    assert_eq!(
        run_ok(&E, &spec(root.path(), "cat /proc/keys | wc -c")),
        "0\n"
    );
}

#[test]
fn readonly_root_refuses_writes() {
    require_root();
    let root = rootfs();
    let mut s = spec(root.path(), "touch /newfile");
    s.root_mut().as_mut().unwrap().set_readonly(Some(true));
    let out = run(&E, &s).unwrap();
    assert_eq!(out.status, ExitStatus::Code(1));
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );
    assert!(!root.path().join("newfile").exists());
}

#[test]
fn rlimit_nofile_is_buildkits() {
    require_root();
    let root = rootfs();
    let mut s = spec(root.path(), "ulimit -n");
    let limits = s.process().as_ref().unwrap().rlimits().clone().unwrap();
    let expected = limits[0].soft();
    assert!(expected > 1024, "{limits:?}");
    assert_eq!(run_ok(&E, &s), format!("{expected}\n"));
    // An explicit lower limit is applied as given.
    let low = kiln_runtime::oci_spec::runtime::PosixRlimitBuilder::default()
        .typ(limits[0].typ())
        .soft(512u64)
        .hard(512u64)
        .build()
        .unwrap();
    s.process_mut()
        .as_mut()
        .unwrap()
        .set_rlimits(Some(vec![low]));
    assert_eq!(run_ok(&E, &s), "512\n");
}

#[test]
fn program_is_found_through_path_in_the_container_env() {
    require_root();
    let root = rootfs();
    let mut s = spec(root.path(), "");
    let p = s.process_mut().as_mut().unwrap();
    p.set_args(Some(vec!["echo".into(), "via".into(), "PATH".into()]));
    assert_eq!(run_ok(&E, &s), "via PATH\n");
}

#[test]
fn missing_program_is_a_clear_error() {
    require_root();
    let root = rootfs();
    let mut s = spec(root.path(), "");
    s.process_mut()
        .as_mut()
        .unwrap()
        .set_args(Some(vec!["nosuchcmd".into()]));
    let err = run(&E, &s).err().unwrap();
    assert!(matches!(err, RuntimeError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "exec: \"nosuchcmd\": executable file not found in $PATH"
    );
    assert_eq!(err.exit_code(), Some(127));

    s.process_mut()
        .as_mut()
        .unwrap()
        .set_args(Some(vec!["/bin/nope".into()]));
    let err = run(&E, &s).err().unwrap();
    assert!(
        err.to_string()
            .starts_with("exec: \"/bin/nope\": No such file"),
        "{err}"
    );

    // A directory is not executable.
    s.process_mut()
        .as_mut()
        .unwrap()
        .set_args(Some(vec!["/etc".into()]));
    let err = run(&E, &s).err().unwrap();
    assert!(err.to_string().contains("Permission denied"), "{err}");
    assert_eq!(err.exit_code(), Some(126));
}

#[test]
fn mount_failure_names_the_mount() {
    require_root();
    let root = rootfs();
    let mut s = spec(root.path(), "true");
    let mut bad = Mount::default();
    bad.set_destination("/bad".into());
    bad.set_typ(Some("tmpfs".into()));
    bad.set_source(Some("tmpfs".into()));
    bad.set_options(Some(vec!["size=lots".into()]));
    s.mounts_mut().as_mut().unwrap().push(bad);
    let err = run(&E, &s).err().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, RuntimeError::Setup { .. }), "{err:?}");
    assert!(msg.contains("mount tmpfs \"tmpfs\" on \"/bad\""), "{msg}");
    assert!(msg.contains("Invalid argument"), "{msg}");
}

#[test]
fn bad_rootfs_and_bind_source_are_reported_before_starting() {
    require_root();
    let s = spec(std::path::Path::new("/nonexistent/rootfs"), "true");
    let err = run(&E, &s).err().unwrap();
    assert!(err.to_string().contains("/nonexistent/rootfs"), "{err}");

    let root = rootfs();
    let mut s = spec(root.path(), "true");
    s.mounts_mut()
        .as_mut()
        .unwrap()
        .push(bind_mount("/nonexistent/src", "/x", true));
    let err = run(&E, &s).err().unwrap();
    assert!(err.to_string().contains("/nonexistent/src"), "{err}");
}

#[test]
fn start_gate_holds_the_program_until_a_byte_arrives() {
    use std::io::Write;
    require_root();
    let root = rootfs();
    let ran = root.path().join("ran");
    let s = spec(root.path(), "touch /ran; echo started");
    let (gate_r, mut gate_w) = std::io::pipe().unwrap();
    let (out_r, out_w) = std::io::pipe().unwrap();
    let stdio = kiln_runtime::Stdio::new(fs::File::open("/dev/null").unwrap(), out_w, {
        fs::File::options().write(true).open("/dev/null").unwrap()
    })
    .with_start_gate(gate_r);
    let ran2 = ran.clone();
    let opener = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        // The process has had 300 ms for its setup; its program must not have run.
        let early = ran2.exists();
        gate_w.write_all(b"1").unwrap();
        early
    });
    let c = E.spawn(&s, stdio).expect("spawn through the gate");
    let status = c.wait().unwrap();
    assert!(
        !opener.join().unwrap(),
        "the program ran before the gate opened"
    );
    assert_eq!(status, ExitStatus::Code(0));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut &out_r, &mut text).unwrap();
    assert_eq!(text, "started\n");
    assert!(ran.exists(), "the program ran once the gate opened");
}

#[test]
fn a_start_gate_closed_unopened_fails_the_start() {
    require_root();
    let root = rootfs();
    let (gate_r, gate_w) = std::io::pipe().unwrap();
    drop(gate_w);
    let null = || {
        fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .unwrap()
    };
    let stdio = kiln_runtime::Stdio::new(null(), null(), null()).with_start_gate(gate_r);
    let err = match E.spawn(&spec(root.path(), "touch /ran"), stdio) {
        Ok(_) => panic!("started through a closed gate"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("start gate"), "{err}");
    assert!(!root.path().join("ran").exists(), "the program ran");
}
