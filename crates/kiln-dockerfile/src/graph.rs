//! The stage dependency graph: each stage's base (scratch, image or stage), edges for
//! `FROM stage`, `COPY --from` and `RUN --mount from=`, cycle detection, `--target` pruning
//! and the build order in levels (stages in one level can build in parallel).
//! BuildKit resolves `COPY --from` against every stage (even later ones) and FROM only
//! against earlier ones; a name that is no stage is an image reference.

use std::fmt::Write as _;

use serde::Serialize;

use crate::ast::{Command, Dockerfile, Instruction};
use crate::error::{Error, ErrorKind, did_you_mean, levenshtein};
use crate::eval::Evaluator;
use crate::span::Span;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Base {
    Scratch,
    Image { reference: String },
    Stage { index: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeKind {
    /// `FROM stage`
    From,
    /// `COPY --from=stage`
    CopyFrom,
    /// `RUN --mount=from=stage`
    MountFrom,
}

impl EdgeKind {
    pub fn label(self) -> &'static str {
        match self {
            EdgeKind::From => "FROM",
            EdgeKind::CopyFrom => "COPY --from",
            EdgeKind::MountFrom => "RUN --mount",
        }
    }
}

/// `stage` depends on `depends_on`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub stage: usize,
    pub depends_on: usize,
    pub kind: EdgeKind,
    pub span: Span,
}

/// An image a stage reads from that is not a stage (`COPY --from=nginx:1`, mount from image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    pub stage: usize,
    pub reference: String,
    pub kind: EdgeKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageNode {
    pub index: usize,
    pub name: Option<String>,
    /// `name` or `stage-N`.
    pub display: String,
    pub base: Base,
    pub platform: Option<String>,
    /// Not needed for the target: it will not be built.
    pub skipped: bool,
    /// Build level (0 = no stage dependencies); None when skipped.
    pub level: Option<usize>,
    pub span: Span,
}

/// A non-fatal finding while building the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphWarning {
    pub message: String,
    pub hint: Option<String>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageGraph {
    pub stages: Vec<StageNode>,
    pub edges: Vec<Edge>,
    pub images: Vec<ImageRef>,
    pub target: usize,
    /// Needed stages grouped by level, in build order.
    pub levels: Vec<Vec<usize>>,
    pub warnings: Vec<GraphWarning>,
}

fn find_stage(df: &Dockerfile, name: &str, before: Option<usize>) -> Option<usize> {
    let lower = name.to_lowercase();
    df.stages
        .iter()
        .filter(|s| before.is_none_or(|b| s.index < b))
        .rev()
        .find(|s| s.name.as_deref() == Some(lower.as_str()))
        .map(|s| s.index)
}

/// Sources a stage's instructions read from, with their kind and span.
fn sources(ins: &Instruction) -> Vec<(String, EdgeKind, Span)> {
    let mut out = Vec::new();
    match &ins.command {
        Command::Copy(c) => {
            if let Some(f) = &c.from {
                let span = ins
                    .flags
                    .iter()
                    .find(|f| f.name == "from")
                    .map(|f| f.span)
                    .unwrap_or(ins.span);
                out.push((f.clone(), EdgeKind::CopyFrom, span));
            }
        }
        Command::Run(r) => {
            for m in &r.mounts {
                let from = match &m.resolved {
                    Some(res) => res.from.clone(),
                    None => m
                        .fields
                        .iter()
                        .find(|(k, _)| k == "from")
                        .and_then(|(_, v)| v.clone()),
                };
                if let Some(f) = from {
                    out.push((f, EdgeKind::MountFrom, m.span));
                }
            }
        }
        _ => {}
    }
    out
}

impl StageGraph {
    /// Resolve every stage's base and references, reject cycles, prune to `target` (default:
    /// the last stage).
    pub fn build(
        df: &Dockerfile,
        ev: &Evaluator,
        target: Option<&str>,
    ) -> Result<StageGraph, Error> {
        Self::build_replacing(df, ev, target, &Default::default())
    }

    /// [`StageGraph::build`] where the stages named in `replaced` are replaced by named build
    /// contexts (`--build-context NAME=...`, as BuildKit overrides a stage of the same name):
    /// such a stage's base is the context (an image reference equal to its name) and its
    /// instructions, and the stages only they need, are not built.
    pub fn build_replacing(
        df: &Dockerfile,
        ev: &Evaluator,
        target: Option<&str>,
        replaced: &std::collections::BTreeSet<String>,
    ) -> Result<StageGraph, Error> {
        Self::build_in(df, ev, target, replaced).map_err(|e| e.in_file(&df.file))
    }

