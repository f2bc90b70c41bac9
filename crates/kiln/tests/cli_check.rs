//! `kiln check` and the checks of `kiln build`: text with file:line:col and a caret, JSON,
//! SARIF validated against the official SARIF 2.1.0 schema, the check directive and build
//! arg, exit codes, `--fix`, the tutorial's Dockerfiles, `build --check` and the warnings a
//! build prints.

use std::path::Path;
use std::process::{Command, Output};

mod support;
use support::*;

const REACT: &str = "/work/shared/fixtures/react-app";

fn check(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("check")
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (p, c) in files {
        let p = d.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }
    d
}

fn json_findings(args: &[&str]) -> (Output, serde_json::Value) {
    let mut a = vec!["--format", "json"];
    a.extend_from_slice(args);
    let out = check(&a);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)));
    (out, v)
}

fn rules(v: &serde_json::Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn text_output_points_at_the_line_with_a_caret() {
    let d = dir_with(&[("Dockerfile", "FROM alpine:3.20\n\nCMD node app.js\n")]);
    let out = check(&[d.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("warning[JSONArgsRecommended]: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals\n"),
        "{s}"
    );
    assert!(s.contains("/Dockerfile:3:1\n"), "{s}");
    assert!(s.contains("3 | CMD node app.js\n  | ^^^\n"), "{s}");
    assert!(
        s.contains("https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"),
        "{s}"
    );
}

#[test]
fn json_lists_rule_severity_message_url_location() {
    let (out, v) = json_findings(&["-f", &format!("{REACT}/Dockerfile.single"), REACT]);
    assert_eq!(out.status.code(), Some(0));
    let r = rules(&v);
    assert!(r.contains(&"FatFinalStage".into()), "{r:?}");
    assert!(r.contains(&"FinalStageRunsAsRoot".into()), "{r:?}");
    for f in v["findings"].as_array().unwrap() {
        for k in ["rule", "severity", "message", "url", "location"] {
            assert!(!f[k].is_null(), "{k} missing in {f}");
        }
        assert!(f["location"]["line"].as_u64().unwrap() >= 1);
        assert_eq!(f["severity"], "warning");
    }
    let (_, v) = json_findings(&["-f", &format!("{REACT}/Dockerfile"), REACT]);
    assert!(!rules(&v).contains(&"FatFinalStage".into()), "{v}");
    // Several Dockerfiles in one run, each finding naming its file.
    let (_, v) = json_findings(&[
        &format!("{REACT}/Dockerfile"),
        &format!("{REACT}/Dockerfile.single"),
    ]);
    assert_eq!(v["files"].as_array().unwrap().len(), 2);
    let single: Vec<_> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["location"]["file"]
                .as_str()
                .unwrap()
                .ends_with("Dockerfile.single")
        })
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(single.contains(&"FatFinalStage"), "{v}");
}

#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema() {
    let python = require_command("python3", "python3");
    let probe = Command::new(&python)
        .args(["-c", "import jsonschema"])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "this test needs python3's jsonschema module (pip install jsonschema): {}",
        text(&probe.stderr)
    );
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sarif-schema-2.1.0.json");
    let d = dir_with(&[
        (
            "Dockerfile",
            "# check=error=true\nFROM node\nCOPY . .\nRUN npm ci\nCMD node a.js\n",
        ),
        ("node_modules/x/index.js", "x"),
    ]);
    for (file, ctx) in [
        (format!("{REACT}/Dockerfile.single"), REACT.to_string()),
        (
            d.path().join("Dockerfile").display().to_string(),
            d.path().display().to_string(),
        ),
    ] {
        let out = check(&["--format", "sarif", "-f", &file, &ctx]);
        let sarif = d.path().join("out.sarif");
        std::fs::write(&sarif, &out.stdout).unwrap();
        let v = Command::new(&python)
            .arg("-c")
            .arg(
                "import json,sys,jsonschema\n\
                 s=json.load(open(sys.argv[1])); d=json.load(open(sys.argv[2]))\n\
                 c=jsonschema.validators.validator_for(s)\n\
                 errs=list(c(s, format_checker=c.FORMAT_CHECKER).iter_errors(d))\n\
                 [print(e.message, list(e.path)) for e in errs]\n\
                 assert d['runs'][0]['results'], 'no results'\n\
                 sys.exit(1 if errs else 0)",
            )
            .arg(&schema)
            .arg(&sarif)
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "SARIF invalid for {file}:\n{}{}",
            text(&v.stdout),
            text(&v.stderr)
        );
    }
}

