//! Sizes rolled up by directory.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::merge::Merged;

#[derive(Clone, Debug, Default)]
struct TNode {
    size: u64,
    files: u64,
    children: BTreeMap<String, usize>,
}

/// Bytes and file counts of every directory of a filesystem.
#[derive(Clone, Debug)]
pub struct SizeTree {
    nodes: Vec<TNode>,
}

/// A directory (or file) with its rolled-up size, and its biggest children.
#[derive(Clone, Debug, Serialize)]
pub struct DirSize {
    /// Absolute path.
    pub path: String,
    /// Bytes of everything under it.
    pub size: u64,
    /// Non-directory entries under it.
    pub files: u64,
    /// Biggest children first (to the asked depth).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<DirSize>,
    /// Where its bytes came from, biggest first (when the image's build record says).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<crate::origin::OriginBytes>,
}

impl SizeTree {
    /// The tree of a final filesystem: each non-directory's bytes counted in every ancestor.
    pub fn of(m: &Merged) -> SizeTree {
        let mut t = SizeTree {
            nodes: vec![TNode::default()],
        };
        for (path, node) in &m.files {
            if node.meta.kind == crate::layer::Kind::Dir {
                t.walk(path, 0, 0);
            } else {
                t.walk(path, node.meta.own_bytes(), 1);
            }
        }
        t
    }

    fn walk(&mut self, path: &str, bytes: u64, files: u64) {
        let mut cur = 0;
        self.nodes[0].size += bytes;
        self.nodes[0].files += files;
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            let next = match self.nodes[cur].children.get(comp) {
                Some(&i) => i,
                None => {
                    self.nodes.push(TNode::default());
                    let i = self.nodes.len() - 1;
                    self.nodes[cur].children.insert(comp.to_string(), i);
                    i
                }
            };
            cur = next;
            self.nodes[cur].size += bytes;
            self.nodes[cur].files += files;
        }
    }

    fn find(&self, path: &str) -> Option<usize> {
        let mut cur = 0;
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            cur = *self.nodes[cur].children.get(comp)?;
        }
        Some(cur)
    }

    /// Bytes under `path` (0 when absent).
    pub fn size(&self, path: &str) -> u64 {
        self.find(path).map_or(0, |i| self.nodes[i].size)
    }

    /// Total bytes.
    pub fn total(&self) -> u64 {
        self.nodes[0].size
    }

    /// Names of `path`'s children.
    pub fn children(&self, path: &str) -> Vec<String> {
        self.find(path)
            .map(|i| self.nodes[i].children.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The `top` biggest entries under `/`, each with its `top` biggest children, to `depth`
    /// levels (1 = only the top-level directories).
    pub fn rollup(&self, depth: usize, top: usize) -> Vec<DirSize> {
        self.rollup_at(0, "/", depth, top)
    }

    fn rollup_at(&self, node: usize, path: &str, depth: usize, top: usize) -> Vec<DirSize> {
        if depth == 0 {
            return Vec::new();
        }
        let mut kids: Vec<(&String, usize)> = self.nodes[node]
            .children
            .iter()
            .map(|(k, &i)| (k, i))
            .collect();
        kids.sort_by(|a, b| {
            self.nodes[b.1]
                .size
                .cmp(&self.nodes[a.1].size)
                .then(a.0.cmp(b.0))
        });
        kids.truncate(top);
        kids.into_iter()
            .map(|(name, i)| {
                let p = crate::layer::join(path, name);
                DirSize {
                    children: self.rollup_at(i, &p, depth - 1, top),
                    path: p,
                    size: self.nodes[i].size,
                    files: self.nodes[i].files,
                    origins: Vec::new(),
                }
            })
            .collect()
    }
}
