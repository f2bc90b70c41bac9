//! `--squash`: the layers a final stage adds above its base, merged into one layer, as
//! docker's experimental `--squash` does (moby's `SquashImage`): the image keeps its base's
//! layers and gets one more; its history keeps every entry, those of the squashed
//! instructions marked `empty_layer`, plus one entry for the squashed layer.
//!
//! The squashed layer is made the way overlayfs makes any step's layer: a writable snapshot
//! over the base's chain, onto which each squashed layer's tar is applied in order
//! (kiln-snapshot's `apply_layer`: whiteouts delete, opaque markers empty). Its upper is then
//! exactly the difference from the base: a file a layer added and a later one deleted is simply
//! absent (the kernel leaves no whiteout where no lower layer has the path), a base file
//! deleted is a whiteout. The result is a snapshot remembered in the cache under a key of the
//! chain it squashes, so a rebuild with nothing changed squashes nothing again.

use std::path::Path;
use std::sync::Arc;

use kiln_store::RefKind;

use crate::encoder::KeyBuilder;
use crate::error::{BuildError, Result};
use crate::plan::config::{History, ImageConfig};
use crate::plan::{Op, PlannedStage, RootSource};
use crate::rootfs::{LayerRef, StepResult};
use crate::state::Build;

/// How many layers of `stage`'s chain are its base's (the layers a squash keeps).
pub(crate) fn base_layers(stage: &PlannedStage, results: &[StepResult]) -> usize {
    results[stage.first_step].chain.len()
}

/// How many history entries of `stage`'s config are its base's.
fn base_history(b: &Build<'_>, stage: &PlannedStage) -> usize {
    match &b.plan.steps[stage.first_step].op {
        Op::Base(RootSource::Image(i)) => b.plan.images[*i].config.history.len(),
        Op::Base(RootSource::Step(s)) => b
            .plan
            .stage(b.plan.steps[*s].stage)
            .map_or(0, |p| p.config.history.len()),
        _ => 0,
    }
}

/// `chain` (the stage's, bottom first) with its layers above the first `keep` squashed into
/// one; unchanged when there is nothing above them.
pub(crate) fn squash_chain(
    b: &Build<'_>,
    chain: &Arc<Vec<LayerRef>>,
    keep: usize,
) -> Result<Arc<Vec<LayerRef>>> {
    if chain.len() <= keep {
        return Ok(Arc::clone(chain));
    }
    let (base, above) = chain.split_at(keep);
    let mut key = KeyBuilder::new("squash1");
    key.list(
        "base",
        &base.iter().map(|l| l.snapshot.as_str()).collect::<Vec<_>>(),
    )
    .list(
        "layers",
        &above
            .iter()
            .map(|l| l.snapshot.as_str())
            .collect::<Vec<_>>(),
    );
    let key = key.finish();
    let layer = match cached(b, &key)? {
        Some(l) => l,
        None => squash_layers(b, base, above, &key)?,
    };
    let mut out = base.to_vec();
    out.push(layer);
    Ok(Arc::new(out))
}

/// A squash's cache record: the squashed layer, as its snapshot.
#[derive(serde::Serialize, serde::Deserialize)]
struct SquashRecord {
    layer: LayerRef,
}

/// The squashed layer an earlier build recorded under `key`, if its snapshot is still there
/// (kept by the build guard, as a step's cache hit is).
fn cached(b: &Build<'_>, key: &str) -> Result<Option<LayerRef>> {
    if b.opts.no_cache {
        return Ok(None);
    }
    let Some(hit) = b.store.cache_use(key)? else {
        return Ok(None);
    };
    let Ok(mut rec) = serde_json::from_slice::<SquashRecord>(&hit.value) else {
        return Ok(None);
    };
    let Some(info) = hit
        .snapshots
        .into_iter()
        .find(|s| s.key == rec.layer.snapshot)
    else {
        return Ok(None);
    };
    rec.layer.dir = info.path;
    b.hits.lock().unwrap().push(key.to_string());
    Ok(Some(rec.layer))
}

/// Sets every whiteout (a 0/0 character device) below `dir` to the epoch.
fn date_whiteouts(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let io = |p: &std::path::Path, source: std::io::Error| BuildError::Io {
        action: "dating the whiteout",
        path: p.to_path_buf(),
        source,
    };
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| io(&d, e))? {
            let entry = entry.map_err(|e| io(&d, e))?;
            let path = entry.path();
            let md = std::fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
            let ft = md.file_type();
            if ft.is_dir() {
                todo.push(path);
            } else if ft.is_char_device() && md.rdev() == 0 {
                let zero = rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                rustix::fs::utimensat(
                    rustix::fs::CWD,
                    &path,
                    &rustix::fs::Timestamps {
                        last_access: zero,
                        last_modification: zero,
                    },
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| io(&path, e.into()))?;
            }
        }
    }
    Ok(())
}