#[test]
fn error_level_exits_1_and_the_build_arg_overrides_the_directive() {
    let d = dir_with(&[(
        "Dockerfile",
        "# check=error=true\nFROM alpine:3.20\nCMD x\n",
    )]);
    let p = d.path().to_str().unwrap();
    let out = check(&[p]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("error[JSONArgsRecommended]"));
    let out = check(&["--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=all", p]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "");
    let out = check(&["--build-arg", "BUILDKIT_DOCKERFILE_CHECK=bogus", p]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("invalid check option"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_bad_dockerfile_is_an_error_with_its_location() {
    let d = dir_with(&[("Dockerfile", "FROM a\nRUNN x\n")]);
    let out = check(&[d.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Dockerfile:2:1"),
        "{}",
        text(&out.stderr)
    );
    let out = check(&["-f", "/nonexistent/Dockerfile", "."]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn context_rules_see_node_modules_and_secrets() {
    let d = dir_with(&[
        ("Dockerfile", "FROM node:20.11\nWORKDIR /app\nCOPY . .\n"),
        ("package.json", "{}"),
        ("node_modules/a/index.js", "x"),
        (".env", "TOKEN=1"),
    ]);
    let (_, v) = json_findings(&[d.path().to_str().unwrap()]);
    let r = rules(&v);
    assert!(r.contains(&"MissingDockerignore".into()), "{r:?}");
    assert!(r.contains(&"SecretFileCopied".into()), "{r:?}");
    std::fs::write(d.path().join(".dockerignore"), "node_modules\n.env\n").unwrap();
    let (_, v) = json_findings(&[d.path().to_str().unwrap()]);
    let r = rules(&v);
    assert!(!r.contains(&"MissingDockerignore".into()), "{r:?}");
    assert!(!r.contains(&"SecretFileCopied".into()), "{r:?}");
}

#[test]
fn fix_rewrites_in_place_once() {
    let src = "# keep this comment\nFROM busybox:1.36 as Build\nENV A b\nMAINTAINER Jo <jo@example.com>\nRUN echo \\\n    hi\nCMD node app.js\n";
    let d = dir_with(&[("Dockerfile", src)]);
    let p = d.path().to_str().unwrap();
    let out = check(&["--fix", p]);
    assert!(text(&out.stderr).contains("fixed"), "{}", text(&out.stderr));
    let fixed = std::fs::read_to_string(d.path().join("Dockerfile")).unwrap();
    assert_eq!(
        fixed,
        "# keep this comment\nFROM busybox:1.36 AS Build\nENV A=b\nLABEL org.opencontainers.image.authors=\"Jo <jo@example.com>\"\nRUN echo \\\n    hi\nCMD [\"node\", \"app.js\"]\n"
    );
    let out = check(&["--fix", "--format", "json", p]);
    assert!(
        !text(&out.stderr).contains("fixed"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("Dockerfile")).unwrap(),
        fixed
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // What is not mechanical stays reported.
    assert!(rules(&v).contains(&"StageNameCasing".into()), "{v}");
}

#[test]
fn build_check_builds_nothing_and_reports_as_docker() {
    let d = dir_with(&[("Dockerfile", "FROM localhost/busybox:latest\nCMD echo hi\n")]);
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .env("KILN_ROOT", root.path())
        .args(["build", "--check", d.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.starts_with("Check complete, 2 warnings have been found!\n"),
        "{s}"
    );
    assert!(
        s.contains("WARNING: JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/\n"),
        "{s}"
    );
    assert!(s.contains("   2 | >>> CMD echo hi\n"), "{s}");
    assert!(
        !root.path().join("snapshots-v1").exists(),
        "--check must not build"
    );
    std::fs::write(
        d.path().join("Dockerfile"),
        "FROM localhost/busybox:latest\nRUN true\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .env("KILN_ROOT", root.path())
        .args(["build", "--check", d.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Check complete, no warnings found.\n");
}

#[test]
fn build_prints_warnings_after_the_build() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN true\nCMD echo hi\n",
    );
    let err = c.build_ok(&["-t", "warned"]);
    // BuildKit's rules only: kiln's own (FinalStageRunsAsRoot here) are for `kiln check`.
    assert!(
        err.contains(" 1 warning found (use docker --debug to expand):\n"),
        "{err}"
    );
    assert!(!err.contains("FinalStageRunsAsRoot"), "{err}");
    assert!(
        err.contains(" - JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 3)\n"),
        "{err}"
    );
    // Quiet builds print only the ID.
    let (code, _, err) = c.build(&["-q", "-t", "warned"]);
    assert_eq!(code, 0);
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn build_fails_before_any_step_with_error_true() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "# check=error=true\nFROM localhost/busybox:latest\nRUN touch /ran\nCMD echo hi\n",
    );
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("ERROR: lint violation found for rules: JSONArgsRecommended"),
        "{err}"
    );
    assert!(!err.contains("touch /ran"), "a step ran: {err}");
    let (code, _, err) = c.build(&["--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=all"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn secret_inside_a_copied_directory_is_found_in_the_real_context() {
    let d = dir_with(&[
        (
            "Dockerfile",
            "FROM node:20.11\nWORKDIR /app\nCOPY package*.json ./\nRUN npm ci\nCOPY config/ /app/config/\nCOPY . .\nRUN npm run build\nRUN npm ci --omit=dev\nRUN npm install -g pm2\n",
        ),
        (".dockerignore", "node_modules\n"),
        ("package.json", "{}"),
        ("config/app.yaml", "a: 1"),
        ("config/.env.production", "TOKEN=1"),
    ]);
    let (_, v) = json_findings(&[d.path().to_str().unwrap()]);
    let findings = v["findings"].as_array().unwrap();
    let secrets: Vec<(u64, String)> = findings
        .iter()
        .filter(|f| f["rule"] == "SecretFileCopied")
        .map(|f| {
            (
                f["location"]["line"].as_u64().unwrap(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Line 5 (COPY config/) and line 6 (COPY . ., which sends config/ too).
    assert_eq!(secrets.len(), 2, "{findings:?}");
    assert_eq!(secrets[0].0, 5);
    assert!(
        secrets[0].1.contains("'config/.env.production'"),
        "{secrets:?}"
    );
    // The manifest was installed first: no source-before-install finding, for `npm ci
    // --omit=dev` nor for the global pm2.
    let r = rules(&v);
    assert!(
        !r.contains(&"SourceCopiedBeforeDependencyInstall".into()),
        "{r:?}"
    );
}
