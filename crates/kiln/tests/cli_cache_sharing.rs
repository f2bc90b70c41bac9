//! A build cache shared between machines: `--cache-to` and `--cache-from` with a registry
//! (Debian's `docker-registry` on 127.0.0.1), an OCI layout directory, and inline records in
//! a pushed image. Two stores on one machine stand for two CI machines: A builds and exports,
//! B starts empty (busybox loaded) and imports. See docs/cache-sharing.md.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln_test::registry::{Registry, RegistryOptions};

/// A multi-stage build: the build stage's RUN uses a cache mount (and says what it found
/// there), the final stage copies its result.
const MULTI: &str = "\
FROM localhost/busybox:latest AS build
COPY a.txt /a.txt
RUN --mount=type=cache,id=pkgs,target=/cache sh -c 'ls /cache > /seen.txt; echo warm > /cache/pkg; cat /a.txt > /out.txt'
FROM localhost/busybox:latest
COPY --from=build /out.txt /out.txt
RUN cat /out.txt > /final.txt
";

/// Stores, a build context and a docker config in one temp directory.
struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new(dockerfile: &str) -> Env {
        support::require_root();
        let env = Env {
            tmp: tempfile::tempdir().unwrap(),
        };
        env.file("Dockerfile", dockerfile);
        env.file("a.txt", "one\n");
        env
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn file(&self, rel: &str, content: &str) {
        let p = self.path("ctx").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn kiln(&self, store: &str, args: &[&str]) -> Output {
        Command::new(support::bin())
            .env("KILN_ROOT", self.path(store))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("KILN_CERTS_D", self.path("certs.d"))
            .env_remove("KILN_INSECURE_REGISTRIES")
            .env_remove("SOURCE_DATE_EPOCH")
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, store: &str, args: &[&str]) -> (String, String) {
        let o = self.kiln(store, args);
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        );
        assert!(o.status.success(), "kiln {args:?} failed:\n{out}{err}");
        (out, err)
    }

    /// A store with busybox loaded (the base image is local on both machines).
    fn store(&self, name: &str) {
        let archive = support::busybox_archive().to_str().unwrap();
        self.ok(name, &["load", "-q", "-i", archive]);
    }

    /// `kiln build --progress plain -t app CTX EXTRA...` in `store`: its stderr.
    fn build(&self, store: &str, extra: &[&str]) -> String {
        let ctx = self.path("ctx");
        let mut args = vec!["build", "--progress", "plain", "-t", "app"];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        self.ok(store, &args).1
    }

    fn image_id(&self, store: &str) -> String {
        self.ok(store, &["inspect", "-f", "{{.Id}}", "app"])
            .0
            .trim()
            .to_string()
    }

    /// The bytes `kiln save app` writes: same manifest, config and layers give the same archive.
    fn saved(&self, store: &str) -> Vec<u8> {
        self.kiln(store, &["save", "app"]).stdout
    }

    /// Names of the directories (or files) under `rel` of `store`.
    fn list(&self, store: &str, rel: &str) -> BTreeSet<String> {
        std::fs::read_dir(self.path(store).join(rel))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The step names of a plain progress log that ran (`DONE`) and that came from the cache
/// (`CACHED`), FROM lines left out.
fn steps(log: &str) -> (Vec<String>, Vec<String>) {
    let mut names = std::collections::BTreeMap::new();
    let (mut ran, mut cached) = (Vec::new(), Vec::new());
    for l in log.lines() {
        let Some(rest) = l.strip_prefix('#') else {
            continue;
        };
        let Some((n, what)) = rest.split_once(' ') else {
            continue;
        };
        if what.starts_with('[') {
            names.insert(n.to_string(), what.to_string());
        } else if let Some(name) = names.get(n).filter(|s| !s.contains("] FROM ")) {
            if what == "CACHED" {
                cached.push(name.clone());
            } else if what.starts_with("DONE") {
                ran.push(name.clone());
            }
        }
    }
    (ran, cached)
}

fn oci_manifest_of(layout: &Path) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let d = index["manifests"][0]["digest"].as_str().unwrap();
    blob_json(layout, d)
}

fn blob_json(layout: &Path, digest: &str) -> serde_json::Value {
    let p = layout.join("blobs/sha256").join(&digest[7..]);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn registry_cache_gives_an_empty_store_every_step_the_same_image_and_a_warm_cache_mount() {
    let reg = Registry::start();
    let env = Env::new(MULTI);
    env.store("a");
    env.store("b");
    let cache = format!("{}/cache/app:buildcache", reg.addr);
    let to = format!("type=registry,ref={cache},mode=max,cache-mounts=true");
    let log = env.build("a", &["--cache-to", &to]);
    assert!(
        log.contains(&format!("exporting cache to registry {cache}")),
        "{log}"
    );
    let (ran, cached) = steps(&log);
    assert_eq!((ran.len(), cached.len()), (4, 0), "{log}");

    // B: an empty cache, `--cache-from REF` as docker users write it.
    let log = env.build("b", &["--cache-from", &cache]);
    let (ran, cached) = steps(&log);
    assert!(ran.is_empty(), "nothing runs on B:\n{log}");
    assert_eq!(cached.len(), 4, "{log}");
    assert_eq!(env.image_id("a"), env.image_id("b"));
    assert_eq!(
        env.saved("a"),
        env.saved("b"),
        "same manifest, config and layers"
    );
    // Lazy: B fetched the final image's two layers, not the build stage's.
    let snapshots = |s| env.list(s, "snapshots-v1").len();
    assert_eq!(snapshots("a"), 1 + 4);
    assert_eq!(snapshots("b"), 1 + 2);
    // What B fetched is B's own now: a rebuild without --cache-from hits those steps
    // locally; the build stage, never fetched, runs (and makes the same file, so the final
    // stage, keyed by what it copies, stays cached).
    let (ran, cached) = steps(&env.build("b", &[]));
    assert_eq!((ran.len(), cached.len()), (2, 2));
    assert!(ran.iter().all(|s| s.starts_with("[build ")));

    // A changed input of the RUN with the cache mount: it runs on B and finds A's cache.
    env.file("a.txt", "two\n");
    let out = env.path("out");
    let dest = format!("type=local,dest={}", out.display());
    let log = env.build(
        "b",
        &["--cache-from", &cache, "--target", "build", "-o", &dest],
    );
    let (ran, _) = steps(&log);
    assert_eq!(ran.len(), 2, "COPY and RUN ran:\n{log}");
    assert_eq!(
        std::fs::read_to_string(out.join("seen.txt")).unwrap(),
        "pkg\n",
        "the RUN saw the cache mount A left"
    );
}

#[test]
fn local_cache_both_ways_and_mode_min_leaves_out_intermediate_stages() {
    let env = Env::new(MULTI);
    env.store("a");
    env.store("b");
    env.store("c");
    env.store("d");
    let max = env.path("cache-max");
    let min = env.path("cache-min");
    let zstd = env.path("cache-zstd");
    env.build(
        "a",
        &[
            "--cache-to",
            &format!("type=local,dest={},mode=max", max.display()),
            "--cache-to",
            &format!("type=local,dest={}", min.display()),
            "--cache-to",
            &format!("type=local,dest={},compression=zstd,tag=z", zstd.display()),
        ],
    );
    for (layout, mode, records) in [(&max, "max", 4), (&min, "min", 2)] {
        let m = oci_manifest_of(layout);
        assert_eq!(m["artifactType"], "application/vnd.kiln.cache.v1");
        assert_eq!(
            m["config"]["mediaType"],
            "application/vnd.kiln.cache.config.v1+json"
        );
        let config = blob_json(layout, m["config"]["digest"].as_str().unwrap());
        assert_eq!(config["mode"], mode);
        assert_eq!(
            config["records"].as_array().unwrap().len(),
            records,
            "{config}"
        );
        assert_eq!(m["layers"].as_array().unwrap().len(), records);
        assert!(config["cacheMounts"].as_array().unwrap().is_empty());
    }

    let from = |d: &Path| format!("type=local,src={}", d.display());
    let (ran, cached) = steps(&env.build("b", &["--cache-from", &from(&max)]));
    assert_eq!((ran.len(), cached.len()), (0, 4));
    // mode=min: the build stage runs again; what it makes is the same, so the final stage
    // (keyed by the content it copies) hits.
    let log = env.build("c", &["--cache-from", &from(&min)]);
    let (ran, cached) = steps(&log);
    assert_eq!(ran.len(), 2, "{log}");
    assert!(ran.iter().all(|s| s.starts_with("[build ")), "{log}");
    assert!(cached.iter().all(|s| s.starts_with("[stage-1 ")), "{log}");
    // zstd layers, under another tag of the layout: read back with tag=.
    let m = oci_manifest_of(&zstd);
    assert!(
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"),
        "{m}"
    );
    let from_z = format!("type=local,src={},tag=z", zstd.display());
    let (ran, cached) = steps(&env.build("d", &["--cache-from", &from_z]));
    assert_eq!((ran.len(), cached.len()), (2, 2));
    let a = env.image_id("a");
    assert_eq!(env.image_id("b"), a);
    assert_eq!(env.image_id("c"), a);
    assert_eq!(env.image_id("d"), a);
    assert_eq!(env.saved("d"), env.saved("a"));
}

#[test]
fn inline_records_travel_with_a_pushed_image() {
    let reg = Registry::start();
    let env = Env::new(MULTI);
    env.store("a");
    env.store("b");
    let name = format!("{}/app:1", reg.addr);
    env.build("a", &["--cache-to", "type=inline", "-t", &name]);
    let config = env.ok("a", &["inspect", "-f", "{{.Id}}", &name]).0;
    assert!(!config.trim().is_empty());
    env.ok("a", &["push", &name]);
    let log = env.build("b", &["--cache-from", &name, "--cache-to", "type=inline"]);
    let (ran, cached) = steps(&log);
    // Inline records are mode=min: the final image's steps.
    assert_eq!(cached.len(), 2, "{log}");
    assert!(ran.iter().all(|s| s.starts_with("[build ")), "{log}");
    assert_eq!(env.image_id("a"), env.image_id("b"));
    let (code, _, err) = {
        let ctx = env.path("ctx");
        let o = env.kiln(
            "b",
            &[
                "build",
                "--cache-to",
                "type=inline,mode=max",
                ctx.to_str().unwrap(),
            ],
        );
        (
            o.status.code(),
            o.stdout,
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    assert_eq!(code, Some(125), "{err}");
    assert!(err.contains("inline cache supports mode=min only"), "{err}");
}

#[test]
fn a_missing_cache_is_a_warning_and_the_build_goes_on() {
    let reg = Registry::start();
    let env = Env::new(MULTI);
    env.store("b");
    let missing = format!("{}/cache/none:here", reg.addr);
    let nowhere = env.path("no-such-dir");
    let local = format!("type=local,src={}", nowhere.display());
    let log = env.build("b", &["--cache-from", &missing, "--cache-from", &local]);
    let (ran, _) = steps(&log);
    assert_eq!(ran.len(), 4, "{log}");
    assert!(
        log.contains(&format!("WARNING: failed to import cache {missing}: ")),
        "{log}"
    );
    assert!(log.contains("manifest unknown"), "{log}");
    assert!(
        log.contains(&format!(
            "WARNING: failed to import cache {}: ",
            nowhere.display()
        )),
        "{log}"
    );
    // Flags that name no usable cache are refused before anything runs (docker's 125).
    for (flag, value, why) in [
        (
            "--cache-to",
            "type=gha",
            "cache type gha is not supported by kiln",
        ),
        ("--cache-to", "type=registry", "type=registry needs ref="),
        (
            "--cache-from",
            "type=local,src=/x,mode=max",
            "mode= is a --cache-to attribute",
        ),
    ] {
        let ctx = env.path("ctx");
        let o = env.kiln("b", &["build", flag, value, ctx.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(125), "{flag} {value}: {err}");
        assert!(
            err.contains(&format!(
                "invalid argument {value:?} for \"{flag}\" flag: {why}"
            )),
            "{err}"
        );
    }
}

#[test]
fn a_corrupted_cache_blob_is_refused_and_the_store_untouched() {
    let env =
        Env::new("FROM localhost/busybox:latest\nCOPY a.txt /a.txt\nRUN echo ran > /ran.txt\n");
    env.store("a");
    env.store("b");
    let layout = env.path("cache");
    env.build(
        "a",
        &[
            "--cache-to",
            &format!("type=local,dest={}", layout.display()),
        ],
    );
    // The COPY layer's blob gets other bytes under its name.
    let m = oci_manifest_of(&layout);
    let config = blob_json(&layout, m["config"]["digest"].as_str().unwrap());
    let first = config["records"][0]["layer"]["blob"].as_u64().unwrap() as usize;
    let digest = m["layers"][first]["digest"].as_str().unwrap().to_string();
    let blob = layout.join("blobs/sha256").join(&digest[7..]);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();

    // B unpacks its base first (a build FROM it alone): what follows must add nothing.
    let base = env.path("base");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("Dockerfile"), "FROM localhost/busybox:latest\n").unwrap();
    env.ok("b", &["build", "-q", base.to_str().unwrap()]);
    let before = (env.list("b", "blobs/sha256"), env.list("b", "snapshots-v1"));
    let ctx = env.path("ctx");
    let from = format!("type=local,src={}", layout.display());
    let o = env.kiln(
        "b",
        &[
            "build",
            "--progress",
            "plain",
            "-t",
            "app",
            "--cache-from",
            &from,
            ctx.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("blob {digest} does not match its digest"))
            && err.contains("refused"),
        "{err}"
    );
    let after = (env.list("b", "blobs/sha256"), env.list("b", "snapshots-v1"));
    assert_eq!(before, after, "nothing of the bad blob is kept");
    assert!(env.list("b", "tmp").is_empty(), "no temp files left");
    assert!(!env.kiln("b", &["inspect", "app"]).status.success());
    // Without the bad cache the build runs as usual.
    let (ran, _) = steps(&env.build("b", &[]));
    assert_eq!(ran.len(), 2);
}

#[test]
fn a_failed_cache_export_fails_the_build_after_the_image_is_written() {
    let env = Env::new(MULTI);
    env.store("a");
    // Nothing listens on port 1 of the loopback address.
    let to = "type=registry,ref=127.0.0.1:1/cache:x";
    let ctx = env.path("ctx");
    let o = env.kiln(
        "a",
        &[
            "build",
            "-t",
            "app",
            "--cache-to",
            to,
            ctx.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("exporting cache to registry 127.0.0.1:1/cache:x"),
        "{err}"
    );
    assert!(
        env.kiln("a", &["inspect", "app"]).status.success(),
        "the image is there"
    );
    // ignore-error=true: a warning, and success.
    let to = format!("{to},ignore-error=true");
    let log = env.build("a", &["--cache-to", &to]);
    assert!(
        log.contains("WARNING: failed to export cache to registry 127.0.0.1:1/cache:x"),
        "{log}"
    );
}

#[test]
fn a_restored_cache_mount_keeps_its_owner_and_mode() {
    let env = Env::new(
        "FROM localhost/busybox:latest\nCOPY a.txt /a.txt\nRUN --mount=type=cache,id=u,target=/c,uid=1000,gid=1000,mode=0700 sh -c 'stat -c \"%A %u %g\" /c > /meta; ls /c > /seen; echo x > /c/f'\n",
    );
    env.store("a");
    env.store("b");
    let layout = env.path("cache");
    let (oa, ob) = (env.path("oa"), env.path("ob"));
    env.build(
        "a",
        &[
            "--cache-to",
            &format!("type=local,dest={},cache-mounts=true", layout.display()),
            "-o",
            &format!("type=local,dest={}", oa.display()),
        ],
    );
    env.file("a.txt", "two\n");
    env.build(
        "b",
        &[
            "--cache-from",
            &format!("type=local,src={}", layout.display()),
            "-o",
            &format!("type=local,dest={}", ob.display()),
        ],
    );
    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    assert_eq!(read(&oa, "meta"), "drwx------ 1000 1000\n");
    assert_eq!(read(&ob, "meta"), read(&oa, "meta"));
    assert_eq!(read(&ob, "seen"), "f\n");
}

#[test]
fn a_cache_behind_a_login_needs_the_credentials_docker_login_stored() {
    let reg = Registry::start_with(RegistryOptions {
        htpasswd: Some(("ci".into(), "s3cret".into())),
        ..Default::default()
    });
    let env = Env::new(MULTI);
    env.store("a");
    env.store("b");
    let cache = format!("{}/cache/app:main", reg.addr);
    let to = format!("type=registry,ref={cache},mode=max");
    // Not logged in: the export fails after the image, the import is a warning.
    let ctx = env.path("ctx");
    let o = env.kiln(
        "a",
        &[
            "build",
            "-t",
            "app",
            "--cache-to",
            &to,
            ctx.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    // docker's words for a basic-auth registry without credentials.
    assert!(
        err.contains(&format!(
            "ERROR: exporting cache to registry {cache}: Head \"http://{}/v2/cache/app/blobs/sha256:",
            reg.addr
        )) && err.contains("\": no basic auth credentials\n"),
        "{err}"
    );
    let log = env.build("b", &["--cache-from", &cache]);
    assert!(
        log.contains(&format!(
            "WARNING: failed to import cache {cache}: Head \"http://{}/v2/cache/app/manifests/main\": no basic auth credentials\n",
            reg.addr
        )),
        "{log}"
    );
    // Logged in (one docker config for both "machines"): both ways work.
    env.ok("a", &["login", &reg.addr, "-u", "ci", "-p", "s3cret"]);
    env.build("a", &["--cache-to", &to]);
    env.ok("b", &["rmi", "app"]);
    env.ok("b", &["builder", "prune", "-a", "-f"]);
    let (ran, cached) = steps(&env.build("b", &["--cache-from", &cache]));
    assert_eq!((ran.len(), cached.len()), (0, 4));
    assert_eq!(env.image_id("a"), env.image_id("b"));
}

/// A tar whose entries are written by hand (`tar::Builder` refuses `..`): (type, name,
/// link target, data).
fn raw_tar(entries: &[(u8, &str, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (kind, name, link, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::new(*kind));
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        let b = h.as_mut_bytes();
        b[..name.len()].copy_from_slice(name.as_bytes());
        b[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    kiln_image::Digest::of(bytes).hex().to_string()
}

/// Replaces the cache mount's layer of the OCI layout at `layout` (a kiln cache with
/// `cache-mounts=true`) with `tar` (uncompressed), rewriting the manifest and index.json so
/// every digest is right: a hostile cache whose only fault is the tar itself.
fn replace_cache_mount_layer(layout: &Path, tar: &[u8]) {
    let blobs = layout.join("blobs/sha256");
    let mut m = oci_manifest_of(layout);
    let config = blob_json(layout, m["config"]["digest"].as_str().unwrap());
    let i = config["cacheMounts"][0]["blob"].as_u64().unwrap() as usize;
    let hex = sha256_hex(tar);
    std::fs::write(blobs.join(&hex), tar).unwrap();
    m["layers"][i]["digest"] = format!("sha256:{hex}").into();
    m["layers"][i]["size"] = tar.len().into();
    m["layers"][i]["mediaType"] = "application/vnd.oci.image.layer.v1.tar".into();
    let mbytes = serde_json::to_vec(&m).unwrap();
    let mhex = sha256_hex(&mbytes);
    std::fs::write(blobs.join(&mhex), &mbytes).unwrap();
    let ip = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ip).unwrap()).unwrap();
    index["manifests"][0]["digest"] = format!("sha256:{mhex}").into();
    index["manifests"][0]["size"] = mbytes.len().into();
    std::fs::write(ip, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Puts the OCI layout's image into the registry at `reg` as `repo:tag` with curl (a
/// monolithic upload per blob, then the manifest), as any client could.
fn put_layout(layout: &Path, reg: &str, repo: &str, tag: &str) {
    let curl = |args: &[&str]| {
        let o = Command::new("curl")
            .args(["-sS", "-f"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let m = oci_manifest_of(layout);
    let mut digests = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    for l in m["layers"].as_array().unwrap() {
        digests.push(l["digest"].as_str().unwrap().to_string());
    }
    for d in digests {
        let head = curl(&[
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            &format!("http://{reg}/v2/{repo}/blobs/uploads/"),
        ]);
        let loc = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("Location: ")
                    .or_else(|| l.strip_prefix("location: "))
            })
            .unwrap()
            .trim()
            .to_string();
        let loc = if loc.starts_with('/') {
            format!("http://{reg}{loc}")
        } else {
            loc
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let file = layout.join("blobs/sha256").join(&d[7..]);
        curl(&[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("{loc}{sep}digest={d}"),
        ]);
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let md = index["manifests"][0]["digest"].as_str().unwrap();
    let file = layout.join("blobs/sha256").join(&md[7..]);
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://{reg}/v2/{repo}/manifests/{tag}"),
    ]);
}

#[test]
fn a_cache_mount_layer_that_escapes_its_directory_fails_the_build_and_restores_nothing() {
    let reg = Registry::start();
    let env = Env::new(MULTI);
    env.store("a");
    let layout = env.path("cache");
    env.build(
        "a",
        &[
            "--cache-to",
            &format!(
                "type=local,dest={},cache-mounts=true,mode=max",
                layout.display()
            ),
        ],
    );
    // Where an escape would land, from the cache mount's directory in the store
    // (STORE/cache-mounts-v1/NAME/) or the import's temp directory beside it.
    let victim = env.path("escaped");
    let up = "../../../escaped";
    assert_eq!(
        env.path("b")
            .join("cache-mounts-v1/x")
            .join(up)
            .canonicalize()
            .ok(),
        None
    );
    let hostile: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "dotdot",
            raw_tar(&[(b'0', "pkg", "", b"ok"), (b'0', up, "", b"evil")]),
            format!("layer entry \"{up}\": path escapes the root through `..`"),
        ),
        (
            "symlink",
            raw_tar(&[
                (b'0', "pkg", "", b"ok"),
                (b'2', "link", victim.parent().unwrap().to_str().unwrap(), b""),
                (b'0', "link/escaped", "", b"evil"),
            ]),
            "layer entry \"link/escaped\": parent \"link\" is a symbolic link; refusing to write through it".to_string(),
        ),
    ];
    env.file("a.txt", "two\n");
    let ctx = env.path("ctx");
    for (name, tar, want) in &hostile {
        let l = env.path(&format!("cache-{name}"));
        let o = Command::new("cp")
            .arg("-a")
            .arg(&layout)
            .arg(&l)
            .status()
            .unwrap();
        assert!(o.success());
        replace_cache_mount_layer(&l, tar);
        put_layout(&l, &reg.addr, "cache/app", name);
        let local = format!("type=local,src={}", l.display());
        let remote = format!("type=registry,ref={}/cache/app:{name}", reg.addr);
        for from in [local, remote] {
            let store = format!(
                "b-{name}-{}",
                if from.starts_with("type=local") {
                    "local"
                } else {
                    "registry"
                }
            );
            env.store(&store);
            let o = env.kiln(
                &store,
                &[
                    "build",
                    "--progress",
                    "plain",
                    "-t",
                    "app",
                    "--cache-from",
                    &from,
                    "--target",
                    "build",
                    ctx.to_str().unwrap(),
                ],
            );
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{name}, {from}: {err}");
            assert!(
                err.contains("unpacking cache mount pkgs") && err.contains(want.as_str()),
                "{name}, {from}: {err}"
            );
            assert!(!victim.exists(), "{name}, {from}: written outside");
            // Not half-restored: no directory with the entry before the bad one, no temp.
            let mounts = env.list(&store, "cache-mounts-v1");
            for m in &mounts {
                let d = env.path(&store).join("cache-mounts-v1").join(m);
                assert!(
                    !m.starts_with(".import-") && std::fs::read_dir(&d).unwrap().next().is_none(),
                    "{name}, {from}: cache-mounts-v1/{m} left: {:?}",
                    env.list(&store, &format!("cache-mounts-v1/{m}"))
                );
            }
            assert!(
                !env.kiln(&store, &["inspect", "app"]).status.success(),
                "{name}, {from}: tagged"
            );
        }
    }
}
