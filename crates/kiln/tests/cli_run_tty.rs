//! End-to-end tests of terminals and process control: `run -it` on a real pty (the client's
//! window size reaches the container), `-dit` then `attach` with the detach keys, `exec -it`,
//! `pause`/`unpause`, `--init`, restart policies. The pty comes from python3's `pty` module
//! (tests/data/ptyrun.py drives it with expect/send steps). Needs root.

mod support;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const BB: &str = "localhost/busybox:latest";

fn ctx() -> RunCtx {
    require_root();
    RunCtx(Ctx::new())
}

/// Runs `kiln ARGS` on a new pty of `rows`×`cols`, driven by `steps` (JSON: `["expect",
/// text]`, `["send", text]`, `["sleep", seconds]`): (exit code, transcript).
fn on_pty(c: &Ctx, rows: u16, cols: u16, steps: &str, args: &[&str]) -> (i32, String) {
    let python = require_command("python3", "python3");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ptyrun.py");
    let o = Command::new(python)
        .arg(script)
        .arg(rows.to_string())
        .arg(cols.to_string())
        .arg(steps)
        .arg("--")
        .arg(bin())
        .args(args)
        .env("KILN_ROOT", &c.root)
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&o.stdout).into_owned();
    let code = o.status.code().unwrap_or(-1);
    assert!(
        code != 98 && code != 99,
        "pty script failed: {}\n{transcript}",
        String::from_utf8_lossy(&o.stderr)
    );
    (code, transcript)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Live (non-zombie) processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rfind(')')
            .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
        if cmd.contains(needle) && !zombie && pid != std::process::id() {
            found.push(pid);
        }
    }
    found
}

/// No process, mount, cgroup (the freezer's included) or directory of container `id` is left.
fn assert_nothing_left(c: &Ctx, id: &str) {
    wait_for("the container's processes to go", || {
        processes_with(id).is_empty()
    });
    let root = c.root.to_string_lossy().into_owned();
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root))
        .map(String::from)
        .collect();
    assert_eq!(mounts, Vec::<String>::new(), "mounts left");
    for ctrl in ["memory", "cpu", "cpuacct", "pids", "freezer", ""] {
        let d = Path::new("/sys/fs/cgroup").join(ctrl).join("kiln").join(id);
        assert!(!d.exists(), "cgroup {} left", d.display());
    }
    assert!(!c.root.join("containers").join(id).exists());
}

