//! Content keys for COPY/ADD sources: a Merkle tree over each selected tree.
//!
//! A node's digest covers its type, mode, owner and content (file sha256, symlink target,
//! device number); a directory's covers its entries' names and digests in order. mtimes are
//! left out (as BuildKit leaves them out): touching a file keeps the key, editing it changes
//! it. Only what the sources select is read, so `COPY package*.json ./` keeps its key when
//! `src/App.jsx` changes.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::tree::{Entry, Kind, Meta, Selected, SourceTree, Time, WalkFilter};
use super::{ChecksumCache, ContextError, SelectOptions};

/// Files at least this big are worth a rayon task on their own.
const PARALLEL_MIN_FILES: usize = 8;

/// `sha256:<hex>` over every source's selection, in order.
pub fn sources_digest(
    tree: &SourceTree,
    sources: &[String],
    opts: &SelectOptions,
    cache: &ChecksumCache,
) -> Result<String, ContextError> {
    Ok(sources_digest_listed(tree, sources, opts, cache, 0)?.digest)
}

pub use crate::key::ListedDigest;

/// [`sources_digest`] plus the listing of up to `limit` entries, with one walk of the tree.
pub fn sources_digest_listed(
    tree: &SourceTree,
    sources: &[String],
    opts: &SelectOptions,
    cache: &ChecksumCache,
    limit: usize,
) -> Result<ListedDigest, ContextError> {
    let ex = opts.exclude_set()?;
    let mut h = Sha256::new();
    h.update(b"kiln-copy-sources-v1\0");
    let mut files = (limit > 0).then(Vec::new);
    for s in sources {
        put_bytes(&mut h, s.as_bytes());
        for sel in tree.expand(s, opts.parents, ex.as_ref())? {
            h.update(selected_digest(
                tree,
                &sel,
                ex.as_ref(),
                cache,
                &mut files,
                limit,
            )?);
        }
    }
    Ok(ListedDigest {
        digest: format!("sha256:{}", hex::encode(h.finalize())),
        files,
    })
}

/// The digest of one expanded source (its name, then its tree); appends the entries to
/// `files` while it stays within `limit`.
fn selected_digest(
    tree: &SourceTree,
    sel: &Selected,
    exclude: Option<&kiln_dockerfile::dockerignore::PatternSet>,
    cache: &ChecksumCache,
    files: &mut Option<Vec<(String, String)>>,
    limit: usize,
) -> Result<[u8; 32], ContextError> {
    let mut h = Sha256::new();
    let (base, entries) = match sel {
        Selected::Path {
            requested,
            resolved,
            ..
        } => {
            h.update(b"P");
            put_bytes(&mut h, requested.as_os_str().as_bytes());
            let f = WalkFilter {
                exclude,
                ..WalkFilter::default()
            };
            (resolved, tree.walk(resolved, &f)?)
        }
        Selected::Parents {
            base,
            include,
            include_text,
            restrict,
        } => {
            h.update(b"R");
            put_bytes(&mut h, base.as_os_str().as_bytes());
            put_bytes(&mut h, include_text.as_bytes());
            let f = WalkFilter {
                exclude,
                include: (!include.is_empty()).then_some(include),
                restrict,
            };
            *files = None;
            (base, tree.walk(base, &f)?)
        }
    };
    let contents = file_digests(tree, base, &entries, cache)?;
    h.update(tree_digest(&entries, &contents));
    if let (Some(out), Selected::Path { requested, .. }) = (files.as_mut(), sel) {
        if out.len() + entries.len() > limit {
            *files = None;
        } else {
            for (e, d) in entries.iter().zip(&contents) {
                let name = if e.rel.as_os_str().is_empty() {
                    requested.clone()
                } else {
                    requested.join(&e.rel)
                };
                let value = match (d, &e.link) {
                    (Some(d), _) => hex::encode(d),
                    (None, Some(l)) => format!("-> {}", l.to_string_lossy()),
                    _ => continue,
                };
                out.push((name.to_string_lossy().into_owned(), value));
            }
        }
    }
    Ok(h.finalize().into())
}

fn put_bytes(h: &mut Sha256, b: &[u8]) {
    h.update((b.len() as u64).to_le_bytes());
    h.update(b);
}

fn now() -> Time {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Time {
        sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nsec: d.subsec_nanos(),
    }
}

