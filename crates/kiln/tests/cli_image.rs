//! End-to-end tests of the image commands: the built `kiln` binary against a temporary
//! store root. Base images come from scripts/make-busybox-image.sh (busybox-static);
//! skopeo and umoci check that saved archives are what other tools expect.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kiln(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_ROOT", root)
        .env_remove("XDG_DATA_HOME")
        .stdin(Stdio::null())
        .output()
        .expect("running kiln")
}

fn ok(root: &Path, args: &[&str]) -> String {
    let o = kiln(root, args);
    assert!(
        o.status.success(),
        "kiln {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fails(root: &Path, args: &[&str]) -> String {
    let o = kiln(root, args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "kiln {args:?} should fail with 1:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stderr).unwrap()
}

fn busybox(dir: &Path, tag: &str) -> (PathBuf, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-image.sh");
    let out = dir.join(format!("{}.tar", tag.replace(['/', ':'], "_")));
    let res = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .arg(tag)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "make-busybox-image.sh failed (apt-get install busybox-static): {}",
        String::from_utf8_lossy(&res.stderr)
    );
    (
        out,
        String::from_utf8(res.stdout).unwrap().trim().to_string(),
    )
}

fn need_tool(name: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is not installed: apt-get install {name} (the .ci/run script installs it)"
    );
}

fn assert_check_clean(root: &Path) {
    let out = ok(root, &["system", "check"]);
    assert!(out.contains("store is consistent"), "{out}");
}

