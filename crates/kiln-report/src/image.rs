//! Images read from the store: config, history and layer indexes. A layer's index is read
//! from the store when an earlier report or diff kept it there (`Store::layer_files`, see
//! [`crate::stored`]); otherwise its blob is read, once however many of the images share it,
//! several at a time, and the index is kept for the next run.

use std::collections::HashMap;
use std::io::BufReader;
use std::sync::Arc;

use kiln_image::Digest;
use kiln_store::{ImageRecord, Store};

use crate::error::{Error, Result};
use crate::layer::{LayerIndex, index_layer};
use crate::merge::{Merged, merge};

/// One image with its layers indexed and merged.
#[derive(Debug)]
pub struct LoadedImage {
    /// The name it was asked by.
    pub name: String,
    /// Its store record.
    pub record: ImageRecord,
    /// Its config document.
    pub config: serde_json::Value,
    /// Layer blob digests, base first.
    pub blobs: Vec<Digest>,
    /// The layer diff-ids, base first.
    pub diff_ids: Vec<Digest>,
    /// The indexes of its layers, base first (shared with other images of the run).
    pub layers: Vec<Arc<LayerIndex>>,
    /// The final filesystem.
    pub merged: Merged,
}

impl LoadedImage {
    /// docker's size of the image (what `kiln images` shows).
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }

    /// `history[].created_by` of each layer (entries marked `empty_layer` skipped), base first;
    /// `None` where the history has no entry for a layer.
    pub fn layer_history(&self) -> Vec<Option<String>> {
        let mut out: Vec<Option<String>> = self
            .config
            .get("history")
            .and_then(|h| h.as_array())
            .map(|h| {
                h.iter()
                    .filter(|e| {
                        !e.get("empty_layer")
                            .and_then(|v| v.as_bool())
                            .unwrap_or(false)
                    })
                    .map(|e| {
                        e.get("created_by")
                            .and_then(|v| v.as_str())
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.resize(self.layers.len(), None);
        out
    }

    /// The `config` object of the image config (`Env`, `Cmd`...), or null.
    pub fn runtime_config(&self) -> &serde_json::Value {
        self.config
            .get("config")
            .unwrap_or(&serde_json::Value::Null)
    }
}

/// Resolves `names` in the store and indexes their layers, each distinct blob once.
pub fn load_images(store: &Store, names: &[&str]) -> Result<Vec<LoadedImage>> {
    let mut found = Vec::new();
    for name in names {
        let record = store.resolve_image(name)?;
        let config = store.image_config(&record.id)?;
        let layers = store.layers(&record.id)?;
        found.push((name.to_string(), record, config, layers));
    }
    let mut unique: Vec<(Digest, String)> = Vec::new();
    for (_, _, _, layers) in &found {
        for l in layers {
            if !unique.iter().any(|(d, _)| *d == l.blob) {
                unique.push((l.blob, l.media_type.clone()));
            }
        }
    }
    let indexes = indexes(store, &unique)?;
    Ok(found
        .into_iter()
        .map(|(name, record, config, layers)| {
            let idx: Vec<Arc<LayerIndex>> = layers
                .iter()
                .map(|l| Arc::clone(&indexes[&l.blob]))
                .collect();
            let merged = merge(idx.iter().map(|a| a.as_ref()));
            LoadedImage {
                name,
                record,
                config,
                blobs: layers.iter().map(|l| l.blob).collect(),
                diff_ids: layers.iter().map(|l| l.diff_id).collect(),
                layers: idx,
                merged,
            }
        })
        .collect())
}

fn index_blob(store: &Store, blob: &Digest) -> Result<LayerIndex> {
    let path = store.blob_path(blob);
    let file = store.open_blob(blob)?;
    let read_err = |source| Error::Layer {
        path: path.clone(),
        source,
    };
    let (_, reader) =
        kiln_image::compression::auto_decoder(Box::new(BufReader::with_capacity(1 << 20, file)))
            .map_err(read_err)?;
    index_layer(reader).map_err(read_err)
}

/// The index of every blob of `unique`: kept ones decoded, the others read from their blobs
/// and then kept (in one write transaction).
fn indexes(store: &Store, unique: &[(Digest, String)]) -> Result<HashMap<Digest, Arc<LayerIndex>>> {
    let digests: Vec<Digest> = unique.iter().map(|(d, _)| *d).collect();
    let kept = store.layer_files(&digests, crate::stored::FORMAT)?;
    let mut out = HashMap::new();
    let mut missing = Vec::new();
    for ((d, media), data) in unique.iter().zip(kept) {
        match data.as_deref().and_then(crate::stored::decode) {
            Some(idx) => {
                out.insert(*d, Arc::new(idx));
            }
            None => missing.push((*d, media.clone())),
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    let made = index_blobs(store, &missing)?;
    let encoded: Vec<(Digest, Vec<u8>)> = made
        .iter()
        .map(|(d, idx)| (*d, crate::stored::encode(idx)))
        .collect();
    store.put_layer_files(crate::stored::FORMAT, &encoded)?;
    out.extend(made);
    Ok(out)
}

/// Indexes blobs on a few threads (biggest first would be better; store order is fine).
fn index_blobs(
    store: &Store,
    blobs: &[(Digest, String)],
) -> Result<HashMap<Digest, Arc<LayerIndex>>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(blobs.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Vec<(Digest, LayerIndex)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((d, _)) = blobs.get(i) else { break };
                        done.push((*d, index_blob(store, d)?));
                    }
                    Ok(done)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("layer indexing thread panicked"))
            .collect()
    });
    let mut out = HashMap::new();
    for r in results {
        for (d, idx) in r? {
            out.insert(d, Arc::new(idx));
        }
    }
    Ok(out)
}
