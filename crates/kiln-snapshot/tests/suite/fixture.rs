//! Shared test helpers: tree dumps for comparing directories, crafted tars, mount checks.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One file-system entry as a comparable value (the root itself is left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds; symlink times are kept too.
    pub mtime: i64,
    pub content: Option<Vec<u8>>,
    pub link: Option<PathBuf>,
    pub rdev: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
    pub opaque: bool,
    /// Index of the first path sharing this inode (hard links), for multiply-linked files.
    pub link_group: Option<String>,
}

/// Walk `root` and describe every entry below it.
pub fn dump(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, Node>,
    inodes: &mut BTreeMap<(u64, u64), String>,
) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let p = dir.join(&name);
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        let mut xattrs = Vec::new();
        let mut opaque = false;
        if let Ok(list) = xattr_list(&p) {
            for n in list {
                let v = xattr_get(&p, &n);
                if n == "trusted.overlay.opaque" {
                    opaque = v == b"y";
                } else if !n.starts_with("trusted.overlay.") {
                    xattrs.push((n, v));
                }
            }
        }
        xattrs.sort();
        let whiteout = ft.is_char_device() && md.rdev() == 0;
        let link_group = (ft.is_file() && md.nlink() > 1).then(|| {
            inodes
                .entry((md.dev(), md.ino()))
                .or_insert(rel.clone())
                .clone()
        });
        out.insert(
            rel,
            Node {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                // A whiteout's time is the time of the deletion; not part of the content.
                mtime: if ft.is_dir() || whiteout {
                    0
                } else {
                    md.mtime()
                },
                content: ft.is_file().then(|| fs::read(&p).unwrap()),
                link: ft.is_symlink().then(|| fs::read_link(&p).unwrap()),
                rdev: md.rdev(),
                xattrs,
                opaque,
                link_group,
            },
        );
        if ft.is_dir() {
            walk(root, &p, out, inodes);
        }
    }
}

/// Like [`dump`] but with directory mtimes (only stable when nothing wrote after extraction).
pub fn dump_with_dir_times(root: &Path) -> BTreeMap<String, Node> {
    let mut d = dump(root);
    for (k, n) in d.iter_mut() {
        if n.kind == "dir" {
            n.mtime = fs::symlink_metadata(root.join(k)).unwrap().mtime();
        }
    }
    d
}

pub fn xattr_list(p: &Path) -> std::io::Result<Vec<String>> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = rustix::fs::llistxattr(p, &mut buf[..])?;
    Ok(buf[..n]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

pub fn xattr_get(p: &Path, name: &str) -> Vec<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    match rustix::fs::lgetxattr(p, name, &mut buf[..]) {
        Ok(n) => buf[..n].to_vec(),
        Err(_) => Vec::new(),
    }
}

pub fn set_xattr(p: &Path, name: &str, v: &[u8]) {
    rustix::fs::lsetxattr(p, name, v, rustix::fs::XattrFlags::empty()).unwrap();
}

/// A tar writer for crafted (possibly hostile) archives: names go into the header bytes
/// unchecked, which tar::Builder would refuse for `..` and absolute paths.
pub struct RawTar {
    pub b: tar::Builder<Vec<u8>>,
}

impl RawTar {
    pub fn new() -> Self {
        RawTar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(name: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    pub fn file(mut self, name: &str, data: &[u8]) -> Self {
        let mut h = Self::header(name, tar::EntryType::Regular, data.len() as u64, 0o644);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn dir(mut self, name: &str) -> Self {
        let mut h = Self::header(name, tar::EntryType::Directory, 0, 0o755);
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn link(mut self, name: &str, kind: tar::EntryType, target: &str) -> Self {
        let mut h = Self::header(name, kind, 0, 0o777);
        let t = target.as_bytes();
        h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn device(mut self, name: &str, major: u32, minor: u32) -> Self {
        let mut h = Self::header(name, tar::EntryType::Char, 0, 0o666);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Mount points in this process's namespace under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = dir.as_os_str().as_bytes();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| mp.as_bytes().starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Everything (recursively) in `dir`, as relative paths: to show nothing landed outside.
pub fn listing(dir: &Path) -> Vec<String> {
    dump(dir).into_keys().collect()
}

pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "kiln-snapshot's tests need root (overlay mounts, chown, trusted xattrs, device nodes)"
    );
}
