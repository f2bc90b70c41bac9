//! Planning: a parsed Dockerfile + options → the steps to run. Stages the target does not need
//! are left out; every instruction is expanded with BuildKit's ARG/ENV scoping; the image
//! config evolves as BuildKit's does. Planning does no I/O beyond asking an [`ImageSource`]
//! for base images, so it is fast and testable with plain strings.

pub mod config;
pub(crate) mod display;
pub(crate) mod history;
pub mod platform;
pub mod source;
pub mod stepname;

pub use history::go_quote;
pub(crate) mod values;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use kiln_dockerfile::ast::{self, Command, CommandLine, Dockerfile, Instruction};
use kiln_dockerfile::graph::{Base, StageGraph};
use kiln_dockerfile::limits::{MAX_RUN_ENV_BYTES, human};
use kiln_dockerfile::{Evaluator, Mount, MountType, StageEval};
use kiln_image::Platform;

use crate::error::{BuildError, Result};
use crate::plan::config::{DEFAULT_PATH, Healthcheck, History, ImageConfig, RunConfig};
use crate::plan::display::{Echo, display_command};
use crate::plan::values::expand_port_spec;
pub use crate::plan::values::{clean_path, join_workdir};

/// A base image as the store knows it.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// What the Dockerfile named.
    pub reference: String,
    /// Image ID (config digest, `sha256:...`).
    pub id: String,
    pub config: ImageConfig,
}

/// Looks up images named in FROM and `COPY --from`.
pub trait ImageSource: Sync {
    /// The image `reference` names, for `platform` (the stage's): from an index, the entry
    /// of that platform.
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage>;
}

pub type StepIndex = usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    Scratch,
    /// Index into [`Plan::images`].
    Image(usize),
    /// The final step of another stage.
    Step(StepIndex),
}

/// A `RUN --mount` after expansion, with its source located.
#[derive(Debug, Clone)]
pub struct RunMount {
    pub mount: Mount,
    /// For bind mounts (and cache mounts `from=`): where the files come from.
    pub source: Option<MountSource>,
}

/// A local directory files are read from: the build context, or a directory given as
/// `--build-context NAME=DIR`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LocalDir {
    Main,
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    Context(LocalDir),
    Stage(StepIndex),
    Image(usize),
}

/// A RUN's environment, shared by the RUNs between two ENV/ARG lines.
pub type RunEnv = Arc<[(String, String)]>;

