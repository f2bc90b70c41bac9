//! `kiln diff` and `kiln report` on images kiln builds from busybox (as root): exact diff lines
//! and JSON, exact wasted/duplicated/leftover bytes, `--compare` percentages, and the HTML page
//! rendered by headless Chromium (text and screenshot).

mod support;
use std::path::Path;
use std::process::Command;

use support::*;

fn json(c: &Ctx, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(c, args)).unwrap()
}

/// docker's size of an image as `kiln inspect` reports it (the store's own computation).
fn inspect_size(c: &Ctx, image: &str) -> u64 {
    ok(c, &["inspect", "--format", "{{.Size}}", image])
        .trim()
        .parse()
        .unwrap()
}

const DIFF_A: &str = "\
FROM localhost/busybox:latest
RUN mkdir -p /data && echo hello > /data/keep && echo old > /data/change && echo gone > /data/gone && echo m > /data/mode && echo o > /data/owner && ln -s keep /data/link && dd if=/dev/zero of=/big bs=1000 count=50
ENV A=1 KEEP=same
";

const DIFF_B: &str = "\
FROM localhost/busybox:latest
RUN mkdir -p /data && echo hello > /data/keep && echo old > /data/change && echo gone > /data/gone && echo m > /data/mode && echo o > /data/owner && ln -s keep /data/link && dd if=/dev/zero of=/big bs=1000 count=50
RUN rm /data/gone && echo new! > /data/change && chmod 755 /data/mode && chown 1000:1000 /data/owner && ln -sf change /data/link && echo added > /data/new && rm /big
ENV A=2 B=3 KEEP=same
USER nobody
";

#[test]
fn diff_lists_added_removed_and_changed_files_and_config() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile.a", DIFF_A).file("Dockerfile.b", DIFF_B);
    c.build_ok(&[
        "-f",
        c.ctx.join("Dockerfile.a").to_str().unwrap(),
        "-t",
        "a",
    ]);
    c.build_ok(&[
        "-f",
        c.ctx.join("Dockerfile.b").to_str().unwrap(),
        "-t",
        "b",
    ]);

    assert_eq!(
        ok(&c, &["diff", "a", "b"]),
        "\
D /big
C /data/change (size 4 → 5)
D /data/gone
C /data/link (link keep → change)
C /data/mode (mode 0644 → 0755)
A /data/new
C /data/owner (owner 0:0 → 1000:1000)
C config Env (A=1 → A=2)
A config Env B=3
C config User (unset → nobody)
"
    );
    assert_eq!(
        ok(&c, &["diff", "--stat", "a", "b"]),
        "\
1 added (6 bytes, 6B)
2 removed (50005 bytes, 50kB)
4 changed (12 → 15 bytes)
3 config changes
"
    );
    let stat = json(&c, &["diff", "--stat", "--format", "json", "a", "b"]);
    assert_eq!(stat["removed_bytes"], 50005);
    assert_eq!(stat["config"], 3);

    let j = json(&c, &["diff", "--format", "json", "a", "b"]);
    let files = j["files"].as_array().unwrap();
    assert_eq!(files.len(), 7);
    let mode = files.iter().find(|f| f["path"] == "/data/mode").unwrap();
    assert_eq!(mode["change"], "C");
    assert_eq!(mode["fields"], serde_json::json!(["mode"]));
    assert_eq!(mode["old"]["mode"], 0o644);
    assert_eq!(mode["new"]["mode"], 0o755);
    let change = files.iter().find(|f| f["path"] == "/data/change").unwrap();
    assert_eq!(change["fields"], serde_json::json!(["size"]));
    assert_ne!(change["old"]["digest"], change["new"]["digest"]);
    let added = files.iter().find(|f| f["path"] == "/data/new").unwrap();
    assert_eq!(added["new"]["kind"], "file");
    assert_eq!(added["new"]["size"], 6);
    assert_eq!(
        j["config"],
        serde_json::json!([
            {"field": "Env", "key": "A", "old": "A=1", "new": "A=2"},
            {"field": "Env", "key": "B", "old": null, "new": "B=3"},
            {"field": "User", "old": null, "new": "nobody"},
        ])
    );

    // --exit-code: 1 when they differ, 0 and no output when they do not.
    assert_eq!(
        c.kiln(&["diff", "--exit-code", "a", "b"]).status.code(),
        Some(1)
    );
    let same = c.kiln(&["diff", "--exit-code", "a", "a"]);
    assert_eq!(same.status.code(), Some(0));
    assert!(same.stdout.is_empty());
    // Without it, docker's convention: 0.
    assert_eq!(c.kiln(&["diff", "a", "b"]).status.code(), Some(0));

    let missing = c.kiln(&["diff", "a", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "Error: No such image: nope"
    );
    assert!(c.tmp_is_empty());
}

