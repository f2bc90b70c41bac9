//! Build progress as BuildKit prints it: plain mode's blocks and endings, the step names
//! BuildKit gives (`[stage 1/3]`, `[1/4]`, build args expanded), the "exporting to image"
//! group, failing RUN and COPY steps, rawjson, BUILDKIT_PROGRESS, and the tty view under a
//! pseudo-terminal. One test builds the same Dockerfiles with docker 20.10 (BuildKit) and
//! compares the plain output line by line; it fails when dockerd is not reachable.

use kiln_test::docker::Docker;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use support::*;

/// The blocks of plain output: (vertex name, the vertex's other lines with `#N ` removed),
/// in the order they are printed. A vertex printed twice (left open for another) is two
/// blocks.
fn blocks(err: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut blank = true;
    for line in err.lines() {
        if line.is_empty() {
            blank = true;
            continue;
        }
        let Some(rest) = line.strip_prefix('#') else {
            blank = false;
            continue;
        };
        let Some((_, body)) = rest.split_once(' ') else {
            continue;
        };
        if blank {
            out.push((body.to_string(), Vec::new()));
        } else if let Some(b) = out.last_mut() {
            b.1.push(body.to_string());
        }
        blank = false;
    }
    out
}

fn names(err: &str) -> Vec<String> {
    blocks(err).into_iter().map(|(n, _)| n).collect()
}

