//! Command lines clap refuses, reported as docker reports them for docker's commands:
//!
//! | mistake | docker's text | exit |
//! |---|---|---|
//! | unknown flag | `unknown flag: --x` / `unknown shorthand flag: 'x' in -x`, `See 'docker images --help'.` | 125 |
//! | flag value missing | `flag needs an argument: --format` | 125 |
//! | flag value invalid | `invalid argument "v" for "-H, --human" flag: REASON` | 125 |
//! | bool flag value invalid (`-q=maybe`) | the same, from [`bool_values`] | 125 |
//! | other flag misuse | clap's text | 125 |
//! | too few / too many arguments | `"docker tag" requires exactly 2 arguments.`, See, Usage, about | 1 |
//! | unknown command | `docker: 'x' is not a docker command.` / `See 'docker --help'` | 1 |
//!
//! Before clap parses, [`bool_values`] makes docker's `--all=false` / `-q=true` clap's.
//! kiln's own commands (`parse`, `graph`) keep clap's text and exit 2; help and version exit 0,
//! and so does a command group named without its subcommand (`kiln image`), as in docker.
//! No message names a hidden internal command (clap's suggestions would).

use std::ffi::OsString;
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
        // `docker image` alone prints the group's usage (on stderr) and exits 0. The group's
        // help, not clap's error: that one lists hidden internal commands (`__run-bundle`).
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            let help = inv.cmd.clone().render_help();
            eprint!("{help}");
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
                // pflag names the rest of the word from the unknown letter on (`-aZq` → `-Zq`).
                let rest = args
                    .iter()
                    .filter(|a| a.starts_with('-') && !a.starts_with("--"))
                    .find_map(|a| {
                        let letters = a[1..].split('=').next().unwrap_or_default();
                        letters.find(c).map(|i| format!("-{}", &a[1 + i..]))
                    })
                    .unwrap_or_else(|| flag.to_string());
                eprintln!("unknown shorthand flag: '{c}' in {rest}\n{see}");
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
        found
            .and_then(flag_names)
            .unwrap_or_else(|| given.to_string())
    }
}

/// A boolean flag given a value that is none of Go's `strconv.ParseBool` spellings.
#[derive(Debug, PartialEq, Eq)]
pub struct BadBool {
    /// `maybe`
    value: String,
    /// `-q, --quiet`
    flag: String,
    /// `kiln images`
    path: String,
}

impl std::fmt::Display for BadBool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The reason is kiln's, as for clap's own bool values (docs/docker-compat.md, "Errors").
        write!(
            f,
            "invalid argument \"{}\" for \"{}\" flag: possible values: true, false\nSee '{} --help'.",
            self.value, self.flag, self.path
        )
    }
}

impl BadBool {
    /// Prints the error and returns docker's exit code for flag errors.
    pub fn report(self) -> ExitCode {
        eprintln!("{self}");
        ExitCode::from(125)
    }
}

/// Go's `strconv.ParseBool`, which docker's flags use.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// docker's `--flag=VALUE` and `-f=VALUE` for boolean flags, rewritten into what clap accepts,
/// so that no command's definition has to say it: a plain flag (`--all`, clap's `SetTrue`)
/// given true stays, given false goes, with its earlier occurrences (the last one wins, as in
/// docker); a flag that takes `true|false` (`-H=T`) gets clap's spelling. `-aq=false` keeps
/// `-a`. Flags clap does not know are left for clap to report.
///
/// The command line is walked as clap will parse it, with `root`'s definitions: option values
/// are skipped, and nothing is touched after `--` or after the first positional of a command
/// that takes a command line (`run IMAGE COMMAND...`, `exec CONTAINER COMMAND...`: docker
/// reads no flags after it). kiln's own `parse`/`graph` keep clap's grammar. A command line
/// with no `-x=...` word (almost all) is returned as it is, without the walk.
pub fn bool_values(args: Vec<OsString>, root: &clap::Command) -> Result<Vec<OsString>, BadBool> {
    let with_value = |a: &OsString| {
        let b = a.as_encoded_bytes();
        b.len() > 2 && b[0] == b'-' && b.contains(&b'=')
    };
    if !args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(with_value)
    {
        return Ok(args);
    }
    let mut walk = Walk {
        cmd: root,
        globals: Vec::new(),
        path: root.get_name().to_string(),
        pieces: Vec::with_capacity(args.len()),
        set_at: Vec::new(),
    };
    let mut args = args.into_iter();
    walk.pieces.extend(args.next().map(Piece::Word));
    let mut positional_seen = false;
    while let Some(arg) = args.next() {
        let text = arg.to_str().map(str::to_owned);
        let value = match text.as_deref() {
            Some("--") => {
                walk.pieces.push(Piece::Word(arg));
                break;
            }
            Some(s) if s.starts_with("--") => walk.long(&s[2..], arg)?,
            Some(s) if s.len() > 1 && s.starts_with('-') => walk.short(&s[1..])?,
            // Not UTF-8: a flag with its value attached (none of kiln's flag names is).
            None if arg.as_encoded_bytes().starts_with(b"-") => {
                walk.pieces.push(Piece::Word(arg));
                None
            }
            word => {
                let sub = word
                    .filter(|_| !positional_seen)
                    .and_then(|w| walk.cmd.find_subcommand(w));
                if let Some(sub) = sub {
                    if walk.path == root.get_name() && matches!(sub.get_name(), "parse" | "graph") {
                        walk.pieces.push(Piece::Word(arg));
                        break;
                    }
                    walk.enter(sub);
                    walk.pieces.push(Piece::Word(arg));
                    continue;
                }
                walk.pieces.push(Piece::Word(arg));
                if walk.takes_command_line() {
                    break;
                }
                positional_seen = true;
                None
            }
        };
        if let Some(value) = value {
            // As clap reads it: a word with a dash is the next flag unless the option takes
            // such values (`-n -1`), and an optional value is never one.
            let next_is_value = args.as_slice().first().is_some_and(|n| {
                let b = n.as_encoded_bytes();
                !b.starts_with(b"-") || b == b"-" || (value.hyphen && !value.optional)
            });
            if next_is_value {
                walk.pieces.extend(args.next().map(Piece::Word));
            }
        }
    }
    Ok(walk
        .pieces
        .into_iter()
        .filter_map(Piece::into_arg)
        .chain(args)
        .collect())
}

