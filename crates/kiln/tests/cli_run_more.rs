//! End-to-end tests of four gaps of issue 9: `--volumes-from`, restarting containers after a
//! reboot (`start --all --filter`, the shipped systemd unit, boot ids), published-port traffic
//! in `stats`' NET I/O, and the prune prompts compared byte for byte with docker 20.10's CLI.
//! Needs root (containers); the prompt test needs Debian's docker.io client.

mod support;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const BB: &str = "localhost/busybox:latest";

fn ctx() -> RunCtx {
    require_root();
    RunCtx(Ctx::new())
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lines(s: String) -> Vec<String> {
    s.lines().map(String::from).collect()
}

fn inspect(c: &Ctx, name: &str, format: &str) -> String {
    ok(c, &["inspect", "-f", format, name]).trim().to_string()
}

#[test]
fn volumes_from_takes_the_containers_volumes_and_binds() {
    let c = ctx();
    let host = c.tmp.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "from the host\n").unwrap();
    let bind = format!("{}:/h:ro", host.display());
    ok(
        &c,
        &[
            "create", "--name", "src", "-v", &bind, "-v", "named:/n", "-v", "/anon", "--tmpfs",
            "/t", BB, "true",
        ],
    );
    let anon = inspect(
        &c,
        "src",
        "{{range .Mounts}}{{if eq .Destination \"/anon\"}}{{.Name}}{{end}}{{end}}",
    );
    assert_eq!(anon.len(), 64, "{anon}");
    // Every volume and bind, each with its own mode: the bind stays read-only, the volumes are
    // writable and are the same volumes (what one container writes the other reads).
    let o = ok(
        &c,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "src",
            BB,
            "sh",
            "-c",
            "cat /h/f; echo n > /n/x; echo a > /anon/x; touch /h/y 2>/dev/null || echo h-ro; \
             grep -q ' /t ' /proc/mounts || echo no-t",
        ],
    );
    assert_eq!(o, "from the host\nh-ro\nno-t\n", "the tmpfs is not taken");
    assert_eq!(
        ok(&c, &["run", "--rm", "-v", "named:/n", BB, "cat", "/n/x"]),
        "n\n"
    );
    // :ro makes every one read-only; inspect shows them as docker does (Mode "", RW false) and
    // HostConfig.VolumesFrom as given.
    ok(
        &c,
        &[
            "create",
            "--name",
            "ro",
            "--volumes-from",
            "src:ro",
            BB,
            "true",
        ],
    );
    let mounts: Vec<serde_json::Value> =
        serde_json::from_str(&inspect(&c, "ro", "{{json .Mounts}}")).unwrap();
    let mut mounts: Vec<String> = mounts
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            format!(
                "{} {} {} {} [{}]",
                s("Type"),
                s("Name"),
                s("Destination"),
                m["RW"],
                s("Mode")
            )
        })
        .collect();
    mounts.sort();
    assert_eq!(
        mounts,
        [
            "bind  /h false []".to_string(),
            format!("volume {anon} /anon false []"),
            "volume named /n false []".to_string(),
        ]
    );
    assert_eq!(
        inspect(&c, "ro", "{{json .HostConfig.VolumesFrom}}"),
        "[\"src:ro\"]"
    );
    assert_eq!(
        inspect(&c, "src", "{{json .HostConfig.VolumesFrom}}"),
        "null"
    );
    let o = ok(
        &c,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "ro",
            BB,
            "sh",
            "-c",
            "touch /n/y 2>/dev/null || echo n-ro; touch /anon/y 2>/dev/null || echo anon-ro",
        ],
    );
    assert_eq!(
        o, "n-ro\nanon-ro\n",
        ":ro is kept by a container taking from it"
    );
    // Several flags; -v at the same destination replaces the taken mount; :rw does not make a
    // read-only mount writable (docker: RW = the mount's && the flag's); a later flag's mount
    // replaces an earlier one's at the same destination.
    let other = c.tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("f"), "other\n").unwrap();
    let o = ok(
        &c,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "src",
            "--volumes-from",
            "ro:rw",
            "-v",
            &format!("{}:/h", other.display()),
            BB,
            "sh",
            "-c",
            "cat /h/f; touch /h/z && echo h-rw; touch /n/z 2>/dev/null || echo n-ro",
        ],
    );
    assert_eq!(o, "other\nh-rw\nn-ro\n");
    // An anonymous volume stays while another container uses it: rm -v of its maker keeps it,
    // rm -v of the last user removes it.
    ok(&c, &["rm", "-v", "src"]);
    assert!(lines(ok(&c, &["volume", "ls", "-q"])).contains(&anon));
    ok(&c, &["rm", "-v", "ro"]);
    assert!(!lines(ok(&c, &["volume", "ls", "-q"])).contains(&anon));
    assert_eq!(lines(ok(&c, &["volume", "ls", "-q"])), ["named"]);
}

