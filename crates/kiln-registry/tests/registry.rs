//! kiln-registry against a real registry (Debian's `docker-registry`, distribution 2.8,
//! started per test on 127.0.0.1): push and pull round trips, skipped and mounted blobs,
//! chunked uploads, basic auth, TLS with a CA in certs.d, a connection cut half-way through
//! a blob (resumed; or failing with nothing left in the store), and, from a tiny fake
//! registry (the real one verifies digests itself), a blob that does not match its digest
//! and a manifest over the size limit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kiln_image::{Compression, Digest, ImageRef, Platform};
use kiln_registry::{
    CredentialStore, Credentials, Error, Event, LayerStatus, PullOptions, PushOptions, Settings,
};
use kiln_store::Store;
use kiln_test::registry::{CutProxy, Registry, RegistryOptions};

/// Deterministic pseudo-random bytes (incompressible enough to make real gzip work).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn layer_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

/// A docker-archive with one layer per entry of `layers`, tagged `tag`, loaded into `store`.
fn load_image(store: &Store, dir: &Path, tag: &str, layers: &[Vec<u8>]) -> Digest {
    load_image_for(store, dir, tag, layers, &Platform::host().architecture)
}

fn load_image_for(store: &Store, dir: &Path, tag: &str, layers: &[Vec<u8>], arch: &str) -> Digest {
    let mut diff_ids = Vec::new();
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        diff_ids.push(Digest::of(l).to_string());
        let name = format!("l{i}/layer.tar");
        add(&mut b, &name, l);
        names.push(name);
    }
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).unwrap();
    add(&mut b, "config.json", &config);
    let manifest =
        serde_json::json!([{"Config": "config.json", "RepoTags": [tag], "Layers": names}]);
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let path = dir.join(format!("{}.tar", Digest::of(&config).hex()));
    std::fs::write(&path, b.into_inner().unwrap()).unwrap();
    store.load(&path).unwrap()[0].image.id
}

struct Env {
    dir: tempfile::TempDir,
    settings: Settings,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            certs_d: dir.path().join("certs.d"),
            insecure: Vec::new(),
            credentials: CredentialStore::new(dir.path().join("docker")),
            mirrors: Default::default(),
        };
        Env { dir, settings }
    }

    fn store(&self, name: &str) -> Store {
        Store::open(self.dir.path().join(name)).unwrap()
    }
}

/// Collects events.
#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl kiln_registry::Progress for Events {
    fn event(&self, e: Event) {
        self.0.lock().unwrap().push(e);
    }
}

impl Events {
    fn statuses(&self) -> Vec<LayerStatus> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Layer { status, .. } => Some(status.clone()),
                _ => None,
            })
            .collect()
    }
}

fn push(
    store: &Store,
    settings: &Settings,
    r: &str,
    events: &Events,
    chunk: Option<u64>,
) -> kiln_registry::Result<kiln_registry::Pushed> {
    kiln_registry::push(
        store,
        &ImageRef::parse(r).unwrap(),
        &PushOptions {
            settings,
            compression: Compression::Gzip,
            progress: events,
            chunk_size: chunk,
        },
    )
}

fn pull(
    store: &Store,
    settings: &Settings,
    r: &str,
    events: &Events,
) -> kiln_registry::Result<kiln_registry::Pulled> {
    kiln_registry::pull(
        store,
        &ImageRef::parse(r).unwrap(),
        &PullOptions {
            settings,
            platform: Platform::host(),
            progress: events,
        },
    )
}

