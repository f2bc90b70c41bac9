//! The last docker drop-in gaps of `kiln run` and friends: `--format` templates of
//! `inspect`/`ps` (expected strings are docker 20.10's output for the same container, run on
//! this machine), `ps` columns, and the `run` flags added for docker parity. Needs root.

mod support;

use support::*;

const BB: &str = "localhost/busybox:latest";

fn ctx() -> RunCtx {
    require_root();
    RunCtx(Ctx::new())
}

/// `docker run -d --name uxt --label a=1 --label b=two --network none busybox sh -c
/// 'sleep 300'`, in kiln.
fn uxt(c: &Ctx) {
    ok(
        c,
        &[
            "run",
            "-d",
            "--name",
            "uxt",
            "--label",
            "a=1",
            "--label",
            "b=two",
            "--network",
            "none",
            BB,
            "sh",
            "-c",
            "sleep 300",
        ],
    );
}

#[test]
fn inspect_templates_print_what_docker_prints() {
    let c = ctx();
    uxt(&c);
    let f = |t: &str| ok(&c, &["inspect", "--format", t, "uxt"]);
    // docker 20.10, same template and container.
    let cases = [
        ("{{index .Config.Labels \"zz\"}}", ""),
        ("{{.Config.Labels.zz}}", "<no value>"),
        (
            "{{with .Config.Labels.a}}got {{.}}{{else}}none{{end}}",
            "got 1",
        ),
        (
            "{{with .Config.Labels.zz}}got {{.}}{{else}}none{{end}}",
            "none",
        ),
        (
            "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
            "a=1;b=two;",
        ),
        ("{{range .Mounts}}m{{else}}nomounts{{end}}", "nomounts"),
        (
            "{{$x := .Name}}{{$x}} {{printf \"%s-%d\" .Name 5}}",
            "/uxt /uxt-5",
        ),
        (
            "{{len .Config.Cmd}} {{index .Config.Cmd 2}} {{slice .Config.Cmd 1 2}} {{slice .Name 1}}",
            "3 sleep 300 [-c] uxt",
        ),
        (
            "{{eq .State.Status \"running\"}} {{ne 1 2}} {{lt 1 2}} {{ge 3 3}} {{and 1 0}} {{or 0 \"x\"}} {{not \"\"}}",
            "true true true true 0 x true",
        ),
        (
            "{{json .Config.Labels}} {{join .Config.Cmd \"+\"}} {{split .Name \"x\"}} {{title \"hello world\"}} {{upper \"a\"}} {{pad \"x\" 1 2}}| {{truncate \"abcdef\" 3}}",
            "{\"a\":\"1\",\"b\":\"two\"} sh+-c+sleep 300 [/u t] Hello World A  x  | abc",
        ),
        ("{{/* comment */}}a {{- \" b \" -}} c", "a b c"),
        ("{{.State.Pid | printf \"%T\"}}", "int"),
        (
            "{{if eq .Name \"a\"}}A{{else if eq .Name \"/uxt\"}}U{{else}}Z{{end}}",
            "U",
        ),
        (
            "{{.Config.Entrypoint}} {{json .Config.Entrypoint}}",
            "[] null",
        ),
        ("{{.HostConfig.RestartPolicy}}", "{no 0}"),
        ("{{.Config.Volumes}} {{.HostConfig.Binds}}", "map[] []"),
    ];
    for (t, want) in cases {
        assert_eq!(f(t), format!("{want}\n"), "template {t}");
    }
    // Errors: docker's words and exit codes (1 when it fails to run, 64 when it does not parse).
    let (code, so, se) = out(&c.kiln(&["inspect", "--format", "{{.State.Health.Status}}", "uxt"]));
    assert_eq!(code, 1, "{so}{se}");
    assert_eq!(
        se.trim(),
        "template parsing error: template: :1:8: executing \"\" at <.State.Health.Status>: map has no entry for key \"Health\""
    );
    let (code, _, se) = out(&c.kiln(&["container", "inspect", "-f", "{{nosuch .Name}}", "uxt"]));
    assert_eq!(code, 64);
    assert_eq!(
        se.trim(),
        "template parsing error: template: :1: function \"nosuch\" not defined"
    );
}

