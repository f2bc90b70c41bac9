//! The profile's resolution, the JSON reader's errors, and filters installed for real in a
//! child process (`pre_exec`): the kernel, not a model of it, says what is denied.

use std::os::unix::process::CommandExt;
use std::process::Command;

use oci_spec::runtime::{Arch, LinuxSeccompAction};

use super::*;

fn docker_default_caps() -> Vec<String> {
    crate::default_capabilities()
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect()
}

fn names(s: &oci_spec::runtime::LinuxSeccomp) -> Vec<String> {
    s.syscalls()
        .iter()
        .flatten()
        .filter(|c| c.args().is_none() && c.action() == LinuxSeccompAction::ScmpActAllow)
        .flat_map(|c| c.names().clone())
        .collect()
}

#[test]
fn default_profile_follows_the_capabilities() {
    let p = default_profile();
    let plain = p
        .resolve_for(
            "amd64",
            Some(Arch::ScmpArchX86_64),
            &docker_default_caps(),
            Some((6, 1)),
        )
        .unwrap();
    let allowed = names(&plain);
    for n in ["read", "execve", "clone3", "arch_prctl", "ptrace"] {
        assert_eq!(allowed.contains(&n.to_string()), n != "clone3", "{n}");
    }
    for n in [
        "unshare", "mount", "setns", "keyctl", "reboot", "acct", "swapon", "set_tls",
    ] {
        assert!(!allowed.contains(&n.to_string()), "{n} allowed by default");
    }
    // clone without CAP_SYS_ADMIN: only with no namespace flag; clone3 fails with ENOSYS.
    let calls = plain.syscalls().clone().unwrap();
    let clone = calls.iter().find(|c| c.names() == &["clone"]).unwrap();
    let arg = clone.args().as_ref().unwrap()[0];
    assert_eq!(
        (arg.index(), arg.value(), arg.value_two().unwrap_or(0)),
        (0, 0x7E02_0000, 0)
    );
    let clone3 = calls.iter().find(|c| c.names() == &["clone3"]).unwrap();
    assert_eq!(clone3.action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(clone3.errno_ret(), Some(38));
    assert_eq!(
        plain.architectures().clone().unwrap(),
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    );

    let mut caps = docker_default_caps();
    caps.push("CAP_SYS_ADMIN".into());
    let admin = p
        .resolve_for("amd64", Some(Arch::ScmpArchX86_64), &caps, Some((6, 1)))
        .unwrap();
    let allowed = names(&admin);
    assert!(allowed.contains(&"unshare".to_string()) && allowed.contains(&"clone3".to_string()));
    assert!(
        !admin
            .syscalls()
            .iter()
            .flatten()
            .any(|c| c.args().is_some() && c.names() == &["clone"])
    );

    // aarch64: the ARM calls, not arch_prctl; an old kernel: no ptrace.
    let arm = p
        .resolve_for(
            "arm64",
            Some(Arch::ScmpArchAarch64),
            &docker_default_caps(),
            Some((4, 4)),
        )
        .unwrap();
    let allowed = names(&arm);
    assert!(allowed.contains(&"set_tls".to_string()));
    assert!(
        !allowed.contains(&"arch_prctl".to_string()) && !allowed.contains(&"ptrace".to_string())
    );
}

#[test]
fn every_default_call_has_a_number_somewhere() {
    let arches = [
        Arch::ScmpArchX86_64,
        Arch::ScmpArchX86,
        Arch::ScmpArchX32,
        Arch::ScmpArchAarch64,
        Arch::ScmpArchArm,
    ];
    for rule in default_profile().rules {
        for n in &rule.names {
            let known = arches.iter().any(|a| syscall_number(*a, n).is_some());
            let s390 = n.starts_with("s390_");
            assert!(known || s390, "{n} is in no table");
        }
    }
    assert_eq!(syscall_number(Arch::ScmpArchX86_64, "unshare"), Some(272));
    assert_eq!(syscall_number(Arch::ScmpArchAarch64, "unshare"), Some(97));
    assert_eq!(syscall_number(Arch::ScmpArchX32, "read"), Some(0x4000_0000));
    assert_eq!(
        syscall_number(Arch::ScmpArchArm, "set_tls"),
        Some(0x0f_0005)
    );
}

#[test]
fn bad_profiles_say_where() {
    let cases = [
        ("{", "decoding seccomp profile failed"),
        ("[]", "not a JSON object"),
        (r#"{"syscalls": []}"#, "defaultAction is missing"),
        (
            r#"{"defaultAction": "SCMP_ACT_NOPE"}"#,
            "defaultAction: unknown action \"SCMP_ACT_NOPE\"",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
            "syscalls[0].args[0].index",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "EQ"}]}]}"#,
            "syscalls[0].args[0].op: unknown operator \"EQ\"",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#,
            "'architectures' and 'archMap'",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#,
            "architectures[0]: unknown architecture",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "syscalls[0]: 'name' and 'names'",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4"}}]}"#,
            "syscalls[0].includes.minKernel: invalid kernel version",
        ),
        (r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#, "SCMP_ACT_NOTIFY"),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {"names": []}}"#,
            "syscalls must be an array",
        ),
    ];
    for (json, want) in cases {
        let err = Profile::from_json(json).expect_err(json).to_string();
        assert!(err.contains(want), "{json}: {err:?} lacks {want:?}");
    }
}

