//! The records a `--cache-to` holds: per `mode=`, the steps of the build with their cache
//! keys and results ([`records`]), the `stage-files:` digests the keys used, and, for
//! `type=inline`, the records as the image config carries them ([`inline_records`]).

use std::collections::BTreeSet;

use kiln_store::LayerRecord;

use crate::cache_artifact::{CacheConfig, LayerEntry, Record, StageFiles, VERSION};
use crate::cache_options::{CacheDest, CacheMode};
use crate::error::{BuildError, Result};
use crate::plan::{Op, RootSource, StepIndex};
use crate::rootfs::{CacheRecord, LayerRef};
use crate::state::Build;

/// The layer steps the exported image is made of: from the target's last step down its
/// parents, through `FROM <stage>` into that stage.
fn image_steps(b: &Build<'_>) -> BTreeSet<StepIndex> {
    let mut out = BTreeSet::new();
    let Some(stage) = b.plan.stage(b.plan.target) else {
        return out;
    };
    let mut next = Some(stage.last_step);
    while let Some(i) = next {
        let step = &b.plan.steps[i];
        next = match &step.op {
            Op::Base(RootSource::Step(s)) => Some(*s),
            Op::Base(_) => None,
            _ => {
                out.insert(i);
                step.parent
            }
        };
    }
    out
}

/// The records `mode` exports, in step order.
pub(crate) fn records(b: &Build<'_>, mode: CacheMode) -> Vec<(String, CacheRecord)> {
    let keep = image_steps(b);
    b.step_records
        .lock()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(i, _)| mode == CacheMode::Max || keep.contains(i))
        .filter_map(|(_, r)| r.clone())
        .collect()
}

/// The inline records for `type=inline` (mode=min), as the JSON value of the image config's
/// [`crate::cache_artifact::INLINE_KEY`]: each layer named by its index in the image's
/// layers (`chain`, whose blobs are `layers`).
pub(crate) fn inline_records(
    b: &Build<'_>,
    chain: &[LayerRef],
    layers: &[LayerRecord],
) -> Result<Option<Vec<u8>>> {
    if !b
        .opts
        .cache_to
        .iter()
        .any(|c| matches!(c.dest, CacheDest::Inline))
    {
        return Ok(None);
    }
    let tar = crate::cache_artifact::tar_variant(b.opts.source_date_epoch);
    let mut out = Vec::new();
    for (key, rec) in records(b, CacheMode::Min) {
        let layer = match &rec.layer {
            None => None,
            Some(l) => {
                let l = b.remote_cache.resolved(l);
                let Some(idx) = chain.iter().position(|c| c.snapshot == l.snapshot) else {
                    continue;
                };
                Some(LayerEntry {
                    blob: idx,
                    diff_id: layers[idx].diff_id,
                    uncompressed_size: layers[idx].uncompressed_size,
                    tar: tar.clone(),
                })
            }
        };
        out.push(Record {
            key,
            created: rec.created,
            layer,
        });
    }
    let config = CacheConfig {
        version: VERSION,
        mode: "min".into(),
        records: out,
        stage_files: stage_files(b),
        cache_mounts: Vec::new(),
    };
    serde_json::to_vec(&config)
        .map(Some)
        .map_err(|source| BuildError::Encode {
            what: "the inline cache records",
            source,
        })
}

pub(crate) fn stage_files(b: &Build<'_>) -> Vec<StageFiles> {
    b.stage_files_seen
        .lock()
        .unwrap()
        .iter()
        .map(|(record, digest)| StageFiles {
            record: record.clone(),
            digest: digest.clone(),
        })
        .collect()
}
