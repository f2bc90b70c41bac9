//! One logical line → one typed instruction, with BuildKit's argument rules and messages.

use crate::ast::*;
use crate::error::{Error, ErrorKind, did_you_mean};
use crate::mount::MountSpec;
use crate::scanner::{Logical, Scanner};
use crate::span::Span;
use crate::words::{self, Json, Token};
use FlagKind::{Bool, Str, Strs};

/// The instruction text being parsed, with helpers to make spans and errors.
pub(crate) struct Line<'a> {
    pub logical: &'a Logical,
    pub escape: char,
}

impl Line<'_> {
    fn text(&self) -> &str {
        &self.logical.text
    }
    fn span(&self, start: usize, end: usize) -> Span {
        self.logical.map.span(&self.logical.text, start, end)
    }
    fn err(&self, kind: ErrorKind, start: usize, end: usize, msg: impl Into<String>) -> Error {
        Error::new(kind, self.span(start, end), msg)
    }
}

/// Keyword, its byte range, and where the rest starts.
fn split_keyword(text: &str, at: usize) -> (String, usize, usize, usize) {
    let s = &text[at..];
    let lead = s.len() - s.trim_start().len();
    let start = at + lead;
    let kw_len = text[start..]
        .find(char::is_whitespace)
        .unwrap_or(text.len() - start);
    let end = start + kw_len;
    (text[start..end].to_string(), start, end, end)
}

/// Does the instruction at `at` take heredocs (RUN/COPY/ADD, also as an ONBUILD trigger, shell
/// form only)? Returns the heredoc operators on the line.
pub(crate) fn heredoc_specs(text: &str) -> Vec<words::HeredocSpec> {
    if !text.contains("<<") {
        return Vec::new();
    }
    let (mut kw, _, _, mut rest) = split_keyword(text, 0);
    if kw.eq_ignore_ascii_case("onbuild") {
        let (k2, _, _, r2) = split_keyword(text, rest);
        kw = k2;
        rest = r2;
    }
    if !["run", "copy", "add"].contains(&kw.to_ascii_lowercase().as_str()) {
        return Vec::new();
    }
    let (_, args_at) = words::extract_flags(&text[rest..], rest);
    if matches!(words::parse_json(&text[args_at..]), Json::Strings(_)) {
        return Vec::new();
    }
    words::heredocs_in_line(&text[rest..])
}

/// Parse the next instruction and read its heredoc bodies from the scanner.
pub(crate) fn next_instruction(sc: &mut Scanner<'_>) -> Result<Option<Instruction>, Error> {
    let Some(mut logical) = sc.next_logical()? else {
        return Ok(None);
    };
    let escape = sc.escape;
    let mut heredocs = Vec::new();
    let specs = heredoc_specs(&logical.text);
    if !specs.is_empty() {
        let start = logical.map.span(&logical.text, 0, logical.text.len());
        for spec in specs {
            let (mut content, body_line) = sc.read_heredoc(&spec.name, spec.chomp, start)?;
            if spec.chomp {
                content = content
                    .split_inclusive('\n')
                    .map(|l| l.trim_start_matches('\t'))
                    .collect();
            }
            heredocs.push(Heredoc {
                name: spec.name,
                expand: spec.expand,
                chomp: spec.chomp,
                fd: spec.fd,
                content,
                body_line,
            });
        }
        logical.end_line = sc.line_no();
    }
    let line = Line {
        logical: &logical,
        escape,
    };
    let mut ins = parse_at(&line, 0, heredocs, false)?;
    let mut text = logical.text;
    text.truncate(text.trim_end().len());
    let lead = text.len() - text.trim_start().len();
    text.drain(..lead);
    ins.original = text;
    Ok(Some(ins))
}

#[derive(Clone, Copy, PartialEq)]
enum FlagKind {
    Str,
    Bool,
    Strs,
}

/// Validated flags of one instruction.
struct Flags<'f> {
    list: &'f [Flag],
}

impl Flags<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.as_deref().unwrap_or("true"))
    }
    fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }
    fn boolean(&self, name: &str) -> Option<bool> {
        self.get(name).map(|v| v.eq_ignore_ascii_case("true"))
    }
    fn strings(&self, name: &str) -> Vec<&Flag> {
        self.list.iter().filter(|f| f.name == name).collect()
    }
}

