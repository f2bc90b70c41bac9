//! Files that look like build leftovers: toolchains, package caches, `node_modules`, `.git`
//! directories, object files. Path rules only (no file is opened), so a finding is a hint for
//! a reviewer, not a verdict.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::layer::Kind;
use crate::merge::Merged;

/// What a leftover looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeftoverKind {
    /// A compiler or a language toolchain (gcc, go, rustc, node and npm).
    Toolchain,
    /// A package manager's download cache.
    Cache,
    /// A `node_modules` directory.
    NodeModules,
    /// A `.git` directory.
    Git,
    /// Object files (`*.o`).
    ObjectFiles,
}

impl LeftoverKind {
    /// The word the reports use.
    pub fn word(self) -> &'static str {
        match self {
            LeftoverKind::Toolchain => "toolchain",
            LeftoverKind::Cache => "cache",
            LeftoverKind::NodeModules => "node_modules",
            LeftoverKind::Git => ".git",
            LeftoverKind::ObjectFiles => "object files",
        }
    }
}

/// One finding: a directory (or file, or `DIR/*.o`) and its bytes.
#[derive(Clone, Debug, Serialize)]
pub struct Leftover {
    /// What it looks like.
    pub kind: LeftoverKind,
    /// The directory or file (`/src/*.o` for object files).
    pub path: String,
    /// Bytes under it.
    pub size: u64,
    /// Non-directory entries under it.
    pub files: u64,
    /// Why it was flagged.
    pub note: String,
}

/// Directories that are a toolchain wherever they are found (prefix match).
const TOOLCHAIN_DIRS: &[(&str, &str)] = &[
    ("/usr/lib/gcc", "the GCC compiler"),
    ("/usr/libexec/gcc", "the GCC compiler"),
    ("/usr/local/go", "the Go toolchain"),
    ("/usr/lib/go", "the Go toolchain"),
    ("/root/.rustup", "the Rust toolchain"),
    ("/usr/local/rustup", "the Rust toolchain"),
    ("/usr/local/cargo", "the Rust toolchain"),
    (
        "/usr/local/lib/node_modules/npm",
        "the node toolchain (npm)",
    ),
    (
        "/usr/local/lib/node_modules/corepack",
        "the node toolchain (corepack)",
    ),
    ("/usr/lib/node_modules/npm", "the node toolchain (npm)"),
    ("/usr/local/include/node", "the node toolchain (headers)"),
    (
        "/usr/share/nodejs",
        "the node toolchain (Debian's nodejs and npm modules)",
    ),
    ("/usr/include/node", "the node toolchain (headers)"),
    ("/opt/yarn", "the node toolchain (yarn)"),
];

/// Single executables that are a toolchain.
const TOOLCHAIN_FILES: &[(&str, &str)] = &[
    ("/usr/local/bin/node", "the node toolchain (node)"),
    ("/usr/bin/node", "the node toolchain (node)"),
    ("/usr/bin/nodejs", "the node toolchain (node)"),
];

/// Compiler executables, by name, in a `bin` directory.
const COMPILERS: &[&str] = &[
    "gcc", "g++", "cc", "c++", "cc1", "cc1plus", "clang", "clang++", "rustc", "cargo", "go",
    "gofmt", "javac", "tsc",
];

/// Package caches (prefix match; `*` matches one path component).
const CACHES: &[(&str, &str)] = &[
    ("/var/cache/apt", "apt's package cache"),
    ("/var/lib/apt/lists", "apt's package lists"),
    ("/var/cache/apk", "apk's package cache"),
    ("/root/.npm", "npm's cache"),
    ("/root/.cache", "a user cache (pip, go, yarn...)"),
    ("/home/*/.cache", "a user cache (pip, go, yarn...)"),
    ("/home/*/.npm", "npm's cache"),
    ("/usr/local/share/.cache", "yarn's cache"),
    ("/root/.cargo/registry", "cargo's registry cache"),
    ("/root/.m2", "maven's repository cache"),
    ("/root/.gradle", "gradle's cache"),
    ("/go/pkg/mod", "Go's module cache"),
];

/// Packages that are development dependencies almost everywhere.
const DEV_PACKAGES: &[&str] = &[
    "typescript",
    "webpack",
    "eslint",
    "jest",
    "@babel/core",
    "babel-loader",
    "vite",
    "react-scripts",
    "@types",
    "ts-node",
    "nodemon",
    "prettier",
    "mocha",
    "rollup",
    "esbuild",
];

/// Whether `comps` starts with `pattern`'s components (`*` matches any one); the group path.
fn matches_prefix(pattern: &str, comps: &[&str]) -> Option<String> {
    let mut n = 0;
    for p in pattern.split('/').filter(|c| !c.is_empty()) {
        let c = comps.get(n)?;
        if p != "*" && p != *c {
            return None;
        }
        n += 1;
    }
    Some(format!("/{}", comps[..n].join("/")))
}

