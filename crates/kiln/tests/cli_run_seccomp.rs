//! Docker's default seccomp profile on `kiln run` and on RUN steps: what it denies where the
//! capabilities alone would allow (root may `unshare(CLONE_NEWUSER)`; the profile refuses it
//! without CAP_SYS_ADMIN), what `--security-opt seccomp=unconfined`, `--privileged`,
//! `--cap-add SYS_ADMIN` and `RUN --security=insecure` change, a custom JSON profile, bad
//! profiles (exit 125, nothing created), and `inspect`'s HostConfig.SecurityOpt.

mod support;
use support::*;

const BB: &str = "localhost/busybox:latest";

/// `sh -c SCRIPT` in a fresh container with `opts`; (exit code, stdout + stderr).
fn sh(c: &Ctx, opts: &[&str], script: &str) -> (i32, String) {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(opts);
    a.extend_from_slice(&[BB, "sh", "-c", script]);
    let (code, so, err) = out(&c.kiln(&a));
    (code, format!("{so}{err}"))
}

/// The `Seccomp:` mode in /proc/self/status: 2 under a filter, 0 without.
fn seccomp_mode(c: &Ctx, opts: &[&str]) -> String {
    let (code, text) = sh(c, opts, "grep '^Seccomp:' /proc/self/status");
    assert_eq!(code, 0, "{text}");
    text.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_default_profile_denies_namespaces_that_root_could_otherwise_make() {
    require_root();
    let c = RunCtx::new();
    assert_eq!(seccomp_mode(&c, &[]), "2");
    for flag in ["-U", "-m", "-n", "-p -f", "-u", "-i"] {
        let (code, text) = sh(&c, &[], &format!("unshare {flag} true"));
        assert_ne!(code, 0, "unshare {flag}: {text}");
        assert!(
            text.contains("Operation not permitted"),
            "unshare {flag}: {text}"
        );
    }
    // Ordinary work still runs: processes, pipes, files, threads of busybox's applets.
    let (code, text) = sh(
        &c,
        &[],
        "mkdir -p /a/b && echo hi > /a/b/f && cat /a/b/f | wc -c && sleep 0 & wait && \
         ls / >/dev/null && uname -a >/dev/null && echo done",
    );
    assert_eq!((code, text.as_str()), (0, "3\ndone\n"));
}

#[test]
fn unconfined_privileged_and_cap_sys_admin_lift_the_filter_as_docker_does() {
    require_root();
    let c = RunCtx::new();
    for opt in ["seccomp=unconfined", "seccomp:unconfined"] {
        assert_eq!(seccomp_mode(&c, &["--security-opt", opt]), "0", "{opt}");
        let (code, text) = sh(&c, &["--security-opt", opt], "unshare -U true && echo made");
        assert_eq!((code, text.as_str()), (0, "made\n"), "{opt}");
    }
    assert_eq!(seccomp_mode(&c, &["--privileged"]), "0");
    // CAP_SYS_ADMIN: still filtered, but docker's profile then allows the namespace calls.
    assert_eq!(seccomp_mode(&c, &["--cap-add", "SYS_ADMIN"]), "2");
    let (code, text) = sh(
        &c,
        &["--cap-add", "SYS_ADMIN"],
        "unshare -U true && echo made",
    );
    assert_eq!((code, text.as_str()), (0, "made\n"));
    // With no_new_privs the filter is installed last, as runc does; without it, before the
    // capabilities are dropped. Both leave it on.
    for opt in [
        "no-new-privileges",
        "no-new-privileges=false",
        "no-new-privileges:true",
    ] {
        let (code, text) = sh(
            &c,
            &["--security-opt", opt],
            "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
        );
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("Seccomp:\t2"), "{opt}: {text}");
        let nnp = if opt.ends_with("false") { "0" } else { "1" };
        assert!(
            text.contains(&format!("NoNewPrivs:\t{nnp}")),
            "{opt}: {text}"
        );
    }
    // A non-root user in the container gets the filter too.
    let (code, text) = sh(
        &c,
        &["-u", "1000"],
        "grep '^Seccomp:' /proc/self/status; id -u",
    );
    assert_eq!((code, text.as_str()), (0, "Seccomp:\t2\n1000\n"));
}