#[test]
fn ps_columns_and_placeholders_as_docker() {
    let c = ctx();
    uxt(&c);
    let ps = |f: &str| ok(&c, &["ps", "--filter", "name=uxt", "--format", f]);
    assert_eq!(
        ps("{{.Label \"zz\"}}|{{.Label \"a\"}}|{{.Labels}}"),
        "|1|a=1,b=two\n"
    );
    assert_eq!(ps("{{.Command}}"), "\"sh -c 'sleep 300'\"\n");
    assert_eq!(
        ok(&c, &["ps", "--no-trunc", "--format", "{{.Command}}"]),
        "\"sh -c 'sleep 300'\"\n"
    );
    assert_eq!(
        ps("{{.Networks}}|{{.Mounts}}|{{.LocalVolumes}}|{{.Ports}}|{{.State}}|{{.Size}}"),
        "none||0||running|0B (virtual 1.99MB)\n"
    );
    // The default network is docker's "bridge" in NETWORKS (its HostConfig.NetworkMode "default").
    ok(&c, &["run", "-d", "--name", "br", BB, "sleep", "100"]);
    assert_eq!(
        ok(
            &c,
            &["ps", "--filter", "name=br", "--format", "{{.Networks}}"]
        ),
        "bridge\n"
    );
    assert_eq!(
        ok(&c, &["inspect", "-f", "{{.HostConfig.NetworkMode}}", "br"]),
        "default\n"
    );
    ok(&c, &["rm", "-f", "br"]);
    // `2006-01-02 15:04:05 -0700 MST` and "... ago".
    let created = ps("{{.CreatedAt}}");
    let parts: Vec<&str> = created.trim().split(' ').collect();
    assert_eq!(parts.len(), 4, "{created:?}");
    assert_eq!(parts[0].len(), 10, "{created:?}");
    assert_eq!(parts[1].len(), 8, "{created:?}");
    assert!(
        parts[2].starts_with(['+', '-']) && parts[2].len() == 5,
        "{created:?}"
    );
    assert!(ps("{{.RunningFor}}").trim().ends_with(" ago"));
    assert!(ps("{{.Status}}").starts_with("Up "));
    // Headers, docker's `Label` header included.
    let table = ps(
        "table {{.CreatedAt}}\\t{{.RunningFor}}\\t{{.LocalVolumes}}\\t{{.Label \"com.x.foo-bar_x\"}}\\t{{.Names}}",
    );
    assert!(
        table.starts_with("CREATED AT                      CREATED")
            && table
                .lines()
                .next()
                .unwrap()
                .contains("LOCAL VOLUMES   foo bar x   NAMES"),
        "{table}"
    );
    // The default table's CREATED is RunningFor.
    let default = ok(&c, &["ps"]);
    assert!(
        default.lines().nth(1).unwrap().contains(" ago "),
        "{default}"
    );
    // `json .` holds docker's keys (no methods).
    let j: serde_json::Value = serde_json::from_str(&ps("{{json .}}")).unwrap();
    let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "Command",
            "CreatedAt",
            "ID",
            "Image",
            "Labels",
            "LocalVolumes",
            "Mounts",
            "Names",
            "Networks",
            "Ports",
            "RunningFor",
            "Size",
            "State",
            "Status"
        ]
    );
    let (code, _, se) = out(&c.kiln(&["ps", "--format", "{{.Nope}}"]));
    assert_eq!(code, 1);
    assert_eq!(
        se.trim(),
        "failed to execute template: template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope in type *formatter.ContainerContext"
    );
    let (code, _, se) = out(&c.kiln(&["ps", "--format", "{{.Label}}"]));
    assert_eq!(code, 1);
    assert_eq!(
        se.trim(),
        "failed to execute template: template: :1:2: executing \"\" at <.Label>: wrong number of args for Label: want 1 got 0"
    );
}