#[test]
fn run_it_is_a_real_terminal_of_the_clients_size() {
    let c = ctx();
    let (code, t) = on_pty(
        &c,
        30,
        100,
        "[]",
        &[
            "run",
            "--rm",
            "-it",
            BB,
            "sh",
            "-c",
            "tty; stty size; echo $TERM",
        ],
    );
    assert_eq!(code, 0, "{t}");
    assert!(t.contains("/dev/pts/0"), "{t}");
    assert!(t.contains("30 100"), "{t}");
    assert!(t.contains("xterm"), "{t}");
    // An interactive shell: input reaches it, its exit code is the command's.
    let (code, t) = on_pty(
        &c,
        24,
        80,
        r##"[["expect","# "],["send","echo sum $((40+2))\r"],["expect","sum 42"],["send","exit 7\r"]]"##,
        &["run", "--rm", "-it", BB, "sh"],
    );
    assert_eq!(code, 7, "{t}");
    assert_eq!(ok(&c, &["ps", "-aq"]), "", "--rm removed it");
    // -it with stdin that is no terminal: docker's refusal, nothing created.
    let (code, _, err) = out(&c.kiln(&["run", "--rm", "-it", BB, "true"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the input device is not a TTY"), "{err}");
    assert_eq!(ok(&c, &["ps", "-aq"]), "");
}

#[test]
fn detached_tty_attach_detaches_with_the_keys_and_exec_it_gets_its_own_terminal() {
    let c = ctx();
    let id = ok(&c, &["run", "-dit", "--name", "t", BB, "sh"]);
    let id = id.trim().to_string();
    assert_eq!(
        ok(
            &c,
            &[
                "inspect",
                "-f",
                "{{.Config.Tty}} {{.Config.OpenStdin}}",
                "t"
            ]
        )
        .trim(),
        "true true"
    );
    // attach: the shell answers on this terminal (resized to 24x80, then to 40x120 on
    // SIGWINCH), ctrl-p ctrl-q detaches.
    let (code, t) = on_pty(
        &c,
        24,
        80,
        r##"[["send","stty size\r"],["expect","24 80"],["resize",40,120],["sleep",0.3],["send","stty size\r"],["expect","40 120"],["send","\u0010\u0011"]]"##,
        &["attach", "t"],
    );
    // docker's attach: "read escape sequence", exit 1.
    assert_eq!(code, 1, "detached: {t}");
    assert!(t.contains("read escape sequence"), "{t}");
    assert!(
        ok(&c, &["ps", "--format", "{{.Status}}"]).starts_with("Up "),
        "still running after detach"
    );
    // Other keys with --detach-keys; ctrl-p alone passes through.
    let (code, t) = on_pty(
        &c,
        24,
        80,
        r##"[["send","echo again\r"],["expect","again"],["send","\u0001x"]]"##,
        &["attach", "--detach-keys", "ctrl-a,x", "t"],
    );
    assert_eq!(code, 1, "{t}");
    let (code, _, err) = out(&c.kiln(&["attach", "--detach-keys", "ctrl-", "t"]));
    assert_eq!(code, 1, "{err}");
    // exec -it: a terminal of its own, in the container's devpts, of this size.
    let (code, t) = on_pty(
        &c,
        20,
        60,
        r##"[["expect","# "],["send","tty; stty size\r"],["expect","20 60"],["send","exit 3\r"]]"##,
        &["exec", "-it", "t", "sh"],
    );
    assert_eq!(code, 3, "{t}");
    assert!(t.contains("/dev/pts/1"), "{t}");
    // The terminal's output is in the log.
    let logs = ok(&c, &["logs", "t"]);
    assert!(logs.contains("24 80"), "{logs}");
    // Exiting the shell through attach ends the container with its code.
    let (code, t) = on_pty(&c, 24, 80, r##"[["send","exit 5\r"]]"##, &["attach", "t"]);
    assert_eq!(code, 5, "{t}");
    let (code, _, err) = out(&c.kiln(&["attach", "t"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("You cannot attach to a stopped container, start it first"),
        "{err}"
    );
    ok(&c, &["rm", "t"]);
    assert_nothing_left(&c, &id);
}

#[test]
fn pause_freezes_and_unpause_thaws() {
    let c = ctx();
    let id = ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "p",
            BB,
            "sh",
            "-c",
            "while true; do echo tick; sleep 0.05; done",
        ],
    );
    let id = id.trim().to_string();
    assert_eq!(ok(&c, &["pause", "p"]).trim(), "p");
    assert!(
        ok(&c, &["ps", "--format", "{{.Status}}"])
            .trim()
            .ends_with("(Paused)")
    );
    assert_eq!(
        ok(
            &c,
            &["inspect", "-f", "{{.State.Paused}} {{.State.Status}}", "p"]
        )
        .trim(),
        "true paused"
    );
    // Frozen: nothing more is written while paused.
    std::thread::sleep(Duration::from_millis(200));
    let before = ok(&c, &["logs", "p"]).lines().count();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ok(&c, &["logs", "p"]).lines().count(), before, "frozen");
    let (code, _, err) = out(&c.kiln(&["pause", "p"]));
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("Container {id} is already paused")),
        "{err}"
    );
    let (code, _, err) = out(&c.kiln(&["exec", "p", "true"]));
    assert_ne!(code, 0);
    assert!(err.contains("is paused"), "{err}");
    ok(&c, &["unpause", "p"]);
    wait_for("output after unpause", || {
        ok(&c, &["logs", "p"]).lines().count() > before
    });
    let (code, _, err) = out(&c.kiln(&["unpause", "p"]));
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("Container {id} is not paused")),
        "{err}"
    );
    // A paused container stops and is removed.
    ok(&c, &["pause", "p"]);
    ok(&c, &["stop", "-t", "1", "p"]);
    ok(&c, &["rm", "p"]);
    assert_nothing_left(&c, &id);
}

