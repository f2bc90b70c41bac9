//! Checking a layer tar without writing anything: [`check_layer_tar`] applies the rules
//! [`extract_layer`](super::extract_layer) applies (into a fresh diff directory), on a model
//! of the tree the layer would make, so that a layer which would fail to extract can be
//! refused before it is stored (`kiln pull` runs it on the decompressed stream as it
//! arrives).
//!
//! The same code decides what it can: names are cleaned by [`EntryPath`], headers and PAX
//! records read by [`Meta`], whiteout names matched as `whiteout.rs` matches them. What
//! extraction learns from the file system (is a parent a symlink this layer made, or not a
//! directory; does a hard link's target exist and is it a directory) is answered from the
//! model: every path the layer made, and its kind, as extraction would leave it (an entry
//! replaces what was at its path, and what was below it; directories merge).
//!
//! Not modelled, because they depend on the host and not on the tar: device nodes refused
//! to a non-root caller, and xattrs the file system refuses.

use super::meta::Meta;
use super::path::EntryPath;
use super::whiteout::{AUFS_META, OPAQUE, PREFIX};
use crate::error::{EntryError, Result};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::io::{Read, Seek};
use std::path::PathBuf;

/// What a checked layer holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckStats {
    /// Tar entries read (PAX/GNU extension headers excluded).
    pub entries: u64,
}

/// The longest name a component may have (Linux's `NAME_MAX`): extraction's `openat` or
/// `mkdirat` fails on a longer one.
const NAME_MAX: usize = 255;