fn to_flags(line: &Line<'_>, raw: &[Token]) -> Vec<Flag> {
    raw.iter()
        .map(|t| {
            let body = t.text.strip_prefix("--").unwrap_or(&t.text);
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            Flag {
                name,
                value,
                span: line.span(t.start, t.end),
            }
        })
        .collect()
}

fn check_flags<'f>(
    list: &'f [Flag],
    allowed: &[(&str, FlagKind)],
    instr: &str,
) -> Result<Flags<'f>, Error> {
    for (i, f) in list.iter().enumerate() {
        let (name, value, span) = (&f.name, &f.value, f.span);
        let Some((_, kind)) = allowed.iter().find(|(n, _)| n == name) else {
            let hint = did_you_mean(name, allowed.iter().map(|(n, _)| *n), true)
                .map(|s| format!("did you mean --{s}?"));
            let hint = hint.or_else(|| {
                (!allowed.is_empty()).then(|| {
                    let names: Vec<String> =
                        allowed.iter().map(|(n, _)| format!("--{n}")).collect();
                    format!("{instr} accepts {}", names.join(", "))
                })
            });
            return Err(
                Error::new(ErrorKind::Flag, span, format!("unknown flag: --{name}"))
                    .with_hint(hint),
            );
        };
        if *kind != FlagKind::Strs && list[..i].iter().any(|f| &f.name == name) {
            return Err(Error::new(
                ErrorKind::Flag,
                span,
                format!("duplicate flag specified: --{name}"),
            ));
        }
        match (kind, value) {
            (FlagKind::Str | FlagKind::Strs, None) => {
                return Err(Error::new(
                    ErrorKind::Flag,
                    span,
                    format!("missing a value on flag: --{name}"),
                )
                .with_hint(Some(format!("write --{name}=VALUE"))));
            }
            (FlagKind::Bool, Some(v))
                if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") =>
            {
                return Err(Error::new(
                    ErrorKind::Flag,
                    span,
                    format!("expecting boolean value for flag --{name}, not: {v}"),
                ));
            }
            _ => {}
        }
    }
    Ok(Flags { list })
}

/// Parse the instruction whose keyword starts at byte `at` of the line.
fn parse_at(
    line: &Line<'_>,
    at: usize,
    heredocs: Vec<Heredoc>,
    in_onbuild: bool,
) -> Result<Instruction, Error> {
    let text = line.text();
    let (keyword, kw_start, kw_end, rest_at) = split_keyword(text, at);
    let kw_span = line.span(kw_start, kw_end);
    let upper = keyword.to_ascii_uppercase();
    let (raw_flags, args_at) = words::extract_flags(&text[rest_at..], rest_at);
    let args_end = text.trim_end().len().max(args_at);
    let p = Parts {
        line,
        text,
        upper,
        kw_span,
        args: &text[args_at..args_end],
        args_at,
        args_end,
        flag_list: to_flags(line, &raw_flags),
        heredocs,
        in_onbuild,
    };
    let command = match p.upper.as_str() {
        "FROM" => from(&p)?,
        "RUN" => run(&p)?,
        "CMD" | "ENTRYPOINT" => cmd_entrypoint(&p)?,
        "SHELL" => shell(&p)?,
        "ENV" | "LABEL" => env_label(&p)?,
        "MAINTAINER" | "WORKDIR" | "USER" | "STOPSIGNAL" => single_value(&p)?,
        "EXPOSE" => expose(&p)?,
        "VOLUME" => volume(&p)?,
        "ARG" => arg(&p)?,
        "COPY" | "ADD" => copy_add(&p)?,
        "ONBUILD" => onbuild(&p)?,
        "HEALTHCHECK" => healthcheck(&p)?,
        _ => unknown(&p)?,
    };
    // The top-level caller moves the assembled line in instead of copying it.
    let original = if at == 0 {
        String::new()
    } else {
        text[kw_start..].trim_end().to_string()
    };
    Ok(Instruction {
        span: kw_span,
        end_line: line.logical.end_line,
        keyword,
        original,
        flags: p.flag_list,
        command,
    })
}

