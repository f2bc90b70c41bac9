//! End-to-end tests of containers (`kiln run` and the commands around it): exit codes and
//! docker's messages, detached containers under their supervisor, the json-file log, stop/rm
//! leaving no process, mount or cgroup behind, a killed supervisor, inspect, the image config
//! (Env, User, WorkingDir), `-v` binds. Needs root (namespaces, overlay mounts, cgroups).

mod support;
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

const BB: &str = "localhost/busybox:latest";

fn ctx() -> RunCtx {
    RunCtx(Ctx::new())
}

/// Lines of /proc/self/mountinfo that mention the test's store.
fn mounts_under(root: &Path) -> Vec<String> {
    let root = root.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root))
        .map(String::from)
        .collect()
}

/// Live (non-zombie) processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
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
        if cmd.contains(needle) && !zombie {
            found.push(pid);
        }
    }
    found
}

fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty()
        && !stat
            .rfind(')')
            .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'))
}

fn cgroup_dirs(id: &str) -> Vec<String> {
    ["memory", "cpu", "cpuacct", "pids", ""]
        .iter()
        .map(|c| Path::new("/sys/fs/cgroup").join(c).join("kiln").join(id))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect()
}

/// Nothing of container `id` is left: no process, no mount, no cgroup, no directory.
fn assert_nothing_left(c: &Ctx, id: &str) {
    let t0 = Instant::now();
    while !processes_with(id).is_empty() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        processes_with(id),
        Vec::<u32>::new(),
        "processes of {id} left"
    );
    assert_eq!(mounts_under(&c.root), Vec::<String>::new(), "mounts left");
    assert_eq!(cgroup_dirs(id), Vec::<String>::new(), "cgroups left");
    assert!(
        !c.root.join("containers").join(id).exists(),
        "containers/{id} left"
    );
    assert_eq!(
        net_leftovers_after_wait(id),
        Vec::<String>::new(),
        "rules/veth left"
    );
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