#[derive(Debug, Clone)]
pub struct RunOp {
    pub args: Vec<String>,
    /// Shared by the RUNs between two ENV/ARG lines: a copy per RUN made planning quadratic
    /// (and its memory: RUNs × variables).
    pub env: RunEnv,
    pub cwd: String,
    pub user: String,
    pub network: ast::NetworkMode,
    /// `RUN --security=insecure` (allowed by `--allow security.insecure`): a privileged
    /// container.
    pub insecure: bool,
    pub mounts: Vec<RunMount>,
    /// Files to provide read-only under /dev/pipes for a shebang heredoc (name, content).
    pub scripts: Vec<(String, String)>,
    /// Build args (name=value) that reach the command: part of the cache key.
    pub args_used: BTreeMap<String, String>,
    /// The platform the command runs as (its stage's): emulated when the host cannot run it.
    pub platform: Platform,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyFrom {
    Context(LocalDir),
    Stage(StepIndex),
    Image(usize),
}

#[derive(Debug, Clone)]
pub struct CopyOp {
    pub from: CopyFrom,
    pub sources: Vec<String>,
    /// Inline heredoc files: (name, content).
    pub inline: Vec<(String, String)>,
    pub dest: String,
    pub workdir: String,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub parents: bool,
    pub exclude: Vec<String>,
    pub link: bool,
    pub is_add: bool,
    pub checksum: Option<String>,
    pub unpack: Option<bool>,
    /// ADD `--keep-git-dir`.
    pub keep_git_dir: bool,
}

#[derive(Debug, Clone)]
pub enum Op {
    /// The stage's starting rootfs.
    Base(RootSource),
    Run(Box<RunOp>),
    Copy(Box<CopyOp>),
    /// WORKDIR: create the directory (owned by USER when set, as BuildKit does).
    Mkdir {
        path: String,
        user: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Step {
    pub stage: usize,
    /// `[installer 3/6] RUN npm install`
    pub name: String,
    pub line: usize,
    pub op: Op,
    /// The step whose rootfs this one starts from (None for a Base step).
    pub parent: Option<StepIndex>,
    /// Every step that must finish first (parent and sources).
    pub deps: Vec<StepIndex>,
    /// The instruction text for `--explain` and history.
    pub text: String,
    /// The platform variant ([`Plan::variants`]) that planned it: the first one for the steps
    /// of a stage shared by every platform.
    pub variant: usize,
}

#[derive(Debug, Clone)]
pub struct PlannedStage {
    pub index: usize,
    pub display: String,
    pub first_step: StepIndex,
    pub last_step: StepIndex,
    /// Config and history at the end of the stage. History entries that are not empty layers
    /// are matched, in order, with the stage chain's layers at export time.
    pub config: ImageConfig,
    /// Aligned with `config.history`: the step whose layer an entry describes. None for entries
    /// of the base image (kept as they are) and for metadata-only instructions.
    pub history_steps: Vec<Option<StepIndex>>,
    /// The platform the stage is built for (its RUNs run as, its base images are picked for).
    pub platform: Platform,
    /// Planned once for every target platform (see [`platform`]).
    pub shared: bool,
}

/// One target platform of a build: which planned stage serves each Dockerfile stage.
#[derive(Debug, Clone)]
pub struct Variant {
    pub platform: Platform,
    /// Dockerfile stage index → position in [`Plan::stages`].
    pub stages: BTreeMap<usize, usize>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Needed stages only, in build order.
    pub stages: Vec<PlannedStage>,
    pub images: Vec<ResolvedImage>,
    /// The stage exported (the first of `targets`).
    pub target: usize,
    /// Every stage exported, in the order asked (`[target]` unless several `--target`s).
    pub targets: Vec<usize>,
    /// Display names of the stages that are not built.
    pub skipped: Vec<String>,
    pub graph: StageGraph,
    /// One per target platform, in the order `--platform` named them (one, the host's, when
    /// none was given). `stages` holds the stages of all of them; [`Plan::stage`] finds the
    /// first variant's.
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub target: Option<String>,
    /// More targets built in the same graph (several `--target`s; `target` is the first).
    pub more_targets: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    /// `--network=none` for the whole build.
    pub network_none: bool,
    /// `--allow security.insecure`: `RUN --security=insecure` may run privileged.
    pub allow_insecure: bool,
    /// Names given as `--build-context NAME=DIR`: `FROM NAME`, `COPY --from=NAME` and
    /// `RUN --mount=from=NAME` read that directory (a stage of the same name wins in
    /// `--from`, as in BuildKit).
    pub named_dirs: BTreeSet<String>,
    /// Stage names that a `--build-context` of the same name replaces (dirs or images): the
    /// stage is the context, its instructions are not run.
    pub replaced_stages: BTreeSet<String>,
    /// Target platforms (`--platform`), normalized; empty: the host's.
    pub platforms: Vec<Platform>,
}

impl Plan {
    pub fn stage(&self, index: usize) -> Option<&PlannedStage> {
        self.stages.iter().find(|s| s.index == index)
    }

    /// Stage `index` as platform variant `variant` builds it.
    pub fn stage_in(&self, variant: usize, index: usize) -> Option<&PlannedStage> {
        let v = self.variants.get(variant)?;
        v.stages.get(&index).map(|&i| &self.stages[i])
    }

    /// The planned stage a step belongs to.
    pub fn stage_of(&self, step: StepIndex) -> Option<&PlannedStage> {
        let s = &self.steps[step];
        self.stage_in(s.variant, s.stage)
    }

    /// Several target platforms: one image per platform, and an index.
    pub fn multi_platform(&self) -> bool {
        self.variants.len() > 1
    }

    /// The stages `target` needs (itself included): what its image is built from.
    pub fn stages_needed(&self, target: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![target];
        while let Some(s) = stack.pop() {
            if seen.insert(s) {
                stack.extend(
                    self.graph
                        .edges
                        .iter()
                        .filter(|e| e.stage == s)
                        .map(|e| e.depends_on),
                );
            }
        }
        seen
    }

    /// The targets whose image needs `stage`, by display name.
    pub fn targets_needing(&self, stage: usize) -> Vec<String> {
        self.targets
            .iter()
            .filter(|t| self.stages_needed(**t).contains(&stage))
            .map(|t| self.graph.stages[*t].display.clone())
            .collect()
    }
}

/// The graph of `target` and `more` together: a stage is built when any target needs it
/// (levels do not depend on the target). Returns the graph and the targets' indexes.
fn graph_of_targets(
    df: &Dockerfile,
    ev: &Evaluator,
    target: Option<&str>,
    more: &[String],
    replaced: &BTreeSet<String>,
) -> Result<(StageGraph, Vec<usize>)> {
    let mut graph = StageGraph::build_replacing(df, ev, target, replaced)?;
    let mut targets = vec![graph.target];
    for t in more {
        let g = StageGraph::build_replacing(df, ev, Some(t), replaced)?;
        if targets.contains(&g.target) {
            return Err(BuildError::plan(format!(
                "--target {t}: stage {} is named twice",
                g.stages[g.target].display
            )));
        }
        targets.push(g.target);
        for (node, other) in graph.stages.iter_mut().zip(&g.stages) {
            if !other.skipped {
                node.skipped = false;
                node.level = other.level;
            }
        }
    }
    if !more.is_empty() {
        let mut levels: Vec<Vec<usize>> = Vec::new();
        for node in graph.stages.iter().filter(|n| !n.skipped) {
            let l = node.level.expect("a built stage has a level");
            if levels.len() <= l {
                levels.resize(l + 1, Vec::new());
            }
            levels[l].push(node.index);
        }
        graph.levels = levels;
    }
    Ok((graph, targets))
}

struct Planner<'a> {
    df: &'a Dockerfile,
    ev: &'a Evaluator,
    images: &'a dyn ImageSource,
    opts: &'a PlanOptions,
    plan_steps: Vec<Step>,
    resolved: Vec<ResolvedImage>,
    /// (reference, platform) → position in `resolved`.
    by_ref: BTreeMap<(String, String), usize>,
    /// The current variant's stages.
    stages: BTreeMap<usize, PlannedStage>,
    /// The RUN environments so far, for `limits::MAX_RUN_ENV_BYTES`.
    run_env_bytes: usize,
    /// The variant being planned, its target platform, and the platform of the stage being
    /// planned (base images and `--from` images are picked for it).
    variant: usize,
    target_platform: Platform,
    stage_platform: Platform,
    /// Whether the stage being planned has read a `TARGET*` ARG so far.
    reads_target: bool,
    /// Names whose value depends on the target platform: the `TARGET*` ARGs, and global ARGs
    /// whose values differ between the platforms (`ARG X=$TARGETARCH`).
    target_dependent: BTreeSet<String>,
    /// Stages planned once for every platform (see [`platform`]), by Dockerfile index.
    shared: BTreeMap<usize, PlannedStage>,
    /// Every stage planned, in planning order, and each variant's map into it.
    all_stages: Vec<PlannedStage>,
}

/// Build the plan for `df`: once per target platform, stages that do not depend on the
/// target planned once (see [`platform`]).
pub fn plan(df: &Dockerfile, opts: &PlanOptions, images: &dyn ImageSource) -> Result<Plan> {
    let platforms = if opts.platforms.is_empty() {
        vec![Platform::host()]
    } else {
        opts.platforms.clone()
    };
    let evs = platforms
        .iter()
        .map(|t| Evaluator::new(df, platform::eval_options(&opts.build_args, t)))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut target_dependent: BTreeSet<String> = platform::TARGET_ARGS
        .iter()
        .map(|a| a.to_string())
        .collect();
    let first_globals = evs[0].global_args();
    for ev in &evs[1..] {
        let globals = ev.global_args();
        for (k, v) in &globals {
            if first_globals.get(k) != Some(v) {
                target_dependent.insert(k.clone());
            }
        }
        for k in first_globals.keys() {
            if !globals.contains_key(k) {
                target_dependent.insert(k.clone());
            }
        }
    }
    let mut p = Planner {
        df,
        ev: &evs[0],
        images,
        opts,
        plan_steps: Vec::new(),
        resolved: Vec::new(),
        by_ref: BTreeMap::new(),
        stages: BTreeMap::new(),
        run_env_bytes: 0,
        variant: 0,
        target_platform: platforms[0].clone(),
        stage_platform: platforms[0].clone(),
        reads_target: false,
        target_dependent,
        shared: BTreeMap::new(),
        all_stages: Vec::new(),
    };
    let mut first = None;
    let mut variants = Vec::new();
    for (v, (ev, tp)) in evs.iter().zip(&platforms).enumerate() {
        let (graph, targets) = graph_of_targets(
            df,
            ev,
            opts.target.as_deref(),
            &opts.more_targets,
            &opts.replaced_stages,
        )?;
        p.ev = ev;
        p.variant = v;
        p.target_platform = tp.clone();
        p.stages.clear();
        let mut map = BTreeMap::new();
        for level in &graph.levels {
            for &si in level {
                if let Some(ps) = p.shared.get(&si) {
                    p.stages.insert(si, ps.clone());
                    let at = p
                        .all_stages
                        .iter()
                        .position(|s| s.first_step == ps.first_step);
                    map.insert(si, at.expect("a shared stage is planned"));
                    continue;
                }
                p.plan_stage(si, &graph)?;
                let ps = p.stages[&si].clone();
                if ps.shared && platforms.len() > 1 {
                    p.shared.insert(si, ps.clone());
                }
                p.all_stages.push(ps);
                map.insert(si, p.all_stages.len() - 1);
            }
        }
        // Each platform's image is the target stage as that platform builds it: a target on
        // a fixed platform would make every entry of the index the same foreign image.
        if platforms.len() > 1 {
            let t = targets[0];
            let built = &p.all_stages[map[&t]].platform;
            if built != tp {
                return Err(BuildError::plan(format!(
                    "the target stage {} is built for {built} (its FROM --platform, or its parent \
                     stage's), not for {tp}: a multi-platform build needs a target stage on the \
                     target platform (FROM --platform=$TARGETPLATFORM, or no --platform); build \
                     it with --platform {built} alone",
                    graph.stages[t].display
                )));
            }
        }
        variants.push(Variant {
            platform: tp.clone(),
            stages: map,
        });
        if first.is_none() {
            first = Some((graph, targets));
        }
    }
    let (graph, targets) = first.expect("at least one platform");
    let skipped = graph
        .stages
        .iter()
        .filter(|s| s.skipped)
        .map(|s| s.display.clone())
        .collect();
    // Stages in build order; the variants' maps follow the sort.
    let mut order: Vec<usize> = (0..p.all_stages.len()).collect();
    order.sort_by_key(|&i| p.all_stages[i].first_step);
    let mut new_pos = vec![0; order.len()];
    for (new, &old) in order.iter().enumerate() {
        new_pos[old] = new;
    }
    for v in &mut variants {
        for pos in v.stages.values_mut() {
            *pos = new_pos[*pos];
        }
    }
    let mut all: Vec<Option<PlannedStage>> = p.all_stages.into_iter().map(Some).collect();
    let stages = order
        .iter()
        .map(|&i| all[i].take().expect("once"))
        .collect();
    let plan = Plan {
        steps: p.plan_steps,
        stages,
        images: p.resolved,
        target: graph.target,
        targets,
        skipped,
        graph,
        variants,
    };
    Ok(plan)
}

fn exec_or_shell(cmd: &CommandLine, rc: &RunConfig) -> Vec<String> {
    match cmd {
        CommandLine::Exec(v) => v.clone(),
        CommandLine::Shell(s) => {
            let mut v = rc.shell_or_default();
            v.push(s.clone());
            v
        }
    }
}

impl Planner<'_> {
    /// An image for the current stage's platform.
    fn image(&mut self, reference: &str) -> Result<usize> {
        let key = (reference.to_string(), self.stage_platform.to_string());
        if let Some(&i) = self.by_ref.get(&key) {
            return Ok(i);
        }
        let img = self.images.resolve(reference, &self.stage_platform)?;
        self.resolved.push(img);
        let i = self.resolved.len() - 1;
        self.by_ref.insert(key, i);
        Ok(i)
    }