/// One instruction's parts, shared by the parsers of each keyword.
struct Parts<'a> {
    line: &'a Line<'a>,
    text: &'a str,
    /// The keyword, upper-cased.
    upper: String,
    kw_span: Span,
    /// The arguments after the flags, without trailing space, at `args_at..args_end` of `text`.
    args: &'a str,
    args_at: usize,
    args_end: usize,
    flag_list: Vec<Flag>,
    heredocs: Vec<Heredoc>,
    in_onbuild: bool,
}

impl Parts<'_> {
    /// An error at the keyword.
    fn kerr(&self, kind: ErrorKind, msg: String) -> Error {
        Error::new(kind, self.kw_span, msg)
    }

    /// An error at the arguments (at the keyword when there are none).
    fn arg_err(&self, msg: String) -> Error {
        if self.args.trim().is_empty() {
            Error::new(ErrorKind::Arguments, self.kw_span, msg)
        } else {
            self.line
                .err(ErrorKind::Arguments, self.args_at, self.args_end, msg)
        }
    }

    /// The flags, checked against those the instruction takes.
    fn flags(&self, allowed: &[(&str, FlagKind)]) -> Result<Flags<'_>, Error> {
        check_flags(&self.flag_list, allowed, &self.upper)
    }
}

fn from(p: &Parts<'_>) -> Result<Command, Error> {
    let flags = p.flags(&[("platform", Str)])?;
    let w = words::split_whitespace(p.args, p.args_at);
    let name = match w.len() {
        1 => None,
        3 if w[1].text.eq_ignore_ascii_case("as") => {
            let name = w[2].text.to_lowercase();
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(p.line
                        .err(
                            ErrorKind::Stage,
                            w[2].start,
                            w[2].end,
                            format!(
                                "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                                w[2].text
                            ),
                        )
                        .with_hint(Some("stage names match [a-z][a-z0-9-_.]*".into())));
            }
            Some(name)
        }
        _ => {
            return Err(p
                .arg_err("FROM requires either one or three arguments".into())
                .with_hint(Some("write FROM IMAGE or FROM IMAGE AS NAME".into())));
        }
    };
    Ok(Command::From(From {
        image: w[0].text.clone(),
        platform: flags.string("platform"),
        name,
    }))
}

fn run(p: &Parts<'_>) -> Result<Command, Error> {
    let flags = p.flags(&[
        ("mount", Strs),
        ("network", Str),
        ("security", Str),
        ("device", Strs),
    ])?;
    let mut mounts = Vec::new();
    for f in flags.strings("mount") {
        let raw = f.value.clone().unwrap_or_default();
        let spec =
            MountSpec::parse(&raw, f.span).map_err(|m| Error::new(ErrorKind::Flag, f.span, m))?;
        if let (Some(t), true) = (spec.resolved.as_ref().and_then(|m| m.target.clone()), true)
            && mounts.iter().any(|m: &MountSpec| {
                m.resolved.as_ref().and_then(|r| r.target.as_ref()) == Some(&t)
            })
        {
            return Err(Error::new(
                ErrorKind::Flag,
                f.span,
                format!("mount destination {t} is used more than once"),
            ));
        }
        mounts.push(spec);
    }
    let network = match flags.get("network") {
        None => None,
        Some(v) => Some(match v {
            "default" => NetworkMode::Default,
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            _ => {
                let f = &flags.strings("network")[0];
                return Err(Error::new(
                    ErrorKind::Flag,
                    f.span,
                    format!("unsupported network mode {v:?}"),
                )
                .with_hint(Some("use --network=default, none or host".into())));
            }
        }),
    };
    let security = match flags.get("security") {
        None => None,
        Some(v) => Some(match v {
            "sandbox" => SecurityMode::Sandbox,
            "insecure" => SecurityMode::Insecure,
            _ => {
                let f = &flags.strings("security")[0];
                return Err(Error::new(
                    ErrorKind::Flag,
                    f.span,
                    format!("unsupported security mode {v:?}"),
                )
                .with_hint(Some("use --security=sandbox or insecure".into())));
            }
        }),
    };
    let cmd = maybe_json(p.line, p.args, p.args_at)?;
    // BuildKit runs a bare `RUN` as `/bin/sh -c ""`; only an empty exec form has
    // nothing to run.
    if matches!(&cmd, CommandLine::Exec(v) if v.is_empty()) && p.heredocs.is_empty() {
        return Err(p.kerr(
            ErrorKind::Arguments,
            "RUN requires at least one argument".into(),
        ));
    }
    Ok(Command::Run(Run {
        cmd,
        mounts,
        network,
        security,
        heredocs: p.heredocs.clone(),
    }))
}

