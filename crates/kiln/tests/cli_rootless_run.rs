//! Containers run by an ordinary user (rootless kiln: a user namespace mapped from the
//! user's /etc/subuid range): the private network through pasta, `-p` published by kiln's
//! proxy in the host's network namespace, `--memory` without a delegated cgroup (one warning,
//! the container still runs), stop/kill/rm and exec of a container whose process has a
//! subordinate uid (through its supervisor), nothing left behind; `kiln push` to a local registry. And `--security-opt`: what kiln
//! supports (systempaths=unconfined unmasks /proc and /sys), what it refuses.
//!
//! The tests run as root, which makes the test user `kilntest` (kiln_test::prereq::test_user)
//! and runs kiln as that user; they fail, never skip, when a prerequisite is missing.

mod support;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use kiln_test::prereq::{TestUser, test_user};
use support::*;

const BB: &str = "localhost/busybox:latest";

/// A store owned by the test user, with busybox loaded, and kiln as that user.
struct UserCtx {
    user: TestUser,
    kiln: PathBuf,
    tmp: tempfile::TempDir,
    root: PathBuf,
    /// The user's XDG_RUNTIME_DIR for this test: where kiln records the holder of the user's
    /// namespace (killed at the end: kiln started it for this test).
    runtime: PathBuf,
}

