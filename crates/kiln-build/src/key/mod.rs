//! The cache key of a step: its expanded operation, its parent's key, the build args it uses
//! and the content of everything it reads (context files by checksum, other stages by their
//! keys). The parts are kept too, so a miss can be explained against the last build.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::encoder::KeyBuilder;
use crate::error::{BuildError, Result};
use crate::plan::source::{SelectOptions, is_git, is_url as is_http};
use crate::plan::{CopyFrom, CopyOp, LocalDir, MountSource, Op, RunMount, RunOp, Step, StepIndex};
use kiln_dockerfile::ast::NetworkMode;
use kiln_dockerfile::{Mount, MountType, Sharing};

/// A selection's digest and, when it holds at most the requested number of entries, the
/// per-file listing read by the same walk (for explaining cache misses).
#[derive(Debug, Clone)]
pub struct ListedDigest {
    pub digest: String,
    /// `(name as in the context, sha256 hex | "-> target")`; None when over the limit, when
    /// `--parents` is used, or when no listing was asked for (limit 0).
    pub files: Option<Vec<(String, String)>>,
}

/// A step's key and what went into it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepKey {
    pub key: String,
    /// The instruction as written.
    pub text: String,
    pub parent: String,
    /// Build args the step reads (name → value).
    pub args: BTreeMap<String, String>,
    /// Inputs other than the parent: label (`context:src/`, `stage:build`) → digest.
    pub inputs: BTreeMap<String, String>,
    /// Context files read, by name → content digest (small selections only), so a miss can
    /// name the file that changed.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// What a key reads from outside its step: digests of the inputs the step names. The build