    /// A base image missing from the store, as an error at the Dockerfile line that names it;
    /// a `--from` value that is close to a stage's name is probably that stage, misspelled.
    fn missing_image_at(
        &self,
        e: BuildError,
        span: kiln_dockerfile::Span,
        reference: &str,
        is_from_flag: bool,
    ) -> BuildError {
        // A failed pull says the registry's words (docker's) at the line; the hint stays.
        let (pull_error, hint) = match e {
            BuildError::MissingImage { hint, .. } => (None, hint),
            // The store has the name for other platforms: that is the message.
            BuildError::NoPlatform { message, hint, .. } => (Some(message), hint),
            BuildError::PullFailed { message, .. } => (
                Some(message),
                "check the name and tag, `kiln login` to the registry, or load the image with `kiln load -i IMAGE.tar`".to_string(),
            ),
            e => return e,
        };
        let near = self
            .df
            .stages
            .iter()
            .filter_map(|s| s.name.as_deref())
            .find(|n| crate::plan::values::edit_distance(n, &reference.to_ascii_lowercase()) <= 2);
        let (message, hint) = match near {
            Some(n) if is_from_flag => (
                format!("--from={reference}: no stage or image by that name"),
                format!("did you mean stage {n:?}?"),
            ),
            _ if is_from_flag => (
                match pull_error {
                    Some(m) => format!("--from={reference}: no stage by that name, and {m}"),
                    None => format!(
                        "--from={reference}: no stage by that name, and no image {reference:?} in the store"
                    ),
                },
                hint,
            ),
            _ => (
                pull_error
                    .unwrap_or_else(|| format!("base image {reference:?} is not in the store")),
                hint,
            ),
        };
        BuildError::Dockerfile(kiln_dockerfile::Error {
            kind: kiln_dockerfile::ErrorKind::Stage,
            file: self.df.file.clone(),
            span,
            message,
            hint: Some(hint),
        })
    }