/// Checks the (uncompressed) layer tar `reader` as [`extract_layer`](super::extract_layer)
/// would extract it into an empty directory, writing nothing. Errors are extraction's: an
/// [`Error::Entry`](crate::Error::Entry) names the entry and why (`path escapes the root through ..`, `parent
/// "a" is a symbolic link; refusing to write through it`, ...), an [`Error::Archive`](crate::Error::Archive) a tar
/// that does not parse (not a tar, truncated, bad header checksum or numbers).
///
/// File contents are skipped with forward seeks (`SeekFrom::Current`), never read: a
/// reader over a stream can implement that by discarding bytes. A seek past the end of the
/// stream must fail (a truncated tar), not succeed as on a file.
pub fn check_layer_tar<R: Read + Seek>(reader: R) -> Result<CheckStats> {
    let mut archive = tar::Archive::new(reader);
    let mut model = Model::default();
    super::for_each_entry(archive.entries_with_seek(), |e| model.entry(e))?;
    Ok(CheckStats {
        entries: model.entries,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    Symlink,
    /// A file, device, FIFO or whiteout (a 0:0 character device in a diff).
    Other,
}

#[derive(Default)]
struct Model {
    /// What is at each path now (ordered: a directory's descendants follow it).
    nodes: BTreeMap<PathBuf, Kind>,
    /// Every path this layer made, explicit entries and implied parents (as `Root::created`:
    /// never forgotten, even when replaced).
    created: HashSet<PathBuf>,
    entries: u64,
}

fn shown(comps: &[OsString]) -> String {
    comps
        .iter()
        .collect::<PathBuf>()
        .to_string_lossy()
        .into_owned()
}

/// A name longer than `NAME_MAX` fails the first system call that uses it.
fn name_fits(name: &std::ffi::OsStr) -> Result<(), EntryError> {
    if name.len() > NAME_MAX {
        return Err(EntryError::Io {
            op: "use a name",
            source: std::io::Error::from_raw_os_error(libc::ENAMETOOLONG),
        });
    }
    Ok(())
}

impl Model {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), EntryError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        self.entries += 1;
        let path = EntryPath::parse(&entry.path_bytes())?;
        Meta::read(entry)?;
        if let Some(name) = path.name()
            && let Some(rest) = name.as_encoded_bytes().strip_prefix(PREFIX)
        {
            let rest = rest.to_vec();
            return self.whiteout(&path, &rest);
        }
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous | T::GNUSparse => self.leaf(&path, Kind::Other),
            T::Directory => self.dir(&path),
            T::Symlink => {
                let target = entry.link_name_bytes().ok_or(EntryError::InvalidName)?;
                if target.is_empty() || target.contains(&0) {
                    return Err(EntryError::InvalidName);
                }
                self.leaf(&path, Kind::Symlink)
            }
            T::Link => self.hardlink(&path, entry),
            T::Char | T::Block => {
                let h = entry.header();
                let bad = |source| EntryError::Io {
                    op: "parse device numbers",
                    source,
                };
                h.device_major().map_err(bad)?;
                h.device_minor().map_err(bad)?;
                self.leaf(&path, Kind::Other)
            }
            T::Fifo => self.leaf(&path, Kind::Other),
            other => Err(EntryError::UnsupportedType(other.as_byte() as char)),
        }
    }

    /// `Root::dir` in a fresh diff: missing parents are made, a symlink or a non-directory
    /// on the way is refused.
    fn walk(&mut self, comps: &[OsString]) -> Result<(), EntryError> {
        for i in 0..comps.len() {
            name_fits(&comps[i])?;
            let p: PathBuf = comps[..=i].iter().collect();
            match self.nodes.get(&p) {
                None => {
                    self.nodes.insert(p.clone(), Kind::Dir);
                    self.created.insert(p);
                }
                Some(Kind::Dir) => {}
                Some(Kind::Symlink) => {
                    return Err(EntryError::ThroughSymlink {
                        component: shown(&comps[..=i]),
                    });
                }
                Some(Kind::Other) => {
                    return Err(EntryError::NotADirectory {
                        component: shown(&comps[..=i]),
                    });
                }
            }
        }
        Ok(())
    }

    /// `clear_slot`: what is at `key` goes (with everything below it), unless both it and
    /// the new entry are directories. Returns whether a directory was kept.
    fn clear(&mut self, key: &PathBuf, new_is_dir: bool) -> Result<bool, EntryError> {
        if let Some(name) = key.file_name() {
            name_fits(name)?;
        }
        Ok(match self.nodes.get(key) {
            None => false,
            Some(Kind::Dir) if new_is_dir => true,
            Some(_) => {
                let below: Vec<PathBuf> = self
                    .nodes
                    .range(key.clone()..)
                    .skip(1)
                    .take_while(|(p, _)| p.starts_with(key))
                    .map(|(p, _)| p.clone())
                    .collect();
                for p in below {
                    self.nodes.remove(&p);
                }
                self.nodes.remove(key);
                false
            }
        })
    }

    /// A file, symlink, device or FIFO at `path`.
    fn leaf(&mut self, path: &EntryPath, kind: Kind) -> Result<(), EntryError> {
        if path.name().is_none() {
            return Err(EntryError::InvalidName);
        }
        self.walk(path.parent())?;
        let key = path.key();
        self.clear(&key, false)?;
        self.nodes.insert(key.clone(), kind);
        self.created.insert(key);
        Ok(())
    }

    fn dir(&mut self, path: &EntryPath) -> Result<(), EntryError> {
        if path.name().is_none() {
            return Ok(());
        }
        self.walk(path.parent())?;
        let key = path.key();
        if !self.clear(&key, true)? {
            self.nodes.insert(key.clone(), Kind::Dir);
        }
        self.created.insert(key);
        Ok(())
    }

    fn hardlink<R: Read>(
        &mut self,
        path: &EntryPath,
        entry: &tar::Entry<'_, R>,
    ) -> Result<(), EntryError> {
        if path.name().is_none() {
            return Err(EntryError::InvalidName);
        }
        let raw = entry
            .link_name_bytes()
            .ok_or(EntryError::InvalidName)?
            .into_owned();
        let outside = || EntryError::HardlinkOutsideLayer {
            target: String::from_utf8_lossy(&raw).into_owned(),
        };
        let target = EntryPath::parse(&raw).map_err(|_| outside())?;
        if target.name().is_none() || !self.created.contains(&target.key()) {
            return Err(outside());
        }
        if target == *path {
            return Ok(());
        }
        self.walk(target.parent())?;
        let tkey = target.key();
        let kind = match self.nodes.get(&tkey) {
            None => {
                return Err(EntryError::Io {
                    op: "stat link target",
                    source: std::io::Error::from_raw_os_error(libc::ENOENT),
                });
            }
            Some(Kind::Dir) => return Err(outside()),
            Some(k) => *k,
        };
        self.walk(path.parent())?;
        let key = path.key();
        self.clear(&key, false)?;
        // The target's parents were made above; its directory may have gone with the slot.
        self.walk(target.parent())?;
        if !self.nodes.contains_key(&tkey) {
            return Err(EntryError::Io {
                op: "create hard link",
                source: std::io::Error::from_raw_os_error(libc::ENOENT),
            });
        }
        self.nodes.insert(key.clone(), kind);
        self.created.insert(key);
        Ok(())
    }

    /// `.wh.NAME` and `.wh..wh..opq`, as `Extractor::whiteout` handles them in a diff.
    fn whiteout(&mut self, path: &EntryPath, rest: &[u8]) -> Result<(), EntryError> {
        let parent = path.parent().to_vec();
        if rest == OPAQUE {
            return self.walk(&parent);
        }
        if rest.starts_with(AUFS_META) {
            return Ok(());
        }
        if rest.is_empty() || rest == b"." || rest == b".." {
            return Err(EntryError::InvalidName);
        }
        self.walk(&parent)?;
        let mut comps = parent;
        comps.push(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(rest).to_os_string(),
        );
        let hidden: PathBuf = comps.iter().collect();
        if self.created.contains(&hidden) {
            // The layer's own NAME stays (made opaque when it is a directory).
            return Ok(());
        }
        self.clear(&hidden, false)?;
        self.nodes.insert(hidden, Kind::Other);
        Ok(())
    }
}
