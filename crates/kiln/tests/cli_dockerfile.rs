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

// Limits on hostile input ("Limits" in docs/dockerfile.md): each ends with a message and a
// non-zero exit status, not an abort (SIGABRT) or an out-of-memory kill.

/// `ARG A=xxxxxxxx`, `ARG A1=${A}${A}` … `ARG A40`: 851 bytes that used to allocate gigabytes.
fn arg_doubling_bomb() -> String {
    let mut s = String::from("FROM scratch\nARG A=xxxxxxxx\nARG A1=${A}${A}\n");
    for i in 2..=40 {
        s.push_str(&format!("ARG A{i}=${{A{}}}${{A{}}}\n", i - 1, i - 1));
    }
    s.push_str("RUN echo $A40\n");
    s
}

#[test]
fn parse_of_an_exponential_arg_bomb_fails_with_the_location() {
    let d = tempdir("bomb");
    let f = d.join("Dockerfile");
    std::fs::write(&f, arg_doubling_bomb()).unwrap();
    let o = kiln(&["parse", "-f", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("expansion too large"), "{err}");
    assert!(err.contains("Dockerfile:20:9"), "{err}");
    assert!(err.contains("ARG A18=${A17}${A17}"), "{err}");
}

#[test]
fn parse_of_dev_zero_is_refused_at_the_size_limit() {
    assert!(Path::new("/dev/zero").exists(), "this test needs /dev/zero");
    let o = kiln(&["parse", "-f", "/dev/zero"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("/dev/zero"), "{err}");
    assert!(err.contains("larger than 16 MiB"), "{err}");
}

#[test]
fn parse_of_an_endless_pipe_is_refused_at_the_size_limit() {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["parse", "-f", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run kiln");
    let mut stdin = child.stdin.take().unwrap();
    // Writes until kiln stops reading and closes the pipe (EPIPE), however long that takes.
    let writer = std::thread::spawn(move || {
        let chunk = [b'#'; 64 << 10];
        let mut written = 0u64;
        while stdin.write_all(&chunk).is_ok() {
            written += chunk.len() as u64;
        }
        written
    });
    let o = child.wait_with_output().expect("wait for kiln");
    let written = writer.join().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("larger than 16 MiB"), "{}", stderr(&o));
    assert!(
        written < 64 << 20,
        "kiln read {written} bytes of an endless pipe"
    );
}

#[test]
fn parse_of_a_hundred_thousand_instructions_succeeds() {
    let d = tempdir("100k");
    let f = d.join("Dockerfile");
    let mut s = String::from("FROM scratch\n");
    for i in 0..100_000 {
        s.push_str(&format!("ENV V{i}=x{i}\n"));
    }
    std::fs::write(&f, s).unwrap();
    let o = kiln(&["parse", "--format", "json", "-f", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["stages"][0]["instructions"].as_array().unwrap().len(),
        100_000
    );
}