    fn push(&mut self, mut step: Step) -> StepIndex {
        step.variant = self.variant;
        // The name is only shown (progress, errors): a RUN of megabytes is shown clipped.
        step.name = crate::event::clip(&step.name).into_owned();
        self.plan_steps.push(step);
        self.plan_steps.len() - 1
    }

    /// `--from` value → a stage's last step or an image.
    fn resolve_from_value(
        &mut self,
        value: &str,
        stage: usize,
        at: kiln_dockerfile::Span,
    ) -> Result<CopyFrom> {
        let target = if let Ok(n) = value.parse::<usize>() {
            if n >= self.df.stages.len() {
                return Err(BuildError::plan(format!(
                    "invalid stage index {n} in --from"
                )));
            }
            Some(n)
        } else {
            let lower = value.to_lowercase();
            self.df
                .stages
                .iter()
                .find(|s| s.name.as_deref() == Some(lower.as_str()))
                .map(|s| s.index)
        };
        match target {
            Some(t) if t == stage => Err(BuildError::plan(format!(
                "stage {value} cannot copy from itself"
            ))),
            Some(t) => match self.stages.get(&t) {
                Some(ps) => Ok(CopyFrom::Stage(ps.last_step)),
                None => Err(BuildError::plan(format!(
                    "stage {value} is not planned before stage {stage}"
                ))),
            },
            None if self.opts.named_dirs.contains(value) => {
                Ok(CopyFrom::Context(LocalDir::Named(value.to_string())))
            }
            None => match self.image(value) {
                Ok(i) => Ok(CopyFrom::Image(i)),
                Err(e) => Err(self.missing_image_at(e, at, value, true)),
            },
        }
    }

    fn plan_stage(&mut self, si: usize, graph: &StageGraph) -> Result<()> {
        let stage = &self.df.stages[si];
        let node = &graph.stages[si];
        let (stage_platform, platform_fixed) = self.stage_platform_of(si, node)?;
        self.stage_platform = stage_platform.clone();
        self.reads_target = false;
        // A stage replaced by a named context is just the context.
        let replaced = stage
            .name
            .as_ref()
            .is_some_and(|n| self.opts.replaced_stages.contains(n));
        // Before its base is resolved (or pulled): a stage whose RUNs cannot run here fails
        // at once, saying what to install.
        if !replaced
            && stage
                .instructions
                .iter()
                .any(|i| matches!(i.command, Command::Run(_)))
        {
            platform::check_runnable(&stage_platform, &node.display)?;
        }
        let (root, mut config, history_steps) = self.stage_base(&node.base, node.span)?;
        let instructions = self.stage_instructions(si, replaced, &mut config)?;
        let base_step = self.push(Step {
            stage: si,
            name: match (&node.base, replaced) {
                (Base::Image { reference }, true) => format!("FROM {reference} (build context)"),
                // BuildKit shows the base as it resolved (`FROM ${BASE}` → `FROM node:18`).
                (Base::Image { reference }, false) => format!("FROM {reference}"),
                _ => format!("FROM {}", stage.from_cmd().image),
            },
            line: stage.span.line,
            op: Op::Base(root.clone()),
            parent: None,
            deps: match root {
                RootSource::Step(s) => vec![s],
                _ => vec![],
            },
            text: stage.from.original.trim().to_string(),
            variant: 0,
        });
        let mut st = StageState {
            si,
            last: base_step,
            env_slots: EnvSlots::new(&config.config),
            config,
            history_steps,
            run_env: None,
            cmd_set: false,
        };
        if let Base::Image { reference } = &node.base
            && self.opts.named_dirs.contains(reference)
        {
            self.push_named_dir_base(&mut st, reference);
        }
        let env = st.config.config.env_pairs();
        let mut sev = self.ev.stage(&env);
        for ins in &instructions {
            self.plan_instruction(&mut st, &mut sev, ins)?;
        }
        // Shared by every platform: the platform is not the target's, nothing reads TARGET*,
        // and every other stage it reads from is shared too.
        let shared = platform_fixed
            && !self.reads_target
            && (base_step..self.plan_steps.len()).all(|i| {
                self.plan_steps[i].deps.iter().all(|&d| {
                    let ds = self.plan_steps[d].stage;
                    ds == si || self.shared.contains_key(&ds)
                })
            });
        self.stages.insert(
            si,
            PlannedStage {
                index: si,
                display: stage.display_name(),
                first_step: base_step,
                last_step: st.last,
                config: st.config,
                history_steps: st.history_steps,
                platform: stage_platform,
                shared,
            },
        );
        Ok(())
    }

