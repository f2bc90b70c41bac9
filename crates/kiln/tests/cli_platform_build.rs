//! Builds for other platforms than the host's (issue 11): `--platform linux/arm64` with RUN
//! steps under QEMU (binfmt_misc, the F flag), BuildKit's automatic platform ARGs, `FROM
//! --platform=$BUILDPLATFORM` stages shared by every target platform, a multi-platform build
//! giving one image per platform and an OCI index (checked with skopeo and umoci), the outputs
//! per platform, `kiln run --platform`, and the message when nothing runs a platform.
//!
//! Real QEMU: a missing `qemu-aarch64`/`qemu-arm` handler fails the tests (it is never
//! skipped). The base is scripts/make-multiplatform-busybox.sh's archive (busybox-static for
//! linux/amd64, arm64/v8 and arm/v7), loaded as `localhost/mp:latest` (an index).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::{Ctx, ok, out};

const BASE: &str = "localhost/mp:latest";

/// QEMU's handlers for arm64 and arm, and the tools the checks use.
fn prereqs() {
    support::require_root();
    kiln_test::prereq::require_binfmt("qemu-aarch64");
    kiln_test::prereq::require_binfmt("qemu-arm");
}

/// The multi-platform busybox OCI archive, made once per test run.
fn mp_archive() -> &'static Path {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        for (c, p) in [("jq", "jq"), ("dpkg-deb", "dpkg"), ("gzip", "gzip")] {
            support::require_command(c, p);
        }
        let dir = std::env::temp_dir().join(format!("kiln-platform-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("mp.tar");
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts/make-multiplatform-busybox.sh");
        let st = Command::new("bash")
            .arg(&script)
            .arg(&out)
            .arg(BASE)
            .output()
            .expect("running make-multiplatform-busybox.sh");
        assert!(
            st.status.success(),
            "make-multiplatform-busybox.sh failed: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        out
    })
}

/// A context and store with the multi-platform base loaded.
fn ctx() -> Ctx {
    prereqs();
    let c = Ctx::new();
    ok(&c, &["load", "-q", "-i", mp_archive().to_str().unwrap()]);
    c
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// The distinct progress vertices (`#N [name]` lines) whose name contains `needle`.
fn vertices_named(log: &str, needle: &str) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    for l in log.lines() {
        if let Some(rest) = l.strip_prefix('#')
            && let Some((n, name)) = rest.split_once(' ')
            && name.starts_with('[')
            && name.contains(needle)
        {
            seen.insert(n.to_string());
        }
    }
    seen.len()
}

#[test]
fn foreign_run_steps_run_under_qemu_with_buildkits_platform_args() {
    let c = ctx();
    c.file(
        "Dockerfile",
        &format!(
            "FROM {BASE}\n\
             ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT\n\
             ARG BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT\n\
             RUN uname -m > /machine && \\\n\
             echo \"$TARGETPLATFORM|$TARGETOS|$TARGETARCH|$TARGETVARIANT\" > /target && \\\n\
             echo \"$BUILDPLATFORM|$BUILDOS|$BUILDARCH|$BUILDVARIANT\" > /build\n"
        ),
    );
    for (platform, machine, target) in [
        ("linux/arm64", "aarch64", "linux/arm64|linux|arm64|"),
        ("linux/arm/v7", "armv7l", "linux/arm/v7|linux|arm|v7"),
        // `arm` alone is arm/v7, as BuildKit normalizes it.
        ("linux/arm", "armv7l", "linux/arm/v7|linux|arm|v7"),
    ] {
        let dest = c.export(&["--platform", platform]);
        assert_eq!(read(&dest.join("machine")).trim(), machine, "{platform}");
        assert_eq!(read(&dest.join("target")).trim(), target, "{platform}");
        assert_eq!(
            read(&dest.join("build")).trim(),
            "linux/amd64|linux|amd64|",
            "{platform}"
        );
    }
    // The image is stored with the target's platform and runs emulated.
    c.build_ok(&["--platform", "linux/arm64", "-t", "arm-img"]);
    let arch = ok(
        &c,
        &["image", "inspect", "-f", "{{.Architecture}}", "arm-img"],
    );
    assert_eq!(arch.trim(), "arm64");
    let m = ok(&c, &["run", "--rm", "arm-img", "cat", "/machine"]);
    assert_eq!(m.trim(), "aarch64");
}