fn blob_count(store: &Store) -> usize {
    std::fs::read_dir(store.root().join("blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Unpacked layers in the store: directories under `snapshots-v1/` (a row each: the
/// store's `system check` says so in the tests that count them).
fn snapshot_count(store: &Store) -> usize {
    std::fs::read_dir(store.root().join("snapshots-v1"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The snapshot directory of each layer of `id`, bottom first (None where there is none).
fn layer_snapshots(store: &Store, id: &Digest) -> Vec<Option<std::path::PathBuf>> {
    let diff_ids: Vec<Digest> = store
        .layers(id)
        .unwrap()
        .iter()
        .map(|l| l.diff_id)
        .collect();
    kiln_store::chain_ids(&diff_ids)
        .iter()
        .map(|c| {
            store
                .snapshot(&kiln_store::layer_snapshot_key(c))
                .unwrap()
                .map(|s| s.path)
        })
        .collect()
}

/// The store is consistent (`kiln system check`): every snapshot row has its directory and
/// every directory a row, nothing partial.
fn assert_consistent(store: &Store) {
    let report = store.check(false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

fn tmp_is_empty(store: &Store) -> bool {
    std::fs::read_dir(store.root().join("tmp"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[test]
fn push_then_pull_round_trips_and_a_second_push_compresses_nothing() {
    let reg = Registry::start();
    let env = Env::new();
    let a = env.store("a");
    let id = load_image(
        &a,
        env.dir.path(),
        "app:1",
        &[layer_tar("a", &noise(1, 3 << 20)), layer_tar("b", b"hello")],
    );
    let name = format!("{}/app:1", reg.addr);
    a.tag(&id, &name).unwrap();
    let ev = Events::default();
    let pushed = push(&a, &env.settings, &name, &ev, None).unwrap();
    assert_eq!(
        ev.statuses()
            .iter()
            .filter(|s| **s == LayerStatus::Pushed)
            .count(),
        2
    );
    assert_eq!(
        ev.statuses()
            .iter()
            .filter(|s| **s == LayerStatus::Compressing)
            .count(),
        2
    );
    let full = ImageRef::parse(&name).unwrap();
    assert_eq!(
        a.repo_digests(&id).unwrap(),
        vec![format!("{}@{}", full.name(), pushed.digest)]
    );
    // Again: the remembered wire blobs are in the registry; nothing is compressed or sent.
    let ev2 = Events::default();
    let again = push(&a, &env.settings, &name, &ev2, None).unwrap();
    assert_eq!(again.digest, pushed.digest);
    let st = ev2.statuses();
    assert_eq!(
        st.iter()
            .filter(|s| **s == LayerStatus::LayerAlreadyExists)
            .count(),
        2,
        "{st:?}"
    );
    assert!(!st.contains(&LayerStatus::Compressing), "{st:?}");
    assert!(!st.contains(&LayerStatus::Pushed), "{st:?}");

    let b = env.store("b");
    let ev3 = Events::default();
    let pulled = pull(&b, &env.settings, &name, &ev3).unwrap();
    assert_eq!(pulled.image.id, id);
    assert_eq!(pulled.digest, pushed.digest);
    // Unpacked as it downloaded: each layer's snapshot is there, holding its files.
    let snaps = layer_snapshots(&b, &id);
    assert!(snaps.iter().all(Option::is_some), "{snaps:?}");
    assert_eq!(snapshot_count(&b), 2);
    let lower = snaps[0].as_ref().unwrap();
    assert_eq!(std::fs::read(lower.join("a")).unwrap(), noise(1, 3 << 20));
    assert_eq!(
        std::fs::read(snaps[1].as_ref().unwrap().join("b")).unwrap(),
        b"hello"
    );
    assert_consistent(&b);
    assert!(!pulled.up_to_date);
    assert_eq!(pulled.image.tags, vec![full.to_string()]);
    assert_eq!(b.repo_digests(&id).unwrap(), a.repo_digests(&id).unwrap());
    let layers = b.layers(&id).unwrap();
    assert!(
        layers.iter().all(|l| l.media_type.ends_with("tar+gzip")),
        "{layers:?}"
    );
    assert_eq!(
        layers[0].uncompressed_size,
        layer_tar("a", &noise(1, 3 << 20)).len() as u64
    );
    let again = pull(&b, &env.settings, &name, &Events::default()).unwrap();
    assert!(again.up_to_date);
    // Another image on the same lower layer: that layer is neither fetched nor unpacked
    // again (same directory, same inode); only the new one is.
    let other = load_image(
        &a,
        env.dir.path(),
        "other:1",
        &[layer_tar("a", &noise(1, 3 << 20)), layer_tar("c", b"new")],
    );
    let other_name = format!("{}/other:1", reg.addr);
    a.tag(&other, &other_name).unwrap();
    push(&a, &env.settings, &other_name, &Events::default(), None).unwrap();
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(lower).unwrap().ino();
    let ev5 = Events::default();
    pull(&b, &env.settings, &other_name, &ev5).unwrap();
    assert_eq!(ev5.statuses()[0], LayerStatus::AlreadyExists);
    let snaps2 = layer_snapshots(&b, &other);
    assert_eq!(snaps2[0].as_ref(), Some(lower));
    assert_eq!(std::fs::metadata(lower).unwrap().ino(), ino);
    assert_eq!(snapshot_count(&b), 3);
    assert_consistent(&b);
    // A pulled image pushes back as it came: same manifest digest, nothing uploaded.
    let name2 = format!("{}/copy:1", reg.addr);
    b.tag(&id, &name2).unwrap();
    let ev4 = Events::default();
    let back = push(&b, &env.settings, &name2, &ev4, None).unwrap();
    assert_eq!(back.digest, pushed.digest);
    // Its layers came from `app` on the same registry: mounted, not uploaded.
    let st = ev4.statuses();
    assert_eq!(
        st.iter()
            .filter(|s| matches!(s, LayerStatus::MountedFrom(r) if r == "app"))
            .count(),
        2,
        "{st:?}"
    );
    // By digest.
    let c = env.store("c");
    let by_digest = format!("{}/app@{}", reg.addr, pushed.digest);
    let p = pull(&c, &env.settings, &by_digest, &Events::default()).unwrap();
    assert_eq!(p.image.id, id);
    assert!(p.image.tags.is_empty());
    assert!(tmp_is_empty(&a) && tmp_is_empty(&b) && tmp_is_empty(&c));
}

#[test]
fn large_blobs_go_up_in_chunks() {
    let reg = Registry::start();
    let env = Env::new();
    let a = env.store("a");
    let id = load_image(
        &a,
        env.dir.path(),
        "big:1",
        &[layer_tar("x", &noise(7, 5 << 20))],
    );
    let name = format!("{}/big:1", reg.addr);
    a.tag(&id, &name).unwrap();
    // The first push streams the layer as it compresses it (one chunked PATCH).
    let ev = Events::default();
    push(&a, &env.settings, &name, &ev, Some(1 << 20)).unwrap();
    assert!(ev.statuses().contains(&LayerStatus::Compressing));
    // To another registry, the remembered gzipped blob goes up in 1 MiB PATCH chunks.
    let reg2 = Registry::start();
    let name2 = format!("{}/big:1", reg2.addr);
    a.tag(&id, &name2).unwrap();
    let ev = Events::default();
    push(&a, &env.settings, &name2, &ev, Some(1 << 20)).unwrap();
    let st = ev.statuses();
    assert!(!st.contains(&LayerStatus::Compressing), "{st:?}");
    assert!(
        st.iter()
            .filter(|s| matches!(s, LayerStatus::Pushing(..)))
            .count()
            >= 5,
        "{st:?}"
    );
    let b = env.store("b");
    assert_eq!(
        pull(&b, &env.settings, &name2, &Events::default())
            .unwrap()
            .image
            .id,
        id
    );
}

#[test]
fn a_blob_over_64_mib_goes_up_streamed_in_one_request() {
    let reg = Registry::start();
    let env = Env::new();
    let a = env.store("a");
    // Noise does not compress: the gzipped blob stays over 64 MiB.
    let id = load_image(
        &a,
        env.dir.path(),
        "huge:1",
        &[layer_tar("h", &noise(9, 66 << 20))],
    );
    let name = format!("{}/huge:1", reg.addr);
    a.tag(&id, &name).unwrap();
    push(&a, &env.settings, &name, &Events::default(), None).unwrap();
    // To another registry, the remembered blob goes up from the store: one PATCH streaming
    // the file (no chunk size set), with progress every MiB, then the PUT.
    let reg2 = Registry::start();
    let name2 = format!("{}/huge:1", reg2.addr);
    a.tag(&id, &name2).unwrap();
    let ev = Events::default();
    push(&a, &env.settings, &name2, &ev, None).unwrap();
    let st = ev.statuses();
    assert!(!st.contains(&LayerStatus::Compressing), "{st:?}");
    assert!(
        st.iter()
            .filter(|s| matches!(s, LayerStatus::Pushing(..)))
            .count()
            >= 60,
        "{st:?}"
    );
    assert!(st.contains(&LayerStatus::Pushed), "{st:?}");
    let b = env.store("b");
    assert_eq!(
        pull(&b, &env.settings, &name2, &Events::default())
            .unwrap()
            .image
            .id,
        id
    );
}

#[test]
fn a_missing_tag_or_repository_says_manifest_unknown() {
    let reg = Registry::start();
    let env = Env::new();
    let s = env.store("s");
    for r in [
        format!("{}/nothere:1", reg.addr),
        format!("{}/nothere", reg.addr),
    ] {
        let e = pull(&s, &env.settings, &r, &Events::default()).unwrap_err();
        let familiar = ImageRef::parse(&r).unwrap().familiar();
        assert_eq!(
            e.to_string(),
            format!("manifest for {familiar} not found: manifest unknown: manifest unknown")
        );
    }
    assert_eq!(blob_count(&s), 0);
}

#[test]
fn basic_auth_with_stored_credentials_and_a_clear_401() {
    let reg = Registry::start_with(RegistryOptions {
        htpasswd: Some(("kiln".into(), "s3cret".into())),
        tls: false,
    });
    let env = Env::new();
    let a = env.store("a");
    let id = load_image(&a, env.dir.path(), "auth:1", &[layer_tar("a", b"auth")]);
    let name = format!("{}/auth:1", reg.addr);
    a.tag(&id, &name).unwrap();
    // Anonymous: refused in docker's words (a push's name no request; a pull's its first).
    let e = push(&a, &env.settings, &name, &Events::default(), None).unwrap_err();
    assert_eq!(e.to_string(), "no basic auth credentials");
    let e = pull(&env.store("p"), &env.settings, &name, &Events::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "Head \"http://{}/v2/auth/manifests/1\": no basic auth credentials",
            reg.addr
        )
    );
    // A wrong password: one clear error, fast (no retries), nothing stored.
    let t = Instant::now();
    let bad = Credentials {
        username: "kiln".into(),
        password: "wrong".into(),
    };
    let e = kiln_registry::login(&env.settings, &reg.addr, &bad).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(
        e.to_string(),
        format!(
            "login attempt to http://{}/v2/ failed with status: 401 Unauthorized",
            reg.addr
        )
    );
    assert_eq!(env.settings.credentials.get(&reg.addr).unwrap(), None);
    // Right: stored like docker's config.json, and used by push and pull.
    let good = Credentials {
        username: "kiln".into(),
        password: "s3cret".into(),
    };
    assert!(kiln_registry::login(&env.settings, &reg.addr, &good).unwrap());
    push(&a, &env.settings, &name, &Events::default(), None).unwrap();
    let b = env.store("b");
    assert_eq!(
        pull(&b, &env.settings, &name, &Events::default())
            .unwrap()
            .image
            .id,
        id
    );
    // Credentials that stop working fail the same way.
    env.settings.credentials.store(&reg.addr, &bad).unwrap();
    let t = Instant::now();
    let e = pull(&env.store("c"), &env.settings, &name, &Events::default()).unwrap_err();
    assert!(matches!(e, Error::CredentialsRefused { .. }), "{e}");
    assert_eq!(e.to_string(), "unauthorized: authentication required");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn tls_with_a_ca_from_certs_d() {
    let reg = Registry::start_with(RegistryOptions {
        htpasswd: None,
        tls: true,
    });
    let env = Env::new();
    let a = env.store("a");
    let id = load_image(&a, env.dir.path(), "tls:1", &[layer_tar("a", b"tls")]);
    let name = format!("{}/tls:1", reg.addr);
    a.tag(&id, &name).unwrap();
    // Without the CA: the certificate is refused (and plain HTTP to a TLS port fails too).
    let e = push(&a, &env.settings, &name, &Events::default(), None).unwrap_err();
    assert!(
        e.to_string().to_lowercase().contains("certificate") || e.to_string().contains("Issuer"),
        "{e}"
    );
    let d = env.settings.certs_d.join(&reg.addr);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(reg.ca_cert(), d.join("ca.crt")).unwrap();
    push(&a, &env.settings, &name, &Events::default(), None).unwrap();
    let b = env.store("b");
    assert_eq!(
        pull(&b, &env.settings, &name, &Events::default())
            .unwrap()
            .image
            .id,
        id
    );
}

#[test]
fn a_connection_cut_half_way_through_a_blob_is_resumed() {
    let reg = Registry::start();
    let env = Env::new();
    let a = env.store("a");
    let content = noise(3, 4 << 20);
    let id = load_image(&a, env.dir.path(), "cut:1", &[layer_tar("a", &content)]);
    let name = format!("{}/cut:1", reg.addr);
    a.tag(&id, &name).unwrap();
    push(&a, &env.settings, &name, &Events::default(), None).unwrap();
    // Every answer longer than 1 MiB is cut there, twice.
    let proxy = CutProxy::start(&reg.addr, 1 << 20, 2);
    let b = env.store("b");
    let ev = Events::default();
    let pulled = pull(&b, &env.settings, &format!("{}/cut:1", proxy.addr), &ev).unwrap();
    assert_eq!(pulled.image.id, id);
    assert_eq!(proxy.cuts(), 2);
    // The unpack went on across the resumed requests: the whole file.
    let snaps = layer_snapshots(&b, &id);
    assert_eq!(
        std::fs::read(snaps[0].as_ref().unwrap().join("a")).unwrap(),
        content
    );
    let resumed: Vec<u64> = ev
        .statuses()
        .iter()
        .filter_map(|s| match s {
            LayerStatus::Retrying { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect();
    assert_eq!(resumed.len(), 2, "{:?}", ev.statuses());
    assert!(
        resumed[0] > 0 && resumed[1] > resumed[0],
        "resumed at {resumed:?}"
    );
    assert!(tmp_is_empty(&b));
}

#[test]
fn a_connection_that_keeps_dropping_leaves_nothing_in_the_store() {
    let reg = Registry::start();
    let env = Env::new();
    let a = env.store("a");
    let id = load_image(
        &a,
        env.dir.path(),
        "cut:1",
        &[layer_tar("a", &noise(4, 2 << 20))],
    );
    let name = format!("{}/cut:1", reg.addr);
    a.tag(&id, &name).unwrap();
    push(&a, &env.settings, &name, &Events::default(), None).unwrap();
    // Every answer past 64 KiB is cut: each retry gets a little further, never to the end.
    let proxy = CutProxy::start(&reg.addr, 64 << 10, usize::MAX);
    let b = env.store("b");
    let e = pull(
        &b,
        &env.settings,
        &format!("{}/cut:1", proxy.addr),
        &Events::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::GaveUp { attempts: 5, .. }), "{e}");
    assert!(b.images().unwrap().is_empty());
    assert_eq!(blob_count(&b), 0, "blobs left behind");
    assert_eq!(snapshot_count(&b), 0, "a half-unpacked layer left behind");
    assert!(tmp_is_empty(&b), "a staging directory left behind");
    assert_consistent(&b);
}

/// A fake registry that answers from a table of paths (for what a real registry never
/// serves: wrong content, oversized manifests). Returns its address.
fn fake_registry(routes: Vec<(String, String, Vec<u8>)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let method = line.split_whitespace().next().unwrap_or("").to_string();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let found = routes.iter().find(|(p, _, _)| *p == path);
                let (status, ctype, body): (&str, &str, &[u8]) = match found {
                    Some((_, t, b)) => ("200 OK", t, b),
                    None if path == "/v2/" => ("200 OK", "application/json", b"{}"),
                    None => (
                        "404 Not Found",
                        "application/json",
                        br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                    ),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                if conn.write_all(head.as_bytes()).is_err() {
                    break;
                }
                if method != "HEAD" && conn.write_all(body).is_err() {
                    break;
                }
            }
            let _ = r.read(&mut [0u8; 1]);
        }
    });
    addr
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused() {
    let layer = layer_tar("a", b"the real content");
    let served = layer_tar("a", b"other content!!!");
    assert_eq!(layer.len(), served.len());
    let layer_digest = Digest::of(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": Platform::host().architecture, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    let addr = fake_registry(vec![
        (
            "/v2/bad/manifests/1".into(),
            "application/vnd.oci.image.manifest.v1+json".into(),
            manifest,
        ),
        (
            format!("/v2/bad/blobs/{}", Digest::of(&config)),
            "application/octet-stream".into(),
            config,
        ),
        (
            format!("/v2/bad/blobs/{layer_digest}"),
            "application/octet-stream".into(),
            served,
        ),
    ]);
    let env = Env::new();
    let s = env.store("s");
    let e = pull(
        &s,
        &env.settings,
        &format!("{addr}/bad:1"),
        &Events::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&layer_digest.to_string()), "{e}");
    assert!(s.images().unwrap().is_empty());
    assert_eq!(blob_count(&s), 0, "the store is untouched");
    // The served tar was unpacked as it came: it is gone with the refusal.
    assert_eq!(snapshot_count(&s), 0, "the unpacked layer is visible");
    assert!(tmp_is_empty(&s), "a staging directory left behind");
}

#[test]
fn a_manifest_over_4_mib_is_refused() {
    let mut big = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 5 << 20));
    big.extend(br#""}}"#);
    let addr = fake_registry(vec![(
        "/v2/big/manifests/1".into(),
        "application/vnd.oci.image.manifest.v1+json".into(),
        big,
    )]);
    let env = Env::new();
    let s = env.store("s");
    let e = pull(
        &s,
        &env.settings,
        &format!("{addr}/big:1"),
        &Events::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::ManifestTooLarge { .. }), "{e}");
    assert!(e.to_string().contains("4194304-byte limit"), "{e}");
    assert_eq!(blob_count(&s), 0);
}

/// A fake registry serving one image whose layer is `served` (named by `layer`'s digest
/// when `name_served` is false) with the config's diff ID `diff_id`.
fn fake_image(repo: &str, layer: &[u8], diff_id: Digest) -> String {
    let layer_digest = Digest::of(layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": Platform::host().architecture, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    fake_registry(vec![
        (
            format!("/v2/{repo}/manifests/1"),
            "application/vnd.oci.image.manifest.v1+json".into(),
            manifest,
        ),
        (
            format!("/v2/{repo}/blobs/{}", Digest::of(&config)),
            "application/octet-stream".into(),
            config,
        ),
        (
            format!("/v2/{repo}/blobs/{layer_digest}"),
            "application/octet-stream".into(),
            layer.to_vec(),
        ),
    ])
}

#[test]
fn a_layer_that_is_not_its_diff_id_is_refused() {
    let layer = layer_tar("a", b"content");
    let addr = fake_image("d", &layer, Digest::of(b"something else"));
    let env = Env::new();
    let s = env.store("s");
    let e = pull(
        &s,
        &env.settings,
        &format!("{addr}/d:1"),
        &Events::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("against the config's diff_id"),
        "{e}"
    );
    assert_eq!(blob_count(&s), 0);
    assert_eq!(snapshot_count(&s), 0);
    assert!(tmp_is_empty(&s));
}

#[test]
fn a_server_that_ignores_range_restarts_the_blob() {
    // The fake server answers every GET with the whole blob (200): after the proxy cuts the
    // first answer, the resumed request gets everything again and the download starts over.
    let layer = layer_tar("a", &noise(9, 1 << 20));
    let addr = fake_image("r", &layer, Digest::of(&layer));
    let proxy = CutProxy::start(&addr, 256 << 10, 1);
    let env = Env::new();
    let s = env.store("s");
    let ev = Events::default();
    let p = pull(&s, &env.settings, &format!("{}/r:1", proxy.addr), &ev).unwrap();
    assert_eq!(proxy.cuts(), 1);
    assert!(
        ev.statuses()
            .iter()
            .any(|s| matches!(s, LayerStatus::Retrying { .. }))
    );
    assert_eq!(s.layers(&p.image.id).unwrap()[0].blob, Digest::of(&layer));
    // Unpacked again from the whole file: the first attempt's directory was dropped.
    let snaps = layer_snapshots(&s, &p.image.id);
    assert_eq!(
        std::fs::read(snaps[0].as_ref().unwrap().join("a")).unwrap(),
        noise(9, 1 << 20)
    );
    assert_eq!(snapshot_count(&s), 1);
    assert!(tmp_is_empty(&s));
}

#[test]
fn an_index_resolves_to_the_platform_asked_for() {
    let reg = Registry::start();
    let env = Env::new();
    let a = env.store("a");
    let host = Platform::host().architecture;
    let other = if host == "arm64" { "amd64" } else { "arm64" };
    let mine = load_image_for(&a, env.dir.path(), "m:1", &[layer_tar("h", b"host")], &host);
    let theirs = load_image_for(
        &a,
        env.dir.path(),
        "m:2",
        &[layer_tar("o", b"other")],
        other,
    );
    let mut entries = Vec::new();
    for (id, arch, tag) in [(mine, host.as_str(), "host"), (theirs, other, "other")] {
        let name = format!("{}/multi:{tag}", reg.addr);
        a.tag(&id, &name).unwrap();
        let p = push(&a, &env.settings, &name, &Events::default(), None).unwrap();
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": p.digest.to_string(), "size": p.size,
            "platform": {"os": "linux", "architecture": arch},
        }));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .unwrap();
    let sess = kiln_registry::Session::open(
        &env.settings,
        &reg.addr,
        &["repository:multi:pull,push".into()],
    )
    .unwrap();
    let url = sess.url("multi/manifests/1");
    let r = sess
        .send(
            "PUT",
            &url,
            &[("Content-Type", "application/vnd.oci.image.index.v1+json")],
            &index[..],
        )
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let name = format!("{}/multi:1", reg.addr);
    let pull_for = |store: &Store, p: Platform| {
        kiln_registry::pull(
            store,
            &ImageRef::parse(&name).unwrap(),
            &PullOptions {
                settings: &env.settings,
                platform: p,
                progress: &Events::default(),
            },
        )
    };
    let b = env.store("b");
    let p = pull_for(&b, Platform::host()).unwrap();
    assert_eq!(p.image.id, mine);
    // The repo digest is the index's, as docker records it.
    assert_eq!(p.digest, Digest::of(&index));
    let c = env.store("c");
    let p = pull_for(&c, Platform::new("linux", other, None)).unwrap();
    assert_eq!(p.image.id, theirs);
    assert_eq!(p.image.architecture, other);
    let e = pull_for(&env.store("d"), Platform::new("linux", "s390x", None)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no matching manifest for linux/s390x in the manifest list entries"
    );
}

#[test]
fn zstd_on_the_wire() {
    let reg = Registry::start();
    let env = Env::new();
    let a = env.store("a");
    let id = load_image(
        &a,
        env.dir.path(),
        "z:1",
        &[layer_tar("z", &noise(5, 1 << 20))],
    );
    let name = format!("{}/z:1", reg.addr);
    a.tag(&id, &name).unwrap();
    kiln_registry::push(
        &a,
        &ImageRef::parse(&name).unwrap(),
        &PushOptions {
            settings: &env.settings,
            compression: Compression::Zstd,
            progress: &Events::default(),
            chunk_size: None,
        },
    )
    .unwrap();
    let b = env.store("b");
    let p = pull(&b, &env.settings, &name, &Events::default()).unwrap();
    assert_eq!(p.image.id, id);
    let layers = b.layers(&id).unwrap();
    assert_eq!(
        layers[0].media_type,
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
}

type Handler =
    dyn Fn(&str, &str, &[(String, String)]) -> (u16, Vec<(String, String)>, Vec<u8>) + Send + Sync;

/// An HTTP/1.1 server on 127.0.0.1 answering with `handler(method, path, headers)`.
fn serve(handler: std::sync::Arc<Handler>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let handler = handler.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let path = parts.next().unwrap_or("").to_string();
                    let mut headers = Vec::new();
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = h.trim_end().split_once(':') {
                            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                        }
                    }
                    let (status, extra, body) = handler(&method, &path, &headers);
                    let mut head =
                        format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                    for (k, v) in extra {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    if conn.write_all(head.as_bytes()).is_err()
                        || (method != "HEAD" && conn.write_all(&body).is_err())
                    {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn bearer_tokens_per_scope_with_credentials_and_a_refresh_when_one_expires() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let layer = layer_tar("a", b"bearer");
    let layer_digest = Digest::of(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": Platform::host().architecture, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    let issued = Arc::new(AtomicUsize::new(0));
    let scopes = Arc::new(Mutex::new(Vec::<String>::new()));
    let addr_cell = Arc::new(Mutex::new(String::new()));
    let (i2, s2, a2) = (issued.clone(), scopes.clone(), addr_cell.clone());
    let config_path = format!("/v2/b/blobs/{}", Digest::of(&config));
    let layer_path = format!("/v2/b/blobs/{layer_digest}");
    let handler: Arc<Handler> =
        Arc::new(move |_m: &str, path: &str, headers: &[(String, String)]| {
            let auth = headers
                .iter()
                .find(|(k, _)| k == "authorization")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            if let Some(q) = path.strip_prefix("/token?") {
                // kiln:pw, base64.
                if auth != "Basic a2lsbjpwdw==" {
                    return (401, vec![], br#"{"details":"wrong password"}"#.to_vec());
                }
                s2.lock().unwrap().push(q.to_string());
                let n = i2.fetch_add(1, Ordering::SeqCst) + 1;
                return (
                    200,
                    vec![],
                    format!(r#"{{"token":"tok-{n}"}}"#).into_bytes(),
                );
            }
            let current = format!("Bearer tok-{}", i2.load(Ordering::SeqCst));
            // The first token "expires" before the layer is fetched.
            let expired = path == layer_path && current == "Bearer tok-1";
            if auth != current || expired {
                let challenge = format!(
                    r#"Bearer realm="http://{}/token",service="fake""#,
                    a2.lock().unwrap()
                );
                return (
                    401,
                    vec![("WWW-Authenticate".into(), challenge)],
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                        .to_vec(),
                );
            }
            match path {
                "/v2/" => (200, vec![], b"{}".to_vec()),
                "/v2/b/manifests/1" => (
                    200,
                    vec![(
                        "Content-Type".into(),
                        "application/vnd.oci.image.manifest.v1+json".into(),
                    )],
                    manifest.clone(),
                ),
                p if p == config_path => (200, vec![], config.clone()),
                p if p == layer_path => (200, vec![], layer.clone()),
                _ => (404, vec![], b"{}".to_vec()),
            }
        });
    let addr = serve(handler);
    *addr_cell.lock().unwrap() = addr.clone();
    let env = Env::new();
    // Anonymous: the token service refuses.
    let e = pull(
        &env.store("s0"),
        &env.settings,
        &format!("{addr}/b:1"),
        &Events::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("/token"), "{e}");
    env.settings
        .credentials
        .store(
            &addr,
            &Credentials {
                username: "kiln".into(),
                password: "pw".into(),
            },
        )
        .unwrap();
    let s = env.store("s");
    let p = pull(
        &s,
        &env.settings,
        &format!("{addr}/b:1"),
        &Events::default(),
    )
    .unwrap();
    assert_eq!(s.layers(&p.image.id).unwrap()[0].blob, layer_digest);
    // One token for the pull, one more when the first expired.
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    let seen = scopes.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|q| q.contains("scope=repository%3Ab%3Apull") && q.contains("service=fake")),
        "{seen:?}"
    );
}

/// Docker Hub's answer for a repository that does not exist: the token is granted, the
/// manifest refused with 401. docker says "pull access denied".
#[test]
fn a_manifest_refused_after_the_token_is_pull_access_denied() {
    use std::sync::Arc;
    let addr_cell = Arc::new(Mutex::new(String::new()));
    let a2 = addr_cell.clone();
    let handler: Arc<Handler> = Arc::new(
        move |_m: &str, path: &str, headers: &[(String, String)]| {
            let authorized = headers
                .iter()
                .any(|(k, v)| k == "authorization" && v == "Bearer anon");
            if path.starts_with("/token?") {
                return (200, vec![], br#"{"token":"anon"}"#.to_vec());
            }
            if path == "/v2/" && authorized {
                return (200, vec![], b"{}".to_vec());
            }
            let challenge = format!(
                r#"Bearer realm="http://{}/token",service="fake""#,
                a2.lock().unwrap()
            );
            (
            401,
            vec![("WWW-Authenticate".into(), challenge)],
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"requested access to the resource is denied"}]}"#.to_vec(),
        )
        },
    );
    let addr = serve(handler);
    *addr_cell.lock().unwrap() = addr.clone();
    let env = Env::new();
    let e = pull(
        &env.store("s"),
        &env.settings,
        &format!("{addr}/nothere:1"),
        &Events::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Denied { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "pull access denied for {addr}/nothere, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
        )
    );
}

/// A multi-platform image whose layers the store keeps uncompressed (as builds make them):
/// each platform's manifest is rewritten for the wire, so the pushed index is a new one
/// over those manifests (same platforms, same image IDs), and `pull_all` stores exactly it.
#[test]
fn an_index_of_uncompressed_images_pushes_as_a_new_index_and_pulls_back_whole() {
    let reg = Registry::start();
    let env = Env::new();
    let a = env.store("a");
    let amd = load_image_for(
        &a,
        env.dir.path(),
        "x/amd:1",
        &[layer_tar("f", &noise(1, 5000))],
        "amd64",
    );
    let arm = load_image_for(
        &a,
        env.dir.path(),
        "x/arm:1",
        &[layer_tar("f", &noise(2, 5000))],
        "arm64",
    );
    let stored = a
        .put_index(&[
            (Platform::parse("linux/amd64").unwrap(), amd),
            (Platform::parse("linux/arm64").unwrap(), arm),
        ])
        .unwrap();
    let name = format!("{}/multi:1", reg.addr);
    a.tag_index(&stored, &name).unwrap();
    let pushed = push(&a, &env.settings, &name, &Events::default(), None).unwrap();
    assert_ne!(
        pushed.digest, stored,
        "the manifests were rewritten for the wire"
    );
    // Pushed again: the layers are there, the index is the same.
    let events = Events::default();
    let again = push(&a, &env.settings, &name, &events, None).unwrap();
    assert_eq!(again.digest, pushed.digest);
    assert!(
        events
            .statuses()
            .iter()
            .all(|s| matches!(s, LayerStatus::Preparing | LayerStatus::LayerAlreadyExists)),
        "{:?}",
        events.statuses()
    );

    let b = env.store("b");
    let opts = PullOptions {
        settings: &env.settings,
        platform: Platform::host(),
        progress: &Events::default(),
    };
    let r = ImageRef::parse(&name).unwrap();
    let kiln_registry::PulledAll::Index {
        digest,
        images,
        up_to_date,
        ..
    } = kiln_registry::pull_all(&b, &r, &opts).unwrap()
    else {
        panic!("an index expected")
    };
    assert_eq!(digest, pushed.digest);
    assert!(!up_to_date);
    let got: Vec<(String, Digest)> = images.iter().map(|(p, i)| (p.to_string(), i.id)).collect();
    assert_eq!(
        got,
        vec![
            ("linux/amd64".to_string(), amd),
            ("linux/arm64".to_string(), arm)
        ]
    );
    let index = b.resolve_index(&name).unwrap().unwrap();
    assert_eq!(index.digest, pushed.digest);
    assert!(b.check(false).unwrap().problems.is_empty());
    let kiln_registry::PulledAll::Index { up_to_date, .. } =
        kiln_registry::pull_all(&b, &r, &opts).unwrap()
    else {
        panic!("an index expected")
    };
    assert!(up_to_date);
    // A single-platform pull of the same name is the host's image, as before.
    let c = env.store("c");
    let one = pull(&c, &env.settings, &name, &Events::default()).unwrap();
    assert_eq!(one.image.id, amd);
    assert!(c.resolve_index(&name).unwrap().is_none());
}

/// A tar of one entry whose header is written by hand (tar::Builder refuses `..` and
/// absolute names): `kind`, `name`, `link`, `data`; `edit` may change the header before its
/// checksum is set.
/// (type, name, link target, data).
type RawEntry<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn raw_tar(entries: &[RawEntry<'_>], edit: impl Fn(&mut [u8; 512])) -> Vec<u8> {
    let mut out = Vec::new();
    for (kind, name, link, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::new(*kind));
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        let b = h.as_mut_bytes();
        b[..name.len()].copy_from_slice(name);
        b[157..157 + link.len()].copy_from_slice(link);
        edit(b);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Puts an image straight into the registry at `addr` with plain HTTP requests (a monolithic
/// upload per blob, then the manifest), as any client could: its layers are uncompressed
/// tars (`application/vnd.oci.image.layer.v1.tar`) and the config names their digests as
/// diff IDs, so the registry and the digests say nothing against them.
fn put_image(addr: &str, repo: &str, tag: &str, layers: &[Vec<u8>]) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let upload = |bytes: &[u8]| {
        let r = agent
            .post(format!("http://{addr}/v2/{repo}/blobs/uploads/"))
            .send_empty()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let loc = r
            .headers()
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let loc = if loc.starts_with('/') {
            format!("http://{addr}{loc}")
        } else {
            loc
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = agent
            .put(format!("{loc}{sep}digest={}", Digest::of(bytes)))
            .header("Content-Type", "application/octet-stream")
            .send(bytes)
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "blob upload");
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": Platform::host().architecture, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| Digest::of(l).to_string()).collect::<Vec<_>>()},
    }))
    .unwrap();
    upload(&config);
    for l in layers {
        upload(l);
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(&config).to_string(), "size": config.len()},
        "layers": layers.iter().map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::of(l).to_string(), "size": l.len()})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let r = agent
        .put(format!("http://{addr}/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .send(&manifest[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "manifest put");
}

#[test]
fn a_layer_whose_tar_would_not_extract_is_refused_and_the_store_untouched() {
    // Each layer is what it says by digest and diff ID (the registry takes it as it is); its
    // tar is what extraction refuses. Put into the real registry with plain HTTP requests.
    let good = layer_tar("ok", b"fine");
    let truncated = {
        let t = layer_tar("big", &noise(5, 100_000));
        t[..50_000].to_vec()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            raw_tar(&[(b'0', b"../escaped", b"", b"x")], |_| {}),
            "layer entry \"../escaped\": path escapes the root through `..`",
        ),
        (
            "absolute",
            raw_tar(&[(b'0', b"/etc/cron.d/x", b"", b"x")], |_| {}),
            "layer entry \"/etc/cron.d/x\": absolute path refused",
        ),
        (
            "symlink",
            raw_tar(
                &[
                    (b'2', b"etc", b"/etc", b""),
                    (b'0', b"etc/passwd", b"", b"x"),
                ],
                |_| {},
            ),
            "layer entry \"etc/passwd\": parent \"etc\" is a symbolic link; refusing to write through it",
        ),
        (
            "hardlink",
            raw_tar(&[(b'1', b"shadow", b"/etc/shadow", b"")], |_| {}),
            "layer entry \"shadow\": hard link target \"/etc/shadow\" is not a file of this layer",
        ),
        (
            "absurd",
            raw_tar(&[(b'0', b"f", b"", b"x")], |h| {
                h[108..116].copy_from_slice(b"zzzzzzz\0")
            }),
            "layer entry \"f\": parse header",
        ),
        (
            "not-a-tar",
            noise(6, 10_000),
            "reading layer tar at its start",
        ),
        ("truncated", truncated, "truncated"),
    ];
    let reg = Registry::start();
    let env = Env::new();
    let b = env.store("b");
    for (name, tar, want) in &cases {
        put_image(
            &reg.addr,
            &format!("h/{name}"),
            "1",
            &[good.clone(), tar.clone()],
        );
        let r = format!("{}/h/{name}:1", reg.addr);
        let ev = Events::default();
        let e = pull(&b, &env.settings, &r, &ev).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Invalid { .. }), "{name}: {msg}");
        assert!(
            msg.starts_with("layer sha256:") && msg.contains("its tar would not extract"),
            "{name}: {msg}"
        );
        assert!(msg.contains(want), "{name}: {msg}");
        // Nothing of it in the store: no image, no tag, no blob (not even the good layer's
        // or the config), no temp file.
        assert!(b.images().unwrap().is_empty(), "{name}");
        assert!(b.resolve_image(&r).is_err(), "{name}: tagged");
        assert_eq!(blob_count(&b), 0, "{name}: blobs left behind");
        // Nor the good layer's snapshot, committed before the hostile one failed.
        assert_eq!(snapshot_count(&b), 0, "{name}: snapshots left behind");
        assert!(tmp_is_empty(&b), "{name}: a staging directory left behind");
        assert_consistent(&b);
        // The layer named is the hostile one, by its digest.
        assert!(
            msg.starts_with(&format!("layer {}: ", Digest::of(tar))),
            "{name}: {msg}"
        );
        let completed = ev.0.lock().unwrap().iter().any(|e| {
            matches!(e, Event::Layer { digest, status: LayerStatus::PullComplete }
                if *digest == Digest::of(tar))
        });
        assert!(!completed, "{name}: the refused layer completed");
    }
    // The same registry's good image pulls (the refusals were the tars, not the setup).
    put_image(&reg.addr, "h/good", "1", std::slice::from_ref(&good));
    pull(
        &b,
        &env.settings,
        &format!("{}/h/good:1", reg.addr),
        &Events::default(),
    )
    .unwrap();
    assert_eq!(b.images().unwrap().len(), 1);
    assert_eq!(snapshot_count(&b), 1);
}

/// How the blob store behind the redirect answers request `n` (from 0) for `bytes=offset-`.
#[derive(Clone, Copy)]
enum Answer {
    /// Everything from the offset.
    Whole,
    /// Announces everything from the offset, sends this many bytes, closes the connection.
    CutAfter(usize),
    /// Announces and sends only this many bytes (an honest but short body), keeps the
    /// connection.
    Short(usize),
    /// 206 with a Content-Range from byte 0, whatever was asked.
    WrongRange,
}

/// A registry serving one image whose layer blob `GET` redirects (307, as registries on S3
/// do) to a blob store on the same loopback server that honours `Range` and answers request
/// n as `answer(n)`. Returns the address and the blob store's requests' `Range` headers.
fn redirecting_registry(
    layer: Vec<u8>,
    answer: impl Fn(usize) -> Answer + Send + Sync + 'static,
) -> (String, std::sync::Arc<Mutex<Vec<Option<String>>>>) {
    use std::sync::Arc;
    let ld = Digest::of(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": Platform::host().architecture, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [ld.to_string()]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let (seen, addr2) = (ranges.clone(), addr.clone());
    let answer = Arc::new(answer);
    let (layer, config, manifest) = (Arc::new(layer), Arc::new(config), Arc::new(manifest));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let (seen, addr, answer) = (seen.clone(), addr2.clone(), answer.clone());
            let (layer, config, manifest) = (layer.clone(), config.clone(), manifest.clone());
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    // A HEAD answer has the headers only (HTTP; a pull asks a tag so first).
                    let head_only = line.starts_with("HEAD ");
                    let mut range = None;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = h.trim_end().split_once(':')
                            && k.eq_ignore_ascii_case("range")
                        {
                            range = Some(v.trim().to_string());
                        }
                    }
                    let reply = |conn: &mut std::net::TcpStream,
                                 status: &str,
                                 extra: &str,
                                 body: &[u8],
                                 len: usize| {
                        let head =
                            format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\n{extra}\r\n");
                        conn.write_all(head.as_bytes()).is_ok()
                            && (head_only || conn.write_all(body).is_ok())
                    };
                    let ok = if path == "/v2/" {
                        reply(&mut conn, "200 OK", "", b"{}", 2)
                    } else if path == "/v2/r/manifests/1" {
                        reply(
                            &mut conn,
                            "200 OK",
                            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
                            &manifest,
                            manifest.len(),
                        )
                    } else if path == format!("/v2/r/blobs/{}", Digest::of(&config)) {
                        reply(&mut conn, "200 OK", "", &config, config.len())
                    } else if path == format!("/v2/r/blobs/{}", Digest::of(&layer)) {
                        let to = format!(
                            "Location: http://{addr}/storage/{}?X-Amz-Signature=x\r\n",
                            Digest::of(&layer).hex()
                        );
                        reply(&mut conn, "307 Temporary Redirect", &to, b"", 0)
                    } else if path.starts_with("/storage/") {
                        let n = {
                            let mut s = seen.lock().unwrap();
                            s.push(range.clone());
                            s.len() - 1
                        };
                        let from: usize = range
                            .as_deref()
                            .and_then(|v| v.strip_prefix("bytes="))
                            .and_then(|v| v.trim_end_matches('-').parse().ok())
                            .unwrap_or(0);
                        let rest = &layer[from..];
                        let (status, cr) = if range.is_some() {
                            (
                                "206 Partial Content",
                                format!(
                                    "Content-Range: bytes {from}-{}/{}\r\n",
                                    layer.len() - 1,
                                    layer.len()
                                ),
                            )
                        } else {
                            ("200 OK", String::new())
                        };
                        match answer(n) {
                            Answer::Whole => reply(&mut conn, status, &cr, rest, rest.len()),
                            Answer::CutAfter(k) => {
                                reply(
                                    &mut conn,
                                    status,
                                    &cr,
                                    &rest[..k.min(rest.len())],
                                    rest.len(),
                                );
                                return; // the connection closes half-way
                            }
                            Answer::Short(k) => {
                                let k = k.min(rest.len());
                                reply(&mut conn, status, &cr, &rest[..k], k)
                            }
                            Answer::WrongRange => {
                                let cr = format!(
                                    "Content-Range: bytes 0-{}/{}\r\n",
                                    layer.len() - 1,
                                    layer.len()
                                );
                                reply(&mut conn, "206 Partial Content", &cr, &layer, layer.len())
                            }
                        }
                    } else {
                        reply(&mut conn, "404 Not Found", "", b"", 0)
                    };
                    if !ok {
                        return;
                    }
                }
            });
        }
    });
    (addr, ranges)
}

