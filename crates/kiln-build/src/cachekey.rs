//! The cache key of a step: its expanded operation, its parent's key, the build args it uses
//! and the content of everything it reads (context files by checksum, other stages by their
//! keys). The parts are kept too, so a miss can be explained against the last build.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::context::SelectOptions;
use crate::context::checksum::{ListedDigest, sources_digest_listed};
use crate::error::{BuildError, Result};
use crate::key::KeyBuilder;
use crate::plan::{CopyFrom, LocalDir, MountSource, Op, StepIndex};
use crate::state::{Build, StepResult};

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

pub fn step_key(b: &Build<'_>, i: StepIndex, parent: &StepResult) -> Result<StepKey> {
    let step = &b.plan.steps[i];
    let mut inputs = BTreeMap::new();
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
            let mut k = KeyBuilder::new("run");
            k.list("args", &r.args);
            let env: Vec<String> = r.env.iter().map(|(a, v)| format!("{a}={v}")).collect();
            k.list("env", &env)
                .field("cwd", &r.cwd)
                .field("user", &r.user);
            k.field("network", &format!("{:?}", r.network));
            // Only when set, so that the keys of every other RUN stay as they were.
            if r.insecure {
                k.field("security", "insecure");
            }
            for (name, content) in &r.scripts {
                k.field("script", name).field("script-content", content);
            }
            for m in &r.mounts {
                // Secret contents never enter the key; only the mount's shape does.
                let spec = serde_json::to_string(&m.mount).unwrap_or_default();
                k.field("mount", &spec);
                match &m.source {
                    Some(MountSource::Context(dir)) => {
                        let src = m.mount.source.clone().unwrap_or_else(|| ".".into());
                        let d = context_digest(
                            b,
                            dir,
                            std::slice::from_ref(&src),
                            &SelectOptions::default(),
                            0,
                        )
                        // A missing (or `.dockerignore`d) source: say which line mounts it.
                        .map_err(|e| BuildError::Step {
                            step: b.plan.steps[i].name.clone(),
                            line: b.plan.steps[i].line,
                            message: format!("mount source {src:?}: {e}"),
                            output: String::new(),
                        })?
                        .digest;
                        inputs.insert(context_label(dir, &src), d.clone());
                        k.field("mount-context", &d);
                    }
                    Some(MountSource::Stage(s)) => {
                        k.field("mount-stage", &stage_input(b, *s, &mut inputs));
                    }
                    Some(MountSource::Image(idx)) => {
                        k.field("mount-image", &b.plan.images[*idx].id);
                    }
                    None => {}
                }
            }
            args = r.args_used.clone();
            k
        }
        Op::Copy(c) => {
            let mut k = KeyBuilder::new(if c.is_add { "add" } else { "copy" });
            k.list("sources", &c.sources)
                .field("dest", &c.dest)
                .field("workdir", &c.workdir);
            k.opt("chown", c.chown.as_deref())
                .opt("chmod", c.chmod.as_deref());
            k.field("parents", &c.parents.to_string())
                .list("exclude", &c.exclude);
            k.field("link", &c.link.to_string())
                .opt("checksum", c.checksum.as_deref());
            k.opt("unpack", c.unpack.map(|u| u.to_string()).as_deref());
            for (name, content) in &c.inline {
                k.field("inline", name).field("inline-content", content);
            }
            match &c.from {
                CopyFrom::Context(dir) => {
                    let sel = SelectOptions {
                        parents: c.parents,
                        exclude: c.exclude.clone(),
                    };
                    // Files are named for --explain in the main context only.
                    let mut listing = (*dir == LocalDir::Main).then(BTreeMap::new);
                    for src in c.sources.iter().filter(|s| !is_url(s)) {
                        let room = listing
                            .as_ref()
                            .map_or(0, |l: &BTreeMap<_, _>| EXPLAIN_FILE_LIMIT - l.len());
                        let d = context_digest(b, dir, std::slice::from_ref(src), &sel, room)?;
                        inputs.insert(context_label(dir, src), d.digest.clone());
                        k.field("context", &d.digest);
                        match (listing.as_mut(), d.files) {
                            (Some(l), Some(f)) => l.extend(f),
                            _ => listing = None,
                        }
                    }
                    files = listing.unwrap_or_default();
                    // A URL is keyed by its content (BuildKit's http source), unless
                    // --checksum already pins it.
                    // A git source is keyed by the commit its ref names now.
                    for url in c.sources.iter().filter(|s| crate::copy::http::is_git(s)) {
                        let commit = crate::copy_glue::git_commit(b, url)?;
                        inputs.insert(format!("git:{url}"), commit.clone());
                        k.field("git-commit", &commit);
                    }
                    if c.keep_git_dir {
                        k.field("keep-git-dir", "true");
                    }
                    if c.is_add && c.checksum.is_none() {
                        let http = |s: &&String| {
                            crate::copy::http::is_url(s) && !crate::copy::http::is_git(s)
                        };
                        for url in c.sources.iter().filter(http) {
                            let d = crate::copy_glue::url_content_digest(b, url)?;
                            inputs.insert(format!("url:{url}"), d.clone());
                            k.field("url-content", &d);
                        }
                    }
                }
                CopyFrom::Stage(s) => {
                    k.field("from-stage", &stage_input(b, *s, &mut inputs));
                }
                CopyFrom::Image(idx) => {
                    let id = &b.plan.images[*idx].id;
                    inputs.insert(
                        format!("image:{}", b.plan.images[*idx].reference),
                        id.clone(),
                    );
                    k.field("from-image", id);
                }
            }
            k
        }
    };
    for (a, v) in &args {
        k.field("arg", a).field("arg-value", v);
    }
    k.field("parent", &parent.key);
    Ok(StepKey {
        key: k.finish(),
        text: step.text.clone(),
        parent: parent.key.clone(),
        args,
        inputs,
        files,
    })
}