/// Run `argv` with `profile` (resolved for the caps this test has) installed after fork.
fn run_filtered(profile: &Profile, argv: &[&str]) -> std::process::Output {
    let caps = crate::caps::names()
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect::<Vec<_>>();
    let resolved = profile.resolve(&caps).unwrap();
    let filter = compile(&resolved, native_arch().unwrap()).unwrap();
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]);
    // SAFETY: prctl and seccomp are async-signal-safe; `filter` is not touched by the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || install(&filter, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

#[test]
fn a_profile_denying_mkdir_makes_mkdir_fail_with_eperm() {
    kiln_test::prereq::require_command("mkdir", "coreutils");
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("x");
    let profile = Profile::from_json(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let out = run_filtered(&profile, &["mkdir", target.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{out:?}"
    );
    assert!(!target.exists());
    // An errnoRet is the errno the call fails with.
    let profile = Profile::from_json(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}]}"#,
    )
    .unwrap();
    let out = run_filtered(&profile, &["mkdir", target.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No space left on device"),
        "{out:?}"
    );
}

#[test]
fn argument_rules_compare_64_bit_values() {
    kiln_test::prereq::require_command("python3", "python3");
    // getpgid(63) fails with EINVAL (22) when the rule matches its argument (else ESRCH or a
    // group).
    let deny_getpgid = |op: &str, value: u64, two: &str| {
        Profile::from_json(&format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{{"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "args": [{{"index": 0, "value": {value}, {two} "op": "{op}"}}]}}]}}"#
        ))
        .unwrap()
    };
    let cases: [(&str, u64, &str, bool); 11] = [
        ("SCMP_CMP_EQ", 63, "", true),
        ("SCMP_CMP_EQ", 62, "", false),
        ("SCMP_CMP_NE", 63, "", false),
        ("SCMP_CMP_GT", 62, "", true),
        ("SCMP_CMP_GT", 63, "", false),
        ("SCMP_CMP_LE", 63, "", true),
        ("SCMP_CMP_LT", 63, "", false),
        ("SCMP_CMP_MASKED_EQ", 0o70, r#""valueTwo": 56,"#, true),
        ("SCMP_CMP_MASKED_EQ", 0o70, r#""valueTwo": 48,"#, false),
        // The high half counts: 63 is below 2^32.
        ("SCMP_CMP_GT", 1 << 32, "", false),
        ("SCMP_CMP_LT", 1 << 32, "", true),
    ];
    for (op, value, two, denied) in cases {
        let out = run_filtered(
            &deny_getpgid(op, value, two),
            &[
                "python3",
                "-c",
                "import os,sys\ntry: os.getpgid(63)\nexcept OSError as e: sys.exit(e.errno)",
            ],
        );
        assert_eq!(
            out.status.code() == Some(22),
            denied,
            "{op} {value}: {out:?}"
        );
    }
}

#[test]
fn the_default_filter_compiles_for_both_machines_within_the_kernel_limit() {
    let p = default_profile();
    for (name, arch, arches) in [
        ("amd64", Arch::ScmpArchX86_64, 3),
        ("arm64", Arch::ScmpArchAarch64, 2),
    ] {
        let resolved = p
            .resolve_for(name, Some(arch), &docker_default_caps(), Some((6, 1)))
            .unwrap();
        assert_eq!(resolved.architectures().as_ref().unwrap().len(), arches);
        let filter = compile(&resolved, arch).unwrap();
        assert!(
            filter.len() > 100 * arches && filter.len() < 1200,
            "{name}: {}",
            filter.len()
        );
        // It starts with the architecture check and every path ends in a return.
        assert_eq!((filter[0].code, filter[0].k), (0x20, 4));
        assert_eq!(filter.last().unwrap().code, 0x06);
    }
    // A notify action cannot be compiled (no agent), and says so.
    let mut s = oci_spec::runtime::LinuxSeccomp::default();
    s.set_default_action(LinuxSeccompAction::ScmpActNotify);
    let err = compile(&s, Arch::ScmpArchX86_64).unwrap_err().to_string();
    assert!(err.contains("SCMP_ACT_NOTIFY"), "{err}");
}

#[test]
fn many_argument_rules_for_one_call_still_compile_and_apply() {
    kiln_test::prereq::require_command("python3", "python3");
    // 60 rules on getpgid's argument (none matching 63), then one that does: the body is
    // longer than a conditional jump reaches.
    let mut rules: Vec<String> = (1000..1060)
        .map(|v| format!(r#"{{"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{{"index": 0, "value": {v}, "op": "SCMP_CMP_EQ"}}]}}"#))
        .collect();
    rules.push(r#"{"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "args": [{"index": 0, "value": 63, "op": "SCMP_CMP_EQ"}]}"#.into());
    let profile = Profile::from_json(&format!(
        r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{}]}}"#,
        rules.join(",")
    ))
    .unwrap();
    let out = run_filtered(
        &profile,
        &[
            "python3",
            "-c",
            "import os,sys\ntry: os.getpgid(63)\nexcept OSError as e: sys.exit(e.errno)",
        ],
    );
    assert_eq!(out.status.code(), Some(22), "{out:?}");
}