#[test]
fn foreground_run_exits_with_the_containers_code_or_dockers() {
    require_root();
    let c = ctx();
    let (code, so, _) = out(&c.kiln(&["run", "--rm", BB, "echo", "hello"]));
    assert_eq!((code, so.as_str()), (0, "hello\n"));
    let (code, _, _) = out(&c.kiln(&["run", "--rm", BB, "sh", "-c", "exit 3"]));
    assert_eq!(code, 3);
    let (code, _, err) = out(&c.kiln(&["run", "--rm", BB, "nosuch"]));
    assert_eq!(code, 127, "{err}");
    assert!(
        err.contains(r#"exec: "nosuch": executable file not found in $PATH"#),
        "{err}"
    );
    let (code, _, err) = out(&c.kiln(&["run", "--rm", BB, "/etc/passwd"]));
    assert_eq!(code, 126, "{err}");
    // A path to nothing is 127, as docker's.
    let (code, _, err) = out(&c.kiln(&["run", "--rm", BB, "/nonexistent"]));
    assert_eq!(code, 127, "{err}");
    // Flags docker rejects are 125.
    let (code, _, err) = out(&c.kiln(&["run", "--no-such-flag", BB]));
    assert_eq!(code, 125, "{err}");
    // --rm left nothing behind.
    assert_eq!(ok(&c, &["ps", "-aq"]), "");
    assert_eq!(mounts_under(&c.root), Vec::<String>::new());
}

#[test]
fn unknown_image_and_taken_name_are_125_with_dockers_words() {
    require_root();
    let c = ctx();
    let (code, _, err) = out(&c.kiln(&["run", "nosuchimage", "true"]));
    assert_eq!(code, 125);
    assert!(
        err.contains("Unable to find image 'nosuchimage:latest' locally"),
        "{err}"
    );
    assert!(err.contains("registry"), "says why: {err}");
    let id = ok(&c, &["create", "--name", "x", BB, "true"]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    let (code, _, err) = out(&c.kiln(&["run", "--name", "x", BB, "true"]));
    assert_eq!(code, 125);
    assert!(
        err.contains(&format!(
            "Conflict. The container name \"/x\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
        )),
        "{err}"
    );
    ok(&c, &["rename", "x", "y"]);
    ok(&c, &["run", "--rm", "--name", "x", BB, "true"]);
    ok(&c, &["rm", "y"]);
    let (code, _, err) = out(&c.kiln(&["rm", "y"]));
    assert_eq!(code, 1);
    assert!(err.contains("No such container: y"), "{err}");
}

#[test]
fn detached_container_logs_stops_and_is_removed_without_leftovers() {
    require_root();
    let c = ctx();
    let id = ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "web",
            BB,
            "sh",
            "-c",
            "trap 'echo bye; exit 0' TERM; echo out; echo err >&2; while true; do sleep 0.1; done",
        ],
    );
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64);
    let ps = ok(&c, &["ps"]);
    let lines: Vec<&str> = ps.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID   IMAGE")
            && lines[0].contains("COMMAND")
            && lines[0].contains("CREATED")
            && lines[0].contains("STATUS")
            && lines[0].contains("PORTS")
            && lines[0].ends_with("NAMES"),
        "{ps}"
    );
    assert!(
        lines[1].starts_with(&id[..12]) && lines[1].contains("Up ") && lines[1].ends_with("web"),
        "{ps}"
    );
    assert_eq!(ok(&c, &["ps", "-q", "--no-trunc"]).trim(), id);
    wait_for("the log", || {
        let o = c.kiln(&["logs", "web"]);
        String::from_utf8_lossy(&o.stdout) == "out\n"
            && String::from_utf8_lossy(&o.stderr) == "err\n"
    });
    // The json-file log, as docker writes it.
    let log =
        std::fs::read_to_string(c.root.join(format!("containers/{id}/{id}-json.log"))).unwrap();
    // (stdout and stderr are copied by two threads: their order between streams may vary.)
    let first: serde_json::Value = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["stream"] == "stdout")
        .unwrap();
    assert_eq!(first["log"], "out\n");
    assert_eq!(first["stream"], "stdout");
    assert!(first["time"].as_str().unwrap().ends_with('Z'), "{log}");
    let ts = ok(&c, &["logs", "-t", "--tail", "1", "web"]);
    assert!(ts.contains("Z out\n") || ts.is_empty(), "{ts}");

    let pid: u32 = ok(&c, &["inspect", "-f", "{{.State.Pid}}", "web"])
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    let supervisors = processes_with(&format!("__container-supervise {id}"));
    assert_eq!(supervisors.len(), 1, "one supervisor");
    assert_eq!(ok(&c, &["stop", "web"]).trim(), "web");
    assert!(!alive(pid));
    assert!(!alive(supervisors[0]), "the supervisor is gone");
    let ps = ok(&c, &["ps", "-a", "--format", "{{.Status}}|{{.Names}}"]);
    assert!(
        ps.starts_with("Exited (0) ") && ps.trim_end().ends_with("|web"),
        "{ps}"
    );
    assert_eq!(ok(&c, &["logs", "web"]), "out\nbye\n");
    assert_eq!(ok(&c, &["wait", "web"]).trim(), "0");
    assert_eq!(mounts_under(&c.root), Vec::<String>::new());
    ok(&c, &["rm", "web"]);
    assert_nothing_left(&c, &id);
}

#[test]
fn rm_of_a_running_container_needs_force_and_start_runs_it_again() {
    require_root();
    let c = ctx();
    let id = ok(
        &c,
        &[
            "run",
            "-d",
            BB,
            "sh",
            "-c",
            "echo run >> /state; sleep 1000",
        ],
    );
    let id = id.trim().to_string();
    let (code, _, err) = out(&c.kiln(&["rm", &id[..12]]));
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("You cannot remove a running container {id}. Stop the container before attempting removal or force remove")),
        "{err}"
    );
    // SIGTERM is ignored by a PID 1 without a handler: stop kills after -t.
    let t0 = Instant::now();
    ok(&c, &["stop", "-t", "1", &id]);
    assert!(t0.elapsed() < Duration::from_secs(8));
    assert!(ok(&c, &["ps", "-a"]).contains("Exited (137)"));
    // The writable layer survives a restart.
    ok(&c, &["start", &id]);
    assert!(ok(&c, &["ps"]).contains(&id[..12]));
    ok(&c, &["kill", &id]);
    wait_for("exit", || ok(&c, &["ps", "-q"]).is_empty());
    let upper =
        std::fs::read_to_string(c.root.join(format!("containers/{id}/upper/state"))).unwrap();
    assert_eq!(upper, "run\nrun\n");
    assert_eq!(
        ok(
            &c,
            &[
                "inspect",
                "-f",
                "{{.RestartCount}} {{.State.ExitCode}}",
                &id
            ]
        )
        .trim(),
        // docker's start resets the count: only the restart policy's restarts count.
        "0 137"
    );
    ok(&c, &["start", &id]);
    ok(&c, &["rm", "-f", &id]);
    assert_nothing_left(&c, &id);
}