/// A remote ADD source (http(s) URL or git repository), not a context path.
pub fn is_url(s: &str) -> bool {
    crate::copy::http::is_url(s) || crate::copy::http::is_git(s)
}

/// Up to this many context entries per step are remembered file by file for `--explain`.
const EXPLAIN_FILE_LIMIT: usize = 5000;

/// The key of the step `s` another stage's files come from, recorded in `inputs` as
/// `stage:NAME` for `--explain`.
/// What a cache mount's `from=` seed is, for the cache's identity (BuildKit's cache key is
/// `cache-dir:ID:REF` with REF the `from` result): the stage's step key, the image's ID, or the
/// digest of the context files the source selects.
pub(crate) fn seed_identity(b: &Build<'_>, m: &crate::plan::RunMount) -> Result<Option<String>> {
    let src = m.mount.source.clone().unwrap_or_else(|| "/".into());
    let what = match &m.source {
        None => return Ok(None),
        Some(MountSource::Stage(s)) => format!(
            "stage:{}",
            b.results.lock().unwrap()[*s]
                .as_ref()
                .map(|r| r.key.clone())
                .unwrap_or_default()
        ),
        Some(MountSource::Image(idx)) => format!("image:{}", b.plan.images[*idx].id),
        Some(MountSource::Context(dir)) => {
            let d = context_digest(
                b,
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

fn stage_input(b: &Build<'_>, s: StepIndex, inputs: &mut BTreeMap<String, String>) -> String {
    let key = b.results.lock().unwrap()[s]
        .as_ref()
        .map(|r| r.key.clone())
        .unwrap_or_default();
    let stage = &b.plan.graph.stages[b.plan.steps[s].stage].display;
    inputs.insert(format!("stage:{stage}"), key.clone());
    key
}

/// The `inputs` label of files read from a local directory: `context:SRC` for the build
/// context, `context@NAME:SRC` for a named one.
fn context_label(dir: &LocalDir, src: &str) -> String {
    match dir {
        LocalDir::Main => format!("context:{src}"),
        LocalDir::Named(n) => format!("context@{n}:{src}"),
    }
}

/// The digest of what `sources` select in a local directory, with the file listing of up to
/// `limit` entries read by the same walk.
fn context_digest(
    b: &Build<'_>,
    dir: &LocalDir,
    sources: &[String],
    sel: &SelectOptions,
    limit: usize,
) -> Result<ListedDigest> {
    let ctx = b.local(dir)?;
    sources_digest_listed(ctx.context.tree(), sources, sel, &ctx.cache, limit)
        .map_err(|e| BuildError::Other(e.to_string()))
}
