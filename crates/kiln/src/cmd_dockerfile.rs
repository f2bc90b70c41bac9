//! `kiln parse` and `kiln graph`: the Dockerfile front end on the command line. A bad
//! Dockerfile prints a rendered error (file:line:col, source line, caret, hint) and exits 1;
//! bad usage (including a missing Dockerfile) exits 2.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use kiln_dockerfile::{
    Analysis, Dockerfile, EvalOptions, Platform, StageGraph, analyze, check, parse_named,
    render_dot, render_json, render_mermaid,
};
use serde::Serialize;

use crate::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse a Dockerfile: instructions with locations, flags and expanded values.
    Parse(ParseArgs),
    /// Draw the stage dependency graph (which stages a target needs, what can run in parallel).
    Graph(GraphArgs),
}

#[derive(Args, Debug)]
pub struct Input {
    /// Dockerfile path (default: CONTEXT/Dockerfile, or CONTEXT/dockerfile).
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    file: Option<PathBuf>,
    /// Build-time variable (`K=V`, or `K` to take the value from the environment).
    #[arg(long = "build-arg", value_name = "K=V")]
    build_args: Vec<String>,
    /// Target platform for TARGET* ARGs (default linux/amd64).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Build context directory.
    #[arg(default_value = ".")]
    context: PathBuf,
}

#[derive(Args, Debug)]
pub struct ParseArgs {
    #[command(flatten)]
    input: Input,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ParseFormat::Text)]
    format: ParseFormat,
}

#[derive(Args, Debug)]
pub struct GraphArgs {
    #[command(flatten)]
    input: Input,
    /// Stage to build (default: the last one); stages it does not need are shown as skipped.
    #[arg(long)]
    target: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    format: GraphFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ParseFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum GraphFormat {
    Mermaid,
    Dot,
    Json,
}

pub fn run(cmd: Command, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Parse(a) => run_parse(a),
        Command::Graph(a) => run_graph(a),
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// The Dockerfile path: `-f` as given, else CONTEXT/Dockerfile, else CONTEXT/dockerfile.
fn dockerfile_path(input: &Input) -> PathBuf {
    if let Some(f) = &input.file {
        return f.clone();
    }
    let upper = input.context.join("Dockerfile");
    let lower = input.context.join("dockerfile");
    if !upper.exists() && lower.exists() {
        lower
    } else {
        upper
    }
}

struct Loaded {
    path: PathBuf,
    display: String,
    source: String,
    opts: EvalOptions,
}

fn load(input: &Input) -> Result<Loaded, ExitCode> {
    let path = dockerfile_path(input);
    let limit = kiln_dockerfile::limits::MAX_DOCKERFILE_BYTES;
    let source = match kiln_build::context::read_capped(&path, limit, "the Dockerfile") {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
            return Err(usage_error(&format!("{}: {e}", path.display())));
        }
        Err(e) => {
            return Err(usage_error(&format!(
                "cannot read Dockerfile {}: {e} (use -f PATH or give the build context directory)",
                path.display()
            )));
        }
    };
    let mut build_args = BTreeMap::new();
    for a in &input.build_args {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                build_args.insert(k.to_string(), v.to_string());
            }
            Some(_) => {
                return Err(usage_error(&format!(
                    "invalid --build-arg {a:?}: expected KEY=VALUE"
                )));
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    build_args.insert(a.clone(), v);
                }
            }
        }
    }
    let target_platform = match &input.platform {
        None => Platform::default(),
        Some(p) => Platform::parse(p).map_err(|m| usage_error(&m))?,
    };
    let display = display_path(&path);
    Ok(Loaded {
        path,
        display,
        source,
        opts: EvalOptions {
            build_args,
            target_platform,
            build_platform: Platform::default(),
        },
    })
}

fn display_path(p: &Path) -> String {
    p.strip_prefix("./").unwrap_or(p).display().to_string()
}

/// Parse and analyze; on failure print the rendered error and give exit status 1.
fn analyze_or_report(l: &Loaded, target: Option<&str>) -> Result<(Dockerfile, Analysis), ExitCode> {
    let report = |e: kiln_dockerfile::Error| {
        let e = kiln_dockerfile::Error {
            file: l.display.clone(),
            ..e
        };
        eprint!("{}", e.render(&l.source));
        ExitCode::from(1)
    };
    let df = parse_named(&l.source, &l.display).map_err(report)?;
    let analysis = analyze(&df, l.opts.clone(), target).map_err(report)?;
    Ok((df, analysis))
}

fn print_warnings(l: &Loaded, df: &Dockerfile, graph: &StageGraph) {
    let lines = kiln_dockerfile::error::SourceLines::new(&l.source);
    for w in check::check(df) {
        eprint!("{}", w.render_in(&l.display, &lines));
    }
    for w in &graph.warnings {
        let mut msg = format!(
            "warning: {}\n --> {}:{}:{}\n",
            w.message, l.display, w.span.line, w.span.col
        );
        if let Some(h) = &w.hint {
            msg.push_str(&format!("  = hint: {h}\n"));
        }
        eprint!("{msg}");
    }
}

