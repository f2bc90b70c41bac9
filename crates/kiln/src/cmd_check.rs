//! `kiln check [PATH]`: BuildKit's build checks and kiln's own rules on a Dockerfile and its
//! context, as text (file:line:col, the line, a caret, a hint), JSON or SARIF; `--fix`
//! rewrites the mechanical findings. Exit 1 when a finding is at error level (`# check=
//! error=true`) or the Dockerfile does not parse, 2 on bad usage, else 0.
//!
//! Also what `kiln build` prints: its warnings after a build, and `--check`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use kiln_dockerfile::Dockerfile;
use kiln_dockerfile::check::{self, CheckConfig, ContextInfo, Input, Severity, Warning};
use kiln_dockerfile::dockerignore::PatternSet;
use kiln_dockerfile::error::SourceLines;
use serde::Serialize;

use crate::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a Dockerfile: BuildKit's build checks and kiln's multi-stage practices.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Build context directories (their .dockerignore and contents feed some rules), or
    /// Dockerfiles (checked in their own directory's context); several are checked in one run.
    #[arg(value_name = "PATH", default_value = ".")]
    paths: Vec<PathBuf>,
    /// Dockerfile path (default: PATH/Dockerfile, or PATH/dockerfile).
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    file: Option<PathBuf>,
    /// Build-time variable (`K=V`); `BUILDKIT_DOCKERFILE_CHECK` sets the check options
    /// (`skip=A,B;error=true;experimental=all`) in place of the `# check=` directive. Other
    /// build args do not change any finding (like BuildKit, the rules use ARG defaults).
    #[arg(long = "build-arg", value_name = "K=V")]
    build_args: Vec<String>,
    /// The stage that would be built (default: the last): the final-stage rules look at it.
    #[arg(long)]
    target: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Rewrite the mechanical findings in place (casing, legacy ENV/LABEL, simple CMD and
    /// ENTRYPOINT to exec form, MAINTAINER), then report what is left.
    #[arg(long)]
    fix: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Text,
    Json,
    Sarif,
}