fn is_digest(s: &str) -> bool {
    s.len() == 71 && s.starts_with("sha256:") && s[7..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// `DONE 0.1s`
fn is_done(s: &str) -> bool {
    s.strip_prefix("DONE ")
        .and_then(|t| t.strip_suffix('s'))
        .is_some_and(|t| {
            t.parse::<f64>().is_ok() && t.contains('.') && t.split('.').nth(1).unwrap().len() == 1
        })
}

const ONE_STAGE: &str = "FROM localhost/busybox:latest\n\
ARG GREETING=hi\n\
WORKDIR /app\n\
COPY a.txt ./\n\
RUN echo \"$GREETING\" from $HOSTNAME_UNSET && cat a.txt\n";

#[test]
fn plain_output_has_buildkits_blocks_names_and_endings() {
    require_root();
    let c = Ctx::new();
    c.file("a.txt", "content\n").file("Dockerfile", ONE_STAGE);
    let err = c.build_ok(&["-t", "progress-one", "--build-arg", "GREETING=hello"]);
    // Names as BuildKit gives them (checked against docker 20.10 for this Dockerfile): no
    // stage name in a one-stage build, FROM counted, the build arg expanded, quotes and
    // unset variables kept in a RUN.
    assert_eq!(
        names(&err),
        [
            "[1/4] FROM localhost/busybox:latest",
            "[2/4] WORKDIR /app",
            "[3/4] COPY a.txt ./",
            "[4/4] RUN echo \"hello\" from $HOSTNAME_UNSET && cat a.txt",
            "exporting to image",
        ],
        "{err}"
    );
    // Every block: the digest line, then its lines, then DONE; a blank line between blocks.
    for (name, lines) in blocks(&err) {
        assert!(is_digest(&lines[0]), "{name}: {lines:?}");
        assert!(is_done(lines.last().unwrap()), "{name}: {lines:?}");
    }
    let (before, _) = err
        .split_once("\n\n#2 [2/4] WORKDIR /app\n#2 sha256:")
        .expect("a blank line, the header and the digest");
    assert!(is_done(&before.lines().last().unwrap()[3..]), "{err}");
    // The RUN's output, each line with its time since the step started.
    let run = &blocks(&err)[3].1;
    assert!(
        run.iter()
            .any(|l| l.ends_with(" hello from")
                && l.split(' ').next().unwrap().parse::<f64>().is_ok()),
        "{run:?}"
    );
    assert!(run.iter().any(|l| l.ends_with(" content")), "{run:?}");
    // The exporting group, as docker's image exporter prints it.
    let (_, export) = &blocks(&err)[4];
    assert_eq!(
        export[0],
        "sha256:e8c613e07b0b7ff33893b694f7759a10d42e180f2b4dc349fb57dc6b71dcab00"
    );
    assert!(
        export
            .iter()
            .any(|l| l.starts_with("exporting layers") && l.ends_with(" done")),
        "{export:?}"
    );
    assert!(
        export
            .iter()
            .any(|l| l.starts_with("writing image sha256:") && l.ends_with(" done")),
        "{export:?}"
    );
    assert!(
        export.contains(&"naming to docker.io/library/progress-one done".to_string()),
        "{export:?}"
    );
    assert!(
        !err.contains("FINISHED") && !err.contains("built in"),
        "{err}"
    );

    // Rebuilt: every instruction CACHED, the base image and the export DONE.
    let err = c.build_ok(&["-t", "progress-one:v2", "--build-arg", "GREETING=hello"]);
    let ends: Vec<String> = blocks(&err)
        .into_iter()
        .map(|(_, l)| l.last().unwrap().clone())
        .collect();
    assert_eq!(ends[1..4], ["CACHED", "CACHED", "CACHED"], "{err}");
    assert!(is_done(&ends[0]) && is_done(&ends[4]), "{err}");
    assert!(
        err.contains("naming to docker.io/library/progress-one:v2 done"),
        "{err}"
    );
}

#[test]
fn multi_stage_names_count_from_the_first_instruction_and_share_the_base() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "ARG BASE=localhost/busybox:latest\n\
         FROM ${BASE} AS build\n\
         ARG OUT=/out\n\
         RUN echo built > /b\n\
         WORKDIR $OUT\n\
         FROM build AS test\n\
         RUN echo testing\n\
         FROM localhost/busybox:latest\n\
         COPY --from=build /b /b\n\
         RUN cat /b\n",
    );
    let err = c.build_ok(&["--jobs", "1"]);
    // The last stage's FROM is the build stage's (one vertex, shown once); the test stage
    // is not needed; `FROM build` has no number of its own (checked against docker 20.10).
    assert_eq!(
        names(&err),
        [
            "[build 1/3] FROM localhost/busybox:latest",
            "[build 2/3] RUN echo built > /b",
            "[build 3/3] WORKDIR /out",
            "[stage-2 2/3] COPY --from=build /b /b",
            "[stage-2 3/3] RUN cat /b",
            "exporting to image",
        ],
        "{err}"
    );
    let err = c.build_ok(&["--target", "test"]);
    assert!(err.contains("[test 1/1] RUN echo testing"), "{err}");
    // Ten numbered steps pad the number as BuildKit does.
    let mut df = String::from("FROM localhost/busybox:latest\n");
    for i in 0..9 {
        df.push_str(&format!("RUN echo {i}\n"));
    }
    c.file("Dockerfile", &df);
    let err = c.build_ok(&[]);
    assert!(
        err.contains("#1 [ 1/10] FROM localhost/busybox:latest"),
        "{err}"
    );
    assert!(err.contains("[10/10] RUN echo 8"), "{err}");
}

#[test]
fn a_failing_run_shows_its_step_box_and_dockerfile_line_and_never_finishes() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN echo ok\nRUN echo about to fail && exit 3\nRUN echo never\n",
    );
    let (code, _, err) = c.build(&["-t", "never-made"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("#3 [3/4] RUN echo about to fail && exit 3\n#3 sha256:"),
        "{err}"
    );
    assert!(
        err.contains("#3 ERROR: process \"/bin/sh -c echo about to fail && exit 3\" did not complete successfully: exit code: 3\n\
                      ------\n > [3/4] RUN echo about to fail && exit 3:\n------\n"),
        "{err}"
    );
    assert!(
        err.contains(
            "Dockerfile:3\n--------------------\n   1 |     FROM localhost/busybox:latest\n   2 |     RUN echo ok\n   3 | >>> RUN echo about to fail && exit 3\n   4 |     RUN echo never\n"
        ),
        "{err}"
    );
    assert!(
        err.trim_end()
            .ends_with("did not complete successfully: exit code: 3"),
        "{err}"
    );
    assert!(err.contains("\nERROR: failed to solve: process"), "{err}");
    assert!(!err.contains("[4/4] RUN echo never\n#"), "{err}");
    for never in ["exporting to image", "naming to", "FINISHED", "built"] {
        assert!(!err.contains(never), "{never:?} after an error:\n{err}");
    }
}

