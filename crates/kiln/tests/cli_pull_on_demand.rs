//! Registries inside `kiln build` and `kiln run`, against real `docker-registry`s on
//! 127.0.0.1: bases pulled on demand (FROM, `COPY --from`, `RUN --mount=from=`), an offline
//! rebuild with the network cut (`unshare -n`), `--pull` re-checking a moved tag,
//! `--pull=never`, docker's messages at the FROM line, `build --push`, `-o type=registry`,
//! `push=true` with zstd, `run`/`create` of a missing image, and Docker Hub mirrors (Docker
//! Hub itself replaced by a local registry or a closed port: nothing leaves the machine).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln_test::registry::Registry;

/// Stores, a docker config directory and build contexts in one temp directory. Docker Hub
/// is a closed local port unless a test names a stand-in, and no mirror is configured.
struct Env {
    tmp: tempfile::TempDir,
    hub: String,
    mirrors: String,
}

impl Env {
    fn new() -> Env {
        Env {
            tmp: tempfile::tempdir().unwrap(),
            hub: "http://127.0.0.1:9".into(),
            mirrors: String::new(),
        }
    }

    fn root(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn setup(&self, c: &mut Command, store: &str) {
        c.env("KILN_ROOT", self.root(store))
            .env("DOCKER_CONFIG", self.tmp.path().join("docker"))
            .env("KILN_CERTS_D", self.tmp.path().join("certs.d"))
            .env("KILN_REGISTRY_MIRRORS", &self.mirrors)
            .env("KILN_DOCKER_HUB_ENDPOINT", &self.hub)
            .env_remove("KILN_INSECURE_REGISTRIES")
            .env_remove("BUILDKIT_PROGRESS")
            .env_remove("SOURCE_DATE_EPOCH");
    }

    fn kiln(&self, store: &str, args: &[&str]) -> Output {
        let mut c = Command::new(support::bin());
        self.setup(&mut c, store);
        c.args(args).output().unwrap()
    }

    /// kiln in a new network namespace whose only interface (loopback) is down: no
    /// connection of any kind can be made.
    fn kiln_offline(&self, store: &str, args: &[&str]) -> Output {
        let unshare = support::require_command("unshare", "util-linux");
        let mut c = Command::new(unshare);
        self.setup(&mut c, store);
        c.arg("--net").arg(support::bin()).args(args);
        c.output().unwrap()
    }

    fn ok(&self, store: &str, args: &[&str]) -> (String, String) {
        check(self.kiln(store, args), args)
    }

    /// A store with busybox loaded and tagged `name`, pushed.
    fn push_busybox(&self, store: &str, name: &str) -> String {
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
        digest_in(&self.ok(store, &["push", name]).0)
    }

    /// A build context with this Dockerfile.
    fn context(&self, name: &str, dockerfile: &str) -> String {
        let d = self.tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("Dockerfile"), dockerfile).unwrap();
        d.to_str().unwrap().to_string()
    }
}

fn check(o: Output, args: &[&str]) -> (String, String) {
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "kiln {args:?} failed:\n{out}{err}");
    (out, err)
}

fn digest_in(s: &str) -> String {
    let i = s.find("sha256:").expect("a digest");
    s[i..i + 71].to_string()
}

