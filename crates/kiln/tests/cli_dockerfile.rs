//! `kiln parse` and `kiln graph`, run as the built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .expect("run kiln")
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh directory under the target dir for one test.
fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-cli-dockerfile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn graph_tutorial_target_deployer() {
    let ctx = examples().join("tutorial");
    let o = kiln(&["graph", "--target", "deployer", ctx.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("flowchart TD"), "{out}");
    assert!(out.contains("s0 -->|COPY --from| s2"), "{out}");
    assert!(out.contains("tester (skipped)"), "{out}");
    let o = kiln(&[
        "graph",
        "--target",
        "deployer",
        "--format",
        "json",
        ctx.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["build_order"],
        serde_json::json!([["installer"], ["deployer"]])
    );
    assert_eq!(v["stages"][1]["skipped"], true);
    let o = kiln(&[
        "graph",
        "--format",
        "dot",
        "-f",
        ctx.join("Dockerfile").to_str().unwrap(),
    ]);
    assert!(stdout(&o).starts_with("digraph stages {"));
}

#[test]
fn parse_json_with_build_arg() {
    let ctx = examples().join("tutorial");
    let o = kiln(&[
        "parse",
        "--format",
        "json",
        "--build-arg",
        "NODE_VERSION=20",
        ctx.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stages"][0]["base"]["image"], "localhost/node:20");
    assert_eq!(
        v["stages"][0]["instructions"][0]["command"]["instruction"],
        "WORKDIR"
    );
    assert_eq!(v["stages"][0]["instructions"][0]["span"]["line"], 6);
    let o = kiln(&["parse", ctx.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("COPY --from=installer /app/dist /usr/share/nginx/html"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bad_dockerfile_exits_1_with_rendered_error() {
    let d = tempdir("bad");
    std::fs::write(d.join("Dockerfile"), "FROM busybox\n\nRUNN echo hi\n").unwrap();
    let o = kiln(&["parse", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("error: unknown instruction: RUNN"), "{err}");
    assert!(err.contains("3 | RUNN echo hi"), "{err}");
    assert!(err.contains("= hint: did you mean RUN?"), "{err}");
    assert!(err.contains("Dockerfile:3:1"), "{err}");
    let o = kiln(&[
        "graph",
        "--target",
        "nope",
        examples().join("tutorial").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("target stage \"nope\" could not be found"));
}

#[test]
fn usage_errors_exit_2() {
    let d = tempdir("empty");
    let o = kiln(&["parse", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read Dockerfile"));
    let o = kiln(&["graph", "--format", "png", "."]);
    assert_eq!(o.status.code(), Some(2));
    let o = kiln(&[
        "parse",
        "--build-arg",
        "=x",
        examples().join("tutorial").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn lowercase_dockerfile_name_and_warnings() {
    let d = tempdir("lower");
    std::fs::write(d.join("dockerfile"), "FROM busybox as Build\nCMD echo hi\n").unwrap();
    let o = kiln(&["graph", d.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("warning[StageNameCasing]"), "{err}");
    assert!(err.contains("warning[JSONArgsRecommended]"), "{err}");
}
