//! The build record `kiln report` reads (kiln-store's `build_record`): per stage that ran,
//! in Dockerfile order, its base, size, time and cached steps.

use kiln_store::{BuildRecord, Digest, LayerOrigin, OriginKind, StageRecord};

use crate::error::Result;
use crate::plan::{CopyFrom, LocalDir, Op, PlannedStage, RootSource};
use crate::rootfs::StepResult;
use crate::state::Build;

/// Record this build of `image_id`. A build that executed nothing writes no record when the
/// image has one already: a no-op rebuild pays no write transaction.
pub(crate) fn record_build(
    b: &Build<'_>,
    image_id: &Digest,
    results: &[StepResult],
    target: usize,
    variant: usize,
    target_name: Option<String>,
    layers: Vec<LayerOrigin>,
) -> Result<()> {
    let executed = b.counters.lock().unwrap().1;
    if executed == 0 && b.store.latest_build_record(image_id)?.is_some() {
        return Ok(());
    }
    // The stages this image needs (with several targets, the others' are not its build).
    let needed = b.plan.stages_needed(target);
    let mut stages: Vec<&PlannedStage> = needed
        .iter()
        .filter_map(|&s| b.plan.stage_in(variant, s))
        .collect();
    stages.sort_by_key(|s| s.index);
    let stages = stages
        .into_iter()
        .map(|s| stage_record(b, s, results, target))
        .collect::<Result<Vec<_>>>()?;
    b.store.record_build(&BuildRecord {
        image_id: *image_id,
        target: target_name,
        started_ms: b.started_ms,
        duration_ms: b.started.elapsed().as_millis() as u64,
        stages,
        layers,
    })?;
    Ok(())
}

/// Where each layer of stage `stage`'s chain came from, base first; empty when it cannot be
/// told (the chain does not match the steps that made layers).
pub(crate) fn chain_origins(
    b: &Build<'_>,
    variant: usize,
    stage: usize,
    results: &[StepResult],
) -> Vec<LayerOrigin> {
    let Some(s) = b.plan.stage_in(variant, stage) else {
        return Vec::new();
    };
    let display = &b.plan.graph.stages[stage].display;
    let mut out = match &b.plan.steps[s.first_step].op {
        Op::Base(RootSource::Image(i)) => {
            let origin = LayerOrigin {
                kind: OriginKind::Base,
                source: b.plan.images[*i].reference.clone(),
            };
            vec![origin; results[s.first_step].chain.len()]
        }
        Op::Base(RootSource::Step(from)) => {
            let f = &b.plan.steps[*from];
            chain_origins(b, f.variant, f.stage, results)
        }
        _ => Vec::new(),
    };
    let steps = &b.plan.steps[s.first_step + 1..=s.last_step];
    for (step, result) in steps.iter().zip(&results[s.first_step + 1..=s.last_step]) {
        if step.stage != stage || !result.made_layer {
            continue;
        }
        let (kind, source) = match &step.op {
            Op::Copy(c) => match &c.from {
                CopyFrom::Stage(from) => (
                    OriginKind::CopyFrom,
                    b.plan.graph.stages[b.plan.steps[*from].stage]
                        .display
                        .clone(),
                ),
                CopyFrom::Image(img) => (
                    OriginKind::CopyFromImage,
                    b.plan.images[*img].reference.clone(),
                ),
                CopyFrom::Context(LocalDir::Main) => (OriginKind::Context, String::new()),
                CopyFrom::Context(LocalDir::Named(n)) => (OriginKind::Context, n.clone()),
            },
            _ => (OriginKind::Stage, display.clone()),
        };
        out.push(LayerOrigin { kind, source });
    }
    if out.len() == results[s.last_step].chain.len() {
        out
    } else {
        Vec::new()
    }
}

fn stage_record(
    b: &Build<'_>,
    s: &PlannedStage,
    results: &[StepResult],
    target: usize,
) -> Result<StageRecord> {
    let timings = b.timings.lock().unwrap();
    let node = &b.plan.graph.stages[s.index];
    let mut base = String::from("scratch");
    let (mut steps, mut cached) = (0u32, 0u32);
    // Edges of the stage graph: the stage it is built on, and the stages its steps read
    // (a step's dependencies in other stages: `COPY --from`, `RUN --mount from=`).
    let mut base_stage = None;
    let mut uses = std::collections::BTreeSet::new();
    // The stage's own time: the sum of its steps' durations. A first-start-to-last-end span
    // would count the time a step waited for another stage (a `COPY --from` of a stage still
    // running), so the final stage would show the whole build.
    let mut duration = std::time::Duration::ZERO;
    let variant = b.plan.steps[s.first_step].variant;
    for (i, step) in b.plan.steps.iter().enumerate() {
        if step.stage != s.index || step.variant != variant {
            continue;
        }
        match &step.op {
            Op::Base(RootSource::Scratch) => {}
            Op::Base(RootSource::Image(idx)) => base = b.plan.images[*idx].reference.clone(),
            Op::Base(RootSource::Step(from)) => {
                let from = b.plan.steps[*from].stage;
                base = b.plan.graph.stages[from].display.clone();
                base_stage = Some(from as u32);
            }
            _ => {
                steps += 1;
                cached += u32::from(timings[i].cached);
                uses.extend(
                    step.deps
                        .iter()
                        .map(|d| b.plan.steps[*d].stage)
                        .filter(|st| *st != s.index)
                        .map(|st| st as u32),
                );
            }
        }
        let t = &timings[i];
        if let (Some(start), Some(end)) = (t.start, t.end) {
            duration += end.saturating_sub(start);
        }
    }
    drop(timings);
    let size = chain_size(b, &results[s.last_step].chain)?;
    Ok(StageRecord {
        index: s.index as u32,
        name: node.name.clone(),
        base,
        size,
        duration_ms: duration.as_millis() as u64,
        steps,
        cached_steps: cached,
        is_final: s.index == target,
        base_stage,
        uses: uses.into_iter().collect(),
    })
}

/// docker's size of a stage's filesystem, measured as an image's size is: the sum over its
/// chain of each layer's unpacked size (a base layer's from its blob, remembered by the
/// store; a layer a step made from its directory, with the same rules: regular files and
/// symlink targets, a hard-linked inode once, whiteouts nothing). An image built on the
/// stage has the same layers and more, so it is never smaller than the stage.
fn chain_size(b: &Build<'_>, chain: &[crate::rootfs::LayerRef]) -> Result<u64> {
    let mut size = 0;
    for l in chain {
        size += match &l.blob {
            Some(blob) => b.store.layer_size(blob)?,
            None => match b.store.snapshot(&l.snapshot)? {
                Some(info) => {
                    kiln_snapshot::dir_size(&info.path)
                        .map_err(|e| crate::error::BuildError::ExportLayer {
                            dir: info.path.clone(),
                            source: Box::new(e),
                        })?
                        .size
                }
                None => 0,
            },
        };
    }
    Ok(size)
}
