//! One pass over a layer tar: what it puts, hides (whiteouts) and clears (opaque directories),
//! with each file's content digest, and docker's size of the layer.

use std::collections::HashMap;
use std::io::{self, Read};

use kiln_image::Digest;
use serde::Serialize;
use sha2::Digest as _;

/// What a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file (hard links are regular files sharing their target's content).
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A FIFO.
    Fifo,
}

impl Kind {
    /// The word used in diff output.
    pub fn word(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "directory",
            Kind::Symlink => "symlink",
            Kind::Char => "char device",
            Kind::Block => "block device",
            Kind::Fifo => "fifo",
        }
    }
}

/// A path's metadata as a layer sets it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Meta {
    /// What it is.
    pub kind: Kind,
    /// Bytes of content (files; 0 otherwise).
    pub size: u64,
    /// Permission bits (with setuid/setgid/sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// sha256 of the content (files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Symlink target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// A hard link to an earlier entry of the same layer: its bytes are counted there.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hardlink: bool,
}

impl Meta {
    /// Bytes this entry adds to a layer's size, as docker counts them: file content once per
    /// inode, a symlink's target length.
    pub fn own_bytes(&self) -> u64 {
        match self.kind {
            Kind::File if !self.hardlink => self.size,
            Kind::Symlink => self.link.as_ref().map_or(0, |l| l.len() as u64),
            _ => 0,
        }
    }
}

/// One change a layer makes, in tar order.
#[derive(Clone, Debug)]
pub enum Change {
    /// The path (absolute, `/a/b`) is set to this.
    Put(String, Meta),
    /// `.wh.NAME`: the path and everything under it from lower layers is gone.
    Whiteout(String),
    /// `.wh..wh..opq`: everything under this directory from lower layers is gone.
    Opaque(String),
}

/// What one layer does.
#[derive(Clone, Debug, Default)]
pub struct LayerIndex {
    /// Changes in tar order.
    pub changes: Vec<Change>,
    /// docker's size of the layer (unpacked content, a hard-linked inode once).
    pub size: u64,
    /// Bytes of the uncompressed tar.
    pub tar_bytes: u64,
}

/// `./a/b/`, `a/b` and `/a/b` name `/a/b`; the root is `/`.
pub fn normalize(p: &[u8]) -> String {
    let s = String::from_utf8_lossy(p);
    let mut out = String::with_capacity(s.len() + 1);
    for comp in s.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if let Some(i) = out.rfind('/') {
                    out.truncate(i);
                }
            }
            c => {
                out.push('/');
                out.push_str(c);
            }
        }
    }
    if out.is_empty() { "/".into() } else { out }
}

fn parent_and_name(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

/// Joins a directory and a name (`/` + `a` = `/a`).
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Counts what passes through.
struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// Reads an uncompressed layer tar once and indexes it.
pub fn index_layer(r: impl Read) -> io::Result<LayerIndex> {
    let mut counting = Counting { inner: r, n: 0 };
    let mut out = LayerIndex::default();
    {
        let mut archive = tar::Archive::new(&mut counting);
        // Path → position in `changes` of its Put (for hard links and docker's size).
        let mut put_at: HashMap<String, usize> = HashMap::new();
        let mut buf = vec![0u8; 256 * 1024];
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = normalize(&entry.path_bytes());
            let header = entry.header();
            let kind = header.entry_type();
            if kind.is_pax_global_extensions()
                || kind.is_pax_local_extensions()
                || kind.is_gnu_longname()
                || kind.is_gnu_longlink()
            {
                continue;
            }
            let (parent, name) = parent_and_name(&path);
            if name == ".wh..wh..opq" {
                out.changes.push(Change::Opaque(parent.to_string()));
                continue;
            }
            if let Some(rest) = name.strip_prefix(".wh.") {
                if rest.starts_with(".wh.") {
                    continue; // aufs bookkeeping, skipped as docker does
                }
                out.changes.push(Change::Whiteout(join(parent, rest)));
                continue;
            }
            if path == "/" {
                continue;
            }
            let mode = header.mode().unwrap_or(0) & 0o7777;
            let uid = header.uid().unwrap_or(0);
            let gid = header.gid().unwrap_or(0);
            let meta = if kind.is_hard_link() {
                let target = entry.link_name_bytes().map(|l| normalize(&l));
                match target.and_then(|t| put_at.get(&t).map(|&i| (t, i))) {
                    Some((_, i)) => match &out.changes[i] {
                        Change::Put(_, m) => Meta {
                            hardlink: true,
                            ..m.clone()
                        },
                        _ => unreachable!("put_at only indexes Puts"),
                    },
                    // A link to a file of a lower layer: content unknown here.
                    None => Meta {
                        kind: Kind::File,
                        size: 0,
                        mode,
                        uid,
                        gid,
                        digest: None,
                        link: None,
                        hardlink: true,
                    },
                }
            } else {
                let (k, size, digest, link) =
                    if kind.is_file() || kind == tar::EntryType::Continuous {
                        let mut h = sha2::Sha256::new();
                        let mut n = 0u64;
                        loop {
                            let k = entry.read(&mut buf)?;
                            if k == 0 {
                                break;
                            }
                            h.update(&buf[..k]);
                            n += k as u64;
                        }
                        let bytes: [u8; 32] = h.finalize().into();
                        (Kind::File, n, Some(Digest::from_bytes(bytes)), None)
                    } else if kind.is_dir() {
                        (Kind::Dir, 0, None, None)
                    } else if kind.is_symlink() {
                        let l = entry
                            .link_name_bytes()
                            .map(|l| String::from_utf8_lossy(&l).into_owned())
                            .unwrap_or_default();
                        (Kind::Symlink, 0, None, Some(l))
                    } else if kind.is_character_special() {
                        (Kind::Char, 0, None, None)
                    } else if kind.is_block_special() {
                        (Kind::Block, 0, None, None)
                    } else if kind.is_fifo() {
                        (Kind::Fifo, 0, None, None)
                    } else {
                        continue;
                    };
                Meta {
                    kind: k,
                    size,
                    mode,
                    uid,
                    gid,
                    digest,
                    link,
                    hardlink: false,
                }
            };
            put_at.insert(path.clone(), out.changes.len());
            out.changes.push(Change::Put(path, meta));
        }
        // docker's size: the last entry per path, a hard link's bytes counted at its target.
        let mut last: HashMap<&str, &Meta> = HashMap::new();
        for c in &out.changes {
            if let Change::Put(p, m) = c {
                last.insert(p.as_str(), m);
            }
        }
        out.size = last.values().map(|m| m.own_bytes()).sum();
    }
    // The rest of the stream (tar padding) is part of the tar.
    io::copy(&mut counting, &mut io::sink())?;
    out.tar_bytes = counting.n;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize(b"./a/b/"), "/a/b");
        assert_eq!(normalize(b"a//b"), "/a/b");
        assert_eq!(normalize(b"./"), "/");
        assert_eq!(normalize(b"/a/../b"), "/b");
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(parent_and_name("/a"), ("/", "a"));
        assert_eq!(parent_and_name("/a/b"), ("/a", "b"));
    }
}