fn skopeo_inspect(name: &str, raw: bool) -> serde_json::Value {
    let skopeo = support::require_command("skopeo", "skopeo");
    let mut c = Command::new(skopeo);
    c.arg("inspect").arg("--tls-verify=false");
    if raw {
        c.arg("--raw");
    }
    let o = c.arg(format!("docker://{name}")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"))
}

#[test]
fn bases_only_in_a_registry_are_pulled_and_an_offline_rebuild_needs_no_network() {
    support::require_root();
    let reg = Registry::start();
    let env = Env::new();
    let base = format!("{}/base:1", reg.addr);
    let extra = format!("{}/extra:1", reg.addr);
    let mounted = format!("{}/mounted:1", reg.addr);
    for n in [&base, &extra, &mounted] {
        env.push_busybox("a", n);
    }
    let ctx = env.context(
        "ctx",
        &format!(
            "FROM {base}\nCOPY --from={extra} /bin/busybox /copied\nRUN --mount=from={mounted},target=/m test -x /m/bin/busybox && echo ok > /mounted\n"
        ),
    );
    let out = env.tmp.path().join("out");
    let dest = format!("type=local,dest={}", out.display());
    let (_, err) = env.ok("b", &["build", "--progress=plain", "-o", &dest, &ctx]);
    for r in [&base, &extra, &mounted] {
        assert!(
            err.contains(&format!("[internal] load metadata for {r}\n")),
            "{err}"
        );
    }
    assert!(
        err.starts_with(&format!("#1 [internal] load metadata for {base}\n")),
        "{err}"
    );
    assert!(err.contains("#1 DONE "), "{err}");
    assert_eq!(read(&out, "mounted"), "ok\n");
    assert!(out.join("copied").is_file());
    // The pulled images are in the store under their names, as `kiln pull` leaves them.
    let (images, _) = env.ok("b", &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    for r in [&base, &extra, &mounted] {
        assert!(images.lines().any(|l| l == r.as_str()), "{images}");
    }

    // A `--build-context NAME=docker-image://REF` is pulled the same way.
    let aliased = env.context(
        "aliased",
        "FROM scratch\nCOPY --from=tools /bin/busybox /bb\n",
    );
    let ctx_arg = format!("tools=docker-image://{extra}");
    let (_, err) = env.ok(
        "c",
        &[
            "build",
            "--progress=plain",
            "--build-context",
            &ctx_arg,
            &aliased,
        ],
    );
    assert!(
        err.starts_with(&format!("#1 [internal] load metadata for {extra}\n")),
        "{err}"
    );

    // Offline: the network cut, everything local, nothing asked.
    let o = env.kiln_offline("b", &["build", "--progress=plain", "-t", "app:1", &ctx]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("load metadata"), "{err}");
    // The cut is real: a build that must ask the registry fails in it.
    let o = env.kiln_offline("b", &["build", "--pull", "--progress=plain", &ctx]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Dockerfile:1"), "{err}");
    assert!(
        err.contains(&format!("Get \"http://{}/v2/\": ", reg.addr)),
        "{err}"
    );
}

#[test]
fn pull_true_rechecks_every_base_and_builds_on_the_moved_tag() {
    support::require_root();
    let reg = Registry::start();
    let env = Env::new();
    let base = format!("{}/base:1", reg.addr);
    env.push_busybox("a", &base);
    let ctx = env.context(
        "ctx",
        &format!("FROM {base}\nRUN (cat /v 2>/dev/null || echo none) > /seen\n"),
    );
    let export = |store: &str, extra: &[&str]| {
        let out = env.tmp.path().join(format!("out-{}", extra.len()));
        let _ = std::fs::remove_dir_all(&out);
        let dest = format!("type=local,dest={}", out.display());
        let mut args = vec!["build", "--progress=plain", "-o", &dest];
        args.extend_from_slice(extra);
        args.push(&ctx);
        let (_, err) = env.ok(store, &args);
        (read(&out, "seen"), err)
    };
    assert_eq!(export("b", &[]).0, "none\n");
    // The tag moves in the registry: store a builds a new base and pushes it (build --push).
    let next = env.context("next", &format!("FROM {base}\nRUN echo 2 > /v\n"));
    let (_, err) = env.ok(
        "a",
        &["build", "--progress=plain", "--push", "-t", &base, &next],
    );
    assert!(err.contains("1: digest: sha256:"), "{err}");
    // Without --pull the store's base is used, and nothing is asked.
    let (seen, err) = export("b", &["--pull=false"]);
    assert_eq!(seen, "none\n");
    assert!(!err.contains("load metadata"), "{err}");
    // --pull asks again and builds on the new base.
    let (seen, err) = export("b", &["--pull"]);
    assert_eq!(seen, "2\n");
    assert!(
        err.contains(&format!("[internal] load metadata for {base}")),
        "{err}"
    );
    // Asked again with nothing new: checked, no layer downloaded, same result.
    let (seen, err) = export("b", &["--pull=always"]);
    assert_eq!(seen, "2\n");
    let vertex: Vec<&str> = err.lines().filter(|l| l.starts_with("#1 ")).collect();
    assert_eq!(vertex.len(), 3, "{err}"); // name, digest, DONE: no layer sub-step
}

#[test]
fn pull_never_and_missing_images_fail_at_the_from_line() {
    support::require_root();
    let reg = Registry::start();
    let env = Env::new();
    env.push_busybox("a", &format!("{}/base:1", reg.addr));
    let build = |store: &str, dockerfile: &str, extra: &[&str]| {
        let ctx = env.context("ctx", dockerfile);
        let mut args = vec!["build", "--progress=plain"];
        args.extend_from_slice(extra);
        args.push(&ctx);
        let o = env.kiln(store, &args);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = build(
        "b",
        &format!("ARG V=1\nFROM {}/base:$V\n", reg.addr),
        &["--pull=never"],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("Dockerfile:2"), "{err}");
    assert!(
        err.contains(&format!(
            "base image \"{}/base:1\" is not in the store",
            reg.addr
        )),
        "{err}"
    );
    assert!(err.contains("pulling is disabled (--pull=never)"), "{err}");
    assert!(!err.contains("load metadata"), "{err}");
    // A tag the registry lacks, and a repository it lacks: docker's message, at the line.
    for (name, df) in [
        (format!("{}/base:9", reg.addr), "# tag\nFROM {}\n"),
        (format!("{}/nothere:1", reg.addr), "# repo\nFROM {}\n"),
    ] {
        let (code, err) = build("b", &df.replace("{}", &name), &[]);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "ERROR: manifest for {name} not found: manifest unknown: manifest unknown\n --> Dockerfile:2:1"
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!("#1 [internal] load metadata for {name}\n")),
            "{err}"
        );
    }
    // A --from that is neither a stage nor an image anywhere.
    let (code, err) = build(
        "b",
        &format!(
            "FROM {0}/base:1 AS builder\nFROM {0}/base:1\nCOPY --from={0}/gone:1 /a /b\n",
            reg.addr
        ),
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(err.contains("manifest unknown"), "{err}");
    // Values docker and buildx do not take.
    let (code, err) = build("b", "FROM scratch\n", &["--pull=sometimes"]);
    assert_eq!(code, Some(125));
    assert!(
        err.starts_with("invalid argument \"sometimes\" for \"--pull\" flag"),
        "{err}"
    );
}

#[test]
fn build_push_and_registry_outputs_put_the_image_in_the_registry() {
    support::require_root();
    let reg = Registry::start();
    let env = Env::new();
    let base = format!("{}/base:1", reg.addr);
    env.push_busybox("a", &base);
    let ctx = env.context("ctx", &format!("FROM {base}\nRUN echo app > /app\n"));
    let meta = env.tmp.path().join("meta.json");
    let app1 = format!("{}/app:1", reg.addr);
    let (out, err) = env.ok(
        "a",
        &[
            "build",
            "--progress=plain",
            "--push",
            "-t",
            &app1,
            "--metadata-file",
            meta.to_str().unwrap(),
            &ctx,
        ],
    );
    assert_eq!(out, "");
    assert!(
        err.contains(&format!(
            "The push refers to repository [{}/app]\n",
            reg.addr
        )),
        "{err}"
    );
    let digest = digest_in(err.lines().last().unwrap());
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with(&format!("1: digest: {digest} size: ")),
        "{err}"
    );
    assert_eq!(skopeo_inspect(&app1, false)["Digest"], digest.as_str());
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(m["containerimage.digest"], digest.as_str());
    // Another store pulls the same manifest.
    let (pulled, _) = env.ok("c", &["pull", &app1]);
    assert!(pulled.contains(&format!("Digest: {digest}\n")), "{pulled}");

    // -o type=registry (the -t tag is pushed; -q keeps stderr quiet and prints the ID).
    let app2 = format!("{}/app:2", reg.addr);
    let (out, err) = env.ok(
        "a",
        &["build", "-q", "-t", &app2, "-o", "type=registry", &ctx],
    );
    assert!(out.starts_with("sha256:"), "{out}");
    assert!(!err.contains("digest:"), "{err}");
    assert_eq!(skopeo_inspect(&app2, false)["Digest"], digest.as_str());

    // type=image,push=true with zstd forced: every layer zstd on the wire.
    let app3 = format!("{}/app:3", reg.addr);
    let spec = format!("type=image,name={app3},push=true,compression=zstd,force-compression=true");
    env.ok("a", &["build", "--progress=plain", "-o", &spec, &ctx]);
    let manifest = skopeo_inspect(&app3, true);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{manifest}");
    for l in layers {
        assert!(
            l["mediaType"].as_str().unwrap().ends_with("+zstd"),
            "{manifest}"
        );
    }
    let (_, err) = env.ok("c", &["pull", &app3]);
    assert!(err.is_empty(), "{err}");
    let (cat, _) = env.ok("c", &["run", "--rm", &app3, "cat", "/app"]);
    assert_eq!(cat, "app\n");

    // What each leaves in the local image list: -t names it there (pushed by --push or a
    // type=registry without name=), type=image,name=,push=true both tags and pushes, and
    // type=registry,name= only pushes (buildx's registry exporter loads nothing; the
    // build's layers stay cached).
    let list = |store: &str| {
        env.ok(
            store,
            &["images", "-a", "--format", "{{.Repository}}:{{.Tag}}"],
        )
        .0
    };
    let before = list("a");
    for n in [&app1, &app2, &app3] {
        assert!(before.contains(&format!("{n}\n")), "{n} in {before}");
    }
    let ctx4 = env.context("ctx4", &format!("FROM {base}\nRUN echo four > /app\n"));
    let app4 = format!("{}/app:4", reg.addr);
    let spec = format!("type=registry,name={app4}");
    let (_, err) = env.ok("a", &["build", "--progress=plain", "-o", &spec, &ctx4]);
    let digest4 = digest_in(err.lines().last().unwrap());
    assert_eq!(skopeo_inspect(&app4, false)["Digest"], digest4.as_str());
    assert_eq!(
        list("a"),
        before,
        "type=registry,name= changed the image list"
    );
    assert!(!env.kiln("a", &["inspect", &app4]).status.success());
    let (_, err) = env.ok("a", &["build", "--progress=plain", "-o", &spec, &ctx4]);
    assert!(err.contains(" CACHED\n"), "{err}");
    assert_eq!(digest_in(err.lines().last().unwrap()), digest4);
    let (cat, _) = env.ok("c", &["run", "--rm", &app4, "cat", "/app"]);
    assert_eq!(cat, "four\n");

    // Nothing to push to: refused before building.
    let o = env.kiln("a", &["build", "--push", &ctx]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("tag is needed when pushing to registry"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A registry that is not there: the build is done, the push fails, exit 1.
    let o = env.kiln(
        "a",
        &[
            "build",
            "--progress=plain",
            "--push",
            "-t",
            "127.0.0.1:9/x:1",
            &ctx,
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("ERROR: failed to push 127.0.0.1:9/x:1: "),
        "{err}"
    );
}

#[test]
fn run_and_create_pull_a_missing_image_as_docker_does() {
    support::require_root();
    let reg = Registry::start();
    let env = Env::new();
    let base = format!("{}/base:1", reg.addr);
    let digest = env.push_busybox("a", &base);
    let o = env.kiln("b", &["run", "--rm", &base, "echo", "hi"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n");
    assert!(
        err.starts_with(&format!(
            "Unable to find image '{base}' locally\n1: Pulling from base\n"
        )),
        "{err}"
    );
    assert!(
        err.ends_with(&format!(
            "Digest: {digest}\nStatus: Downloaded newer image for {base}\n"
        )),
        "{err}"
    );
    // Present: nothing asked (the network cut shows it).
    let o = env.kiln_offline("b", &["run", "--rm", &base, "echo", "hi"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    // --pull always asks even so.
    let o = env.kiln("b", &["create", "--pull", "always", &base, "true"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        err,
        format!("1: Pulling from base\nDigest: {digest}\nStatus: Image is up to date for {base}\n")
    );
    // --pull never: docker's message, exit 125.
    let o = env.kiln("c", &["run", "--rm", "--pull=never", &base, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "kiln: Error response from daemon: No such image: {base}.\nSee 'kiln run --help'.\n"
        )
    );
    let o = env.kiln(
        "c",
        &["run", "--rm", &format!("{}/base:9", reg.addr), "true"],
    );
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "kiln: Error response from daemon: manifest for {}/base:9 not found: manifest unknown: manifest unknown.\n",
            reg.addr
        )),
        "{err}"
    );
    let o = env.kiln("c", &["create", "--pull=sometimes", &base]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with(
            "kiln: invalid pull option: 'sometimes': must be one of \"always\", \"missing\" or \"never\".\n"
        )
    );
}

#[test]
fn docker_hub_pulls_try_the_mirrors_first_and_pushes_never_go_there() {
    support::require_root();
    let mirror = Registry::start();
    let hub = Registry::start();
    let mut env = Env::new();
    // The mirror holds docker.io's library/mbase:1; the Hub stand-in holds library/hubonly:1.
    env.push_busybox("a", &format!("{}/library/mbase:1", mirror.addr));
    env.push_busybox("a", &format!("{}/library/hubonly:1", hub.addr));

    // Hub unreachable: mbase comes from the mirror (after a mirror that is down).
    env.mirrors = format!("http://127.0.0.1:9,http://{}", mirror.addr);
    let (out, _) = env.ok("b", &["pull", "mbase:1"]);
    assert!(out.starts_with("1: Pulling from library/mbase\n"), "{out}");
    assert!(out.ends_with("docker.io/library/mbase:1\n"), "{out}");
    let ctx = env.context("ctx", "FROM mbase:1\nRUN echo ok > /ok\n");
    env.ok("c", &["build", "--progress=plain", "-t", "fromhub", &ctx]);
    // An image no mirror has: nothing reachable serves it.
    let o = env.kiln("b", &["pull", "hubonly:1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("http://127.0.0.1:9/v2/"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // With the Hub stand-in: a mirror that lacks the image falls back to the Hub.
    env.hub = format!("http://{}", hub.addr);
    let (out, _) = env.ok("b", &["pull", "hubonly:1"]);
    assert!(
        out.contains("Status: Downloaded newer image for hubonly:1\n"),
        "{out}"
    );
    // Pushes go to the Hub, never to a mirror.
    env.ok("b", &["tag", "hubonly:1", "pushed:1"]);
    env.ok("b", &["push", "pushed:1"]);
    env.mirrors.clear();
    env.ok("d", &["pull", &format!("{}/library/pushed:1", hub.addr)]);
    let o = env.kiln("d", &["pull", &format!("{}/library/pushed:1", mirror.addr)]);
    assert_eq!(o.status.code(), Some(1));
    // A mirror that is not a URL is an error, not a silent skip.
    env.mirrors = mirror.addr.clone();
    let o = env.kiln("e", &["pull", "mbase:1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("must start with http:// or https://"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
