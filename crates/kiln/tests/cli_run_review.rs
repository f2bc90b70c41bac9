//! End-to-end tests of what a new user's review of `kiln run` found against docker 20.10:
//! capabilities, `top`'s rows, `wait` on `--rm`, leftovers of failed runs, `rm -f`, tmpfs
//! options, OOM kills. Needs root.

mod support;

use support::*;

const BB: &str = "localhost/busybox:latest";

fn ctx() -> RunCtx {
    require_root();
    RunCtx(Ctx::new())
}

/// The `CapEff` and `CapBnd` masks a command in the container prints from /proc/self/status.
fn caps(lines: &str) -> (String, String) {
    let field = |k: &str| {
        lines
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {lines:?}"))
            .trim()
            .to_string()
    };
    (field("CapEff:"), field("CapBnd:"))
}

#[test]
fn cap_add_wins_over_cap_drop_as_in_moby() {
    let c = ctx();
    let run = |flags: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[BB, "grep", "Cap", "/proc/self/status"]);
        caps(&ok(&c, &args))
    };
    // docker 20.10: CapEff 0000000000000001.
    assert_eq!(
        run(&["--cap-drop", "ALL", "--cap-add", "CHOWN"]).0,
        "0000000000000001"
    );
    // An explicit add wins over a drop of the same capability: docker's default set.
    assert_eq!(
        run(&["--cap-drop", "CHOWN", "--cap-add", "CHOWN"]).0,
        "00000000a80425fb"
    );
    assert_eq!(run(&["--cap-drop", "CHOWN"]).0, "00000000a80425fa");
    // ALL added first, then the drops.
    let (eff, bnd) = run(&["--cap-add", "ALL", "--cap-drop", "CAP_CHOWN"]);
    assert_eq!(eff, bnd);
    let all = u64::from_str_radix(&eff, 16).unwrap();
    assert_eq!(all & 1, 0, "CHOWN dropped: {eff}");
    assert_ne!(all & (1 << 21), 0, "SYS_ADMIN added: {eff}");

    // exec gets the container's set.
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "capx",
            "--network",
            "none",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CHOWN",
            BB,
            "sleep",
            "100",
        ],
    );
    let (eff, _) = caps(&ok(
        &c,
        &["exec", "capx", "grep", "Cap", "/proc/self/status"],
    ));
    assert_eq!(eff, "0000000000000001");
}

#[test]
fn top_lists_only_the_containers_processes_whatever_the_ps_options() {
    let c = ctx();
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "topc",
            "--network",
            "none",
            BB,
            "sleep",
            "100",
        ],
    );
    for opts in [&["aux"][..], &["-ef"], &["-eo", "pid,user,args"], &[]] {
        let mut args = vec!["top", "topc"];
        args.extend_from_slice(opts);
        let so = ok(&c, &args);
        let lines: Vec<&str> = so.lines().collect();
        assert_eq!(
            lines.len(),
            2,
            "top {opts:?}: the title and sleep only:\n{so}"
        );
        assert!(lines[0].contains("PID"), "{so}");
        assert!(lines[1].ends_with("sleep 100"), "{so}");
    }
    // docker's columns: at least 20 wide, 3 spaces of padding.
    let so = ok(&c, &["top", "topc", "-o", "pid,comm"]);
    assert!(so.starts_with("PID                 COMMAND\n"), "{so:?}");
    let (code, _, se) = out(&c.kiln(&["top", "topc", "-o", "comm"]));
    assert_eq!(code, 1);
    assert_eq!(
        se,
        "Error response from daemon: Couldn't find PID field in ps output\n"
    );
}

#[test]
fn wait_prints_the_exit_code_of_a_removed_rm_container() {
    let c = ctx();
    let id = ok(
        &c,
        &[
            "run",
            "-d",
            "--rm",
            "--network",
            "none",
            BB,
            "sh",
            "-c",
            "sleep 1; exit 4",
        ],
    );
    // docker 20.10 prints 4.
    assert_eq!(ok(&c, &["wait", id.trim()]), "4\n");
    let (code, _, se) = out(&c.kiln(&["wait", id.trim()]));
    assert_eq!(code, 1, "{se}");
    assert!(se.contains("No such container"), "{se}");
}