#[test]
fn volumes_from_an_unknown_container_or_a_bad_mode_fails_as_docker_and_makes_nothing() {
    let c = ctx();
    ok(&c, &["create", "--name", "src", "-v", "/anon", BB, "true"]);
    let before_vols = ok(&c, &["volume", "ls", "-q"]);
    let before_ps = ok(&c, &["ps", "-aq"]);
    for (what, spec, msg) in [
        ("run", "nosuch", "No such container: nosuch"),
        ("create", "nosuch:ro", "No such container: nosuch"),
        ("run", "src:xx", "invalid mode: xx"),
    ] {
        let (code, so, se) =
            out(&c.kiln(&[what, "--volumes-from", spec, "-v", "/more", BB, "true"]));
        assert_eq!(code, 125, "{what} {spec}: {se}");
        assert_eq!(so, "");
        assert_eq!(
            se,
            format!("kiln: Error response from daemon: {msg}.\nSee 'kiln {what} --help'.\n")
        );
    }
    assert_eq!(
        ok(&c, &["volume", "ls", "-q"]),
        before_vols,
        "no volume made"
    );
    assert_eq!(ok(&c, &["ps", "-aq"]), before_ps, "no container made");
}

/// The shipped unit's `ExecStart=` commands, with `kiln` as `bin`.
fn unit_commands(unit: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(unit).unwrap();
    let cmds: Vec<Vec<String>> = text
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .map(|l| {
            let mut words: Vec<String> = l.split_whitespace().map(String::from).collect();
            assert_eq!(words[0], "/usr/local/bin/kiln", "{l}");
            words.remove(0);
            words
        })
        .collect();
    assert_eq!(cmds.len(), 2, "{text}");
    cmds
}