/// The leftover group a path belongs to: (kind, group path, note).
pub fn classify(path: &str) -> Option<(LeftoverKind, String, String)> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (dir, note) in TOOLCHAIN_DIRS {
        if let Some(g) = matches_prefix(dir, &comps) {
            return Some((LeftoverKind::Toolchain, g, note.to_string()));
        }
    }
    for (file, note) in TOOLCHAIN_FILES {
        if path == *file {
            return Some((LeftoverKind::Toolchain, path.to_string(), note.to_string()));
        }
    }
    for (dir, note) in CACHES {
        if let Some(g) = matches_prefix(dir, &comps) {
            return Some((LeftoverKind::Cache, g, note.to_string()));
        }
    }
    if let Some(i) = comps.iter().position(|c| *c == ".git") {
        return Some((
            LeftoverKind::Git,
            format!("/{}", comps[..=i].join("/")),
            "a git repository".into(),
        ));
    }
    // The outermost node_modules of an application; those of system packages and global
    // installs (/usr/share, /usr/lib, /usr/local/lib) belong to the toolchain or to tools.
    if let Some(i) = comps.iter().position(|c| *c == "node_modules") {
        let system = ["/usr/share/", "/usr/lib/", "/usr/local/lib/", "/usr/lib64/"]
            .iter()
            .any(|p| path.starts_with(p));
        if !system {
            return Some((
                LeftoverKind::NodeModules,
                format!("/{}", comps[..=i].join("/")),
                "node_modules".into(),
            ));
        }
    }
    let name = comps.last().copied().unwrap_or("");
    let in_bin = comps.len() >= 2 && comps[comps.len() - 2].ends_with("bin");
    let gcc_like = name.starts_with("gcc-") || name.ends_with("-gcc") || name.contains("-gcc-");
    if name.starts_with("libnode.so") {
        return Some((
            LeftoverKind::Toolchain,
            path.to_string(),
            "the node toolchain (libnode)".into(),
        ));
    }
    if (in_bin && (COMPILERS.contains(&name) || gcc_like)) || name == "cc1" || name == "cc1plus" {
        return Some((
            LeftoverKind::Toolchain,
            path.to_string(),
            format!("a compiler ({name})"),
        ));
    }
    if name.ends_with(".o") && name.len() > 2 {
        let dir = format!("/{}", comps[..comps.len() - 1].join("/"));
        return Some((
            LeftoverKind::ObjectFiles,
            format!("{}/*.o", if dir == "/" { "" } else { &dir }),
            "object files".into(),
        ));
    }
    None
}

/// The leftovers of a final filesystem, biggest first.
pub fn find(m: &Merged) -> Vec<Leftover> {
    let mut groups: BTreeMap<(LeftoverKind, String), Leftover> = BTreeMap::new();
    // node_modules group → dev packages seen directly in it.
    let mut dev: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, node) in &m.files {
        let Some((kind, group, note)) = classify(path) else {
            continue;
        };
        if kind == LeftoverKind::NodeModules {
            let rest = &path[group.len()..];
            let mut parts = rest.split('/').filter(|c| !c.is_empty());
            let pkg = match parts.next() {
                Some(s) if s.starts_with('@') => parts.next().map(|n| format!("{s}/{n}")),
                Some(s) => Some(s.to_string()),
                None => None,
            };
            if let Some(pkg) = pkg {
                let scope = pkg.split('/').next().unwrap_or("").to_string();
                let hit = if DEV_PACKAGES.contains(&pkg.as_str()) {
                    Some(pkg)
                } else if DEV_PACKAGES.contains(&scope.as_str()) {
                    Some(scope)
                } else {
                    None
                };
                if let Some(h) = hit {
                    let v = dev.entry(group.clone()).or_default();
                    if !v.contains(&h) {
                        v.push(h);
                    }
                }
            }
        }
        let e = groups
            .entry((kind, group.clone()))
            .or_insert_with(|| Leftover {
                kind,
                path: group,
                size: 0,
                files: 0,
                note,
            });
        if node.meta.kind != Kind::Dir {
            e.size += node.meta.own_bytes();
            e.files += 1;
        }
    }
    let mut out: Vec<Leftover> = groups
        .into_values()
        // Empty cache directories (and lock files) are how base images ship them: not a
        // leftover; a `.git` directory is one even when its files are empty.
        .filter(|l| l.files > 0 && (l.size > 0 || l.kind == LeftoverKind::Git))
        .map(|mut l| {
            if let Some(d) = dev.get(&l.path) {
                l.note = format!(
                    "node_modules with development dependencies ({})",
                    d.join(", ")
                );
            }
            l
        })
        .collect();
    out.sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        let k = |p: &str| classify(p).map(|(k, g, _)| (k, g));
        assert_eq!(
            k("/root/.cache/pip/x"),
            Some((LeftoverKind::Cache, "/root/.cache".into()))
        );
        assert_eq!(
            k("/home/app/.npm/_cacache/x"),
            Some((LeftoverKind::Cache, "/home/app/.npm".into()))
        );
        assert_eq!(
            k("/src/app/.git/HEAD"),
            Some((LeftoverKind::Git, "/src/app/.git".into()))
        );
        assert_eq!(
            k("/app/node_modules/react/index.js"),
            Some((LeftoverKind::NodeModules, "/app/node_modules".into()))
        );
        assert_eq!(
            k("/usr/local/lib/node_modules/npm/bin/npm-cli.js"),
            Some((
                LeftoverKind::Toolchain,
                "/usr/local/lib/node_modules/npm".into()
            ))
        );
        assert_eq!(
            k("/usr/bin/x86_64-linux-gnu-gcc-12"),
            Some((
                LeftoverKind::Toolchain,
                "/usr/bin/x86_64-linux-gnu-gcc-12".into()
            ))
        );
        assert_eq!(
            k("/build/main.o"),
            Some((LeftoverKind::ObjectFiles, "/build/*.o".into()))
        );
        assert_eq!(
            k("/usr/share/nodejs/tar/node_modules/x.js").unwrap().0,
            LeftoverKind::Toolchain
        );
        assert_eq!(k("/usr/lib/python3/dist-packages/node_modules/x"), None);
        assert_eq!(
            k("/usr/src/app/node_modules/x"),
            Some((
                LeftoverKind::NodeModules,
                "/usr/src/app/node_modules".into()
            ))
        );
        assert_eq!(k("/usr/bin/env"), None);
        assert_eq!(k("/etc/go"), None);
        assert_eq!(k("/usr/share/doc/go"), None);
    }
}
