//! What a step reads from another stage, keyed by content: the digest of the files that a
//! `COPY --from=STAGE` or a `RUN --mount=type=bind,from=STAGE` selects in that stage's result,
//! as BuildKit keys them by content checksum. A stage that runs again but produces the same
//! files leaves every step that reads them cached.
//!
//! The digest of one selection in one stage result never changes, so it is remembered in the
//! store's cache table under `stage-files:` and a rebuild with nothing changed mounts nothing.

use std::path::Path;

use kiln_store::Store;

use crate::encoder::KeyBuilder;
use crate::error::{BuildError, Result};
use crate::inputs::context::tree::SourceTree;
use crate::inputs::context::{ChecksumCache, SelectOptions, checksum};
use crate::plan::Step;
use crate::rootfs::{Scratch, StepResult};

/// `sha256:…` over what `sources` select in `res`, the result of a stage (its last step),
/// with `step` (the reader) named in errors.
pub(crate) fn digest(
    store: &Store,
    step: &Step,
    res: &StepResult,
    sources: &[String],
    sel: &SelectOptions,
) -> Result<String> {
    let record = record_name(res, sources, sel);
    if let Some(d) = store
        .cache_peek(&record)?
        .and_then(|v| String::from_utf8(v).ok())
        .filter(|d| d.starts_with("sha256:"))
    {
        return Ok(d);
    }
    let mut scratch = Scratch { dirs: Vec::new() };
    // Declared after `scratch`, so it is unmounted before the directories go.
    let (_mount, dir) = if res.chain.is_empty() {
        (None, scratch.dir(store)?)
    } else {
        let v = crate::rootfs::view(store, &res.chain)?;
        let dir = v.rootfs().to_path_buf();
        (Some(v), dir)
    };
    let d = digest_dir(&dir, sources, sel).map_err(|message| BuildError::Step {
        step: step.name.clone(),
        line: step.line,
        message,
        output: String::new(),
    })?;
    // Only a speed-up: a build that cannot record it still has the right key.
    let _ = store.cache_put(&record, d.as_bytes(), &[]);
    Ok(d)
}

/// The cache-table key under which the digest of `sources` in `res` is remembered.
pub(crate) fn record_name(res: &StepResult, sources: &[String], sel: &SelectOptions) -> String {
    let mut k = KeyBuilder::new("stage-files");
    k.field("stage", &res.key)
        .list("sources", sources)
        .field("parents", &sel.parents.to_string())
        .list("exclude", &sel.exclude);
    format!("stage-files:{}", k.finish())
}

fn digest_dir(
    dir: &Path,
    sources: &[String],
    sel: &SelectOptions,
) -> std::result::Result<String, String> {
    let tree = SourceTree::open_dir(dir).map_err(|e| e.to_string())?;
    checksum::sources_digest(&tree, sources, sel, &ChecksumCache::in_memory())
        .map_err(|e| e.to_string())
}