fn sqlite(c: &Ctx, sql: &str) -> String {
    let db = c.root.join("metadata-v1.db");
    let o = Command::new(require_command("sqlite3", "sqlite3"))
        .arg(&db)
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Field 22 of /proc/PID/stat (start time in clock ticks since boot).
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

fn status(c: &Ctx, name: &str) -> String {
    inspect(c, name, "{{.State.Status}}")
}

#[test]
fn after_a_reboot_the_shipped_unit_starts_always_and_unless_stopped_containers() {
    let c = ctx();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for unit in ["system", "user"] {
        let unit = repo
            .join("contrib/systemd")
            .join(unit)
            .join("kiln-restart.service");
        let v = Command::new(require_command("systemd-analyze", "systemd"))
            .arg("verify")
            .arg(&unit)
            .output()
            .unwrap();
        // verify warns about the ExecStart binary when kiln is not installed; nothing else.
        let err = String::from_utf8_lossy(&v.stderr);
        assert!(
            err.lines().all(|l| l.contains("/usr/local/bin/kiln")),
            "{}: {err}",
            unit.display()
        );
    }
    let cmds = unit_commands(&repo.join("contrib/systemd/system/kiln-restart.service"));
    assert_eq!(
        cmds,
        unit_commands(&repo.join("contrib/systemd/user/kiln-restart.service"))
    );
    let names = [
        "always",
        "unless-stopped",
        "no",
        "on-failure",
        "us-stopped",
        "al-stopped",
    ];
    for n in names {
        let policy = match n {
            "us-stopped" => "unless-stopped",
            "al-stopped" => "always",
            p => p,
        };
        ok(
            &c,
            &[
                "run",
                "-d",
                "--name",
                n,
                "--restart",
                policy,
                BB,
                "sleep",
                "1000",
            ],
        );
    }
    for n in ["us-stopped", "al-stopped"] {
        ok(&c, &["stop", "-t", "0", n]);
    }
    // The simulated reboot. The supervisors are gone (SIGKILL: their containers die with them),
    // and the boot id recorded for them is another boot's. One supervisor's pid and start time
    // now belong to a live process, as a new boot may give them out: only the boot id tells.
    let running = ["always", "unless-stopped", "no", "on-failure"];
    for n in running {
        let sup: i32 = sqlite(
            &c,
            &format!("SELECT supervisor_pid FROM containers WHERE name = '{n}'"),
        )
        .parse()
        .unwrap();
        assert!(sup > 0, "{n}");
        // SAFETY: SIGKILL to the supervisor this test's kiln started.
        assert_eq!(unsafe { libc::kill(sup, libc::SIGKILL) }, 0);
    }
    let mut impostor = Command::new("sleep").arg("1000").spawn().unwrap();
    let (ipid, istart) = (impostor.id(), start_time(impostor.id()));
    sqlite(
        &c,
        &format!(
            "UPDATE containers SET supervisor_pid = {ipid}, supervisor_start = {istart} WHERE name = 'always'"
        ),
    );
    // Same boot: the impostor passes for the supervisor (what the boot id is for).
    assert_eq!(status(&c, "always"), "running");
    sqlite(
        &c,
        "UPDATE containers SET supervisor_boot = '00000000-0000-4000-8000-000000000000' WHERE state = 'running'",
    );
    for n in running {
        assert_eq!(status(&c, n), "exited", "{n} after the reboot");
    }
    assert_eq!(inspect(&c, "always", "{{.State.Error}}"), "supervisor died");
    impostor.kill().unwrap();
    impostor.wait().unwrap();
    // What the unit runs at boot.
    let mut started = Vec::new();
    for cmd in &cmds {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        started.extend(lines(ok(&c, &args)));
    }
    let id = |n: &str| inspect(&c, n, "{{.Id}}");
    let mut want = vec![id("always"), id("unless-stopped"), id("al-stopped")];
    want.sort();
    started.sort();
    assert_eq!(
        started, want,
        "always (also after a user's stop), unless-stopped not stopped by the user"
    );
    for n in ["always", "unless-stopped", "al-stopped"] {
        assert_eq!(status(&c, n), "running", "{n}");
        assert_eq!(ok(&c, &["exec", n, "echo", "up"]), "up\n");
    }
    for n in ["no", "on-failure", "us-stopped"] {
        assert_eq!(status(&c, n), "exited", "{n}");
    }
    // Running them again starts nothing more; --filter without --all, or a bad one, is refused.
    for cmd in &cmds {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        assert_eq!(ok(&c, &args), "");
    }
    let (code, _, se) = out(&c.kiln(&["start", "--all", "--filter", "label=x"]));
    assert_eq!(code, 1, "{se}");
    assert!(se.contains("Invalid filter 'label'"), "{se}");
    let (code, _, se) = out(&c.kiln(&["start", "--all", "--filter", "restart-policy=sometimes"]));
    assert_eq!(code, 1, "{se}");
    assert!(se.contains("restart-policy=sometimes"), "{se}");
    let (code, _, se) = out(&c.kiln(&["start", "--filter", "restart-policy=always", "no"]));
    assert_ne!(code, 0, "--filter needs --all");
    assert!(se.contains("--all"), "{se}");
    // podman's plain filter: every stopped container of that policy.
    assert_eq!(
        lines(ok(&c, &["start", "--all", "--filter", "restart-policy=no"])),
        [id("no")]
    );
}

/// docker's `HumanSizeWithPrecision(n, 3)` read back: "3MB" -> 3e6.
fn bytes(s: &str) -> f64 {
    let i = s.find(|ch: char| ch.is_ascii_alphabetic()).unwrap();
    let (n, unit) = s.split_at(i);
    let n: f64 = n.parse().unwrap();
    n * match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        u => panic!("unit {u} in {s}"),
    }
}