#[test]
fn from_platform_takes_expanded_and_literal_platforms() {
    let c = ctx();
    c.file(
        "Dockerfile",
        &format!(
            "ARG OTHER=linux/arm64\n\
             FROM --platform=$BUILDPLATFORM {BASE} AS host\n\
             RUN uname -m > /m\n\
             FROM --platform=${{OTHER}} {BASE} AS lit\n\
             RUN uname -m > /m\n\
             FROM --platform=$TARGETPLATFORM {BASE} AS tgt\n\
             RUN uname -m > /m\n\
             FROM {BASE}\n\
             COPY --from=host /m /host\n\
             COPY --from=lit /m /lit\n\
             COPY --from=tgt /m /tgt\n"
        ),
    );
    let dest = c.export(&["--platform", "linux/arm/v7"]);
    assert_eq!(read(&dest.join("host")).trim(), "x86_64");
    assert_eq!(read(&dest.join("lit")).trim(), "aarch64");
    assert_eq!(read(&dest.join("tgt")).trim(), "armv7l");
    // A FROM --platform that does not parse says so at its line.
    c.file(
        "Dockerfile",
        &format!("FROM --platform=linux/ {BASE}\nRUN true\n"),
    );
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("FROM --platform=linux/"), "{err}");
}

#[test]
fn multi_platform_build_gives_an_index_and_shares_buildplatform_stages() {
    let skopeo = support::require_command("skopeo", "skopeo");
    let umoci = support::require_command("umoci", "umoci");
    let c = ctx();
    c.file(
        "Dockerfile",
        &format!(
            "FROM --platform=$BUILDPLATFORM {BASE} AS build\n\
             ARG BUILDARCH\n\
             RUN echo \"tool built once on $BUILDARCH $(uname -m)\" > /tool\n\
             FROM {BASE}\n\
             ARG TARGETARCH\n\
             COPY --from=build /tool /tool\n\
             RUN echo \"$TARGETARCH $(uname -m)\" > /arch\n"
        ),
    );
    let archive = c.fresh("oci").with_extension("tar");
    let o = format!("type=oci,dest={}", archive.display());
    let log = c.build_ok(&[
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "multi:1",
        "-o",
        &o,
    ]);
    // The $BUILDPLATFORM stage is planned once: its RUN is one vertex of the log.
    assert_eq!(
        vertices_named(&log, "RUN echo \"tool built once"),
        1,
        "the shared stage's RUN must run once:\n{log}"
    );
    // The target's stage runs once per platform, each named with its platform.
    assert_eq!(
        vertices_named(&log, "[linux/amd64 stage-1 3/3] RUN"),
        1,
        "{log}"
    );
    assert_eq!(
        vertices_named(&log, "[linux/arm64 stage-1 3/3] RUN"),
        1,
        "{log}"
    );

    // The archive names one index with exactly the two platforms.
    let raw = Command::new(&skopeo)
        .args(["inspect", "--raw"])
        .arg(format!("oci-archive:{}", archive.display()))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    let manifests = index["manifests"].as_array().unwrap();
    let platforms: Vec<String> = manifests
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{index}");

    // Each manifest unpacks (umoci) to its platform's files.
    let layout = c.fresh("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(st.success());
    for (m, (arch, machine)) in manifests
        .iter()
        .zip([("amd64", "x86_64"), ("arm64", "aarch64")])
    {
        // umoci reads a manifest by a ref name in index.json: one per platform.
        let top = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": m["mediaType"],
                "digest": m["digest"],
                "size": m["size"],
                "annotations": {"org.opencontainers.image.ref.name": arch},
            }],
        });
        std::fs::write(layout.join("index.json"), top.to_string()).unwrap();
        let stat = Command::new(&umoci)
            .args(["stat", "--json", "--image"])
            .arg(format!("{}:{arch}", layout.display()))
            .output()
            .unwrap();
        assert!(
            stat.status.success(),
            "{}",
            String::from_utf8_lossy(&stat.stderr)
        );
        let bundle = c.fresh("bundle");
        let st = Command::new(&umoci)
            .args(["unpack", "--image"])
            .arg(format!("{}:{arch}", layout.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let rootfs = bundle.join("rootfs");
        assert_eq!(
            read(&rootfs.join("arch")).trim(),
            format!("{arch} {machine}")
        );
        assert_eq!(
            read(&rootfs.join("tool")).trim(),
            "tool built once on amd64 x86_64"
        );
        // The config says the platform.
        let cfg_digest = {
            let blob = layout
                .join("blobs/sha256")
                .join(m["digest"].as_str().unwrap().trim_start_matches("sha256:"));
            let man: serde_json::Value = serde_json::from_str(&read(&blob)).unwrap();
            man["config"]["digest"].as_str().unwrap().to_string()
        };
        let cfg: serde_json::Value = serde_json::from_str(&read(
            &layout
                .join("blobs/sha256")
                .join(cfg_digest.trim_start_matches("sha256:")),
        ))
        .unwrap();
        assert_eq!(cfg["architecture"], arch);
        assert_eq!(cfg["os"], "linux");
    }

    // The tag names the index: `run --platform` picks each entry.
    for (p, machine) in [("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")] {
        let got = ok(
            &c,
            &["run", "--rm", "--platform", p, "multi:1", "cat", "/arch"],
        );
        assert!(got.trim().ends_with(machine), "{p}: {got}");
    }

    // Built again: every step is cached, for both platforms.
    let again = c.build_ok(&["--platform", "linux/amd64,linux/arm64", "-t", "multi:1"]);
    // (the shared RUN, each platform's COPY and RUN)
    assert!(
        again.matches("CACHED").count() >= 5,
        "nothing runs the second time:\n{again}"
    );
}