fn cmd_entrypoint(p: &Parts<'_>) -> Result<Command, Error> {
    p.flags(&[])?;
    let cmd = maybe_json(p.line, p.args, p.args_at)?;
    Ok(if p.upper == "CMD" {
        Command::Cmd(CmdLine { cmd })
    } else {
        Command::Entrypoint(CmdLine { cmd })
    })
}

fn shell(p: &Parts<'_>) -> Result<Command, Error> {
    p.flags(&[])?;
    Ok(match maybe_json(p.line, p.args, p.args_at)? {
        CommandLine::Exec(v) if !v.is_empty() => Command::Shell(Shell { shell: v }),
        CommandLine::Exec(_) => {
            return Err(p.arg_err("SHELL requires at least one argument".into()));
        }
        CommandLine::Shell(s) if s.trim().is_empty() => {
            return Err(p.arg_err("SHELL requires at least one argument".into()));
        }
        CommandLine::Shell(_) => {
            return Err(p
                .arg_err("SHELL requires the arguments to be in JSON form".into())
                .with_hint(Some("write SHELL [\"/bin/sh\", \"-c\"]".into())));
        }
    })
}

fn env_label(p: &Parts<'_>) -> Result<Command, Error> {
    p.flags(&[])?;
    let pairs = name_values(p.line, p.args, p.args_at, &p.upper, p.kw_span)?;
    Ok(if p.upper == "ENV" {
        Command::Env(KeyValues { pairs })
    } else {
        Command::Label(KeyValues { pairs })
    })
}

fn single_value(p: &Parts<'_>) -> Result<Command, Error> {
    let upper = &p.upper;
    if p.upper != "STOPSIGNAL" {
        p.flags(&[])?;
    }
    let value = p.args.trim().to_string();
    if value.is_empty() {
        return Err(p.kerr(
            ErrorKind::Arguments,
            format!("{upper} requires exactly one argument"),
        ));
    }
    Ok(match p.upper.as_str() {
        "MAINTAINER" => Command::Maintainer(Maintainer { name: value }),
        "WORKDIR" => Command::Workdir(Workdir { path: value }),
        "USER" => Command::User(User { user: value }),
        _ => Command::Stopsignal(StopSignal { signal: value }),
    })
}

fn expose(p: &Parts<'_>) -> Result<Command, Error> {
    p.flags(&[])?;
    let ports: Vec<String> = words::split_whitespace(p.args, p.args_at)
        .into_iter()
        .map(|t| t.text)
        .collect();
    if ports.is_empty() {
        return Err(p.kerr(
            ErrorKind::Arguments,
            "EXPOSE requires at least one argument".into(),
        ));
    }
    Ok(Command::Expose(Expose { ports }))
}

fn volume(p: &Parts<'_>) -> Result<Command, Error> {
    p.flags(&[])?;
    let (paths, _) = json_or_words(p.line, p.args, p.args_at)?;
    if paths.is_empty() {
        return Err(p.kerr(
            ErrorKind::Arguments,
            "VOLUME requires at least one argument".into(),
        ));
    }
    let mut out = Vec::new();
    for path in paths {
        let path = path.trim().to_string();
        if path.is_empty() {
            return Err(p.arg_err("VOLUME specified can not be an empty string".into()));
        }
        out.push(path);
    }
    Ok(Command::Volume(Volume { paths: out }))
}

