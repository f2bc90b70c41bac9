//! Command lines clap refuses, reported as docker reports them for docker's commands:
//!
//! | mistake | docker's text | exit |
//! |---|---|---|
//! | unknown flag | `unknown flag: --x` / `unknown shorthand flag: 'x' in -x`, `See 'docker images --help'.` | 125 |
//! | flag value missing | `flag needs an argument: --format` | 125 |
//! | flag value invalid | `invalid argument "v" for "-H, --human" flag: REASON` | 125 |
//! | other flag misuse | clap's text | 125 |
//! | too few / too many arguments | `"docker tag" requires exactly 2 arguments.`, See, Usage, about | 1 |
//! | unknown command | `docker: 'x' is not a docker command.` / `See 'docker --help'` | 1 |
//!
//! kiln's own commands (`parse`, `graph`) keep clap's text and exit 2; help and version exit 0,
//! and so does a command group named without its subcommand (`kiln image`), as in docker.
//! No message names a hidden internal command (clap's suggestions would).

use std::process::ExitCode;

use clap::CommandFactory;
use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Prints `e` and returns the exit code.
pub fn report(e: clap::Error) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let inv = Invoked::find(&args);
    let string = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let see = format!("See '{} --help'.", inv.path);
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        // `docker image` alone prints the group's usage (on stderr) and exits 0.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::InvalidSubcommand => {
            let name = string(ContextKind::InvalidSubcommand).unwrap_or_default();
            let path = &inv.path;
            eprintln!("{path}: '{name}' is not a {path} command.\nSee '{path} --help'");
            ExitCode::FAILURE
        }
        _ if !inv.docker_style() => {
            let _ = e.print();
            ExitCode::from(2)
        }
        ErrorKind::UnknownArgument => {
            let arg = string(ContextKind::InvalidArg).unwrap_or_default();
            if !arg.starts_with('-') || arg == "-" {
                // An argument beyond the last positional.
                return arity_error(&inv);
            }
            let flag = arg.split_once('=').map_or(arg.as_str(), |(f, _)| f);
            if flag.starts_with("--") {
                eprintln!("unknown flag: {flag}\n{see}");
            } else {
                let c = flag.chars().nth(1).unwrap_or('?');
                eprintln!("unknown shorthand flag: '{c}' in {flag}\n{see}");
            }
            ExitCode::from(125)
        }
        ErrorKind::MissingRequiredArgument => {
            let missing_flag = matches!(
                e.get(ContextKind::InvalidArg),
                Some(ContextValue::Strings(v)) if v.iter().any(|a| a.starts_with('-'))
            );
            if missing_flag {
                let _ = e.print();
                return ExitCode::from(125);
            }
            arity_error(&inv)
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let arg = string(ContextKind::InvalidArg).unwrap_or_default();
            // `--human[=<true|false>]`, `--format <string>`, `--x=<v>`: the flag alone.
            let name = arg.split([' ', '=', '[']).next().unwrap_or_default();
            let value = string(ContextKind::InvalidValue).unwrap_or_default();
            if value.is_empty() && e.kind() == ErrorKind::InvalidValue {
                eprintln!("flag needs an argument: {name}\n{see}");
                return ExitCode::from(125);
            }
            let reason = match (
                e.get(ContextKind::ValidValue),
                std::error::Error::source(&e),
            ) {
                (Some(ContextValue::Strings(v)), _) => format!("possible values: {}", v.join(", ")),
                (_, Some(src)) => src.to_string(),
                _ => "invalid value".to_string(),
            };
            eprintln!(
                "invalid argument \"{value}\" for \"{}\" flag: {reason}\n{see}",
                inv.flag_names(name)
            );
            ExitCode::from(125)
        }
        _ => {
            let _ = e.print();
            ExitCode::from(125)
        }
    }
}