#[test]
fn multi_platform_outputs_write_one_directory_per_platform() {
    let c = ctx();
    c.file(
        "Dockerfile",
        &format!(
            "FROM {BASE}\nARG TARGETPLATFORM\nRUN echo \"$TARGETPLATFORM $(uname -m)\" > /p\n"
        ),
    );
    let dest = c.export(&["--platform", "linux/amd64,linux/arm64,linux/arm/v7"]);
    let mut dirs: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(dirs, ["linux_amd64", "linux_arm64", "linux_arm_v7"]);
    assert_eq!(
        read(&dest.join("linux_arm64/p")).trim(),
        "linux/arm64 aarch64"
    );
    assert_eq!(
        read(&dest.join("linux_arm_v7/p")).trim(),
        "linux/arm/v7 armv7l"
    );

    let tar = c.fresh("t").with_extension("tar");
    let o = format!("type=tar,dest={}", tar.display());
    c.build_ok(&["--platform", "linux/amd64,linux/arm64", "-o", &o]);
    let list = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.lines().any(|l| l == "linux_amd64/p"), "{list}");
    assert!(list.lines().any(|l| l == "linux_arm64/p"), "{list}");

    // What a multi-platform build cannot do is refused before anything runs.
    let d = c.fresh("d").with_extension("tar");
    let o = format!("type=docker,dest={}", d.display());
    let (code, _, err) = c.build(&["--platform", "linux/amd64,linux/arm64", "-o", &o]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("docker exporter does not currently support exporting manifest lists"),
        "{err}"
    );
    assert!(!d.exists());
    let (code, _, err) = c.build(&["--platform", "linux/arm64,linux/aarch64"]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("named twice"), "{err}");
    // A target stage on a fixed platform cannot be every platform's image: refused before
    // any step runs, and nothing is stored.
    c.file(
        "Dockerfile",
        &format!("FROM --platform=linux/amd64 {BASE}\nRUN echo ran > /ran\n"),
    );
    let images_before = ok(&c, &["images", "-aq"]);
    let (code, _, err) = c.build(&["--platform", "linux/amd64,linux/arm64", "-t", "fixed"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the target stage stage-0 is built for linux/amd64")
            && err.contains("not for linux/arm64"),
        "{err}"
    );
    assert!(!err.contains("RUN echo ran"), "a step ran: {err}");
    assert_eq!(ok(&c, &["images", "-aq"]), images_before);
    assert!(c.tmp_is_empty());
}

