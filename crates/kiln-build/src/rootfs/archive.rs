//! ADD of a local archive: detection (tar, plain or gzip/bzip2/xz/zstd compressed, the way
//! Docker's `isArchivePath` decides) and a hardened extraction that merges into the
//! destination directory as `chrootarchive.Untar` does: every path stays inside the
//! destination (symlinks in it are followed only inside it), an existing entry in the way
//! is replaced unless both are directories, owners and modes come from the archive unless
//! `--chown` is given.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};

use crate::rootfs::path::{self as rootpath, Owner, Root};

const BLOCK: usize = 512;

/// What a copy (or an extraction) wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// Devices, fifos, sockets.
    pub others: u64,
    pub bytes: u64,
}

/// An archive that does not extract into its destination.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive (named `path`) is corrupt or holds an entry that cannot be written.
    #[error("extracting {path}: {message}")]
    Archive { path: String, message: String },
    /// The destination directory `path` (inside the root) cannot be opened.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

fn archive_err(path: &str, message: impl Into<String>) -> ArchiveError {
    ArchiveError::Archive {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Wrap `file` in the decompressor its magic bytes call for.
fn decompressor(mut file: File) -> io::Result<Box<dyn Read + Send>> {
    let mut magic = [0u8; 6];
    let mut n = 0;
    while n < magic.len() {
        match file.read(&mut magic[n..])? {
            0 => break,
            k => n += k,
        }
    }
    file.rewind()?;
    let m = &magic[..n];
    Ok(if m.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(file)))
    } else if m.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(io::BufReader::new(file)))
    } else if m.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        // lzma-rs only decodes into a writer: spool to an unnamed temporary file.
        let mut out = tempfile::tempfile()?;
        lzma_rs::xz_decompress(&mut io::BufReader::new(file), &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("xz: {e:?}")))?;
        out.rewind()?;
        Box::new(out)
    } else if m.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(file)?)
    } else {
        Box::new(file)
    })
}

/// Is this header block a valid tar header (its checksum matches)?
fn valid_header(h: &[u8; BLOCK]) -> bool {
    if h.iter().all(|b| *b == 0) {
        return false;
    }
    let field = &h[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let Ok(want) = i64::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    want == unsigned || want == signed
}

/// If `file` is a (possibly compressed) tar archive, a reader of the tar stream.
pub fn open_archive(file: File) -> Option<Box<dyn Read + Send>> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut r = decompressor(file).ok()?;
    let mut first = [0u8; BLOCK];
    r.read_exact(&mut first).ok()?;
    if !valid_header(&first) {
        return None;
    }
    Some(Box::new(io::Cursor::new(first.to_vec()).chain(r)))
}

/// Extract the tar stream `r` into the directory `dest_rel` of `dest` (created already).
pub fn extract(
    r: Box<dyn Read + Send>,
    dest: &Root,
    dest_rel: &Path,
    owner: Option<Owner>,
    source_name: &str,
    stats: &mut CopyStats,
) -> Result<(), ArchiveError> {
    let top = rootpath::open_dir(dest.fd(), dest_rel).map_err(|e| ArchiveError::Io {
        path: format!("/{}", dest_rel.display()),
        source: e,
    })?;
    let root = Root::from_fd(top, dest.host_path(dest_rel));
    let mut ar = tar::Archive::new(r);
    let entries = ar
        .entries()
        .map_err(|e| archive_err(source_name, e.to_string()))?;
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_err(source_name, e.to_string()))?;
        let raw = entry.path_bytes().into_owned();
        let comps = rootpath::clean_components(&raw);
        let Some((name, parents)) = comps.split_last() else {
            continue;
        };
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let bad = |m: String| archive_err(source_name, format!("{shown}: {m}"));
        let name = OsStr::from_bytes(name);
        let parent_path: Vec<u8> = parents.join(&b'/');
        let res = rootpath::resolve(root.fd(), &parent_path, true, &|_| true)
            .map_err(|e| bad(e.to_string()))?;
        let (pfd, _) = rootpath::mkdir_all(
            root.fd(),
            &res.rel,
            0o755,
            Some(owner.unwrap_or(Owner { uid: 0, gid: 0 })),
        )
        .map_err(|e| bad(e.to_string()))?;
        let rel = if res.rel.as_os_str().is_empty() {
            PathBuf::from(name)
        } else {
            res.rel.join(name)
        };
        let h = entry.header().clone();
        let kind = h.entry_type();
        let mode = h.mode().map_err(|e| bad(e.to_string()))? & 0o7777;
        let (uid, gid) = match owner {
            Some(o) => (o.uid, o.gid),
            None => (
                h.uid()
                    .ok()
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(0),
                h.gid()
                    .ok()
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(0),
            ),
        };
        let mtime = h.mtime().unwrap_or(0);
        let mtime = i64::try_from(mtime).unwrap_or(0);
        // Replace what is in the way, unless a directory meets a directory.
        match rootpath::is_dir_at(&pfd, name) {
            Ok(true) if kind.is_dir() => {}
            Ok(is_dir) => remove_all(&pfd, name, is_dir).map_err(|e| bad(e.to_string()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(bad(e.to_string())),
        }
        let e = NewEntry {
            pfd: &pfd,
            name,
            uid,
            gid,
            mode,
            mtime,
        };
        if write_entry(&mut entry, &h, &e, &root, stats).map_err(bad)? {
            dir_times.push((rel, mtime));
        }
        // Other entry types (PAX/GNU metadata consumed by the reader, sparse extensions we
        // cannot represent) are skipped, as Docker skips unknown types.
    }
    // Directory times last: creating their entries changed them.
    for (rel, mtime) in dir_times.into_iter().rev() {
        if let Ok(fd) = rootpath::open_dir(root.fd(), &rel) {
            let _ = rustix::fs::futimens(&fd, &stamp(mtime));
        }
    }
    Ok(())
}