/// A file of container `id`'s cgroup: `v1` under the controller's hierarchy, else the v2 one.
fn cgroup_file(id: &str, v1: (&str, &str), v2: &str) -> String {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let p = if root.join("cgroup.controllers").exists() {
        root.join("kiln").join(id).join(v2)
    } else {
        root.join(v1.0).join("kiln").join(id).join(v1.1)
    };
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn memory_swap_reservation_cpu_shares_and_cpuset() {
    let c = ctx();
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    // docker's daemon refusals, exit 125.
    for (flags, msg) in [
        (
            &["--memory-swap", "20m"][..],
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ),
        (
            &["-m", "20m", "--memory-swap", "10m"][..],
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
        (
            &["-m", "20m", "--memory-reservation", "30m"][..],
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ),
        (
            &["--memory-reservation", "1m"][..],
            "Minimum memory reservation allowed is 6MB",
        ),
        (
            &["--cpuset-cpus", "x"][..],
            "Invalid value x for cpuset cpus: invalid format: x",
        ),
        (
            &["--cpuset-cpus", "4096"][..],
            "Requested CPUs are not available - requested 4096, available: ",
        ),
    ] {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[BB, "true"]);
        let (code, _, se) = out(&c.kiln(&args));
        assert_eq!(code, 125, "{flags:?}: {se}");
        assert!(se.contains(msg), "{flags:?}: {se}");
    }
    assert_eq!(
        ok(&c, &["ps", "-aq"]),
        "",
        "a refused run leaves no container"
    );

    let id = ok(
        &c,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "-m",
            "20m",
            "--memory-reservation",
            "10m",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0",
            BB,
            "sleep",
            "100",
        ],
    );
    let id = id.trim();
    // `--memory` alone: swap as large as the memory (docker: MemorySwap = 2 x Memory).
    assert_eq!(
        ok(
            &c,
            &[
                "inspect",
                "-f",
                "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.MemoryReservation}} {{.HostConfig.CpuShares}} {{.HostConfig.CpusetCpus}}",
                id
            ]
        ),
        "20971520 41943040 10485760 512 0\n"
    );
    let swap = cgroup_file(
        id,
        ("memory", "memory.memsw.limit_in_bytes"),
        "memory.swap.max",
    );
    assert_eq!(swap, if v2 { "20971520" } else { "41943040" });
    assert_eq!(
        cgroup_file(id, ("memory", "memory.soft_limit_in_bytes"), "memory.low"),
        "10485760"
    );
    assert_eq!(
        cgroup_file(id, ("cpu", "cpu.shares"), "cpu.weight"),
        if v2 { "20" } else { "512" }
    );
    assert_eq!(
        cgroup_file(id, ("cpuset", "cpuset.cpus"), "cpuset.cpus"),
        "0"
    );
    let allowed = ok(
        &c,
        &["exec", id, "grep", "Cpus_allowed_list", "/proc/self/status"],
    );
    assert_eq!(allowed.split_whitespace().nth(1), Some("0"), "{allowed}");
    ok(&c, &["rm", "-f", id]);

    // An explicit swap limit, and -1 (unlimited).
    let id = ok(
        &c,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "-m",
            "20m",
            "--memory-swap",
            "30m",
            BB,
            "sleep",
            "100",
        ],
    );
    let swap = cgroup_file(
        id.trim(),
        ("memory", "memory.memsw.limit_in_bytes"),
        "memory.swap.max",
    );
    assert_eq!(swap, if v2 { "10485760" } else { "31457280" });
    ok(&c, &["rm", "-f", id.trim()]);
    let id = ok(
        &c,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "-m",
            "20m",
            "--memory-swap",
            "-1",
            BB,
            "sleep",
            "100",
        ],
    );
    let swap = cgroup_file(
        id.trim(),
        ("memory", "memory.memsw.limit_in_bytes"),
        "memory.swap.max",
    );
    assert!(
        swap == "max" || swap.parse::<u64>().unwrap() > 1 << 60,
        "{swap}"
    );
}