#[test]
fn a_failing_copy_shows_its_step_box_and_dockerfile_line_like_a_run() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN echo ok\nCOPY missing.txt /x\nRUN echo never\n",
    );
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("\n#3 [3/4] COPY missing.txt /x\n#3 sha256:"),
        "{err}"
    );
    assert!(err.contains("#3 ERROR: "), "{err}");
    assert!(
        err.contains("------\n > [3/4] COPY missing.txt /x:\n------\n"),
        "{err}"
    );
    assert!(
        err.contains("Dockerfile:3\n--------------------\n"),
        "{err}"
    );
    assert!(err.contains("   3 | >>> COPY missing.txt /x\n"), "{err}");
    assert!(
        err.contains("ERROR: failed to solve: ") && err.contains("missing.txt"),
        "{err}"
    );
    for never in ["exporting to image", "FINISHED", "built"] {
        assert!(!err.contains(never), "{never:?} after an error:\n{err}");
    }
}

/// `kiln build CONTEXT ARGS` with `env` set.
fn build_env(c: &Ctx, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.env("KILN_ROOT", &c.root)
        .env_remove("BUILDKIT_PROGRESS")
        .env_remove("NO_COLOR")
        .arg("build")
        .args(args)
        .arg(&c.ctx);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Standard base64 (what Go's JSON makes of `[]byte`), decoded.
fn unbase64(s: &str) -> Vec<u8> {
    const ABC: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for ch in s.chars().filter(|&c| c != '=') {
        bits = bits << 6 | ABC.find(ch).expect("base64") as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

#[test]
fn rawjson_is_one_solve_status_per_line_and_buildkit_progress_is_honoured() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN echo from-the-step\n",
    );
    let out = build_env(&c, &[("BUILDKIT_PROGRESS", "rawjson")], &["-t", "raw"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let mut vertexes: Vec<serde_json::Value> = Vec::new();
    let mut statuses = Vec::new();
    let mut logs = Vec::new();
    for line in err.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let obj = v.as_object().expect("an object per line");
        assert!(!obj.is_empty(), "{line}");
        for (k, list) in obj {
            let list = list.as_array().expect("lists").clone();
            match k.as_str() {
                "vertexes" => vertexes.extend(list),
                "statuses" => statuses.extend(list),
                "logs" => logs.extend(list),
                other => panic!("unexpected key {other}: {line}"),
            }
        }
    }
    // The last state of each vertex: named, with digest, started and completed.
    let last = |name: &str| {
        vertexes
            .iter()
            .rev()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no vertex {name}: {err}"))
            .clone()
    };
    let run = last("[2/2] RUN echo from-the-step");
    for v in [
        last("[1/2] FROM localhost/busybox:latest"),
        run.clone(),
        last("exporting to image"),
    ] {
        assert!(is_digest(v["digest"].as_str().unwrap()), "{v}");
        for k in ["started", "completed"] {
            let t = v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"));
            assert!(t.len() >= 20 && t.ends_with('Z') && t.contains('T'), "{t}");
        }
    }
    assert!(
        statuses
            .iter()
            .any(|s| s["id"] == "naming to docker.io/library/raw"
                && s["completed"].is_string()
                && s["vertex"] == last("exporting to image")["digest"]),
        "{statuses:?}"
    );
    let printed: Vec<u8> = logs
        .iter()
        .filter(|l| l["vertex"] == run["digest"])
        .flat_map(|l| unbase64(l["data"].as_str().unwrap()))
        .collect();
    assert_eq!(String::from_utf8_lossy(&printed), "from-the-step\n");

    // --progress beats the variable; quiet says nothing; a bad value is named.
    let out = build_env(
        &c,
        &[("BUILDKIT_PROGRESS", "rawjson")],
        &["--progress=plain"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.starts_with("#1 [1/2] FROM"),
        "{err}"
    );
    let out = build_env(&c, &[("BUILDKIT_PROGRESS", "quiet")], &[]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let out = build_env(&c, &[("BUILDKIT_PROGRESS", "fancy")], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("invalid value \"fancy\" passed to BUILDKIT_PROGRESS"),
        "{err}"
    );
    let out = build_env(&c, &[], &["--progress=fancy"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("invalid value \"fancy\" passed to --progress, valid values are: auto, plain, tty, quiet, rawjson"), "{err}");
    // tty without a terminal is plain, as docker 20.10 has it.
    let out = build_env(&c, &[], &["--progress=tty"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.starts_with("#1 [1/2] FROM") && !err.contains('\x1b'),
        "{err}"
    );
}

/// Runs `kiln build --progress=tty ARGS` on a pseudo-terminal of 100x40 through util-linux
/// `script`; returns (exit code, what the terminal received).
fn build_on_pty(c: &Ctx, env: &[(&str, &str)], args: &str) -> (i32, String) {
    let typescript = c.fresh("typescript");
    let cmd = format!(
        "stty cols 100 rows 40; {} build --progress=tty {args} {}",
        bin(),
        c.ctx.display()
    );
    let mut script = Command::new("script");
    script
        .args(["-qfec", &cmd])
        .arg(&typescript)
        .env("KILN_ROOT", &c.root)
        .env_remove("NO_COLOR")
        .env_remove("BUILDKIT_PROGRESS");
    for (k, v) in env {
        script.env(k, v);
    }
    let out = script
        .output()
        .expect("util-linux `script` is needed to run kiln on a pseudo-terminal");
    let text = std::fs::read_to_string(&typescript).expect("script's typescript");
    (out.status.code().unwrap_or(-1), text)
}

/// SGR escape sequences (`ESC [ digits ; ... m`): colours.
fn has_colour(s: &str) -> bool {
    s.split('\x1b').skip(1).any(|seq| {
        seq.strip_prefix('[').is_some_and(|r| {
            let end = r.find(|c: char| !(c.is_ascii_digit() || c == ';'));
            end.is_some_and(|e| r[e..].starts_with('m'))
        })
    })
}

#[test]
fn tty_view_counts_to_the_total_in_colour_unless_no_color() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN echo one\nRUN echo two\n",
    );
    let (code, text) = build_on_pty(&c, &[], "-t ttyview");
    assert_eq!(code, 0, "{text}");
    // 3 steps + exporting to image: the counter reaches the total, then FINISHED.
    assert!(
        text.contains("[+] Building ") && text.contains(" (4/4) FINISHED"),
        "{text}"
    );
    assert!(text.contains(" => [2/3] RUN echo one"), "{text}");
    assert!(
        text.contains(" => => naming to docker.io/library/ttyview"),
        "{text}"
    );
    assert!(has_colour(&text), "{text:?}");
    // Lines fill the terminal's width (one column short, as BuildKit's).
    let line = text
        .split(['\n', '\r'])
        .find(|l| l.contains(" => [2/3] RUN echo one"))
        .unwrap();
    let visible: String = line
        .replace("\x1b[34m", "")
        .replace("\x1b[2m", "")
        .replace("\x1b[0m", "");
    assert_eq!(visible.chars().count(), 99, "{visible:?}");
    // Rebuilt: CACHED steps.
    let (code, text) = build_on_pty(&c, &[("NO_COLOR", "1")], "");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(" => CACHED [2/3] RUN echo one"), "{text}");
    assert!(text.contains(" (4/4) FINISHED"), "{text}");
    assert!(!has_colour(&text), "NO_COLOR: {text:?}");

    // A failure: the failing step stays on screen, in red, with its box; no FINISHED.
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN echo one\nRUN echo bad-luck && exit 2\n",
    );
    let (code, text) = build_on_pty(&c, &[], "");
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("\x1b[31m => ERROR [3/3] RUN echo bad-luck && exit 2"),
        "{text:?}"
    );
    assert!(
        text.contains(" > [3/3] RUN echo bad-luck && exit 2:"),
        "{text}"
    );
    assert!(text.contains("bad-luck"), "{text}");
    // A failed step is finished too: the count is complete, but nothing says FINISHED.
    assert!(text.contains(" (3/3) "), "{text}");
    assert!(!text.contains("FINISHED"), "{text}");
}

/// The busybox image under a tag of this test file's own, for docker and kiln alike (the
/// usual tag may name another image in dockerd).
fn shared_busybox(dir: &Path) -> PathBuf {
    let out = dir.join("progress-busybox.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-image.sh");
    let st = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .arg("localhost/kiln-progress-busybox:latest")
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    out
}

/// Plain output normalized for comparison: BuildKit's `[internal]` vertexes (kiln reads the
/// Dockerfile and context in place) left out, vertexes renumbered in order, digests, times
/// and the error message masked, status starts (printed or not by timing) dropped, and the
/// base image's ending (DONE or CACHED, as dockerd's cache has it) masked.
fn normalize(err: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut numbers: Vec<String> = Vec::new();
    let mut internal: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut digests: Vec<String> = Vec::new();
    let mut from = false;
    for line in err.lines() {
        // The error box (kiln's Dockerfile excerpt after it is BuildKit's newer one; docker
        // 20.10 prints the bare message).
        if line == "------" || line.starts_with(" > ") {
            out.push(line.to_string());
            continue;
        }
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((n, body)) = rest.split_once(' ') else {
            continue;
        };
        if body.starts_with("[internal]") {
            internal.push(n.to_string());
        }
        if internal.iter().any(|x| x == n) {
            continue;
        }
        let shared_from;
        let body = match body.split_once("] FROM ") {
            // Stages sharing a base share its vertex, which BuildKit names after whichever
            // stage reached it first.
            Some((stage, image)) if stage.contains(' ') => {
                shared_from = format!("[STAGE] FROM {image}");
                shared_from.as_str()
            }
            _ => body,
        };
        if !numbers.contains(&n.to_string()) {
            numbers.push(n.to_string());
            names.push(body.to_string());
            from = body.contains("] FROM ");
        } else if body == "..."
            || names.iter().any(|x| x == body)
            || is_digest(body) && digests.iter().any(|x| x == n)
        {
            // A vertex put back on screen after another (timing decides when): its header
            // again, or the mark that it was left open.
            continue;
        }
        if is_digest(body) {
            digests.push(n.to_string());
        }
        let k = numbers.iter().position(|x| x == n).unwrap() + 1;
        let words: Vec<&str> = body.split(' ').collect();
        let body = if is_digest(body) {
            "DIGEST".to_string()
        } else if words[0].parse::<f64>().is_ok() {
            format!("TIME {}", words[1..].join(" "))
        } else if body.starts_with("DONE ") || body == "CACHED" {
            if from {
                "END".into()
            } else if body == "CACHED" {
                body.into()
            } else {
                "DONE".into()
            }
        } else if body.starts_with("ERROR: ") {
            "ERROR".into()
        } else if names[k - 1] == "exporting to image"
            && !body.ends_with(" done")
            && k_seen(&out, k)
        {
            // A sub-step's start, printed or not as timing has it.
            continue;
        } else if body.ends_with(" done") {
            let b: Vec<&str> = words
                .iter()
                .filter(|w| !(w.ends_with('s') && w[..w.len() - 1].parse::<f64>().is_ok()))
                .map(|w| if is_digest(w) { "DIGEST" } else { w })
                .collect();
            b.join(" ")
        } else {
            body.to_string()
        };
        out.push(format!("#{k} {body}"));
    }
    out
}

/// Whether vertex `k`'s header is already in the normalized lines.
fn k_seen(out: &[String], k: usize) -> bool {
    let pfx = format!("#{k} ");
    out.iter().any(|l| l.starts_with(&pfx))
}

/// Normalized lines as blocks without their numbers, sorted, one string per block.
fn sorted_blocks(lines: &[String]) -> Vec<String> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    for l in lines {
        let (n, body) = l.split_once(' ').unwrap_or(("", l));
        match blocks.last_mut() {
            Some((m, b)) if m == n => {
                b.push('\n');
                b.push_str(body);
            }
            _ => blocks.push((n.to_string(), body.to_string())),
        }
    }
    let mut out: Vec<String> = blocks.into_iter().map(|(_, b)| b).collect();
    out.sort();
    out
}

fn docker(args: &[&str], ctx: &Path) -> (i32, String) {
    let out = Command::new("/usr/bin/docker")
        .env("DOCKER_BUILDKIT", "1")
        .args(["build", "--progress=plain", "--network=host"])
        .args(args)
        .arg(ctx)
        .output()
        .expect("running /usr/bin/docker");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn plain_output_matches_docker_buildkit_line_by_line() {
    require_root();
    // The running dockerd, or one started (and stopped) here.
    let _engine = Docker::engine();
    let c = Ctx::new();
    let archive = shared_busybox(c.tmp.path());
    let load = Command::new("/usr/bin/docker")
        .args(["load", "-q", "-i"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let load = c.kiln(&["load", "-q", "-i", archive.to_str().unwrap()]);
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    // A fresh value, so that dockerd's cache holds none of these steps at first.
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let nonce_arg = format!("NONCE={nonce}");
    c.file("a.txt", "a\n");
    let cases: Vec<(&str, String, bool)> = vec![
        (
            "one stage, build args, then all cached",
            "FROM localhost/kiln-progress-busybox\nARG NONCE\nARG V=1\nRUN echo \"$NONCE\" $V '$V'\nWORKDIR /w\nCOPY a.txt ./\nRUN cat a.txt\nRUN echo 3\nRUN echo 4\nRUN echo 5\nRUN echo 6\nRUN echo 7\n".into(),
            true,
        ),
        (
            "two stages",
            "FROM localhost/kiln-progress-busybox AS build\nARG NONCE\nRUN echo $NONCE > /n\nFROM localhost/kiln-progress-busybox\nCOPY --from=build /n /n\nRUN cat /n\n".into(),
            true,
        ),
        (
            "failing RUN",
            "FROM localhost/kiln-progress-busybox\nARG NONCE\nRUN echo $NONCE\nRUN echo failing && exit 3\nRUN echo never\n".into(),
            false,
        ),
        (
            "failing COPY",
            // Right after FROM: a step running beside it would be cancelled by BuildKit, which
            // checks COPY sources before the steps below them finish.
            "FROM localhost/kiln-progress-busybox\nCOPY missing.txt /x\nRUN echo never\n".into(),
            false,
        ),
    ];
    for (what, df, ok) in cases {
        c.file("Dockerfile", &df);
        let runs = if ok { 2 } else { 1 };
        for run in 0..runs {
            let tag = format!("kiln-progress-compare:{run}");
            let args = ["--build-arg", nonce_arg.as_str(), "-t", tag.as_str()];
            let (dcode, derr) = docker(&args, &c.ctx);
            let mut kargs = vec!["--jobs", "1"];
            kargs.extend_from_slice(&args);
            let (kcode, _, kerr) = c.build(&kargs);
            assert_eq!(
                kcode, dcode,
                "{what}: exit codes\ndocker:\n{derr}\nkiln:\n{kerr}"
            );
            let (mut d, mut k) = (normalize(&derr), normalize(&kerr));
            if run > 0 {
                // All cached: BuildKit finishes them at one instant and prints (and numbers)
                // them in no set order. Compare the blocks, whatever their order.
                d = sorted_blocks(&d);
                k = sorted_blocks(&k);
            }
            assert_eq!(
                k, d,
                "{what} (run {run}): kiln's plain output differs from BuildKit's\ndocker:\n{derr}\nkiln:\n{kerr}"
            );
            let _ = Command::new("/usr/bin/docker").args(["rmi", &tag]).output();
        }
    }
}