/// Applies `above` onto a writable snapshot over `base` and commits its upper.
fn squash_layers(
    b: &Build<'_>,
    base: &[LayerRef],
    above: &[LayerRef],
    key: &str,
) -> Result<LayerRef> {
    let active = crate::rootfs::prepare(b.store, base)?;
    for l in above {
        apply_dir(&l.dir, active.rootfs())?;
        if b.cancel.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(BuildError::Cancelled);
        }
    }
    let diff = active.commit()?;
    // The kernel dates the whiteouts it made to now; another machine squashing the same layers
    // (from `--cache-from`) must write the same bytes.
    date_whiteouts(diff.path())?;
    let snapshot = format!("squash:{key}");
    let parent = base.last().map(|l| l.snapshot.clone());
    let info = b
        .store
        .commit_snapshot(&b.lease, &snapshot, parent.as_deref(), diff.path())?;
    diff.keep();
    let layer = LayerRef {
        snapshot,
        dir: info.path,
        blob: None,
    };
    let rec = SquashRecord {
        layer: layer.clone(),
    };
    let value = serde_json::to_vec(&rec).map_err(|source| BuildError::Encode {
        what: "a cache record",
        source,
    })?;
    b.store
        .cache_put(key, &value, &[(RefKind::Snapshot, layer.snapshot.as_str())])?;
    Ok(layer)
}

/// The layer in `dir` (overlay form) as a tar, applied onto the root at `root`: written on a
/// thread into a pipe that the applier reads.
fn apply_dir(dir: &Path, root: &Path) -> Result<()> {
    let (reader, writer) = std::io::pipe().map_err(|e| BuildError::io("making a pipe", dir, e))?;
    let squash_err = |source| BuildError::Squash {
        dir: dir.to_path_buf(),
        source: Box::new(source),
    };
    std::thread::scope(|s| {
        let w = s.spawn(move || {
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, writer);
            kiln_snapshot::write_layer_tar(dir, &mut writer, &Default::default())?;
            std::io::Write::flush(&mut writer).map_err(|e| kiln_snapshot::Error::Io {
                op: "write",
                path: dir.to_path_buf(),
                source: e,
            })?;
            Ok::<_, kiln_snapshot::Error>(())
        });
        let applied = kiln_snapshot::apply_layer(
            std::io::BufReader::with_capacity(1 << 20, reader),
            root,
            &Default::default(),
        );
        let written = w.join().expect("layer tar thread panicked");
        // A writer that failed on its own explains the applier's truncated read: report it.
        // One that failed with a broken pipe only saw the applier stop: report the applier.
        let broken_pipe = |e: &kiln_snapshot::Error| {
            matches!(e,
                kiln_snapshot::Error::WriteTar { source, .. } | kiln_snapshot::Error::Io { source, .. }
                    if source.kind() == std::io::ErrorKind::BrokenPipe)
        };
        match (written, applied) {
            (Err(w), Err(a)) if broken_pipe(&w) => Err(squash_err(a)),
            (Err(w), _) => Err(squash_err(w)),
            (Ok(()), Err(a)) => Err(squash_err(a)),
            (Ok(()), Ok(_)) => Ok(()),
        }
    })
}

/// `config`'s history as the squash leaves it: entries after the base's marked
/// `empty_layer`, and one entry for the squashed layer (moby's `SquashImage` comment).
pub(crate) fn squash_history(
    b: &Build<'_>,
    stage: &PlannedStage,
    config: &mut ImageConfig,
    squashed: usize,
) {
    let keep = base_history(b, stage).min(config.history.len());
    for h in &mut config.history[keep..] {
        h.empty_layer = true;
    }
    let base = match &b.plan.steps[stage.first_step].op {
        Op::Base(RootSource::Image(i)) => Some(b.plan.images[*i].id.clone()),
        Op::Base(RootSource::Step(s)) => {
            Some(b.plan.graph.stages[b.plan.steps[*s].stage].display.clone())
        }
        _ => None,
    };
    let what = if squashed == 1 { "layer" } else { "layers" };
    config.history.push(History {
        created: config.created.clone(),
        created_by: None,
        author: None,
        comment: Some(match base {
            Some(p) => format!("merge {squashed} {what} of stage {} to {p}", stage.display),
            None => format!(
                "create new from {squashed} {what} of stage {}",
                stage.display
            ),
        }),
        empty_layer: false,
    });
}