#[test]
fn logs_since_and_until_take_every_form_docker_takes() {
    let c = ctx();
    let id = ok(
        &c,
        &[
            "run",
            "-d",
            "--network",
            "none",
            BB,
            "sh",
            "-c",
            "echo one; echo two",
        ],
    );
    let id = id.trim();
    ok(&c, &["wait", id]);
    let logs = |flag: &str, v: &str| out(&c.kiln(&["logs", flag, v, id]));
    // Everything before the container: all lines; everything after: none.
    for v in [
        "2000-01-02",
        "2000-01-02T15",
        "2000-01-02T15:04",
        "2000-01-02T15:04:05",
        "2000-01-02T15:04:05.123",
        "2000-01-02T15:04:05Z",
        "2000-01-02T15:04:05.123456789Z",
        "2000-01-02T15:04:05+01:00",
        "2000-01-02T15:04+01:00",
        "2000-01-02Z",
        "946684800",
        "946684800.5",
        "10m",
        "1h30m",
        "0",
    ] {
        assert_eq!(
            logs("--since", v),
            (0, "one\ntwo\n".into(), String::new()),
            "--since {v}"
        );
        // `--until 0` is no bound in docker's daemon (checked: /usr/bin/docker 20.10
        // prints every line).
        let want = if v == "0" { "one\ntwo\n" } else { "" };
        assert_eq!(logs("--until", v).1, want, "--until {v}");
    }
    // A negative duration is a time after now.
    assert_eq!(logs("--since", "-1h").1, "");
    assert_eq!(logs("--until", "-1h").1, "one\ntwo\n");
    // docker's messages, exit 1.
    assert_eq!(
        logs("--since", "bad"),
        (
            1,
            String::new(),
            "invalid value for \"since\": failed to parse value as time or duration: \"bad\"\n"
                .into()
        )
    );
    assert_eq!(
        logs("--until", "2026-13-07"),
        (
            1,
            String::new(),
            "invalid value for \"until\": parsing time \"2026-13-07\": month out of range\n".into()
        )
    );
}