#[test]
fn init_is_pid_1_reaps_and_forwards_the_stop_signal() {
    let c = ctx();
    kiln_test::prereq::require_file("/usr/bin/tini-static", "tini");
    let ps = ok(&c, &["run", "--rm", "--init", BB, "ps", "-o", "pid,comm"]);
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "docker-init"]),
        "{ps}"
    );
    // An orphan is reparented to tini, which reaps it: no zombie.
    let ps = ok(
        &c,
        &[
            "run",
            "--rm",
            "--init",
            BB,
            "sh",
            "-c",
            "(sleep 0.1 &); sleep 0.6; ps -o stat,comm",
        ],
    );
    assert!(!ps.lines().any(|l| l.trim_start().starts_with('Z')), "{ps}");
    let (code, _, _) = out(&c.kiln(&["run", "--rm", "--init", BB, "sh", "-c", "exit 4"]));
    assert_eq!(code, 4);
    // Without an init, sleep as PID 1 ignores SIGTERM; under tini it dies at once.
    ok(
        &c,
        &["run", "-d", "--init", "--name", "i", BB, "sleep", "100"],
    );
    let t0 = Instant::now();
    ok(&c, &["stop", "-t", "10", "i"]);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(
        ok(
            &c,
            &[
                "inspect",
                "-f",
                "{{.HostConfig.Init}} {{.State.ExitCode}}",
                "i"
            ]
        )
        .trim(),
        "true 143"
    );
}

#[test]
fn restart_policies_restart_in_the_supervisor_until_stopped() {
    let c = ctx();
    let (code, _, err) = out(&c.kiln(&["run", "--restart", "sometimes", BB, "true"]));
    assert_eq!(code, 125);
    assert!(err.contains("invalid restart policy 'sometimes'"), "{err}");
    let (code, _, err) = out(&c.kiln(&["run", "--rm", "--restart", "always", BB, "true"]));
    assert_eq!(code, 125);
    assert!(
        err.contains("Conflicting options: --restart and --rm"),
        "{err}"
    );
    let (code, _, err) = out(&c.kiln(&["run", "--restart", "always:3", BB, "true"]));
    assert_eq!(code, 125);
    assert!(
        err.contains("maximum retry count cannot be used with restart policy 'always'"),
        "{err}"
    );
    // on-failure:2: two restarts, then it stays exited.
    ok(
        &c,
        &[
            "run",
            "-d",
            "--restart",
            "on-failure:2",
            "--name",
            "f",
            BB,
            "sh",
            "-c",
            "echo run; exit 1",
        ],
    );
    wait_for("two restarts", || {
        ok(
            &c,
            &["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "f"],
        )
        .trim()
            == "2 exited"
    });
    assert_eq!(ok(&c, &["logs", "f"]), "run\nrun\nrun\n");
    assert_eq!(
        ok(&c, &["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}} {{.State.ExitCode}}", "f"]).trim(),
        "on-failure 2 1"
    );
    // on-failure does not restart a success.
    ok(
        &c,
        &[
            "run",
            "-d",
            "--restart",
            "on-failure",
            "--name",
            "s",
            BB,
            "true",
        ],
    );
    wait_for("exit", || {
        ok(&c, &["inspect", "-f", "{{.State.Status}}", "s"]).trim() == "exited"
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        ok(&c, &["inspect", "-f", "{{.RestartCount}}", "s"]).trim(),
        "0"
    );
    // always: restarts a process that ends; `stop` is final.
    let id = ok(
        &c,
        &[
            "run",
            "-d",
            "--restart",
            "always",
            "--name",
            "a",
            BB,
            "sleep",
            "0.2",
        ],
    );
    wait_for("a restart", || {
        ok(&c, &["inspect", "-f", "{{.RestartCount}}", "a"])
            .trim()
            .parse::<i64>()
            .unwrap()
            >= 1
    });
    ok(&c, &["stop", "a"]);
    let n = ok(&c, &["inspect", "-f", "{{.RestartCount}}", "a"]);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        ok(
            &c,
            &["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "a"]
        )
        .trim(),
        format!("{} exited", n.trim())
    );
    ok(&c, &["rm", "a"]);
    assert_nothing_left(&c, id.trim());
}

#[test]
fn healthchecks_from_the_image_and_flags_show_in_ps_and_inspect() {
    let c = ctx();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox\nHEALTHCHECK --interval=100ms --retries=2 CMD test -e /tmp/ok && echo fine\n",
    );
    c.build_ok(&["-t", "hc"]);
    ok(&c, &["run", "-d", "--name", "h", "hc", "sleep", "100"]);
    wait_for("unhealthy", || {
        ok(&c, &["ps", "--format", "{{.Status}}"])
            .trim()
            .ends_with("(unhealthy)")
    });
    ok(&c, &["exec", "h", "touch", "/tmp/ok"]);
    wait_for("healthy", || {
        ok(&c, &["ps", "--format", "{{.Status}}"])
            .trim()
            .ends_with("(healthy)")
    });
    let doc: serde_json::Value = serde_json::from_str(&ok(&c, &["inspect", "h"])).unwrap();
    let health = &doc[0]["State"]["Health"];
    assert_eq!(health["Status"], "healthy", "{health}");
    assert_eq!(health["FailingStreak"], 0);
    let log = health["Log"].as_array().unwrap();
    assert!(!log.is_empty() && log.len() <= 5, "{health}");
    let last = log.last().unwrap();
    assert_eq!(last["ExitCode"], 0);
    assert_eq!(last["Output"], "fine\n");
    assert!(last["Start"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        doc[0]["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "test -e /tmp/ok && echo fine"])
    );
    // --no-healthcheck turns the image's off; a probe over its timeout is killed.
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "n",
            "--no-healthcheck",
            "hc",
            "sleep",
            "100",
        ],
    );
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        ok(&c, &["inspect", "-f", "{{.State.Health}}", "n"]).trim(),
        // docker 20.10: a nil *Health prints as Go prints a nil pointer.
        "<nil>"
    );
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "t",
            "--health-cmd",
            "sleep 5",
            "--health-timeout",
            "200ms",
            "--health-interval",
            "100ms",
            BB,
            "sleep",
            "100",
        ],
    );
    wait_for("a timed-out probe", || {
        ok(&c, &["inspect", "-f", "{{json .State.Health.Log}}", "t"])
            .contains("Health check exceeded timeout (200ms)")
    });
    let (code, _, err) = out(&c.kiln(&["run", "--no-healthcheck", "--health-cmd", "true", BB]));
    assert_eq!(code, 125);
    assert!(
        err.contains("--no-healthcheck conflicts with --health-* options"),
        "{err}"
    );
    for n in ["h", "n", "t"] {
        ok(&c, &["rm", "-f", n]);
    }
    assert!(
        processes_with("sleep 5").is_empty() || {
            std::thread::sleep(Duration::from_millis(500));
            processes_with("sleep 5").is_empty()
        }
    );
}