fn arg(p: &Parts<'_>) -> Result<Command, Error> {
    p.flags(&[])?;
    let w = words::parse_words(p.args, p.args_at, p.line.escape);
    if w.is_empty() {
        return Err(p.kerr(
            ErrorKind::Arguments,
            "ARG requires at least one argument".into(),
        ));
    }
    let mut decls = Vec::new();
    for t in w {
        let decl = match t.text.split_once('=') {
            Some(("", _)) => {
                return Err(p.line.err(
                    ErrorKind::Arguments,
                    t.start,
                    t.end,
                    "ARG names can not be blank",
                ));
            }
            Some((k, v)) => ArgDecl {
                name: k.to_string(),
                default: Some(v.to_string()),
            },
            None => ArgDecl {
                name: t.text,
                default: None,
            },
        };
        decls.push(decl);
    }
    Ok(Command::Arg(Arg { args: decls }))
}

fn copy_add(p: &Parts<'_>) -> Result<Command, Error> {
    let upper = &p.upper;
    let is_copy = p.upper == "COPY";
    let flags = if is_copy {
        p.flags(&[
            ("from", Str),
            ("chown", Str),
            ("chmod", Str),
            ("link", Bool),
            ("parents", Bool),
            ("exclude", Strs),
        ])?
    } else {
        p.flags(&[
            ("chown", Str),
            ("chmod", Str),
            ("link", Bool),
            ("keep-git-dir", Bool),
            ("checksum", Str),
            ("unpack", Bool),
            ("exclude", Strs),
        ])?
    };
    let (mut all, json) = json_or_words(p.line, p.args, p.args_at)?;
    if all.len() < 2 {
        return Err(p.kerr(
                ErrorKind::Arguments,
                format!("{upper} requires at least two arguments, but only one was provided. Destination could not be determined"),
            )
            .with_hint(Some(format!("write {upper} SOURCE... DEST"))));
    }
    let dest = all.pop().unwrap_or_default();
    if !json && words::parse_heredoc_word(&dest).is_some() {
        return Err(p.arg_err(format!("{upper} cannot accept a heredoc as a destination")));
    }
    let mut sources = Vec::new();
    let mut inline = Vec::new();
    for s in all {
        match (!json).then(|| words::parse_heredoc_word(&s)).flatten() {
            Some(spec) => {
                if let Some(h) = p.heredocs.iter().find(|h| h.name == spec.name) {
                    inline.push(h.clone());
                }
            }
            None => sources.push(s),
        }
    }
    if let Some(from) = flags.get("from")
        && (from.contains('$') || from.contains(['"', '\'', '\\']))
    {
        let f = flags.strings("from")[0];
        return Err(Error::new(
                    ErrorKind::Flag,
                    f.span,
                    "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
                )
                .with_hint(Some("ARG IMG=...; FROM ${IMG} AS src; then COPY --from=src".into())));
    }
    let exclude: Vec<String> = flags
        .strings("exclude")
        .iter()
        .filter_map(|f| f.value.clone())
        .collect();
    Ok(if is_copy {
        Command::Copy(Copy {
            sources,
            inline,
            dest,
            from: flags.string("from"),
            chown: flags.string("chown"),
            chmod: flags.string("chmod"),
            link: flags.boolean("link").unwrap_or(false),
            parents: flags.boolean("parents").unwrap_or(false),
            exclude,
            json,
        })
    } else {
        Command::Add(Add {
            sources,
            inline,
            dest,
            chown: flags.string("chown"),
            chmod: flags.string("chmod"),
            link: flags.boolean("link").unwrap_or(false),
            keep_git_dir: flags.boolean("keep-git-dir"),
            checksum: flags.string("checksum"),
            unpack: flags.boolean("unpack"),
            exclude,
            json,
        })
    })
}

