//! The build: parse → plan → run the step DAG (cache lookups, RUN containers, file copies) →
//! export the target stage into the store. Every step's result is a chain of layer
//! directories (snapshots) plus a cache key; a step whose key is in the cache reuses the
//! recorded snapshot without running anything. Layer blobs are made only at export, for the
//! layers of the exported image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kiln_store::{ImageRecord, Lease, RefKind, Store};

use crate::encoder::KeyBuilder;
use crate::error::{BuildError, Result};
use crate::event::{Event, EventSink};
use crate::inputs::open::OpenContext;
use crate::options::{BuildOptions, FetchError, ImageFetcher};
use crate::plan::config::ImageConfig;
use crate::plan::{self, ImageSource, LocalDir, Op, ResolvedImage, RootSource, StepIndex};
use crate::rootfs::{CacheRecord, StepResult};
use crate::solve::dag::{DagError, Pool, run_dag};
use crate::state::{Build, BuildOutcome, HeldImage, unix_now};

pub(crate) struct StoreImages<'a> {
    pub store: &'a Store,
    /// The build's lease: every image resolved is held by it until the build ends.
    pub lease: &'a Lease,
    /// `--build-context NAME=...` that name images: NAME → image reference or ID.
    pub aliases: BTreeMap<String, String>,
    /// The layers of each image resolved, by image ID, as they were when the lease took them.
    pub held: Mutex<BTreeMap<String, HeldImage>>,
    /// Pulls images the store lacks (or re-checks them, `--pull`).
    pub fetcher: Option<std::sync::Arc<dyn ImageFetcher>>,
}

/// How a `--build-context` value is read.
enum NamedContext {
    /// An image: an alias for a reference or ID in the store.
    Image(String),
    /// A local directory.
    Dir(PathBuf),
}

/// Sort `--build-context` values: images (loading archives into the store) and directories.
fn named_contexts(
    store: &Store,
    named: &BTreeMap<String, String>,
) -> Result<Vec<(String, NamedContext)>> {
    let mut out = Vec::new();
    for (name, value) in named {
        let bad = |message: String| BuildError::NamedContext {
            name: name.clone(),
            value: value.clone(),
            message,
        };
        let target = if let Some(r) = value.strip_prefix("docker-image://") {
            NamedContext::Image(r.to_string())
        } else if let Some(p) = ["docker-archive:", "oci-layout:", "oci-archive:"]
            .iter()
            .find_map(|pre| value.strip_prefix(pre))
        {
            let loaded = store.load(Path::new(p)).map_err(|e| bad(e.to_string()))?;
            let first = loaded
                .first()
                .ok_or_else(|| bad("the archive holds no image".into()))?;
            NamedContext::Image(first.image.id.to_string())
        } else if value.contains("://") || value.starts_with("target:") {
            return Err(bad(
                "supported values are a directory, docker-image://REF, docker-archive:PATH, oci-layout:PATH and oci-archive:PATH".into(),
            ));
        } else {
            let dir = PathBuf::from(value);
            match std::fs::metadata(&dir) {
                Ok(m) if m.is_dir() => NamedContext::Dir(dir),
                Ok(_) => return Err(bad("not a directory".into())),
                Err(e) => return Err(bad(e.to_string())),
            }
        };
        out.push((name.clone(), target));
    }
    Ok(out)
}

impl StoreImages<'_> {
    /// The store's image `target` names for `want` (from an index, the entry for `want`):
    /// None when it has none, or only other platforms' (the fetcher may pull the right one).
    fn lookup(&self, target: &str, want: &kiln_image::Platform) -> Result<Option<ImageRecord>> {
        use kiln_store::Error as E;
        match self.store.resolve_platform(target, want) {
            Ok(rec) => Ok(Some(rec)),
            // An image whose config names no platform is taken as it is.
            Err(E::PlatformMismatch { .. }) => match self.store.resolve_image(target) {
                Ok(rec) if rec.architecture.is_empty() || rec.os.is_empty() => Ok(Some(rec)),
                _ => Ok(None),
            },
            Err(E::NoMatchingManifest { .. } | E::ImageNotFound { .. }) => Ok(None),
            Err(other) => Err(BuildError::Store(other)),
        }
    }
}