impl UserCtx {
    fn new() -> UserCtx {
        require_root();
        require_command("pasta", "passt");
        let user = test_user("kilntest", true);
        let tmp = tempfile::Builder::new()
            .prefix("kiln-rootless-run-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = tmp.path().join("store");
        std::fs::create_dir(&root).unwrap();
        chown(&root, user.uid);
        let runtime = tmp.path().join("run");
        std::fs::create_dir(&runtime).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        chown(&runtime, user.uid);
        // The busybox archive, where the user may read it.
        let archive = tmp.path().join("busybox.tar");
        std::fs::copy(busybox_archive(), &archive).unwrap();
        std::fs::set_permissions(&archive, std::fs::Permissions::from_mode(0o644)).unwrap();
        let kiln = user.executable(Path::new(bin()));
        let c = UserCtx {
            user,
            kiln,
            tmp,
            root,
            runtime,
        };
        c.ok(&["load", "-q", "-i", archive.to_str().unwrap()]);
        c
    }

    /// kiln as the user, with the test's store and runtime directory.
    fn command(&self) -> std::process::Command {
        let mut c = self.user.command_env(
            &self.kiln,
            &[
                ("KILN_ROOT", self.root.to_str().unwrap()),
                ("XDG_RUNTIME_DIR", self.runtime.to_str().unwrap()),
            ],
        );
        c.current_dir("/");
        c
    }

    fn kiln(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Kills the holder of the user's namespace (kiln's shared user namespace): the next
    /// kiln makes a new one, a sibling of the one the running containers are in.
    fn kill_namespace_holder(&self) {
        let text = std::fs::read_to_string(self.runtime.join("kiln/userns.pid"))
            .expect("the namespace holder's pid file");
        let pid: i32 = text.split_whitespace().next().unwrap().parse().unwrap();
        // SAFETY: signalling the holder kiln started for this test's user.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let t0 = Instant::now();
        while std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
        {
            assert!(t0.elapsed() < Duration::from_secs(5), "holder {pid} alive");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, so, se) = out(&self.kiln(args));
        assert_eq!(
            code, 0,
            "kiln {args:?} as {} failed: {se}{so}",
            self.user.name
        );
        so
    }
}

impl Drop for UserCtx {
    fn drop(&mut self) {
        let ids = self.kiln(&["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.kiln(&["rm", "-f", id]);
        }
        if let Ok(text) = std::fs::read_to_string(self.runtime.join("kiln/userns.pid"))
            && let Some(pid) = text.split_whitespace().next().and_then(|p| p.parse().ok())
        {
            // SAFETY: signalling the holder kiln started for this test's user.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // The store holds files of the user's subordinate uids: root removes it.
        let _ = std::fs::remove_dir_all(self.tmp.path());
    }
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(uid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET / on 127.0.0.1:`port`, retried until it answers (or 10 s): the response.
fn http_get(port: u16) -> String {
    let t0 = Instant::now();
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut r = String::new();
            s.read_to_string(&mut r)?;
            Ok(r)
        })();
        match attempt {
            Ok(r) if !r.is_empty() => return r,
            _ if t0.elapsed() > Duration::from_secs(10) => {
                panic!("nothing answered on 127.0.0.1:{port}: {attempt:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Live (non-zombie) processes whose command line mentions `needle`, except the holder of
/// the user's namespace (`kiln-userns`, forked by whichever kiln came first: its command line
/// is that kiln's).
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rfind(')')
            .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
        let holder =
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "kiln-userns");
        if cmd.contains(needle) && !zombie && !holder {
            found.push(format!("{pid} {cmd}"));
        }
    }
    found
}

/// Lines of any process's mountinfo that mention `path`: the rootless supervisor mounts in
/// its own mount namespace, so each live process's table is read.
fn mounts_anywhere(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let Ok(t) = std::fs::read_to_string(e.path().join("mountinfo")) else {
            continue;
        };
        found.extend(t.lines().filter(|l| l.contains(&needle)).map(String::from));
    }
    found
}

fn assert_nothing_left(c: &UserCtx, id: &str) {
    let t0 = Instant::now();
    loop {
        let procs = processes_with(id);
        let mounts = mounts_anywhere(&c.root);
        if procs.is_empty() && mounts.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "left behind by container {id}: processes {procs:?}, mounts {mounts:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !c.root.join("containers").join(id).exists(),
        "the container's directory is left"
    );
}

#[test]
fn rootless_run_publishes_a_port_through_pasta_and_the_proxy_and_stop_rm_leave_nothing() {
    let c = UserCtx::new();
    // The private network: eth0 from pasta besides lo, the kiln process itself stays in the
    // host's network namespace (the proxy listens there).
    let so = c.ok(&["run", "--rm", BB, "cat", "/proc/net/dev"]);
    assert!(
        so.contains("lo:") && so.contains("eth0:"),
        "the container's interfaces: {so}"
    );
    let so = c.ok(&["run", "--rm", BB, "cat", "/proc/self/uid_map"]);
    let first: Vec<&str> = so.split_whitespace().take(3).collect();
    assert_eq!(
        first,
        ["0", c.user.uid.to_string().as_str(), "1"],
        "root in the container is the user: {so}"
    );

    let port = free_port();
    let publish = format!("{port}:80");
    let script =
        "mkdir -p /www && echo hello-rootless > /www/index.html && exec httpd -f -p 80 -h /www";
    let o = c.kiln(&[
        "run", "-d", "-p", &publish, "--memory", "64m", BB, "sh", "-c", script,
    ]);
    let (code, so, err) = out(&o);
    assert_eq!(code, 0, "{err}");
    let id = so.trim().to_string();
    // cgroup v1 here and no delegated subtree: one warning, the container runs.
    assert_eq!(
        err.matches("WARNING: cgroup limits cannot apply (--memory)")
            .count(),
        1,
        "one warning: {err}"
    );
    let answer = http_get(port);
    assert!(
        answer.starts_with("HTTP/1.") && answer.contains("hello-rootless"),
        "{answer}"
    );
    let ps = c.ok(&["ps"]);
    assert!(ps.contains(&format!("0.0.0.0:{port}->80/tcp")), "{ps}");
    // stats reads the container's processes from /proc (no cgroup).
    let stats = c.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.PIDs}} {{.MemUsage}}",
        &id,
    ]);
    let pids: u32 = stats.split_whitespace().next().unwrap().parse().unwrap();
    assert!(pids >= 1, "{stats}");
    assert!(!stats.starts_with("1 0B"), "memory counted: {stats}");
    // NET I/O from the container's namespace, BLOCK I/O from its processes' /proc io (no
    // cgroup): both read, in docker's form.
    let io = c.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.NetIO}}|{{.BlockIO}}",
        &id,
    ]);
    let pair = |s: &str| {
        let (a, b) = s.split_once(" / ").unwrap_or_else(|| panic!("{io}"));
        [a, b].iter().all(|v| {
            v.ends_with('B')
                && v[..v.len() - 1]
                    .trim_end_matches(['k', 'M', 'G'])
                    .parse::<f64>()
                    .is_ok()
        })
    };
    let (net, block) = io.trim().split_once('|').unwrap();
    assert!(pair(net) && pair(block), "{io}");
    let top = c.ok(&["top", &id]);
    assert!(top.contains("httpd -f -p 80"), "{top}");
    // The supervisor runs healthchecks, in the container's user namespace.
    let t0 = Instant::now();
    let hc = c
        .ok(&[
            "run",
            "-d",
            "--health-cmd",
            "true",
            "--health-interval",
            "1s",
            BB,
            "sleep",
            "30",
        ])
        .trim()
        .to_string();
    while c
        .ok(&["inspect", "-f", "{{.State.Health.Status}}", &hc])
        .trim()
        != "healthy"
    {
        assert!(t0.elapsed() < Duration::from_secs(15), "never healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
    c.ok(&["rm", "-f", &hc]);
    // pause needs a freezer cgroup: refused, clearly.
    let (code, _, err) = out(&c.kiln(&["pause", &id]));
    assert_ne!(code, 0);
    assert!(err.contains("no freezer cgroup"), "{err}");

    c.ok(&["stop", "-t", "2", &id]);
    let st = c.ok(&["inspect", "-f", "{{.State.Status}}", &id]);
    assert_eq!(st.trim(), "exited");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the port is closed after stop"
    );
    c.ok(&["rm", &id]);
    assert_nothing_left(&c, &id);
}