#[test]
fn short_bodies_behind_a_redirect_resume_with_range_until_the_blob_is_whole() {
    let layer = layer_tar("a", &noise(11, 600_000));
    // A connection cut after 100,000 bytes, then an honest body of 150,000, then the rest.
    let (addr, ranges) = redirecting_registry(layer.clone(), |n| match n {
        0 => Answer::CutAfter(100_000),
        1 => Answer::Short(150_000),
        _ => Answer::Whole,
    });
    let env = Env::new();
    let s = env.store("s");
    let ev = Events::default();
    let p = pull(&s, &env.settings, &format!("{addr}/r:1"), &ev).unwrap();
    assert_eq!(s.layers(&p.image.id).unwrap()[0].blob, Digest::of(&layer));
    assert_eq!(
        *ranges.lock().unwrap(),
        [
            None,
            Some("bytes=100000-".into()),
            Some("bytes=250000-".into())
        ],
        "each attempt resumes where the one before stopped"
    );
    let retries: Vec<(u64, u32, u32)> = ev
        .statuses()
        .into_iter()
        .filter_map(|s| match s {
            LayerStatus::Retrying {
                offset,
                attempt,
                of,
                ..
            } => Some((offset, attempt, of)),
            _ => None,
        })
        .collect();
    assert_eq!(retries, [(100_000, 2, 5), (250_000, 3, 5)]);
    assert!(tmp_is_empty(&s));
}