impl ImageSource for StoreImages<'_> {
    fn resolve(&self, reference: &str, platform: &kiln_image::Platform) -> Result<ResolvedImage> {
        let target = self
            .aliases
            .get(reference)
            .map(String::as_str)
            .unwrap_or(reference);
        let missing = |hint: String| BuildError::MissingImage {
            reference: reference.to_string(),
            hint,
        };
        let found = self.lookup(target, platform)?;
        // The store has the name for other platforms only: said in every message below.
        let other_platform = || match self.store.resolve_platform(target, platform) {
            Err(
                e @ (kiln_store::Error::PlatformMismatch { .. }
                | kiln_store::Error::NoMatchingManifest { .. }),
            ) => Some(e.to_string()),
            _ => None,
        };
        // The fetcher (`kiln build`'s puller) decides whether to ask a registry.
        let found = match &self.fetcher {
            None => found,
            Some(f) => match f.fetch(self.store, target, found.is_some(), platform) {
                Ok(()) => self.lookup(target, platform)?,
                Err(FetchError::NotPulled { hint }) => {
                    return Err(match other_platform() {
                        Some(e) => BuildError::NoPlatform {
                            reference: reference.to_string(),
                            message: e,
                            hint,
                        },
                        None => missing(hint),
                    });
                }
                Err(FetchError::Failed { message }) => {
                    return Err(match other_platform() {
                        Some(e) => BuildError::NoPlatform {
                            reference: reference.to_string(),
                            message: format!("{e}; pulling it for {platform} failed: {message}"),
                            hint: format!(
                                "pull it with `kiln pull --platform {platform} {reference}` or load an archive that has {platform}"
                            ),
                        },
                        None => BuildError::PullFailed {
                            reference: reference.to_string(),
                            message,
                        },
                    });
                }
            },
        };
        if found.is_none()
            && let Some(e) = other_platform()
        {
            return Err(BuildError::NoPlatform {
                reference: reference.to_string(),
                message: e,
                hint: format!(
                    "pull it with `kiln pull --platform {platform} {reference}` or load an archive that has {platform}"
                ),
            });
        }
        let rec = found.ok_or_else(|| {
            missing("pull it with `kiln pull NAME` or load it with `kiln load -i IMAGE.tar` (a `docker save` archive or OCI archive), or, if it names a directory or archive, pass `--build-context NAME=PATH`".into())
        })?;
        // From here the image's content stays until the build ends, even if `rmi` or a
        // prune removes the image meanwhile.
        let (rec, layers) =
            self.lease
                .use_image(&rec.id)?
                .ok_or_else(|| BuildError::MissingImage {
                    reference: reference.to_string(),
                    hint: "it was removed while the build started".into(),
                })?;
        self.held
            .lock()
            .unwrap()
            .insert(rec.id.to_string(), (rec.manifest_digest, layers));
        let bytes = self.store.read_blob(&rec.id)?;
        let config: ImageConfig =
            serde_json::from_slice(&bytes).map_err(|source| BuildError::ImageConfig {
                reference: reference.to_string(),
                source,
            })?;
        Ok(ResolvedImage {
            reference: reference.to_string(),
            id: rec.id.to_string(),
            config,
        })
    }
}