/// An entry being written: its parent directory, name and what the archive (or `--chown`)
/// gives it.
struct NewEntry<'a> {
    pfd: &'a OwnedFd,
    name: &'a OsStr,
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
}

/// Write one archive entry (a directory, file, symlink, hard link or special file) in its
/// parent directory; true when it made a directory (whose time is set last). Other entry
/// types are skipped.
fn write_entry(
    entry: &mut tar::Entry<'_, Box<dyn Read + Send>>,
    h: &tar::Header,
    e: &NewEntry<'_>,
    root: &Root,
    stats: &mut CopyStats,
) -> Result<bool, String> {
    let NewEntry {
        pfd,
        name,
        uid,
        gid,
        mode,
        mtime,
    } = *e;
    let kind = h.entry_type();
    let mut made_dir = false;
    let io = |e: rustix::io::Errno| io::Error::from(e).to_string();
    if kind.is_dir() {
        match rustix::fs::mkdirat(pfd, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(io(e)),
        }
        let fd = rootpath::open_child_dir(pfd, name).map_err(|e| e.to_string())?;
        rootpath::chown_fd(&fd, uid, gid).map_err(|e| e.to_string())?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(io)?;
        made_dir = true;
        stats.dirs += 1;
    } else if kind.is_file() || kind == tar::EntryType::Continuous {
        let fd = rustix::fs::openat(
            pfd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(io)?;
        let mut f = File::from(fd);
        let n = io::copy(entry, &mut f).map_err(|e| e.to_string())?;
        stats.bytes += n;
        stats.files += 1;
        let fd = OwnedFd::from(f);
        rootpath::chown_fd(&fd, uid, gid).map_err(|e| e.to_string())?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(io)?;
        let _ = rustix::fs::futimens(&fd, &stamp(mtime));
    } else if kind.is_symlink() {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| "symlink without a target".to_string())?
            .into_owned();
        rustix::fs::symlinkat(OsStr::from_bytes(&target), pfd, name).map_err(io)?;
        rootpath::lchown_at(pfd, name, uid, gid).map_err(|e| e.to_string())?;
        let _ = rustix::fs::utimensat(pfd, name, &stamp(mtime), AtFlags::SYMLINK_NOFOLLOW);
        stats.symlinks += 1;
    } else if kind.is_hard_link() {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| "hard link without a target".to_string())?
            .into_owned();
        // The target is a path in the archive: resolve its directory inside the
        // destination, never its final component (link(2) does not follow it either).
        let res =
            rootpath::resolve(root.fd(), &target, false, &|_| true).map_err(|e| e.to_string())?;
        if !res.exists || res.rel.as_os_str().is_empty() {
            return Err(format!(
                "hard link target {:?} not found in the archive",
                String::from_utf8_lossy(&target)
            ));
        }
        rustix::fs::linkat(root.fd(), res.rel.as_path(), pfd, name, AtFlags::empty())
            .map_err(io)?;
        stats.hardlinks += 1;
    } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
        let ft = if kind.is_character_special() {
            FileType::CharacterDevice
        } else if kind.is_block_special() {
            FileType::BlockDevice
        } else {
            FileType::Fifo
        };
        let major = h.device_major().ok().flatten().unwrap_or(0);
        let minor = h.device_minor().ok().flatten().unwrap_or(0);
        rustix::fs::mknodat(
            pfd,
            name,
            ft,
            Mode::from_raw_mode(0o600),
            rustix::fs::makedev(major, minor),
        )
        .map_err(io)?;
        rootpath::lchown_at(pfd, name, uid, gid).map_err(|e| e.to_string())?;
        rustix::fs::chmodat(pfd, name, Mode::from_raw_mode(mode), AtFlags::empty()).map_err(io)?;
        let _ = rustix::fs::utimensat(pfd, name, &stamp(mtime), AtFlags::SYMLINK_NOFOLLOW);
        stats.others += 1;
    }
    Ok(made_dir)
}

fn stamp(sec: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Remove `name` in `dir` (recursively for a directory) without following symlinks.
pub fn remove_all(dir: &OwnedFd, name: &OsStr, is_dir: bool) -> io::Result<()> {
    if !is_dir {
        return Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?);
    }
    let mut todo: VecDeque<(OwnedFd, Vec<std::ffi::OsString>)> = VecDeque::new();
    let child = rootpath::open_child_dir(dir, name)?;
    let names = rootpath::read_names(&child)?;
    todo.push_back((child, names));
    // Depth-first: empty each directory, then remove it from its parent.
    fn empty(fd: &OwnedFd) -> io::Result<()> {
        for n in rootpath::read_names(fd)? {
            if rootpath::is_dir_at(fd.as_fd(), &n)? {
                let c = rootpath::open_child_dir(fd, &n)?;
                empty(&c)?;
                rustix::fs::unlinkat(fd, n.as_os_str(), AtFlags::REMOVEDIR)?;
            } else {
                rustix::fs::unlinkat(fd, n.as_os_str(), AtFlags::empty())?;
            }
        }
        Ok(())
    }
    if let Some((fd, _)) = todo.pop_front() {
        empty(&fd)?;
    }
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}
