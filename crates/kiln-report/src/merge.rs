//! Layers applied in order, as unpacking does (OCI whiteouts and opaque directories), into the
//! image's final file list — remembering what later layers overwrote or deleted (wasted bytes).

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::Serialize;

use crate::layer::{Change, Kind, LayerIndex, Meta};

/// A path of the final filesystem and the layer (0-based) that last set it.
#[derive(Clone, Debug)]
pub struct Node {
    /// Its metadata.
    pub meta: Meta,
    /// The layer that wrote it.
    pub layer: usize,
}

/// How a lower layer's file stopped being visible.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LostHow {
    /// A later layer wrote the same path (content or metadata change: a copy-up).
    Overwritten,
    /// A later layer deleted it (whiteout, opaque directory, or a non-directory over its
    /// directory).
    Deleted,
}

/// A file a layer ships that the final image does not show: its bytes are wasted.
#[derive(Clone, Debug, Serialize)]
pub struct Lost {
    /// The path.
    pub path: String,
    /// Bytes it takes in its layer.
    pub size: u64,
    /// The layer that wrote it (0-based).
    pub layer: usize,
    /// The layer that overwrote or deleted it.
    pub by_layer: usize,
    /// How.
    pub how: LostHow,
    /// Overwritten with the same content (a metadata-only change copied it up).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub same_content: bool,
}

/// The final filesystem of a list of layers.
#[derive(Clone, Debug, Default)]
pub struct Merged {
    /// Every path (absolute, sorted).
    pub files: BTreeMap<String, Node>,
    /// Files of lower layers hidden by later ones, in the order it happened.
    pub lost: Vec<Lost>,
}

fn subtree_keys(files: &BTreeMap<String, Node>, dir: &str) -> Vec<String> {
    let prefix = if dir == "/" {
        "/".to_string()
    } else {
        format!("{dir}/")
    };
    files
        .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect()
}

impl Merged {
    fn lose(&mut self, path: &str, node: Node, by_layer: usize, how: LostHow, same: bool) {
        if node.meta.kind == Kind::File && !node.meta.hardlink && node.layer != by_layer {
            self.lost.push(Lost {
                path: path.to_string(),
                size: node.meta.size,
                layer: node.layer,
                by_layer,
                how,
                same_content: same,
            });
        }
    }

    fn remove_under(&mut self, dir: &str, by_layer: usize) {
        for k in subtree_keys(&self.files, dir) {
            if let Some(n) = self.files.remove(&k) {
                self.lose(&k, n, by_layer, LostHow::Deleted, false);
            }
        }
    }

    /// Applies layer number `n` on top.
    pub fn apply(&mut self, n: usize, layer: &LayerIndex) {
        // Whiteouts and opaque markers hide only lower layers' content, whatever their place
        // in the tar: apply them first.
        for c in &layer.changes {
            match c {
                Change::Whiteout(p) => {
                    if let Some(node) = self.files.remove(p) {
                        self.lose(p, node, n, LostHow::Deleted, false);
                    }
                    self.remove_under(p, n);
                }
                Change::Opaque(d) => self.remove_under(d, n),
                Change::Put(..) => {}
            }
        }
        for c in &layer.changes {
            let Change::Put(p, meta) = c else { continue };
            if let Some(old) = self.files.get(p) {
                let old_dir = old.meta.kind == Kind::Dir;
                if !(old_dir && meta.kind == Kind::Dir) {
                    let old = self.files.remove(p).expect("present");
                    let same = old.meta.digest.is_some() && old.meta.digest == meta.digest;
                    self.lose(p, old, n, LostHow::Overwritten, same);
                    if old_dir {
                        self.remove_under(p, n);
                    }
                }
            }
            self.files.insert(
                p.clone(),
                Node {
                    meta: meta.clone(),
                    layer: n,
                },
            );
        }
    }
}

/// The final filesystem of `layers`, base first.
pub fn merge<'a>(layers: impl IntoIterator<Item = &'a LayerIndex>) -> Merged {
    let mut m = Merged::default();
    for (i, l) in layers.into_iter().enumerate() {
        m.apply(i, l);
    }
    m
}
