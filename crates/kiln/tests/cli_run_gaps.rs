//! End-to-end tests of docker behaviours `kiln run` gained late: `stats`' NET I/O and BLOCK
//! I/O columns, volumes in `system df` / `system prune --volumes`, `commit -c`, `cp -L`.
//! Needs root. (`exec --detach-keys` is in cli_run_tty.rs, which has the pty driver.)

mod support;
use std::path::Path;

use support::*;

const BB: &str = "localhost/busybox:latest";

fn ctx() -> RunCtx {
    require_root();
    RunCtx(Ctx::new())
}

/// Bytes of docker's decimal human size (`4.19MB`, `648B`).
fn bytes(s: &str) -> f64 {
    let i = s
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or_else(|| panic!("no unit in {s:?}"));
    let (n, unit) = s.split_at(i);
    let mult = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => panic!("unit of {s:?}"),
    };
    n.parse::<f64>().unwrap() * mult
}

/// `A / B C / D` (NET I/O, then BLOCK I/O) as four byte counts.
fn io_columns(line: &str) -> [f64; 4] {
    let f: Vec<&str> = line.split_whitespace().filter(|w| *w != "/").collect();
    assert_eq!(f.len(), 4, "{line:?}");
    [bytes(f[0]), bytes(f[1]), bytes(f[2]), bytes(f[3])]
}

#[test]
fn stats_shows_network_and_block_io() {
    let c = ctx();
    require_command("pasta", "passt");
    // eth0 traffic both ways: ARP requests to pasta's gateway and its replies; then 4 MiB
    // written and synced.
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "io",
            BB,
            "sh",
            "-c",
            "arping -c 3 -w 3 -I eth0 $(ip route | awk '/default/{print $3}'); \
             dd if=/dev/zero of=/big bs=1M count=4 conv=fsync; touch /done; sleep 100",
        ],
    );
    let t0 = std::time::Instant::now();
    while ok(&c, &["exec", "io", "ls", "/"])
        .lines()
        .all(|l| l != "done")
    {
        assert!(t0.elapsed().as_secs() < 20, "the container never wrote");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let line = ok(
        &c,
        &[
            "stats",
            "--no-stream",
            "--format",
            "{{.NetIO}} {{.BlockIO}}",
            "io",
        ],
    );
    let [rx, tx, _read, written] = io_columns(line.trim());
    assert!(rx > 0.0 && tx > 0.0, "eth0 counted: {line}");
    assert!(
        written >= 4.0 * 1024.0 * 1024.0 * 0.99,
        "block write: {line}"
    );
    // The host's network is not the container's: docker's 0B / 0B; `none` has lo only.
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "hostnet",
            "--network",
            "host",
            BB,
            "sleep",
            "100",
        ],
    );
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "nonet",
            "--network",
            "none",
            BB,
            "sleep",
            "100",
        ],
    );
    for name in ["hostnet", "nonet"] {
        assert_eq!(
            ok(
                &c,
                &["stats", "--no-stream", "--format", "{{.NetIO}}", name]
            )
            .trim(),
            "0B / 0B",
            "{name}"
        );
    }
    // A stopped container reads zeros, as docker's `stats -a`.
    ok(&c, &["run", "--name", "gone", BB, "true"]);
    assert_eq!(
        ok(
            &c,
            &[
                "stats",
                "-a",
                "--no-stream",
                "--format",
                "{{.MemUsage}}|{{.NetIO}}|{{.BlockIO}}",
                "gone"
            ]
        )
        .trim(),
        "0B / 0B|0B / 0B|0B / 0B"
    );
    // The table has the columns, none of them "--".
    let table = ok(&c, &["stats", "--no-stream", "io"]);
    assert!(table.starts_with("CONTAINER ID   NAME"), "{table}");
    assert!(
        table.contains("NET I/O") && table.contains("BLOCK I/O"),
        "{table}"
    );
    assert!(!table.contains("--"), "{table}");
}

/// `system df`'s row of `kind`, as `|`-separated fields.
fn df_row(c: &Ctx, kind: &str) -> String {
    ok(
        c,
        &[
            "system",
            "df",
            "--format",
            "{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Size}}|{{.Reclaimable}}",
        ],
    )
    .lines()
    .find(|l| l.starts_with(kind))
    .unwrap_or_else(|| panic!("no {kind} row"))
    .to_string()
}

