//! Steps that read another stage (`COPY --from=STAGE`, `RUN --mount=type=bind,from=STAGE`) are
//! keyed by the content of what they read, as BuildKit keys them: a stage that runs again but
//! produces the same files leaves everything downstream cached (real builds, as root).

mod support;
use support::*;

/// Was the step whose header contains `needle` reported `CACHED` (BuildKit's plain progress:
/// `#N [stage i/n] INSTRUCTION` then `#N CACHED`)?
fn cached(progress: &str, needle: &str) -> bool {
    let Some(n) = progress.lines().find_map(|l| {
        let (num, rest) = l.split_once(' ')?;
        (num.starts_with('#') && rest.starts_with('[') && rest.contains(needle)).then_some(num)
    }) else {
        panic!("no step {needle:?} in:\n{progress}");
    };
    progress.lines().any(|l| l == format!("{n} CACHED"))
}

const DOCKERFILE: &str = "\
FROM localhost/busybox:latest AS builder
COPY src/ /src/
RUN mkdir /out && grep -v '^//' /src/app.js > /out/app.js
FROM localhost/busybox:latest
COPY --from=builder /out /app
RUN --mount=type=bind,from=builder,source=/out,target=/m cat /m/app.js > /copy.js
RUN echo done > /done
";

#[test]
fn a_stage_that_reruns_to_the_same_files_keeps_its_readers_cached() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", DOCKERFILE)
        .file("src/app.js", "// comment v1\nconsole.log(1)\n");
    let first = c.build_ok(&["-t", "app"]);
    assert!(!cached(&first, "COPY --from=builder /out /app"), "{first}");
    let id1 = c.image_id(&["-t", "app"]);

    // A comment edit: the builder's RUN runs again, its output is the same.
    c.file("src/app.js", "// comment v2\nconsole.log(1)\n");
    let second = c.build_ok(&["-t", "app"]);
    assert!(
        !cached(&second, "RUN mkdir /out"),
        "the builder must re-run:\n{second}"
    );
    for step in [
        "COPY --from=builder /out /app",
        "RUN --mount=type=bind,from=builder",
        "RUN echo done",
    ] {
        assert!(cached(&second, step), "{step} must stay cached:\n{second}");
    }
    assert_eq!(
        c.image_id(&["-t", "app"]),
        id1,
        "same final image after a comment edit"
    );

    // A real change reaches the readers.
    c.file("src/app.js", "// comment v2\nconsole.log(2)\n");
    let third = c.build_ok(&["-t", "app"]);
    assert!(!cached(&third, "COPY --from=builder /out /app"), "{third}");
    assert!(
        !cached(&third, "RUN --mount=type=bind,from=builder"),
        "{third}"
    );
    let out = c.export(&[]);
    assert_eq!(
        std::fs::read_to_string(out.join("copy.js")).unwrap(),
        "console.log(2)\n"
    );
}

#[test]
fn a_copy_from_reads_only_what_it_selects() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest AS builder\n\
         ARG V=1\n\
         RUN mkdir -p /out /other && echo same > /out/a && echo $V > /other/b\n\
         FROM localhost/busybox:latest\n\
         COPY --from=builder /out/a /a\n\
         COPY --from=builder /other /other\n",
    );
    c.build_ok(&[]);
    let again = c.build_ok(&["--build-arg", "V=2"]);
    assert!(cached(&again, "COPY --from=builder /out/a /a"), "{again}");
    assert!(
        !cached(&again, "COPY --from=builder /other /other"),
        "{again}"
    );
    // Owners and modes are content too.
    let c2 = Ctx::new();
    c2.file(
        "Dockerfile",
        "FROM localhost/busybox:latest AS builder\n\
         ARG MODE=644\n\
         RUN mkdir /out && echo x > /out/f && chmod $MODE /out/f\n\
         FROM localhost/busybox:latest\n\
         COPY --from=builder /out /out\n",
    );
    c2.build_ok(&[]);
    let changed = c2.build_ok(&["--build-arg", "MODE=600"]);
    assert!(
        !cached(&changed, "COPY --from=builder /out /out"),
        "{changed}"
    );
}