#[test]
fn a_body_that_always_ends_short_is_given_up_after_5_attempts_with_nothing_kept() {
    let layer = layer_tar("a", &noise(12, 600_000));
    let (addr, ranges) = redirecting_registry(layer.clone(), |_| Answer::CutAfter(65_536));
    let env = Env::new();
    let s = env.store("s");
    let t = Instant::now();
    let e = pull(
        &s,
        &env.settings,
        &format!("{addr}/r:1"),
        &Events::default(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::GaveUp { attempts: 5, .. }), "{msg}");
    assert_eq!(
        ranges.lock().unwrap().len(),
        5,
        "5 requests to the blob store"
    );
    assert!(
        msg.starts_with(&format!(
            "layer {}: gave up after 5 attempts (resumed with Range at bytes 65536, 131072, 196608, 262144): ",
            Digest::of(&layer)
        )) && msg.contains(&format!("the body ended after 327680 of {} bytes", layer.len())),
        "{msg}"
    );
    // The pauses are 0.25 + 0.5 + 0.75 + 1 s: bounded, not a storm and not a hang.
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(s.images().unwrap().is_empty());
    assert_eq!(blob_count(&s), 0, "blobs left behind");
    assert!(tmp_is_empty(&s));

    // A blob store that answers a range request with bytes from elsewhere is not trusted.
    let (addr, ranges) = redirecting_registry(layer.clone(), |n| match n {
        0 => Answer::CutAfter(65_536),
        _ => Answer::WrongRange,
    });
    let e = pull(
        &s,
        &env.settings,
        &format!("{addr}/r:1"),
        &Events::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("gave up after 5 attempts")
            && e.to_string()
                .contains("asked for bytes 65536- and answered with Content-Range \"bytes 0-"),
        "{e}"
    );
    assert_eq!(ranges.lock().unwrap().len(), 5);
    assert_eq!(blob_count(&s), 0);
    assert!(tmp_is_empty(&s));
}