#[test]
fn dns_ulimit_shm_group_add_and_cidfile() {
    let c = ctx();
    let run = |flags: &[&str], cmd: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(flags);
        args.push(BB);
        args.extend_from_slice(cmd);
        out(&c.kiln(&args))
    };
    // docker 20.10 writes exactly this.
    let (code, so, se) = run(
        &[
            "--dns",
            "1.1.1.1",
            "--dns",
            "9.9.9.9",
            "--dns-search",
            "example.com",
            "--dns-option",
            "ndots:2",
        ],
        &["cat", "/etc/resolv.conf"],
    );
    assert_eq!(code, 0, "{se}");
    assert_eq!(
        so,
        "search example.com\nnameserver 1.1.1.1\nnameserver 9.9.9.9\noptions ndots:2\n"
    );
    let (code, so, se) = run(
        &["--ulimit", "nofile=100:200", "--ulimit", "nproc=50"],
        &["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u"],
    );
    assert_eq!((code, so.as_str()), (0, "100\n200\n50\n"), "{se}");
    let (code, so, se) = run(&["--shm-size", "10m"], &["df", "-k", "/dev/shm"]);
    assert_eq!(code, 0, "{se}");
    assert_eq!(
        so.lines().nth(1).unwrap().split_whitespace().nth(1),
        Some("10240"),
        "{so}"
    );
    let (code, so, se) = run(&["--group-add", "10", "--group-add", "20"], &["id", "-G"]);
    assert_eq!(code, 0, "{se}");
    let groups: Vec<&str> = so.split_whitespace().collect();
    assert!(groups.contains(&"10") && groups.contains(&"20"), "{so}");

    // Refusals with docker's words, exit 125, no container left.
    for (flags, msg) in [
        (
            &["--ulimit", "bogus=1"][..],
            "invalid argument \"bogus=1\" for \"--ulimit\" flag: invalid ulimit type: bogus",
        ),
        (
            &["--ulimit", "nofile=200:100"][..],
            "ulimit soft limit must be less than or equal to hard limit: 200 > 100",
        ),
        (
            &["--shm-size", "x"][..],
            "invalid argument \"x\" for \"--shm-size\" flag: invalid size: 'x'",
        ),
        (
            &["--dns", "x"][..],
            "invalid argument \"x\" for \"--dns\" flag: x is not an ip address",
        ),
        (
            &["--group-add", "nosuch"][..],
            "Unable to find group nosuch: no matching entries in group file",
        ),
    ] {
        let (code, _, se) = run(flags, &["true"]);
        assert_eq!(code, 125, "{flags:?}: {se}");
        assert!(se.contains(msg), "{flags:?}: {se}");
    }
    assert_eq!(ok(&c, &["ps", "-aq"]), "");

    // --cidfile: the full ID, written once; a file that exists is refused.
    let cid = c.tmp.path().join("cid");
    let cid_s = cid.to_str().unwrap();
    let id = ok(
        &c,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--cidfile",
            cid_s,
            BB,
            "sleep",
            "100",
        ],
    );
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id.trim());
    let (code, _, se) = run(&["--cidfile", cid_s], &["true"]);
    assert_eq!(code, 125);
    assert!(
        se.contains(&format!(
            "container ID file found, make sure the other container isn't running or delete {cid_s}"
        )),
        "{se}"
    );
    assert_eq!(
        std::fs::read_to_string(&cid).unwrap(),
        id.trim(),
        "the file is left as it was"
    );
}

/// `kiln ARGS` on a new terminal of `rows`x`cols` driven by `steps` (tests/data/ptyrun.py):
/// its exit code and the terminal's transcript.
fn on_pty(c: &Ctx, steps: &str, args: &[&str]) -> (i32, String) {
    let python = require_command("python3", "python3");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ptyrun.py");
    let o = std::process::Command::new(python)
        .arg(script)
        .args(["24", "80", steps, "--", bin()])
        .args(args)
        .env("KILN_ROOT", &c.root)
        .output()
        .unwrap();
    let code = o.status.code().unwrap_or(-1);
    let transcript = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        code != 98 && code != 99,
        "pty script failed: {}\n{transcript}",
        String::from_utf8_lossy(&o.stderr)
    );
    (code, transcript)
}

#[test]
fn attach_detach_keys_end_as_dockers_and_top_errors_name_ps() {
    let c = ctx();
    ok(
        &c,
        &["run", "-dit", "--name", "a", "--network", "none", BB, "sh"],
    );
    // docker 20.10: `attach` detaching prints "read escape sequence" and exits 1.
    let (code, t) = on_pty(
        &c,
        r##"[["send","echo $((6*7))\r"],["expect","42"],["send","\u0010\u0011"]]"##,
        &["attach", "a"],
    );
    assert_eq!(code, 1, "{t}");
    assert!(t.ends_with("read escape sequence\r\n"), "{t:?}");
    assert!(ok(&c, &["ps", "--format", "{{.Status}}"]).starts_with("Up "));
    // `run -it` detaching exits 0, silently.
    let (code, t) = on_pty(
        &c,
        r##"[["send","echo $((6*7))\r"],["expect","42"],["send","\u0010\u0011"]]"##,
        &["run", "-it", "--network", "none", BB, "sh"],
    );
    assert_eq!(code, 0, "{t}");
    assert!(!t.contains("read escape sequence"), "{t}");

    // top: ps's failure, as moby words it (ps exits 1 with nothing on stderr here).
    let (code, _, se) = out(&c.kiln(&["top", "a", "-C", "nosuch-program"]));
    assert_eq!(code, 1);
    assert_eq!(se.trim(), "Error response from daemon: ps: exit status 1");
    let (code, _, se) = out(&c.kiln(&["top", "a", "--no-such-ps-option"]));
    assert_eq!(code, 1);
    assert!(
        se.starts_with("Error response from daemon: ps: ")
            && se.trim().len() > "Error response from daemon: ps: ".len(),
        "{se}"
    );
}