/// Run a build with `opts`, storing into the store at `root`.
pub fn build(root: &Path, opts: BuildOptions, events: EventSink) -> Result<BuildOutcome> {
    let started = Instant::now();
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let file_name = opts
        .dockerfile_path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_else(|| "Dockerfile".into());
    let df = kiln_dockerfile::parse_named(&opts.dockerfile_text, &file_name)?;
    let store = Store::open(root)?;
    let mut aliases = BTreeMap::new();
    let mut dirs = BTreeMap::new();
    for (name, c) in named_contexts(&store, &opts.named_contexts)? {
        match c {
            NamedContext::Image(r) => {
                aliases.insert(name, r);
            }
            NamedContext::Dir(d) => {
                dirs.insert(name, d);
            }
        }
    }
    let plan_opts = plan_options(&df, &opts, &dirs);
    // Taken before planning: resolving a base image puts its content under this lease.
    let lease = store.lease()?;
    let images = StoreImages {
        store: &store,
        lease: &lease,
        aliases,
        held: Mutex::new(BTreeMap::new()),
        fetcher: opts.image_fetcher.clone(),
    };
    if opts.platforms.len() > 1 {
        multi_platform_supported(&opts)?;
    }
    let mut plan = plan::plan(&df, &plan_opts, &images)?;
    // Number each stage's steps `[stage k/n]` now that every stage is planned.
    crate::plan::stepname::number_steps(&mut plan, df.stages.len() == 1);
    let base_layers = images.held.into_inner().unwrap();
    for s in &plan.skipped {
        events.send(Event::StageSkipped { stage: s.clone() });
    }
    events.send(Event::Planned {
        steps: crate::plan::stepname::step_infos(&plan),
    });

    let (context, named_dirs) = open_local_dirs(&store, &opts, &plan, &dirs)?;
    let no_cache_stages = no_cache_stages(&plan, &opts);
    // Held to the end of the export: a signal there stops the layer writers too.
    let signals = crate::signals::install();
    let cancel = signals.flag();
    // Shared while the build runs: prunes that remove cache records wait (see kiln-store's
    // gclock), so cache hits need no per-step protection.
    let guard = store.build_guard()?;
    // Drop snapshots a crash may have torn; mark old ones durable (see kiln-store).
    store.settle_snapshots()?;
    // Manifests and configs of the `--cache-from` caches: small reads, before any step.
    let (remote_cache, mut warnings) =
        crate::solve::remote_cache::RemoteCache::load(&opts.cache_from);
    let b = Build {
        store: &store,
        lease,
        opts: &opts,
        plan: &plan,
        context,
        named_dirs,
        events: events.clone(),
        cancel,
        results: Mutex::new(vec![None; plan.steps.len()]),
        no_cache_stages,
        counters: Mutex::new((0, 0)),
        base_chains: Mutex::new(BTreeMap::new()),
        base_layers,
        explain_scope: crate::solve::explain::scope(&opts),
        hits: Mutex::new(Vec::new()),
        remote: Default::default(),
        started,
        started_ms,
        timings: Mutex::new(vec![Default::default(); plan.steps.len()]),
        remote_cache,
        step_records: Mutex::new(vec![None; plan.steps.len()]),
        stage_files_seen: Mutex::new(BTreeMap::new()),
    };
    let deps: Vec<Vec<usize>> = plan.steps.iter().map(|s| s.deps.clone()).collect();
    let out = run_dag(&deps, opts.jobs, cancel, |i, pool| b.run_step(i, pool));
    let mut results = match out {
        Ok(r) => r,
        Err(DagError::Step { error, step }) => return Err(name_targets(&plan, step, error)),
        Err(DagError::Cancelled) => return Err(BuildError::Cancelled),
    };
    // The exported image's layers that are still in a remote cache are fetched now.
    for v in 0..plan.variants.len() {
        if let Some(stage) = plan.stage_in(v, plan.target) {
            let last = &mut results[stage.last_step];
            last.chain = b.remote_cache.ensure_local(&b.cache_local(), &last.chain)?;
        }
    }
    for ctx in b.context.iter().chain(b.named_dirs.values()) {
        crate::inputs::open::save_context_cache(ctx);
    }
    let outcome = if plan.multi_platform() {
        crate::export::platforms::export(&b, &results)?
    } else {
        crate::export::image::export(&b, &results)?
    };
    // After the image is written: a failed export fails the build, the image stays.
    warnings.extend(crate::export::cache_export::export_caches(&b)?);
    // Marking hits used is bookkeeping for LRU pruning: a failure only ages them early.
    let _ = store.cache_touch(&b.hits.lock().unwrap());
    let (cached, executed) = *b.counters.lock().unwrap();
    let orphaned = orphaned_base_blobs(&store, &b.base_layers);
    drop(b);
    drop(guard);
    drop(signals);
    if !orphaned.is_empty() {
        // Best effort: what is left is collected by the next prune.
        let _ = store.collect_unused(&orphaned);
    }
    crate::export::prune::auto_trim(&store);
    // Only now is the build done: the image is committed and tagged.
    events.send(Event::Finished);
    Ok(BuildOutcome {
        cached,
        executed,
        warnings,
        ..outcome
    })
}