/// `"kiln tag" requires exactly 2 arguments.`, then docker's usage block; exit 1.
fn arity_error(inv: &Invoked) -> ExitCode {
    let positionals: Vec<&clap::Arg> = inv
        .cmd
        .get_positionals()
        .filter(|a| !a.is_hide_set())
        .collect();
    let required = positionals.iter().filter(|a| a.is_required_set()).count();
    let many = positionals.iter().any(|a| takes_many(a));
    let (how, n) = if many {
        ("at least", required.max(1))
    } else if required == positionals.len() {
        ("exactly", required)
    } else {
        ("at most", positionals.len())
    };
    let plural = if n == 1 { "" } else { "s" };
    let path = &inv.path;
    let mut usage = format!("Usage:  {path}");
    let has_flags = inv.cmd.get_arguments().any(|a| {
        !a.is_positional()
            && !a.is_global_set()
            && !a.is_hide_set()
            && !matches!(a.get_id().as_str(), "help" | "version")
    });
    if has_flags {
        usage.push_str(" [OPTIONS]");
    }
    for a in &positionals {
        let name = a
            .get_value_names()
            .and_then(|v| v.first())
            .map_or_else(|| a.get_id().to_string().to_uppercase(), |v| v.to_string());
        let one = if takes_many(a) {
            format!("{name} [{name}...]")
        } else {
            name
        };
        usage.push(' ');
        usage.push_str(&if a.is_required_set() {
            one
        } else {
            format!("[{one}]")
        });
    }
    let about = inv
        .cmd
        .get_about()
        .map(|a| a.to_string().trim_end_matches('.').to_string())
        .unwrap_or_default();
    eprintln!(
        "\"{path}\" requires {how} {n} argument{plural}.\nSee '{path} --help'.\n\n{usage}\n\n{about}"
    );
    ExitCode::FAILURE
}

fn takes_many(a: &clap::Arg) -> bool {
    a.get_num_args().is_some_and(|r| r.max_values() > 1)
}

/// The (visible) subcommands named on the command line and the innermost one's definition.
struct Invoked {
    /// `kiln image prune`
    path: String,
    /// `["image", "prune"]`
    names: Vec<String>,
    cmd: clap::Command,
}

impl Invoked {
    fn find(args: &[String]) -> Invoked {
        let mut cmd = crate::Cli::command();
        cmd.build();
        let mut names = Vec::new();
        let mut skip_value = false;
        for arg in args {
            if std::mem::take(&mut skip_value) {
                continue;
            }
            if arg.starts_with('-') {
                // The global `--root DIR` takes the next word; the rest of the flags come after
                // the subcommand that defines them.
                skip_value = arg == "--root";
                continue;
            }
            match cmd.find_subcommand(arg) {
                Some(sub) if !sub.is_hide_set() => {
                    names.push(sub.get_name().to_string());
                    cmd = sub.clone();
                }
                _ => break,
            }
        }
        let path = std::iter::once("kiln".to_string())
            .chain(names.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        Invoked { path, names, cmd }
    }

    /// docker's commands get docker's messages; kiln's own Dockerfile tools keep clap's.
    fn docker_style(&self) -> bool {
        !matches!(
            self.names.first().map(String::as_str),
            Some("parse" | "graph")
        )
    }

    /// `--human` → `-H, --human`, as docker names a flag in its errors.
    fn flag_names(&self, given: &str) -> String {
        let found = self.cmd.get_arguments().find(|a| {
            a.get_long().is_some_and(|l| given == format!("--{l}"))
                || a.get_short().is_some_and(|s| given == format!("-{s}"))
        });
        match found {
            Some(a) => match (a.get_short(), a.get_long()) {
                (Some(s), Some(l)) => format!("-{s}, --{l}"),
                (Some(s), None) => format!("-{s}"),
                (None, Some(l)) => format!("--{l}"),
                (None, None) => given.to_string(),
            },
            None => given.to_string(),
        }
    }
}