/// answers from the context, the store and the network (`solve::key_inputs`); the key itself is a pure
/// function of the step and these answers ([`key_of`]), so tests pin keys with fixed answers.
pub(crate) trait KeyInputs {
    /// The digest of what `sources` select in a local directory, with a listing of up to
    /// `listing` entries for `--explain`.
    fn context(
        &self,
        dir: &LocalDir,
        sources: &[String],
        sel: &SelectOptions,
        listing: usize,
    ) -> Result<ListedDigest>;
    /// The digest of what `sources` select in the result of the stage ending at `stage_step`
    /// (`step`, the reader, is named in errors).
    fn stage_files(
        &self,
        step: StepIndex,
        stage_step: StepIndex,
        sources: &[String],
        sel: &SelectOptions,
    ) -> Result<String>;
    /// The cache key of the finished step `stage_step`.
    fn stage_key(&self, stage_step: StepIndex) -> String;
    /// The display name of the stage `stage_step` belongs to (`builder`, `stage-1`).
    fn stage_name(&self, stage_step: StepIndex) -> String;
    /// The reference and image ID of the plan's image `idx`.
    fn image(&self, idx: usize) -> (String, String);
    /// The commit a git source names now.
    fn git_commit(&self, url: &str) -> Result<String>;
    /// The content digest of an http(s) source.
    fn url_digest(&self, url: &str) -> Result<String>;
    /// Build-wide settings that change what every RUN sees (`--add-host`, `--shm-size`,
    /// `--ulimit`, as BuildKit keys them), as (field, value); empty when all are defaults.
    fn run_settings(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// The key of layer step `i` of `steps` on a parent whose key is `parent`: the operation in an
/// explicit encoding, the build args it reads, the digests of its inputs, the parent's key.
pub(crate) fn key_of(
    steps: &[Step],
    i: StepIndex,
    parent: &str,
    inputs: &dyn KeyInputs,
) -> Result<StepKey> {
    let step = &steps[i];
    let mut recorded = BTreeMap::new();
    let mut args = BTreeMap::new();
    let mut files = BTreeMap::new();
    let mut k = match &step.op {
        Op::Base(_) => unreachable!("base steps have no cache key of their own"),
        Op::Mkdir { path, user } => {
            let mut k = KeyBuilder::new("mkdir");
            k.field("path", path).opt("user", user.as_deref());
            k
        }
        Op::Run(r) => {
            args = r.args_used.clone();
            run_key(step, i, r, inputs, &mut recorded)?
        }
        Op::Copy(c) => copy_key(i, c, inputs, &mut recorded, &mut files)?,
    };
    for (a, v) in &args {
        k.field("arg", a).field("arg-value", v);
    }
    // A linked layer does not depend on what is below it (see [`is_linked`]).
    if !is_linked(&step.op) {
        k.field("parent", parent);
    }
    Ok(StepKey {
        key: k.finish(),
        text: step.text.clone(),
        parent: parent.to_string(),
        args,
        inputs: recorded,
        files,
    })
}

/// A RUN's fields: command, environment, settings, scripts and mounts (with what they read,
/// also `recorded` for `--explain`).
fn run_key(
    step: &Step,
    i: StepIndex,
    r: &RunOp,
    inputs: &dyn KeyInputs,
    recorded: &mut BTreeMap<String, String>,
) -> Result<KeyBuilder> {
    let mut k = KeyBuilder::new("run");
    k.list("args", &r.args);
    // Another platform's RUN is another program (emulated), even on the same base; the
    // host's keeps the key it had before platforms were keyed.
    if r.platform != kiln_image::Platform::host() {
        k.field("platform", &r.platform.to_string());
    }
    let env: Vec<String> = r.env.iter().map(|(a, v)| format!("{a}={v}")).collect();
    k.list("env", &env)
        .field("cwd", &r.cwd)
        .field("user", &r.user);
    k.field(
        "network",
        match r.network {
            NetworkMode::Default => "default",
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
        },
    );
    // Only when set, so that the keys of every other RUN stay as they were.
    if r.insecure {
        k.field("security", "insecure");
    }
    for (name, value) in inputs.run_settings() {
        k.field(name, &value);
    }
    for (name, content) in &r.scripts {
        k.field("script", name).field("script-content", content);
    }
    for m in &r.mounts {
        // Secret contents never enter the key; only the mount's shape does.
        encode_mount(&mut k, &m.mount);
        run_mount_source(&mut k, step, i, m, inputs, recorded)?;
    }
    Ok(k)
}

/// What a RUN mount reads: a local directory or another stage's files by content, a cache
/// mount's seed stage by its key, an image by its ID.
fn run_mount_source(
    k: &mut KeyBuilder,
    step: &Step,
    i: StepIndex,
    m: &RunMount,
    inputs: &dyn KeyInputs,
    recorded: &mut BTreeMap<String, String>,
) -> Result<()> {
    match &m.source {
        Some(MountSource::Context(dir)) => {
            let src = m.mount.source.clone().unwrap_or_else(|| ".".into());
            let d = inputs
                .context(
                    dir,
                    std::slice::from_ref(&src),
                    &SelectOptions::default(),
                    0,
                )
                // A missing (or `.dockerignore`d) source: say which line mounts it.
                .map_err(|e| BuildError::Step {
                    step: step.name.clone(),
                    line: step.line,
                    message: format!("mount source {src:?}: {e}"),
                    output: String::new(),
                })?
                .digest;
            recorded.insert(context_label(dir, &src), d.clone());
            k.field("mount-context", &d);
        }
        // A bind mount reads files: keyed by their content. A cache mount's
        // `from=` only seeds the cache: keyed by the stage's key.
        Some(MountSource::Stage(s)) if m.mount.kind == MountType::Bind => {
            let src = m.mount.source.clone().unwrap_or_else(|| "/".into());
            let d =
                inputs.stage_files(i, *s, std::slice::from_ref(&src), &SelectOptions::default())?;
            recorded.insert(format!("stage:{}:{src}", inputs.stage_name(*s)), d.clone());
            k.field("mount-stage-files", &d);
        }
        Some(MountSource::Stage(s)) => {
            let key = inputs.stage_key(*s);
            recorded.insert(format!("stage:{}", inputs.stage_name(*s)), key.clone());
            k.field("mount-stage", &key);
        }
        Some(MountSource::Image(idx)) => {
            k.field("mount-image", &inputs.image(*idx).1);
        }
        None => {}
    }
    Ok(())
}

/// A COPY/ADD's fields and what it reads (recorded for `--explain`; `files` lists the
/// context files it copies, when few enough).
fn copy_key(
    i: StepIndex,
    c: &CopyOp,
    inputs: &dyn KeyInputs,
    recorded: &mut BTreeMap<String, String>,
    files: &mut BTreeMap<String, String>,
) -> Result<KeyBuilder> {
    let mut k = KeyBuilder::new(if c.is_add { "add" } else { "copy" });
    k.list("sources", &c.sources)
        .field("dest", &c.dest)
        .field("workdir", &c.workdir);
    k.opt("chown", c.chown.as_deref())
        .opt("chmod", c.chmod.as_deref());
    k.field("parents", bool_str(c.parents))
        .list("exclude", &c.exclude);
    k.field("link", bool_str(c.link))
        .opt("checksum", c.checksum.as_deref());
    k.opt("unpack", c.unpack.map(bool_str));
    for (name, content) in &c.inline {
        k.field("inline", name).field("inline-content", content);
    }
    let sel = SelectOptions {
        parents: c.parents,
        exclude: c.exclude.clone(),
    };
    match &c.from {
        CopyFrom::Context(dir) => {
            *files = copy_context_sources(&mut k, dir, c, &sel, inputs, recorded)?;
        }
        // Keyed by the content of what it copies, not by the stage's key: a stage
        // that re-runs to the same files keeps this step cached.
        CopyFrom::Stage(s) => {
            let d = inputs.stage_files(i, *s, &c.sources, &sel)?;
            recorded.insert(format!("stage:{}", inputs.stage_name(*s)), d.clone());
            k.field("from-stage-files", &d);
        }
        CopyFrom::Image(idx) => {
            let (reference, id) = inputs.image(*idx);
            recorded.insert(format!("image:{reference}"), id.clone());
            k.field("from-image", &id);
        }
    }
    Ok(k)
}

/// The sources of a COPY/ADD from a local directory: files by content, git sources by the
/// commit they name now, URLs by their content. Returns the listing of the files (main
/// context only, when few enough).
fn copy_context_sources(
    k: &mut KeyBuilder,
    dir: &LocalDir,
    c: &CopyOp,
    sel: &SelectOptions,
    inputs: &dyn KeyInputs,
    recorded: &mut BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    // Files are named for --explain in the main context only.
    let mut listing = (*dir == LocalDir::Main).then(BTreeMap::new);
    for src in c.sources.iter().filter(|s| !is_url(s)) {
        let room = listing
            .as_ref()
            .map_or(0, |l: &BTreeMap<_, _>| EXPLAIN_FILE_LIMIT - l.len());
        let d = inputs.context(dir, std::slice::from_ref(src), sel, room)?;
        recorded.insert(context_label(dir, src), d.digest.clone());
        k.field("context", &d.digest);
        match (listing.as_mut(), d.files) {
            (Some(l), Some(f)) => l.extend(f),
            _ => listing = None,
        }
    }
    // A git source is keyed by the commit its ref names now.
    for url in c.sources.iter().filter(|s| is_git(s)) {
        let commit = inputs.git_commit(url)?;
        recorded.insert(format!("git:{url}"), commit.clone());
        k.field("git-commit", &commit);
    }
    if c.keep_git_dir {
        k.field("keep-git-dir", "true");
    }
    // A URL is keyed by its content (BuildKit's http source), unless
    // --checksum already pins it.
    if c.is_add && c.checksum.is_none() {
        let http = |s: &&String| is_http(s) && !is_git(s);
        for url in c.sources.iter().filter(http) {
            let d = inputs.url_digest(url)?;
            recorded.insert(format!("url:{url}"), d.clone());
            k.field("url-content", &d);
        }
    }
    Ok(listing.unwrap_or_default())
}

/// `COPY --link` / `ADD --link`, as BuildKit means it: the files are copied into an empty
/// layer that is then stacked on the parent, so the layer (its key, snapshot and blob) does not
/// depend on the layers below. An owner given by name needs the parent's `/etc/passwd`: such a
/// step is copied as without `--link`.
pub(crate) fn is_linked(op: &Op) -> bool {
    let numeric = |s: &str| {
        s.split(':')
            .all(|p| p.is_empty() || p.parse::<u32>().is_ok())
    };
    matches!(op, Op::Copy(c) if c.link && c.chown.as_deref().is_none_or(numeric))
}

/// The key that steps on top of a linked layer see: the layer and what is below it.
pub(crate) fn linked_result_key(layer_key: &str, parent: &str) -> String {
    KeyBuilder::new("linked")
        .field("layer", layer_key)
        .field("parent", parent)
        .finish()
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// A `RUN --mount` in the key: every field, by name, absent ones marked absent.
fn encode_mount(k: &mut KeyBuilder, m: &Mount) {
    let num = |v: Option<u64>| v.map(|n| n.to_string());
    k.field("mount", m.kind.as_str())
        .opt("mount-target", m.target.as_deref())
        .opt("mount-source", m.source.as_deref())
        .opt("mount-from", m.from.as_deref())
        .field("mount-readonly", bool_str(m.readonly))
        .opt("mount-id", m.id.as_deref())
        .opt(
            "mount-sharing",
            m.sharing.map(|s| match s {
                Sharing::Shared => "shared",
                Sharing::Private => "private",
                Sharing::Locked => "locked",
            }),
        )
        .field("mount-required", bool_str(m.required))
        .opt("mount-size", num(m.size).as_deref())
        .opt("mount-mode", m.mode.map(|v| format!("{v:o}")).as_deref())
        .opt("mount-uid", num(m.uid.map(u64::from)).as_deref())
        .opt("mount-gid", num(m.gid.map(u64::from)).as_deref())
        .opt("mount-env", m.env.as_deref());
}

/// A remote ADD source (http(s) URL or git repository), not a context path.
pub fn is_url(s: &str) -> bool {
    is_http(s) || is_git(s)
}

/// Up to this many context entries per step are remembered file by file for `--explain`.
const EXPLAIN_FILE_LIMIT: usize = 5000;

/// What a cache mount's `from=` seed is, for the cache's identity (BuildKit's cache key is
/// `cache-dir:ID:REF` with REF the `from` result): the stage's step key, the image's ID, or the
/// digest of the context files the source selects.
pub(crate) fn seed_identity(
    b: &dyn KeyInputs,
    m: &crate::plan::RunMount,
) -> Result<Option<String>> {
    let src = m.mount.source.clone().unwrap_or_else(|| "/".into());
    let what = match &m.source {
        None => return Ok(None),
        Some(MountSource::Stage(s)) => format!("stage:{}", b.stage_key(*s)),
        Some(MountSource::Image(idx)) => format!("image:{}", b.image(*idx).1),
        Some(MountSource::Context(dir)) => {
            let d = b
                .context(
                    dir,
                    std::slice::from_ref(&src),
                    &SelectOptions::default(),
                    0,
                )?
                .digest;
            format!("context:{d}")
        }
    };
    Ok(Some(format!("{what}:{src}")))
}

/// The `inputs` label of files read from a local directory: `context:SRC` for the build
/// context, `context@NAME:SRC` for a named one.
fn context_label(dir: &LocalDir, src: &str) -> String {
    match dir {
        LocalDir::Main => format!("context:{src}"),
        LocalDir::Named(n) => format!("context@{n}:{src}"),
    }
}

#[cfg(test)]
mod tests {
    //! Golden keys: the key of every step of one Dockerfile, pinned. A change to what goes into
    //! a key fails here; if it is on purpose, bump `KEY_VERSION` (old records must never be
    //! hit with new meaning) and update the values.
    use super::*;
    use crate::plan::config::ImageConfig;
    use crate::plan::{ImageSource, PlanOptions, ResolvedImage, RootSource};

    struct Images;
    impl ImageSource for Images {
        fn resolve(&self, reference: &str, _: &kiln_image::Platform) -> Result<ResolvedImage> {
            Ok(ResolvedImage {
                reference: reference.to_string(),
                id: KeyBuilder::new("test-image")
                    .field("ref", reference)
                    .finish(),
                config: ImageConfig::default(),
            })
        }
    }

    /// Inputs answered from their names alone: no files, store or network.
    struct Named<'a>(&'a crate::plan::Plan);
    fn named(what: &str, parts: &[&str]) -> String {
        let mut k = KeyBuilder::new(what);
        k.list("parts", parts);
        k.finish()
    }
    impl KeyInputs for Named<'_> {
        fn context(
            &self,
            dir: &LocalDir,
            sources: &[String],
            sel: &SelectOptions,
            _listing: usize,
        ) -> Result<ListedDigest> {
            let dir = match dir {
                LocalDir::Main => ".".to_string(),
                LocalDir::Named(n) => n.clone(),
            };
            let mut parts = vec![dir.as_str()];
            parts.extend(sources.iter().map(String::as_str));
            parts.extend(sel.exclude.iter().map(String::as_str));
            Ok(ListedDigest {
                digest: named("context", &parts),
                files: None,
            })
        }
        fn stage_files(
            &self,
            _step: StepIndex,
            stage_step: StepIndex,
            sources: &[String],
            _sel: &SelectOptions,
        ) -> Result<String> {
            let stage = self.stage_name(stage_step);
            let mut parts = vec![stage.as_str()];
            parts.extend(sources.iter().map(String::as_str));
            Ok(named("stage-files", &parts))
        }
        fn stage_key(&self, stage_step: StepIndex) -> String {
            named("stage-key", &[&stage_step.to_string()])
        }
        fn stage_name(&self, stage_step: StepIndex) -> String {
            self.0.graph.stages[self.0.steps[stage_step].stage]
                .display
                .clone()
        }
        fn image(&self, idx: usize) -> (String, String) {
            let i = &self.0.images[idx];
            (i.reference.clone(), i.id.clone())
        }
        fn git_commit(&self, url: &str) -> Result<String> {
            Ok(named("commit", &[url]))
        }
        fn url_digest(&self, url: &str) -> Result<String> {
            Ok(named("url", &[url]))
        }
    }

    /// (instruction, key) for every layer step of `src`, each on its parent's key.
    fn keys(src: &str) -> Vec<(String, String)> {
        let df = kiln_dockerfile::parse(src).unwrap();
        let opts = PlanOptions {
            build_args: [("V".to_string(), "2".to_string())].into(),
            ..PlanOptions::default()
        };
        let plan = crate::plan::plan(&df, &opts, &Images).unwrap();
        let mut done: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for (i, step) in plan.steps.iter().enumerate() {
            let key = match &step.op {
                Op::Base(RootSource::Step(s)) => done[*s].clone(),
                Op::Base(_) => named("base", &[&step.text]),
                _ => {
                    let parent = &done[step.parent.unwrap()];
                    let k = key_of(&plan.steps, i, parent, &Named(&plan)).unwrap();
                    out.push((step.text.clone(), k.key.clone()));
                    // What the engine hands the next step.
                    if is_linked(&step.op) {
                        linked_result_key(&k.key, parent)
                    } else {
                        k.key
                    }
                }
            };
            done.push(key);
        }
        out
    }

    const DOCKERFILE: &str = r#"FROM localhost/busybox:1 AS builder
ARG V=1
ENV A=1
WORKDIR /src
COPY --chown=1:2 --chmod=640 package.json ./
RUN --mount=type=cache,target=/root/.cache,id=npm,sharing=locked --mount=type=secret,id=tok,required=true echo $V
COPY --exclude=*.md --link src/ ./src/
ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 https://example.invalid/a.tgz /a.tgz
ADD https://example.invalid/b.txt /b.txt
RUN --network=none --mount=type=tmpfs,target=/t,size=1048576 <<EOT
echo heredoc
EOT
FROM localhost/busybox:1
COPY --from=builder /src /app
COPY --from=localhost/other:2 /etc/os-release /etc/
RUN --mount=type=bind,from=builder,source=/src,target=/m --mount=type=bind,target=/ctx,source=. cat /m/package.json
"#;

    #[test]
    fn keys_are_pinned() {
        let got = keys(DOCKERFILE);
        let want: Vec<(&str, &str)> = vec![
            (
                "WORKDIR /src",
                "sha256:c29e27593568cc31202725a08d92f068d7e9df2306b34571ddbc644debe55261",
            ),
            (
                "COPY --chown=1:2 --chmod=640 package.json ./",
                "sha256:c0fbfb53f22214399dd9b484f894b6859e32e63563e900e20f636d65e4f0c5df",
            ),
            (
                "RUN --mount=type=cache,target=/root/.cache,id=npm,sharing=locked --mount=type=secret,id=tok,required=true echo $V",
                "sha256:d7a2679d8f240c79ad370ca2c10ec29a237e2e8722418c33410d59c611778070",
            ),
            (
                "COPY --exclude=*.md --link src/ ./src/",
                "sha256:2dac0a05bc7745ef21e2cdab013c5764e5f5cfaabe219ca4c499ea5389c5f517",
            ),
            (
                "ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 https://example.invalid/a.tgz /a.tgz",
                "sha256:c835b24b6836752f3bb569b0615942dda2bfda8d9ea398bd4f3b425aa1db04b1",
            ),
            (
                "ADD https://example.invalid/b.txt /b.txt",
                "sha256:bb6d23fe1de1fadf2c40b4d0be2e8657689a8aea09fad35fc932c741648bece4",
            ),
            (
                "RUN --network=none --mount=type=tmpfs,target=/t,size=1048576 <<EOT",
                "sha256:eb0f1d0cd655106acc50e1c8eac4e5ba9b8a7bc5c8a6984671ef6320efb34cff",
            ),
            (
                "COPY --from=builder /src /app",
                "sha256:3e7ed50d7c1c965f53c2dc343c8c6e16f3ab4a9010fbeeb81427c796b2d2abe7",
            ),
            (
                "COPY --from=localhost/other:2 /etc/os-release /etc/",
                "sha256:b2376e695577e88fdbeffc388629ca70df6e00f0a95ce10f7e952b66ab20a2b1",
            ),
            (
                "RUN --mount=type=bind,from=builder,source=/src,target=/m --mount=type=bind,target=/ctx,source=. cat /m/package.json",
                "sha256:bbb7071f8627f8485609cf4111b46185af2c0676a52ff15a690233ea2f02315c",
            ),
        ];
        let got_ref: Vec<(&str, &str)> =
            got.iter().map(|(n, k)| (n.as_str(), k.as_str())).collect();
        assert_eq!(
            got_ref, want,
            "a cache key changed: if on purpose, bump KEY_VERSION and update these values"
        );
    }

    #[test]
    fn every_input_reaches_the_key() {
        let base = keys(DOCKERFILE);
        for (from, to) in [
            ("ENV A=1", "ENV A=2"),
            ("localhost/other:2", "localhost/other:3"),
            ("a.tgz /a.tgz", "a.tgz /b.tgz"),
            ("--chown=1:2", "--chown=1:3"),
            ("--chmod=640", "--chmod=600"),
            ("sharing=locked", "sharing=shared"),
            ("required=true", "required=false"),
            ("--exclude=*.md", "--exclude=*.txt"),
            ("--link src/", "src/"),
            ("size=1048576", "size=2097152"),
            ("--network=none", "--network=host"),
            ("echo heredoc", "echo heredoc2"),
            ("source=/src,target=/m", "source=/src/,target=/m"),
        ] {
            let changed = keys(&DOCKERFILE.replacen(from, to, 1));
            assert_ne!(base, changed, "{from} -> {to} must change a key");
        }
    }
}