fn net_io(c: &Ctx, name: &str) -> (f64, f64) {
    let s = ok(c, &["stats", "--no-stream", "--format", "{{.NetIO}}", name]);
    let (rx, tx) = s
        .trim()
        .split_once(" / ")
        .unwrap_or_else(|| panic!("NET I/O of {name}: {s:?}"));
    (bytes(rx), bytes(tx))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn published_port_traffic_counts_in_stats_net_io() {
    let c = ctx();
    let port = free_port();
    const N: usize = 3_000_000;
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            BB,
            "sh",
            "-c",
            &format!("mkdir -p /w && head -c {N} /dev/zero > /w/f && exec httpd -f -p 80 -h /w"),
        ],
    );
    let (rx0, tx0) = net_io(&c, "web");
    assert!(tx0 < 100e3 && rx0 < 100e3, "{rx0} {tx0}");
    let request = "GET /f HTTP/1.0\r\nHost: x\r\n\r\n";
    let mut body = Vec::new();
    wait_for("the server to answer with the file", || {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        body.clear();
        s.write_all(request.as_bytes()).is_ok()
            && s.read_to_end(&mut body).is_ok()
            && body.len() > N
    });
    let (rx, tx) = net_io(&c, "web");
    // Sent: the response (N bytes and its headers) through the proxy; received: the request.
    // NET I/O has three digits: 3MB is 3.00e6..3.005e6.
    assert!(
        tx - tx0 >= N as f64 * 0.999,
        "sent {tx0} -> {tx} for {} bytes",
        body.len()
    );
    assert!(tx - tx0 < N as f64 * 1.01 + 100e3, "sent {tx0} -> {tx}");
    assert!(
        rx - rx0 >= request.len() as f64 * 0.99,
        "received {rx0} -> {rx}"
    );
    // Started again: a new proxy, counting from zero (as docker's new veth).
    ok(&c, &["restart", "-t", "0", "web"]);
    assert_eq!(status(&c, "web"), "running");
    let (_, tx) = net_io(&c, "web");
    assert!(tx < 100e3, "{tx} after a restart");
}

/// What `cmd` prints when the prompt is answered `answer`.
fn prompted(mut cmd: Command, answer: &str) -> String {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn prune_prompts_are_docker_20_10s_byte_for_byte() {
    let c = ctx();
    let docker = kiln_test::docker::Docker::engine();
    let v = docker
        .command()
        .args(["version", "--format", "{{.Client.Version}}"])
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&v.stdout).trim().to_string();
    assert!(
        version.starts_with("20.10"),
        "the reference is docker's 20.10 CLI, not {version:?}"
    );
    let kiln = |args: &[&str]| {
        let mut k = Command::new(bin());
        k.env("KILN_ROOT", &c.root).args(args);
        k
    };
    let dk = |args: &[&str]| {
        let mut d = docker.command();
        d.args(args);
        d
    };
    // "n": nothing is removed (by either).
    for args in [
        &["container", "prune"][..],
        &["volume", "prune"],
        &["image", "prune"],
        &["image", "prune", "-a"],
    ] {
        assert_eq!(
            prompted(kiln(args), "n\n"),
            prompted(dk(args), "n\n"),
            "{args:?}"
        );
    }
    // system prune: docker's list names networks (kiln has none) and kiln's names its content
    // store; the rest, and the blank line before the question, are docker's.
    for (args, extra) in [
        (&["system", "prune"][..], ""),
        (
            &["system", "prune", "--volumes"],
            "  - all volumes not used by at least one container\n",
        ),
    ] {
        let d = prompted(dk(args), "n\n");
        let k = prompted(kiln(args), "n\n");
        assert_eq!(
            d,
            format!(
                "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n{extra}  - all dangling images\n  - all dangling build cache\n\nAre you sure you want to continue? [y/N] "
            )
        );
        assert_eq!(
            k,
            d.replace("  - all networks not used by at least one container\n", "")
                .replace(
                    "  - all dangling build cache\n",
                    "  - all build cache\n  - all content no image or cache record references\n"
                ),
            "{args:?}"
        );
    }
    // "y" with nothing to remove: the same total.
    ok(&c, &["run", "--name", "gone", BB, "true"]);
    let k = prompted(kiln(&["container", "prune"]), "y\n");
    assert!(gone(&c, "gone"), "the stopped container was pruned");
    assert!(
        k.starts_with("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] Deleted Containers:\n"),
        "{k}"
    );
    assert!(k.contains("\n\nTotal reclaimed space: "), "{k}");
}

fn gone(c: &Ctx, name: &str) -> bool {
    !c.kiln(&["inspect", name]).status.success()
}