    /// Whether `used` names a value that depends on the target platform.
    fn reads_target_args(&self, used: &BTreeSet<String>) -> bool {
        used.iter().any(|n| self.target_dependent.contains(n))
    }

    /// The platform stage `si` is built for, and whether it is fixed (not the target's):
    /// its `FROM --platform` (expanded; fixed unless it reads `TARGET*`), else its parent
    /// stage's, else the target platform.
    fn stage_platform_of(
        &mut self,
        si: usize,
        node: &kiln_dockerfile::graph::StageNode,
    ) -> Result<(Platform, bool)> {
        let resolved = self.ev.resolve_from(&self.df.stages[si])?;
        let from_reads_target = self.reads_target_args(&resolved.used_args);
        if let Some(p) = &node.platform {
            let parsed = platform::parse_platform(p).map_err(|m| {
                BuildError::Dockerfile(kiln_dockerfile::Error {
                    kind: kiln_dockerfile::ErrorKind::Stage,
                    file: self.df.file.clone(),
                    span: node.span,
                    message: format!("FROM --platform={p}: {m}"),
                    hint: Some(
                        "use linux/ARCH[/VARIANT], $BUILDPLATFORM or $TARGETPLATFORM".into(),
                    ),
                })
            })?;
            return Ok((parsed, !from_reads_target));
        }
        if let Base::Stage { index } = &node.base
            && let Some(parent) = self.stages.get(index)
        {
            return Ok((parent.platform.clone(), parent.shared && !from_reads_target));
        }
        Ok((self.target_platform.clone(), false))
    }

    /// The root a stage starts from, the config it inherits (with the defaults BuildKit fills
    /// in) and the layer steps of the inherited history.
    fn stage_base(
        &mut self,
        base: &Base,
        span: kiln_dockerfile::Span,
    ) -> Result<(RootSource, ImageConfig, Vec<Option<StepIndex>>)> {
        let (root, mut config, history_steps) = match base {
            Base::Scratch => {
                // BuildKit's empty image: WorkingDir "/" (PATH is added below).
                let mut c = ImageConfig::default();
                c.config.working_dir = Some("/".into());
                (RootSource::Scratch, c, Vec::new())
            }
            Base::Image { reference } if self.opts.named_dirs.contains(reference) => {
                // A directory as a base: its files on an empty image (added by the caller).
                let mut c = ImageConfig::default();
                c.config.working_dir = Some("/".into());
                (RootSource::Scratch, c, Vec::new())
            }
            Base::Image { reference } => {
                let i = self
                    .image(reference)
                    .map_err(|e| self.missing_image_at(e, span, reference, false))?;
                let c = self.resolved[i].config.clone();
                let n = c.history.len();
                (RootSource::Image(i), c, vec![None; n])
            }
            Base::Stage { index } => {
                let ps = self
                    .stages
                    .get(index)
                    .ok_or_else(|| BuildError::plan(format!("stage {index} not planned")))?;
                (
                    RootSource::Step(ps.last_step),
                    ps.config.clone(),
                    ps.history_steps.clone(),
                )
            }
        };
        // The image is for the stage's platform, whatever its base said (as BuildKit's
        // dockerfile2llb sets it).
        config.os = self.stage_platform.os.clone();
        config.architecture = self.stage_platform.architecture.clone();
        config.variant = self.stage_platform.variant.clone();
        config.created = None;
        if config.config.get_env("PATH").is_none() {
            config.config.set_env("PATH", DEFAULT_PATH);
        }
        Ok((root, config, history_steps))
    }

    /// The instructions a stage runs: the ONBUILD triggers of its base (an image or another
    /// stage, as BuildKit; taken out of the config, so the stage's OnBuild holds only its own
    /// ONBUILDs), then its own. A stage replaced by a named context runs none.
    fn stage_instructions(
        &self,
        si: usize,
        replaced: bool,
        config: &mut ImageConfig,
    ) -> Result<Vec<Instruction>> {
        let stage = &self.df.stages[si];
        let mut instructions: Vec<Instruction> = Vec::new();
        if replaced {
            return Ok(instructions);
        }
        if let Some(triggers) = config.config.on_build.take() {
            let parsed = kiln_dockerfile::parse_onbuild_triggers(&triggers).map_err(|e| {
                BuildError::plan(format!(
                    "ONBUILD triggers of {}: {e}",
                    stage.from_cmd().image
                ))
            })?;
            for mut ins in parsed {
                ins.span = stage.span;
                instructions.push(ins);
            }
        }
        instructions.extend(stage.instructions.iter().cloned());
        Ok(instructions)
    }

    /// `FROM NAME` where NAME is a `--build-context` directory: its files copied onto the
    /// empty base, with the history entry BuildKit's exporter gives such a layer.
    fn push_named_dir_base(&mut self, st: &mut StageState, reference: &str) {
        let stage = &self.df.stages[st.si];
        let from = CopyFrom::Context(LocalDir::Named(reference.to_string()));
        let op = copy_op(
            from,
            &[".".to_string()],
            &[],
            "/",
            &st.config.config,
            &None,
            &None,
            &[],
            false,
        );
        st.last = self.push(Step {
            stage: st.si,
            name: format!("FROM {reference} (build context)"),
            line: stage.span.line,
            op: Op::Copy(Box::new(op)),
            parent: Some(st.last),
            deps: vec![st.last],
            text: stage.from.original.trim().to_string(),
            variant: 0,
        });
        st.config.history.push(History {
            created: None,
            created_by: None,
            author: None,
            comment: None,
            empty_layer: false,
        });
        st.history_steps.push(Some(st.last));
    }