#[test]
fn system_df_and_prune_count_volumes() {
    let c = ctx();
    assert_eq!(df_row(&c, "Local Volumes"), "Local Volumes|0|0|0B|0B");
    // v1: 50 kB, used by no container; v2: 100 kB, used by a stopped one.
    ok(
        &c,
        &[
            "run",
            "--rm",
            "-v",
            "v1:/d",
            BB,
            "sh",
            "-c",
            "head -c 50000 /dev/zero > /d/f",
        ],
    );
    ok(
        &c,
        &[
            "run",
            "--name",
            "user",
            "-v",
            "v2:/d",
            BB,
            "sh",
            "-c",
            "head -c 100000 /dev/zero > /d/f",
        ],
    );
    assert_eq!(
        df_row(&c, "Local Volumes"),
        "Local Volumes|2|1|150kB|50kB (33%)"
    );
    let v = ok(&c, &["system", "df", "-v"]);
    let section = v
        .split("Local Volumes space usage:\n\n")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .unwrap_or_else(|| panic!("{v}"));
    let rows: Vec<Vec<&str>> = section
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["VOLUME", "NAME", "LINKS", "SIZE"],
            vec!["v1", "0", "50kB"],
            vec!["v2", "1", "100kB"],
        ],
        "{v}"
    );
    // The container's LOCAL VOLUMES column counts its volume.
    assert!(
        v.lines()
            .any(|l| l.ends_with(" user") && l.split_whitespace().nth(2) == Some("1")),
        "{v}"
    );
    // Without --volumes: the list says nothing of volumes, and they stay.
    let o = c.kiln(&["system", "prune", "-f"]);
    let (code, so, se) = out(&o);
    assert_eq!(code, 0, "{se}");
    assert!(so.starts_with("Deleted Containers:\n"), "{so}");
    assert!(!so.contains("Deleted Volumes"), "{so}");
    assert_eq!(ok(&c, &["volume", "ls", "-q"]), "v1\nv2\n");
    // The prompt lists volumes after containers, as docker's does; "n" keeps everything.
    let mut child = std::process::Command::new(bin())
        .env("KILN_ROOT", &c.root)
        .args(["system", "prune", "--volumes"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"n\n").unwrap();
    let prompt = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    assert!(
        prompt.starts_with(
            "WARNING! This will remove:\n  - all stopped containers\n  - all volumes not used by at least one container\n  - all dangling images\n"
        ),
        "{prompt}"
    );
    assert!(
        prompt.ends_with("Are you sure you want to continue? [y/N] "),
        "{prompt}"
    );
    assert_eq!(ok(&c, &["volume", "ls", "-q"]), "v1\nv2\n");
    // A volume a container uses stays; the unused ones go.
    ok(
        &c,
        &[
            "run", "-d", "--name", "keeper", "-v", "v3:/d", BB, "sleep", "100",
        ],
    );
    let so = ok(&c, &["system", "prune", "-f", "--volumes"]);
    assert!(so.starts_with("Deleted Volumes:\nv1\nv2\n\n"), "{so}");
    assert!(so.ends_with("Total reclaimed space: 150kB\n"), "{so}");
    assert_eq!(ok(&c, &["volume", "ls", "-q"]), "v3\n");
    assert!(!c.root.join("volumes/v1").exists());
    assert_eq!(df_row(&c, "Local Volumes"), "Local Volumes|1|1|0B|0B");
}