#[test]
fn a_custom_profile_is_applied_and_shown_by_inspect() {
    require_root();
    let c = RunCtx::new();
    let profile = c.tmp.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"syscalls\": [\n    {\"names\": [\"mkdir\", \"mkdirat\"], \"action\": \"SCMP_ACT_ERRNO\"}\n  ]\n}\n",
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let (code, text) = sh(&c, &["--security-opt", &opt], "mkdir /x");
    assert_ne!(code, 0);
    assert!(text.contains("Operation not permitted"), "{text}");
    // Everything else is allowed by this profile, namespaces included.
    let (code, text) = sh(
        &c,
        &["--security-opt", &opt],
        "grep '^Seccomp:' /proc/self/status && touch /f && unshare -U true && echo ok",
    );
    assert_eq!((code, text.as_str()), (0, "Seccomp:\t2\nok\n"));

    // The file's JSON, compacted, is what the container keeps (docker's client does that).
    let id = ok(&c, &["create", "--security-opt", &opt, BB, "mkdir", "/y"]);
    let id = id.trim();
    let shown = ok(
        &c,
        &["inspect", "-f", "{{json .HostConfig.SecurityOpt}}", id],
    );
    assert_eq!(
        shown.trim(),
        r#"["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\",\"mkdirat\"],\"action\":\"SCMP_ACT_ERRNO\"}]}"]"#
    );
    // A later start does not need the file.
    std::fs::remove_file(&profile).unwrap();
    let (code, so, err) = out(&c.kiln(&["start", "-a", id]));
    assert_ne!(code, 0, "{so}");
    assert!(
        format!("{so}{err}").contains("Operation not permitted"),
        "{so}{err}"
    );
    let id2 = ok(
        &c,
        &["create", "--security-opt", "seccomp=unconfined", BB, "true"],
    );
    let shown = ok(
        &c,
        &[
            "inspect",
            "-f",
            "{{json .HostConfig.SecurityOpt}}",
            id2.trim(),
        ],
    );
    assert_eq!(shown.trim(), r#"["seccomp=unconfined"]"#);
}

#[test]
fn bad_profiles_are_125_with_what_and_where_and_create_nothing() {
    require_root();
    let c = RunCtx::new();
    let bad = |name: &str, text: &str| {
        let p = c.tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let cases = [
        (
            c.tmp.path().join("missing.json").display().to_string(),
            "opening seccomp profile (".to_string(),
        ),
        (
            bad("truncated.json", "{\"defaultAction\": "),
            "decoding seccomp profile failed".into(),
        ),
        (
            bad(
                "action.json",
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}]}"#,
            ),
            r#"syscalls[0].action: unknown action "SCMP_ACT_BOGUS""#.into(),
        ),
        (
            bad(
                "op.json",
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SAME"}]}]}"#,
            ),
            r#"syscalls[0].args[0].op: unknown operator "SCMP_CMP_SAME""#.into(),
        ),
    ];
    for (path, want) in cases {
        let (code, _, err) = out(&c.kiln(&[
            "run",
            "--rm",
            "--security-opt",
            &format!("seccomp={path}"),
            BB,
            "true",
        ]));
        assert_eq!(code, 125, "{path}: {err}");
        assert!(err.contains(&want), "{path}: {err} lacks {want}");
        if !path.ends_with("missing.json") {
            assert!(err.contains(&path), "the file is named: {err}");
        }
    }
    assert_eq!(ok(&c, &["ps", "-aq"]), "");
}

#[test]
fn run_steps_get_the_default_profile_unless_insecure() {
    require_root();
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\n\
         RUN grep '^Seccomp:' /proc/self/status > /sandbox && \
             if unshare -U true 2>/err; then echo made; else cat /err; fi > /unshare\n\
         RUN --security=insecure grep '^Seccomp:' /proc/self/status > /insecure\n",
    );
    let dir = c.export(&["--allow", "security.insecure"]);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(read("sandbox"), "Seccomp:\t2\n");
    assert!(
        read("unshare").contains("Operation not permitted"),
        "{}",
        read("unshare")
    );
    assert_eq!(read("insecure"), "Seccomp:\t0\n");
}

/// `exec` runs under the container's profile, as docker's does: filtered in a default
/// container (with or without no-new-privileges), not in an unconfined one.
#[test]
fn exec_gets_the_containers_profile() {
    require_root();
    let c = RunCtx::new();
    for (opts, mode, unshare_ok) in [
        (vec![], "2", false),
        (vec!["--security-opt", "no-new-privileges"], "2", false),
        (vec!["--security-opt", "seccomp=unconfined"], "0", true),
    ] {
        let mut a = vec!["run", "-d"];
        a.extend_from_slice(&opts);
        a.extend_from_slice(&[BB, "sleep", "60"]);
        let (code, so, err) = out(&c.kiln(&a));
        assert_eq!(code, 0, "{opts:?}: {err}");
        let id = so.trim().to_string();
        let (code, so, err) =
            out(&c.kiln(&["exec", &id, "grep", "^Seccomp:", "/proc/self/status"]));
        assert_eq!(code, 0, "{opts:?}: {err}");
        assert_eq!(so.split_whitespace().nth(1), Some(mode), "{opts:?}: {so}");
        let (code, so, err) = out(&c.kiln(&["exec", &id, "unshare", "-U", "true"]));
        assert_eq!(code == 0, unshare_ok, "{opts:?}: {so}{err}");
        if !unshare_ok {
            assert!(err.contains("Operation not permitted"), "{opts:?}: {err}");
        }
        assert_eq!(out(&c.kiln(&["rm", "-f", &id])).0, 0);
    }
}