const WASTE: &str = "\
FROM localhost/busybox:latest
RUN head -c 10000 /dev/zero > /w1 && head -c 3000 /dev/zero > /w2 && mkdir -p /root/.cache/pip /src/.git && head -c 123 /dev/zero > /root/.cache/pip/x && echo 'ref: refs/heads/main' > /src/.git/HEAD && head -c 4096 /dev/urandom > /d1 && cp /d1 /d2
RUN head -c 500 /dev/zero > /w1 && rm /w2
";

#[test]
fn report_counts_wasted_duplicated_and_leftover_bytes() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", WASTE);
    c.build_ok(&["-t", "waste"]);
    let r = json(&c, &["report", "--format", "json", "waste"]);
    let size = inspect_size(&c, "waste");
    assert_eq!(r["image"]["size"], size);
    assert_eq!(r["image"]["layers"], 3);
    assert_eq!(
        r["layers"][2]["created_by"],
        "RUN /bin/sh -c head -c 500 /dev/zero > /w1 && rm /w2 # buildkit"
    );
    // /w1 overwritten (10000 bytes), /w2 deleted (3000).
    assert_eq!(r["wasted"]["bytes"], 13_000);
    assert_eq!(r["wasted"]["total"], size);
    let eff = 100.0 - (13_000.0 / size as f64 * 1000.0).round() / 10.0;
    assert_eq!(r["wasted"]["efficiency"].as_f64().unwrap(), eff);
    let lost: Vec<(String, String, u64)> = r["wasted"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["path"].as_str().unwrap().to_string(),
                l["how"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lost,
        [
            ("/w1".to_string(), "overwritten".to_string(), 10_000),
            ("/w2".to_string(), "deleted".to_string(), 3000),
        ]
    );
    assert_eq!(r["duplicates"]["bytes"], 4096);
    assert_eq!(
        r["duplicates"]["groups"][0]["paths"],
        serde_json::json!(["/d1", "/d2"])
    );
    let left: Vec<(String, String, u64)> = r["leftovers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_string(),
                l["path"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        left,
        [
            ("cache".to_string(), "/root/.cache".to_string(), 123),
            ("git".to_string(), "/src/.git".to_string(), 21),
        ]
    );
    assert!(r.get("build").is_some(), "kiln build writes a build record");

    let text = ok(&c, &["report", "waste"]);
    assert!(text.contains("Wasted: 13kB (13000 bytes) of"), "{text}");
    assert!(
        text.contains("  10kB  /w1  (layer 1 → overwritten in layer 2)"),
        "{text}"
    );
    assert!(text.contains("4.1kB  2 copies of sha256:"), "{text}");

    // --depth 1: top-level directories only; -o writes a file.
    let out = c.tmp.path().join("r.json");
    ok(
        &c,
        &[
            "report",
            "--format",
            "json",
            "--depth",
            "1",
            "-o",
            out.to_str().unwrap(),
            "waste",
        ],
    );
    let r1: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(
        r1["directories"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d.get("children").is_none())
    );
    let bad = c.kiln(&["report", "--depth", "0", "waste"]);
    assert_eq!(bad.status.code(), Some(125), "{bad:?}");
}

const THIN: &str = "\
FROM localhost/busybox:latest
RUN mkdir /app && head -c 1000 /dev/zero > /app/main.js
";

const FAT: &str = "\
FROM localhost/busybox:latest
RUN mkdir -p /app/node_modules/typescript /app/node_modules/react && head -c 1000 /dev/zero > /app/main.js && head -c 300000 /dev/zero > /app/node_modules/typescript/tsc.js && head -c 100000 /dev/urandom > /app/node_modules/react/index.js
";

fn build_thin_and_fat(c: &Ctx) {
    c.file("Dockerfile.thin", THIN).file("Dockerfile.fat", FAT);
    c.build_ok(&[
        "-f",
        c.ctx.join("Dockerfile.thin").to_str().unwrap(),
        "-t",
        "thin",
    ]);
    c.build_ok(&[
        "-f",
        c.ctx.join("Dockerfile.fat").to_str().unwrap(),
        "-t",
        "fat",
    ]);
}

#[test]
fn compare_gives_the_reduction_and_what_accounts_for_it() {
    require_root();
    let c = Ctx::new();
    build_thin_and_fat(&c);
    let (thin, fat) = (inspect_size(&c, "thin"), inspect_size(&c, "fat"));
    let pct = ((fat - thin) as f64 / fat as f64 * 1000.0).round() / 10.0;
    let r = json(
        &c,
        &["report", "--format", "json", "--compare", "fat", "thin"],
    );
    let cmp = &r["compare"];
    assert_eq!(cmp["other"]["size"], fat);
    assert_eq!(cmp["reduction_percent"].as_f64().unwrap(), pct);
    assert_eq!(
        cmp["sentence"],
        format!("thin is {pct:.1}% smaller than fat")
    );
    assert_eq!(cmp["differences"][0]["path"], "/app/node_modules");
    assert_eq!(cmp["differences"][0]["label"], "node_modules");
    assert_eq!(cmp["differences"][0]["this"], 0);
    assert_eq!(cmp["differences"][0]["other"], 400_000);
    assert_eq!(cmp["differences"].as_array().unwrap().len(), 1);

    // The other way round: larger.
    let back = json(
        &c,
        &["report", "--format", "json", "--compare", "thin", "fat"],
    );
    let up = ((fat - thin) as f64 / thin as f64 * 1000.0).round() / 10.0;
    assert_eq!(
        back["compare"]["sentence"],
        format!("fat is {up:.1}% larger than thin")
    );
    // The fat image's node_modules has a development dependency.
    let nm = &back["leftovers"][0];
    assert_eq!(nm["path"], "/app/node_modules");
    assert_eq!(nm["size"], 400_000);
    assert_eq!(
        nm["note"],
        "node_modules with development dependencies (typescript)"
    );
    let text = ok(&c, &["report", "--compare", "fat", "thin"]);
    assert!(
        text.contains(&format!("thin is {pct:.1}% smaller than fat")),
        "{text}"
    );
    assert!(
        text.contains("-   400kB  /app/node_modules  (node_modules)"),
        "{text}"
    );
}

/// Runs Chromium headless with no network (its own network namespace) and its profile in `dir`.
fn chromium(dir: &Path, args: &[&str]) -> std::process::Output {
    let bin = require_command("chromium", "chromium");
    let unshare = require_command("unshare", "util-linux");
    let profile = dir.join("chromium-profile");
    Command::new(unshare)
        .arg("--net")
        .arg(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .env("HOME", dir)
        .output()
        .expect("running chromium")
}

#[test]
fn html_report_renders_in_chromium() {
    require_root();
    let c = Ctx::new();
    build_thin_and_fat(&c);
    c.file("Dockerfile", WASTE);
    c.build_ok(&["-t", "waste"]);
    let page = c.tmp.path().join("report.html");
    ok(
        &c,
        &[
            "report",
            "--format",
            "html",
            "--compare",
            "fat",
            "-o",
            page.to_str().unwrap(),
            "thin",
        ],
    );
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch.
    for needle in ["http://", "https://", "<script", "<link", "src="] {
        let hits: Vec<_> = html
            .match_indices(needle)
            .filter(|(i, _)| !html[..*i].ends_with("xmlns=\""))
            .collect();
        assert!(hits.is_empty(), "{needle} in the page");
    }
    let url = format!("file://{}", page.display());
    let dom = chromium(c.tmp.path(), &["--dump-dom", &url]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8(dom.stdout).unwrap();
    let (thin, fat) = (inspect_size(&c, "thin"), inspect_size(&c, "fat"));
    let pct = ((fat - thin) as f64 / fat as f64 * 1000.0).round() / 10.0;
    for needle in [
        "<title>kiln report: thin</title>".to_string(),
        format!("thin is {pct:.1}% smaller than fat"),
        "<h2>What the image ships</h2>".into(),
        "<svg id=\"treemap\"".into(),
        "<code>/app/node_modules</code>".into(),
        "<h2>Layers</h2>".into(),
        "<h2>Likely build leftovers</h2>".into(),
        "<h2>Wasted space</h2>".into(),
    ] {
        assert!(dom.contains(&needle), "{needle:?} not rendered:\n{dom}");
    }

    // The waste image's page: leftovers and wasted files listed.
    let page2 = c.tmp.path().join("waste.html");
    ok(
        &c,
        &[
            "report",
            "--format",
            "html",
            "-o",
            page2.to_str().unwrap(),
            "waste",
        ],
    );
    let dom2 = chromium(
        c.tmp.path(),
        &["--dump-dom", &format!("file://{}", page2.display())],
    );
    let dom2 = String::from_utf8(dom2.stdout).unwrap();
    for needle in [
        "<code>/root/.cache</code>",
        "<code>/src/.git</code>",
        "<code>/w1</code>",
        "13kB (13000 bytes)",
        "<code>/d1, /d2</code>",
    ] {
        assert!(dom2.contains(needle), "{needle:?} not rendered:\n{dom2}");
    }

    // A screenshot: a real PNG of the asked size with content.
    let shot = c.tmp.path().join("report.png");
    let out = chromium(
        c.tmp.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,1600",
            &url,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((w, h), (1200, 1600));
    // A blank page compresses to a few kB; text, tables and the treemap do not.
    assert!(png.len() > 30_000, "screenshot only {} bytes", png.len());
}

const STAGES: &str = "\
FROM localhost/busybox:latest AS builder
RUN head -c 200000 /dev/urandom > /big && head -c 50000 /dev/zero > /gone && sleep 3
RUN rm /gone
FROM builder AS tester
RUN echo ok > /ok
FROM localhost/busybox:latest AS final
COPY --from=tester /ok /ok
RUN --mount=type=bind,from=builder,target=/b test -f /b/big
";

/// (name, size, duration_ms, is_final) of each stage of an image's build record.
fn stage_rows(r: &serde_json::Value) -> Vec<(String, u64, u64, bool)> {
    r["build"]["stages"]
        .as_array()
        .expect("a build record")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["size"].as_u64().unwrap(),
                s["duration_ms"].as_u64().unwrap(),
                s["is_final"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn stage_sizes_are_measured_as_image_sizes_and_times_are_each_stages_own() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", STAGES);
    // The whole build: the final stage only copies a file, but its FROM starts at once and its
    // COPY waits for the builder's 3 s: its own time is far below the builder's.
    c.build_ok(&["-t", "final"]);
    let s = stage_rows(&json(&c, &["report", "--format", "json", "final"]));
    let names: Vec<&str> = s.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["builder", "tester", "final"]);
    assert!(s[0].2 >= 3000, "builder ran sleep 3: {s:?}");
    assert!(s[2].2 < s[0].2 / 2, "final stage's own time: {s:?}");

    // The builder stage alone, as an image: its stage size is that image's size exactly.
    c.build_ok(&["--target", "builder", "-t", "builder"]);
    let builder_size = inspect_size(&c, "builder");
    assert_eq!(s[0].1, builder_size, "{s:?}");

    // tester = builder + a tiny RUN: the image is larger than its biggest build stage, never
    // "smaller"; the builder, all cache hits, shows almost no time.
    c.build_ok(&["--target", "tester", "-t", "tester"]);
    let r = json(&c, &["report", "--format", "json", "tester"]);
    let t = stage_rows(&r);
    assert_eq!(t[0].0, "builder");
    assert_eq!(t[0].1, builder_size);
    assert!(t[0].2 < 1000, "cached builder: {t:?}");
    let size = inspect_size(&c, "tester");
    assert_eq!(t[1].1, size, "the final stage is the image: {t:?}");
    assert!(size > builder_size);
    let b = &r["build"]["biggest_build_stage"];
    assert_eq!(b[0], "builder");
    // 3 bytes more than 2 MB: "0.0% larger", never a negative "smaller".
    assert!(b[2].as_f64().unwrap() <= 0.0, "{b}");
    let sentence = r["build"]["ship_thin"].as_str().unwrap();
    assert!(
        sentence.contains("% larger than its biggest build stage builder"),
        "{sentence}"
    );
    let text = ok(&c, &["report", "tester"]);
    assert!(text.contains(sentence), "{text}");
    assert!(!text.contains("smaller than its biggest"), "{text}");
}

#[test]
fn build_report_prints_the_built_images_report() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", WASTE);
    // Text on standard output.
    let out = c.kiln(&["build", "--report", "-t", "waste", c.ctx.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("Image: waste ("), "{stdout}");
    assert!(stdout.contains("Wasted: 13kB (13000 bytes) of"), "{stdout}");
    assert!(stdout.contains("Build stages (built here"), "{stdout}");

    // -q: standard output carries only the ID, the report (JSON) goes to standard error.
    let out = c.kiln(&[
        "build",
        "-q",
        "--report=json",
        "-t",
        "waste",
        c.ctx.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8(out.stdout).unwrap();
    assert!(
        id.trim().starts_with("sha256:") && id.lines().count() == 1,
        "{id:?}"
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(r["image"]["id"], id.trim());
    assert_eq!(r["wasted"]["bytes"], 13_000);

    // HTML.
    let out = c.kiln(&[
        "build",
        "--report=html",
        "-t",
        "waste",
        c.ctx.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .starts_with("<!DOCTYPE html>")
    );

    // Refused: several targets, --check, a format it does not know.
    c.file("Dockerfile.two", STAGES);
    let df = c.ctx.join("Dockerfile.two");
    let two = c.kiln(&[
        "build",
        "--report",
        "-f",
        df.to_str().unwrap(),
        "--target",
        "builder",
        "--target",
        "tester",
        c.ctx.to_str().unwrap(),
    ]);
    assert_eq!(two.status.code(), Some(125), "{two:?}");
    let err = String::from_utf8_lossy(&two.stderr);
    assert!(
        err.contains("--report cannot be used with several --target"),
        "{err}"
    );
    let check = c.kiln(&["build", "--check", "--report", c.ctx.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(125), "{check:?}");
    let bad = c.kiln(&["build", "--report=xml", c.ctx.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(125), "{bad:?}");
}

#[test]
fn html_stage_graph_has_the_stages_and_their_edges() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", STAGES);
    c.build_ok(&["-t", "final"]);
    let r = json(&c, &["report", "--format", "json", "final"]);
    let st = &r["build"]["stages"];
    assert_eq!(st[1]["base_stage"], 0, "tester is FROM builder");
    assert_eq!(
        st[2]["uses"],
        serde_json::json!([0, 1]),
        "COPY --from and --mount from"
    );

    let page = c.tmp.path().join("stages.html");
    ok(
        &c,
        &[
            "report",
            "--format",
            "html",
            "-o",
            page.to_str().unwrap(),
            "final",
        ],
    );
    let dom = chromium(
        c.tmp.path(),
        &["--dump-dom", &format!("file://{}", page.display())],
    );
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8(dom.stdout).unwrap();
    let graph = &dom[dom
        .find("<svg id=\"stage-graph\"")
        .expect("the stage graph")..];
    let graph = &graph[..graph.find("</svg>").unwrap()];
    for needle in [
        r#"<g class="stage" data-stage="builder">"#,
        r#"<g class="stage" data-stage="tester">"#,
        r#"<g class="stage" data-stage="final">"#,
        r#"<path class="edge from" data-from="builder" data-to="tester""#,
        r#"<path class="edge copy" data-from="tester" data-to="final""#,
        r#"<path class="edge copy" data-from="builder" data-to="final""#,
        "final (final)",
    ] {
        assert!(
            graph.contains(needle),
            "{needle:?} not in the graph:\n{graph}"
        );
    }
    assert_eq!(graph.matches("<path class=\"edge").count(), 3, "{graph}");
    // A screenshot renders (the graph is drawn, not just parsed).
    let shot = c.tmp.path().join("stages.png");
    let out = chromium(
        c.tmp.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1000,900",
            &format!("file://{}", page.display()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&std::fs::read(&shot).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
}
