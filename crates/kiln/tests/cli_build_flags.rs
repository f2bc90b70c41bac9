//! `kiln build` with the flags docker users pass and contexts from anywhere: each flag's effect
//! seen from inside a real RUN (or in the store), the no-op flags' warnings, the registry
//! flags' refusals, and contexts from standard input, tar files, http URLs (a python3
//! http.server on loopback) and git URLs (a `git daemon` on loopback). Run as root.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::*;

const BASE: &str = "FROM localhost/busybox:latest\n";

/// `kiln build ARGS` with `stdin` as standard input; (exit code, stdout, stderr).
fn kiln_build(c: &Ctx, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .env("KILN_ROOT", &c.root)
        .env_remove("SOURCE_DATE_EPOCH")
        .arg("build")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A tar.gz of `dir`'s contents, made with the system tar.
fn tar_gz(dir: &Path, dest: &Path) {
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-czf")
        .arg(dest)
        .arg(".")
        .status()
        .expect("running tar");
    assert!(st.success(), "tar failed");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not listen on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process this test started, killed by its own PID when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// `python3 -m http.server` on 127.0.0.1, a free port, serving `dir`.
    fn http(dir: &Path) -> Server {
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is needed to serve URL contexts");
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in http.server's first line {line:?}"));
        wait_for_port(port, "http.server");
        Server { child, port }
    }

    /// `git daemon` on 127.0.0.1, exporting the repositories under `base`. Started as
    /// `git-daemon` itself: `git daemon` would run it as a child that killing `git` leaves.
    fn git(base: &Path) -> Server {
        let port = free_port();
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("git is needed to serve git contexts");
        let exec_path = String::from_utf8(exec_path.stdout).unwrap();
        let child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg("--export-all")
            .arg("--reuseaddr")
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting git-daemon");
        wait_for_port(port, "git daemon");
        Server { child, port }
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository `NAME` under `base`: branch `main` has `app/Dockerfile` printing "old";
/// tag `v1` points at it; a second commit on main makes it print "new".
fn make_repo(base: &Path, name: &str) -> PathBuf {
    let repo = base.join(name);
    std::fs::create_dir_all(repo.join("app")).unwrap();
    let df = |msg: &str| format!("{BASE}COPY . /ctx\nRUN echo {msg} > /msg\n");
    std::fs::write(repo.join("app/Dockerfile"), df("old")).unwrap();
    std::fs::write(repo.join("app/data.txt"), "from git\n").unwrap();
    std::fs::write(repo.join("top.txt"), "top\n").unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "one"]);
    git(&repo, &["tag", "v1"]);
    std::fs::write(repo.join("app/Dockerfile"), df("new")).unwrap();
    std::fs::create_dir_all(repo.join("app/other")).unwrap();
    std::fs::write(repo.join("app/other/Dockerfile.alt"), df("alt")).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "two"]);
    repo
}

fn local_dest(c: &Ctx) -> (PathBuf, String) {
    let d = c.fresh("out");
    let o = format!("type=local,dest={}", d.display());
    (d, o)
}

// ---- RUN environment: --add-host, --shm-size, --ulimit, --network ----

#[test]
fn add_host_entries_are_in_run_etc_hosts_but_not_in_the_image() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        &format!("{BASE}RUN grep -E 'db.local|gw.local|v6.local' /etc/hosts > /hosts.txt\n"),
    );
    let out = c.export(&[
        "--add-host",
        "db.local:10.1.2.3",
        "--add-host",
        "v6.local=fe80::1",
        "--add-host",
        "gw.local:host-gateway",
    ]);
    let hosts = read(&out, "hosts.txt");
    assert!(hosts.contains("10.1.2.3\tdb.local"), "{hosts}");
    assert!(hosts.contains("fe80::1\tv6.local"), "{hosts}");
    assert!(hosts.contains("127.0.0.1\tgw.local"), "{hosts}");
    let image_hosts = std::fs::read_to_string(out.join("etc/hosts")).unwrap_or_default();
    assert!(
        !image_hosts.contains("db.local"),
        "the build's /etc/hosts reached the image: {image_hosts}"
    );
}