#[test]
fn exec_it_detaches_with_the_keys_and_leaves_the_program_running() {
    let c = ctx();
    let id = ok(&c, &["run", "-d", "--name", "detachme", BB, "sleep", "100"]);
    let id = id.trim().to_string();
    // docker's exec: the detach keys end the client with "read escape sequence", exit 1.
    let (code, t) = on_pty(
        &c,
        24,
        80,
        r##"[["expect","# "],["send","echo marker-$((6*7))\r"],["expect","marker-42"],["send","\u0010\u0011"]]"##,
        &["exec", "-it", "detachme", "sh"],
    );
    assert_eq!(code, 1, "{t}");
    assert!(t.contains("read escape sequence"), "{t}");
    // The shell runs on, its terminal held for it.
    let shells = || {
        ok(&c, &["exec", "detachme", "ps", "-o", "pid,args"])
            .lines()
            .filter(|l| l.trim_end().ends_with(" sh"))
            .count()
    };
    assert_eq!(shells(), 1);
    // Other keys; the first alone passes through.
    let (code, t) = on_pty(
        &c,
        24,
        80,
        r##"[["expect","# "],["send","\u0001echo ok-$((1+1))\r"],["expect","ok-2"],["send","\u0001x"]]"##,
        &["exec", "-it", "--detach-keys", "ctrl-a,x", "detachme", "sh"],
    );
    assert_eq!(code, 1, "{t}");
    assert_eq!(shells(), 2);
    let (code, _, err) = out(&c.kiln(&["exec", "--detach-keys", "bogus", "detachme", "true"]));
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error response from daemon: Invalid escape keys (bogus) provided\n"
    );
    // The holders of the detached terminals go with the container.
    ok(&c, &["rm", "-f", "detachme"]);
    wait_for("the detached execs' terminal holders to end", || {
        processes_with("exec -it detachme sh").is_empty()
            && processes_with("ctrl-a,x detachme sh").is_empty()
    });
    assert_nothing_left(&c, &id);
}