/// A detached supervisor sent SIGTERM itself (what systemd does to every process at shutdown)
/// passes it to its container and then does not restart it, whatever the policy says, as
/// docker's daemon does not restart containers while it shuts down; and it does not count as a
/// user's stop, so the unit's `unless-stopped` line starts the container again after the boot.
#[test]
fn a_signalled_supervisor_stops_without_restarting_and_without_a_user_stop() {
    let c = ctx();
    for (name, policy) in [("sig-always", "always"), ("sig-unless", "unless-stopped")] {
        ok(
            &c,
            &[
                "run",
                "-d",
                "--name",
                name,
                "--restart",
                policy,
                BB,
                "sh",
                "-c",
                "trap 'exit 3' TERM; while :; do sleep 0.1; done",
            ],
        );
        wait_for("running", || status(&c, name) == "running");
        let sup: u32 = sqlite(
            &c,
            &format!("SELECT supervisor_pid FROM containers WHERE name = '{name}'"),
        )
        .parse()
        .unwrap();
        assert!(sup > 0, "{name}: supervisor pid recorded");
        let pid: u32 = inspect(&c, name, "{{.State.Pid}}").parse().unwrap();
        // SAFETY: SIGTERM to the supervisor this test's kiln started.
        assert_eq!(unsafe { libc::kill(sup as i32, libc::SIGTERM) }, 0);
        wait_for("the supervisor to exit", || {
            !Path::new(&format!("/proc/{sup}")).exists()
        });
        assert_eq!(status(&c, name), "exited", "{name}: not restarted");
        assert_eq!(
            inspect(&c, name, "{{.State.ExitCode}}"),
            "3",
            "{name}: got the TERM"
        );
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{name}: the container's process is gone"
        );
        assert_eq!(
            inspect(&c, name, "{{.RestartCount}}"),
            "0",
            "{name}: no restart"
        );
        assert!(
            !c.root
                .join("containers")
                .join(inspect(&c, name, "{{.Id}}"))
                .join("stopped-by-user")
                .exists(),
            "{name}: not marked as stopped by the user"
        );
    }
    // Not a user's stop: the unit's second line brings the unless-stopped one back too.
    let started = ok(
        &c,
        &[
            "start",
            "--all",
            "--filter",
            "restart-policy=unless-stopped",
            "--filter",
            "stopped-by-user=false",
        ],
    );
    assert_eq!(lines(started).len(), 1, "one container started");
    wait_for("sig-unless running", || {
        status(&c, "sig-unless") == "running"
    });
    ok(&c, &["rm", "-f", "sig-always", "sig-unless"]);
}

/// An image without /etc/passwd runs as root when no user is asked for (docker's and runc's
/// default), and a named user is docker's error.
#[test]
fn an_image_without_etc_passwd_runs_as_root() {
    let c = ctx();
    std::fs::copy("/bin/busybox", c.ctx.join("busybox")).expect("/bin/busybox (busybox-static)");
    c.file("Dockerfile", "FROM scratch\nCOPY busybox /busybox\n");
    c.build_ok(&["-t", "nopasswd"]);
    let out = ok(&c, &["run", "--rm", "nopasswd", "/busybox", "id"]);
    // docker 20.10 prints the same (checked with an imported image of /bin/busybox alone).
    assert_eq!(out.trim(), "uid=0 gid=0 groups=0", "{out}");
    let o = c.kiln(&["run", "--rm", "-u", "root", "nopasswd", "/busybox", "id"]);
    let (code, _, err) = support::out(&o);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("unable to find user root"), "{err}");
}

/// A SIGTERM that reaches a foreground `kiln run` while the container is being set up cancels
/// the start (delivered to the new PID 1 before it has handlers, the kernel would drop it, and
/// the container would run on); later ones reach the program (tini, `--init`, forwards them).
/// Either way the command ends, with 143. Sent at random moments of the start-up.
#[test]
fn a_sigterm_during_the_start_up_ends_a_foreground_run() {
    require_command("tini-static", "tini");
    let c = ctx();
    let mut seen = Vec::new();
    for i in 0..15u64 {
        let mut child = Command::new(bin())
            .env("KILN_ROOT", &c.root)
            .args(["run", "--rm", "--init", BB, "sleep", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // 0-42 ms: from before the supervisor blocks signals to after the program runs.
        std::thread::sleep(Duration::from_millis(5 + (i * 7919) % 38));
        // SAFETY: SIGTERM to the kiln process this test started.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("run {i}: still running 20 s after SIGTERM (the signal was lost)");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        // 143: cancelled, or tini's exit after passing TERM on; killed by TERM: before kiln
        // blocked it (the very first milliseconds).
        assert!(
            status.code() == Some(143) || status.signal() == Some(libc::SIGTERM),
            "run {i}: {status:?} {err}"
        );
        seen.push(err.contains("before the container's process started"));
    }
    assert_eq!(ok(&c, &["ps", "-aq"]), "", "no container left");
    eprintln!(
        "cancelled before the start in {} of 15",
        seen.iter().filter(|&&b| b).count()
    );
}