/// What a build for several platforms refuses rather than doing for one of them only.
fn multi_platform_supported(opts: &BuildOptions) -> Result<()> {
    let refuse = |what: &str| {
        Err(BuildError::plan(format!(
            "{what} is not supported with several platforms: build them one --platform at a time"
        )))
    };
    if opts.targets.len() > 1 {
        return refuse("more than one --target");
    }
    if !opts.cache_to.is_empty() {
        return refuse("--cache-to");
    }
    if opts.squash {
        return refuse("--squash");
    }
    crate::export::platforms::check_outputs(&opts.outputs)
}

/// What planning needs of the options: target, args, network, the `--build-context`
/// directories (`dirs`) and the stages a named context replaces (as in BuildKit: a named
/// context with a stage's name).
fn plan_options(
    df: &kiln_dockerfile::ast::Dockerfile,
    opts: &BuildOptions,
    dirs: &BTreeMap<String, PathBuf>,
) -> plan::PlanOptions {
    let (target, more_targets) = match opts.targets.split_first() {
        Some((first, rest)) if !rest.is_empty() => (
            Some(first.name.clone()),
            rest.iter().map(|t| t.name.clone()).collect(),
        ),
        _ => (opts.target.clone(), Vec::new()),
    };
    plan::PlanOptions {
        target,
        more_targets,
        build_args: opts.build_args.clone(),
        network_none: opts.network_none,
        allow_insecure: opts.allow_insecure,
        named_dirs: dirs.keys().cloned().collect(),
        platforms: opts.platforms.clone(),
        replaced_stages: df
            .stages
            .iter()
            .filter_map(|s| s.name.clone())
            .filter(|n| opts.named_contexts.contains_key(n))
            .collect(),
    }
}

/// With several targets, a failed step's message names the targets it fails (those that
/// need its stage): `target tester: process ... did not complete successfully`.
fn name_targets(plan: &plan::Plan, step: StepIndex, error: BuildError) -> BuildError {
    if plan.targets.len() < 2 {
        return error;
    }
    let names = plan.targets_needing(plan.steps[step].stage);
    let prefix = match names.len() {
        1 => format!("target {}", names[0]),
        _ => format!("targets {}", names.join(", ")),
    };
    match error {
        BuildError::Step {
            step,
            line,
            message,
            output,
        } => BuildError::Step {
            step,
            line,
            message: format!("{prefix}: {message}"),
            output,
        },
        other => other,
    }
}

/// Open only the local directories some step reads: the build context, and the
/// `--build-context` directories by name.
fn open_local_dirs(
    store: &Store,
    opts: &BuildOptions,
    plan: &plan::Plan,
    dirs: &BTreeMap<String, PathBuf>,
) -> Result<(Option<OpenContext>, BTreeMap<String, OpenContext>)> {
    let mut used: std::collections::BTreeSet<LocalDir> = Default::default();
    for st in &plan.steps {
        match &st.op {
            Op::Copy(c) => {
                if let plan::CopyFrom::Context(d) = &c.from {
                    used.insert(d.clone());
                }
            }
            Op::Run(r) => {
                for m in &r.mounts {
                    if let Some(plan::MountSource::Context(d)) = &m.source {
                        used.insert(d.clone());
                    }
                }
            }
            _ => {}
        }
    }
    let context = if used.contains(&LocalDir::Main) {
        Some(crate::inputs::open::open_context(store, opts)?)
    } else {
        None
    };
    let mut named_dirs = BTreeMap::new();
    for d in &used {
        if let LocalDir::Named(name) = d {
            let open = crate::inputs::open::open_named(store, name, &dirs[name])?;
            named_dirs.insert(name.clone(), open);
        }
    }
    Ok((context, named_dirs))
}

/// The stages `--no-cache-filter` names (by name or index).
fn no_cache_stages(plan: &plan::Plan, opts: &BuildOptions) -> Vec<usize> {
    plan.stages
        .iter()
        .filter(|s| {
            opts.no_cache_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&s.display) || f == &s.index.to_string())
        })
        .map(|s| s.index)
        .collect()
}