#[test]
fn commit_applies_changes_and_refuses_what_docker_refuses() {
    let c = ctx();
    ok(
        &c,
        &["run", "--name", "cc", BB, "sh", "-c", "echo base > /base"],
    );
    let id = ok(
        &c,
        &[
            "commit",
            "-c",
            "ENV GREETING=hi",
            "--change",
            "ENV BOTH=$GREETING-there",
            "-c",
            "WORKDIR /srv",
            "-c",
            "CMD echo $BOTH from $(pwd) $(cat /base)",
            "-c",
            "EXPOSE 8080 53/udp",
            "-c",
            "LABEL team=kiln",
            "-c",
            "USER 65534",
            "-c",
            "VOLUME /data",
            "-c",
            "ONBUILD RUN echo child",
            "-m",
            "with changes",
            "cc",
            "changed:1",
        ],
    );
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(
        ok(&c, &["run", "--rm", "changed:1"]),
        "hi-there from /srv base\n"
    );
    assert_eq!(
        ok(
            &c,
            &[
                "inspect",
                "-f",
                "{{.Config.User}} {{json .Config.ExposedPorts}} {{.Config.Labels.team}} {{json .Config.Volumes}} {{json .Config.OnBuild}} {{.Comment}}",
                "changed:1",
            ]
        )
        .trim(),
        r#"65534 {"53/udp":{},"8080/tcp":{}} kiln {"/data":{}} ["RUN echo child"] with changes"#
    );
    // ENTRYPOINT without a CMD before it resets the Cmd, as docker's builder does.
    ok(
        &c,
        &[
            "commit",
            "-c",
            "ENTRYPOINT [\"echo\", \"ep\"]",
            "cc",
            "ep:1",
        ],
    );
    assert_eq!(ok(&c, &["run", "--rm", "ep:1"]), "ep\n");
    let images = ok(&c, &["images", "-q"]);
    for (change, msg) in [
        ("RUN touch /x", "run is not a valid change command"),
        ("FROM busybox", "from is not a valid change command"),
        ("STOPSIGNAL 9", "stopsignal is not a valid change command"),
        ("nonsense here", "nonsense is not a valid change command"),
    ] {
        let (code, so, se) = out(&c.kiln(&["commit", "-c", change, "cc", "bad:1"]));
        assert_eq!(code, 1, "{change}: {so}{se}");
        assert_eq!(se, format!("Error response from daemon: {msg}\n"));
    }
    let (code, _, se) = out(&c.kiln(&["commit", "-c", "ENV", "cc", "bad:1"]));
    assert_eq!(code, 1);
    assert!(se.starts_with("Error response from daemon: "), "{se}");
    // Nothing was made by the refused commits.
    assert_eq!(ok(&c, &["images", "-q"]), images);
}

#[test]
fn cp_follow_link_copies_what_the_link_names_under_its_name() {
    let c = ctx();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox\nRUN mkdir /real && echo data > /real/f && ln -s /real/f /lnk \
         && ln -s real /dirlnk && ln -s ../../../real/f /up && ln -s /lnk /chain\n",
    );
    c.build_ok(&["-t", "links"]);
    ok(&c, &["run", "-d", "--name", "l", "links", "sleep", "100"]);
    let o = c.tmp.path().join("out");
    std::fs::create_dir_all(&o).unwrap();
    let p = |n: &str| o.join(n).to_str().unwrap().to_string();
    // Without -L a link stays a link.
    ok(&c, &["cp", "l:/lnk", &p("")]);
    assert!(
        o.join("lnk")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    std::fs::remove_file(o.join("lnk")).unwrap();
    // -L: the file itself, named as the link (into a directory, or as DEST).
    ok(&c, &["cp", "-L", "l:/lnk", &p("")]);
    let m = o.join("lnk").symlink_metadata().unwrap();
    assert!(m.file_type().is_file(), "{m:?}");
    assert_eq!(std::fs::read_to_string(o.join("lnk")).unwrap(), "data\n");
    ok(&c, &["cp", "--follow-link", "l:/chain", &p("renamed")]);
    assert_eq!(
        std::fs::read_to_string(o.join("renamed")).unwrap(),
        "data\n"
    );
    // A link to a directory: the directory.
    ok(&c, &["cp", "-L", "l:/dirlnk", &p("d")]);
    assert_eq!(std::fs::read_to_string(o.join("d/f")).unwrap(), "data\n");
    // `..` past the root stays in the container's root.
    ok(&c, &["cp", "-L", "l:/up", &p("up")]);
    assert_eq!(std::fs::read_to_string(o.join("up")).unwrap(), "data\n");
    // As a tar stream: one regular file named as the link.
    let t = c.kiln(&["cp", "-L", "l:/lnk", "-"]);
    assert!(t.status.success());
    let mut ar = tar::Archive::new(&t.stdout[..]);
    let entries: Vec<(String, bool)> = ar
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().entry_type().is_file(),
            )
        })
        .collect();
    assert_eq!(entries, [("lnk".to_string(), true)]);
    // Into the container: the host link's target, under the link's name; without -L the link.
    let host = c.tmp.path().join("hostdata");
    std::fs::write(&host, "from host\n").unwrap();
    let hl = c.tmp.path().join("hostlink");
    std::os::unix::fs::symlink(&host, &hl).unwrap();
    ok(&c, &["cp", "-L", hl.to_str().unwrap(), "l:/tmp/"]);
    ok(&c, &["cp", hl.to_str().unwrap(), "l:/tmp/plain"]);
    assert_eq!(
        ok(
            &c,
            &[
                "exec",
                "l",
                "sh",
                "-c",
                "cat /tmp/hostlink; test -L /tmp/hostlink || echo file; test -L /tmp/plain && echo link"
            ]
        ),
        "from host\nfile\nlink\n"
    );
    // A directory copied in keeps its links' targets as they were (not renamed).
    let dir = c.tmp.path().join("srcdir");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink("srcdir-target", dir.join("ln")).unwrap();
    ok(&c, &["cp", dir.to_str().unwrap(), "l:/newname"]);
    assert_eq!(
        ok(&c, &["exec", "l", "readlink", "/newname/ln"]),
        "srcdir-target\n"
    );
    let o2 = c.kiln(&["cp", "-L", "l:/nope", &p("x")]);
    assert_eq!(o2.status.code(), Some(1));
    assert!(Path::new(&p("")).exists());
}

