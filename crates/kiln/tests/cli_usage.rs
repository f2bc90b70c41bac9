//! Command lines kiln refuses, worded as docker words them (docker 20.10's exact text in each
//! comment; `docker_compat.rs` checks the same against a running docker), and docker's
//! `--flag=VALUE` for boolean flags. Only the last test touches a store with an image in it
//! (busybox, root: it runs a container and builds).

mod support;

use std::process::{Command, Output};

fn kiln(args: &[&str]) -> Output {
    let root = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", root.path())
        .args(args)
        .output()
        .unwrap()
}

fn refused(args: &[&str]) -> (i32, String) {
    let o = kiln(args);
    assert!(
        o.stdout.is_empty(),
        "{args:?} printed on stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    (
        o.status.code().unwrap(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn too_few_arguments_exit_1_with_docker_usage_block() {
    // "docker tag" requires exactly 2 arguments. / See 'docker tag --help'. / / Usage:  docker
    // tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG] / / Create a tag TARGET_IMAGE that refers to ...
    assert_eq!(
        refused(&["tag", "x"]),
        (
            1,
            "\"kiln tag\" requires exactly 2 arguments.\nSee 'kiln tag --help'.\n\n\
             Usage:  kiln tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]\n\n\
             Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE\n"
                .to_string()
        )
    );
    let (code, err) = refused(&["rmi"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("\"kiln rmi\" requires at least 1 argument.\nSee 'kiln rmi --help'.\n\nUsage:  kiln rmi [OPTIONS] IMAGE [IMAGE...]\n"),
        "{err}"
    );
}

#[test]
fn too_many_arguments_is_not_an_unknown_flag() {
    // "docker images" requires at most 1 argument.
    let (code, err) = refused(&["images", "a", "b"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("\"kiln images\" requires at most 1 argument.\n"),
        "{err}"
    );
    assert!(
        err.contains("Usage:  kiln images [OPTIONS] [REPOSITORY[:TAG]]"),
        "{err}"
    );
    // The global --root takes a value: the command is still found after it.
    let root = tempfile::tempdir().unwrap();
    let (code, err) = refused(&["--root", root.path().to_str().unwrap(), "history"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("\"kiln history\" requires exactly 1 argument.\n"),
        "{err}"
    );
}

#[test]
fn flag_errors_exit_125() {
    // unknown shorthand flag: 'Z' in -Z / See 'docker images --help'.
    assert_eq!(
        refused(&["images", "-Z"]),
        (
            125,
            "unknown shorthand flag: 'Z' in -Z\nSee 'kiln images --help'.\n".to_string()
        )
    );
    // flag needs an argument: --format
    assert_eq!(
        refused(&["image", "ls", "--format"]),
        (
            125,
            "flag needs an argument: --format\nSee 'kiln image ls --help'.\n".to_string()
        )
    );
    // invalid argument "maybe" for "-H, --human" flag: strconv.ParseBool: ...
    let (code, err) = refused(&["history", "-H=maybe", "x"]);
    assert_eq!(code, 125);
    assert!(
        err.starts_with("invalid argument \"maybe\" for \"-H, --human\" flag: "),
        "{err}"
    );
    assert!(err.ends_with("See 'kiln history --help'.\n"), "{err}");
}

#[test]
fn a_group_without_its_subcommand_prints_usage_and_exits_0() {
    let (code, err) = refused(&["image"]);
    assert_eq!(code, 0);
    assert!(err.contains("Usage: kiln image"), "{err}");
}

#[test]
fn kilns_own_commands_keep_clap_usage_errors() {
    let (code, err) = refused(&["parse", "--bogus"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: unexpected argument '--bogus'"),
        "{err}"
    );
}

/// kiln's command with stderr (or stdout) on a full device, as `2>/dev/full` gives it.
fn kiln_into_full(args: &[&str], stderr_full: bool) -> Output {
    let root = tempfile::tempdir().unwrap();
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env("KILN_ROOT", root.path()).args(args);
    if stderr_full {
        c.stderr(full());
    } else {
        c.stdout(full());
    }
    c.output().unwrap()
}

#[test]
fn an_unwritable_stderr_or_stdout_is_not_a_panic() {
    // std's eprintln!/println! panic when the write fails (exit 101, "failed printing to
    // stderr"); kiln exits with the code the command would have had, as docker does.
    for (args, stderr_full, code) in [
        (&["nosuchcommand"][..], true, 1),
        (&["images", "--nosuchflag"][..], true, 125),
        (&["inspect", "nosuchimage"][..], true, 1),
        (&["tag", "x"][..], true, 1),
        (&["--help"][..], false, 0),
        (&["image"][..], true, 0),
    ] {
        let o = kiln_into_full(args, stderr_full);
        assert_eq!(
            o.status.code(),
            Some(code),
            "kiln {args:?} with {} on /dev/full: {}",
            if stderr_full { "stderr" } else { "stdout" },
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn failures_are_prefixed_per_command_family() {
    // docker's image commands: `Error: No such image: nosuch:1`.
    let (code, err) = refused(&["history", "nosuch:1"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: No such image: nosuch:1\n")
    );
    // builds: BuildKit's `ERROR: ` (docker 20.10 prints this line with no prefix).
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let (code, err) = refused(&["build", missing.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "ERROR: unable to prepare context: path \"{}\" not found\n",
            missing.display()
        )
    );
}

/// stdout of `kiln ARGS` in an empty store, which must exit 0.
fn ok_empty(args: &[&str]) -> String {
    let o = kiln(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn bool_flags_take_go_bool_values_as_docker_reads_them() {
    // docker (pflag) reads `--flag=V` and `-f=V` with Go's strconv.ParseBool.
    assert!(ok_empty(&["images", "--all=false"]).starts_with("REPOSITORY "));
    assert!(ok_empty(&["images", "--all=true", "--no-trunc=false"]).starts_with("REPOSITORY "));
    assert_eq!(ok_empty(&["images", "-q=true"]), "");
    assert_eq!(ok_empty(&["images", "-a=false", "--quiet=1"]), "");
    assert_eq!(ok_empty(&["image", "ls", "-aq=T"]), "");
    // -q=false after -q: the last one wins.
    assert!(ok_empty(&["images", "-q", "--quiet=False"]).starts_with("REPOSITORY "));
    // --force=true: no prompt.
    assert_eq!(
        ok_empty(&["image", "prune", "--force=true"]),
        "Total reclaimed space: 0B\n"
    );
    assert!(ok_empty(&["system", "df", "-v=true"]).starts_with("Images space usage:\n"));
    assert!(ok_empty(&["system", "df", "--verbose=0"]).starts_with("TYPE "));
    // The flags are read; the command then fails as it would without them.
    assert_eq!(
        refused(&["rmi", "--force=false", "nosuch:1"]),
        (1, "Error: No such image: nosuch:1\n".to_string())
    );
    assert_eq!(
        refused(&["history", "-H=F", "--no-trunc=true", "-q=0", "nosuch:1"]),
        (1, "Error: No such image: nosuch:1\n".to_string())
    );
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let (code, err) = refused(&[
        "build",
        "--no-cache=false",
        "--quiet=true",
        "--pull=false",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("ERROR: unable to prepare context"), "{err}");
}

#[test]
fn a_bool_value_go_cannot_read_is_refused_with_125() {
    // invalid argument "maybe" for "-q, --quiet" flag: strconv.ParseBool: parsing "maybe":
    // invalid syntax / See 'docker images --help'.
    for (args, flag, value, path) in [
        (
            &["images", "--quiet=maybe"][..],
            "-q, --quiet",
            "maybe",
            "kiln images",
        ),
        (&["images", "-aq=yes"], "-q, --quiet", "yes", "kiln images"),
        (&["image", "ls", "--all="], "-a, --all", "", "kiln image ls"),
        (
            &["build", "--no-cache=2", "."],
            "--no-cache",
            "2",
            "kiln build",
        ),
        (&["rmi", "-f=no", "x"], "-f, --force", "no", "kiln rmi"),
        (
            &["history", "-H=yes", "x"],
            "-H, --human",
            "yes",
            "kiln history",
        ),
        (
            &["system", "df", "-v=on"],
            "-v, --verbose",
            "on",
            "kiln system df",
        ),
        (&["run", "--rm=1.0", "x"], "--rm", "1.0", "kiln run"),
    ] {
        assert_eq!(
            refused(args),
            (
                125,
                format!(
                    "invalid argument \"{value}\" for \"{flag}\" flag: possible values: true, false\n\
                     See '{path} --help'.\n"
                )
            ),
            "{args:?}"
        );
    }
}

#[test]
fn run_and_create_refuse_unknown_flags_before_the_image() {
    // unknown flag: --bogus / See 'docker run --help'.  (docker 20.10, exit 125)
    for (args, err) in [
        (
            &["run", "--bogus", "x"][..],
            "unknown flag: --bogus\nSee 'kiln run --help'.\n",
        ),
        (
            &["run", "-d", "--bogus=1", "x", "sh"],
            "unknown flag: --bogus\nSee 'kiln run --help'.\n",
        ),
        (
            &["create", "--bogus", "x"],
            "unknown flag: --bogus\nSee 'kiln create --help'.\n",
        ),
        (
            &["run", "-Z", "x"],
            "unknown shorthand flag: 'Z' in -Z\nSee 'kiln run --help'.\n",
        ),
        // pflag names the rest of the word from the unknown letter on.
        (
            &["create", "-iZ", "x"],
            "unknown shorthand flag: 'Z' in -Z\nSee 'kiln create --help'.\n",
        ),
        (
            &["run", "-iZt=1", "x"],
            "unknown shorthand flag: 'Z' in -Zt=1\nSee 'kiln run --help'.\n",
        ),
        (
            &["container", "run", "--bogus", "x"],
            "unknown flag: --bogus\nSee 'kiln container run --help'.\n",
        ),
    ] {
        assert_eq!(refused(args), (125, err.to_string()), "{args:?}");
    }
}

#[test]
fn bool_values_take_effect_and_a_containers_command_keeps_its_flags() {
    support::require_root();
    let c = support::Ctx::new();
    let bb = "localhost/busybox:latest";
    let run = |args: &[&str]| {
        let o = c.kiln(args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // After the image, every word is the command's: nothing is read or rewritten.
    assert_eq!(
        run(&[
            "run",
            "--rm=true",
            "-i=false",
            bb,
            "echo",
            "--all=false",
            "-a=0",
            "--",
            "-q=x"
        ]),
        "--all=false -a=0 -- -q=x\n"
    );
    assert_eq!(run(&["ps", "-a=true", "-q=1"]), "", "--rm=true removed it");
    let id = run(&["create", "--init=false", bb, "echo", "--rm=false"]);
    assert_eq!(run(&["start", "-a", id.trim()]), "--rm=false\n");
    run(&["rm", "-f=true", id.trim()]);

    // --no-trunc=T, -H=F, -q=1 as --no-trunc, -H=false, -q.
    let full = run(&["images", "--no-trunc=T", bb]);
    assert!(full.contains(" sha256:"), "{full}");
    assert_eq!(
        run(&["images", "--no-trunc=false", bb]),
        run(&["images", bb])
    );
    assert_eq!(
        run(&["history", "-H=F", bb]),
        run(&["history", "--human=false", bb])
    );
    assert_ne!(run(&["history", "-H=F", bb]), run(&["history", "-H=t", bb]));
    assert_eq!(run(&["images", "-q=1", bb]).trim().len(), 12);

    // build: --quiet=true prints the ID alone; --no-cache=false keeps the cache, =true not.
    c.file("Dockerfile", &format!("FROM {bb}\nRUN echo hi > /hi\n"));
    let (code, out, err) = c.build(&["--quiet=true"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("sha256:") && out.lines().count() == 1,
        "{out}"
    );
    assert!(
        c.build_ok(&["--quiet=false", "--no-cache=false"])
            .contains("CACHED")
    );
    assert!(!c.build_ok(&["--no-cache=true"]).contains("CACHED"));
}

/// `kiln` or `kiln image` alone prints the usage and exits 0, and never names a hidden internal
/// command (clap's own "requires a subcommand" message listed `__run-bundle`).
#[test]
fn no_subcommand_prints_usage_without_internal_commands() {
    for args in [&[][..], &["image"][..], &["builder"][..]] {
        let o = kiln(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(all.contains("Usage: kiln"), "{args:?}: {all}");
        assert!(!all.contains("__"), "{args:?}: {all}");
    }
}