    /// One instruction of a stage: expanded, applied to the config, planned as a step when it
    /// makes a layer, recorded in the history.
    fn plan_instruction(
        &mut self,
        st: &mut StageState,
        sev: &mut StageEval<'_>,
        ins: &Instruction,
    ) -> Result<()> {
        let exp = sev.expand_instruction(ins)?;
        self.reads_target |= self.reads_target_args(&exp.used_args);
        let x = &exp.instruction;
        let hist_by = crate::plan::history::created_by(ins, x, &st.config.config);
        if matches!(x.command, Command::Env(_) | Command::Arg(_)) {
            st.run_env = None;
        }
        let layer_step = match &x.command {
            Command::Workdir(w) => Some(self.plan_workdir(st, sev, ins, x, &w.path)),
            Command::Run(r) => Some(self.plan_run(st, sev, ins, &exp, r)?),
            Command::Copy(c) => {
                let from = match &c.from {
                    Some(f) => self.resolve_from_value(f, st.si, x.span)?,
                    None => CopyFrom::Context(LocalDir::Main),
                };
                let op = CopyOp {
                    parents: c.parents,
                    ..copy_op(
                        from.clone(),
                        &c.sources,
                        &c.inline,
                        &c.dest,
                        &st.config.config,
                        &c.chown,
                        &c.chmod,
                        &c.exclude,
                        c.link,
                    )
                };
                Some(self.push_file_step(st, sev, ins, x, op, from))
            }
            Command::Add(c) => {
                let op = CopyOp {
                    is_add: true,
                    checksum: c.checksum.clone(),
                    unpack: c.unpack,
                    keep_git_dir: c.keep_git_dir.unwrap_or(false),
                    ..copy_op(
                        CopyFrom::Context(LocalDir::Main),
                        &c.sources,
                        &c.inline,
                        &c.dest,
                        &st.config.config,
                        &c.chown,
                        &c.chmod,
                        &c.exclude,
                        c.link,
                    )
                };
                let from = CopyFrom::Context(LocalDir::Main);
                Some(self.push_file_step(st, sev, ins, x, op, from))
            }
            cmd => {
                apply_to_config(cmd, st);
                None
            }
        };
        if let Some(s) = layer_step {
            st.last = s;
        }
        if let Some(hist_by) = hist_by {
            st.config.history.push(History {
                created: None,
                created_by: Some(hist_by),
                author: None,
                comment: Some("buildkit.dockerfile.v0".into()),
                empty_layer: layer_step.is_none(),
            });
            st.history_steps.push(layer_step);
        }
        Ok(())
    }

    /// WORKDIR: the config's working directory, and a step that creates it.
    fn plan_workdir(
        &mut self,
        st: &mut StageState,
        sev: &StageEval<'_>,
        ins: &Instruction,
        x: &Instruction,
        dir: &str,
    ) -> StepIndex {
        let rc = &mut st.config.config;
        let cur = rc.working_dir.clone().unwrap_or_else(|| "/".into());
        let path = join_workdir(&cur, dir);
        rc.working_dir = Some(path.clone());
        let user = rc.user.clone().filter(|u| !u.is_empty());
        let name = display_name(ins, &st.run_env(sev).0, self.df.escape, Echo::File);
        self.push(Step {
            stage: st.si,
            name,
            line: x.span.line,
            op: Op::Mkdir { path, user },
            parent: Some(st.last),
            deps: vec![st.last],
            text: x.original.trim().to_string(),
            variant: 0,
        })
    }

    /// RUN: its mounts' sources resolved, its environment (within the build's limit), its
    /// network and security mode.
    fn plan_run(
        &mut self,
        st: &mut StageState,
        sev: &StageEval<'_>,
        ins: &Instruction,
        exp: &kiln_dockerfile::Expansion,
        r: &ast::Run,
    ) -> Result<StepIndex> {
        let x = &exp.instruction;
        let rc = &st.config.config;
        let args = run_args(r, rc);
        let mut mounts = Vec::new();
        let mut deps = vec![st.last];
        for m in &r.mounts {
            let Some(mount) = m.resolved.clone() else {
                return Err(BuildError::plan(format!("unresolved mount {}", m.raw)));
            };
            let source = match (mount.kind, &mount.from) {
                (MountType::Bind | MountType::Cache, Some(f)) => {
                    Some(match self.resolve_from_value(f, st.si, ins.span)? {
                        CopyFrom::Stage(s) => {
                            deps.push(s);
                            MountSource::Stage(s)
                        }
                        CopyFrom::Image(i) => MountSource::Image(i),
                        CopyFrom::Context(d) => MountSource::Context(d),
                    })
                }
                (MountType::Bind, None) => Some(MountSource::Context(LocalDir::Main)),
                _ => None,
            };
            mounts.push(RunMount { mount, source });
        }
        let scripts = shebang_scripts(r);
        let (env, env_bytes) = st.run_env(sev).clone();
        self.run_env_bytes = self.run_env_bytes.saturating_add(env_bytes);
        if self.run_env_bytes > MAX_RUN_ENV_BYTES {
            return Err(run_env_too_large(&self.df.file, x, env.len()));
        }
        let name = display_name(ins, &env, self.df.escape, Echo::Run);
        let args_used = sev
            .args()
            .into_iter()
            .filter(|(k, _)| exp.used_args.contains(k))
            .collect();
        let network = if self.opts.network_none {
            ast::NetworkMode::None
        } else {
            r.network.clone().unwrap_or(ast::NetworkMode::Default)
        };
        let insecure = r.security == Some(ast::SecurityMode::Insecure);
        if insecure && !self.opts.allow_insecure {
            return Err(insecure_not_allowed(&self.df.file, x));
        }
        let rc = &st.config.config;
        let op = RunOp {
            args,
            env,
            cwd: rc.working_dir.clone().unwrap_or_else(|| "/".into()),
            user: rc.user.clone().unwrap_or_default(),
            network,
            insecure,
            mounts,
            scripts,
            args_used,
            platform: self.stage_platform.clone(),
        };
        Ok(self.push(Step {
            stage: st.si,
            name,
            line: x.span.line,
            op: Op::Run(Box::new(op)),
            parent: Some(st.last),
            deps,
            text: x.original.trim().to_string(),
            variant: 0,
        }))
    }