/// The directories under the store's containers/.
fn container_dirs(c: &Ctx) -> Vec<String> {
    match std::fs::read_dir(c.root.join("containers")) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_failed_rm_run_leaves_no_directory_and_check_removes_orphans() {
    let c = ctx();
    for args in [
        &["-u", "nosuch", BB, "true"][..],
        &["--entrypoint", "/nosuch", BB],
        &["-w", "/bin/sh", BB, "true"],
    ] {
        let mut full = vec!["run", "--rm", "--network", "none"];
        full.extend_from_slice(args);
        let (code, _, se) = out(&c.kiln(&full));
        assert_ne!(code, 0, "{args:?}: {se}");
        assert_eq!(container_dirs(&c), Vec::<String>::new(), "{args:?}: {se}");
        assert_eq!(ok(&c, &["ps", "-aq"]), "");
    }
    // The message once, as docker's: "unable to find user nosuch: no matching entries in
    // passwd file."
    let (_, _, se) = out(&c.kiln(&["run", "--rm", "-u", "nosuch", BB, "true"]));
    assert_eq!(se.matches("unable to find user").count(), 1, "{se}");

    // A directory with no row (as an older kiln left them) is reported and repaired.
    let orphan = "0".repeat(64);
    std::fs::create_dir_all(c.root.join("containers").join(&orphan).join("upper")).unwrap();
    let (code, so, se) = out(&c.kiln(&["system", "check"]));
    assert_ne!(code, 0, "{so}{se}");
    assert!(
        format!("{so}{se}").contains(&format!("containers/{orphan}")),
        "{so}{se}"
    );
    ok(&c, &["system", "check", "--repair"]);
    assert_eq!(container_dirs(&c), Vec::<String>::new());
    ok(&c, &["system", "check"]);
}

#[test]
fn rm_f_of_a_missing_container_says_so_and_succeeds() {
    let c = ctx();
    // docker 20.10's CLI: the error on stderr, exit 0; without -f exit 1.
    let (code, so, se) = out(&c.kiln(&["rm", "-f", "nosuch"]));
    assert_eq!((code, so.as_str()), (0, ""));
    assert_eq!(se, "Error: No such container: nosuch\n");
    let (code, _, se) = out(&c.kiln(&["rm", "nosuch"]));
    assert_eq!(code, 1);
    assert_eq!(se, "Error: No such container: nosuch\n");
}

#[test]
fn tmpfs_mounts_get_dockers_options() {
    let c = ctx();
    let mnt = |flags: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[BB, "grep", " /tmp ", "/proc/mounts"]);
        ok(&c, &args)
    };
    // docker 20.10's lines.
    let noexec = "tmpfs /tmp tmpfs rw,nosuid,nodev,noexec,relatime 0 0\n";
    assert_eq!(mnt(&["--tmpfs", "/tmp"]), noexec);
    assert_eq!(mnt(&["--read-only", "--tmpfs", "/tmp"]), noexec);
    assert_eq!(mnt(&["--mount", "type=tmpfs,target=/tmp"]), noexec);
    assert_eq!(
        mnt(&["--tmpfs", "/tmp:exec,size=1m"]),
        "tmpfs /tmp tmpfs rw,nosuid,nodev,relatime,size=1024k 0 0\n"
    );
}

#[test]
fn an_oom_kill_shows_in_inspect() {
    let c = ctx();
    let (code, _, se) = out(&c.kiln(&[
        "run",
        "--name",
        "oom",
        "--network",
        "none",
        "--memory",
        "16m",
        BB,
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]));
    assert_eq!(code, 137, "{se}");
    assert_eq!(
        ok(
            &c,
            &[
                "inspect",
                "-f",
                "{{.State.OOMKilled}} {{.State.ExitCode}}",
                "oom"
            ]
        ),
        "true 137\n"
    );
    // Started again without running out of memory: false.
    ok(&c, &["rm", "oom"]);
    ok(
        &c,
        &[
            "run",
            "--name",
            "oom",
            "--network",
            "none",
            "--memory",
            "16m",
            BB,
            "true",
        ],
    );
    assert_eq!(
        ok(&c, &["inspect", "-f", "{{.State.OOMKilled}}", "oom"]),
        "false\n"
    );
}