#[test]
fn published_ports_with_host_or_none_network_are_discarded_with_a_warning() {
    // docker 20.10: `run --network host -p 3000:80` prints "WARNING: Published ports are
    // discarded when using host network mode" and runs; `--network none -p` runs silently.
    // kiln runs both and warns on both; the port stays exposed, nothing is bound.
    let c = ctx();
    for mode in ["host", "none"] {
        let name = format!("disc-{mode}");
        let o = c.kiln(&[
            "run",
            "--name",
            &name,
            "--network",
            mode,
            "-p",
            "3000:80",
            BB,
            "true",
        ]);
        let (code, _, err) = out(&o);
        assert_eq!(code, 0, "--network {mode} -p: {err}");
        assert!(
            err.contains(&format!(
                "WARNING: Published ports are discarded when using {mode} network mode"
            )),
            "{err}"
        );
        let ports = ok(
            &c,
            &["inspect", "-f", "{{json .HostConfig.PortBindings}}", &name],
        );
        assert!(!ports.contains("3000"), "{mode}: {ports}");
        let exposed = ok(
            &c,
            &["inspect", "-f", "{{json .Config.ExposedPorts}}", &name],
        );
        assert!(exposed.contains("80/tcp"), "{mode}: {exposed}");
        ok(&c, &["rm", &name]);
    }
}

#[test]
fn system_df_counts_containers_writable_layers() {
    // docker: the Containers row's SIZE is the containers' writable layers (SizeRw), its
    // RECLAIMABLE the stopped ones'; kiln printed 0B for both.
    let c = ctx();
    ok(
        &c,
        &[
            "run",
            "--name",
            "df1",
            BB,
            "sh",
            "-c",
            "head -c 1000000 /dev/urandom > /f",
        ],
    );
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "df2",
            BB,
            "sh",
            "-c",
            "head -c 2000000 /dev/urandom > /f; touch /done; sleep 60",
        ],
    );
    let t0 = std::time::Instant::now();
    while ok(&c, &["exec", "df2", "ls", "/"])
        .lines()
        .all(|l| l != "done")
    {
        assert!(t0.elapsed().as_secs() < 30, "df2 never wrote its file");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let row = df_row(&c, "Containers");
    let f: Vec<&str> = row.split('|').collect();
    assert_eq!(&f[..3], &["Containers", "2", "1"], "{row}");
    let size = bytes(f[3]);
    assert!((2.9e6..3.2e6).contains(&size), "{row}");
    assert!(f[4].starts_with("1MB (3"), "{row}");
    let v = ok(&c, &["system", "df", "-v"]);
    let line = v
        .lines()
        .find(|l| l.ends_with(" df2"))
        .unwrap_or_else(|| panic!("{v}"));
    assert!(line.contains(" 2MB "), "{line}");
    ok(&c, &["rm", "-f", "df1", "df2"]);
}
