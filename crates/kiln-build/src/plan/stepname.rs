//! How steps are numbered and identified on screen, as BuildKit's Dockerfile frontend does it:
//! per stage from its FROM (`[build 2/4]`, or `[2/4]` when the Dockerfile has one stage), and a
//! vertex digest per step for the progress view. The text of a step is `display.rs`'s.

use crate::encoder::KeyBuilder;
use crate::event::StepInfo;
use crate::plan::{Op, Plan, RootSource, Step};

/// Whether a step does work of its own and so appears in the progress view. A stage that
/// starts from scratch or from another stage has nothing to show for its FROM (BuildKit
/// neither counts nor shows one).
pub fn is_reported(step: &Step) -> bool {
    !matches!(
        step.op,
        Op::Base(RootSource::Scratch) | Op::Base(RootSource::Step(_))
    )
}

/// Number the reported steps of each stage `[NAME k/n] `, as BuildKit does: the FROM of an
/// image is the first, the stage name is left out when the Dockerfile has one stage, and `k`
/// is padded to the width of `n` (`[ 1/12]`).
///
/// With several target platforms each name starts with its stage's platform
/// (`[linux/arm64 build 2/4]`), as BuildKit's do; a stage of another platform than its
/// target's that is not shared names the target too (`[linux/amd64->arm64 build 2/4]`).
pub(crate) fn number_steps(plan: &mut Plan, single_stage: bool) {
    let multi = plan.multi_platform();
    for st in &plan.stages {
        let ids: Vec<usize> = (st.first_step..=st.last_step)
            .filter(|&i| plan.steps[i].stage == st.index && is_reported(&plan.steps[i]))
            .collect();
        let n = ids.len();
        let width = n.to_string().len();
        // A stage built once per target on another platform (`FROM --platform=$BUILDPLATFORM`
        // that reads TARGET*) names its target as BuildKit does: `linux/amd64->arm64`.
        let target = match plan.variants.get(plan.steps[st.first_step].variant) {
            Some(v) if multi && !st.shared && v.platform != st.platform => {
                arrow_target(&st.platform, &v.platform)
            }
            _ => String::new(),
        };
        for (k, &i) in ids.iter().enumerate() {
            let step = &mut plan.steps[i];
            let prefix = match (multi, single_stage) {
                (true, true) => format!("{}{target} ", st.platform),
                (true, false) => format!("{}{target} {} ", st.platform, st.display),
                (false, true) => String::new(),
                (false, false) => format!("{} ", st.display),
            };
            step.name = format!("[{prefix}{:>width$}/{n}] {}", k + 1, step.name);
        }
    }
}

/// BuildKit's `formatTargetPlatform`: `->ARCH[/VARIANT]` on the same OS, else
/// `->OS/ARCH[/VARIANT]`.
fn arrow_target(base: &kiln_image::Platform, target: &kiln_image::Platform) -> String {
    if target.os == base.os && target.architecture == base.architecture {
        String::new()
    } else if target.os == base.os {
        match &target.variant {
            Some(v) => format!("->{}/{v}", target.architecture),
            None => format!("->{}", target.architecture),
        }
    } else {
        format!("->{target}")
    }
}

/// What the progress view gets to know about each step (see [`StepInfo`]).
pub fn step_infos(plan: &Plan) -> Vec<StepInfo> {
    plan.steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepInfo {
            name: s.name.clone(),
            stage: plan.graph.stages[s.stage].display.clone(),
            line: s.line,
            digest: vertex_digest(plan, i),
            reported: is_reported(s),
        })
        .collect()
}

/// A digest naming what a step is. The FROM of one image is one vertex however many stages
/// start from it (as in BuildKit, whose vertex digests are content addresses); every other
/// step is its own vertex, named by its place in the plan, so the same Dockerfile gives the
/// same digests on every build.
fn vertex_digest(plan: &Plan, i: usize) -> String {
    let s = &plan.steps[i];
    match &s.op {
        Op::Base(RootSource::Image(idx)) => KeyBuilder::new("vertex-image")
            .field("id", &plan.images[*idx].id)
            .finish(),
        _ => KeyBuilder::new("vertex-step")
            .field("index", &i.to_string())
            .field("name", &s.name)
            .finish(),
    }
}
