//! A stable, line-oriented text dump of a parsed Dockerfile (golden tests, `kiln parse`).

use std::fmt::Write as _;

use crate::ast::{Dockerfile, Instruction};

fn instruction_line(out: &mut String, indent: &str, ins: &Instruction) {
    let detail = serde_json::to_string(&ins.command).unwrap_or_default();
    let _ = write!(out, "{indent}{}:{}", ins.span.line, ins.span.col);
    if ins.end_line != ins.span.line {
        let _ = write!(out, "-{}", ins.end_line);
    }
    let _ = write!(out, " {}", ins.name());
    for f in &ins.flags {
        match &f.value {
            Some(v) => {
                let _ = write!(out, " --{}={v:?}", f.name);
            }
            None => {
                let _ = write!(out, " --{}", f.name);
            }
        }
    }
    let _ = writeln!(out, " {detail}");
}

/// One line per directive, global ARG, stage and instruction.
pub fn dump(df: &Dockerfile) -> String {
    let mut out = String::new();
    for d in &df.directives {
        let _ = writeln!(out, "directive {}={:?}", d.name, d.value);
    }
    if df.escape != '\\' {
        let _ = writeln!(out, "escape {:?}", df.escape);
    }
    for a in &df.meta_args {
        instruction_line(&mut out, "global ", a);
    }
    for s in &df.stages {
        let _ = writeln!(
            out,
            "stage {} {}",
            s.index,
            s.name.as_deref().unwrap_or("-")
        );
        instruction_line(&mut out, "  ", &s.from);
        for i in &s.instructions {
            instruction_line(&mut out, "  ", i);
        }
    }
    for w in &df.parse_warnings {
        let _ = writeln!(
            out,
            "warning {} line {}: {}",
            w.rule, w.span.line, w.message
        );
    }
    out
}