    fn build_in(
        df: &Dockerfile,
        ev: &Evaluator,
        target: Option<&str>,
        replaced: &std::collections::BTreeSet<String>,
    ) -> Result<StageGraph, Error> {
        let mut stages = Vec::new();
        let mut edges = Vec::new();
        let mut images = Vec::new();
        let mut warnings = Vec::new();
        let names: Vec<&str> = df.stages.iter().filter_map(|s| s.name.as_deref()).collect();
        let near_miss = |reference: &str, span: Span, warnings: &mut Vec<GraphWarning>| {
            let lower = reference.to_lowercase();
            if let Some(near) = names.iter().find(|n| levenshtein(&lower, n) == 1) {
                warnings.push(GraphWarning {
                    message: format!(
                        "{reference:?} is not a stage name; it will be used as an image reference"
                    ),
                    hint: Some(format!("did you mean stage {near:?}?")),
                    span,
                });
            }
        };
        for st in &df.stages {
            let from = ev.resolve_from(st)?;
            if let Some(name) = st.name.as_deref().filter(|n| replaced.contains(*n)) {
                stages.push(StageNode {
                    index: st.index,
                    name: st.name.clone(),
                    display: st.display_name(),
                    base: Base::Image {
                        reference: name.to_string(),
                    },
                    platform: from.platform,
                    skipped: true,
                    level: None,
                    span: st.span,
                });
                continue;
            }
            let base = if from.image == "scratch" {
                Base::Scratch
            } else if let Some(i) = find_stage(df, &from.image, Some(st.index)) {
                edges.push(Edge {
                    stage: st.index,
                    depends_on: i,
                    kind: EdgeKind::From,
                    span: st.span,
                });
                Base::Stage { index: i }
            } else {
                near_miss(&from.image, st.span, &mut warnings);
                Base::Image {
                    reference: from.image.clone(),
                }
            };
            for ins in &st.instructions {
                for (name, kind, span) in sources(ins) {
                    let target = if kind == EdgeKind::CopyFrom
                        && !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_digit())
                    {
                        match name.parse::<usize>().ok().filter(|i| *i < df.stages.len()) {
                            Some(i) => Some(i),
                            None => {
                                return Err(Error::new(
                                    ErrorKind::Stage,
                                    span,
                                    format!("invalid stage index {name}"),
                                )
                                .with_hint(Some(format!(
                                    "stage indexes go from 0 to {}",
                                    df.stages.len() - 1
                                ))));
                            }
                        }
                    } else {
                        find_stage(df, &name, None)
                    };
                    match target {
                        Some(i) => edges.push(Edge {
                            stage: st.index,
                            depends_on: i,
                            kind,
                            span,
                        }),
                        None => {
                            near_miss(&name, span, &mut warnings);
                            images.push(ImageRef {
                                stage: st.index,
                                reference: name,
                                kind,
                                span,
                            });
                        }
                    }
                }
            }
            stages.push(StageNode {
                index: st.index,
                name: st.name.clone(),
                display: st.display_name(),
                base,
                platform: from.platform,
                skipped: true,
                level: None,
                span: st.span,
            });
        }
        check_cycles(df, &edges)?;
        let target = match target {
            None => df.stages.len() - 1,
            Some(t) => find_stage(df, t, None).ok_or_else(|| {
                let hint = did_you_mean(&t.to_lowercase(), names.iter().copied(), true)
                    .map(|s| format!("did you mean {s}?"))
                    .or_else(|| {
                        (!names.is_empty()).then(|| format!("stages: {}", names.join(", ")))
                    });
                Error::new(
                    ErrorKind::Stage,
                    Span::default(),
                    format!("target stage {t:?} could not be found"),
                )
                .with_hint(hint)
            })?,
        };
        // Mark what the target needs.
        let mut stack = vec![target];
        while let Some(s) = stack.pop() {
            if !stages[s].skipped {
                continue;
            }
            stages[s].skipped = false;
            stack.extend(edges.iter().filter(|e| e.stage == s).map(|e| e.depends_on));
        }
        // Levels: longest path from a stage without stage dependencies (acyclic here).
        fn level(s: usize, edges: &[Edge], memo: &mut Vec<Option<usize>>) -> usize {
            if let Some(l) = memo[s] {
                return l;
            }
            let l = edges
                .iter()
                .filter(|e| e.stage == s)
                .map(|e| level(e.depends_on, edges, memo) + 1)
                .max()
                .unwrap_or(0);
            memo[s] = Some(l);
            l
        }
        let mut memo = vec![None; stages.len()];
        let mut levels: Vec<Vec<usize>> = Vec::new();
        for (i, node) in stages.iter_mut().enumerate() {
            if node.skipped {
                continue;
            }
            let l = level(i, &edges, &mut memo);
            node.level = Some(l);
            if levels.len() <= l {
                levels.resize(l + 1, Vec::new());
            }
            levels[l].push(i);
        }
        Ok(StageGraph {
            stages,
            edges,
            images,
            target,
            levels,
            warnings,
        })
    }
}