    /// COPY/ADD: the step, named as the progress view shows it.
    fn push_file_step(
        &mut self,
        st: &mut StageState,
        sev: &StageEval<'_>,
        ins: &Instruction,
        x: &Instruction,
        op: CopyOp,
        from: CopyFrom,
    ) -> StepIndex {
        let name = display_name(ins, &st.run_env(sev).0, self.df.escape, Echo::File);
        self.push_copy(st.si, x, name, st.last, op, from)
    }

    fn push_copy(
        &mut self,
        si: usize,
        x: &Instruction,
        name: String,
        last: StepIndex,
        op: CopyOp,
        from: CopyFrom,
    ) -> StepIndex {
        let mut deps = vec![last];
        if let CopyFrom::Stage(s) = from {
            deps.push(s);
        }
        self.push(Step {
            stage: si,
            name,
            line: x.span.line,
            op: Op::Copy(Box::new(op)),
            parent: Some(last),
            deps,
            text: x.original.trim().to_string(),
            variant: 0,
        })
    }
}

/// What one stage's planning carries from instruction to instruction.
struct StageState {
    si: usize,
    /// The stage's last step so far.
    last: StepIndex,
    config: ImageConfig,
    /// The layer step of each history entry (None: inherited from an image, or empty).
    history_steps: Vec<Option<StepIndex>>,
    env_slots: EnvSlots,
    /// What RUN gets (and its size), until the next ENV or ARG changes it.
    run_env: Option<(RunEnv, usize)>,
    /// Whether the stage has set CMD (ENTRYPOINT then leaves it).
    cmd_set: bool,
}

impl StageState {
    fn run_env(&mut self, sev: &StageEval<'_>) -> &(RunEnv, usize) {
        self.run_env.get_or_insert_with(|| run_env_of(sev))
    }
}

/// An instruction that only changes the image config (ENV, LABEL, CMD, ...).
fn apply_to_config(cmd: &Command, st: &mut StageState) {
    let rc = &mut st.config.config;
    match cmd {
        Command::From(_) | Command::Arg(_) => {}
        Command::Env(kv) => {
            for p in &kv.pairs {
                st.env_slots.set(rc, &p.key, &p.value);
            }
        }
        Command::Label(kv) => {
            let labels = rc.labels.get_or_insert_with(BTreeMap::new);
            for p in &kv.pairs {
                labels.insert(p.key.clone(), p.value.clone());
            }
        }
        Command::Maintainer(m) => st.config.author = Some(m.name.clone()),
        Command::Expose(e) => {
            let ports = rc.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in &e.ports {
                for port in expand_port_spec(p) {
                    ports.insert(port, serde_json::json!({}));
                }
            }
        }
        Command::Volume(v) => {
            let vols = rc.volumes.get_or_insert_with(BTreeMap::new);
            for p in &v.paths {
                vols.insert(p.clone(), serde_json::json!({}));
            }
        }
        Command::User(u) => rc.user = Some(u.user.clone()),
        Command::Stopsignal(s) => rc.stop_signal = Some(s.signal.clone()),
        Command::Shell(s) => rc.shell = Some(s.shell.clone()),
        Command::Onbuild(o) => rc
            .on_build
            .get_or_insert_with(Vec::new)
            .push(o.expression.clone()),
        Command::Cmd(c) => {
            rc.cmd = Some(exec_or_shell(&c.cmd, rc));
            // dockerd 20.10's BuildKit marks every CMD so (ENTRYPOINT leaves it).
            rc.extra
                .insert("ArgsEscaped".into(), serde_json::Value::Bool(true));
            st.cmd_set = true;
        }
        Command::Entrypoint(c) => {
            rc.entrypoint = Some(exec_or_shell(&c.cmd, rc));
            if !st.cmd_set {
                rc.cmd = None;
            }
        }
        Command::Healthcheck(h) => rc.healthcheck = Some(healthcheck(h)),
        Command::Workdir(_) | Command::Run(_) | Command::Copy(_) | Command::Add(_) => {
            unreachable!("planned as steps")
        }
    }
}

/// HEALTHCHECK as the config keeps it.
fn healthcheck(h: &ast::Healthcheck) -> Healthcheck {
    match h {
        ast::Healthcheck::None => Healthcheck {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        },
        ast::Healthcheck::Cmd(hc) => {
            let test = match &hc.cmd {
                CommandLine::Exec(v) => std::iter::once("CMD".to_string())
                    .chain(v.iter().cloned())
                    .collect(),
                CommandLine::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
            };
            Healthcheck {
                test: Some(test),
                interval: hc.interval,
                timeout: hc.timeout,
                start_period: hc.start_period,
                start_interval: hc.start_interval,
                retries: hc.retries,
            }
        }
    }
}

/// What a RUN gets at this point of the stage (and its size): ENV, ARGs, PATH.
fn run_env_of(sev: &StageEval<'_>) -> (RunEnv, usize) {
    let mut env = sev.run_env();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    let bytes = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    (env.into(), bytes)
}

/// `ins` as the progress view shows it (see [`crate::plan::display::display_command`]).
fn display_name(ins: &Instruction, env: &[(String, String)], escape: char, echo: Echo) -> String {
    display_command(&ins.original, env, escape, echo)
}

/// The error for `limits::MAX_RUN_ENV_BYTES`, at the RUN that passes it.
/// BuildKit's refusal of `RUN --security=insecure` without the entitlement.
fn insecure_not_allowed(file: &str, ins: &Instruction) -> BuildError {
    BuildError::Dockerfile(kiln_dockerfile::Error {
        kind: kiln_dockerfile::ErrorKind::Flag,
        file: file.into(),
        span: ins.span,
        message: "RUN --security=insecure: security.insecure is not allowed".into(),
        hint: Some(
            "the step would run privileged (all capabilities, /proc and /sys unmasked): pass --allow security.insecure to kiln build if you trust this Dockerfile".into(),
        ),
    })
}

fn run_env_too_large(file: &str, ins: &Instruction, vars: usize) -> BuildError {
    BuildError::Dockerfile(kiln_dockerfile::Error {
        kind: kiln_dockerfile::ErrorKind::Expansion,
        file: file.into(),
        span: ins.span,
        message: format!(
            "environment too large: the RUN instructions so far get more than {} of environment in all (kiln's limit); this one gets {vars} variables",
            human(MAX_RUN_ENV_BYTES as u64)
        ),
        hint: Some(
            "every RUN gets the whole environment: set fewer ENV/ARG variables, or set them before the RUNs rather than between them".into(),
        ),
    })
}

/// `RunConfig::set_env` with an index of the names, so that a stage of many ENV lines is
/// not quadratic (set_env looks for the name from the front, as this index does).
struct EnvSlots(HashMap<String, usize>);

impl EnvSlots {
    fn new(rc: &RunConfig) -> EnvSlots {
        let mut index = HashMap::new();
        for (i, kv) in rc.env.iter().flatten().enumerate() {
            let name = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
            index.entry(name.to_string()).or_insert(i);
        }
        EnvSlots(index)
    }

