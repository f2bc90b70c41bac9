//! End-to-end tests of RUN flags that change how the step runs: `--security=insecure` (with
//! `kiln build --allow security.insecure`) and cache mounts seeded `from=` a stage or image.

mod support;
use support::*;

#[test]
fn security_insecure_is_refused_without_the_entitlement() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN echo ok\nRUN --security=insecure echo privileged\n",
    );
    let (code, _, err) = c.build(&[]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("security.insecure is not allowed"), "{err}");
    assert!(err.contains("Dockerfile:3"), "the line is named: {err}");
    assert!(err.contains("--allow security.insecure"), "{err}");
    // Nothing ran: the refusal comes before the build.
    assert!(!err.contains("DONE"), "{err}");

    let (code, _, err) = c.build(&["--allow", "network.host"]);
    assert_ne!(code, 0);
    assert!(err.contains("--allow network.host"), "{err}");
    let (code, _, err) = c.build(&["--allow", "device"]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown entitlement \"device\""), "{err}");
}

#[test]
fn security_insecure_runs_privileged_when_allowed() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\n\
         RUN grep CapEff /proc/self/status > /sandbox\n\
         RUN --security=insecure grep CapEff /proc/self/status > /insecure && \
             mkdir -p /m && mount -t tmpfs none /m && echo mounted > /m/x && cat /m/x > /mounted && \
             umount /m && test -w /proc/sys/kernel/hostname && echo procsys-rw > /procsys\n",
    );
    let out = c.export(&["--allow", "security.insecure"]);
    // Every capability kiln itself has (all the kernel knows, for an unconfined root).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let all = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_string();
    let insecure = std::fs::read_to_string(out.join("insecure")).unwrap();
    assert_eq!(insecure.split_whitespace().nth(1), Some(all.as_str()));
    let sandbox = std::fs::read_to_string(out.join("sandbox")).unwrap();
    assert_eq!(
        sandbox.split_whitespace().nth(1),
        Some("00000000a80425fb"),
        "an ordinary RUN keeps Docker's capabilities"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("mounted")).unwrap(),
        "mounted\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("procsys")).unwrap(),
        "procsys-rw\n",
        "/proc/sys is not read-only"
    );

    // The security mode is part of the step's key: the same command without it is another step.
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN grep CapEff /proc/self/status > /insecure\n",
    );
    let out = c.export(&["--allow", "security.insecure"]);
    let plain = std::fs::read_to_string(out.join("insecure")).unwrap();
    assert!(plain.contains("00000000a80425fb"), "{plain}");
}

#[test]
fn cache_mount_from_a_stage_is_seeded_once_then_keeps_its_content() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest AS seed\n\
         RUN mkdir -p /data/sub && echo seeded > /data/a && echo deep > /data/sub/b && ln -s a /data/link\n\
         FROM localhost/busybox:latest\n\
         ARG N=1\n\
         RUN --mount=type=cache,id=c1,target=/c,from=seed,source=/data \
             echo run$N >> /c/log && cat /c/a /c/sub/b > /seen && readlink /c/link > /link && cat /c/log > /log\n",
    );
    let out = c.export(&[]);
    assert_eq!(
        std::fs::read_to_string(out.join("seen")).unwrap(),
        "seeded\ndeep\n"
    );
    assert_eq!(std::fs::read_to_string(out.join("link")).unwrap(), "a\n");
    assert_eq!(std::fs::read_to_string(out.join("log")).unwrap(), "run1\n");
    // Another build with the same id and seed: the cache keeps what the first RUN wrote.
    let out = c.export(&["--build-arg", "N=2"]);
    assert_eq!(
        std::fs::read_to_string(out.join("log")).unwrap(),
        "run1\nrun2\n"
    );
    // Nothing of the cache reaches the image.
    assert!(!out.join("c/log").exists());

    // Another seed under the same id is another cache (BuildKit: `cache-dir:ID:REF`), seeded
    // afresh; and the step's key follows the seed, so the RUN runs again.
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest AS seed\n\
         RUN mkdir -p /data && echo other > /data/a\n\
         FROM localhost/busybox:latest\n\
         ARG N=1\n\
         RUN --mount=type=cache,id=c1,target=/c,from=seed,source=/data \
             echo run$N >> /c/log && cat /c/a > /seen && cat /c/log > /log\n",
    );
    let out = c.export(&["--build-arg", "N=2"]);
    assert_eq!(
        std::fs::read_to_string(out.join("seen")).unwrap(),
        "other\n"
    );
    assert_eq!(std::fs::read_to_string(out.join("log")).unwrap(), "run2\n");
}

#[test]
fn cache_mount_from_an_image_and_a_missing_source() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\n\
         RUN --mount=type=cache,target=/c,from=localhost/busybox:latest,source=/bin,uid=7,mode=0700 \
             test -e /c/sh && stat -c '%u %a' /c > /meta\n",
    );
    let out = c.export(&[]);
    assert_eq!(
        std::fs::read_to_string(out.join("meta")).unwrap(),
        "7 700\n"
    );

    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest AS seed\nFROM localhost/busybox:latest\n\
         RUN --mount=type=cache,target=/c,from=seed,source=/nope true\n",
    );
    let (code, _, err) = c.build(&[]);
    assert_ne!(code, 0);
    assert!(err.contains("\"/nope\" not found"), "{err}");
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(c.tmp_is_empty());
}

#[test]
fn a_read_only_tmpfs_is_read_only_and_another_platform_is_refused() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\n\
         RUN --mount=type=tmpfs,target=/t,ro sh -c 'touch /t/x 2>/dev/null && echo rw > /r || echo ro > /r'\n",
    );
    let out = c.export(&[]);
    assert_eq!(std::fs::read_to_string(out.join("r")).unwrap(), "ro\n");

    c.file(
        "Dockerfile",
        "ARG P=linux/arm64\nFROM --platform=$P localhost/busybox:latest\nRUN true\n",
    );
    // The store's busybox is amd64 only: another platform's base is not there (foreign
    // platforms are built: tests/cli_platform_build.rs).
    let (code, _, err) = c.build(&["--pull=never"]);
    assert_ne!(code, 0);
    assert!(
        err.contains(
            "does not match the specified platform: wanted linux/arm64, actual: linux/amd64"
        ),
        "{err}"
    );
    assert!(err.contains("Dockerfile:2"), "{err}");
    // The host's platform, as BuildKit's predefined ARGs give it, builds.
    c.file(
        "Dockerfile",
        "FROM --platform=$BUILDPLATFORM localhost/busybox:latest\nRUN true\n",
    );
    c.build_ok(&[]);
}