#[test]
fn device_and_privileged_give_host_devices() {
    let c = ctx();
    let run = |flags: &[&str], script: &str| {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[BB, "sh", "-c", script]);
        out(&c.kiln(&args))
    };
    kiln_test::prereq::require_file("/dev/loop0", "a loop device (modprobe loop)");
    // docker 20.10: the node, readable only with `r`.
    let (code, so, se) = run(
        &["--device", "/dev/loop0:/dev/myloop:r"],
        "ls -l /dev/myloop; head -c1 /dev/myloop >/dev/null && echo readok; echo x > /dev/myloop || echo writefail",
    );
    assert_eq!(code, 0, "{se}");
    assert!(
        so.starts_with("brw-------    1 root     root        7,   0 "),
        "{so}"
    );
    assert!(so.ends_with("readok\nwritefail\n"), "{so}");
    assert!(se.contains("Operation not permitted"), "{se}");
    // Without --device or --privileged there is no such node.
    let (code, _, _) = run(&[], "test -e /dev/loop0");
    assert_eq!(code, 1);
    // --privileged: the host's device nodes, usable.
    let (code, so, se) = run(
        &["--privileged"],
        "ls -l /dev/loop0 && head -c0 /dev/loop0 && echo opened",
    );
    assert_eq!(code, 0, "{se}");
    assert!(so.ends_with("opened\n"), "{so}");
    for (flags, msg) in [
        (
            &["--device", "/dev/nosuch"][..],
            "error gathering device information while adding custom device \"/dev/nosuch\": no such file or directory",
        ),
        (
            &["--device", "/dev/null:/dev/mynull:rwx"][..],
            "bad mode specified: rwx",
        ),
    ] {
        let (code, _, se) = run(flags, "true");
        assert_eq!(code, 125, "{se}");
        assert!(se.contains(msg), "{se}");
    }
}

#[test]
fn label_file_and_refusals_that_name_the_flag() {
    let c = ctx();
    let lf = c.tmp.path().join("labels");
    // A line without `=` is dropped and a value keeps its trailing spaces, as docker's
    // ReadKVStrings (the new-user review compared docker's {"a":"2","c":"3 ","d":"x y"}).
    std::fs::write(&lf, "a=1\n# comment\n\nb=2\nnovalue\n  c=3 \nd=x y\n").unwrap();
    let id = ok(
        &c,
        &[
            "create",
            "--label-file",
            lf.to_str().unwrap(),
            "-l",
            "b=3",
            BB,
            "true",
        ],
    );
    // docker 20.10: the file's labels, then -l over them.
    assert_eq!(
        ok(&c, &["inspect", "-f", "{{json .Config.Labels}}", id.trim()]),
        "{\"a\":\"1\",\"b\":\"3\",\"c\":\"3 \",\"d\":\"x y\"}\n"
    );
    // An endless file is an error, not all of memory.
    let (code, _, se) = out(&c.kiln(&["create", "--label-file", "/dev/zero", BB, "true"]));
    assert_eq!(code, 125, "{se}");
    ok(&c, &["rm", id.trim()]);
    let (code, _, se) = out(&c.kiln(&[
        "run",
        "--rm",
        "--label-file",
        "/nonexistent-labels",
        BB,
        "true",
    ]));
    assert_eq!(code, 125);
    assert!(
        se.contains("open /nonexistent-labels: no such file or directory"),
        "{se}"
    );
    // Flags kiln cannot honour are refused by name, exit 125, nothing created.
    for (flags, named) in [
        (&["--sysctl", "net.ipv4.ip_forward=1"][..], "--sysctl"),
        (&["--ipc", "host"], "--ipc host"),
        (&["--pid", "host"], "--pid host"),
        (&["--uts", "host"], "--uts host"),
        (&["--userns", "host"], "--userns host"),
        (&["--log-driver", "none"], "--log-driver none"),
        (&["--log-opt", "max-size=1m"], "--log-opt"),
        (&["--oom-kill-disable"], "--oom-kill-disable"),
    ] {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[BB, "true"]);
        let (code, _, se) = out(&c.kiln(&args));
        assert_eq!(code, 125, "{flags:?}: {se}");
        assert!(
            se.contains(&format!("{named} is not supported by kiln")),
            "{flags:?}: {se}"
        );
    }
    // What kiln does anyway passes.
    ok(
        &c,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--ipc",
            "private",
            "--log-driver",
            "json-file",
            BB,
            "true",
        ],
    );
    assert_eq!(ok(&c, &["ps", "-aq"]), "");
}

