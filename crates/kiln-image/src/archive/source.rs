//! Where an archive's members live: an indexed tar file (read at offsets, so many members can
//! be open at once) or a directory (an OCI layout or an unpacked docker-archive).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::compression::{self, Compression};

use super::ArchiveError;

/// JSON members (manifest.json, index.json, configs, manifests) larger than this are refused:
/// real ones are kilobytes, and a hostile one must not make us allocate gigabytes.
pub(crate) const MAX_JSON: u64 = 64 << 20;

#[derive(Debug)]
pub(crate) enum Source {
    Tar {
        path: PathBuf,
        file: Arc<File>,
        members: HashMap<String, Span>,
    },
    Dir {
        path: PathBuf,
        root: PathBuf,
    },
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    offset: u64,
    size: u64,
}

/// Normalizes a member name (`./a//b` → `a/b`) and refuses absolute names and `..`.
pub(crate) fn clean_name(archive: &Path, name: &str) -> Result<String, ArchiveError> {
    let unsafe_name = |reason| ArchiveError::UnsafeName {
        path: archive.to_path_buf(),
        name: name.to_string(),
        reason,
    };
    if name.starts_with('/') {
        return Err(unsafe_name("absolute path"));
    }
    let mut parts = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().ok_or_else(|| unsafe_name("not UTF-8"))?),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_name("contains '..'")),
            Component::RootDir | Component::Prefix(_) => return Err(unsafe_name("absolute path")),
        }
    }
    Ok(parts.join("/"))
}

/// Resolves a link target the way extraction would: symlinks relative to the link's
/// directory, hard links relative to the archive root. Refuses targets that leave the root.
fn resolve_link(
    archive: &Path,
    link: &str,
    target: &str,
    hard: bool,
) -> Result<String, ArchiveError> {
    let unsafe_link = |reason| ArchiveError::UnsafeName {
        path: archive.to_path_buf(),
        name: format!("{link} -> {target}"),
        reason,
    };
    if target.starts_with('/') {
        return Err(unsafe_link("link target is absolute"));
    }
    let mut parts: Vec<&str> = if hard {
        Vec::new()
    } else {
        let mut p: Vec<&str> = link.split('/').collect();
        p.pop();
        p
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(unsafe_link("link target leaves the archive"));
                }
            }
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

impl Source {
    /// Indexes a (possibly gzip/zstd-compressed) tar file.
    pub(crate) fn open_tar(path: &Path, mut file: File) -> Result<Source, ArchiveError> {
        let io_err = |source| ArchiveError::Io {
            path: path.to_path_buf(),
            source,
        };
        let head = compression::read_head(&mut file).map_err(io_err)?;
        if head.is_empty() {
            return Err(ArchiveError::Empty {
                path: path.to_path_buf(),
            });
        }
        let kind = Compression::detect(&head);
        let mut file = if kind == Compression::None {
            file
        } else {
            // Offsets need a seekable plain tar: spool the decompressed stream to a temp file.
            let mut tmp = tempfile::tempfile().map_err(io_err)?;
            let whole = io::Cursor::new(head).chain(file);
            let mut dec = kind.decoder(Box::new(whole)).map_err(io_err)?;
            io::copy(&mut dec, &mut tmp).map_err(|source| ArchiveError::BadCompression {
                path: path.to_path_buf(),
                compression: kind,
                source,
            })?;
            tmp
        };
        // Detection (or spooling) moved the cursor; the tar index reads from the start.
        file.rewind().map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let bad_tar = |source| ArchiveError::BadTar {
            path: path.to_path_buf(),
            source,
        };

        let mut members = HashMap::new();
        let mut links = Vec::new();
        let mut ar = tar::Archive::new(&file);
        for entry in ar.entries_with_seek().map_err(bad_tar)? {
            let entry = entry.map_err(bad_tar)?;
            let raw = entry.path_bytes();
            let raw = String::from_utf8_lossy(&raw).into_owned();
            let name = clean_name(path, &raw)?;
            let kind = entry.header().entry_type();
            if kind.is_file()
                || kind == tar::EntryType::Continuous
                || kind == tar::EntryType::GNUSparse
            {
                let span = Span {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                };
                if span.offset.saturating_add(span.size) > len {
                    return Err(bad_tar(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("member {name:?} is truncated"),
                    )));
                }
                members.insert(name, span);
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let resolved = resolve_link(path, &name, &target, kind.is_hard_link())?;
                links.push((name, resolved));
            }
            // Directories and other entry types carry nothing an image needs.
        }
        // Old `docker save` links duplicate layers (`<id>/layer.tar -> ../<id2>/layer.tar`).
        // Resolve chains a bounded number of times so a link loop ends.
        for _ in 0..8 {
            let mut progressed = false;
            for (name, target) in &links {
                if !members.contains_key(name)
                    && let Some(span) = members.get(target).copied()
                {
                    members.insert(name.clone(), span);
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        Ok(Source::Tar {
            path: path.to_path_buf(),
            file: Arc::new(file),
            members,
        })
    }

    pub(crate) fn open_dir(path: &Path) -> Result<Source, ArchiveError> {
        let root = path.canonicalize().map_err(|source| ArchiveError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Source::Dir {
            path: path.to_path_buf(),
            root,
        })
    }

    /// The archive's path, for messages.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Source::Tar { path, .. } | Source::Dir { path, .. } => path,
        }
    }