#[test]
fn bad_add_host_is_a_flag_error() {
    let c = Ctx::new();
    c.file("Dockerfile", BASE);
    for (v, why) in [
        ("nohost", "bad format for add-host"),
        ("db:not-an-ip", "invalid IP address"),
    ] {
        let (code, _, err) = c.build(&["--add-host", v]);
        assert_eq!(code, 125, "{err}");
        assert!(
            err.contains(&format!("invalid argument \"{v}\" for \"--add-host\" flag"))
                && err.contains(why)
                && err.contains("See 'kiln build --help'."),
            "{err}"
        );
    }
}

#[test]
fn shm_size_sizes_the_dev_shm_tmpfs_of_run() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        &format!("{BASE}RUN grep ' /dev/shm ' /proc/mounts > /shm.txt\n"),
    );
    let out = c.export(&["--shm-size", "128m"]);
    let shm = read(&out, "shm.txt");
    assert!(shm.contains("size=131072k"), "{shm}");
    let out = c.export(&["--no-cache", "--shm-size", "1048576"]);
    assert!(read(&out, "shm.txt").contains("size=1024k"));
    // docker's default: 64m.
    let out = c.export(&["--no-cache"]);
    assert!(read(&out, "shm.txt").contains("size=65536k"));
    let (code, _, err) = c.build(&["--shm-size", "lots"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("invalid argument \"lots\" for \"--shm-size\" flag: invalid size: 'lots'"),
        "{err}"
    );
}

#[test]
fn ulimit_sets_the_rlimits_of_run_processes() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        &format!(
            "{BASE}RUN grep -E 'Max open files|Max processes' /proc/self/limits > /limits.txt && ulimit -n > /n.txt\n"
        ),
    );
    let out = c.export(&["--ulimit", "nofile=1024:2048", "--ulimit", "nproc=300"]);
    let limits = read(&out, "limits.txt");
    let words = |name: &str| -> Vec<String> {
        let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..]
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(&words("Max open files")[..2], ["1024", "2048"], "{limits}");
    assert_eq!(&words("Max processes")[..2], ["300", "300"], "{limits}");
    assert_eq!(read(&out, "n.txt").trim(), "1024");
    for (v, why) in [
        (
            "nofile=10:5",
            "soft limit must be less than or equal to hard limit",
        ),
        ("bogus=1", "invalid ulimit type: bogus"),
        ("nofile", "invalid ulimit argument"),
    ] {
        let (code, _, err) = c.build(&["--ulimit", v]);
        assert_eq!(code, 125, "{err}");
        assert!(err.contains(why), "{v}: {err}");
    }
}

#[test]
fn network_none_leaves_only_loopback_and_host_sees_the_hosts_interfaces() {
    require_root();
    let host_ifaces = std::fs::read_to_string("/proc/net/dev").unwrap();
    assert!(
        host_ifaces
            .lines()
            .skip(2)
            .any(|l| !l.trim().starts_with("lo:")),
        "this test needs a host with a network interface besides lo"
    );
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        &format!("{BASE}RUN tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /ifaces\n"),
    );
    let out = c.export(&["--network", "none"]);
    assert_eq!(read(&out, "ifaces").trim(), "lo");
    for mode in ["host", "default"] {
        let out = c.export(&["--no-cache", "--network", mode]);
        let ifaces = read(&out, "ifaces");
        assert!(ifaces.lines().any(|l| l != "lo"), "{mode}: {ifaces}");
    }
    let (code, _, err) = c.build(&["--network", "bridge"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("invalid argument \"bridge\" for \"--network\" flag"),
        "{err}"
    );
}