#[test]
fn rootless_stop_kill_rm_reach_a_process_with_a_subordinate_uid() {
    let c = UserCtx::new();
    // USER 65534: its host uid is one of the user's subordinate ids, which a kiln command in
    // a user namespace of its own may not signal directly (its supervisor relays).
    let id = c
        .ok(&[
            "run",
            "-d",
            "-u",
            "65534",
            BB,
            "sh",
            "-c",
            "trap 'exit 7' TERM; while :; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    let top = c.ok(&["top", &id]);
    assert!(top.contains("nobody"), "{top}");
    // kiln shares one user namespace per user (held by a holder process); when the holder
    // is gone, the next kiln makes a new one, a sibling of the container's, which may neither
    // signal a subordinate uid nor enter the container's namespaces: exec, stop, kill and rm
    // go through the supervisor then. Both ways are checked.
    exec_and_stop(&c, &id);
    c.ok(&["start", &id]);
    c.kill_namespace_holder();
    exec_and_stop(&c, &id);
    c.ok(&["start", &id]);
    c.ok(&["kill", &id]);
    let code = c.ok(&["wait", &id]);
    assert_eq!(code.trim(), "137");
    c.ok(&["start", &id]);
    c.ok(&["rm", "-f", &id]);
    assert_nothing_left(&c, &id);
}

/// exec as the container's user (with -e, stdin and the exit code), then stop: SIGTERM
/// reaches the shell's trap.
fn exec_and_stop(c: &UserCtx, id: &str) {
    let so = c.ok(&["exec", "-e", "X=1", id, "sh", "-c", "id -u; echo $X"]);
    assert_eq!(so, "65534\n1\n");
    let (code, _, err) = out(&c.kiln(&["exec", id, "sh", "-c", "exit 3"]));
    assert_eq!(code, 3, "{err}");
    let mut child = c
        .command()
        .args(["exec", "-i", id, "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "through stdin\n");
    let t0 = Instant::now();
    c.ok(&["stop", "-t", "10", id]);
    assert!(t0.elapsed() < Duration::from_secs(8), "SIGTERM arrived");
    let code = c.ok(&["inspect", "-f", "{{.State.ExitCode}}", id]);
    assert_eq!(code.trim(), "7", "the trap ran: SIGTERM reached it");
}

#[test]
fn rootless_push_to_a_local_registry() {
    let c = UserCtx::new();
    let reg = kiln_test::registry::Registry::start();
    let name = format!("{}/rootless/bb:1", reg.addr);
    c.ok(&["tag", BB, &name]);
    let so = c.ok(&["push", &name]);
    assert!(
        so.contains(&format!(
            "The push refers to repository [{}/rootless/bb]",
            reg.addr
        )) && so.contains("digest: sha256:"),
        "{so}"
    );
    // Pulled back by root into a fresh store: the same image.
    let root_store = RunCtx::new();
    ok(&root_store, &["pull", &name]);
    let a = c.ok(&["image", "inspect", "-f", "{{.Id}}", &name]);
    let b = ok(&root_store, &["image", "inspect", "-f", "{{.Id}}", &name]);
    assert_eq!(a, b, "the pushed image is the user's");
    // Removed, then pulled back by the user: the pull unpacks the layer inside the user's
    // namespace (owned on the host by the user, as the lazy unpack makes it: container
    // root is the user), and the first run unpacks nothing (same directories, same inodes).
    c.ok(&["rmi", &name]);
    c.ok(&["rmi", BB]);
    let snapshots = || {
        use std::os::unix::fs::MetadataExt;
        let mut v: Vec<(String, u64, u32)> = std::fs::read_dir(c.root.join("snapshots-v1"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    m.ino(),
                    m.uid(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(snapshots(), vec![], "the rmi left snapshots");
    c.ok(&["pull", &name]);
    let pulled = snapshots();
    assert!(!pulled.is_empty(), "the pull unpacked nothing");
    assert!(
        pulled.iter().all(|(_, _, uid)| *uid == c.user.uid),
        "{pulled:?}: not the user's"
    );
    assert_eq!(c.ok(&["run", "--rm", &name, "echo", "hi"]), "hi\n");
    assert_eq!(snapshots(), pulled, "the first run unpacked again");
}

#[test]
fn security_opt_systempaths_unconfined_unmasks_proc_and_what_kiln_cannot_apply_is_refused() {
    require_root();
    let c = RunCtx::new();
    // What docker masks: /proc/keys (a bind of /dev/null), /proc/sys read-only.
    let mounted_on = |args: &[&str]| -> String {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[BB, "cat", "/proc/self/mountinfo"]);
        ok(&c, &a)
    };
    let default = mounted_on(&[]);
    assert!(
        default.contains(" /proc/keys "),
        "masked by default: {default}"
    );
    assert!(
        default.contains(" /proc/sys "),
        "read-only by default: {default}"
    );
    let open = mounted_on(&["--security-opt", "systempaths=unconfined"]);
    assert!(!open.contains(" /proc/keys "), "{open}");
    assert!(!open.contains(" /proc/sys "), "{open}");
    // AppArmor: what kiln does anyway (no profile); seccomp=unconfined lifts docker's default
    // filter (cli_run_seccomp.rs); neither touches the masks.
    for opt in [
        "seccomp=unconfined",
        "seccomp:unconfined",
        "apparmor=unconfined",
        "apparmor:unconfined",
    ] {
        let so = mounted_on(&["--security-opt", opt]);
        assert!(so.contains(" /proc/keys "), "{opt} keeps the masks: {so}");
    }
    // What kiln cannot apply: refused, never ignored.
    for opt in [
        "apparmor=docker-default",
        "label=disable",
        "systempaths=confined",
        "no-new-privileges=maybe",
    ] {
        let (code, _, err) = out(&c.kiln(&["run", "--rm", "--security-opt", opt, BB, "true"]));
        assert_eq!(code, 125, "{opt}: {err}");
        assert!(err.contains("invalid --security-opt"), "{opt}: {err}");
    }
    let (code, _, err) = out(&c.kiln(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=/nonexistent/profile.json",
        BB,
        "true",
    ]));
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("opening seccomp profile (/nonexistent/profile.json) failed"),
        "{err}"
    );
}

/// Rootless containers and RUN steps get docker's default filter too (installed inside the
/// user namespace, where the container's init holds CAP_SYS_ADMIN until it drops it).
#[test]
fn rootless_containers_and_run_steps_get_the_default_seccomp_filter() {
    require_root();
    let u = UserCtx::new();
    let script = "grep '^Seccomp:' /proc/self/status; unshare -U true 2>&1; echo rc=$?";
    let so = u.ok(&["run", "--rm", BB, "sh", "-c", script]);
    assert!(so.starts_with("Seccomp:\t2\n"), "{so}");
    assert!(
        so.contains("Operation not permitted") && so.ends_with("rc=1\n"),
        "{so}"
    );
    let so = u.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        BB,
        "sh",
        "-c",
        script,
    ]);
    assert!(so.starts_with("Seccomp:\t0\n"), "{so}");
    let ctx = u.tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/busybox:latest\nRUN grep '^Seccomp:' /proc/self/status > /mode\n",
    )
    .unwrap();
    chown(&ctx, u.user.uid);
    chown(&ctx.join("Dockerfile"), u.user.uid);
    u.ok(&["build", "-q", "-t", "sc", ctx.to_str().unwrap()]);
    let so = u.ok(&["run", "--rm", "sc", "cat", "/mode"]);
    assert_eq!(so, "Seccomp:\t2\n");
}

/// kiln's own image (scripts/kiln-image.sh, with this test's kiln inside) builds the demo as
/// its non-root user inside `kiln run`: the nested case a CI pod is. The least the outer
/// container needs is `--security-opt systempaths=unconfined` (the inner kiln's RUN steps
/// mount a fresh /proc, which the kernel refuses in a user namespace while /proc has masked
/// paths); without it the build fails on that mount. Under an ordinary user's `kiln run`, the
/// image built with `SUBIDS=1001:64535` works the same way.
#[test]
fn kiln_image_builds_the_demo_as_its_user_inside_kiln_run() {
    require_root();
    require_command("setcap", "libcap2-bin");
    require_command("newuidmap", "uidmap");
    let c = RunCtx::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let st = std::process::Command::new("bash")
        .arg(repo.join("scripts/kiln-image.sh"))
        .arg("localhost/kiln:nested-test")
        .env("KILN", bin())
        .env("KILN_IN_IMAGE", bin())
        .env("KILN_ROOT", &c.root)
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "kiln-image.sh: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let bb = c.tmp.path().join("bb.tar");
    std::fs::copy(busybox_archive(), &bb).unwrap();
    std::fs::set_permissions(&bb, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bb_vol = format!("{}:/bb.tar:ro", bb.display());
    let demo_vol = format!("{}:/demo:ro", repo.join("examples/demo").display());
    let script = "id -un; kiln load -q -i /bb.tar && kiln build -q -t demo /demo >/dev/null \
                  && kiln run --rm demo cat /srv/www/index.html";
    let nested = |opts: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(opts);
        a.extend_from_slice(&[
            "-v",
            &bb_vol,
            "-v",
            &demo_vol,
            "localhost/kiln:nested-test",
            "sh",
            "-c",
            script,
        ]);
        out(&c.kiln(&a))
    };
    let (code, so, err) = nested(&[
        "--security-opt",
        "systempaths=unconfined",
        "--security-opt",
        "seccomp=unconfined",
    ]);
    assert_eq!(code, 0, "{err}{so}");
    assert!(so.starts_with("kiln\n"), "as the image's user: {so}");
    assert!(so.contains("Hello from kiln"), "{so}");
    // Docker's masked paths (kiln's default too): the inner RUN cannot mount /proc.
    let (code, so, err) = nested(&["--security-opt", "seccomp=unconfined"]);
    assert_ne!(code, 0, "{so}");
    assert!(err.contains("mount proc"), "{err}");
    // Docker's default seccomp profile (kiln's too): the inner kiln cannot make its user
    // namespace.
    let (code, so, err) = nested(&["--security-opt", "systempaths=unconfined"]);
    assert_ne!(code, 0, "{so}");
    assert!(err.contains("Operation not permitted"), "{err}");

    // Under an ordinary user's kiln run (a user namespace mapping 0-65536), the image's
    // range must lie inside the outer mapping: SUBIDS=1001:64535.
    let archive = c.tmp.path().join("kiln-sub.tar");
    let st = std::process::Command::new("bash")
        .arg(repo.join("scripts/kiln-image.sh"))
        .arg("localhost/kiln:nested-sub")
        .env("KILN", bin())
        .env("KILN_IN_IMAGE", bin())
        .env("KILN_ROOT", &c.root)
        .env("SUBIDS", "1001:64535")
        .env("OUT", &archive)
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "kiln-image.sh SUBIDS=1001:64535: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let u = UserCtx::new();
    let user_archive = u.tmp.path().join("kiln-sub.tar");
    std::fs::copy(&archive, &user_archive).unwrap();
    std::fs::set_permissions(&user_archive, std::fs::Permissions::from_mode(0o644)).unwrap();
    u.ok(&["load", "-q", "-i", user_archive.to_str().unwrap()]);
    let user_bb = u.tmp.path().join("bb.tar");
    std::fs::copy(&bb, &user_bb).unwrap();
    std::fs::set_permissions(&user_bb, std::fs::Permissions::from_mode(0o644)).unwrap();
    let user_bb_vol = format!("{}:/bb.tar:ro", user_bb.display());
    let (code, so, err) = out(&u.kiln(&[
        "run",
        "--rm",
        "--security-opt",
        "systempaths=unconfined",
        "--security-opt",
        "seccomp=unconfined",
        "-v",
        &user_bb_vol,
        "-v",
        &demo_vol,
        "localhost/kiln:nested-sub",
        "sh",
        "-c",
        script,
    ]));
    assert_eq!(code, 0, "nested in rootless kiln: {err}{so}");
    assert!(so.contains("Hello from kiln"), "{so}");
}

/// The tutorial's image, rootless from end to end: the React app's two-stage Dockerfile
/// (`../shared/fixtures/react-app`, npm steps made offline as `tutorial_report` makes them) on
/// the fixtures' node and nginx bases, built by the user, then `kiln run -d -p PORT:80` of it:
/// nginx (master as root, workers as www-data, both subordinate-mapped) serves the built app.
#[test]
fn rootless_run_of_the_tutorials_image_answers_on_the_published_port() {
    const REACT: &str = "/work/shared/fixtures/react-app";
    const IMAGES: &str = "/var/tmp/kiln-fixtures/images";
    let c = UserCtx::new();
    for name in ["node-18", "nginx-bookworm"] {
        let archive = Path::new(IMAGES).join(format!("{name}.docker.tar"));
        assert!(
            archive.exists(),
            "this test needs the tutorial's base images: run `bash /work/shared/fixtures/make-base-images.sh` \
             as root to make {}",
            archive.display()
        );
        let readable = c.tmp.path().join(format!("{name}.tar"));
        std::fs::copy(&archive, &readable).unwrap();
        std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
        c.ok(&["load", "-q", "-i", readable.to_str().unwrap()]);
    }
    // The app as a context the user can read, npm steps made offline.
    let ctx = c.tmp.path().join("react-app");
    let cp = std::process::Command::new("cp")
        .args(["-a", REACT])
        .arg(&ctx)
        .status()
        .unwrap();
    assert!(cp.success(), "copying {REACT}");
    let text = std::fs::read_to_string(ctx.join("Dockerfile")).unwrap();
    assert_eq!(text.matches("RUN npm install\n").count(), 1, "{text}");
    let text = text
        .replace(
            "RUN npm install\n",
            "RUN mkdir -p node_modules && cp -a /usr/share/nodejs/. node_modules/\n",
        )
        .replace(
            "RUN npm run build\n",
            "RUN mkdir -p build/assets && cp index.html build/ && cat src/* > build/assets/index.js\n",
        );
    std::fs::write(ctx.join("Dockerfile"), text).unwrap();
    let chmod = std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&ctx)
        .status()
        .unwrap();
    assert!(chmod.success());
    c.ok(&["build", "-q", "-t", "multistage", ctx.to_str().unwrap()]);

    let port = free_port();
    let publish = format!("{port}:80");
    let id = c
        .ok(&[
            "run",
            "-d",
            "-p",
            &publish,
            "--name",
            "app-container",
            "multistage",
        ])
        .trim()
        .to_string();
    let answer = http_get(port);
    let index = std::fs::read_to_string(ctx.join("index.html")).unwrap();
    let title = index
        .lines()
        .find(|l| l.contains("<title>"))
        .expect("the app's index.html has a title")
        .trim()
        .to_string();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains(&title),
        "the built app, served by nginx: {answer}"
    );
    let (code, so, se) = out(&c.kiln(&["logs", "app-container"]));
    assert_eq!(code, 0, "{se}");
    assert!(
        format!("{so}{se}").contains("GET / HTTP/1.0"),
        "nginx's access log: {so}{se}"
    );
    c.ok(&["stop", "app-container"]);
    c.ok(&["rm", "app-container"]);
    assert_nothing_left(&c, &id);
}

