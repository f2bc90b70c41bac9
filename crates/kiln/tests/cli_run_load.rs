//! `kiln run` under load (as root): 50 containers started and stopped one after another (half
//! `run -d` then `stop` + `rm`, half `run --rm` in the foreground), each with a published port,
//! leave no process (supervisor, pasta, the container's own), mount, cgroup, listening proxy or
//! container directory behind; and a published port holds 200 concurrent connections (`wrk -t2
//! -c200 -d5s`, Debian's wrk, from the host's loopback) with no socket error and no non-2xx
//! response, against busybox httpd and against nginx (the tutorial's fixture base image).
//! Correctness only: the time these take is measured in bench/run.sh, not here.

mod support;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln_test::net::tcp_listening;
use support::*;

const BB: &str = "localhost/busybox:latest";
const NGINX_ARCHIVE: &str = "/var/tmp/kiln-fixtures/images/nginx-bookworm.docker.tar";

/// Lines of /proc/self/mountinfo that mention `needle` (the test's store, a container ID).
fn mounts_with(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

/// A process's start time (field 22 of /proc/PID/stat), None when it is gone or a zombie.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat[stat.rfind(')')? + 1..].trim_start();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    // `rest` starts at field 3 (state): field 22 is index 19.
    fields.get(19)?.parse().ok()
}

/// `pid` and all its descendants (through /proc/PID/task/*/children), each with its start time
/// so that a reused PID is not mistaken for a survivor.
fn process_tree(pid: u32) -> BTreeSet<(u32, u64)> {
    let mut found = BTreeSet::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Some(t) = start_time(p) else { continue };
        if !found.insert((p, t)) {
            continue;
        }
        for task in std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let kids = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            todo.extend(
                kids.split_whitespace()
                    .filter_map(|k| k.parse::<u32>().ok()),
            );
        }
    }
    found
}

/// Live processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || start_time(pid).is_none() {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd)
            .replace('\0', " ")
            .contains(needle)
        {
            found.push(pid);
        }
    }
    found
}

/// The container's cgroup directories (v1 controllers, or the v2 unified tree).
fn cgroup_dirs(id: &str) -> Vec<String> {
    let mut dirs = Vec::new();
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = e.path().join("kiln").join(id);
        if p.exists() {
            dirs.push(p.display().to_string());
        }
    }
    if Path::new("/sys/fs/cgroup/kiln").join(id).exists() {
        dirs.push(format!("/sys/fs/cgroup/kiln/{id}"));
    }
    dirs
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out ({secs} s) waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The container ID from the `/kiln/ID` path in a /proc/self/cgroup text.
fn id_from_cgroup(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let i = l.find("/kiln/")?;
        let id: String = l[i + 6..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        (id.len() == 64).then_some(id)
    })
}