/// One word of the command line as [`bool_values`] passes it on.
enum Piece {
    /// Unchanged.
    Word(OsString),
    /// A plain long flag (`--all`): dropped when off.
    Flag { text: String, on: bool },
    /// Short flags in one word: the plain ones (`-aq`), each dropped when off, then the rest of
    /// the word unchanged (`t=x`: a flag with its value; or a letter clap will report).
    Cluster {
        flags: Vec<(char, bool)>,
        rest: String,
    },
}

impl Piece {
    fn into_arg(self) -> Option<OsString> {
        match self {
            Piece::Word(w) => Some(w),
            Piece::Flag { text, on } => on.then(|| text.into()),
            Piece::Cluster { flags, rest } => {
                let on: String = flags.iter().filter(|f| f.1).map(|f| f.0).collect();
                (!on.is_empty() || !rest.is_empty()).then(|| format!("-{on}{rest}").into())
            }
        }
    }
}

/// An option whose value may be the next word.
struct Value {
    /// `num_args(0..=1)`: the next word is its value unless it looks like a flag.
    optional: bool,
    /// `allow_hyphen_values`: the next word is its value even if it looks like a flag.
    hyphen: bool,
}

/// [`bool_values`]'s position in the command tree and what it has passed.
struct Walk<'a> {
    cmd: &'a clap::Command,
    /// The enclosing commands' global flags (`--root`), valid here too.
    globals: Vec<&'a clap::Arg>,
    /// `kiln image ls`
    path: String,
    pieces: Vec<Piece>,
    /// Where each plain flag was set so far: its id, the piece, the place in a cluster.
    set_at: Vec<(&'a str, usize, Option<usize>)>,
}