#[test]
fn a_missing_source_in_the_stage_names_the_step_and_path() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest AS b\nRUN true\nFROM localhost/busybox:latest\nCOPY --from=b /nope /x\n",
    );
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("COPY --from=b /nope /x") && err.contains("\"/nope\": not found"),
        "{err}"
    );
    assert!(c.tmp_is_empty(), "no scratch directory left behind");
}

#[test]
fn a_linked_copy_does_not_depend_on_the_layers_below() {
    require_root();
    let c = Ctx::new();
    c.file("a.txt", "linked\n").file(
        "Dockerfile",
        "FROM localhost/busybox:latest\n\
         ARG V=1\n\
         RUN echo $V > /v\n\
         COPY --link a.txt /opt/app/a.txt\n\
         RUN cat /v /opt/app/a.txt > /both\n",
    );
    let layers = |v: &str| -> Vec<String> {
        let dest = c.fresh("oci");
        let o = format!("type=oci,dest={}", dest.display());
        c.build_ok(&["--build-arg", &format!("V={v}"), "-o", &o]);
        let out = std::process::Command::new("tar")
            .args(["-xOf", dest.to_str().unwrap(), "index.json"])
            .output()
            .unwrap();
        let index: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let manifest = index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .replace(':', "/");
        let out = std::process::Command::new("tar")
            .args(["-xOf", dest.to_str().unwrap(), &format!("blobs/{manifest}")])
            .output()
            .unwrap();
        let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect()
    };
    let one = layers("1");
    let second = c.build_ok(&["--build-arg", "V=2"]);
    assert!(!cached(&second, "> /v"), "{second}");
    assert!(cached(&second, "COPY --link a.txt"), "{second}");
    assert!(
        !cached(&second, "RUN cat /v"),
        "the step above still re-runs:\n{second}"
    );
    let two = layers("2");
    assert_eq!(one.len(), 4, "{one:?}");
    assert_ne!(one[1], two[1], "the RUN layer changed");
    assert_eq!(one[2], two[2], "the linked layer's blob is the same");
    // The files are where a COPY without --link puts them.
    let out = c.export(&["--build-arg", "V=2"]);
    assert_eq!(
        std::fs::read_to_string(out.join("both")).unwrap(),
        "2\nlinked\n"
    );
}

#[test]
fn an_xattr_change_is_a_content_change() {
    require_root();
    let c = Ctx::new();
    c.file("f", "hi\n").file(
        "Dockerfile",
        "FROM localhost/busybox:latest AS b\nCOPY f /out/f\nFROM localhost/busybox:latest\nCOPY --from=b /out /out\n",
    );
    let set = |v: &str| {
        let st = std::process::Command::new("setfattr")
            .args(["-n", "user.test", "-v", v])
            .arg(c.ctx.join("f"))
            .status();
        match st {
            Ok(s) => assert!(s.success(), "setfattr failed"),
            // Without the attr tools, write it through python3 (always present in CI).
            Err(_) => {
                let py = format!(
                    "import os; os.setxattr({:?}, 'user.test', b{:?})",
                    c.ctx.join("f").display().to_string(),
                    v
                );
                assert!(
                    std::process::Command::new("python3")
                        .args(["-c", &py])
                        .status()
                        .unwrap()
                        .success()
                );
            }
        }
    };
    set("v1");
    c.build_ok(&[]);
    set("v2");
    let again = c.build_ok(&[]);
    assert!(
        !cached(&again, "COPY f /out/f"),
        "the context COPY:\n{again}"
    );
    assert!(
        !cached(&again, "COPY --from=b /out /out"),
        "the stage COPY:\n{again}"
    );
    let out = c.export(&[]);
    let got = std::process::Command::new("python3")
        .args([
            "-c",
            &format!(
                "import os; print(os.getxattr({:?}, 'user.test').decode())",
                out.join("out/f").display().to_string()
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "v2");
}