fn onbuild(p: &Parts<'_>) -> Result<Command, Error> {
    p.flags(&[])?;
    if p.args.trim().is_empty() {
        return Err(p.kerr(
            ErrorKind::Arguments,
            "ONBUILD requires at least one argument".into(),
        ));
    }
    if p.in_onbuild {
        return Err(p.kerr(
            ErrorKind::Arguments,
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
        ));
    }
    let (trigger_kw, ts, te, _) = split_keyword(p.text, p.args_at);
    match trigger_kw.to_ascii_uppercase().as_str() {
        "ONBUILD" => {
            return Err(p.line.err(
                ErrorKind::Arguments,
                ts,
                te,
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            ));
        }
        t @ ("MAINTAINER" | "FROM") => {
            return Err(p.line.err(
                ErrorKind::Arguments,
                ts,
                te,
                format!("{t} isn't allowed as an ONBUILD trigger"),
            ));
        }
        _ => {}
    }
    let trigger = parse_at(p.line, p.args_at, p.heredocs.clone(), true)?;
    let mut expression = p.text[p.args_at..].trim().to_string();
    for h in &p.heredocs {
        expression.push('\n');
        expression.push_str(&h.content);
        expression.push_str(&h.name);
    }
    Ok(Command::Onbuild(Onbuild {
        expression,
        trigger: Box::new(trigger),
    }))
}

fn healthcheck(p: &Parts<'_>) -> Result<Command, Error> {
    let first_end = p.args.find(char::is_whitespace).unwrap_or(p.args.len());
    let typ = p.args[..first_end].to_ascii_uppercase();
    let rest_at = p.args_at + first_end;
    let rest = &p.text[rest_at..p.args_end];
    Ok(match typ.as_str() {
        "" => {
            return Err(p.kerr(
                ErrorKind::Arguments,
                "HEALTHCHECK requires at least one argument".into(),
            ));
        }
        "NONE" => {
            if !rest.trim().is_empty() {
                return Err(p.arg_err("HEALTHCHECK NONE takes no arguments".into()));
            }
            Command::Healthcheck(Healthcheck::None)
        }
        "CMD" => healthcheck_cmd(p, rest, rest_at)?,
        other => {
            return Err(p
                .line
                .err(
                    ErrorKind::Arguments,
                    p.args_at,
                    p.args_at + first_end,
                    format!("Unknown type {other:?} in HEALTHCHECK (try CMD)"),
                )
                .with_hint(Some("use HEALTHCHECK CMD ... or HEALTHCHECK NONE".into())));
        }
    })
}

/// `HEALTHCHECK [flags] CMD command`: `rest` (at `rest_at`) is what follows `CMD`.
fn healthcheck_cmd(p: &Parts<'_>, rest: &str, rest_at: usize) -> Result<Command, Error> {
    let flags = p.flags(&[
        ("interval", Str),
        ("timeout", Str),
        ("start-period", Str),
        ("start-interval", Str),
        ("retries", Str),
    ])?;
    let cmd = maybe_json(p.line, rest, rest_at)?;
    if cmd.is_empty() {
        return Err(p.arg_err("Missing command after HEALTHCHECK CMD".into()));
    }
    let dur = |name: &str| -> Result<Option<u64>, Error> {
        let Some(v) = flags.get(name) else {
            return Ok(None);
        };
        let f = flags.strings(name)[0];
        let d = parse_go_duration(v).ok_or_else(|| {
            Error::new(
                ErrorKind::Flag,
                f.span,
                format!("time: invalid duration {v:?}"),
            )
            .with_hint(Some("durations look like 30s, 1m30s, 500ms".into()))
        })?;
        if d < 0 {
            return Err(Error::new(
                ErrorKind::Flag,
                f.span,
                format!("Interval {name:?} cannot be negative"),
            ));
        }
        if d > 0 && d < 1_000_000 {
            return Err(Error::new(
                ErrorKind::Flag,
                f.span,
                format!("Interval {name:?} cannot be less than 1ms"),
            ));
        }
        Ok(Some(d as u64))
    };
    let retries = match flags.get("retries") {
        None => None,
        Some(v) => {
            let f = flags.strings("retries")[0];
            let n: i64 = v.parse().map_err(|_| {
                Error::new(
                    ErrorKind::Flag,
                    f.span,
                    format!("strconv.ParseInt: parsing {v:?}: invalid syntax"),
                )
            })?;
            if n < 0 {
                return Err(Error::new(
                    ErrorKind::Flag,
                    f.span,
                    format!("--retries cannot be negative ({n})"),
                ));
            }
            Some(u32::try_from(n).map_err(|_| {
                Error::new(
                    ErrorKind::Flag,
                    f.span,
                    format!("--retries value out of range ({n})"),
                )
            })?)
        }
    };
    Ok(Command::Healthcheck(Healthcheck::Cmd(HealthcheckCmd {
        cmd,
        interval: dur("interval")?,
        timeout: dur("timeout")?,
        start_period: dur("start-period")?,
        start_interval: dur("start-interval")?,
        retries,
    })))
}