/// What the new-user review found after the first pass, each checked against docker 20.10:
/// the primary group among the supplementary ones, an exec with the container's ulimits,
/// zero/empty values as "not given", inspect's HostConfig for the new flags, and logs bounds.
#[test]
fn second_pass_groups_exec_ulimits_zero_values_inspect_and_log_bounds() {
    let c = ctx();
    let id = |args: &[&str]| {
        let mut v = vec!["run", "--rm", "--network", "none"];
        v.extend_from_slice(args);
        v.extend_from_slice(&[BB, "id"]);
        ok(&c, &v)
    };
    // docker: groups=0(root); --group-add 10 twice: groups=0(root),10.
    assert_eq!(id(&[]), "uid=0(root) gid=0(root) groups=0(root)\n");
    assert_eq!(
        id(&["--group-add", "10", "--group-add", "10"]),
        "uid=0(root) gid=0(root) groups=0(root),10\n"
    );
    // 0 and "" are docker's "not given": accepted, defaults applied.
    let cid = c.root.join("cid");
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "sp",
            "--network",
            "none",
            "--ulimit",
            "nofile=333:444",
            "--memory",
            "0",
            "--memory-swap",
            "0",
            "--shm-size",
            "0",
            "--cpuset-cpus",
            "",
            "--cidfile",
            cid.to_str().unwrap(),
            "--dns",
            "1.1.1.1",
            BB,
            "sh",
            "-c",
            "echo line; sleep 300",
        ],
    );
    // An exec gets the container's ulimits, as runc's exec does.
    assert_eq!(
        ok(&c, &["exec", "sp", "sh", "-c", "ulimit -n; ulimit -Hn"]),
        "333\n444\n"
    );
    let hc = ok(
        &c,
        &[
            "inspect",
            "-f",
            "{{.HostConfig.ShmSize}}|{{.HostConfig.ContainerIDFile}}|{{.HostConfig.IpcMode}}|{{.HostConfig.LogConfig.Type}}|{{len .HostConfig.Dns}}|{{len .HostConfig.DnsSearch}}|{{len .HostConfig.Devices}}|{{(index .HostConfig.Ulimits 0).Soft}}",
            "sp",
        ],
    );
    assert_eq!(
        hc.trim(),
        format!("67108864|{}|private|json-file|1|0|0|333", cid.display())
    );
    // Empty --since and --until 0 are no bound (docker's daemon).
    let logs = |args: &[&str]| {
        let mut v = vec!["logs"];
        v.extend_from_slice(args);
        v.push("sp");
        let (code, so, se) = out(&c.kiln(&v));
        (code, so, se)
    };
    assert_eq!(logs(&["--since", ""]), (0, "line\n".into(), String::new()));
    assert_eq!(logs(&["--until", "0"]), (0, "line\n".into(), String::new()));
    ok(&c, &["rm", "-f", "sp"]);
}