#[test]
fn help_names_docker_flags_and_network_modes() {
    let out = Command::new(bin())
        .args(["build", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for want in [
        "--network <default|host|none>",
        "--add-host <list>",
        "--shm-size <bytes>",
        "--ulimit <ulimit>",
        "--pull[=<true|false>]",
        "--metadata-file <string>",
        "--rm[=<true|false>]",
        "--cpu-shares <int>",
    ] {
        assert!(help.contains(want), "help lacks {want:?}:\n{help}");
    }
}

// ---- image metadata: --label, --no-cache-filter, -q, --iidfile, --metadata-file ----

#[test]
fn labels_are_set_on_the_image() {
    let c = Ctx::new();
    c.file("Dockerfile", &format!("{BASE}LABEL from=file\n"));
    c.build_ok(&["-t", "lab", "--label", "a=b", "--label", "empty"]);
    let v: serde_json::Value = serde_json::from_slice(&c.kiln(&["inspect", "lab"]).stdout).unwrap();
    let labels = &v[0]["Config"]["Labels"];
    assert_eq!(labels["a"], "b");
    assert_eq!(labels["empty"], "");
    assert_eq!(labels["from"], "file");
}

#[test]
fn no_cache_filter_reruns_only_the_named_stage() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        &format!("FROM localhost/busybox:latest AS first\nRUN echo one > /one\n{BASE}COPY --from=first /one /one\nRUN echo two > /two\n"),
    );
    c.build_ok(&[]);
    let err = c.build_ok(&["--no-cache-filter", "first"]);
    let step = |name: &str| -> String {
        let line = err
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no step {name}:\n{err}"));
        line.split_whitespace().next().unwrap().to_string()
    };
    let first = step("RUN echo one");
    let second = step("RUN echo two");
    assert!(
        !err.contains(&format!("{first} CACHED")),
        "the filtered stage came from the cache:\n{err}"
    );
    assert!(
        err.contains(&format!("{second} CACHED")),
        "the other stage was not cached:\n{err}"
    );
}

