//! Where the files of an image came from (`COPY --from` attribution): the build record says,
//! per layer, which base image, stage or context made it; a file is attributed to the layer
//! that last wrote it, a directory to the layers of everything under it.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use kiln_store::{BuildRecord, LayerOrigin, OriginKind};
use serde::Serialize;

use crate::layer::Kind;
use crate::merge::Merged;

/// Bytes (and files) of the final filesystem that came from one origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OriginBytes {
    /// `base REF`, `stage NAME` (its instructions, or a `COPY --from=NAME`), `image REF`
    /// (`COPY --from=REF`), `context` / `context NAME`, `squashed stage NAME`.
    pub origin: String,
    /// Bytes of files it wrote that the image still shows.
    pub bytes: u64,
    /// Those files (non-directories).
    pub files: u64,
}

/// How a layer origin is named in a report.
pub fn label(o: &LayerOrigin) -> String {
    match o.kind {
        OriginKind::Base => format!("base {}", o.source),
        OriginKind::CopyFrom | OriginKind::Stage => format!("stage {}", o.source),
        OriginKind::CopyFromImage => format!("image {}", o.source),
        OriginKind::Context if o.source.is_empty() => "context".to_string(),
        OriginKind::Context => format!("context {}", o.source),
        OriginKind::Squash => format!("squashed stage {}", o.source),
    }
}

/// The label of each of the image's `layers`, when the record knows them all.
pub fn layer_labels(build: Option<&BuildRecord>, layers: usize) -> Option<Vec<String>> {
    let b = build?;
    (b.layers.len() == layers && layers > 0).then(|| b.layers.iter().map(label).collect())
}

fn count(files: impl Iterator<Item = (u64, usize)>, labels: &[String]) -> Vec<OriginBytes> {
    let mut by: HashMap<&str, (u64, u64)> = HashMap::new();
    for (bytes, layer) in files {
        let e = by.entry(labels[layer].as_str()).or_default();
        e.0 += bytes;
        e.1 += 1;
    }
    let mut out: Vec<OriginBytes> = by
        .into_iter()
        .map(|(o, (bytes, files))| OriginBytes {
            origin: o.to_string(),
            bytes,
            files,
        })
        .collect();
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.origin.cmp(&b.origin)));
    out
}

fn files_of<'a>(
    m: &'a Merged,
    from: &'a str,
    prefix: Option<&'a str>,
) -> impl Iterator<Item = (u64, usize)> + 'a {
    m.files
        .range::<str, _>((Bound::Included(from), Bound::Unbounded))
        .take_while(move |(k, _)| prefix.is_none_or(|p| k.as_str() == from || k.starts_with(p)))
        .filter(|(_, n)| n.meta.kind != Kind::Dir)
        .map(|(_, n)| (n.meta.own_bytes(), n.layer))
}

/// Bytes of the whole final filesystem by origin, biggest first.
pub fn of_image(m: &Merged, labels: &[String]) -> Vec<OriginBytes> {
    count(files_of(m, "/", None), labels)
}

/// Bytes under `path` (itself included) by origin, biggest first.
pub fn under(m: &Merged, path: &str, labels: &[String]) -> Vec<OriginBytes> {
    let prefix = format!("{path}/");
    count(files_of(m, path, Some(&prefix)), labels)
}

/// `stage builder 90%, base node:18 10%` (origins under 1% left out, at least one kept).
pub fn summary(origins: &[OriginBytes]) -> String {
    let total: u64 = origins.iter().map(|o| o.bytes).sum();
    let mut parts: BTreeMap<usize, String> = BTreeMap::new();
    for (i, o) in origins.iter().enumerate() {
        let pct = if total == 0 {
            100.0 / origins.len() as f64
        } else {
            o.bytes as f64 * 100.0 / total as f64
        };
        if i == 0 || pct >= 1.0 {
            parts.insert(i, format!("{} {pct:.0}%", o.origin));
        }
    }
    if parts.len() == 1 {
        return origins
            .first()
            .map(|o| o.origin.clone())
            .unwrap_or_default();
    }
    parts.into_values().collect::<Vec<_>>().join(", ")
}