    /// A member inside a directory, refusing anything (via symlinks) outside it.
    fn dir_member(&self, root: &Path, name: &str) -> Result<Option<PathBuf>, ArchiveError> {
        let name = clean_name(self.path(), name)?;
        let p = root.join(&name);
        match p.canonicalize() {
            Ok(real) if real.starts_with(root) => Ok(real.is_file().then_some(real)),
            Ok(_) => Err(ArchiveError::UnsafeName {
                path: self.path().to_path_buf(),
                name,
                reason: "symlink leads outside the directory",
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ArchiveError::Io { path: p, source }),
        }
    }

    pub(crate) fn contains(&self, name: &str) -> Result<bool, ArchiveError> {
        Ok(self.size(name)?.is_some())
    }

    /// Size of a member, `None` when absent.
    pub(crate) fn size(&self, name: &str) -> Result<Option<u64>, ArchiveError> {
        match self {
            Source::Tar { members, .. } => Ok(members.get(name).map(|s| s.size)),
            Source::Dir { root, .. } => match self.dir_member(root, name)? {
                Some(p) => Ok(Some(
                    p.metadata()
                        .map_err(|source| ArchiveError::Io {
                            path: p.clone(),
                            source,
                        })?
                        .len(),
                )),
                None => Ok(None),
            },
        }
    }

    /// Opens a member; `needed_by` says who named it, for the error when it is missing.
    pub(crate) fn open(
        &self,
        name: &str,
        needed_by: &str,
    ) -> Result<Box<dyn Read + Send>, ArchiveError> {
        let missing = || ArchiveError::MissingMember {
            path: self.path().to_path_buf(),
            member: name.to_string(),
            needed_by: needed_by.to_string(),
        };
        match self {
            Source::Tar { file, members, .. } => {
                let span = members.get(name).ok_or_else(missing)?;
                Ok(Box::new(SectionReader {
                    file: file.clone(),
                    pos: span.offset,
                    end: span.offset + span.size,
                }))
            }
            Source::Dir { root, .. } => {
                let p = self.dir_member(root, name)?.ok_or_else(missing)?;
                let f = File::open(&p).map_err(|source| ArchiveError::Io { path: p, source })?;
                Ok(Box::new(f))
            }
        }
    }

    /// Reads a whole (small) member.
    pub(crate) fn read_small(&self, name: &str, needed_by: &str) -> Result<Vec<u8>, ArchiveError> {
        let size = self
            .size(name)?
            .ok_or_else(|| ArchiveError::MissingMember {
                path: self.path().to_path_buf(),
                member: name.to_string(),
                needed_by: needed_by.to_string(),
            })?;
        if size > MAX_JSON {
            return Err(ArchiveError::Invalid {
                path: self.path().to_path_buf(),
                member: name.to_string(),
                reason: format!("{size} bytes is too large for a JSON document (limit {MAX_JSON})"),
            });
        }
        let mut buf = Vec::with_capacity(size as usize);
        self.open(name, needed_by)?
            .take(MAX_JSON)
            .read_to_end(&mut buf)
            .map_err(|source| ArchiveError::Io {
                path: self.path().join(name),
                source,
            })?;
        Ok(buf)
    }
}

/// Reads one byte range of a shared file with positional reads, so readers don't share a
/// file cursor.
struct SectionReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for SectionReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(left.min(usize::MAX as u64) as usize);
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive file shrank while reading",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_or_refused() {
        let a = Path::new("a.tar");
        assert_eq!(clean_name(a, "./manifest.json").unwrap(), "manifest.json");
        assert_eq!(clean_name(a, "blobs//sha256/x").unwrap(), "blobs/sha256/x");
        assert!(clean_name(a, "../etc/passwd").is_err());
        assert!(clean_name(a, "blobs/../../x").is_err());
        assert!(clean_name(a, "/etc/passwd").is_err());
    }

    #[test]
    fn links_resolve_inside_only() {
        let a = Path::new("a.tar");
        assert_eq!(
            resolve_link(a, "x/layer.tar", "../y/layer.tar", false).unwrap(),
            "y/layer.tar"
        );
        assert_eq!(
            resolve_link(a, "x/layer.tar", "y/layer.tar", true).unwrap(),
            "y/layer.tar"
        );
        assert!(resolve_link(a, "x/layer.tar", "../../etc/shadow", false).is_err());
        assert!(resolve_link(a, "x", "/etc/shadow", true).is_err());
    }
}
