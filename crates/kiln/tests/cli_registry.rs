//! `kiln login`, `logout`, `pull`, `push` against a real registry (Debian's
//! `docker-registry` started per test on 127.0.0.1), with docker's messages; interop both
//! ways with skopeo and docker; a build FROM a pulled image; a pull killed half-way.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kiln_test::registry::{CutProxy, Registry, RegistryOptions};

/// A store, a docker config directory and a certs.d, all in one temp directory.
struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn docker_config(&self) -> PathBuf {
        self.tmp.path().join("docker")
    }

    fn cmd(&self, store: &str, args: &[&str]) -> Command {
        let mut c = Command::new(support::bin());
        c.env("KILN_ROOT", self.root(store))
            .env("DOCKER_CONFIG", self.docker_config())
            .env("KILN_CERTS_D", self.tmp.path().join("certs.d"))
            .env_remove("KILN_INSECURE_REGISTRIES")
            .args(args);
        c
    }

    fn kiln(&self, store: &str, args: &[&str]) -> Output {
        self.cmd(store, args).output().unwrap()
    }

    fn ok(&self, store: &str, args: &[&str]) -> String {
        let o = self.kiln(store, args);
        assert!(
            o.status.success(),
            "kiln {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// A store with busybox loaded and tagged `name`.
    fn with_busybox(&self, store: &str, name: &str) {
        self.ok(
            store,
            &[
                "load",
                "-q",
                "-i",
                support::busybox_archive().to_str().unwrap(),
            ],
        );
        self.ok(store, &["tag", "localhost/busybox:latest", name]);
    }

    fn tmp_is_empty(&self, store: &str) -> bool {
        std::fs::read_dir(self.root(store).join("tmp"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true)
    }

    /// The store's unpacked layers: each snapshot directory's name and inode, sorted.
    fn snapshots(&self, store: &str) -> Vec<(String, u64)> {
        use std::os::unix::fs::MetadataExt;
        let mut v: Vec<(String, u64)> = std::fs::read_dir(self.root(store).join("snapshots-v1"))
            .map(|d| {
                d.flatten()
                    .map(|e| {
                        let ino = e.metadata().unwrap().ino();
                        (e.file_name().to_string_lossy().into_owned(), ino)
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// Replaces 12-hex layer ids at line starts with `<layer>` and `sha256:<hex>` with `<digest>`.
fn redact(s: &str) -> String {
    let mut out = String::new();
    for line in s.lines() {
        let mut l = line.to_string();
        if l.len() > 13
            && l.as_bytes()[12] == b':'
            && l[..12].bytes().all(|b| b.is_ascii_hexdigit())
        {
            l = format!("<layer>{}", &l[12..]);
        }
        while let Some(i) = l.find("sha256:") {
            l.replace_range(i..i + 71, "<digest>");
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn digest_in(s: &str) -> String {
    let i = s.find("sha256:").expect("a digest");
    s[i..i + 71].to_string()
}

#[test]
fn push_and_pull_print_what_docker_prints() {
    let reg = Registry::start();
    let env = Env::new();
    let name = format!("{}/bb:1", reg.addr);
    env.with_busybox("a", &name);
    let out = env.ok("a", &["push", &name]);
    assert_eq!(
        redact(&out),
        format!(
            "The push refers to repository [{}/bb]\n<layer>: Preparing\n<layer>: Pushed\n1: digest: <digest> size: {}\n",
            reg.addr,
            out.trim().rsplit(' ').next().unwrap()
        )
    );
    let digest = digest_in(out.lines().last().unwrap());
    let again = env.ok("a", &["push", &name]);
    assert!(again.contains(": Layer already exists\n"), "{again}");
    assert_eq!(digest_in(&again), digest);
    assert_eq!(env.ok("a", &["push", "-q", &name]), format!("{name}\n"));

    let out = env.ok("b", &["pull", &name]);
    assert_eq!(
        redact(&out),
        format!(
            "1: Pulling from bb\n<layer>: Pulling fs layer\n<layer>: Verifying Checksum\n<layer>: Download complete\n<layer>: Pull complete\nDigest: <digest>\nStatus: Downloaded newer image for {name}\n{name}\n"
        )
    );
    assert_eq!(digest_in(&out), digest);
    let out = env.ok("b", &["pull", &name]);
    assert_eq!(
        out,
        format!(
            "1: Pulling from bb\nDigest: {digest}\nStatus: Image is up to date for {name}\n{name}\n"
        )
    );
    // Default tag, quiet.
    env.ok("a", &["tag", &name, &format!("{}/bb", reg.addr)]);
    let out = env.ok("a", &["push", &format!("{}/bb", reg.addr)]);
    assert!(out.starts_with("Using default tag: latest\n"), "{out}");
    assert_eq!(
        env.ok("c", &["pull", "-q", &format!("{}/bb", reg.addr)]),
        format!("{}/bb:latest\n", reg.addr)
    );
    // RepoDigests.
    let inspect = env.ok(
        "b",
        &["inspect", "--format", "{{json .RepoDigests}}", &name],
    );
    assert_eq!(inspect.trim(), format!("[\"{}/bb@{digest}\"]", reg.addr));
    let images = env.ok(
        "b",
        &[
            "images",
            "--digests",
            "--format",
            "{{.Repository}} {{.Tag}} {{.Digest}}",
        ],
    );
    assert_eq!(images, format!("{}/bb 1 {digest}\n", reg.addr));
    // By digest.
    let by_digest = format!("{}/bb@{digest}", reg.addr);
    let out = env.ok("d", &["pull", &by_digest]);
    // The pull unpacked the layer: its snapshot is there, and the first run uses it as it
    // is (same directory, same inode: nothing unpacked again).
    let unpacked = env.snapshots("d");
    assert_eq!(unpacked.len(), 1, "{unpacked:?}");
    // docker 20.10 names a digest pull by its familiar reference.
    assert!(
        out.starts_with(&format!("{by_digest}: Pulling from bb\n")),
        "{out}"
    );
    assert!(out.ends_with(&format!("{by_digest}\n")), "{out}");
    // An image pulled by digest only: its repository with TAG <none>, as docker lists it.
    let images = env.ok(
        "d",
        &[
            "images",
            "--digests",
            "--format",
            "{{.Repository}} {{.Tag}} {{.Digest}}",
        ],
    );
    assert_eq!(images, format!("{}/bb <none> {digest}\n", reg.addr));
    // NAME@DIGEST names the local image from then on (docker's RepoDigests), without the
    // registry: inspect, run and a build FROM it with the registry stopped and --pull=never.
    let id = env.ok("d", &["inspect", "-f", "{{.Id}}", &by_digest]);
    assert!(id.starts_with("sha256:"), "{id}");
    drop(reg);
    let out = env.ok(
        "d",
        &["run", "--rm", "--pull=never", &by_digest, "echo", "hi"],
    );
    assert_eq!(out, "hi\n");
    assert_eq!(env.snapshots("d"), unpacked, "the first run unpacked again");
    assert!(env.tmp_is_empty("a") && env.tmp_is_empty("b") && env.tmp_is_empty("d"));
}

/// Asserts `o` is exit 1 with exactly `stdout` and `stderr`.
fn fails_with(o: &Output, stdout: &str, stderr: &str) {
    assert_eq!(
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).as_ref(),
            String::from_utf8_lossy(&o.stderr).as_ref()
        ),
        (Some(1), stdout, stderr)
    );
}

#[test]
fn missing_images_fail_with_dockers_messages() {
    let reg = Registry::start();
    let env = Env::new();
    let a = &reg.addr;
    // docker 20.10's output for each, against the same registry: only the error (no
    // `Pulling from` before it), exit 1.
    let unknown = |r: &str| {
        format!(
            "Error response from daemon: manifest for {a}/{r} not found: manifest unknown: manifest unknown\n"
        )
    };
    env.with_busybox("a", &format!("{a}/bb:1"));
    env.ok("a", &["push", "-q", &format!("{a}/bb:1")]);
    fails_with(
        &env.kiln("b", &["pull", &format!("{a}/bb:nope")]),
        "",
        &unknown("bb:nope"),
    );
    fails_with(
        &env.kiln("b", &["pull", &format!("{a}/x:y")]),
        "",
        &unknown("x:y"),
    );
    fails_with(
        &env.kiln("b", &["pull", &format!("{a}/x")]),
        "Using default tag: latest\n",
        &unknown("x:latest"),
    );
    let d = format!("sha256:{}", "0".repeat(64));
    fails_with(
        &env.kiln("b", &["pull", &format!("{a}/bb@{d}")]),
        "",
        &unknown(&format!("bb@{d}")),
    );
    assert_eq!(env.ok("b", &["images", "-q"]), "");
    assert!(env.tmp_is_empty("b"));
    // Nothing listening (docker: `Get "http://127.0.0.1:9/v2/": dial tcp 127.0.0.1:9: connect:
    // connection refused`; the transport's words are Rust's): a pull's error only, a push's
    // under its first line and before any layer's.
    let o = env.kiln("b", &["pull", "127.0.0.1:9/x:1"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("Error response from daemon: Get \"http://127.0.0.1:9/v2/\": "),
        "{err}"
    );
    env.ok("a", &["tag", &format!("{a}/bb:1"), "127.0.0.1:9/x:1"]);
    let o = env.kiln("a", &["push", "127.0.0.1:9/x:1"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "The push refers to repository [127.0.0.1:9/x]\n"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("Get \"http://127.0.0.1:9/v2/\": "), "{err}");
    let o = env.kiln("a", &["push", &format!("{}/x:y", reg.addr)]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        // docker 20.10 names the repository without the tag.
        format!(
            "An image does not exist locally with the tag: {}/x\n",
            reg.addr
        )
    );
}

#[test]
fn login_and_logout_like_docker() {
    let reg = Registry::start_with(RegistryOptions {
        htpasswd: Some(("kiln".into(), "s3cret".into())),
        tls: false,
    });
    let env = Env::new();
    let config = env.docker_config().join("config.json");
    let name = format!("{}/private:1", reg.addr);
    env.with_busybox("a", &name);
    let a = &reg.addr;
    // docker 20.10's words for each refusal, against the same registry, exit 1. Without
    // credentials: the push's lines, then the bare error; a pull names its request.
    let layer = {
        let l = env.ok("a", &["inspect", "-f", "{{index .RootFS.Layers 0}}", &name]);
        l.trim()[7..19].to_string()
    };
    let refused_push = |err: &str| {
        let t = Instant::now();
        let o = env.kiln("a", &["push", &name]);
        assert!(t.elapsed() < Duration::from_secs(5), "no retries");
        fails_with(
            &o,
            &format!("The push refers to repository [{a}/private]\n{layer}: Preparing\n"),
            err,
        );
    };
    refused_push("no basic auth credentials\n");
    fails_with(
        &env.kiln("c", &["pull", &name]),
        "",
        &format!(
            "Error response from daemon: Head \"http://{a}/v2/private/manifests/1\": no basic auth credentials\n"
        ),
    );
    // Wrong password: one 401, nothing stored.
    let t = Instant::now();
    let o = env.kiln("a", &["login", a, "-u", "kiln", "-p", "wrong"]);
    assert!(t.elapsed() < Duration::from_secs(5));
    fails_with(
        &o,
        "",
        &format!(
            "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\nError response from daemon: login attempt to http://{a}/v2/ failed with status: 401 Unauthorized\n"
        ),
    );
    assert!(!config.exists());
    // A wrong password stored (a changed one): the registry's words.
    std::fs::create_dir_all(env.docker_config()).unwrap();
    std::fs::write(
        &config,
        format!(r#"{{"auths":{{"{a}":{{"auth":"a2lsbjp3cm9uZw=="}}}}}}"#), // kiln:wrong
    )
    .unwrap();
    refused_push("unauthorized: authentication required\n");
    fails_with(
        &env.kiln("c", &["pull", &name]),
        "",
        "Error response from daemon: unauthorized: authentication required\n",
    );
    std::fs::remove_file(&config).unwrap();
    // --password-stdin.
    let mut child = env
        .cmd("a", &["login", &reg.addr, "-u", "kiln", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "Login Succeeded\n");
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with(&format!(
            "WARNING! Your password will be stored unencrypted in {}.\n",
            config.display()
        )),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(v["auths"][&reg.addr]["auth"], "a2lsbjpzM2NyZXQ="); // kiln:s3cret
    env.ok("a", &["push", &name]);
    env.ok("b", &["pull", &name]);
    assert_eq!(
        env.ok("a", &["logout", &reg.addr]),
        format!("Removing login credentials for {}\n", reg.addr)
    );
    // Again, with nothing to remove: docker 20.10 prints the same line, exit 0.
    assert_eq!(
        env.ok("a", &["logout", &reg.addr]),
        format!("Removing login credentials for {}\n", reg.addr)
    );
    assert!(!env.kiln("c", &["pull", &name]).status.success());
    // Flag rules.
    let o = env.kiln("a", &["login", &reg.addr, "--password-stdin"]);
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("Must provide --username with --password-stdin")
    );
}

#[test]
fn tls_registry_with_a_ca_in_certs_d() {
    let reg = Registry::start_with(RegistryOptions {
        htpasswd: None,
        tls: true,
    });
    let env = Env::new();
    let name = format!("{}/tls:1", reg.addr);
    env.with_busybox("a", &name);
    let o = env.kiln("a", &["push", &name]);
    assert!(!o.status.success());
    let d = env.tmp.path().join("certs.d").join(&reg.addr);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(reg.ca_cert(), d.join("ca.crt")).unwrap();
    let digest = digest_in(&env.ok("a", &["push", &name]));
    assert_eq!(digest_in(&env.ok("b", &["pull", &name])), digest);
}

fn skopeo() -> PathBuf {
    support::require_command("skopeo", "skopeo")
}

#[test]
fn skopeo_reads_what_kiln_pushed_and_kiln_builds_from_what_skopeo_pushed() {
    support::require_root();
    let reg = Registry::start();
    let env = Env::new();
    let name = format!("{}/kiln-pushed:1", reg.addr);
    env.with_busybox("a", &name);
    let digest = digest_in(&env.ok("a", &["push", &name]));
    let o = Command::new(skopeo())
        .args(["inspect", "--tls-verify=false", &format!("docker://{name}")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Digest"], digest.as_str());
    let oci = env.tmp.path().join("oci");
    let o = Command::new(skopeo())
        .args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{name}"),
            &format!("oci:{}:x", oci.display()),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());

    // The other way: skopeo pushes a docker-archive, kiln pulls it and builds FROM it.
    let theirs = format!("{}/skopeo-pushed:1", reg.addr);
    let o = Command::new(skopeo())
        .args([
            "copy",
            "--dest-tls-verify=false",
            &format!("docker-archive:{}", support::busybox_archive().display()),
            &format!("docker://{theirs}"),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(skopeo())
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{theirs}"),
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let out = env.ok("b", &["pull", &theirs]);
    assert_eq!(digest_in(&out), v["Digest"].as_str().unwrap(), "{out}");
    let ctx = env.tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {theirs}\nRUN echo built-on-pulled > /hello\n"),
    )
    .unwrap();
    let out_dir = env.tmp.path().join("out");
    env.ok(
        "b",
        &[
            "build",
            "--progress=plain",
            "-o",
            &format!("type=local,dest={}", out_dir.display()),
            ctx.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("hello")).unwrap(),
        "built-on-pulled\n"
    );
}

#[test]
fn docker_pulls_what_kiln_pushed() {
    let docker = kiln_test::docker::Docker::engine();
    let reg = Registry::start();
    let env = Env::new();
    let name = format!("{}/for-docker:1", reg.addr);
    env.with_busybox("a", &name);
    let digest = digest_in(&env.ok("a", &["push", &name]));
    let o = docker.command().args(["pull", &name]).output().unwrap();
    assert!(
        o.status.success(),
        "docker pull: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("Digest: {digest}")));
    let o = docker
        .command()
        .args([
            "inspect",
            "--format",
            "{{json .RepoDigests}} {{.Id}}",
            &name,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let kiln_id = env.ok("a", &["inspect", "--format", "{{.Id}}", &name]);
    let _ = docker.command().args(["rmi", &name]).output();
    assert!(
        text.contains(&format!("{}/for-docker@{digest}", reg.addr)),
        "{text}"
    );
    assert!(text.trim().ends_with(kiln_id.trim()), "{text} vs {kiln_id}");
}

/// A docker-archive with one layer holding `size` pseudo-random bytes.
fn big_archive(dir: &Path, tag: &str, size: usize) -> PathBuf {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let mut lb = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    lb.append_data(&mut h, "big.bin", &data[..]).unwrap();
    let layer = lb.into_inner().unwrap();
    let diff_id = {
        let o = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut o = o;
        o.stdin.take().unwrap().write_all(&layer).unwrap();
        let out = o.wait_with_output().unwrap();
        format!(
            "sha256:{}",
            String::from_utf8_lossy(&out.stdout)
                .split(' ')
                .next()
                .unwrap()
        )
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": "config.json", "RepoTags": [tag], "Layers": ["l/layer.tar"]}
    ]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for (n, d) in [
        ("l/layer.tar", &layer),
        ("config.json", &config),
        ("manifest.json", &manifest),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, n, &d[..]).unwrap();
    }
    let path = dir.join("big.tar");
    std::fs::write(&path, b.into_inner().unwrap()).unwrap();
    path
}

#[test]
fn a_pull_killed_half_way_leaves_nothing_and_the_next_one_completes() {
    let reg = Registry::start();
    let env = Env::new();
    let name = format!("{}/big:1", reg.addr);
    let archive = big_archive(env.tmp.path(), &name, 8 << 20);
    env.ok("a", &["load", "-q", "-i", archive.to_str().unwrap()]);
    env.ok("a", &["push", &name]);
    // Through a slow link (about 4 MB/s), so that the kill lands mid-layer even when a
    // loaded machine starves this thread for a second.
    let proxy = CutProxy::slow(&reg.addr, Duration::from_millis(4));
    let slow = format!("{}/big:1", proxy.addr);
    for signal in [libc::SIGINT, libc::SIGKILL] {
        let mut child = interruptible(&env, "b", &["pull", &slow])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        kill_mid_transfer(&env, "b", &mut child, signal, "pull");
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert_eq!(
            env.ok("b", &["images", "-q"]),
            "",
            "an image after a killed pull"
        );
        // That open removed the dead pull's temp entries: the blob and the staging
        // directory it was unpacking into; no snapshot became visible.
        assert!(
            env.tmp_is_empty("b"),
            "a staging directory after a killed pull"
        );
        assert_eq!(env.snapshots("b"), vec![], "a snapshot after a killed pull");
    }
    // The next run removes what the dead ones left and completes.
    let out = env.ok("b", &["pull", &slow]);
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    assert!(env.tmp_is_empty("b"));
    let check = env.kiln("b", &["system", "check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert_eq!(env.ok("b", &["images", "-q"]).lines().count(), 1);
    assert_eq!(env.snapshots("b").len(), 1);
}

/// `args` as a command whose SIGINT has the default action: a shell running the tests in
/// the background without job control (`cargo test &` in a script) passes SIGINT on
/// ignored, and an ignored Ctrl-C would let the transfer finish.
fn interruptible(env: &Env, store: &str, args: &[&str]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = env.cmd(store, args);
    // SAFETY: signal(2) is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    c
}

/// Waits until `store`'s tmp/ holds a non-empty file (the `what` transfer is under way:
/// a blob downloading, or a layer being compressed and sent), then sends `signal` to `child`.
fn kill_mid_transfer(
    env: &Env,
    store: &str,
    child: &mut std::process::Child,
    signal: i32,
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let partial = std::fs::read_dir(env.root(store).join("tmp"))
            .map(|d| {
                // A file: a pull's staging directory exists before its download starts.
                d.flatten().any(|e| {
                    e.metadata()
                        .map(|m| m.is_file() && m.len() > 0)
                        .unwrap_or(false)
                })
            })
            .unwrap_or(false);
        if partial {
            break;
        }
        assert!(Instant::now() < deadline, "no {what} transfer started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the {what} ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(child.id() as i32, signal) };
}

#[test]
fn a_push_killed_half_way_leaves_nothing_and_the_next_one_completes() {
    let reg = Registry::start();
    let env = Env::new();
    let proxy = CutProxy::slow(&reg.addr, Duration::from_millis(4));
    let name = format!("{}/big:1", proxy.addr);
    let archive = big_archive(env.tmp.path(), &name, 8 << 20);
    env.ok("a", &["load", "-q", "-i", archive.to_str().unwrap()]);
    for signal in [libc::SIGINT, libc::SIGKILL] {
        let mut child = interruptible(&env, "a", &["push", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        kill_mid_transfer(&env, "a", &mut child, signal, "push");
        assert!(!child.wait().unwrap().success());
    }
    // Nothing in the registry under the tag; the next push completes and is pullable.
    assert!(
        !env.kiln("b", &["pull", &format!("{}/big:1", reg.addr)])
            .status
            .success()
    );
    let out = env.ok("a", &["push", &name]);
    let digest = digest_in(out.lines().last().unwrap());
    assert!(env.tmp_is_empty("a"));
    let check = env.kiln("a", &["system", "check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert_eq!(
        digest_in(&env.ok("c", &["pull", &format!("{}/big:1", reg.addr)])),
        digest
    );
}

#[test]
fn credentials_through_a_docker_credential_helper() {
    use std::os::unix::fs::PermissionsExt;
    let reg = Registry::start_with(RegistryOptions {
        htpasswd: Some(("kiln".into(), "helped".into())),
        tls: false,
    });
    let env = Env::new();
    // A helper speaking docker's protocol, keeping its secrets in one file per server.
    let bin = env.tmp.path().join("bin");
    let vault = env.tmp.path().join("vault");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&vault).unwrap();
    let helper = bin.join("docker-credential-kilntest");
    std::fs::write(
        &helper,
        format!(
            r#"#!/bin/sh
v={vault}
case "$1" in
  store) input=$(cat); server=$(printf '%s' "$input" | sed 's/.*"ServerURL":"\([^"]*\)".*/\1/'); printf '%s' "$input" > "$v/$(printf '%s' "$server" | tr ':/' '__')" ;;
  get) server=$(cat); f="$v/$(printf '%s' "$server" | tr ':/' '__')"; if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) server=$(cat); rm -f "$v/$(printf '%s' "$server" | tr ':/' '__')" ;;
esac
"#,
            vault = vault.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(env.docker_config()).unwrap();
    std::fs::write(
        env.docker_config().join("config.json"),
        r#"{"credsStore":"kilntest"}"#,
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let name = format!("{}/helped:1", reg.addr);
    env.with_busybox("a", &name);
    let o = env
        .cmd("a", &["login", &reg.addr, "-u", "kiln", "-p", "helped"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "Login Succeeded\n");
    // No "stored unencrypted" warning: the helper has it; config.json only names the server.
    assert!(!String::from_utf8_lossy(&o.stderr).contains("unencrypted"));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.docker_config().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(v["auths"][&reg.addr], serde_json::json!({}));
    assert_eq!(v["credsStore"], "kilntest");
    let push = env
        .cmd("a", &["push", &name])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(
        push.status.success(),
        "{}",
        String::from_utf8_lossy(&push.stderr)
    );
    let o = env
        .cmd("a", &["logout", &reg.addr])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("Removing login credentials for {}\n", reg.addr)
    );
    assert_eq!(
        std::fs::read_dir(&vault).unwrap().count(),
        0,
        "the helper erased it"
    );
    let pull = env
        .cmd("b", &["pull", &name])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(!pull.status.success());
}

/// A docker-archive of `n` layers of `size` pseudo-random bytes each, tagged `tag`.
fn layers_archive(dir: &Path, tag: &str, n: usize, size: usize) -> PathBuf {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut layers = Vec::new();
    for i in 0..n {
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let mut lb = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        lb.append_data(&mut h, format!("f{i}"), &data[..]).unwrap();
        layers.push(lb.into_inner().unwrap());
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| kiln_image::Digest::of(l).to_string())
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let names: Vec<String> = (0..n).map(|i| format!("l{i}/layer.tar")).collect();
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": "config.json", "RepoTags": [tag], "Layers": names}
    ]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut files: Vec<(String, &Vec<u8>)> = names.iter().cloned().zip(layers.iter()).collect();
    files.push(("config.json".into(), &config));
    files.push(("manifest.json".into(), &manifest));
    for (name, d) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &d[..]).unwrap();
    }
    let path = dir.join("layers.tar");
    std::fs::write(&path, b.into_inner().unwrap()).unwrap();
    path
}

/// Runs `kiln ARGS` in `store` on a pseudo-terminal 150 columns wide (util-linux `script`):
/// the bytes it wrote to the terminal.
fn on_a_tty(env: &Env, store: &str, args: &[&str]) -> String {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let line = format!(
        "stty cols 150 rows 50; exec '{}' {}",
        support::bin(),
        quoted.join(" ")
    );
    let o = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("KILN_ROOT", env.root(store))
        .env("DOCKER_CONFIG", env.docker_config())
        .env("KILN_CERTS_D", env.tmp.path().join("certs.d"))
        .env_remove("KILN_INSECURE_REGISTRIES")
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    assert!(
        o.status.success(),
        "kiln {args:?} on a tty: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// What a terminal shows after `out`: its lines, trailing blanks cut. Understands what the
/// display uses: `\r`, `\n`, `ESC[nA`, `ESC[nB`, `ESC[2K`; any other escape fails the test.
fn screen(out: &str) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = out.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                if row == lines.len() {
                    lines.push(Vec::new());
                }
            }
            '\x1b' => {
                assert_eq!(
                    chars.next(),
                    Some('['),
                    "an escape other than CSI in {out:?}"
                );
                let mut n = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    n.push(*d);
                    chars.next();
                }
                let n: usize = n.parse().unwrap_or(1);
                match chars.next() {
                    Some('A') => row = row.checked_sub(n).expect("cursor up past the top"),
                    Some('B') => {
                        row += n;
                        while lines.len() <= row {
                            lines.push(Vec::new());
                        }
                    }
                    Some('K') if n == 2 => lines[row].clear(),
                    other => panic!("unexpected escape {other:?} in {out:?}"),
                }
            }
            c => {
                let l = &mut lines[row];
                while l.len() < col {
                    l.push(' ');
                }
                if col < l.len() {
                    l[col] = c;
                } else {
                    l.push(c);
                }
                col += 1;
            }
        }
    }
    let mut v: Vec<String> = lines
        .into_iter()
        .map(|l| l.into_iter().collect::<String>().trim_end().to_string())
        .collect();
    while v.last().is_some_and(|l| l.is_empty()) {
        v.pop();
    }
    v
}

fn is_layer_line(l: &str, status: &str) -> bool {
    l.len() == 14 + status.len()
        && l[..12].bytes().all(|b| b.is_ascii_hexdigit())
        && &l[12..14] == ": "
        && l.ends_with(status)
}

#[test]
fn pull_and_push_redraw_one_line_per_layer_on_a_terminal() {
    let reg = Registry::start();
    let env = Env::new();
    let name = format!("{}/multi:1", reg.addr);
    let archive = layers_archive(env.tmp.path(), &name, 6, 1 << 20);
    env.ok("a", &["load", "-q", "-i", archive.to_str().unwrap()]);

    let out = on_a_tty(&env, "a", &["push", &name]);
    let shown = screen(&out);
    assert_eq!(
        shown[0],
        format!("The push refers to repository [{}/multi]", reg.addr),
        "{shown:#?}"
    );
    assert_eq!(
        shown.len(),
        8,
        "one line per layer, redrawn in place: {shown:#?}"
    );
    assert!(
        shown[1..7].iter().all(|l| is_layer_line(l, "Pushed")),
        "{shown:#?}"
    );
    assert!(
        shown[7].starts_with("1: digest: sha256:") && shown[7].contains(" size: "),
        "{shown:#?}"
    );
    // It was redrawn: the sixth layer waited (five upload at once), then went up.
    assert!(
        out.contains("\x1b[2K") && out.contains(": Waiting"),
        "{out:?}"
    );
    // The layers are compressed as they go up: progress by the bytes read.
    assert!(
        out.contains(": Pushing [") && out.contains("/1.05MB"),
        "{out:?}"
    );

    let out = on_a_tty(&env, "b", &["pull", &name]);
    let shown = screen(&out);
    assert_eq!(shown[0], "1: Pulling from multi", "{shown:#?}");
    assert_eq!(shown.len(), 10, "{shown:#?}");
    assert!(
        shown[1..7]
            .iter()
            .all(|l| is_layer_line(l, "Pull complete")),
        "{shown:#?}"
    );
    assert!(shown[7].starts_with("Digest: sha256:"), "{shown:#?}");
    assert_eq!(
        shown[8],
        format!("Status: Downloaded newer image for {name}")
    );
    assert_eq!(shown[9], name);
    // Three download at once; the others said Waiting; bytes moved with docker's bar.
    assert!(out.matches(": Waiting").count() >= 3, "{out:?}");
    assert!(
        out.contains(": Downloading [") && out.contains("/1.049MB"),
        "{out:?}"
    );
    for s in [
        "Pulling fs layer",
        "Verifying Checksum",
        "Download complete",
    ] {
        assert!(out.contains(&format!(": {s} \r")), "{s} in {out:?}");
    }
    // Then docker's `Extracting` with its bar (the layers were unpacked as they came; what
    // was left to unpack shows), between `Download complete` and `Pull complete`.
    let (ext, done) = (
        out.find(": Extracting [").expect("an Extracting line"),
        out.find(": Download complete").unwrap(),
    );
    assert!(
        done < ext && ext < out.rfind(": Pull complete").unwrap(),
        "{out:?}"
    );

    // -q on a terminal: the reference only. Not a terminal: docker's plain lines, no escapes.
    let out = on_a_tty(&env, "c", &["pull", "-q", &name]);
    assert_eq!(screen(&out), std::slice::from_ref(&name));
    let plain = env.ok("d", &["pull", &name]);
    assert!(!plain.contains('\x1b'), "{plain:?}");
    assert_eq!(plain.matches(": Waiting\n").count(), 3, "{plain}");
    assert_eq!(plain.matches(": Pull complete\n").count(), 6, "{plain}");
}

/// The layer blob digests of `name`'s manifest in the registry (curl).
fn registry_layers(addr: &str, repo: &str, tag: &str) -> Vec<String> {
    let curl = support::require_command("curl", "curl");
    let o = Command::new(curl)
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            &format!("http://{addr}/v2/{repo}/manifests/{tag}"),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "curl of the manifest failed");
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap()[7..19].to_string())
        .collect()
}

/// The 12-hex ids of a screen's layer lines, with their statuses.
fn layer_lines(shown: &[String]) -> Vec<(String, String)> {
    shown
        .iter()
        .filter(|l| {
            l.len() > 14 && l[..12].bytes().all(|b| b.is_ascii_hexdigit()) && &l[12..14] == ": "
        })
        .map(|l| (l[..12].to_string(), l[14..].to_string()))
        .collect()
}

#[test]
fn terminal_lines_follow_dockers_layer_order() {
    // docker 20.10 (`docker pull` / `docker push` through `script`, same registry): one line
    // per layer, a pull's in manifest order (`Already exists` first for the layers the store
    // has, where they are in the manifest), a push's top layer first, base last.
    let reg = Registry::start();
    let env = Env::new();
    let three = format!("{}/layers:3", reg.addr);
    let six = format!("{}/layers:6", reg.addr);
    // The archives share their first three layers (the same pseudo-random bytes).
    let archive = layers_archive(env.tmp.path(), &three, 3, 256 << 10);
    env.ok("a", &["load", "-q", "-i", archive.to_str().unwrap()]);
    let archive = layers_archive(env.tmp.path(), &six, 6, 256 << 10);
    env.ok("a", &["load", "-q", "-i", archive.to_str().unwrap()]);
    env.ok("a", &["push", "-q", &three]);
    let out = on_a_tty(&env, "a", &["push", &six]);
    let diff_ids: Vec<String> = serde_json::from_str::<Vec<String>>(
        &env.ok("a", &["inspect", "-f", "{{json .RootFS.Layers}}", &six]),
    )
    .unwrap()
    .iter()
    .map(|d| d[7..19].to_string())
    .collect();
    let top_first: Vec<String> = diff_ids.iter().rev().cloned().collect();
    let shown = screen(&out);
    let lines = layer_lines(&shown);
    assert_eq!(
        lines.iter().map(|l| l.0.clone()).collect::<Vec<_>>(),
        top_first,
        "{shown:#?}"
    );
    assert!(
        lines[..3].iter().all(|l| l.1 == "Pushed")
            && lines[3..].iter().all(|l| l.1 == "Layer already exists"),
        "{shown:#?}"
    );

    let manifest = registry_layers(&reg.addr, "layers", "6");
    env.ok("b", &["pull", "-q", &three]);
    let out = on_a_tty(&env, "b", &["pull", &six]);
    let shown = screen(&out);
    assert_eq!(shown[0], "6: Pulling from layers", "{shown:#?}");
    let want: Vec<(String, String)> = manifest
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let s = if i < 3 {
                "Already exists"
            } else {
                "Pull complete"
            };
            (d.clone(), s.to_string())
        })
        .collect();
    assert_eq!(layer_lines(&shown), want, "{shown:#?}");
    assert_eq!(shown[1..7].len(), 6);

    // Not a terminal: each layer's first line in manifest order, and `Pull complete` too.
    let plain = env.ok("c", &["pull", "-q", &three]);
    assert_eq!(plain, format!("{three}\n"));
    let plain = env.ok("c", &["pull", &six]);
    let firsts: Vec<String> = plain
        .lines()
        .filter(|l| l.ends_with(": Already exists") || l.ends_with(": Pulling fs layer"))
        .map(|l| l[..12].to_string())
        .collect();
    assert_eq!(firsts, manifest, "{plain}");
    let complete: Vec<String> = plain
        .lines()
        .filter(|l| l.ends_with(": Pull complete"))
        .map(|l| l[..12].to_string())
        .collect();
    assert_eq!(complete, manifest[3..], "{plain}");
}
