//! Command lines kiln refuses, worded as docker words them (docker 20.10's exact text in each
//! comment; `docker_compat.rs` checks the same against a running docker). No store is touched.

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