#[test]
fn a_platform_nothing_runs_fails_before_the_build_with_what_to_install() {
    let c = ctx();
    // linux/s390 (31-bit): QEMU has no user emulator for it, so no handler may match it.
    let info = ok(&c, &["system", "info"]);
    let platforms = info
        .lines()
        .find_map(|l| l.strip_prefix("Platforms: "))
        .unwrap_or_else(|| panic!("no Platforms line in `kiln system info`:\n{info}"));
    let list: Vec<&str> = platforms.split(", ").collect();
    assert!(
        list.contains(&"linux/amd64") && list.contains(&"linux/arm64"),
        "{info}"
    );
    assert!(
        !list.contains(&"linux/s390"),
        "this machine runs linux/s390 programs, so the test cannot check the message: {info}"
    );
    c.file("Dockerfile", &format!("FROM {BASE}\nRUN true\n"));
    let (code, _, err) = c.build(&["--platform", "linux/s390"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot run linux/s390 programs"), "{err}");
    assert!(err.contains("apt-get install qemu-user-static"), "{err}");
    assert!(err.contains("binfmt_misc"), "{err}");
    // Not even the base was looked for (no pull of a platform the index lacks).
    assert!(!err.contains("no matching manifest"), "{err}");
    // A stage without RUN needs no emulator: COPY only, for a platform the base lacks, fails
    // on the base instead.
    c.file("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n");
    let (code, _, err) = c.build(&["--platform", "linux/s390"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = out(&c.kiln(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "--platform",
        "linux/riscv64",
        BASE,
        "true",
    ]));
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("no matching manifest for linux/riscv64"),
        "{err}"
    );
}

#[test]
fn push_of_a_multi_platform_build_pushes_the_index() {
    let skopeo = support::require_command("skopeo", "skopeo");
    let reg = kiln_test::registry::Registry::start();
    let c = ctx();
    c.file(
        "Dockerfile",
        &format!("FROM {BASE}\nARG TARGETARCH\nRUN echo \"$TARGETARCH $(uname -m)\" > /p\n"),
    );
    let name = format!("{}/multi:1", reg.addr);
    let iid = c.fresh("iid");
    let log = c.build_ok(&[
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        &name,
        "--push",
        "--iidfile",
        iid.to_str().unwrap(),
    ]);
    // The store's index (the ID), and the one pushed: the layers go up compressed, so its
    // manifests, and the index, are new ones (docker push's last line names it).
    let index = read(&iid);
    assert!(index.starts_with("sha256:"), "{index}");
    let pushed = log
        .lines()
        .find_map(|l| l.strip_prefix("1: digest: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `1: digest:` line:\n{log}"))
        .to_string();
    let raw = Command::new(&skopeo)
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let sha = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            use std::io::Write;
            ch.stdin.take().unwrap().write_all(&raw.stdout)?;
            ch.wait_with_output()
        })
        .unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout);
    assert_eq!(
        format!("sha256:{}", &sha[..64]),
        pushed,
        "the tag names what was pushed"
    );
    let v: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        v["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{v}"
    );
    let archs: Vec<&str> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"], "{v}");
    // Another store pulls the arm64 entry and runs it emulated.
    let other = Ctx::new();
    let got = ok(
        &other,
        &[
            "run",
            "--rm",
            "--platform",
            "linux/arm64",
            &name,
            "cat",
            "/p",
        ],
    );
    assert_eq!(got.trim(), "arm64 aarch64");
    // A build pulls its base for the stage's platform (the index's arm64 entry).
    let pulling = Ctx::new();
    pulling.file("Dockerfile", &format!("FROM {name}\nRUN cat /p > /q\n"));
    let dest = pulling.export(&["--platform", "linux/arm64"]);
    assert_eq!(read(&dest.join("q")).trim(), "arm64 aarch64");
}

/// A `$BUILDPLATFORM` stage that reads a global ARG whose default comes from `TARGETARCH`
/// depends on the target: planned per platform, never shared (each image gets its own value).
#[test]
fn a_global_arg_made_from_targetarch_keeps_a_stage_per_platform() {
    let c = ctx();
    c.file(
        "Dockerfile",
        &format!(
            "ARG X=$TARGETARCH\nFROM --platform=$BUILDPLATFORM {BASE} AS s1\nARG X\nRUN echo x=$X > /x\nFROM {BASE}\nCOPY --from=s1 /x /x\n"
        ),
    );
    let dest = c.export(&["--platform", "linux/amd64,linux/arm64"]);
    assert_eq!(read(&dest.join("linux_amd64/x")).trim(), "x=amd64");
    assert_eq!(read(&dest.join("linux_arm64/x")).trim(), "x=arm64");
}