/// A docker-archive with one layer of `mb` MiB of incompressible data, so a load takes long
/// enough to be interrupted.
fn big_archive(dir: &Path, mb: usize) -> PathBuf {
    let mut data = vec![0u8; mb << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut layer = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    layer.append_data(&mut h, "big.bin", &data[..]).unwrap();
    let layer = layer.into_inner().unwrap();
    let lhex = kiln_image::Digest::of(&layer).hex();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["sha256:{lhex}"]}}}}"#
    );
    let chex = kiln_image::Digest::of(config.as_bytes()).hex();
    let manifest = format!(
        r#"[{{"Config":"{chex}.json","RepoTags":["localhost/big:latest"],"Layers":["{lhex}/layer.tar"]}}]"#
    );
    let out = dir.join("big.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&out).unwrap());
    for (name, bytes) in [
        ("manifest.json".to_string(), manifest.as_bytes()),
        (format!("{chex}.json"), config.as_bytes()),
        (format!("{lhex}/layer.tar"), &layer[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, bytes).unwrap();
    }
    b.finish().unwrap();
    out
}

#[test]
fn load_images_inspect_history_tag_rmi() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (archive, id) = busybox(dir.path(), "localhost/busybox:latest");
    let out = ok(&root, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: localhost/busybox:latest\n");

    let out = ok(&root, &["images"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "REPOSITORY          TAG       IMAGE ID       CREATED        SIZE"
    );
    let short = &id["sha256:".len()..][..12];
    assert!(
        lines[1].starts_with(&format!("localhost/busybox   latest    {short}   ")),
        "{out}"
    );
    assert!(lines[1].contains(" years ago "), "{out}");
    assert!(lines[1].ends_with("MB"), "{out}");
    assert_eq!(ok(&root, &["images", "-q"]), format!("{short}\n"));
    assert_eq!(
        ok(&root, &["image", "ls", "-q", "--no-trunc"]),
        format!("{id}\n")
    );
    assert_eq!(
        ok(
            &root,
            &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]
        ),
        format!("localhost/busybox:latest {short}\n")
    );
    let out = ok(
        &root,
        &["images", "--format", "table {{.Repository}}\\t{{.Size}}"],
    );
    assert!(
        out.starts_with("REPOSITORY          SIZE\nlocalhost/busybox   "),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(ok(&root, &["images", "--format", "{{json .}}"]).trim()).unwrap();
    assert_eq!(json["Repository"], "localhost/busybox");
    assert_eq!(json["Digest"], "<none>");
    let out = ok(&root, &["images", "--digests"]);
    assert!(out.lines().next().unwrap().contains("DIGEST"), "{out}");
    assert_eq!(
        ok(&root, &["images", "--filter", "dangling=true", "-q"]),
        ""
    );
    assert_eq!(
        ok(&root, &["images", "--filter", "reference=local*/*", "-q"]),
        format!("{short}\n")
    );
    assert_eq!(
        ok(&root, &["images", "--filter", "reference=nomatch", "-q"]),
        ""
    );

    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&root, &["inspect", "localhost/busybox"])).unwrap();
    let img = &inspect[0];
    assert_eq!(img["Id"], id.as_str());
    assert_eq!(img["RepoTags"][0], "localhost/busybox:latest");
    assert_eq!(img["Config"]["Cmd"][0], "sh");
    assert_eq!(img["Os"], "linux");
    assert_eq!(img["RootFS"]["Type"], "layers");
    assert!(img["Size"].as_u64().unwrap() > 1_000_000);
    assert_eq!(
        ok(
            &root,
            &["image", "inspect", "-f", "{{.Id}} {{.Config.Cmd}}", short]
        ),
        format!("{id} [sh]\n")
    );
    // As docker: `inspect` looks for any object, `image inspect` for an image.
    let err = fails(&root, &["inspect", "nope"]);
    assert_eq!(err, "Error: No such object: nope\n");
    let err = fails(&root, &["image", "inspect", "nope"]);
    assert_eq!(err, "Error: No such image: nope\n");

    let out = ok(&root, &["history", "localhost/busybox"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE          CREATED        CREATED BY"),
        "{out}"
    );
    assert!(lines[1].starts_with(short), "{out}");
    assert!(
        lines[1].contains("kiln scripts/make-busybox-image.sh (busybox-… "),
        "{out}"
    );
    assert_eq!(
        ok(&root, &["history", "-q", "localhost/busybox"]),
        format!("{short}\n")
    );

    ok(&root, &["tag", "localhost/busybox", "app:v1"]);
    assert_eq!(ok(&root, &["images", "-q"]).lines().count(), 2);
    assert_eq!(ok(&root, &["rmi", "app:v1"]), "Untagged: app:v1\n");
    let err = fails(&root, &["rmi", "app:v1"]);
    assert!(err.contains("No such image: app:v1"), "{err}");
    let out = ok(&root, &["rmi", short]);
    assert!(
        out.starts_with(&format!(
            "Untagged: localhost/busybox:latest\nDeleted: {id}\nDeleted: sha256:"
        )),
        "{out}"
    );
    assert_eq!(ok(&root, &["images", "-q"]), "");
    assert_check_clean(&root);
    assert!(
        std::fs::read_dir(root.join("blobs/sha256"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn usage_errors_exit_2_and_save_refuses_nothing_to_save() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    assert_eq!(kiln(&root, &["rmi"]).status.code(), Some(1));
    // docker: `unknown flag: --bogus` / `See 'docker images --help'.`, exit 125
    let o = kiln(&root, &["images", "--bogus"]);
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "unknown flag: --bogus\nSee 'kiln images --help'.\n"
    );
    let o = kiln(&root, &["frobnicate", "x"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("kiln: 'frobnicate' is not a kiln command."),
        "{err}"
    );
    assert!(!err.contains("__"), "a hidden command was suggested: {err}");
    let err = fails(
        &root,
        &[
            "save",
            "-o",
            dir.path().join("x.tar").to_str().unwrap(),
            "nope",
        ],
    );
    assert!(err.contains("No such image: nope"), "{err}");
    assert!(!dir.path().join("x.tar").exists());
    let err = fails(&root, &["images", "--filter", "bogus=1"]);
    assert_eq!(err, "Error: Invalid filter 'bogus'\n");
}

#[test]
fn save_load_round_trips_and_other_tools_accept_the_archives() {
    need_tool("skopeo");
    need_tool("umoci");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (archive, id) = busybox(dir.path(), "localhost/busybox:latest");
    ok(&root, &["load", "-i", archive.to_str().unwrap()]);
    for (format, transport) in [("docker", "docker-archive"), ("oci", "oci-archive")] {
        let saved = dir.path().join(format!("saved-{format}.tar"));
        ok(
            &root,
            &[
                "save",
                "--format",
                format,
                "-o",
                saved.to_str().unwrap(),
                "localhost/busybox",
            ],
        );
        let other = dir.path().join(format!("root-{format}"));
        let out = ok(&other, &["load", "-i", saved.to_str().unwrap()]);
        assert_eq!(out, "Loaded image: localhost/busybox:latest\n", "{format}");
        assert_eq!(
            ok(&other, &["images", "-q", "--no-trunc"]),
            format!("{id}\n"),
            "{format}"
        );
        assert_check_clean(&other);

        let sk = Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                &format!("{transport}:{}", saved.display()),
            ])
            .output()
            .unwrap();
        assert!(
            sk.status.success(),
            "skopeo {transport}: {}",
            String::from_utf8_lossy(&sk.stderr)
        );
        let sk = Command::new("skopeo")
            .args([
                "inspect",
                "--config",
                &format!("{transport}:{}", saved.display()),
            ])
            .output()
            .unwrap();
        assert!(
            sk.status.success(),
            "skopeo {transport}: {}",
            String::from_utf8_lossy(&sk.stderr)
        );
        let config: serde_json::Value = serde_json::from_slice(&sk.stdout).unwrap();
        assert_eq!(config["config"]["Cmd"][0], "sh");
    }
    // umoci reads an OCI layout: unpack the oci-archive and then the image.
    let layout = dir.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    let st = Command::new("tar")
        .args([
            "-xf",
            dir.path().join("saved-oci.tar").to_str().unwrap(),
            "-C",
            layout.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let bundle = dir.path().join("bundle");
    let um = Command::new("umoci")
        .args([
            "unpack",
            "--image",
            &format!("{}:latest", layout.display()),
            bundle.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        um.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&um.stderr)
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(bundle.join("rootfs/bin/sh")).unwrap(),
        PathBuf::from("../bin/busybox")
    );
    // stdin load, and save to stdout.
    let saved = std::fs::read(dir.path().join("saved-docker.tar")).unwrap();
    let third = dir.path().join("root-stdin");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("load")
        .env("KILN_ROOT", &third)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &saved).unwrap();
    drop(child.stdin.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "Loaded image: localhost/busybox:latest\n"
    );
    let o = kiln(&third, &["save", "localhost/busybox:latest"]);
    assert!(o.status.success());
    assert!(o.stdout.len() > 1_000_000);
}

#[test]
fn hostile_archives_fail_clearly_and_leave_the_store_clean() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (archive, _) = busybox(dir.path(), "localhost/busybox:latest");
    ok(&root, &["load", "-i", archive.to_str().unwrap()]);
    let before = ok(&root, &["images", "-q", "--no-trunc"]);
    let bytes = std::fs::read(&archive).unwrap();

    let empty = dir.path().join("empty.tar");
    std::fs::write(&empty, b"").unwrap();
    let err = fails(&root, &["load", "-i", empty.to_str().unwrap()]);
    assert!(err.starts_with("Error: ") && err.contains("empty"), "{err}");

    let garbage = dir.path().join("garbage.tar");
    std::fs::write(
        &garbage,
        bytes
            .iter()
            .map(|b| b.wrapping_mul(31).wrapping_add(7))
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let err = fails(&root, &["load", "-i", garbage.to_str().unwrap()]);
    assert!(err.starts_with("Error: "), "{err}");

    // Flip a byte inside the layer: its content no longer matches the diff ID.
    let lying = dir.path().join("lying.tar");
    let mut b = bytes.clone();
    let n = b.len() / 2;
    b[n] ^= 0x55;
    std::fs::write(&lying, b).unwrap();
    let err = fails(&root, &["load", "-i", lying.to_str().unwrap()]);
    assert!(err.contains("sha256:"), "{err}");

    // Cut the archive short: the layer member is truncated.
    let truncated = dir.path().join("truncated.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&root, &["load", "-i", truncated.to_str().unwrap()]);
    assert!(err.starts_with("Error: "), "{err}");

    assert_eq!(ok(&root, &["images", "-q", "--no-trunc"]), before);
    assert_check_clean(&root);
    let out = ok(&root, &["system", "check"]);
    assert!(!out.contains("note:"), "no leftover blobs expected: {out}");
}

#[test]
fn killing_load_at_random_points_never_breaks_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let archive = big_archive(dir.path(), 48);
    // Measure one load to spread the kills over its duration.
    let probe = dir.path().join("probe");
    let t = Instant::now();
    ok(&probe, &["load", "-i", archive.to_str().unwrap()]);
    let full = t.elapsed().as_micros().max(1000) as u64;
    let mut seed: u64 = 0x2545F4914F6CDD1D ^ std::process::id() as u64;
    for _ in 0..30 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % full);
        let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["load", "-i", archive.to_str().unwrap()])
            .env("KILN_ROOT", &root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_check_clean(&root);
    }
    ok(&root, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        ok(&root, &["images", "--format", "{{.Repository}}"]),
        "localhost/big\n"
    );
    assert_check_clean(&root);
    // Leftovers of killed loads are garbage a prune collects.
    ok(&root, &["system", "prune", "-f"]);
    let out = ok(&root, &["system", "check"]);
    assert!(!out.contains("note:"), "{out}");
    assert!(
        std::fs::read_dir(root.join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn parallel_load_tag_rmi_prune_end_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (a, _) = busybox(dir.path(), "localhost/a:1");
    let (b, _) = busybox(dir.path(), "localhost/b:1");
    ok(&root, &["load", "-i", a.to_str().unwrap()]);
    let mut children = Vec::new();
    for i in 0..8 {
        let script = match i % 4 {
            0 => format!("for n in 1 2 3 4 5; do \"$K\" load -i {} || exit 1; done", a.display()),
            1 => format!("for n in 1 2 3 4 5; do \"$K\" load -i {} || exit 1; done", b.display()),
            2 => format!(
                "for n in 1 2 3 4 5; do \"$K\" tag localhost/a:1 localhost/t{i}:$n || true; \"$K\" rmi localhost/t{i}:$n || true; done"
            ),
            _ => "for n in 1 2 3 4 5; do \"$K\" image prune -a -f >/dev/null || exit 1; \"$K\" system prune -f >/dev/null || exit 1; done".into(),
        };
        children.push(
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .env("K", env!("CARGO_BIN_EXE_kiln"))
                .env("KILN_ROOT", &root)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_check_clean(&root);
    // Every image still listed is whole: it saves and loads elsewhere.
    ok(&root, &["load", "-i", a.to_str().unwrap()]);
    let other = dir.path().join("other");
    let saved = dir.path().join("saved.tar");
    ok(
        &root,
        &["save", "-o", saved.to_str().unwrap(), "localhost/a:1"],
    );
    ok(&other, &["load", "-i", saved.to_str().unwrap()]);
}