#[test]
fn a_killed_supervisor_leaves_an_exited_container_and_no_process() {
    require_root();
    let c = ctx();
    let id = ok(
        &c,
        &["run", "-d", BB, "sh", "-c", "sleep 1000 & sleep 1000"],
    );
    let id = id.trim().to_string();
    let pid: u32 = ok(&c, &["inspect", "-f", "{{.State.Pid}}", &id])
        .trim()
        .parse()
        .unwrap();
    let supervisor = processes_with(&format!("__container-supervise {id}"));
    assert_eq!(supervisor.len(), 1);
    // SAFETY: a process this test started (through kiln).
    unsafe { libc::kill(supervisor[0] as i32, libc::SIGKILL) };
    wait_for("the container's processes to die", || !alive(pid));
    // system check reports it before anything settles it.
    let (_, so, se) = out(&c.kiln(&["system", "check"]));
    assert!(
        format!("{so}{se}").contains("its supervisor"),
        "system check names the dead supervisor: {so}{se}"
    );
    let ps = ok(&c, &["ps", "-a", "--format", "{{.Status}}"]);
    assert!(ps.starts_with("Exited (137)"), "{ps}");
    assert_eq!(
        ok(
            &c,
            &["inspect", "-f", "{{.State.Status}} {{.State.Error}}", &id]
        )
        .trim(),
        "exited supervisor died"
    );
    assert!(processes_with("sleep 1000").iter().all(|p| {
        std::fs::read_to_string(format!("/proc/{p}/cgroup"))
            .map(|s| !s.contains(&id))
            .unwrap_or(true)
    }));
    ok(&c, &["rm", &id]);
    assert_nothing_left(&c, &id);
}