/// The host port of `kiln port ID` for 7000/tcp (`7000/tcp -> 127.0.0.1:PORT`).
fn published_port(c: &Ctx, id: &str) -> u16 {
    let out = ok(c, &["port", id]);
    out.trim()
        .strip_prefix("7000/tcp -> 127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("kiln port {id}: {out:?}"))
}

/// Everything of `ids` and of the store is gone: processes (the recorded trees and any command
/// line naming an ID), mounts, cgroups, listeners on `ports`, container directories.
fn assert_nothing_left(
    c: &Ctx,
    ids: &[String],
    trees: &BTreeSet<(u32, u64)>,
    ports: &BTreeSet<u16>,
) {
    let survivors = || -> Vec<(u32, u64)> {
        trees
            .iter()
            .copied()
            .filter(|&(p, t)| start_time(p) == Some(t))
            .collect()
    };
    let t0 = Instant::now();
    while !survivors().is_empty() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<String> = survivors()
        .iter()
        .map(|(p, _)| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            format!("{p}: {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect();
    assert!(
        left.is_empty(),
        "processes of the containers left: {left:#?}"
    );
    let root = c.root.to_string_lossy().into_owned();
    assert_eq!(mounts_with(&root), Vec::<String>::new(), "mounts left");
    for id in ids {
        assert_eq!(
            processes_with(id),
            Vec::<u32>::new(),
            "processes naming {id}"
        );
        assert_eq!(mounts_with(id), Vec::<String>::new(), "mounts of {id}");
        assert_eq!(cgroup_dirs(id), Vec::<String>::new(), "cgroups of {id}");
        assert_eq!(
            net_leftovers_after_wait(id),
            Vec::<String>::new(),
            "rules/veth of {id}"
        );
    }
    let open: Vec<u16> = ports
        .iter()
        .copied()
        .filter(|&p| tcp_listening(p))
        .collect();
    assert!(open.is_empty(), "published ports still listening: {open:?}");
    assert_eq!(ok(c, &["ps", "-aq"]), "", "kiln ps -a lists containers");
    let dirs = std::fs::read_dir(c.root.join("containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(dirs, 0, "container directories left in the store");
}

#[test]
fn fifty_containers_started_and_stopped_leave_nothing_behind() {
    require_root();
    require_command("pasta", "passt");
    let c = RunCtx::new();
    let mut ids = Vec::new();
    let mut trees = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for i in 0..50 {
        let name = format!("load-{i}");
        if i % 2 == 0 {
            // run -d, then stop + rm
            let id = ok(
                &c,
                &[
                    "run",
                    "-d",
                    "--name",
                    &name,
                    "-p",
                    "127.0.0.1::7000",
                    BB,
                    "sh",
                    "-c",
                    "trap 'exit 0' TERM; echo up; while true; do sleep 0.1; done",
                ],
            );
            let id = id.trim().to_string();
            assert_eq!(id.len(), 64, "{id}");
            wait_for("the container's output", 10, || {
                c.kiln(&["logs", &name]).stdout == b"up\n"
            });
            let sup = processes_with(&format!("__container-supervise {id}"));
            assert_eq!(sup.len(), 1, "one supervisor for {name}: {sup:?}");
            let tree = process_tree(sup[0]);
            assert!(
                tree.len() >= 2,
                "{name}: the supervisor and the container's process: {tree:?}"
            );
            trees.extend(tree);
            let port = published_port(&c, &id);
            assert!(
                tcp_listening(port),
                "{name}: its published port {port} listens"
            );
            ports.insert(port);
            assert_eq!(ok(&c, &["stop", "-t", "5", &name]).trim(), name);
            let status = ok(&c, &["inspect", "-f", "{{.State.ExitCode}}", &name]);
            assert_eq!(status.trim(), "0", "{name} exited by its TERM trap");
            assert_eq!(ok(&c, &["rm", &name]).trim(), name);
            ids.push(id);
        } else {
            // run --rm in the foreground: its ID is read back from the container's cgroup; it
            // runs until the test has seen it (its process tree and port) and creates `go` in
            // the directory bound at /sync
            let sync = c.fresh("sync");
            std::fs::create_dir_all(&sync).unwrap();
            let bind = format!("{}:/sync", sync.display());
            let child = Command::new(bin())
                .env("KILN_ROOT", &c.root)
                .args([
                    "run",
                    "--rm",
                    "--name",
                    &name,
                    "-p",
                    "127.0.0.1::7000",
                    "-v",
                    &bind,
                    BB,
                    "sh",
                    "-c",
                    "cat /proc/self/cgroup; i=0; until [ -e /sync/go ] || [ $i = 600 ]; do sleep 0.05; i=$((i+1)); done; echo done",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // While it runs: kiln's process tree (pasta, the container) is recorded.
            let pid = child.id();
            let t0 = Instant::now();
            let mut tree = process_tree(pid);
            while tree.len() < 2 && t0.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(10));
                tree = process_tree(pid);
            }
            let tree_len = tree.len();
            trees.extend(tree);
            let mut port = None;
            let t0 = Instant::now();
            while port.is_none() && t0.elapsed() < Duration::from_secs(10) {
                let o = c.kiln(&["port", &name]);
                port = String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .strip_prefix("7000/tcp -> 127.0.0.1:")
                    .and_then(|p| p.parse::<u16>().ok());
                if port.is_none() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            std::fs::write(sync.join("go"), "").unwrap();
            let out = child.wait_with_output().unwrap();
            std::fs::remove_dir_all(&sync).unwrap();
            let (code, stdout, stderr) = support::out(&out);
            assert_eq!(code, 0, "{name}: {stderr}");
            assert!(stdout.ends_with("done\n"), "{name}: {stdout}");
            let id = id_from_cgroup(&stdout)
                .unwrap_or_else(|| panic!("{name}: no /kiln/ID in its cgroup: {stdout}"));
            assert!(
                tree_len >= 2,
                "{name}: kiln's process tree seen while it ran"
            );
            ports.insert(port.unwrap_or_else(|| panic!("{name}: kiln port never answered")));
            ids.push(id);
        }
    }
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 50, "50 distinct containers");
    assert_nothing_left(&c, &ids, &trees, &ports);
    assert!(c.tmp_is_empty());
}

/// Runs `wrk -t2 -c200 -d5s --timeout 10s URL` and asserts: requests made, no "Socket errors"
/// line (connect, read, write errors and timeouts), no "Non-2xx or 3xx responses" line. Returns
/// wrk's output. The timeout is 10 s, not wrk's 2 s: busybox httpd listens with a backlog of 9,
/// so under 200 connections some SYNs are retransmitted (after 1 s, then 3 s more), and on this
/// busy 2-core machine wrk against busybox httpd on the host itself, no kiln in between, counted
/// such 2 s timeouts too.
fn wrk_200(url: &str) -> String {
    let wrk = require_command("wrk", "wrk");
    let out = Command::new(wrk)
        .args(["-t2", "-c200", "-d5s", "--timeout", "10s", url])
        .output()
        .expect("running wrk");
    let (code, stdout, stderr) = support::out(&out);
    assert_eq!(code, 0, "wrk: {stdout}{stderr}");
    assert!(
        stdout.contains("200 connections"),
        "wrk ran 200 connections: {stdout}"
    );
    assert!(!stdout.contains("Socket errors"), "{stdout}");
    assert!(!stdout.contains("Non-2xx"), "{stdout}");
    let requests: u64 = stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .and_then(|(n, _)| n.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no request count in wrk's output: {stdout}"));
    assert!(requests > 0, "{stdout}");
    stdout
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Serves `id`'s published `port` under wrk, then stops and removes it: nothing left.
fn load_then_remove(c: &Ctx, name: &str, port: u16, path: &str, body: &str) {
    let id = ok(c, &["inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_string();
    let url = format!("http://127.0.0.1:{port}{path}");
    wait_for("the server in the container", 20, || {
        Command::new(require_command("curl", "curl"))
            .args(["-fsS", "-o", "/dev/null", &url])
            .status()
            .is_ok_and(|s| s.success())
    });
    let sup = processes_with(&format!("__container-supervise {id}"));
    assert_eq!(sup.len(), 1, "one supervisor: {sup:?}");
    let tree = process_tree(sup[0]);
    let got = Command::new(require_command("curl", "curl"))
        .args(["-fsS", &url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), body);
    let report = wrk_200(&url);
    eprintln!("{name}: {report}");
    // The server still answers after the load.
    let got = Command::new(require_command("curl", "curl"))
        .args(["-fsS", &url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), body, "after wrk");
    ok(c, &["stop", name]);
    ok(c, &["rm", name]);
    assert_nothing_left(c, &[id], &tree, &BTreeSet::from([port]));
}

#[test]
fn a_published_port_holds_200_connections_busybox_httpd() {
    require_root();
    require_command("pasta", "passt");
    let c = RunCtx::new();
    let port = free_port();
    let spec = format!("127.0.0.1:{port}:8080");
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "httpd",
            "-p",
            &spec,
            BB,
            "sh",
            "-c",
            "mkdir -p /www && echo hello-from-httpd > /www/index.html && exec httpd -f -p 8080 -h /www",
        ],
    );
    load_then_remove(&c, "httpd", port, "/index.html", "hello-from-httpd\n");
    assert!(c.tmp_is_empty());
}

#[test]
fn a_published_port_holds_200_connections_nginx() {
    require_root();
    require_command("pasta", "passt");
    assert!(
        Path::new(NGINX_ARCHIVE).exists(),
        "this test needs the tutorial's nginx base image: run `bash ../shared/fixtures/make-base-images.sh \
         /var/tmp/kiln-fixtures` as root (.ci/run does) to make {NGINX_ARCHIVE}"
    );
    let c = RunCtx::new();
    let out = c.kiln(&["load", "-q", "-i", NGINX_ARCHIVE]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let spec = format!("127.0.0.1:{port}:80");
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "nginx",
            "-p",
            &spec,
            "localhost/nginx:bookworm",
            "sh",
            "-c",
            "echo hello-from-nginx > /usr/share/nginx/html/load.txt && exec nginx -g 'daemon off;'",
        ],
    );
    load_then_remove(&c, "nginx", port, "/load.txt", "hello-from-nginx\n");
    assert!(c.tmp_is_empty());
}
