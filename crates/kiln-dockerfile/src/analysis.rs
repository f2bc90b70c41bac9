//! Everything that can be known without images: expansion of every stage (images' own ENV
//! is unknown here, so a stage on an image starts with an empty environment; a stage on a
//! stage inherits that stage's ENV) and the stage graph. Used by `kiln parse`/`kiln graph`
//! and tests; the build engine drives `StageEval` itself with real base-image ENV.

use serde::Serialize;

use crate::ast::Dockerfile;
use crate::error::Error;
use crate::eval::{EvalOptions, Evaluator, Expansion, ResolvedFrom};
use crate::graph::{Base, StageGraph};

#[derive(Debug, Clone, Serialize)]
pub struct StageAnalysis {
    pub from: ResolvedFrom,
    pub instructions: Vec<Expansion>,
    /// ENV at the end of the stage (as far as the Dockerfile tells).
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub global_args: std::collections::BTreeMap<String, String>,
    pub stages: Vec<StageAnalysis>,
    pub graph: StageGraph,
}

/// Expand every stage and build the graph; the first error wins.
pub fn analyze(
    df: &Dockerfile,
    opts: EvalOptions,
    target: Option<&str>,
) -> Result<Analysis, Error> {
    let ev = Evaluator::new(df, opts)?;
    let graph = StageGraph::build(df, &ev, target)?;
    let mut stages: Vec<StageAnalysis> = Vec::new();
    for st in &df.stages {
        let from = ev.resolve_from(st)?;
        // Borrowed, not cloned: in a chain of stages the environment grows with the file,
        // and every copy of it per stage counts.
        let base_env: &[(String, String)] = match graph.stages[st.index].base {
            Base::Stage { index } if index < stages.len() => &stages[index].env,
            _ => &[],
        };
        let mut se = ev.stage(base_env);
        let mut instructions = Vec::with_capacity(st.instructions.len());
        for ins in &st.instructions {
            instructions.push(se.expand_instruction(ins)?);
        }
        stages.push(StageAnalysis {
            from,
            instructions,
            env: se.into_env(),
        });
    }
    Ok(Analysis {
        global_args: ev.global_args(),
        stages,
        graph,
    })
}
