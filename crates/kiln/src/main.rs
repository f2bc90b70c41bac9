//! The `kiln` command line: clap definitions and dispatch. Each command family lives in its own
//! module (`cmd_*.rs`) that owns its clap types and calls one library function per command.

mod cmd_build;
mod cmd_builder;
mod cmd_dockerfile;
mod cmd_image;
mod cmd_internal;
mod global;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use global::GlobalArgs;

/// kiln: a fast, daemonless container image builder for multi-stage Dockerfiles.
#[derive(Parser, Debug)]
#[command(name = "kiln", version, about, long_about = None, disable_help_subcommand = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    #[command(flatten)]
    Dockerfile(cmd_dockerfile::Command),
    #[command(flatten)]
    Image(cmd_image::Command),
    #[command(flatten)]
    Build(cmd_build::Command),
    #[command(flatten)]
    Builder(cmd_builder::Command),
    #[command(flatten)]
    Internal(cmd_internal::Command),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    if matches!(cli.command, Command::Build(cmd_build::Command::Build(_))) {
        // Before any thread exists: every mount the build makes dies with this process.
        if let Err(e) = kiln_build::namespace::enter_private_mount_namespace() {
            eprintln!(
                "error: kiln build needs root (CAP_SYS_ADMIN) for overlay mounts and namespaces: {e}"
            );
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Dockerfile(c) => cmd_dockerfile::run(c, &cli.global),
        Command::Image(c) => cmd_image::run(c, &cli.global),
        Command::Build(c) => cmd_build::run(c, &cli.global),
        Command::Builder(c) => cmd_builder::run(c, &cli.global),
        Command::Internal(c) => cmd_internal::run(c, &cli.global),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            if suggests_store_damage(&e) {
                eprintln!("{STORE_DAMAGE_HINT}");
            }
            ExitCode::FAILURE
        }
    }
}

/// A command line clap refused, reported as docker reports it: an unknown flag is
/// `unknown flag: --x` / `See 'kiln build --help'.` with exit 125, an unknown command
/// `kiln: 'x' is not a kiln command.` with exit 1 and no suggestion (clap's would name hidden
/// internal commands); other usage errors keep clap's text and exit 2; help and version exit 0.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let value = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    match e.kind() {
        ErrorKind::UnknownArgument => {
            let flag = value(ContextKind::InvalidArg).unwrap_or_default();
            let flag = flag
                .split_once('=')
                .map_or(flag.as_str(), |(f, _)| f)
                .to_string();
            eprintln!("unknown flag: {flag}\nSee '{} --help'.", command_path());
            ExitCode::from(125)
        }
        ErrorKind::InvalidSubcommand => {
            let name = value(ContextKind::InvalidSubcommand).unwrap_or_default();
            let path = command_path();
            eprintln!("{path}: '{name}' is not a {path} command.\nSee '{path} --help'");
            ExitCode::FAILURE
        }
        _ => {
            let _ = e.print();
            ExitCode::from(if e.use_stderr() { 2 } else { 0 })
        }
    }
}

/// `kiln` and the subcommands named on the command line (`kiln image prune`).
fn command_path() -> String {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut path = vec!["kiln".to_string()];
    for arg in std::env::args().skip(1) {
        if arg.starts_with('-') {
            continue;
        }
        match cmd.find_subcommand(&arg) {
            Some(sub) if !sub.is_hide_set() => {
                path.push(arg.clone());
                cmd = sub.clone();
            }
            _ => break,
        }
    }
    path.join(" ")
}

/// Printed after an error that means the store's content is damaged.
pub(crate) const STORE_DAMAGE_HINT: &str = "hint: the store's content is damaged; `kiln system check` says what is wrong and `kiln system check --repair` removes it";

fn suggests_store_damage(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<kiln_store::Error>()
            .is_some_and(kiln_store::Error::suggests_damage)
            || matches!(
                c.downcast_ref::<kiln_build::BuildError>(),
                Some(kiln_build::BuildError::Store(s)) if s.suggests_damage()
            )
    })
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
