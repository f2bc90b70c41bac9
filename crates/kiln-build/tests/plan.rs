//! The plan, from Dockerfile text alone: which steps exist, what they depend on, and the
//! config each stage ends with. No store, no files, no network.

use kiln_build::config::ImageConfig;
use kiln_build::error::Result;
use kiln_build::plan::{CopyFrom, ImageSource, Op, Plan, PlanOptions, ResolvedImage, plan};

/// Every image is an empty one with a recognisable ID; `env` gives it an environment and ONBUILDs.
struct Images;
impl ImageSource for Images {
    fn resolve(&self, reference: &str, _: &kiln_image::Platform) -> Result<ResolvedImage> {
        let mut config = ImageConfig::default();
        if reference.contains("onbuild") {
            config.config.on_build = Some(vec!["RUN echo from-image".into()]);
        }
        Ok(ResolvedImage {
            reference: reference.to_string(),
            id: format!("sha256:{:0>64}", reference.len()),
            config,
        })
    }
}

fn plan_of(src: &str, opts: PlanOptions) -> Plan {
    let df = kiln_dockerfile::parse(src).unwrap();
    plan(&df, &opts, &Images).unwrap()
}

fn names(p: &Plan) -> Vec<&str> {
    p.steps.iter().map(|s| s.text.as_str()).collect()
}

#[test]
fn unused_stages_are_not_planned_and_target_stops_early() {
    let src = "FROM a AS build\nRUN make\nFROM a AS unused\nRUN exit 1\nFROM a\nCOPY --from=build /out /out\n";
    let p = plan_of(src, PlanOptions::default());
    assert!(!names(&p).contains(&"RUN exit 1"), "{:?}", names(&p));
    assert_eq!(p.skipped, ["unused"]);
    let copy = p
        .steps
        .iter()
        .position(|s| s.text.starts_with("COPY"))
        .unwrap();
    let make = p.steps.iter().position(|s| s.text == "RUN make").unwrap();
    assert!(
        p.steps[copy].deps.contains(&make),
        "COPY --from waits for the stage"
    );
    assert!(matches!(&p.steps[copy].op, Op::Copy(c) if c.from == CopyFrom::Stage(make)));

    let p = plan_of(
        src,
        PlanOptions {
            target: Some("build".into()),
            ..PlanOptions::default()
        },
    );
    assert_eq!(names(&p).last(), Some(&"RUN make"));
}

#[test]
fn onbuild_triggers_run_in_the_child_of_an_image_or_a_stage() {
    let src = "FROM onbuild-base AS base\nONBUILD RUN echo from-stage\nRUN echo base\nFROM base AS child\nRUN echo child\n";
    let p = plan_of(src, PlanOptions::default());
    let texts = names(&p);
    let at = |t: &str| texts.iter().position(|x| x.contains(t)).unwrap();
    assert!(at("echo from-image") < at("echo base"), "{texts:?}");
    assert!(at("echo from-stage") < at("echo child"), "{texts:?}");
    let base = p.stages.iter().find(|s| s.display == "base").unwrap();
    assert_eq!(
        base.config.config.on_build.as_deref(),
        Some(&["RUN echo from-stage".to_string()][..]),
        "a stage keeps its own ONBUILDs, not its base image's"
    );
    let child = p.stages.iter().find(|s| s.display == "child").unwrap();
    assert_eq!(child.config.config.on_build, None, "consumed by the child");
}

#[test]
fn an_arg_after_env_reaches_run_but_not_the_config() {
    let src = "FROM a\nENV NAME=env\nARG NAME\nRUN echo $NAME\n";
    let opts = PlanOptions {
        build_args: [("NAME".to_string(), "cli".to_string())].into(),
        ..PlanOptions::default()
    };
    let p = plan_of(src, opts);
    let run = p
        .steps
        .iter()
        .find_map(|s| match &s.op {
            Op::Run(r) => Some(r),
            _ => None,
        })
        .unwrap();
    assert!(
        run.env.iter().any(|(k, v)| k == "NAME" && v == "cli"),
        "{:?}",
        run.env
    );
    assert_eq!(
        run.env.iter().filter(|(k, _)| k == "NAME").count(),
        1,
        "one NAME in the environment"
    );
    let last = p.stages.last().unwrap();
    assert_eq!(last.config.config.get_env("NAME"), Some("env"));
}

