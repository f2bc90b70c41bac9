//! The size docker reports for an image (`images` SIZE, `inspect .Size`, `history` SIZE):
//! not the tar's length but what the layer takes once unpacked. dockerd's overlay2 driver
//! walks each layer's diff directory and sums `lstat` sizes of everything but directories,
//! counting a hard-linked inode once. A symlink counts the length of its target; whiteouts
//! become 0/0 character devices and count nothing. The same figure is computed here from the
//! layer's tar, so no unpacking is needed, and remembered per layer blob.

use std::collections::HashMap;
use std::io::Read;

use rusqlite::{OptionalExtension, params};

use crate::Digest;
use crate::Store;
use crate::db;
use crate::error::{IoContext, Result};
use crate::image::LayerRecord;

/// docker's size of the layer whose (uncompressed) tar `r` reads.
pub fn unpacked_size(r: impl Read) -> std::io::Result<u64> {
    let mut archive = tar::Archive::new(r);
    // Each path points at an inode (an index into `sizes`); a later entry for the same path
    // replaces the earlier one, as unpacking does, and hard links share their target's.
    let mut inode_of: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut sizes: Vec<u64> = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let path = normalize(&entry.path_bytes());
        let kind = entry.header().entry_type();
        let size = if kind.is_file() || kind == tar::EntryType::Continuous {
            entry.size()
        } else if kind.is_symlink() {
            entry.link_name_bytes().map_or(0, |l| l.len() as u64)
        } else if kind.is_hard_link() {
            let target = entry.link_name_bytes().map(|l| normalize(&l));
            if let Some(inode) = target.and_then(|t| inode_of.get(&t).copied()) {
                inode_of.insert(path, inode);
                continue;
            }
            0
        } else if kind.is_dir() {
            inode_of.remove(&path);
            continue;
        } else if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        } else {
            // Devices, FIFOs: nothing. Whiteouts are empty regular files in the tar and 0/0
            // devices on disk: nothing either way.
            0
        };
        sizes.push(size);
        inode_of.insert(path, sizes.len() - 1);
    }
    let mut live: Vec<usize> = inode_of.into_values().collect();
    live.sort_unstable();
    live.dedup();
    Ok(live.into_iter().map(|i| sizes[i]).sum())
}

/// docker's size of a directory tree: what `unpacked_size` counts, read from the files.
pub(crate) fn tree_size(dir: &std::path::Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let m = std::fs::symlink_metadata(&d).ctx("inspecting", &d)?;
        if !m.is_dir() {
            if m.len() > 0 && seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
            continue;
        }
        for e in std::fs::read_dir(&d).ctx("reading", &d)? {
            stack.push(e.ctx("reading", &d)?.path());
        }
    }
    Ok(total)
}

/// `./a/b/`, `a/b` and `/a/b` name the same file.
fn normalize(p: &[u8]) -> Vec<u8> {
    let s = p.strip_prefix(b"./").unwrap_or(p);
    let s = s.strip_prefix(b"/").unwrap_or(s);
    s.strip_suffix(b"/").unwrap_or(s).to_vec()
}

impl Store {
    /// docker's size of each of the image's layers, base first (see the module comment).
    /// Computed from the layer blob the first time and remembered.
    pub fn layer_sizes(&self, id: &Digest) -> Result<Vec<u64>> {
        let layers = self.layers(id)?;
        layers.iter().map(|l| self.layer_size(l)).collect()
    }

    /// docker's size of an image: the sum of its layers' [`Store::layer_sizes`].
    pub fn image_size(&self, id: &Digest) -> Result<u64> {
        Ok(self.layer_sizes(id)?.iter().sum())
    }

    /// docker's size of one layer.
    pub fn layer_size(&self, layer: &LayerRecord) -> Result<u64> {
        let key = layer.blob.to_string();
        let known: Option<Option<i64>> = self.read(|tx| {
            Ok(db::query_row(
                tx,
                "SELECT content_size FROM layers WHERE blob_digest = ?1",
                [&key],
                |r| r.get(0),
            )
            .optional()?)
        })?;
        if let Some(Some(size)) = known {
            return Ok(size as u64);
        }
        let path = self.blob_path(&layer.blob);
        let file = match self.open_blob(&layer.blob) {
            Ok(f) => f,
            // Removed meanwhile by a concurrent `rmi`/prune: the image is going; list it with
            // the tar's size rather than fail the whole listing.
            Err(crate::Error::BlobNotFound { .. }) => return Ok(layer.uncompressed_size),
            Err(e) => return Err(e),
        };
        let (_, reader) =
            kiln_image::compression::auto_decoder(Box::new(std::io::BufReader::new(file)))
                .ctx("reading layer", &path)?;
        let size = unpacked_size(reader).ctx("reading the layer tar", &path)?;
        self.write(|tx| {
            db::exec(
                tx,
                "UPDATE layers SET content_size = ?2 WHERE blob_digest = ?1",
                params![key, size as i64],
            )?;
            Ok(())
        })?;
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    #[test]
    fn counts_files_symlink_targets_and_hard_links_once() {
        let data = tar_of(|b| {
            let mut h = header(tar::EntryType::Directory, 0);
            b.append_data(&mut h, "d/", std::io::empty()).unwrap();
            let mut h = header(tar::EntryType::Regular, 5);
            b.append_data(&mut h, "d/a", &b"hello"[..]).unwrap();
            let mut h = header(tar::EntryType::Link, 0);
            b.append_link(&mut h, "d/b", "d/a").unwrap();
            let mut h = header(tar::EntryType::Symlink, 0);
            b.append_link(&mut h, "d/c", "../target").unwrap();
            let mut h = header(tar::EntryType::Regular, 0);
            b.append_data(&mut h, "d/.wh.gone", std::io::empty())
                .unwrap();
            let mut h = header(tar::EntryType::Fifo, 0);
            b.append_data(&mut h, "d/fifo", std::io::empty()).unwrap();
        });
        // 5 (a and b, one inode) + 9 ("../target").
        assert_eq!(unpacked_size(&data[..]).unwrap(), 14);
    }

    #[test]
    fn a_later_entry_replaces_an_earlier_one() {
        let data = tar_of(|b| {
            let mut h = header(tar::EntryType::Regular, 3);
            b.append_data(&mut h, "./f", &b"abc"[..]).unwrap();
            let mut h = header(tar::EntryType::Regular, 1);
            b.append_data(&mut h, "f", &b"x"[..]).unwrap();
        });
        assert_eq!(unpacked_size(&data[..]).unwrap(), 1);
    }
}