#[test]
fn image_config_and_flags_shape_the_process() {
    require_root();
    let c = ctx();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nENV GREETING=hi FROM_IMAGE=1\nWORKDIR /srv/app\nUSER kiln\nENTRYPOINT [\"sh\", \"-c\"]\nCMD [\"echo default\"]\nSTOPSIGNAL SIGUSR1\n",
    );
    c.build_ok(&["-t", "cfg"]);
    let (code, so, se) = out(&c.kiln(&["run", "--rm", "cfg"]));
    assert_eq!((code, so.as_str()), (0, "default\n"), "{se}");
    let so = ok(
        &c,
        &[
            "run",
            "--rm",
            "cfg",
            "echo $GREETING $FROM_IMAGE; id; pwd; echo $HOME",
        ],
    );
    assert_eq!(
        so,
        "hi 1\nuid=1000(kiln) gid=1000(kiln) groups=1000(kiln)\n/srv/app\n/home/kiln\n"
    );
    std::fs::write(c.tmp.path().join("env"), "# comment\nFROM_FILE=2\n").unwrap();
    let env_file = c.tmp.path().join("env");
    let so = ok(
        &c,
        &[
            "run",
            "--rm",
            "-e",
            "GREETING=hello",
            "--env-file",
            env_file.to_str().unwrap(),
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "--hostname",
            "box",
            "--add-host",
            "db:10.1.2.3",
            "cfg",
            "echo $GREETING $FROM_FILE; id -u; pwd; hostname; grep db /etc/hosts",
        ],
    );
    assert_eq!(so, "hello 2\n65534\n/tmp\nbox\n10.1.2.3\tdb\n");
    let so = ok(&c, &["run", "--rm", "--entrypoint", "id", "cfg", "-u"]);
    assert_eq!(so, "1000\n");
    // inspect: docker's fields.
    let id = ok(
        &c,
        &[
            "create",
            "--name",
            "insp",
            "-e",
            "X=1",
            "-v",
            "/tmp:/host:ro",
            "cfg",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&c, &["inspect", "insp"])).unwrap();
    let d = &v[0];
    assert_eq!(d["Id"], id.trim());
    assert_eq!(d["Name"], "/insp");
    assert_eq!(d["Path"], "sh");
    assert_eq!(d["Args"], serde_json::json!(["-c", "echo default"]));
    assert_eq!(d["State"]["Status"], "created");
    assert_eq!(d["State"]["Running"], false);
    assert_eq!(d["State"]["StartedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(d["Config"]["User"], "kiln");
    assert_eq!(d["Config"]["WorkingDir"], "/srv/app");
    assert_eq!(d["Config"]["StopSignal"], "SIGUSR1");
    assert!(
        d["Config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("X=1"))
    );
    assert_eq!(
        d["HostConfig"]["Binds"],
        serde_json::json!(["/tmp:/host:ro"])
    );
    assert_eq!(d["Mounts"][0]["Destination"], "/host");
    assert_eq!(d["Mounts"][0]["RW"], false);
    assert!(d["NetworkSettings"]["Ports"].is_object());
    assert_eq!(
        ok(
            &c,
            &["container", "inspect", "-f", "{{.Config.Image}}", "insp"]
        )
        .trim(),
        "cfg"
    );
    let (code, _, err) = out(&c.kiln(&["container", "inspect", "nosuch"]));
    assert_eq!(code, 1);
    assert!(err.contains("No such container: nosuch"), "{err}");
    // An image a container uses needs -f to be removed, as docker says.
    let (code, _, err) = out(&c.kiln(&["rmi", "cfg"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("container") && err.contains("is using its referenced image"),
        "{err}"
    );
    ok(&c, &["rm", "insp"]);
}

#[test]
fn volumes_bind_read_write_and_read_only() {
    require_root();
    let c = ctx();
    let host = c.tmp.path().join("vol");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from host\n").unwrap();
    let spec = format!("{}:/data", host.display());
    let so = ok(
        &c,
        &[
            "run",
            "--rm",
            "-v",
            &spec,
            BB,
            "sh",
            "-c",
            "cat /data/in; echo out > /data/out",
        ],
    );
    assert_eq!(so, "from host\n");
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "out\n");
    let ro = format!("{}:/data:ro", host.display());
    let (code, _, err) = out(&c.kiln(&[
        "run",
        "--rm",
        "-v",
        &ro,
        BB,
        "sh",
        "-c",
        "echo x > /data/no",
    ]));
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!host.join("no").exists());
    let (code, _, err) = out(&c.kiln(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch",
        BB,
        "sh",
        "-c",
        "echo y > /scratch/f && cat /scratch/f && touch /nope",
    ]));
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    // A name is a volume now (cli_run_volumes.rs); a bad one is docker's error.
    let (code, _, err) = out(&c.kiln(&["run", "--rm", "-v", "bad@name:/data", BB, "true"]));
    assert_eq!(code, 125);
    assert!(
        err.contains("includes invalid characters for a local volume name"),
        "{err}"
    );
    assert_eq!(mounts_under(&c.root), Vec::<String>::new());
}

#[test]
fn isolation_flags_are_applied() {
    require_root();
    let c = ctx();
    // Docker's default set has no NET_ADMIN; --cap-add gives it, --cap-drop takes CHOWN.
    let caps = |args: &[&str]| -> u64 {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[BB, "sh", "-c", "grep CapEff /proc/self/status"]);
        let so = ok(&c, &a);
        u64::from_str_radix(so.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let default = caps(&[]);
    assert_eq!(default & (1 << 12), 0, "no NET_ADMIN by default");
    assert_ne!(caps(&["--cap-add", "NET_ADMIN"]) & (1 << 12), 0);
    assert_eq!(caps(&["--cap-drop", "CAP_CHOWN"]) & 1, 0);
    let so = ok(
        &c,
        &[
            "run",
            "--rm",
            "--security-opt",
            "no-new-privileges",
            BB,
            "grep",
            "NoNewPrivs",
            "/proc/self/status",
        ],
    );
    assert!(so.contains('1'), "{so}");
    let so = ok(
        &c,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            BB,
            "cat",
            "/proc/net/dev",
        ],
    );
    assert!(
        so.contains("lo:") && so.lines().count() == 3,
        "only loopback: {so}"
    );
    let so = ok(
        &c,
        &[
            "run",
            "--rm",
            "--pids-limit",
            "50",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            BB,
            "cat",
            "/proc/self/cgroup",
        ],
    );
    assert!(so.contains("/kiln/"), "in its own cgroups: {so}");
    // -t without a terminal on this side: the container still gets a pty (docker's too).
    let (code, so, err) = out(&c.kiln(&["run", "--rm", "-t", BB, "tty"]));
    assert_eq!((code, so.as_str()), (0, "/dev/pts/0\r\n"), "{err}");
    let (code, _, err) = out(&c.kiln(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=x.json",
        BB,
        "true",
    ]));
    assert_eq!(code, 125, "{err}");
    assert_eq!(mounts_under(&c.root), Vec::<String>::new());
}

#[test]
fn twenty_detached_containers_leave_nothing_behind() {
    require_root();
    let c = ctx();
    let mut ids = Vec::new();
    for i in 0..20 {
        let mut args = vec!["run", "-d"];
        if i % 2 == 0 {
            args.push("--rm");
        }
        args.extend_from_slice(&[BB, "sh", "-c", "echo hi; sleep 0.2"]);
        ids.push(ok(&c, &args).trim().to_string());
    }
    for (i, id) in ids.iter().enumerate() {
        if i % 2 == 1 {
            ok(&c, &["rm", "-f", id]);
        }
    }
    wait_for("the --rm containers", || ok(&c, &["ps", "-aq"]).is_empty());
    for id in &ids {
        assert_nothing_left(&c, id);
    }
    let left = std::fs::read_dir(c.root.join("containers"))
        .unwrap()
        .count();
    assert_eq!(left, 0);
    assert!(c.tmp_is_empty());
}

#[test]
fn port_ps_and_prune() {
    require_root();
    let c = ctx();
    let id = ok(&c, &["run", "-d", BB, "sleep", "1000"]);
    let id = id.trim();
    assert_eq!(ok(&c, &["port", id]), "");
    let stats = ok(
        &c,
        &["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}"],
    );
    assert!(stats.trim().ends_with(" 1"), "{stats}");
    let top = ok(&c, &["top", id]);
    assert!(top.contains("sleep 1000"), "{top}");
    ok(&c, &["create", BB, "true"]);
    ok(&c, &["run", BB, "true"]);
    let pruned = ok(&c, &["container", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Containers:\n"), "{pruned}");
    assert_eq!(
        pruned.lines().filter(|l| l.len() == 64).count(),
        2,
        "{pruned}"
    );
    assert_eq!(ok(&c, &["ps", "-aq", "--no-trunc"]).trim(), id);
    ok(&c, &["rm", "-f", id]);
    assert_nothing_left(&c, id);
}

#[test]
fn exec_joins_the_running_container() {
    require_root();
    let c = ctx();
    let id = ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "ex",
            "-e",
            "FROM_RUN=1",
            BB,
            "sh",
            "-c",
            "echo made > /made; sleep 1000",
        ],
    );
    let id = id.trim().to_string();
    wait_for("the container's file", || {
        c.kiln(&["exec", "ex", "cat", "/made"]).status.success()
    });
    let so = ok(
        &c,
        &[
            "exec",
            "ex",
            "sh",
            "-c",
            "cat /made; echo $FROM_RUN; hostname; cat /proc/1/comm",
        ],
    );
    // In the container's PID namespace: its PID 1 is the container's process (sh exec'd sleep).
    assert_eq!(so, format!("made\n1\n{}\nsleep\n", &id[..12]));
    let so = ok(
        &c,
        &[
            "exec",
            "-u",
            "kiln",
            "-w",
            "/tmp",
            "-e",
            "X=y",
            "ex",
            "sh",
            "-c",
            "id -u; pwd; echo $X",
        ],
    );
    assert_eq!(so, "1000\n/tmp\ny\n");
    let (code, _, _) = out(&c.kiln(&["exec", "ex", "sh", "-c", "exit 5"]));
    assert_eq!(code, 5);
    let (code, _, err) = out(&c.kiln(&["exec", "ex", "nosuch"]));
    assert_eq!(code, 126, "{err}");
    assert!(
        err.contains(r#"exec: "nosuch": executable file not found in $PATH"#),
        "{err}"
    );
    ok(&c, &["exec", "-d", "ex", "sleep", "999"]);
    wait_for("the detached exec", || {
        ok(&c, &["top", "ex"]).contains("sleep 999")
    });
    ok(&c, &["stop", "-t", "0", "ex"]);
    let (code, _, err) = out(&c.kiln(&["exec", "ex", "true"]));
    assert_eq!(code, 1);
    assert!(err.contains("is not running"), "{err}");
    ok(&c, &["rm", "ex"]);
    assert_nothing_left(&c, &id);
}

#[test]
fn a_containers_image_and_layers_survive_prunes() {
    require_root();
    let c = ctx();
    let id = ok(&c, &["create", BB, "echo", "still here"]);
    let id = id.trim().to_string();
    ok(&c, &["rmi", "-f", BB]);
    ok(&c, &["builder", "prune", "-a", "-f"]);
    ok(&c, &["image", "prune", "-a", "-f"]);
    let snaps = std::fs::read_dir(c.root.join("snapshots-v1"))
        .unwrap()
        .count();
    assert!(snaps > 0, "the container's layer snapshots were collected");
    let (code, so, se) = out(&c.kiln(&["start", "-a", &id]));
    assert_eq!((code, so.as_str()), (0, "still here\n"), "{se}");
    ok(&c, &["rm", &id]);
    ok(&c, &["system", "prune", "-a", "-f"]);
    assert_eq!(
        std::fs::read_dir(c.root.join("snapshots-v1"))
            .unwrap()
            .count(),
        0
    );
}

/// `-p HOST:CTR` publishes a server in the container's private network on the host: data
/// flows both ways, `port`/`ps`/`inspect` show the binding, a taken port is docker's error and
/// exit 125, and stopping the container closes the listener.
#[test]
fn published_ports_reach_the_container_and_close_with_it() {
    require_root();
    require_command("pasta", "passt");
    let c = ctx();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let spec = format!("127.0.0.1:{port}:7000");
    let id = ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "pub",
            "-p",
            &spec,
            BB,
            "sh",
            "-c",
            "while true; do echo hello-from-container | nc -l -p 7000; done",
        ],
    );
    let id = id.trim().to_string();
    let mut got = String::new();
    wait_for("the published port to answer", || {
        use std::io::Read;
        got.clear();
        std::net::TcpStream::connect(("127.0.0.1", port))
            .and_then(|mut s| {
                s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
                s.read_to_string(&mut got)
            })
            .is_ok()
            && got.contains("hello-from-container")
    });
    assert_eq!(
        ok(&c, &["port", "pub"]).trim(),
        format!("7000/tcp -> 127.0.0.1:{port}")
    );
    let ps = ok(&c, &["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->7000/tcp")), "{ps}");
    // The same host port again: docker's message, exit 125.
    let out = c.kiln(&["run", "-d", "-p", &spec, BB, "sleep", "1000"]);
    assert_eq!(
        out.status.code(),
        Some(125),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port is already allocated"), "{err}");
    ok(&c, &["rm", "-f", "pub"]);
    assert_nothing_left(&c, &id);
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "the proxy's listener is closed with the container"
    );
}