/// The blobs of base images removed while the build ran (`rmi` untags them; their content
/// stayed under the build's lease), to collect once the lease ends.
fn orphaned_base_blobs(
    store: &Store,
    base_layers: &BTreeMap<String, HeldImage>,
) -> Vec<kiln_store::Digest> {
    base_layers
        .iter()
        .filter_map(|(id, (manifest, layers))| {
            let id = kiln_store::Digest::parse(id).ok()?;
            matches!(store.image(&id), Ok(None)).then(|| {
                let mut blobs: Vec<_> = layers.iter().map(|l| l.blob).collect();
                blobs.extend([id, *manifest]);
                blobs
            })
        })
        .flatten()
        .collect()
}

impl Build<'_> {
    /// One step; `pool.blocking()` before anything slow (a process, an unpack), so that other
    /// ready steps start on another thread meanwhile.
    fn run_step(&self, i: StepIndex, pool: &Pool<'_>) -> Result<StepResult> {
        if self.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(BuildError::Cancelled);
        }
        let step = &self.plan.steps[i];
        let start = self.started.elapsed();
        let r = match &step.op {
            Op::Base(root) => self.base(i, root, pool),
            _ => self.layer_step(i, pool),
        }
        .map_err(|e| e.at_step(&step.name, step.line));
        {
            let t = &mut self.timings.lock().unwrap()[i];
            t.start = Some(start);
            t.end = Some(self.started.elapsed());
        }
        match &r {
            Ok(res) => self.results.lock().unwrap()[i] = Some(res.clone()),
            Err(e) => self.events.send(Event::StepFailed {
                step: i,
                message: e.step_message(),
            }),
        }
        r
    }

    fn base(&self, i: StepIndex, root: &RootSource, pool: &Pool<'_>) -> Result<StepResult> {
        let t = Instant::now();
        let res = match root {
            RootSource::Scratch => StepResult {
                key: KeyBuilder::new("scratch").finish(),
                chain: Arc::new(Vec::new()),
                made_layer: false,
                created: 0,
            },
            RootSource::Step(s) => {
                let r = self.result(*s);
                StepResult {
                    key: r.key,
                    chain: r.chain,
                    made_layer: false,
                    created: r.created,
                }
            }
            RootSource::Image(idx) => {
                let img = &self.plan.images[*idx];
                self.events.send(Event::StepStarted { step: i });
                let chain = self.image_chain_unpacking(&img.id, &|| pool.blocking())?;
                StepResult {
                    key: KeyBuilder::new("image").field("id", &img.id).finish(),
                    chain,
                    made_layer: false,
                    created: 0,
                }
            }
        };
        if matches!(root, RootSource::Image(_)) {
            self.events.send(Event::StepDone {
                step: i,
                elapsed: t.elapsed(),
            });
        }
        Ok(res)
    }

    fn layer_step(&self, i: StepIndex, pool: &Pool<'_>) -> Result<StepResult> {
        let step = &self.plan.steps[i];
        let parent = self.result(step.parent.expect("layer steps have a parent"));
        let key = crate::solve::key_inputs::step_key(self, i, &parent)?;
        // What the steps above see: for a linked layer, the layer on this parent.
        let linked = crate::key::is_linked(&step.op);
        let result_key = if linked {
            crate::key::linked_result_key(&key.key, &parent.key)
        } else {
            key.key.clone()
        };
        let use_cache = !self.opts.no_cache && !self.no_cache_stages.contains(&step.stage);
        let explain_key = crate::solve::explain::explain_key(self, i);
        // The step's record and what its position had last time, in one read.
        let (hit, prev) = if use_cache {
            self.cache_lookup(&key.key, &explain_key)?
        } else {
            (None, crate::solve::explain::previous(self, &explain_key))
        };
        let prev = prev.as_deref();
        if use_cache {
            if let Some(rec) = hit {
                self.events.send(Event::StepCached { step: i });
                self.counters.lock().unwrap().0 += 1;
                self.timings.lock().unwrap()[i].cached = true;
                self.step_records.lock().unwrap()[i] = Some((key.key.clone(), rec.clone()));
                let mut chain = (*parent.chain).clone();
                let made_layer = rec.layer.is_some();
                chain.extend(rec.layer);
                crate::solve::explain::record(self, &explain_key, prev, &key);
                let created = rec.created.max(parent.created);
                return Ok(StepResult {
                    key: result_key,
                    chain: Arc::new(chain),
                    made_layer,
                    created,
                });
            }
            if let Some(hit) = self.remote_cache.lookup(&key.key) {
                // A layer another machine made: fetched when a step or the export reads it.
                self.events.send(Event::StepCached { step: i });
                self.counters.lock().unwrap().0 += 1;
                self.timings.lock().unwrap()[i].cached = true;
                self.step_records.lock().unwrap()[i] = Some((
                    key.key.clone(),
                    CacheRecord {
                        layer: hit.layer.clone(),
                        created: hit.created,
                    },
                ));
                crate::solve::explain::record(self, &explain_key, prev, &key);
                let mut chain = (*parent.chain).clone();
                let made_layer = hit.layer.is_some();
                chain.extend(hit.layer);
                return Ok(StepResult {
                    key: result_key,
                    chain: Arc::new(chain),
                    made_layer,
                    created: hit.created.max(parent.created),
                });
            }
            if let Some(reason) = crate::solve::explain::why_missed(prev, &key) {
                self.events.send(Event::CacheMiss { step: i, reason });
            }
        }
        // A miss: what follows (fetches, the step's process or copy) is slow.
        pool.blocking();
        let t = Instant::now();
        self.events.send(Event::StepStarted { step: i });
        // What this step mounts is made local first (layers of remote cache hits), and its
        // cache mounts restored from a `--cache-from` that has them.
        let parent = StepResult {
            chain: self
                .remote_cache
                .ensure_local(&self.cache_local(), &parent.chain)?,
            ..parent
        };
        if let Op::Run(r) = &step.op {
            self.remote_cache
                .restore_cache_mounts(&self.cache_local(), self, r)?;
        }
        let layer = crate::exec::execute(&self.exec_ctx(), i, &parent, &key.key)?;
        let now = self.opts.source_date_epoch.unwrap_or_else(unix_now);
        let rec = CacheRecord {
            layer: layer.clone(),
            created: now,
        };
        let mut refs: Vec<(RefKind, &str)> = Vec::new();
        if let Some(l) = &layer {
            refs.push((RefKind::Snapshot, l.snapshot.as_str()));
        }
        let value = serde_json::to_vec(&rec).map_err(|source| BuildError::Encode {
            what: "a cache record",
            source,
        })?;
        self.store.cache_put(&key.key, &value, &refs)?;
        self.step_records.lock().unwrap()[i] = Some((key.key.clone(), rec));
        crate::solve::explain::record(self, &explain_key, prev, &key);
        self.counters.lock().unwrap().1 += 1;
        self.events.send(Event::StepDone {
            step: i,
            elapsed: t.elapsed(),
        });
        let mut chain = (*parent.chain).clone();
        let made_layer = layer.is_some();
        chain.extend(layer);
        Ok(StepResult {
            key: result_key,
            chain: Arc::new(chain),
            made_layer,
            created: now.max(parent.created),
        })
    }

    /// A cache record whose snapshot still exists (kept by the build guard), and the
    /// explain record `explain_key` (see `explain::previous`), read together. The record's
    /// blob, if its layer has one, is found or made at export.
    fn cache_lookup(
        &self,
        key: &str,
        explain_key: &str,
    ) -> Result<(Option<CacheRecord>, Option<Vec<u8>>)> {
        let (hit, prev) = self.store.cache_use_and_peek(key, explain_key)?;
        let Some(hit) = hit else {
            return Ok((None, prev));
        };
        let Ok(mut rec) = serde_json::from_slice::<CacheRecord>(&hit.value) else {
            return Ok((None, prev));
        };
        if let Some(l) = &mut rec.layer {
            let Some(info) = hit.snapshots.into_iter().find(|s| s.key == l.snapshot) else {
                return Ok((None, prev));
            };
            l.dir = info.path;
        }
        if hit.stale {
            self.hits.lock().unwrap().push(key.to_string());
        }
        Ok((Some(rec), prev))
    }
}
