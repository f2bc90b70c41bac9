//! The `kiln` command line: clap definitions and dispatch. Each command family lives in its own
//! module (`cmd_*.rs`) that owns its clap types and calls one library function per command.

// kiln's own `eprintln!`/`eprint!`/`println!`/`print!` for every module below (textual scope:
// they are defined before the `mod`s). std's versions panic when the stream cannot be written
// (stderr on a full disk, stdout into a closed pipe) and the process exits 101 with a panic
// message; docker's CLI goes on and exits with its own code. A lost line is not worth a panic.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
macro_rules! eprint {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

mod cmd_build;
mod cmd_builder;
mod cmd_check;
mod cmd_container;
mod cmd_diff;
mod cmd_dockerfile;
mod cmd_image;
mod cmd_internal;
mod cmd_registry;
mod cmd_report;
mod global;
mod progress;
mod usage;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    Container(cmd_container::Command),
    #[command(flatten)]
    Internal(cmd_internal::Command),
    #[command(flatten)]
    Report(cmd_report::Command),
    #[command(flatten)]
    Diff(cmd_diff::Command),
    #[command(flatten)]
    Registry(cmd_registry::Command),
    #[command(flatten)]
    Check(cmd_check::Command),
}

/// `kiln build ...` parsed without the other commands' definitions: clap builds every
/// argument of every subcommand before it parses, about a tenth of a no-op rebuild.
#[derive(Parser, Debug)]
#[command(name = "kiln", disable_help_subcommand = true)]
struct BuildCli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: cmd_build::Command,
}

impl BuildCli {
    /// Only for a command line that starts with `build`; anything it does not accept (help,
    /// errors) goes to the full parser, so what the user sees is the same.
    fn try_fast(args: &[OsString]) -> Option<Cli> {
        if args.get(1).is_none_or(|a| a != "build") {
            return None;
        }
        let mut cmd = BuildCli::command();
        let args = usage::bool_values(args.to_vec(), &cmd).ok()?;
        let mut m = cmd.try_get_matches_from_mut(args).ok()?;
        let b = BuildCli::from_arg_matches_mut(&mut m).ok()?;
        Some(Cli {
            global: b.global,
            command: Command::Build(b.command),
        })
    }
}

/// The command line as clap parses it, after docker's `--flag=false` is made clap's
/// (`usage::bool_values`); a refused one is reported here, with its exit code.
fn parse() -> Result<Cli, ExitCode> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(cli) = BuildCli::try_fast(&args) {
        return Ok(cli);
    }
    let mut cmd = Cli::command();
    let args = usage::bool_values(args, &cmd).map_err(usage::BadBool::report)?;
    let mut m = cmd.try_get_matches_from_mut(args).map_err(usage::report)?;
    Cli::from_arg_matches_mut(&mut m).map_err(|e| usage::report(e.format(&mut cmd)))
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let family = Family::of(&cli.command);
    // Rootless: into the user namespace before any thread (docs/rootless.md).
    if family != Family::Kiln
        && !matches!(&cli.command, Command::Build(cmd_build::Command::Build(b)) if b.check)
        && let Err(e) = global::enter_rootless(&cli.global)
    {
        eprintln!("{}{e}", family.prefix());
        return ExitCode::FAILURE;
    }
    if matches!(&cli.command, Command::Build(cmd_build::Command::Build(b)) if !b.check) {
        // Before any thread exists: every mount the build makes dies with this process.
        if let Err(e) = kiln_build::namespace::enter_private_mount_namespace() {
            eprintln!(
                "{}kiln build needs root (CAP_SYS_ADMIN) for overlay mounts and namespaces: {e}",
                family.prefix()
            );
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Dockerfile(c) => cmd_dockerfile::run(c, &cli.global),
        Command::Image(c) => cmd_image::run(c, &cli.global),
        Command::Build(c) => cmd_build::run(c, &cli.global),
        Command::Builder(c) => cmd_builder::run(c, &cli.global),
        Command::Container(c) => cmd_container::run(c, &cli.global),
        Command::Internal(c) => cmd_internal::run(c, &cli.global),
        Command::Report(c) => cmd_report::run(c, &cli.global),
        Command::Diff(c) => cmd_diff::run(c, &cli.global),
        Command::Registry(c) => cmd_registry::run(c, &cli.global),
        Command::Check(c) => cmd_check::run(c, &cli.global),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            // The chain, each cause once (a source whose text its parent already quotes, as
            // a registry error quoting its transport error, is not repeated).
            eprintln!("{}{}", family.prefix(), cmd_image::message(&e));
            if suggests_store_damage(&e) {
                eprintln!("{STORE_DAMAGE_HINT}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Whose conventions a command's failures follow (docs/docker-compat.md, "Errors").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    /// `build`: BuildKit's `ERROR: ...` (what buildx, docker's builder since 23.0, prints; 20.10
    /// printed most build errors with no prefix at all, which no log search can find).
    Build,
    /// docker's CLI commands (images, builder, system): `Error: ...`, as docker prints
    /// `Error: No such image` and `Error response from daemon: ...` (kiln has no daemon).
    Docker,
    /// `pull`, `push`, `login`: docker prints what the daemon answered as
    /// `Error response from daemon: ...` (`manifest for x:y not found: manifest unknown`).
    Daemon,
    /// kiln's own Dockerfile tools (`parse`, `graph`, `check`): `error: ...` like their rustc-style
    /// diagnostics and clap's usage errors.
    Kiln,
}

impl Family {
    fn of(cmd: &Command) -> Family {
        match cmd {
            Command::Build(_) => Family::Build,
            Command::Dockerfile(_) | Command::Check(_) => Family::Kiln,
            Command::Image(_)
            | Command::Builder(_)
            | Command::Container(_)
            | Command::Internal(_) => Family::Docker,
            Command::Report(_) | Command::Diff(_) => Family::Docker,
            Command::Registry(_) => Family::Daemon,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Family::Build => "ERROR: ",
            Family::Docker => "Error: ",
            Family::Daemon => "Error response from daemon: ",
            Family::Kiln => "error: ",
        }
    }
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
