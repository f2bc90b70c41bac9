//! How much space a layer directory takes (for `system df` and image sizes).

use crate::error::{Result, io_err};
use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The space a directory tree uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirUsage {
    /// Apparent size: bytes of regular files and symlink targets, each hard-linked inode
    /// counted once (what Docker reports as a layer's size).
    pub size: u64,
    /// Bytes of allocated blocks (`du` semantics; sparse files count what they use).
    pub allocated: u64,
    /// Number of inodes (hard links counted once).
    pub inodes: u64,
}

/// Measure the tree at `path` without following symlinks or leaving its file system.
pub fn dir_size(path: &Path) -> Result<DirUsage> {
    let root = fs::symlink_metadata(path).map_err(io_err("stat", path))?;
    let mut usage = DirUsage::default();
    let mut seen = HashSet::new();
    add(&mut usage, &mut seen, &root);
    let mut stack: Vec<PathBuf> = Vec::new();
    if root.is_dir() {
        stack.push(path.to_path_buf());
    }
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(io_err("read directory", &dir))? {
            let entry = entry.map_err(io_err("read directory", &dir))?;
            let p = entry.path();
            let md = fs::symlink_metadata(&p).map_err(io_err("stat", &p))?;
            add(&mut usage, &mut seen, &md);
            if md.is_dir() && md.dev() == root.dev() {
                stack.push(p);
            }
        }
    }
    Ok(usage)
}

fn add(usage: &mut DirUsage, seen: &mut HashSet<(u64, u64)>, md: &fs::Metadata) {
    if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
        return;
    }
    usage.inodes += 1;
    usage.allocated += md.blocks() * 512;
    if md.is_file() || md.file_type().is_symlink() {
        usage.size += md.size();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_once_per_inode() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir(d.join("sub")).unwrap();
        fs::write(d.join("sub/a"), vec![1u8; 1000]).unwrap();
        fs::hard_link(d.join("sub/a"), d.join("b")).unwrap();
        fs::write(d.join("c"), vec![2u8; 24]).unwrap();
        std::os::unix::fs::symlink("sub/a", d.join("l")).unwrap();
        let u = dir_size(d).unwrap();
        assert_eq!(u.size, 1000 + 24 + 5);
        assert_eq!(u.inodes, 5); // root, sub, a/b, c, l
        assert!(u.allocated >= 8192);
    }
}