#[test]
fn a_bare_run_is_an_empty_shell_command() {
    let p = plan_of("FROM a\nRUN\n", PlanOptions::default());
    let run = p
        .steps
        .iter()
        .find_map(|s| match &s.op {
            Op::Run(r) => Some(r),
            _ => None,
        })
        .unwrap();
    assert_eq!(run.args, ["/bin/sh", "-c", ""]);
}

/// A store with no images: every name is missing.
struct NoImages;
impl ImageSource for NoImages {
    fn resolve(&self, reference: &str, _: &kiln_image::Platform) -> Result<ResolvedImage> {
        Err(kiln_build::BuildError::MissingImage {
            reference: reference.to_string(),
            hint: "load it".into(),
        })
    }
}

#[test]
fn a_missing_image_is_an_error_at_its_line_and_a_misspelled_stage_is_named() {
    let err = |src: &str| {
        let df = kiln_dockerfile::parse(src).unwrap();
        match plan(&df, &PlanOptions::default(), &NoImages) {
            Err(kiln_build::BuildError::Dockerfile(e)) => e,
            other => panic!("expected a Dockerfile error, got {:?}", other.err()),
        }
    };
    let e = err("FROM scratch AS builder\nCOPY a /a\nFROM scratch\nCOPY --from=buidler /a /b\n");
    assert_eq!(e.span.line, 4);
    assert_eq!(e.message, "--from=buidler: no stage or image by that name");
    assert_eq!(e.hint.as_deref(), Some("did you mean stage \"builder\"?"));

    let e = err("FROM scratch\nRUN --mount=type=bind,from=elsewhere,target=/x true\n");
    assert_eq!(e.span.line, 2);
    assert!(
        e.message.contains("no image \"elsewhere\" in the store"),
        "{}",
        e.message
    );
    assert_eq!(e.hint.as_deref(), Some("load it"));

    let e = err("FROM scratch\nRUN true\nFROM nosuch:1\n");
    assert_eq!(e.span.line, 3);
    assert_eq!(e.message, "base image \"nosuch:1\" is not in the store");
}

#[test]
fn several_targets_plan_each_shared_step_once() {
    let src = "\
FROM a AS base
RUN shared
FROM base AS tester
RUN test
FROM base AS deployer
RUN deploy
FROM a AS unused
RUN exit 1
FROM a AS later
RUN later
";
    let p = plan_of(
        src,
        PlanOptions {
            target: Some("tester".into()),
            more_targets: vec!["deployer".into()],
            ..PlanOptions::default()
        },
    );
    let n = names(&p);
    assert_eq!(n.iter().filter(|s| **s == "RUN shared").count(), 1, "{n:?}");
    assert!(
        n.contains(&"RUN test") && n.contains(&"RUN deploy"),
        "{n:?}"
    );
    assert_eq!(p.skipped, ["unused", "later"]);
    assert_eq!(p.targets, [1, 2]);
    assert_eq!(p.target, 1);
    // Stages in dependency levels: base first, then both targets together.
    assert_eq!(p.graph.levels, [vec![0], vec![1, 2]]);
    assert_eq!(p.stages_needed(2).into_iter().collect::<Vec<_>>(), [0, 2]);
    assert_eq!(p.targets_needing(0), ["tester", "deployer"]);
    assert_eq!(p.targets_needing(2), ["deployer"]);

    // A stage named twice is refused; an unknown one is the usual error.
    let df = kiln_dockerfile::parse(src).unwrap();
    let twice = PlanOptions {
        target: Some("tester".into()),
        more_targets: vec!["TESTER".into()],
        ..PlanOptions::default()
    };
    let e = plan(&df, &twice, &Images).unwrap_err().to_string();
    assert!(e.contains("named twice"), "{e}");
    let unknown = PlanOptions {
        target: Some("tester".into()),
        more_targets: vec!["nosuch".into()],
        ..PlanOptions::default()
    };
    let e = plan(&df, &unknown, &Images).unwrap_err().to_string();
    assert!(e.contains("nosuch"), "{e}");
}