impl<'a> Walk<'a> {
    fn find(&self, is: impl Fn(&clap::Arg) -> bool) -> Option<&'a clap::Arg> {
        let cmd: &'a clap::Command = self.cmd;
        cmd.get_arguments()
            .chain(self.globals.iter().copied())
            .find(|a| !a.is_positional() && is(a))
    }

    fn enter(&mut self, sub: &'a clap::Command) {
        let cmd: &'a clap::Command = self.cmd;
        self.globals
            .extend(cmd.get_arguments().filter(|a| a.is_global_set()));
        self.path.push(' ');
        self.path.push_str(sub.get_name());
        self.cmd = sub;
        self.set_at.clear();
    }

    /// `run IMAGE [COMMAND] [ARG...]`: the first positional ends the flags, as in docker.
    fn takes_command_line(&self) -> bool {
        self.cmd
            .get_positionals()
            .any(clap::Arg::is_trailing_var_arg_set)
    }

    fn bad(&self, arg: &clap::Arg, value: &str) -> BadBool {
        BadBool {
            value: value.to_string(),
            flag: flag_names(arg).unwrap_or_default(),
            path: self.path.clone(),
        }
    }

    /// A plain flag's value: true without one.
    fn plain_value(&mut self, arg: &'a clap::Arg, value: Option<&str>) -> Result<bool, BadBool> {
        let on = match value {
            None => true,
            Some(v) => parse_bool(v).ok_or_else(|| self.bad(arg, v))?,
        };
        if !on {
            let id = arg.get_id().as_str();
            for &(_, p, at) in self.set_at.iter().filter(|s| s.0 == id) {
                match (&mut self.pieces[p], at) {
                    (Piece::Flag { on, .. }, None) => *on = false,
                    (Piece::Cluster { flags, .. }, Some(at)) => flags[at].1 = false,
                    _ => {}
                }
            }
            self.set_at.retain(|s| s.0 != id);
        }
        Ok(on)
    }

    /// `--name`, `--name=value` (`body` is without the dashes).
    fn long(&mut self, body: &str, word: OsString) -> Result<Option<Value>, BadBool> {
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let found = self.find(|a| {
            a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|v| v.contains(&name))
        });
        let Some(arg) = found else {
            self.pieces.push(Piece::Word(word));
            return Ok(None);
        };
        if is_plain(arg) {
            let on = self.plain_value(arg, value)?;
            if on {
                let at = (arg.get_id().as_str(), self.pieces.len(), None);
                self.set_at.push(at);
            }
            let text = format!("--{name}");
            self.pieces.push(Piece::Flag { text, on });
            return Ok(None);
        }
        if let Some(v) = value.filter(|_| is_bool_valued(arg)) {
            let b = parse_bool(v).ok_or_else(|| self.bad(arg, v))?;
            self.pieces
                .push(Piece::Word(format!("--{name}={b}").into()));
            return Ok(None);
        }
        self.pieces.push(Piece::Word(word));
        Ok(value.is_none().then(|| next_value(arg)).flatten())
    }

    /// `-a`, `-aq`, `-q=false`, `-tname`, `-t=name` (`body` is without the dash).
    fn short(&mut self, body: &str) -> Result<Option<Value>, BadBool> {
        let p = self.pieces.len();
        self.pieces.push(Piece::Cluster {
            flags: Vec::new(),
            rest: String::new(),
        });
        let mut rest = String::new();
        let mut next = None;
        for (at, c) in body.char_indices() {
            let after = &body[at + c.len_utf8()..];
            let found = self.find(|a| {
                a.get_short() == Some(c)
                    || a.get_all_short_aliases().is_some_and(|v| v.contains(&c))
            });
            let Some(arg) = found else {
                rest = body[at..].to_string();
                break;
            };
            if is_plain(arg) {
                let value = after.strip_prefix('=');
                let on = self.plain_value(arg, value)?;
                if let Piece::Cluster { flags, .. } = &mut self.pieces[p] {
                    flags.push((c, on));
                    if on {
                        let at = (arg.get_id().as_str(), p, Some(flags.len() - 1));
                        self.set_at.push(at);
                    }
                }
                if value.is_some() {
                    break;
                }
                continue;
            }
            rest = match after.strip_prefix('=').filter(|_| is_bool_valued(arg)) {
                Some(v) => format!("{c}={}", parse_bool(v).ok_or_else(|| self.bad(arg, v))?),
                None => body[at..].to_string(),
            };
            if after.is_empty() {
                next = next_value(arg);
            }
            break;
        }
        // Unchanged but for what was rewritten: `-Z` stays `-Z` for clap to report.
        if let Piece::Cluster { rest: r, .. } = &mut self.pieces[p] {
            *r = rest;
        }
        Ok(next)
    }
}

/// A flag with no value of its own (clap's `SetTrue`), which docker lets take `=true|false`.
fn is_plain(arg: &clap::Arg) -> bool {
    matches!(arg.get_action(), clap::ArgAction::SetTrue)
}

/// An option whose values are `true` and `false` (`-H, --human[=true|false]`).
fn is_bool_valued(arg: &clap::Arg) -> bool {
    // Not `get_possible_values`: it says none until clap has built the command.
    let values = arg.get_value_parser().possible_values();
    let names: Option<Vec<_>> = values.map(|v| v.map(|p| p.get_name().to_string()).collect());
    arg.get_action().takes_values() && names.is_some_and(|n| n == ["true", "false"])
}

fn next_value(arg: &clap::Arg) -> Option<Value> {
    (arg.get_action().takes_values() && !arg.is_require_equals_set()).then(|| Value {
        optional: arg.get_num_args().is_some_and(|r| r.min_values() == 0),
        hyphen: arg.is_allow_hyphen_values_set(),
    })
}

