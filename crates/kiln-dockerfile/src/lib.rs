//! kiln-dockerfile: Dockerfile text → typed stages. No I/O.
//!
//! ```
//! let df = kiln_dockerfile::parse("FROM alpine AS build\nRUN echo hi\n").unwrap();
//! assert_eq!(df.stages[0].name.as_deref(), Some("build"));
//! ```
//!
//! Layers: `scanner` (lines, directives, continuations, heredoc bodies) → `instr` (one typed
//! instruction) → `parser` (stages). `eval` expands words with ARG/ENV scoping, `graph` builds
//! the stage dependency graph, `check` is a separate lint pass.

pub mod analysis;
pub mod ast;
pub mod check;
pub mod dockerignore;
mod dump;
pub mod error;
pub mod eval;
pub mod expand;
pub mod graph;
mod instr;
pub mod limits;
pub mod mount;
mod parser;
mod scanner;
pub mod span;
mod words;

pub use analysis::{Analysis, StageAnalysis, analyze};
pub use ast::*;
pub use dump::dump;
pub use error::{Error, ErrorKind};
pub use eval::{EvalOptions, Evaluator, Expansion, Platform, StageEval};
pub use graph::{StageGraph, render_dot, render_json, render_mermaid};
pub use instr::parse_go_duration;
pub use mount::{Mount, MountSpec, MountType, Sharing};
pub use span::Span;

/// Parse Dockerfile text; errors name the file `Dockerfile`.
pub fn parse(src: &str) -> Result<Dockerfile, Error> {
    parser::parse_source(src)
}

/// Parse Dockerfile text, naming `file` in errors.
pub fn parse_named(src: &str, file: &str) -> Result<Dockerfile, Error> {
    let mut df = parser::parse_source(src).map_err(|e| e.in_file(file))?;
    df.file = file.to_string();
    Ok(df)
}

/// Parse ONBUILD triggers stored in a base image's config (`OnBuild`), as they run right
/// after a downstream `FROM`. Spans count from the first trigger as line 2 (line 1 is a
/// synthetic `FROM`).
pub fn parse_onbuild_triggers(triggers: &[String]) -> Result<Vec<Instruction>, Error> {
    let mut src = String::from("FROM scratch\n");
    for t in triggers {
        src.push_str(t);
        src.push('\n');
    }
    let mut df = parser::parse_source(&src).map_err(|e| e.in_file("ONBUILD"))?;
    if df.stages.len() != 1 {
        return Err(Error::new(
            ErrorKind::Arguments,
            Span::default(),
            "FROM isn't allowed as an ONBUILD trigger",
        )
        .in_file("ONBUILD"));
    }
    Ok(df.stages.remove(0).instructions)
}
