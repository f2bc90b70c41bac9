//! Instructions → a `Dockerfile`: global ARGs, stages, and the structural checks that need
//! the whole file (instructions before FROM, duplicate stage names).

use std::collections::HashMap;

use crate::ast::{Command, Dockerfile, Instruction, Stage};
use crate::error::{Error, ErrorKind};
use crate::instr::next_instruction;
use crate::limits::{MAX_DOCKERFILE_BYTES, human};
use crate::scanner::Scanner;
use crate::span::Span;

pub(crate) fn parse_source(src: &str) -> Result<Dockerfile, Error> {
    // Callers that read files stop at the limit already; this covers text from elsewhere.
    if src.len() as u64 > MAX_DOCKERFILE_BYTES {
        return Err(Error::new(
            ErrorKind::Syntax,
            Span::default(),
            format!(
                "Dockerfile too large: {} bytes, the limit is {}",
                src.len(),
                human(MAX_DOCKERFILE_BYTES)
            ),
        ));
    }
    let mut sc = Scanner::new(src);
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    // Stage name → index, so that a file of many stages is not quadratic in them.
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut any = false;
    while let Some(ins) = next_instruction(&mut sc)? {
        any = true;
        if let Command::From(f) = &ins.command {
            if let Some(name) = &f.name
                && let Some(prev) = names.get(name).map(|&i| &stages[i])
            {
                let span = name_span(&ins).unwrap_or(ins.span);
                return Err(Error::new(
                    ErrorKind::Stage,
                    span,
                    format!("duplicate stage name {name:?}"),
                )
                .with_hint(Some(format!(
                    "stage {name:?} is already defined on line {}",
                    prev.span.line
                ))));
            }
            if let Some(name) = &f.name {
                names.insert(name.clone(), stages.len());
            }
            stages.push(Stage {
                index: stages.len(),
                name: f.name.clone(),
                span: ins.span,
                from: ins,
                instructions: Vec::new(),
            });
            continue;
        }
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(ins),
            None if matches!(ins.command, Command::Arg(_)) => meta_args.push(ins),
            None => {
                return Err(Error::new(
                    ErrorKind::Syntax,
                    ins.span,
                    format!("no build stage in current context: {} before the first FROM", ins.name()),
                )
                .with_hint(Some("a Dockerfile starts with FROM (only ARG, comments and parser directives may come before it)".into())));
            }
        }
    }
    if !any {
        return Err(Error::new(
            ErrorKind::Syntax,
            Span::default(),
            "file with no instructions",
        )
        .with_hint(Some("add a FROM instruction".into())));
    }
    if stages.is_empty() {
        return Err(Error::new(
            ErrorKind::Syntax,
            Span::line(sc.line_no().max(1)),
            "dockerfile contains no stages to build",
        )
        .with_hint(Some("add a FROM instruction after the global ARGs".into())));
    }
    Ok(Dockerfile {
        directives: sc.directives,
        escape: sc.escape,
        meta_args,
        stages,
        parse_warnings: sc.warnings,
        file: String::from("Dockerfile"),
    })
}

/// The span of the stage name in `FROM x AS name` (the last word of the line).
pub(crate) fn name_span(ins: &Instruction) -> Option<Span> {
    let Command::From(f) = &ins.command else {
        return None;
    };
    let name = f.name.as_ref()?;
    let line = &ins.original;
    let idx = line.to_lowercase().rfind(name.as_str())?;
    let col_off = line[..idx].chars().count();
    if !line[..idx].contains('\n') && ins.end_line == ins.span.line {
        Some(Span::new(
            ins.span.line,
            ins.span.col + col_off,
            name.chars().count(),
        ))
    } else {
        None
    }
}