/// `-H, --human`, as docker names a flag in its errors.
fn flag_names(arg: &clap::Arg) -> Option<String> {
    match (arg.get_short(), arg.get_long()) {
        (Some(s), Some(l)) => Some(format!("-{s}, --{l}")),
        (Some(s), None) => Some(format!("-{s}")),
        (None, Some(l)) => Some(format!("--{l}")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn bool_values_of(line: &str) -> Result<String, BadBool> {
        let args = std::iter::once("kiln")
            .chain(line.split(' '))
            .map(OsString::from)
            .collect();
        let out = bool_values(args, &crate::Cli::command())?;
        Ok(out[1..]
            .iter()
            .map(|a| a.to_str().unwrap())
            .collect::<Vec<_>>()
            .join(" "))
    }

    #[test]
    fn plain_flags_take_go_bool_values() {
        for (given, clap) in [
            ("images --all=false", "images"),
            ("images --all=true", "images --all"),
            ("images -a=0 -q=T", "images -q"),
            ("images --no-trunc=TRUE --quiet=f", "images --no-trunc"),
            ("image ls -a=1", "image ls -a"),
            ("rmi --force=false x", "rmi x"),
            ("rmi -f=True x y", "rmi -f x y"),
            ("image prune --force=true", "image prune --force"),
            ("system df -v=true", "system df -v"),
            ("system df --verbose=false", "system df"),
            ("history --no-trunc=t -q=F x", "history --no-trunc x"),
            ("build --no-cache=false --quiet=true .", "build --quiet ."),
            ("ps -a=true --no-trunc=false", "ps -a"),
            ("container ls --all=1", "container ls --all"),
        ] {
            assert_eq!(bool_values_of(given).unwrap(), clap, "{given}");
        }
    }

    #[test]
    fn the_last_occurrence_wins_and_clusters_keep_their_other_letters() {
        for (given, clap) in [
            ("images -a --all=false -q", "images -q"),
            ("images -aq --all=False", "images -q"),
            ("images -aq=false", "images -a"),
            ("images -qa=true", "images -qa"),
            ("images --all=false -a", "images -a"),
            ("images -aq", "images -aq"),
        ] {
            assert_eq!(bool_values_of(given).unwrap(), clap, "{given}");
        }
    }

    #[test]
    fn bool_valued_options_get_clap_spelling() {
        assert_eq!(
            bool_values_of("history -H=F x").unwrap(),
            "history -H=false x"
        );
        assert_eq!(
            bool_values_of("history --human=1 x").unwrap(),
            "history --human=true x"
        );
        assert_eq!(
            bool_values_of("attach --sig-proxy=f c").unwrap(),
            "attach --sig-proxy=false c"
        );
    }

    #[test]
    fn option_values_commands_and_dash_dash_are_left_alone() {
        for (given, clap) in [
            // An option's value is no flag, whatever it looks like.
            (
                "build -t=x:1 --build-arg A=1 -q=1 .",
                "build -t=x:1 --build-arg A=1 -q .",
            ),
            (
                "build -f Dockerfile.x --quiet=false .",
                "build -f Dockerfile.x .",
            ),
            ("ps -n -1 -a=false", "ps -n -1"),
            // ... unless clap reads it as a flag (and reports the value missing).
            ("images --format --all=false -q=1", "images --format -q"),
            (
                "--root /tmp/r images --all=true",
                "--root /tmp/r images --all",
            ),
            ("--root=/tmp/r images -a=false", "--root=/tmp/r images"),
            // The command of run/create/exec is the command's, flags and all.
            (
                "run -d=1 --rm=false img ls --all=false -a=0",
                "run -d img ls --all=false -a=0",
            ),
            (
                "create --init=true img sh -c -x=false",
                "create --init img sh -c -x=false",
            ),
            (
                "container run -i=false img --all=false",
                "container run img --all=false",
            ),
            ("exec -t=false c ls --tty=false", "exec c ls --tty=false"),
            ("images -- --all=false", "images -- --all=false"),
            // Unknown flags are clap's to report; kiln's own tools keep clap's grammar.
            ("images --bogus=false -Z=1", "images --bogus=false -Z=1"),
            ("images -aZ=1", "images -aZ=1"),
            ("parse --x=false -a=false", "parse --x=false -a=false"),
        ] {
            assert_eq!(bool_values_of(given).unwrap(), clap, "{given}");
        }
    }

    #[test]
    fn a_value_go_does_not_read_as_bool_is_refused_as_docker_does() {
        let bad = bool_values_of("images --quiet=maybe").unwrap_err();
        assert_eq!(
            bad.to_string(),
            "invalid argument \"maybe\" for \"-q, --quiet\" flag: possible values: true, false\n\
             See 'kiln images --help'."
        );
        let bad = bool_values_of("image ls -aq=").unwrap_err();
        assert_eq!((bad.value.as_str(), bad.flag.as_str()), ("", "-q, --quiet"));
        assert_eq!(bad.path, "kiln image ls");
        let bad = bool_values_of("history -H=yes x").unwrap_err();
        assert_eq!(
            (bad.value.as_str(), bad.flag.as_str()),
            ("yes", "-H, --human")
        );
        let bad = bool_values_of("run --rm=2 img").unwrap_err();
        assert_eq!((bad.flag.as_str(), bad.path.as_str()), ("--rm", "kiln run"));
    }
}