#[test]
fn ps_filters_follow_docker() {
    let c = ctx();
    let names = |filters: &[&str]| {
        let mut args = vec!["ps", "--format", "{{.Names}}"];
        for f in filters {
            args.extend_from_slice(&["--filter", f]);
        }
        let so = ok(&c, &args);
        let mut v: Vec<String> = so.lines().map(str::to_string).collect();
        v.sort();
        v.join(" ")
    };
    ok(
        &c,
        &["run", "--name", "e1", "--network", "none", BB, "true"],
    );
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "e2",
            "--network",
            "none",
            "-l",
            "a=1",
            "-l",
            "b",
            "-v",
            "rvvol:/data",
            BB,
            "sleep",
            "100",
        ],
    );
    let (code, _, se) = out(&c.kiln(&[
        "run",
        "--name",
        "e3",
        "--network",
        "none",
        BB,
        "sh",
        "-c",
        "exit 3",
    ]));
    assert_eq!(code, 3, "{se}");
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "pub",
            "-p",
            "127.0.0.1:18089:80",
            BB,
            "sleep",
            "100",
        ],
    );
    // One key given twice: either value; status implies -a.
    assert_eq!(names(&["status=exited", "status=running"]), "e1 e2 e3 pub");
    assert_eq!(names(&["status=exited"]), "e1 e3");
    // name: a regexp, against the name with and without its leading /.
    assert_eq!(names(&["status=exited", "name=^e"]), "e1 e3");
    assert_eq!(names(&["status=exited", "name=/e3", "name=1$"]), "e1 e3");
    // exited does not imply -a (docker lists nothing without it).
    assert_eq!(names(&["exited=3"]), "");
    // Every label value must match.
    assert_eq!(names(&["label=a=1", "label=b"]), "e2");
    assert_eq!(names(&["label=a=1", "label=c"]), "");
    assert_eq!(
        ok(
            &c,
            &["ps", "--format", "{{.Labels}}", "--filter", "name=e2"]
        ),
        "a=1,b=\n"
    );
    assert_eq!(names(&["volume=rvvol"]), "e2");
    assert_eq!(names(&["volume=/data"]), "e2");
    assert_eq!(names(&["network=none"]), "e2");
    assert_eq!(names(&["health=none", "network=default"]), "pub");
    assert_eq!(names(&["publish=18089"]), "pub");
    assert_eq!(names(&["publish=80"]), "");
    assert_eq!(names(&["expose=80/tcp"]), "pub");
    assert_eq!(names(&["expose=79-81"]), "pub");
    // before/since: by creation; without -a the running ones only.
    assert_eq!(names(&["before=e3"]), "e2");
    assert_eq!(names(&["since=e2"]), "pub");
    let bad = |f: &str| out(&c.kiln(&["ps", "-a", "--filter", f]));
    assert_eq!(
        bad("status=bogus"),
        (
            1,
            String::new(),
            "Error response from daemon: Invalid filter 'status=bogus'\n".into()
        )
    );
    assert_eq!(
        bad("bogus=1"),
        (
            1,
            String::new(),
            "Error response from daemon: Invalid filter 'bogus'\n".into()
        )
    );
    assert_eq!(
        bad("health=x").2,
        "Error response from daemon: Unrecognised filter value for health: x\n"
    );
    assert_eq!(
        bad("before=nosuch").2,
        "Error response from daemon: no such container nosuch\n"
    );
    assert_eq!(bad("nameonly").0, 125);
}

#[test]
fn inspect_of_several_names_prints_what_it_found() {
    let c = ctx();
    ok(&c, &["create", "--name", "ic", BB, "true"]);
    // docker 20.10: the objects found (a JSON array), then the error, exit 1.
    let (code, so, se) = out(&c.kiln(&["inspect", "ic", "nosuch"]));
    assert_eq!(code, 1);
    assert_eq!(se, "Error: No such object: nosuch\n");
    let v: serde_json::Value = serde_json::from_str(&so).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{so}");
    assert_eq!(v[0]["Name"], "/ic");
    // A container and an image, in the order given.
    let so = ok(&c, &["inspect", "-f", "{{.Id}}", BB, "ic"]);
    let ids: Vec<&str> = so.lines().collect();
    assert_eq!(ids.len(), 2, "{so}");
    assert!(ids[0].starts_with("sha256:"), "{so}");
    assert_eq!(ids[1].len(), 64, "{so}");
    let so = ok(&c, &["inspect", "ic", BB]);
    let v: serde_json::Value = serde_json::from_str(&so).unwrap();
    assert_eq!(v[0]["Name"], "/ic");
    assert!(v[1]["RepoTags"].is_array(), "{so}");
}

#[test]
fn a_container_waiting_for_its_restart_shows_restarting() {
    let c = ctx();
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "rs",
            "--network",
            "none",
            "--restart",
            "always",
            BB,
            "sh",
            "-c",
            "exit 1",
        ],
    );
    // The back-off doubles from 100 ms: the waits soon last long enough to be seen.
    let t0 = std::time::Instant::now();
    loop {
        let status = ok(&c, &["ps", "-a", "--format", "{{.Status}}|{{.State}}"]);
        let state = ok(
            &c,
            &[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.Restarting}} {{.State.Running}} {{.State.ExitCode}}",
                "rs",
            ],
        );
        if status.starts_with("Restarting (1) ") && state == "restarting true true 1\n" {
            assert!(status.trim_end().ends_with(" ago|restarting"), "{status}");
            break;
        }
        assert!(
            t0.elapsed().as_secs() < 20,
            "never seen restarting: {status} {state}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        ok(
            &c,
            &[
                "ps",
                "--format",
                "{{.Names}}",
                "--filter",
                "status=restarting"
            ]
        ),
        "rs\n"
    );
    ok(&c, &["rm", "-f", "rs"]);
}