fn unknown(p: &Parts<'_>) -> Result<Command, Error> {
    let hint = did_you_mean(&p.upper, INSTRUCTIONS, false).map(|s| format!("did you mean {s}?"));
    Err(Error::new(
        ErrorKind::UnknownInstruction,
        p.kw_span,
        format!("unknown instruction: {}", p.upper),
    )
    .with_hint(hint.or_else(|| Some(format!("instructions are {}", INSTRUCTIONS.join(" "))))))
}

/// Exec form if the arguments are a JSON array of strings, else shell form.
fn maybe_json(line: &Line<'_>, args: &str, at: usize) -> Result<CommandLine, Error> {
    match words::parse_json(args) {
        Json::Strings(v) => Ok(CommandLine::Exec(v)),
        Json::Shell => Ok(CommandLine::Shell(args.trim().to_string())),
        Json::NonString => Err(line.err(
            ErrorKind::Json,
            at,
            at + args.len(),
            "when using JSON array syntax, arrays must be comprised of strings only",
        )),
    }
}

/// JSON array, or whitespace-separated words (ADD/COPY/VOLUME). Returns (words, was_json).
fn json_or_words(line: &Line<'_>, args: &str, at: usize) -> Result<(Vec<String>, bool), Error> {
    match words::parse_json(args) {
        Json::Strings(v) => Ok((v, true)),
        Json::Shell => Ok((
            words::split_whitespace(args, at)
                .into_iter()
                .map(|t| t.text)
                .collect(),
            false,
        )),
        Json::NonString => Err(line.err(
            ErrorKind::Json,
            at,
            at + args.len(),
            "when using JSON array syntax, arrays must be comprised of strings only",
        )),
    }
}

/// ENV/LABEL: `k=v ...`, or the legacy `k v` (the whole rest is the value).
fn name_values(
    line: &Line<'_>,
    args: &str,
    at: usize,
    instr: &str,
    kw_span: Span,
) -> Result<Vec<KeyValue>, Error> {
    let w = words::parse_words(args, at, line.escape);
    if w.is_empty() {
        return Err(Error::new(
            ErrorKind::Arguments,
            kw_span,
            format!("{instr} requires at least one argument"),
        ));
    }
    if !w[0].text.contains('=') {
        let trimmed = args.trim();
        let Some(split) = trimmed.find(char::is_whitespace) else {
            return Err(line
                .err(
                    ErrorKind::Arguments,
                    w[0].start,
                    w[0].end,
                    format!("{instr} must have two arguments"),
                )
                .with_hint(Some(format!("write {instr} {}=VALUE", w[0].text))));
        };
        let (k, v) = trimmed.split_at(split);
        return Ok(vec![KeyValue {
            key: k.to_string(),
            value: v.trim_start().to_string(),
            legacy: true,
        }]);
    }
    let mut out = Vec::new();
    for t in w {
        let Some((k, v)) = t.text.split_once('=') else {
            return Err(line.err(
                ErrorKind::Arguments,
                t.start,
                t.end,
                format!(
                    "Syntax error - can't find = in {:?}. Must be of the form: name=value",
                    t.text
                ),
            ));
        };
        if k.is_empty() {
            return Err(line.err(
                ErrorKind::Arguments,
                t.start,
                t.end,
                format!("{instr} names can not be blank"),
            ));
        }
        out.push(KeyValue {
            key: k.to_string(),
            value: v.to_string(),
            legacy: false,
        });
    }
    Ok(out)
}

/// Go's `time.ParseDuration`, in nanoseconds (HEALTHCHECK flags; the CLI's `until=` filters).
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return None;
        }
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += num * mult;
    }
    if !total.is_finite() || total > i64::MAX as f64 {
        return None;
    }
    let v = total as i64;
    Some(if neg { -v } else { v })
}