fn check_cycles(df: &Dockerfile, edges: &[Edge]) -> Result<(), Error> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(s: usize, edges: &[Edge], marks: &mut [Mark]) -> Option<(usize, Span)> {
        marks[s] = Mark::Active;
        for e in edges.iter().filter(|e| e.stage == s) {
            match marks[e.depends_on] {
                Mark::Active => return Some((e.depends_on, e.span)),
                Mark::New => {
                    if let Some(c) = visit(e.depends_on, edges, marks) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        marks[s] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; df.stages.len()];
    for s in 0..df.stages.len() {
        if marks[s] == Mark::New
            && let Some((on, span)) = visit(s, edges, &mut marks)
        {
            return Err(Error::new(
                ErrorKind::Stage,
                span,
                format!(
                    "circular dependency detected on stage: {}",
                    df.stages[on].display_name()
                ),
            )
            .with_hint(Some(
                "a stage cannot (directly or through others) copy from itself".into(),
            )));
        }
    }
    Ok(())
}

fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// Mermaid flowchart: stages as boxes, images as rounded nodes, dependency → dependent.
pub fn render_mermaid(g: &StageGraph) -> String {
    let mut out = String::from("flowchart TD\n");
    let mut image_ids: Vec<String> = Vec::new();
    let mut image_id = |r: &str, out: &mut String| -> String {
        let pos = image_ids.iter().position(|x| x == r).unwrap_or_else(|| {
            image_ids.push(r.to_string());
            let _ = writeln!(
                out,
                "  img{}([\"{}\"])",
                image_ids.len() - 1,
                mermaid_text(r)
            );
            image_ids.len() - 1
        });
        format!("img{pos}")
    };
    for s in &g.stages {
        let mut label = mermaid_text(&s.display);
        if s.index == g.target {
            label.push_str(" (target)");
        }
        if s.skipped {
            label.push_str(" (skipped)");
        }
        let _ = writeln!(out, "  s{}[\"{}\"]", s.index, label);
        if s.skipped {
            let _ = writeln!(out, "  class s{} skipped", s.index);
        }
    }
    for s in &g.stages {
        match &s.base {
            Base::Scratch => {}
            Base::Image { reference } => {
                let id = image_id(reference, &mut out);
                let _ = writeln!(out, "  {id} -->|FROM| s{}", s.index);
            }
            Base::Stage { .. } => {}
        }
    }
    for e in &g.edges {
        let _ = writeln!(
            out,
            "  s{} -->|{}| s{}",
            e.depends_on,
            e.kind.label(),
            e.stage
        );
    }
    for i in &g.images {
        let id = image_id(&i.reference, &mut out);
        let _ = writeln!(out, "  {id} -.->|{}| s{}", i.kind.label(), i.stage);
    }
    out.push_str("  classDef skipped stroke-dasharray: 5 5,opacity:0.5\n");
    out
}

fn dot_text(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz DOT.
pub fn render_dot(g: &StageGraph) -> String {
    let mut out = String::from("digraph stages {\n  rankdir=TB;\n  node [shape=box];\n");
    for s in &g.stages {
        let mut attrs = format!("label=\"{}\"", dot_text(&s.display));
        if s.index == g.target {
            attrs.push_str(", penwidth=2");
        }
        if s.skipped {
            attrs.push_str(", style=dashed, fontcolor=gray");
        }
        let _ = writeln!(out, "  s{} [{attrs}];", s.index);
    }
    let mut images: Vec<String> = Vec::new();
    let mut img = |r: &str, out: &mut String| -> usize {
        images.iter().position(|x| x == r).unwrap_or_else(|| {
            images.push(r.to_string());
            let _ = writeln!(
                out,
                "  img{} [label=\"{}\", shape=oval];",
                images.len() - 1,
                dot_text(r)
            );
            images.len() - 1
        })
    };
    for s in &g.stages {
        if let Base::Image { reference } = &s.base {
            let i = img(reference, &mut out);
            let _ = writeln!(out, "  img{i} -> s{} [label=\"FROM\"];", s.index);
        }
    }
    for e in &g.edges {
        let _ = writeln!(
            out,
            "  s{} -> s{} [label=\"{}\"];",
            e.depends_on,
            e.stage,
            e.kind.label()
        );
    }
    for r in &g.images {
        let i = img(&r.reference, &mut out);
        let _ = writeln!(
            out,
            "  img{i} -> s{} [label=\"{}\", style=dotted];",
            r.stage,
            r.kind.label()
        );
    }
    out.push_str("}\n");
    out
}

#[derive(Serialize)]
struct JsonGraph<'a> {
    target: &'a str,
    stages: &'a [StageNode],
    edges: Vec<JsonEdge<'a>>,
    images: &'a [ImageRef],
    build_order: Vec<Vec<&'a str>>,
    warnings: &'a [GraphWarning],
}

#[derive(Serialize)]
struct JsonEdge<'a> {
    from: &'a str,
    to: &'a str,
    kind: EdgeKind,
    line: usize,
}

/// JSON (documented in docs/dockerfile.md).
pub fn render_json(g: &StageGraph) -> String {
    let name = |i: usize| g.stages[i].display.as_str();
    let doc = JsonGraph {
        target: name(g.target),
        stages: &g.stages,
        edges: g
            .edges
            .iter()
            .map(|e| JsonEdge {
                from: name(e.depends_on),
                to: name(e.stage),
                kind: e.kind,
                line: e.span.line,
            })
            .collect(),
        images: &g.images,
        build_order: g
            .levels
            .iter()
            .map(|l| l.iter().map(|i| name(*i)).collect())
            .collect(),
        warnings: &g.warnings,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