/// Rootless with the host's network, a container's /sys is the host's, bound with its
/// submounts (the cgroup hierarchies among them): every one of them read-only, so the
/// container cannot write its own (delegated) cgroup limits or move out of its cgroup.
#[test]
fn rootless_sys_is_read_only_all_the_way_down() {
    let c = UserCtx::new();
    let info = c.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        BB,
        "cat",
        "/proc/self/mountinfo",
    ]);
    let sys: Vec<&str> = info
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(4)
                .is_some_and(|m| m == "/sys" || m.starts_with("/sys/"))
        })
        .collect();
    assert!(
        sys.iter().any(|l| l.contains(" /sys/fs/cgroup")),
        "the host's cgroup mounts are expected under /sys: {info}"
    );
    for l in &sys {
        let opts = l.split_whitespace().nth(5).unwrap_or("");
        assert!(
            opts.split(',').any(|o| o == "ro"),
            "writable under /sys: {l}"
        );
    }
}

#[test]
fn a_privileged_host_port_says_how_to_publish_it() {
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        start > 81,
        "this test needs net.ipv4.ip_unprivileged_port_start above 81 (it is {start})"
    );
    let c = UserCtx::new();
    let o = c.kiln(&["run", "-d", "-p", "81:80", BB, "sleep", "30"]);
    let (code, _, err) = out(&o);
    assert_eq!(code, 125, "{err}");
    for part in [
        "Bind for 0.0.0.0:81 failed: ports below",
        "net.ipv4.ip_unprivileged_port_start=",
        "-p 8080:80",
        "sysctl net.ipv4.ip_unprivileged_port_start=81",
        "rootless kiln may not bind them",
    ] {
        assert!(err.contains(part), "{part:?} in: {err}");
    }
    assert_eq!(c.ok(&["ps", "-q"]), "", "no container left running");
}
