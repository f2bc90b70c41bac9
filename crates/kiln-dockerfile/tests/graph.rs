//! Stage graph: bases, edges, cycles, --target pruning, levels, renderers.

use kiln_dockerfile::graph::{Base, EdgeKind};
use kiln_dockerfile::*;

fn graph(src: &str, target: Option<&str>) -> Result<StageGraph, Error> {
    let df = parse(src).unwrap();
    let ev = Evaluator::new(&df, EvalOptions::default()).unwrap();
    StageGraph::build(&df, &ev, target)
}

fn example(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .join("Dockerfile");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn tutorial_target_deployer_skips_tester() {
    let g = graph(&example("tutorial"), Some("deployer")).unwrap();
    let names: Vec<_> = g
        .stages
        .iter()
        .map(|s| (s.display.as_str(), s.skipped))
        .collect();
    assert_eq!(
        names,
        [("installer", false), ("tester", true), ("deployer", false)]
    );
    assert!(
        g.edges
            .iter()
            .any(|e| e.stage == 2 && e.depends_on == 0 && e.kind == EdgeKind::CopyFrom)
    );
    assert_eq!(
        g.stages[0].base,
        Base::Image {
            reference: "localhost/node:18".into()
        }
    );
    assert_eq!(g.stages[1].base, Base::Stage { index: 0 });
    assert_eq!(g.levels, [vec![0], vec![2]]);
    let m = render_mermaid(&g);
    assert!(m.contains("s0 -->|COPY --from| s2"), "{m}");
    assert!(m.contains("s1[\"tester (skipped)\"]"), "{m}");
    assert!(m.contains("s2[\"deployer (target)\"]"), "{m}");
    // Default target is the last stage; with target tester, deployer is skipped.
    let g = graph(&example("tutorial"), Some("TESTER")).unwrap();
    assert!(g.stages[2].skipped && !g.stages[1].skipped);
}

#[test]
fn parallel_stages_share_a_level() {
    let g = graph(&example("parallel"), None).unwrap();
    assert_eq!(g.levels, [vec![0, 1], vec![2]]);
    let j: serde_json::Value = serde_json::from_str(&render_json(&g)).unwrap();
    assert_eq!(
        j["build_order"],
        serde_json::json!([["frontend", "backend"], ["stage-2"]])
    );
    assert_eq!(j["target"], "stage-2");
    assert_eq!(j["edges"][0]["kind"], "copy-from");
}

#[test]
fn platform_example() {
    let g = graph(&example("platform"), None).unwrap();
    assert_eq!(g.stages[0].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(g.levels.len(), 2);
}

#[test]
fn copy_from_later_stage_index_and_image() {
    let g = graph(
        "FROM a AS one\nCOPY --from=two /x /x\nCOPY --from=nginx:1 /y /y\nFROM b AS two\nCOPY --from=0 /z /z\n",
        Some("one"),
    );
    // one depends on two (later stage), two on one by index: a cycle.
    assert!(g.unwrap_err().message.contains("circular dependency"));
    let g = graph(
        "FROM a AS one\nCOPY --from=two /x /x\nCOPY --from=nginx:1 /y /y\nFROM b AS two\n",
        Some("one"),
    )
    .unwrap();
    assert!(!g.stages[1].skipped);
    assert_eq!(g.levels, [vec![1], vec![0]]);
    assert_eq!(g.images[0].reference, "nginx:1");
    let e = graph("FROM a\nCOPY --from=5 /x /x\n", None).unwrap_err();
    assert_eq!(e.message, "invalid stage index 5");
    assert_eq!(e.span.line, 2);
}

#[test]
fn from_resolves_only_earlier_stages() {
    let g = graph(
        "FROM later AS first\nFROM scratch AS later\n",
        Some("first"),
    )
    .unwrap();
    assert_eq!(
        g.stages[0].base,
        Base::Image {
            reference: "later".into()
        }
    );
    assert_eq!(g.stages[1].base, Base::Scratch);
    assert!(g.stages[1].skipped);
}

#[test]
fn self_copy_is_a_cycle_and_rendered_with_location() {
    let src = "FROM a AS x\nCOPY --from=x /a /b\n";
    let e = graph(src, None).unwrap_err();
    assert_eq!(e.message, "circular dependency detected on stage: x");
    assert!(e.render(src).contains("2 | COPY --from=x /a /b"));
}

#[test]
fn mount_from_edges_and_near_miss_warnings() {
    let g = graph("FROM a AS builder\nFROM b\nRUN --mount=from=builder,target=/b x\nCOPY --from=bulder /a /a\n", None).unwrap();
    assert!(
        g.edges
            .iter()
            .any(|e| e.kind == EdgeKind::MountFrom && e.depends_on == 0)
    );
    assert_eq!(g.warnings.len(), 1);
    assert_eq!(
        g.warnings[0].hint.as_deref(),
        Some("did you mean stage \"builder\"?")
    );
}

#[test]
fn unknown_target_suggests() {
    let e = graph("FROM a AS build\nFROM b AS test\n", Some("buil")).unwrap_err();
    assert_eq!(e.message, "target stage \"buil\" could not be found");
    assert_eq!(e.hint.as_deref(), Some("did you mean build?"));
}

#[test]
fn dot_output() {
    let g = graph(&example("tutorial"), Some("deployer")).unwrap();
    let d = render_dot(&g);
    assert!(d.starts_with("digraph stages {"));
    assert!(d.contains("s0 -> s2 [label=\"COPY --from\"];"), "{d}");
    assert!(
        d.contains("s1 [label=\"tester\", style=dashed, fontcolor=gray];"),
        "{d}"
    );
}
