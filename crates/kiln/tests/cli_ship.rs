//! "Build fat, ship thin" at build time (as root, on busybox): `kiln build --squash` (one layer
//! above the base, the same files, moby's history) and several `--target NAME[=TAG]`s in one
//! build (shared steps run once, each target tagged as asked, a failure names its target).

mod support;
use std::process::Command;

use support::*;

fn inspect(c: &Ctx, image: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&ok(c, &["inspect", image])).unwrap();
    v[0].clone()
}

/// Paths in the tar of the top layer of `image` (saved with `kiln save`, read by python's
/// tarfile).
fn top_layer_paths(c: &Ctx, image: &str) -> Vec<String> {
    let python = require_command("python3", "python3");
    let archive = c.fresh("save").with_extension("tar");
    ok(c, &["save", "-o", archive.to_str().unwrap(), image]);
    let script = r#"
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
m = json.load(t.extractfile("manifest.json"))
layer = t.extractfile(m[0]["Layers"][-1])
for e in tarfile.open(fileobj=layer):
    print(e.name)
"#;
    let out = Command::new(python)
        .args(["-c", script, archive.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect()
}

const SQUASH: &str = "\
FROM localhost/busybox:latest
RUN mkdir -p /app/d && echo one > /app/one && echo tmp > /app/tmp && echo x > /app/d/x
RUN rm /app/tmp && rm /bin/cat && echo two > /app/one
ENV MODE=squashed
COPY f.txt /app/f.txt
RUN rm -rf /app/d && mkdir /app/d && echo y > /app/d/y && chmod 700 /app/d
";

#[test]
fn squash_gives_the_base_layers_plus_one_with_the_same_files() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", SQUASH)
        .file("f.txt", "from the context\n");
    c.build_ok(&["-t", "plain"]);
    let err = c.build_ok(&["--squash", "-t", "squashed"]);
    let base = inspect(&c, "localhost/busybox:latest");
    let plain = inspect(&c, "plain");
    let sq = inspect(&c, "squashed");
    let base_layers = base["RootFS"]["Layers"].as_array().unwrap().len();
    assert_eq!(
        plain["RootFS"]["Layers"].as_array().unwrap().len(),
        base_layers + 4
    );
    assert_eq!(
        sq["RootFS"]["Layers"].as_array().unwrap().len(),
        base_layers + 1,
        "{err}"
    );
    // The base's layers are kept as they are.
    assert_eq!(
        sq["RootFS"]["Layers"].as_array().unwrap()[..base_layers],
        base["RootFS"]["Layers"].as_array().unwrap()[..]
    );
    // The same files, modes, owners and contents; the same config.
    assert_eq!(ok(&c, &["diff", "plain", "squashed"]), "");
    // A file added then removed is absent, not a whiteout; a base file removed is one; the
    // directory replaced in the last step is opaque; the overwritten file is there once.
    let paths = top_layer_paths(&c, "squashed");
    assert!(
        !paths.iter().any(|p| p.contains("tmp")),
        "a whiteout of a file no lower layer has: {paths:?}"
    );
    assert!(paths.contains(&"bin/.wh.cat".to_string()), "{paths:?}");
    assert!(!paths.contains(&"app/d/x".to_string()), "{paths:?}");
    assert!(paths.contains(&"app/d/y".to_string()), "{paths:?}");
    assert_eq!(paths.iter().filter(|p| *p == "app/one").count(), 1);

    // History: every entry kept, the squashed ones empty, one more for the squashed layer.
    let raw = raw_history(&c, "squashed");
    let plain_raw = raw_history(&c, "plain");
    assert_eq!(raw.len(), plain_raw.len() + 1, "{raw:#?}");
    let non_empty: Vec<&serde_json::Value> = raw
        .iter()
        .filter(|h| !h["empty_layer"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(non_empty.len(), base_layers + 1, "{raw:#?}");
    let last = raw.last().unwrap();
    assert!(
        last["comment"]
            .as_str()
            .unwrap()
            .starts_with("merge 4 layers of stage stage-0 to sha256:"),
        "{last}"
    );
    for h in &raw[plain_raw.len() - 5..plain_raw.len()] {
        assert_eq!(h["empty_layer"], true, "{h}");
    }

    // A rebuild squashes nothing again: the same image.
    let again = c.image_id(&["--squash"]);
    assert_eq!(again, sq["Id"].as_str().unwrap());
    assert!(c.tmp_is_empty());
}

/// The image config's `history` (from the config blob, via `kiln save`).
fn raw_history(c: &Ctx, image: &str) -> Vec<serde_json::Value> {
    let python = require_command("python3", "python3");
    let archive = c.fresh("save").with_extension("tar");
    ok(c, &["save", "-o", archive.to_str().unwrap(), image]);
    let script = r#"
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
m = json.load(t.extractfile("manifest.json"))
print(json.dumps(json.load(t.extractfile(m[0]["Config"]))["history"]))
"#;
    let out = Command::new(python)
        .args(["-c", script, archive.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn squash_of_a_stage_built_on_a_stage_keeps_that_stage_s_layers() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "\
FROM localhost/busybox:latest AS base
RUN echo base > /base
FROM base
RUN echo a > /a
RUN echo b > /b
",
    );
    c.build_ok(&["-t", "plain"]);
    c.build_ok(&["--squash", "-t", "squashed"]);
    let n = |img: &str| {
        inspect(&c, img)["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(n("squashed") + 1, n("plain"));
    assert_eq!(ok(&c, &["diff", "plain", "squashed"]), "");
}

const TARGETS: &str = "\
FROM localhost/busybox:latest AS base
RUN echo shared > /shared && echo SHARED-STEP-RAN
FROM base AS tester
RUN echo test > /tested
FROM base AS deployer
RUN echo deploy > /deployed
FROM base AS broken
RUN echo BROKEN-RAN && exit 3
";

#[test]
fn several_targets_build_in_one_graph_and_share_steps() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", TARGETS);
    let (code, out, err) = c.build(&["--target", "tester", "--target", "deployer=app:prod"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "");
    // The shared step ran once: its output appears once in the plain progress.
    assert_eq!(err.matches("] RUN echo shared").count(), 1, "{err}");
    let ran = err
        .lines()
        .filter(|l| l.ends_with(" SHARED-STEP-RAN") && !l.contains("RUN"))
        .count();
    assert_eq!(ran, 1, "{err}");
    assert!(err.contains("[tester 1/1] RUN echo test"), "{err}");
    assert!(err.contains("[deployer 1/1] RUN echo deploy"), "{err}");
    assert!(!err.contains("BROKEN-RAN"), "{err}");
    // tester is untagged, its ID printed; deployer is app:prod.
    let tester = err
        .lines()
        .find_map(|l| l.strip_prefix("target tester: "))
        .and_then(|l| l.strip_suffix(" (untagged)"))
        .unwrap_or_else(|| panic!("no ID for tester in:\n{err}"))
        .to_string();
    assert!(
        err.contains("target deployer: sha256:") && err.contains("docker.io/library/app:prod"),
        "{err}"
    );
    let ls = |img: &str, path: &str| {
        let out = c.kiln(&["run", "--rm", img, "ls", path]);
        out.status.success()
    };
    assert!(ls(&tester, "/tested") && !ls(&tester, "/deployed"));
    assert!(ls("app:prod", "/deployed") && !ls("app:prod", "/tested"));
    assert!(ls("app:prod", "/shared"));
    // Each image has its own build record, naming its target.
    let rep: serde_json::Value =
        serde_json::from_str(&ok(&c, &["report", "--format", "json", "app:prod"])).unwrap();
    assert_eq!(rep["build"]["target"], "deployer");
    let stages: Vec<&str> = rep["build"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["base", "deployer"]);

    // -q prints each ID, one per line, in the order asked.
    let (code, out, err) = c.build(&["-q", "--target", "tester", "--target", "deployer=app:prod"]);
    assert_eq!(code, 0, "{err}");
    let ids: Vec<&str> = out.lines().collect();
    assert_eq!(ids.len(), 2, "{out}");
    assert_eq!(ids[0], tester);
}

#[test]
fn a_failing_target_fails_the_build_and_is_named() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", TARGETS);
    let (code, _, err) = c.build(&["--target", "tester=t:1", "--target", "broken=b:1"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("ERROR: failed to solve: target broken: "),
        "{err}"
    );
    assert!(c.tmp_is_empty());
}

#[test]
fn several_targets_refuse_what_names_one_image() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", TARGETS);
    let iid = c.fresh("iid");
    for (args, says) in [
        (
            vec!["-t", "x"],
            "-t, --tag cannot be used with several --target",
        ),
        (
            vec!["--iidfile", iid.to_str().unwrap()],
            "--iidfile cannot be used with several --target",
        ),
        (vec!["-o", "type=tar,dest=x.tar"], "-o, --output cannot"),
    ] {
        let mut a = vec!["--target", "tester", "--target", "deployer"];
        a.extend(args);
        let (code, _, err) = c.build(&a);
        assert_eq!(code, 125, "{err}");
        assert!(err.contains(says), "{err}");
    }
    let (code, _, err) = c.build(&["--target", "tester=Bad:Tag:x"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("for \"--target\" flag"), "{err}");
    let (code, _, err) = c.build(&["--target", "tester", "--target", "nosuch"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nosuch"), "{err}");
    // One tag for two targets: refused (it would name whichever was stored last).
    let (code, _, err) = c.build(&["--target", "tester=x:same", "--target", "deployer=x:same"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("also given to target tester"), "{err}");
}

const ATTRIBUTION: &str = "\
FROM localhost/busybox:latest AS builder
RUN mkdir /out && dd if=/dev/zero of=/out/app.bin bs=1000 count=40 && echo tool > /usr/tool
FROM localhost/busybox:latest
COPY --from=builder /out /app
COPY f.txt /etc/f.txt
RUN echo ran > /ran
";

#[test]
fn report_attributes_files_to_the_stage_or_base_they_came_from() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", ATTRIBUTION)
        .file("f.txt", "from the context\n");
    c.build_ok(&["-t", "app"]);
    let r: serde_json::Value = serde_json::from_str(&ok(
        &c,
        &["report", "--format", "json", "--depth", "1", "app"],
    ))
    .unwrap();
    let from: Vec<(String, u64)> = r["shipped_from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["origin"].as_str().unwrap().to_string(),
                o["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    let bytes_of = |name: &str| from.iter().find(|(o, _)| o == name).map(|(_, b)| *b);
    assert_eq!(bytes_of("stage builder"), Some(40_000), "{from:?}");
    assert_eq!(bytes_of("context"), Some(17), "{from:?}");
    assert_eq!(bytes_of("stage stage-1"), Some(4), "{from:?}");
    assert!(bytes_of("base localhost/busybox:latest").unwrap() > 100_000);
    let dir = |p: &str| {
        r["directories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["path"] == p)
            .unwrap_or_else(|| panic!("no {p} in {r}"))
            .clone()
    };
    assert_eq!(dir("/app")["origins"][0]["origin"], "stage builder");
    assert_eq!(dir("/app")["origins"].as_array().unwrap().len(), 1);
    assert_eq!(
        dir("/bin")["origins"][0]["origin"],
        "base localhost/busybox:latest"
    );
    let etc_dir = dir("/etc");
    let etc: Vec<&str> = etc_dir["origins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["origin"].as_str().unwrap())
        .collect();
    assert!(etc.contains(&"context") && etc.contains(&"base localhost/busybox:latest"));
    // The builder's own files did not ship (/usr/tool).
    assert!(!r.to_string().contains("/usr/tool"));
    let text = ok(&c, &["report", "--depth", "1", "app"]);
    assert!(text.contains("/app  ← stage builder"), "{text}");
    assert!(text.contains("Shipped from:"), "{text}");

    // Squashed, the stage's layer is named as such.
    c.build_ok(&["--squash", "-t", "app:squashed"]);
    let r: serde_json::Value =
        serde_json::from_str(&ok(&c, &["report", "--format", "json", "app:squashed"])).unwrap();
    let origins: Vec<&str> = r["shipped_from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["origin"].as_str().unwrap())
        .collect();
    assert_eq!(
        origins,
        ["base localhost/busybox:latest", "squashed stage stage-1"]
    );
}

/// A squashed image is the same on a machine that builds it from `--cache-from`: the
/// whiteouts the squash makes carry a fixed time, not when the squash ran.
#[test]
fn squash_from_a_shared_cache_gives_the_same_image() {
    require_root();
    let a = Ctx::new();
    a.file("Dockerfile", SQUASH)
        .file("f.txt", "from the context\n");
    let cache = a.tmp.path().join("cache");
    let dest = format!("type=local,dest={}", cache.display());
    let id_a = a.image_id(&["--squash", "--cache-to", &dest]);
    // Another store (another machine), a second later: only the cache is shared.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = Ctx::new();
    b.file("Dockerfile", SQUASH)
        .file("f.txt", "from the context\n");
    let src = format!("type=local,src={}", cache.display());
    let id_b = b.image_id(&["--squash", "--cache-from", &src]);
    assert_eq!(id_a, id_b);
}