#[test]
fn restart_count_counts_only_the_policys_restarts() {
    let c = ctx();
    let count = |n: &str| ok(&c, &["inspect", "-f", "{{.RestartCount}}", n]);
    let (code, _, _) = out(&c.kiln(&[
        "run",
        "--name",
        "rc",
        "--network",
        "none",
        "--restart",
        "on-failure:2",
        BB,
        "sh",
        "-c",
        "exit 1",
    ]));
    assert_eq!(code, 1);
    assert_eq!(count("rc"), "2\n");
    // docker's start and restart reset the count; they are no policy restarts.
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "plain",
            "--network",
            "none",
            BB,
            "sleep",
            "100",
        ],
    );
    ok(&c, &["restart", "-t", "0", "plain"]);
    assert_eq!(count("plain"), "0\n");
    ok(&c, &["stop", "-t", "0", "plain"]);
    ok(&c, &["start", "plain"]);
    assert_eq!(count("plain"), "0\n");
}

#[test]
fn container_commands_print_dockers_messages() {
    let c = ctx();
    // docker 20.10's CLI: these print the daemon's error as it came.
    for cmd in ["stop", "restart", "pause", "unpause", "wait"] {
        let (code, _, se) = out(&c.kiln(&[cmd, "nosuchx", "nosuchy"]));
        assert_eq!(code, 1, "{cmd}");
        assert_eq!(
            se,
            "Error response from daemon: No such container: nosuchx\nError response from daemon: No such container: nosuchy\n",
            "{cmd}"
        );
    }
    let (code, _, se) = out(&c.kiln(&["start", "nosuchx", "nosuchy"]));
    assert_eq!(code, 1);
    assert_eq!(
        se,
        "Error response from daemon: No such container: nosuchx\nError response from daemon: No such container: nosuchy\nError: failed to start containers: nosuchx, nosuchy\n"
    );
    let (code, _, se) = out(&c.kiln(&["kill", "nosuchx"]));
    assert_eq!(code, 1);
    assert_eq!(
        se,
        "Error response from daemon: Cannot kill container: nosuchx: No such container: nosuchx\n"
    );
    // These print it as the CLI's own.
    for cmd in [
        &["logs", "nosuchx"][..],
        &["port", "nosuchx"],
        &["rm", "nosuchx"],
        &["exec", "nosuchx", "true"],
    ] {
        let (code, _, se) = out(&c.kiln(cmd));
        assert_eq!(code, 1, "{cmd:?}");
        assert_eq!(se, "Error: No such container: nosuchx\n", "{cmd:?}");
    }
    let (_, _, se) = out(&c.kiln(&["top", "nosuchx"]));
    assert_eq!(
        se,
        "Error response from daemon: No such container: nosuchx\n"
    );

    // exec: docker's runtime messages, once, exit 126.
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "ex",
            "--network",
            "none",
            BB,
            "sleep",
            "100",
        ],
    );
    let (code, so, se) = out(&c.kiln(&["exec", "-w", "/nonexist", "ex", "pwd"]));
    assert_eq!((code, so.as_str()), (126, ""));
    assert_eq!(
        se,
        "OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd (\"/nonexist\") set in config.json failed: no such file or directory: unknown\n"
    );
    let (code, _, se) = out(&c.kiln(&["exec", "-u", "nosuchuser", "ex", "id"]));
    assert_eq!(code, 126);
    assert_eq!(
        se,
        "unable to find user nosuchuser: no matching entries in passwd file\n"
    );
    ok(&c, &["stop", "-t", "0", "ex"]);
    let (code, _, se) = out(&c.kiln(&["pause", "ex"]));
    assert_eq!(code, 1);
    assert!(
        se.starts_with("Error response from daemon: Container ")
            && se.ends_with(" is not running\n"),
        "{se}"
    );
}

#[test]
fn an_id_prefix_is_text_not_a_pattern() {
    // Attack review: `rm -f %SUFFIX` removed the container whose ID held SUFFIX (SQL LIKE).
    let c = ctx();
    let id = ok(&c, &["create", "--name", "victim", BB, "true"])
        .trim()
        .to_string();
    for probe in [
        format!("%{}", &id[4..12]),
        format!("{}_{}", &id[..2], &id[3..6]),
        id[..8].to_uppercase(),
    ] {
        if probe == id[..8] {
            continue; // an all-digit prefix has no upper case
        }
        let (code, _, err) = out(&c.kiln(&["rm", &probe]));
        assert_eq!(code, 1, "rm {probe}: {err}");
        assert!(err.contains("No such container"), "rm {probe}: {err}");
    }
    assert_eq!(
        ok(&c, &["inspect", "-f", "{{.Name}}", &id[..6]]).trim(),
        "/victim"
    );
    ok(&c, &["rm", "victim"]);
}