/// The store's manifest digest for `name`, from its OCI layout index.
fn manifest_digest_in_store(c: &Ctx, name: &str) -> String {
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.root.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap_or_else(|| panic!("{name} not in index.json: {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn quiet_iidfile_and_metadata_file_agree_with_the_store() {
    let c = Ctx::new();
    c.file("Dockerfile", &format!("{BASE}ENV X=1\n"));
    let iid = c.fresh("iid");
    let meta = c.fresh("meta.json");
    let ctx = c.ctx.to_str().unwrap();
    let (code, out, err) = kiln_build(
        &c,
        &[
            "-q",
            "-t",
            "meta:1",
            "-t",
            "meta:2",
            "--iidfile",
            iid.to_str().unwrap(),
            "--metadata-file",
            meta.to_str().unwrap(),
            ctx,
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    let id = out.trim();
    assert!(
        id.starts_with("sha256:") && out.lines().count() == 1,
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(m["containerimage.config.digest"], id);
    let inspect: serde_json::Value =
        serde_json::from_slice(&c.kiln(&["inspect", "meta:1"]).stdout).unwrap();
    assert_eq!(inspect[0]["Id"], id);
    assert_eq!(
        m["containerimage.digest"],
        manifest_digest_in_store(&c, "docker.io/library/meta:1")
    );
    assert_eq!(
        m["image.name"],
        "docker.io/library/meta:1,docker.io/library/meta:2"
    );
}

#[test]
fn metadata_and_id_files_are_not_written_when_the_build_fails() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", &format!("{BASE}RUN exit 3\n"));
    let iid = c.fresh("iid");
    let meta = c.fresh("meta.json");
    let (code, _, err) = c.build(&[
        "--iidfile",
        iid.to_str().unwrap(),
        "--metadata-file",
        meta.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(!meta.exists() && !iid.exists());
    let (code, _, err) = c.build(&["--metadata-file", "/no/such/dir/meta.json"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--metadata-file /no/such/dir/meta.json"),
        "{err}"
    );
}

#[test]
fn secrets_still_reach_run() {
    require_root();
    let c = Ctx::new();
    let secret = c.fresh("secret");
    std::fs::write(&secret, "s3cret").unwrap();
    c.file(
        "Dockerfile",
        &format!("{BASE}RUN --mount=type=secret,id=tok cat /run/secrets/tok | wc -c > /len\n"),
    );
    let src = format!("id=tok,src={}", secret.display());
    let out = c.export(&["--secret", &src]);
    assert_eq!(read(&out, "len").trim(), "6");
}

// ---- --pull's values (pulls: cli_pull_on_demand.rs; caches: cli_cache_sharing.rs) ----

#[test]
fn pull_values_are_checked() {
    let c = Ctx::new();
    c.file("Dockerfile", BASE);
    // docker's default, spelled out; the base is local, so nothing is pulled.
    c.build_ok(&["--pull=false"]);
    c.build_ok(&["--pull=missing"]);
    let (code, _, err) = c.build(&["--pull=maybe"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("invalid argument \"maybe\" for \"--pull\" flag"),
        "{err}"
    );
}

// ---- flags that mean nothing for kiln: one warning each ----

#[test]
fn no_op_flags_warn_once_each_and_the_build_proceeds() {
    let c = Ctx::new();
    c.file("Dockerfile", &format!("{BASE}ENV N=1\n"));
    let flags: &[(&[&str], &str)] = &[
        (&["--rm"], "--rm"),
        (&["--force-rm=true"], "--force-rm"),
        (&["--compress"], "--compress"),
        (&["--disable-content-trust"], "--disable-content-trust"),
        (&["--isolation", "default"], "--isolation"),
        (&["-m", "1g"], "--memory"),
        (&["--memory-swap", "-1"], "--memory-swap"),
        (&["--cpu-shares", "512"], "--cpu-shares"),
        (&["--cpu-period", "100000"], "--cpu-period"),
        (&["--cpu-quota", "50000"], "--cpu-quota"),
        (&["--cpuset-cpus", "0-1,3"], "--cpuset-cpus"),
        (&["--cpuset-mems", "0"], "--cpuset-mems"),
    ];
    let mut all = Vec::new();
    for (args, flag) in flags {
        let err = c.build_ok(args);
        let warned: Vec<&str> = err.lines().filter(|l| l.starts_with("WARNING:")).collect();
        assert!(
            warned.len() == 1 && warned[0].starts_with(&format!("WARNING: {flag} has no effect: ")),
            "{args:?}:\n{err}"
        );
        all.extend_from_slice(args);
    }
    // All at once: one line each, and the image is built.
    let err = c.build_ok(&all);
    for (_, flag) in flags {
        let n = err
            .lines()
            .filter(|l| l.starts_with(&format!("WARNING: {flag} has no effect: ")))
            .count();
        assert_eq!(n, 1, "{flag}:\n{err}");
    }
}

#[test]
fn no_op_flags_still_check_their_values() {
    let c = Ctx::new();
    c.file("Dockerfile", BASE);
    for (args, want) in [
        (
            &["--memory", "lots"][..],
            "invalid argument \"lots\" for \"--memory\" flag",
        ),
        (
            &["--cpu-shares", "x"][..],
            "invalid argument \"x\" for \"--cpu-shares\" flag",
        ),
        (
            &["--cpuset-cpus", "a-b"][..],
            "invalid argument \"a-b\" for \"--cpuset-cpus\" flag",
        ),
        (
            &["--rm=yes"][..],
            "invalid argument \"yes\" for \"--rm\" flag",
        ),
        (&["--isolation", "hyperv"][..], "invalid isolation"),
        (
            &["--disable-content-trust=false"][..],
            "cannot verify image signatures",
        ),
    ] {
        let (code, _, err) = c.build(args);
        assert_eq!(code, 125, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn an_unknown_flag_exits_125_with_dockers_words() {
    let c = Ctx::new();
    c.file("Dockerfile", BASE);
    let (code, _, err) = c.build(&["--squash-everything"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("unknown flag: --squash-everything")
            && err.contains("See 'kiln build --help'."),
        "{err}"
    );
}

// ---- contexts and Dockerfiles from anywhere ----

#[test]
fn dockerfile_on_stdin_with_a_directory_context() {
    require_root();
    let c = Ctx::new();
    c.file("a.txt", "from ctx\n");
    let (d, o) = local_dest(&c);
    let df = format!("{BASE}COPY a.txt /a\nRUN cat /a > /b\n");
    let (code, _, err) = kiln_build(
        &c,
        &[
            "--progress=plain",
            "-o",
            &o,
            "-f",
            "-",
            c.ctx.to_str().unwrap(),
        ],
        df.as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(&d, "b"), "from ctx\n");
}

#[test]
fn tar_context_on_stdin_and_a_bare_dockerfile_on_stdin() {
    require_root();
    let c = Ctx::new();
    c.file("a.txt", "from tar\n")
        .file("Dockerfile", &format!("{BASE}COPY a.txt /a\n"));
    let tgz = c.fresh("ctx.tgz");
    tar_gz(&c.ctx, &tgz);
    let (d, o) = local_dest(&c);
    let (code, _, err) = kiln_build(
        &c,
        &["--progress=plain", "-o", &o, "-"],
        &std::fs::read(&tgz).unwrap(),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(&d, "a"), "from tar\n");

    let (d, o) = local_dest(&c);
    let df = format!("{BASE}RUN echo bare > /bare\n");
    let (code, _, err) = kiln_build(&c, &["--progress=plain", "-o", &o, "-"], df.as_bytes());
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(&d, "bare"), "bare\n");
    assert!(c.tmp_is_empty(), "the stdin context was left in the store");
}

#[test]
fn a_tar_file_is_a_context_and_f_names_a_file_inside_it() {
    let c = Ctx::new();
    c.file("a.txt", "in the archive\n")
        .file("Dockerfile", &format!("{BASE}COPY a.txt /a\n"))
        .file("sub/Other", &format!("{BASE}COPY a.txt /other\n"));
    let tgz = c.fresh("ctx.tar.gz");
    tar_gz(&c.ctx, &tgz);
    let t = tgz.to_str().unwrap();
    let (d, o) = local_dest(&c);
    let (code, _, err) = kiln_build(&c, &["--progress=plain", "-o", &o, t], b"");
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(&d, "a"), "in the archive\n");
    let (d, o) = local_dest(&c);
    let (code, _, err) = kiln_build(
        &c,
        &["--progress=plain", "-o", &o, "-f", "sub/Other", t],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(&d, "other"), "in the archive\n");
    let (code, _, err) = kiln_build(&c, &["-f", "nope/Dockerfile", t], b"");
    assert_eq!(code, 1);
    assert!(
        err.contains("no Dockerfile \"nope/Dockerfile\" inside the context"),
        "{err}"
    );
    // A file that is not an archive is refused, not read as a Dockerfile.
    let plain = c.fresh("not-a-tar");
    std::fs::write(&plain, BASE).unwrap();
    let (code, _, err) = kiln_build(&c, &[plain.to_str().unwrap()], b"");
    assert_eq!(code, 1);
    assert!(err.contains("is not a tar archive"), "{err}");
    assert!(
        c.tmp_is_empty(),
        "the unpacked context was left in the store"
    );
}

#[test]
fn dockerfile_outside_the_context_directory() {
    require_root();
    let c = Ctx::new();
    c.file("a.txt", "ctx file\n");
    let elsewhere = c.fresh("dockerfiles");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let df = elsewhere.join("build.Dockerfile");
    std::fs::write(&df, format!("{BASE}COPY a.txt /a\nRUN cat /a > /b\n")).unwrap();
    let out = c.export(&["-f", df.to_str().unwrap()]);
    assert_eq!(read(&out, "b"), "ctx file\n");
    // Relative to the working directory, as docker reads it.
    let (d, o) = local_dest(&c);
    let out = c.kiln_in(
        Some(&elsewhere),
        &[
            "build",
            "-o",
            &o,
            "-f",
            "build.Dockerfile",
            c.ctx.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read(&d, "b"), "ctx file\n");
}

#[test]
fn an_http_url_of_an_archive_or_a_dockerfile_is_a_context() {
    require_root();
    let c = Ctx::new();
    c.file("a.txt", "over http\n")
        .file("Dockerfile", &format!("{BASE}COPY a.txt /a\n"))
        .file("alt/D", &format!("{BASE}COPY a.txt /alt\n"));
    let www = c.fresh("www");
    std::fs::create_dir_all(&www).unwrap();
    tar_gz(&c.ctx, &www.join("ctx.tar.gz"));
    std::fs::write(
        www.join("Dockerfile.txt"),
        format!("{BASE}RUN echo plain > /plain\n"),
    )
    .unwrap();
    let server = Server::http(&www);

    let (d, o) = local_dest(&c);
    let url = server.url("http", "ctx.tar.gz");
    let (code, _, err) = kiln_build(&c, &["--progress=plain", "-o", &o, &url], b"");
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(&d, "a"), "over http\n");

    let (d, o) = local_dest(&c);
    let (code, _, err) = kiln_build(
        &c,
        &["--progress=plain", "-o", &o, "-f", "alt/D", &url],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(&d, "alt"), "over http\n");

    let (d, o) = local_dest(&c);
    let url = server.url("http", "Dockerfile.txt");
    let (code, _, err) = kiln_build(&c, &["--progress=plain", "-o", &o, &url], b"");
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(&d, "plain"), "plain\n");

    let url = server.url("http", "missing.tar");
    let (code, _, err) = kiln_build(&c, &[&url], b"");
    assert_eq!(code, 1);
    assert!(
        err.contains("unable to prepare context")
            && err.contains("missing.tar")
            && err.contains("404"),
        "{err}"
    );
    drop(server);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/ctx.tar.gz");
    let (code, _, err) = kiln_build(&c, &[&url], b"");
    assert_eq!(code, 1);
    assert!(
        err.contains("unable to prepare context") && err.contains(&url),
        "{err}"
    );
    assert!(
        c.tmp_is_empty(),
        "the downloaded context was left in the store"
    );
}

#[test]
fn a_git_url_is_a_context_with_ref_and_subdir() {
    require_root();
    let c = Ctx::new();
    let base = c.fresh("git");
    make_repo(&base, "repo.git");
    let server = Server::git(&base);
    let url = |frag: &str| server.url("git", &format!("repo.git{frag}"));

    // #ref:subdir: the tag's Dockerfile, the subdir as context.
    let (d, o) = local_dest(&c);
    let (code, _, err) = kiln_build(&c, &["--progress=plain", "-o", &o, &url("#v1:app")], b"");
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(&d, "msg"), "old\n");
    assert_eq!(read(&d, "ctx/data.txt"), "from git\n");
    assert!(!d.join("ctx/top.txt").exists() && !d.join("ctx/.git").exists());

    // The branch's head, and -f inside the subdir.
    let (d, o) = local_dest(&c);
    let (code, _, err) = kiln_build(
        &c,
        &[
            "--progress=plain",
            "-o",
            &o,
            "-f",
            "other/Dockerfile.alt",
            &url("#main:app"),
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(&d, "msg"), "alt\n");

    // No fragment: the default branch, the whole repository as context.
    let (d, o) = local_dest(&c);
    let (code, _, err) = kiln_build(&c, &["-o", &o, "-f", "app/Dockerfile", &url("")], b"");
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(&d, "msg"), "new\n");
    assert_eq!(read(&d, "ctx/top.txt"), "top\n");

    let (code, _, err) = kiln_build(&c, &[&url("#nope:app")], b"");
    assert_eq!(code, 1);
    assert!(
        err.contains("unable to prepare context") && err.contains("no branch or tag \"nope\""),
        "{err}"
    );
    let (code, _, err) = kiln_build(&c, &[&url("#main:missing")], b"");
    assert_eq!(code, 1);
    assert!(err.contains("subdirectory \"missing\" not found"), "{err}");
    let (code, _, err) = kiln_build(&c, &[&server.url("git", "absent.git")], b"");
    assert_eq!(code, 1);
    assert!(
        err.contains("unable to prepare context") && err.contains("absent.git"),
        "{err}"
    );
    assert!(c.tmp_is_empty(), "the checkout was left in the store");
}

#[test]
fn a_missing_context_path_is_reported_as_docker_reports_it() {
    let c = Ctx::new();
    let (code, _, err) = kiln_build(&c, &["/no/such/context"], b"");
    assert_eq!(code, 1);
    assert!(
        err.contains("unable to prepare context: path \"/no/such/context\" not found"),
        "{err}"
    );
}

#[test]
fn add_host_shm_size_and_ulimit_are_part_of_run_cache_keys() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", &format!("{BASE}RUN cat /etc/hosts > /h\n"));
    // Did the RUN run (its `#N` header not followed by `#N CACHED`)?
    let ran = |args: &[&str]| {
        let err = c.build_ok(args);
        let n = err
            .lines()
            .find_map(|l| {
                let (num, rest) = l.split_once(' ')?;
                (num.starts_with('#') && rest.contains("RUN cat /etc/hosts")).then_some(num)
            })
            .unwrap_or_else(|| panic!("no RUN step in:\n{err}"));
        !err.lines().any(|l| l == format!("{n} CACHED"))
    };
    assert!(ran(&[]), "first build runs");
    assert!(!ran(&[]), "nothing changed: cached");
    assert!(
        ran(&["--add-host", "db.local:10.1.2.3"]),
        "a new host runs again"
    );
    assert!(
        !ran(&["--add-host", "db.local:10.1.2.3"]),
        "the same host: cached"
    );
    assert!(ran(&["--shm-size", "128m"]), "another shm size runs again");
    assert!(ran(&["--ulimit", "nofile=512:1024"]), "a ulimit runs again");
    assert!(!ran(&[]), "back to the defaults: the first record");
}

#[test]
fn a_remote_contexts_dockerfile_and_ignore_file_never_read_the_host() {
    require_root();
    let c = Ctx::new();
    // A host file with a marker that must never reach kiln's output.
    let secret = c.fresh("host-secret");
    std::fs::write(&secret, "HOSTSECRET-4711\n").unwrap();
    c.file("a.txt", "a\n");
    std::os::unix::fs::symlink(&secret, c.ctx.join("Dockerfile")).unwrap();
    let tgz = c.fresh("escape.tar.gz");
    tar_gz(&c.ctx, &tgz);
    let (code, out, err) = kiln_build(&c, &["--progress=plain", tgz.to_str().unwrap()], b"");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("inside the context") && !(out + &err).contains("HOSTSECRET"),
        "{err}"
    );
    // A .dockerignore (and Dockerfile.dockerignore) pointing out is read inside the context:
    // nothing of the host, and the build goes on without patterns.
    std::fs::remove_file(c.ctx.join("Dockerfile")).unwrap();
    c.file("Dockerfile", &format!("{BASE}COPY a.txt /a\n"));
    std::os::unix::fs::symlink(&secret, c.ctx.join(".dockerignore")).unwrap();
    std::os::unix::fs::symlink(&secret, c.ctx.join("Dockerfile.dockerignore")).unwrap();
    let tgz = c.fresh("ignore.tar.gz");
    tar_gz(&c.ctx, &tgz);
    let (d, o) = local_dest(&c);
    let (code, out, err) = kiln_build(
        &c,
        &["--progress=plain", "-o", &o, tgz.to_str().unwrap()],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert!(!(out + &err).contains("HOSTSECRET"), "{err}");
    assert_eq!(read(&d, "a"), "a\n");
    assert!(
        c.tmp_is_empty(),
        "the unpacked contexts were left in the store"
    );
}

/// A bad flag value is docker's usage error even where no Dockerfile exists: flags are
/// checked before the context is read.
#[test]
fn bad_flag_values_are_reported_before_the_dockerfile_is_read() {
    let c = Ctx::new();
    for (args, flag) in [
        (&["--shm-size", "lots"][..], "--shm-size"),
        (&["--ulimit", "nofile=abc"][..], "--ulimit"),
        (&["--add-host", "badhost"][..], "--add-host"),
    ] {
        let (code, _, err) = c.build(args);
        assert_eq!(code, 125, "{args:?}: {err}");
        assert!(
            err.contains("invalid argument") && err.contains(flag),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("failed to read dockerfile"),
            "{args:?}: {err}"
        );
    }
}