pub fn run(cmd: Command, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Check(a) => run_check(a),
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// CONTEXT/Dockerfile, else CONTEXT/dockerfile.
fn dockerfile_path(context: &Path, file: Option<&Path>) -> PathBuf {
    if let Some(f) = file {
        return f.to_path_buf();
    }
    let upper = context.join("Dockerfile");
    let lower = context.join("dockerfile");
    if !upper.exists() && lower.exists() {
        lower
    } else {
        upper
    }
}

/// `KEY=VALUE` build args; `KEY` alone takes the environment's value (docker's rule).
fn build_arg_map(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut m = BTreeMap::new();
    for a in args {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                m.insert(k.to_string(), v.to_string());
            }
            Some(_) => return Err(format!("invalid --build-arg {a:?}: expected KEY=VALUE")),
            None => {
                if let Ok(v) = std::env::var(a) {
                    m.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(m)
}

/// Directories listed but not entered: what they hold is theirs, not the project's.
const OPAQUE_DIRS: [&str; 9] = [
    "node_modules",
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    "target",
    "dist",
    "build",
    ".next",
];

/// Most context entries listed (a context of millions of files must not make a check slow).
const MAX_ENTRIES: usize = 20_000;

/// What the context-aware rules need: the .dockerignore in effect (`Dockerfile.dockerignore`
/// beside the Dockerfile first, as BuildKit does) and the context's paths, three levels deep.
pub(crate) fn context_info(context: &Path, dockerfile: &Path) -> Result<ContextInfo, String> {
    let mut info = context_ignore(context, dockerfile)?;
    if !context.is_dir() {
        return Ok(info);
    }
    let mut stack = vec![(context.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<(String, bool)> = rd
            .filter_map(Result::ok)
            .map(|e| {
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                (e.file_name().to_string_lossy().into_owned(), is_dir)
            })
            .collect();
        names.sort();
        for (n, is_dir) in names {
            if info.entries.len() >= MAX_ENTRIES {
                return Ok(info);
            }
            let rel = format!("{prefix}{n}");
            if is_dir {
                info.entries.push(format!("{rel}/"));
                if depth < 2 && !OPAQUE_DIRS.contains(&n.as_str()) {
                    stack.push((dir.join(&n), format!("{rel}/"), depth + 1));
                }
            } else {
                info.entries.push(rel);
            }
        }
    }
    Ok(info)
}

/// The .dockerignore part of [`context_info`], without listing the context: all BuildKit's
/// rules need (a build runs only those before its steps; listing up to 20,000 entries for
/// kiln's own rules cost a large context's no-op 9% of its CPU).
pub(crate) fn context_ignore(context: &Path, dockerfile: &Path) -> Result<ContextInfo, String> {
    let mut info = ContextInfo::default();
    if !context.is_dir() {
        return Ok(info);
    }
    let name = dockerfile
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let beside = dockerfile.with_file_name(format!("{name}.dockerignore"));
    let ignore_file = [beside, context.join(".dockerignore")]
        .into_iter()
        .find(|p| p.is_file());
    if let Some(p) = ignore_file {
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        info.dockerignore = Some(
            PatternSet::parse_dockerignore(&text).map_err(|e| format!("{}: {e}", p.display()))?,
        );
    }
    Ok(info)
}

/// The findings for a build: the check options (build arg over directive), every rule.
pub(crate) fn findings(
    df: &Dockerfile,
    source: &str,
    ctx: Option<&ContextInfo>,
    target: Option<&str>,
    build_args: &BTreeMap<String, String>,
) -> Result<(Vec<Warning>, CheckConfig), String> {
    let cfg = CheckConfig::for_dockerfile(
        df,
        build_args
            .get("BUILDKIT_DOCKERFILE_CHECK")
            .map(String::as_str),
    )
    .map_err(|e| format!("failed to parse check options: {e}"))?;
    let input = Input {
        df,
        source,
        context: ctx,
        target,
    };
    Ok((check::run(&input, &cfg), cfg))
}

/// ` 1 warning found (use docker --debug to expand):` and ` - Rule: message (line N)`
/// lines, as BuildKit prints them after a build.
pub(crate) fn build_summary(warnings: &[Warning]) -> String {
    let mut s = format!(
        " {} warning{} found (use docker --debug to expand):\n",
        warnings.len(),
        if warnings.len() == 1 { "" } else { "s" }
    );
    for w in warnings {
        s.push_str(&format!(" - {}\n", w.short()));
    }
    s
}

/// `docker build --check`'s report: a count, then per finding the rule, its URL, the
/// message and the source around the line.
pub(crate) fn build_check_report(warnings: &[Warning], file: &str, source: &str) -> String {
    let mut s = String::new();
    if warnings.is_empty() {
        s.push_str("Check complete, no warnings found.\n");
        return s;
    }
    if warnings.len() == 1 {
        s.push_str("Check complete, 1 warning has been found!\n");
    } else {
        s.push_str(&format!(
            "Check complete, {} warnings have been found!\n",
            warnings.len()
        ));
    }
    let lines = SourceLines::new(source);
    for w in warnings {
        s.push_str(&format!(
            "\n{}: {} - {}\n{}\n",
            w.severity.as_str().to_uppercase(),
            w.rule,
            w.url(),
            w.message
        ));
        if w.span.line == 0 {
            continue;
        }
        s.push_str(&format!("{file}:{}\n--------------------\n", w.span.line));
        let from = w.span.line.saturating_sub(2).max(1);
        for n in from..=w.span.line + 2 {
            let Some(text) = lines.get(n) else {
                break;
            };
            let mark = if n == w.span.line { ">>>" } else { "   " };
            s.push_str(&format!(" {n:>3} | {mark} {text}\n"));
        }
        s.push_str("--------------------\n");
    }
    s
}

/// What `kiln build` asks of the checks.
pub(crate) struct BuildLint<'a> {
    /// `--check`: report and stop.
    pub check_only: bool,
    /// `--build-arg` values as given (`BUILDKIT_DOCKERFILE_CHECK` is read from them).
    pub build_args: &'a [String],
    pub target: Option<&'a str>,
}

/// What the checks decided before a build.
pub(crate) enum Lint {
    /// Stop here with this exit code (`--check`, or `error=true` with findings).
    Done(ExitCode),
    /// Build, then print these.
    Warnings(Vec<kiln_dockerfile::check::Warning>),
}

/// Run the build checks on the Dockerfile (under `# check=` or `BUILDKIT_DOCKERFILE_CHECK`).
/// `--check` prints docker's `--check` report of BuildKit's and kiln's rules and stops (exit
/// 1 when anything is found, as buildx does); otherwise only BuildKit's rules count, and
/// `error=true` with findings fails before any step runs (`lint violation found for rules: …`); otherwise the warnings are printed after
/// the build, except in quiet and rawjson modes. A Dockerfile that does not parse is left to the build,
/// which reports it.
pub(crate) fn lint_before_build(
    req: &BuildLint<'_>,
    context: &Path,
    dockerfile: &Path,
    text: &str,
    mode: crate::progress::ProgressMode,
) -> Lint {
    let display = dockerfile
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Dockerfile".into());
    let Ok(df) = kiln_dockerfile::parse_named(text, &display) else {
        return Lint::Warnings(Vec::new());
    };
    let mut build_args = std::collections::BTreeMap::new();
    for a in req.build_args {
        if let Some((k, v)) = a.split_once('=') {
            build_args.insert(k.to_string(), v.to_string());
        }
    }
    let ctx = if req.check_only {
        context_info(context, dockerfile)
    } else {
        context_ignore(context, dockerfile)
    }
    .ok();
    let found = findings(&df, text, ctx.as_ref(), req.target, &build_args);
    let (warnings, cfg) = match found {
        Ok(x) => x,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return Lint::Done(ExitCode::from(1));
        }
    };
    if req.check_only {
        print!("{}", build_check_report(&warnings, &display, text));
        return Lint::Done(if warnings.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    // A build prints and enforces BuildKit's rules, as BuildKit does; kiln's own rules are for
    // `kiln check` and `build --check`, where they were asked for.
    let warnings: Vec<Warning> = warnings
        .into_iter()
        .filter(|w| check::rule(w.rule).is_none_or(|r| r.origin == check::Origin::Buildkit))
        .collect();
    if cfg.error && !warnings.is_empty() {
        eprint!("{}", build_summary(&warnings));
        let mut rules: Vec<&str> = warnings.iter().map(|w| w.rule).collect();
        rules.sort();
        rules.dedup();
        eprintln!(
            "ERROR: lint violation found for rules: {}",
            rules.join(", ")
        );
        return Lint::Done(ExitCode::from(1));
    }
    // Quiet prints only the ID; rawjson's stream is for programs, not a text summary.
    if matches!(
        mode,
        crate::progress::ProgressMode::Quiet | crate::progress::ProgressMode::RawJson
    ) {
        return Lint::Warnings(Vec::new());
    }
    Lint::Warnings(warnings)
}

#[derive(Serialize)]
struct JsonReport<'a> {
    files: Vec<&'a str>,
    findings: Vec<JsonFinding<'a>>,
    errors: usize,
    warnings: usize,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    rule: &'a str,
    severity: Severity,
    message: &'a str,
    url: String,
    hint: &'a str,
    location: JsonLocation<'a>,
}

#[derive(Serialize)]
struct JsonLocation<'a> {
    file: &'a str,
    line: usize,
    column: usize,
    length: usize,
}

/// One Dockerfile checked: its name as shown, its text, its findings.
struct Checked {
    display: String,
    source: String,
    warnings: Vec<Warning>,
}

/// Check one Dockerfile (fixing it first with `--fix`); `Err` is the exit code of a failure
/// already reported.
fn check_one(
    a: &CheckArgs,
    path_arg: &Path,
    build_args: &BTreeMap<String, String>,
) -> Result<Checked, ExitCode> {
    // A file is a Dockerfile in its own directory's context; a directory is a context.
    let (context, path) = if path_arg.is_file() && a.file.is_none() {
        let dir = path_arg
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (dir.to_path_buf(), path_arg.to_path_buf())
    } else {
        (
            path_arg.to_path_buf(),
            dockerfile_path(path_arg, a.file.as_deref()),
        )
    };
    let display = path
        .strip_prefix("./")
        .unwrap_or(&path)
        .display()
        .to_string();
    let limit = kiln_dockerfile::limits::MAX_DOCKERFILE_BYTES;
    let mut source = match kiln_build::context::read_capped(&path, limit, "the Dockerfile") {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            return Err(usage_error(&format!(
                "cannot read Dockerfile {}: {e} (use -f PATH or give the build context directory)",
                path.display()
            )));
        }
    };
    let parse = |src: &str| {
        kiln_dockerfile::parse_named(src, &display).map_err(|e| {
            eprint!("{}", e.render(src));
            ExitCode::from(1)
        })
    };
    let mut df = parse(&source)?;
    if a.fix {
        let fixed = check::fix::fix(&source, &df);
        if fixed.text != source {
            if let Err(e) = std::fs::write(&path, &fixed.text) {
                eprintln!("error: writing {}: {e}", path.display());
                return Err(ExitCode::from(1));
            }
            eprintln!(
                "fixed {} finding{} in {display}",
                fixed.fixes.len(),
                if fixed.fixes.len() == 1 { "" } else { "s" }
            );
            source = fixed.text;
            df = parse(&source)?;
        }
    }
    let ctx = context_info(&context, &path).map_err(|e| usage_error(&e))?;
    let (warnings, _) = findings(&df, &source, Some(&ctx), a.target.as_deref(), build_args)
        .map_err(|e| {
            eprintln!("error: {display}: {e}");
            ExitCode::from(1)
        })?;
    Ok(Checked {
        display,
        source,
        warnings,
    })
}

fn run_check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    if a.file.is_some() && a.paths.len() > 1 {
        return Ok(usage_error(
            "-f names one Dockerfile: give one PATH with it",
        ));
    }
    let build_args = match build_arg_map(&a.build_args) {
        Ok(m) => m,
        Err(e) => return Ok(usage_error(&e)),
    };
    let mut checked = Vec::new();
    let mut failure: Option<ExitCode> = None;
    for p in &a.paths {
        match check_one(&a, p, &build_args) {
            Ok(c) => checked.push(c),
            // Keep going: every Dockerfile gets its report; the worst exit code wins.
            Err(code) => {
                if failure.is_none() || code == ExitCode::from(2) {
                    failure = Some(code);
                }
            }
        }
    }
    let all = || {
        checked
            .iter()
            .flat_map(|c| c.warnings.iter().map(move |w| (c, w)))
    };
    let errors = all().filter(|(_, w)| w.severity == Severity::Error).count();
    let total = all().count();
    let out = match a.format {
        Format::Text => {
            let mut s = String::new();
            for c in &checked {
                let lines = SourceLines::new(&c.source);
                for w in &c.warnings {
                    s.push_str(&w.render_in(&c.display, &lines));
                    s.push('\n');
                }
            }
            s
        }
        Format::Json => {
            let doc = JsonReport {
                files: checked.iter().map(|c| c.display.as_str()).collect(),
                findings: all()
                    .map(|(c, w)| JsonFinding {
                        rule: w.rule,
                        severity: w.severity,
                        message: &w.message,
                        url: w.url(),
                        hint: w.hint(),
                        location: JsonLocation {
                            file: &c.display,
                            line: w.span.line,
                            column: w.span.col,
                            length: w.span.len,
                        },
                    })
                    .collect(),
                errors,
                warnings: total - errors,
            };
            serde_json::to_string_pretty(&doc)? + "\n"
        }
        Format::Sarif => {
            let files: Vec<(&str, &[Warning])> = checked
                .iter()
                .map(|c| (c.display.as_str(), c.warnings.as_slice()))
                .collect();
            serde_json::to_string_pretty(&check::sarif::render(&files))? + "\n"
        }
    };
    {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
    }
    if a.format == Format::Text {
        let files = checked.len();
        let what = if files == 1 {
            checked[0].display.clone()
        } else {
            format!("{files} Dockerfiles")
        };
        if files > 0 {
            eprintln!(
                "{what}: {total} finding{} ({errors} at error level)",
                if total == 1 { "" } else { "s" }
            );
        }
    }
    if let Some(code) = failure {
        return Ok(code);
    }
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