    fn set(&mut self, rc: &mut RunConfig, name: &str, value: &str) {
        let env = rc.env.get_or_insert_with(Vec::new);
        let entry = format!("{name}={value}");
        match self.0.get(name) {
            Some(&i) => env[i] = entry,
            None => {
                // A name with `=` never matches an entry's name in set_env either.
                if !name.contains('=') {
                    self.0.insert(name.to_string(), env.len());
                }
                env.push(entry);
            }
        }
    }
}

/// The fields COPY and ADD share; the callers set the ones only one of them has.
#[allow(clippy::too_many_arguments)]
fn copy_op(
    from: CopyFrom,
    sources: &[String],
    inline: &[ast::Heredoc],
    dest: &str,
    rc: &RunConfig,
    chown: &Option<String>,
    chmod: &Option<String>,
    exclude: &[String],
    link: bool,
) -> CopyOp {
    CopyOp {
        from,
        sources: sources.to_vec(),
        inline: inline
            .iter()
            .map(|h| (h.name.clone(), h.content.clone()))
            .collect(),
        dest: dest.to_string(),
        workdir: rc.working_dir.clone().unwrap_or_else(|| "/".into()),
        chown: chown.clone(),
        chmod: chmod.clone(),
        parents: false,
        exclude: exclude.to_vec(),
        link,
        is_add: false,
        checksum: None,
        unpack: None,
        keep_git_dir: false,
    }
}

/// The argv of a RUN, heredocs handled as BuildKit does: a lone heredoc runs its body through
/// the shell (or as a script when it starts with `#!`); otherwise the heredocs are appended to
/// the command line for the shell to handle.
fn run_args(r: &ast::Run, rc: &RunConfig) -> Vec<String> {
    if r.heredocs.is_empty() {
        return exec_or_shell(&r.cmd, rc);
    }
    let CommandLine::Shell(line) = &r.cmd else {
        return exec_or_shell(&r.cmd, rc);
    };
    if is_lone_heredoc(line) && r.heredocs.len() == 1 {
        let h = &r.heredocs[0];
        if h.content.starts_with("#!") {
            return vec![format!("/dev/pipes/{}", h.name)];
        }
        let mut v = rc.shell_or_default();
        v.push(h.content.clone());
        return v;
    }
    let mut full = line.clone();
    for h in &r.heredocs {
        full.push('\n');
        full.push_str(&h.content);
        full.push_str(&h.name);
    }
    let mut v = rc.shell_or_default();
    v.push(full);
    v
}

fn shebang_scripts(r: &ast::Run) -> Vec<(String, String)> {
    match &r.cmd {
        CommandLine::Shell(line)
            if r.heredocs.len() == 1
                && is_lone_heredoc(line)
                && r.heredocs[0].content.starts_with("#!") =>
        {
            vec![(r.heredocs[0].name.clone(), r.heredocs[0].content.clone())]
        }
        _ => vec![],
    }
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"` alone on the line.
fn is_lone_heredoc(line: &str) -> bool {
    let t = line.trim();
    let Some(rest) = t.strip_prefix("<<") else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    !rest.is_empty() && !rest.contains(char::is_whitespace)
}

/// All stages (by index) whose steps appear in the plan.
pub fn planned_stage_indices(plan: &Plan) -> BTreeSet<usize> {
    plan.stages.iter().map(|s| s.index).collect()
}