/// The Merkle root of a walk (`entries[0]` is the base, the rest in pre-order) given the
/// content digests of its regular files.
fn tree_digest(entries: &[Entry], contents: &[Option<[u8; 32]>]) -> [u8; 32] {
    struct Frame {
        name: Vec<u8>,
        meta: Meta,
        children: Sha256,
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<[u8; 32]> = None;
    let finish = |f: Frame| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"d");
        header(&mut h, &f.meta);
        h.update(f.children.finalize());
        h.finalize().into()
    };
    for (i, e) in entries.iter().enumerate() {
        let depth = e.depth();
        while stack.len() > depth {
            let Some(f) = stack.pop() else { break };
            let name = f.name.clone();
            let d = finish(f);
            match stack.last_mut() {
                Some(parent) => {
                    put_bytes(&mut parent.children, &name);
                    parent.children.update(d);
                }
                None => root = Some(d),
            }
        }
        let name = e
            .rel
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        if e.meta.kind == Kind::Dir {
            stack.push(Frame {
                name,
                meta: e.meta,
                children: Sha256::new(),
            });
            continue;
        }
        let mut h = Sha256::new();
        match e.meta.kind {
            Kind::File => {
                h.update(b"f");
                header(&mut h, &e.meta);
                h.update(contents[i].unwrap_or([0; 32]));
            }
            Kind::Symlink => {
                h.update(b"l");
                header(&mut h, &e.meta);
                put_bytes(
                    &mut h,
                    e.link.as_ref().map(|l| l.as_bytes()).unwrap_or_default(),
                );
            }
            k => {
                h.update(b"o");
                h.update([k as u8]);
                header(&mut h, &e.meta);
                h.update(e.meta.rdev.to_le_bytes());
            }
        }
        let d: [u8; 32] = h.finalize().into();
        match stack.last_mut() {
            Some(parent) => {
                put_bytes(&mut parent.children, &name);
                parent.children.update(d);
            }
            None => root = Some(d),
        }
    }
    while let Some(f) = stack.pop() {
        let name = f.name.clone();
        let d = finish(f);
        match stack.last_mut() {
            Some(parent) => {
                put_bytes(&mut parent.children, &name);
                parent.children.update(d);
            }
            None => root = Some(d),
        }
    }
    root.unwrap_or_else(|| Sha256::digest(b"empty").into())
}

fn header(h: &mut Sha256, m: &Meta) {
    // Symlink permissions are meaningless on Linux (always 0777 in a layer).
    let mode = if m.kind == Kind::Symlink { 0 } else { m.mode };
    h.update(mode.to_le_bytes());
    h.update(m.uid.to_le_bytes());
    h.update(m.gid.to_le_bytes());
}

/// Content digests of the regular files among `entries`: from the cache when the metadata is
/// unchanged, otherwise read (in parallel when there are several).
fn file_digests(
    tree: &SourceTree,
    base: &Path,
    entries: &[Entry],
    cache: &ChecksumCache,
) -> Result<Vec<Option<[u8; 32]>>, ContextError> {
    let mut out: Vec<Option<[u8; 32]>> = vec![None; entries.len()];
    let mut todo = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.meta.kind == Kind::File {
            match cache.get(&e.meta) {
                Some(d) => out[i] = Some(d),
                None => todo.push(i),
            }
        }
    }
    let start = now();
    let hash_one = |i: usize| -> Result<(usize, [u8; 32]), ContextError> {
        let e = &entries[i];
        let rel = if e.rel.as_os_str().is_empty() {
            base.to_path_buf()
        } else if base.as_os_str().is_empty() {
            e.rel.clone()
        } else {
            base.join(&e.rel)
        };
        let (digest, bytes, meta) = hash_file(tree, &rel)?;
        // Remember it under the metadata seen when it was opened, and only if the walk saw
        // the same file (it may have been replaced in between).
        if meta.ino == e.meta.ino && meta.size == e.meta.size && meta.mtime == e.meta.mtime {
            cache.put(&meta, digest, start, bytes);
        }
        Ok((i, digest))
    };
    let results: Vec<Result<(usize, [u8; 32]), ContextError>> = if todo.len() >= PARALLEL_MIN_FILES
    {
        todo.par_iter()
            .with_min_len(4)
            .map(|&i| hash_one(i))
            .collect()
    } else {
        todo.iter().map(|&i| hash_one(i)).collect()
    };
    for r in results {
        let (i, d) = r?;
        out[i] = Some(d);
    }
    Ok(out)
}

fn hash_file(tree: &SourceTree, rel: &Path) -> Result<([u8; 32], u64, Meta), ContextError> {
    let io_err = |source| ContextError::Io {
        path: tree.root().host_path(rel),
        source,
    };
    let fd = tree.open_file(rel)?;
    let meta = super::tree::stat_fd(&fd).map_err(io_err)?;
    let mut f = std::fs::File::from(fd);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        h.update(&buf[..n]);
        total += n as u64;
    }
    put_xattrs(&mut h, &f);
    Ok((h.finalize().into(), total, meta))
}

/// The file's extended attributes (a COPY carries them into the layer: `security.capability`
/// among them) join its content digest, sorted, as BuildKit's content hash includes them.
/// Setting one changes the file's ctime, so a remembered digest is never stale. Overlay's own
/// attributes are left out, as the copy leaves them.
fn put_xattrs(h: &mut Sha256, f: &std::fs::File) {
    let mut attrs = super::tree::file_xattrs(f);
    if attrs.is_empty() {
        return;
    }
    attrs.sort_unstable();
    h.update(b"xattrs");
    for (name, value) in &attrs {
        put_bytes(h, name);
        put_bytes(h, value);
    }
}