/// The super options of the overlay mounted at the root of process `pid`.
fn root_overlay_options(pid: u32) -> String {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/") && l.contains(" - overlay "))
        .unwrap_or_else(|| panic!("no overlay at / of {pid}:\n{info}"));
    line.rsplit(' ').next().unwrap().to_string()
}

/// `volatile` as the kernel shows it (`fsync=volatile` since 6.x, `volatile` before).
fn is_volatile(options: &str) -> bool {
    options
        .split(',')
        .any(|o| o == "volatile" || o == "fsync=volatile")
}

#[test]
fn a_throwaway_containers_root_is_volatile_and_a_kept_ones_is_not() {
    require_root();
    let c = ctx();
    let pid_of = |name: &str| -> u32 {
        ok(&c, &["inspect", "-f", "{{.State.Pid}}", name])
            .trim()
            .parse()
            .unwrap()
    };
    // --rm: its upper goes when it stops, so stopping need not sync the host's file system.
    ok(
        &c,
        &["run", "-d", "--rm", "--name", "gone", BB, "sleep", "30"],
    );
    // Kept: its upper is its state, and must survive a crash.
    ok(&c, &["run", "-d", "--name", "kept", BB, "sleep", "30"]);
    let (gone, kept) = (pid_of("gone"), pid_of("kept"));
    assert!(
        is_volatile(&root_overlay_options(gone)),
        "{}",
        root_overlay_options(gone)
    );
    assert!(
        !is_volatile(&root_overlay_options(kept)),
        "{}",
        root_overlay_options(kept)
    );
    // docker's restart keeps a --rm container, changes and all; the volatile upper mounts
    // again after its clean unmount.
    ok(&c, &["exec", "gone", "sh", "-c", "echo changed > /mark"]);
    assert_eq!(ok(&c, &["restart", "-t", "1", "gone"]).trim(), "gone");
    assert_ne!(pid_of("gone"), gone, "a new process");
    assert_eq!(ok(&c, &["exec", "gone", "cat", "/mark"]), "changed\n");
    assert!(is_volatile(&root_overlay_options(pid_of("gone"))));
    // A plain stop still removes it.
    ok(&c, &["stop", "-t", "1", "gone"]);
    let names = ok(&c, &["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(names.trim(), "kept", "{names}");
    ok(&c, &["rm", "-f", "kept"]);
    assert_eq!(mounts_under(&c.root), Vec::<String>::new());
}

/// Two `restart`s at once: one supervisor runs the container (the other start is refused),
/// never two on one upper; `rm -f` then leaves no process. Found by the attack review (it was
/// two supervisors, and one survived `rm -f` untracked).
#[test]
fn concurrent_restarts_run_one_supervisor_and_rm_leaves_none() {
    require_root();
    let c = ctx();
    for round in 0..3 {
        let id = ok(
            &c,
            &[
                "run",
                "-d",
                "--name",
                "dr",
                "--network",
                "none",
                BB,
                "sleep",
                "1000",
            ],
        );
        let id = id.trim().to_string();
        let restart = || {
            std::process::Command::new(bin())
                .env("KILN_ROOT", &c.root)
                .args(["restart", "-t", "0", "dr"])
                .output()
                .unwrap()
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(restart);
            let b = s.spawn(restart);
            (a.join().unwrap(), b.join().unwrap())
        });
        let supervisors = processes_with(&format!("__container-supervise {id}"));
        assert!(
            supervisors.len() <= 1,
            "round {round}: {} supervisors; {:?} {:?}",
            supervisors.len(),
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr)
        );
        assert!(a.status.success() || b.status.success(), "round {round}");
        ok(&c, &["rm", "-f", "dr"]);
        wait_for("no supervisor", || {
            processes_with(&format!("__container-supervise {id}")).is_empty()
        });
    }
    // A --cidfile that cannot be made leaves no container (docker's CLI makes it first).
    let (code, _, err) = out(&c.kiln(&[
        "run",
        "--rm",
        "--cidfile",
        c.root.join("no/such/dir/cid").to_str().unwrap(),
        BB,
        "true",
    ]));
    assert_eq!(code, 125, "{err}");
    // A --dns-search or --dns-option cannot add lines to resolv.conf.
    for flag in ["--dns-search", "--dns-option"] {
        let (code, _, err) =
            out(&c.kiln(&["run", "--rm", flag, "a.com\nnameserver 6.6.6.6", BB, "true"]));
        assert_eq!(code, 125, "{flag}: {err}");
    }
    assert_eq!(ok(&c, &["ps", "-aq"]), "");
    assert_eq!(mounts_under(&c.root), Vec::<String>::new());
}