fn write_out(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn run_graph(a: GraphArgs) -> anyhow::Result<ExitCode> {
    let l = match load(&a.input) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let (df, analysis) = match analyze_or_report(&l, a.target.as_deref()) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    print_warnings(&l, &df, &analysis.graph);
    let text = match a.format {
        GraphFormat::Mermaid => render_mermaid(&analysis.graph),
        GraphFormat::Dot => render_dot(&analysis.graph),
        GraphFormat::Json => render_json(&analysis.graph) + "\n",
    };
    write_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct JsonParse<'a> {
    file: &'a str,
    directives: &'a [kiln_dockerfile::Directive],
    escape: char,
    global_args: &'a BTreeMap<String, String>,
    meta_args: &'a [kiln_dockerfile::Instruction],
    stages: Vec<JsonStage<'a>>,
    warnings: Vec<kiln_dockerfile::check::Warning>,
}

#[derive(Serialize)]
struct JsonStage<'a> {
    index: usize,
    name: Option<&'a str>,
    from: &'a kiln_dockerfile::Instruction,
    base: &'a kiln_dockerfile::eval::ResolvedFrom,
    instructions: Vec<JsonInstruction<'a>>,
}

#[derive(Serialize)]
struct JsonInstruction<'a> {
    #[serde(flatten)]
    parsed: &'a kiln_dockerfile::Instruction,
    expanded: &'a kiln_dockerfile::Command,
    used_args: &'a std::collections::BTreeSet<String>,
}

fn run_parse(a: ParseArgs) -> anyhow::Result<ExitCode> {
    let l = match load(&a.input) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let (df, analysis) = match analyze_or_report(&l, None) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let text = match a.format {
        ParseFormat::Json => {
            let doc = JsonParse {
                file: &l.display,
                directives: &df.directives,
                escape: df.escape,
                global_args: &analysis.global_args,
                meta_args: &df.meta_args,
                stages: df
                    .stages
                    .iter()
                    .zip(&analysis.stages)
                    .map(|(s, sa)| JsonStage {
                        index: s.index,
                        name: s.name.as_deref(),
                        from: &s.from,
                        base: &sa.from,
                        instructions: s
                            .instructions
                            .iter()
                            .zip(&sa.instructions)
                            .map(|(i, e)| JsonInstruction {
                                parsed: i,
                                expanded: &e.instruction.command,
                                used_args: &e.used_args,
                            })
                            .collect(),
                    })
                    .collect(),
                warnings: check::check(&df),
            };
            serde_json::to_string_pretty(&doc)? + "\n"
        }
        ParseFormat::Text => {
            print_warnings(&l, &df, &analysis.graph);
            render_text(&l, &df, &analysis)
        }
    };
    let _ = &l.path;
    write_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// One line per instruction (`LINE:COL  text`), and below it what expansion changed.
fn render_text(l: &Loaded, df: &Dockerfile, an: &Analysis) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {}: {} stage(s), escape {}",
        l.display,
        df.stages.len(),
        df.escape
    );
    for d in &df.directives {
        let _ = writeln!(out, "# directive {}={}", d.name, d.value);
    }
    for a in &df.meta_args {
        let _ = writeln!(
            out,
            "{:>5}:{:<3} {}",
            a.span.line,
            a.span.col,
            first_line(&a.original)
        );
    }
    for (s, sa) in df.stages.iter().zip(&an.stages) {
        let node = &an.graph.stages[s.index];
        let _ = writeln!(
            out,
            "\nstage {} {}{}",
            s.index,
            s.display_name(),
            if node.skipped {
                " (not needed for the last stage)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "{:>5}:{:<3} {}",
            s.span.line,
            s.span.col,
            first_line(&s.from.original)
        );
        let mut base = format!("base {}", sa.from.image);
        if let Some(p) = &sa.from.platform {
            base.push_str(&format!(" (platform {p})"));
        }
        let _ = writeln!(out, "          = {base}");
        for (i, e) in s.instructions.iter().zip(&sa.instructions) {
            let _ = writeln!(
                out,
                "{:>5}:{:<3} {}",
                i.span.line,
                i.span.col,
                first_line(&i.original)
            );
            for f in &i.flags {
                let v = f
                    .value
                    .as_deref()
                    .map(|v| format!("={v}"))
                    .unwrap_or_default();
                let _ = writeln!(out, "          flag --{}{v}", f.name);
            }
            if e.instruction.command != i.command {
                let _ = writeln!(
                    out,
                    "          = {}",
                    serde_json::to_string(&e.instruction.command).unwrap_or_default()
                );
            }
            if !e.used_args.is_empty() {
                let used: Vec<&str> = e.used_args.iter().map(String::as_str).collect();
                let _ = writeln!(out, "          uses {}", used.join(" "));
            }
        }
    }
    out
}

fn first_line(s: &str) -> String {
    let mut it = s.lines();
    let first = it.next().unwrap_or("").to_string();
    if it.next().is_some() {
        format!("{first} …")
    } else {
        first
    }
}
