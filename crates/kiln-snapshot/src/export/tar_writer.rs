//! Diff directory → layer tar, deterministic: entries sorted bytewise per directory
//! (depth first, as Go's filepath.Walk and so BuildKit), normalized headers (ustar with PAX
//! records when a field does not fit, no atime/ctime, empty user/group names), whiteout
//! devices as `.wh.` files and opaque directories as `.wh..wh..opq` entries.

use crate::error::{Error, Result, io_err};
use crate::xattr::{self, OPAQUE_FUSE_XATTR, OPAQUE_USER_XATTR, OPAQUE_XATTR, is_overlay_private};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Options for writing a layer tar.
#[derive(Clone, Debug, Default)]
pub struct TarOptions {
    /// `SOURCE_DATE_EPOCH`: clamp every mtime to at most this (BuildKit's
    /// rewrite-timestamp), so rebuilding the same inputs gives the same bytes.
    pub source_date_epoch: Option<i64>,
}

/// What went into a layer tar.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Entries written (extension headers not counted).
    pub entries: u64,
    /// Regular files (with content).
    pub files: u64,
    /// Bytes of regular file content.
    pub file_bytes: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Hard links (second and later names of a file).
    pub hardlinks: u64,
    /// Whiteouts (`.wh.NAME`).
    pub whiteouts: u64,
    /// Opaque directories (`.wh..wh..opq`).
    pub opaque_dirs: u64,
    /// Sockets skipped (a tar cannot hold them).
    pub sockets_skipped: u64,
    /// Length of the tar stream.
    pub tar_size: u64,
}

/// Write the diff directory `diff_dir` as a layer tar to `w`.
pub fn write_layer_tar(diff_dir: &Path, w: impl Write, opts: &TarOptions) -> Result<LayerStats> {
    let md = fs::symlink_metadata(diff_dir).map_err(io_err("stat", diff_dir))?;
    if !md.is_dir() {
        return Err(Error::Io {
            op: "export",
            path: diff_dir.to_path_buf(),
            source: io::Error::from(io::ErrorKind::NotADirectory),
        });
    }
    let mut tw = TarWriter {
        out: Counting {
            inner: BufWriter::with_capacity(256 * 1024, w),
            count: 0,
        },
        opts: opts.clone(),
        links: HashMap::new(),
        stats: LayerStats::default(),
        buf: vec![0u8; 256 * 1024],
    };
    tw.dir(diff_dir, b"")?;
    // End of archive: two zero blocks (what Go's and tar-rs' writers emit).
    tw.out
        .write_all(&[0u8; 1024])
        .and_then(|_| tw.out.flush())
        .map_err(|source| Error::WriteTar {
            entry: "end of archive".into(),
            source,
        })?;
    tw.stats.tar_size = tw.out.count;
    Ok(tw.stats)
}

struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct TarWriter<W: Write> {
    out: Counting<BufWriter<W>>,
    opts: TarOptions,
    /// First name of each multiply-linked regular file, by (dev, ino).
    links: HashMap<(u64, u64), Vec<u8>>,
    stats: LayerStats,
    buf: Vec<u8>,
}

/// One entry's header fields before formatting.
struct Entry<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    size: u64,
    link: Option<&'a [u8]>,
    dev: Option<(u32, u32)>,
    xattrs: &'a [(OsString, Vec<u8>)],
}

impl<W: Write> TarWriter<W> {
    fn mtime(&self, md: &fs::Metadata) -> i64 {
        let t = md.mtime();
        match self.opts.source_date_epoch {
            Some(epoch) => t.min(epoch),
            None => t,
        }
    }

    fn dir(&mut self, abs: &Path, rel: &[u8]) -> Result<()> {
        let mut names: Vec<OsString> = fs::read_dir(abs)
            .map_err(io_err("read directory", abs))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(io_err("read directory", abs))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = abs.join(&name);
            let mut child = rel.to_vec();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(name.as_bytes());
            self.child(&path, &child, name.as_bytes())?;
        }
        Ok(())
    }

    fn child(&mut self, abs: &Path, rel: &[u8], name: &[u8]) -> Result<()> {
        let md = fs::symlink_metadata(abs).map_err(io_err("stat", abs))?;
        let ft = md.file_type();
        let mtime = self.mtime(&md);
        if ft.is_char_device() && md.rdev() == 0 {
            // An overlay whiteout. They are all hard links to one inode: never a tar link.
            let mut wh = rel[..rel.len() - name.len()].to_vec();
            wh.extend_from_slice(b".wh.");
            wh.extend_from_slice(name);
            self.stats.whiteouts += 1;
            return self.entry(
                &Entry {
                    name: &wh,
                    kind: tar::EntryType::Regular,
                    mode: 0,
                    uid: 0,
                    gid: 0,
                    mtime,
                    size: 0,
                    link: None,
                    dev: None,
                    xattrs: &[],
                },
                None,
            );
        }
        if ft.is_socket() {
            self.stats.sockets_skipped += 1;
            return Ok(());
        }
        let all = xattr::read_all(abs).map_err(io_err("read xattrs", abs))?;
        let opaque = ft.is_dir()
            && all.iter().any(|(n, v)| {
                (n == OPAQUE_XATTR || n == OPAQUE_USER_XATTR || n == OPAQUE_FUSE_XATTR)
                    && v.as_slice() == b"y"
            });
        let xattrs: Vec<_> = all
            .into_iter()
            .filter(|(n, _)| !is_overlay_private(n.as_bytes()))
            .collect();
        let mut e = Entry {
            name: rel,
            kind: tar::EntryType::Regular,
            mode: md.mode() & 0o7777,
            uid: md.uid() as u64,
            gid: md.gid() as u64,
            mtime,
            size: 0,
            link: None,
            dev: None,
            xattrs: &xattrs,
        };
        if ft.is_dir() {
            let mut dname = rel.to_vec();
            dname.push(b'/');
            e.name = &dname;
            e.kind = tar::EntryType::Directory;
            self.stats.dirs += 1;
            self.entry(&e, None)?;
            if opaque {
                let mut opq = dname.clone();
                opq.extend_from_slice(b".wh..wh..opq");
                self.stats.opaque_dirs += 1;
                self.entry(
                    &Entry {
                        name: &opq,
                        kind: tar::EntryType::Regular,
                        mode: e.mode & 0o777,
                        size: 0,
                        xattrs: &[],
                        ..e
                    },
                    None,
                )?;
            }
            return self.dir(abs, rel);
        }
        if ft.is_file() {
            if md.nlink() > 1 {
                let key = (md.dev(), md.ino());
                if let Some(first) = self.links.get(&key).cloned() {
                    self.stats.hardlinks += 1;
                    return self.entry(
                        &Entry {
                            kind: tar::EntryType::Link,
                            link: Some(&first),
                            xattrs: &[],
                            ..e
                        },
                        None,
                    );
                }
                self.links.insert(key, rel.to_vec());
            }
            e.size = md.size();
            let file = File::open(abs).map_err(io_err("open", abs))?;
            self.stats.files += 1;
            self.stats.file_bytes += e.size;
            return self.entry(&e, Some((file, abs)));
        }
        if ft.is_symlink() {
            let target = fs::read_link(abs).map_err(io_err("read symlink", abs))?;
            self.stats.symlinks += 1;
            return self.entry(
                &Entry {
                    kind: tar::EntryType::Symlink,
                    link: Some(target.as_os_str().as_bytes()),
                    ..e
                },
                None,
            );
        }
        let rdev = md.rdev();
        let dev = Some((rustix::fs::major(rdev), rustix::fs::minor(rdev)));
        let kind = if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else {
            tar::EntryType::Fifo
        };
        self.entry(
            &Entry {
                kind,
                dev: if ft.is_fifo() { None } else { dev },
                ..e
            },
            None,
        )
    }

    fn entry(&mut self, e: &Entry<'_>, data: Option<(File, &Path)>) -> Result<()> {
        let shown = || String::from_utf8_lossy(e.name).into_owned();
        let werr = |source| Error::WriteTar {
            entry: shown(),
            source,
        };
        let mut h = tar::Header::new_ustar();
        let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        // A long name with a newline goes in a GNU long-name entry instead of a PAX record:
        // the `tar` crate (kiln's reader) splits PAX records at newlines, so it could not
        // read back what kiln wrote. Go's and GNU's readers take both.
        if !set_ustar_path(&mut h, e.name) {
            if e.name.contains(&b'\n') {
                self.gnu_long(tar::EntryType::GNULongName, e.name)
                    .map_err(werr)?;
            } else {
                pax.push((b"path".to_vec(), e.name.to_vec()));
            }
        }
        if let Some(link) = e.link {
            if link.len() <= 100 && link.is_ascii() {
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            } else {
                if link.contains(&b'\n') {
                    self.gnu_long(tar::EntryType::GNULongLink, link)
                        .map_err(werr)?;
                } else {
                    pax.push((b"linkpath".to_vec(), link.to_vec()));
                }
                let cut = &link[..link.len().min(100)];
                h.as_old_mut().linkname[..cut.len()].copy_from_slice(cut);
            }
        }
        const MAX_ID: u64 = 0o7777777;
        h.set_uid(if e.uid > MAX_ID {
            pax.push((b"uid".to_vec(), e.uid.to_string().into_bytes()));
            0
        } else {
            e.uid
        });
        h.set_gid(if e.gid > MAX_ID {
            pax.push((b"gid".to_vec(), e.gid.to_string().into_bytes()));
            0
        } else {
            e.gid
        });
        const MAX_SIZE: u64 = 0o77777777777;
        if e.size > MAX_SIZE {
            pax.push((b"size".to_vec(), e.size.to_string().into_bytes()));
        }
        h.set_size(e.size);
        // ustar cannot hold times before 1970; they are rare enough to clamp.
        let mtime = e.mtime.max(0) as u64;
        if mtime > MAX_SIZE {
            pax.push((b"mtime".to_vec(), mtime.to_string().into_bytes()));
        }
        h.set_mtime(mtime);
        h.set_mode(e.mode);
        h.set_entry_type(e.kind);
        if let Some((major, minor)) = e.dev {
            h.set_device_major(major).map_err(werr)?;
            h.set_device_minor(minor).map_err(werr)?;
        }
        for (n, v) in e.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(n.as_bytes());
            pax.push((key, v.clone()));
        }
        h.set_cksum();
        if !pax.is_empty() {
            self.pax_header(e.name, &pax).map_err(werr)?;
        }
        self.out.write_all(h.as_bytes()).map_err(werr)?;
        self.stats.entries += 1;
        if let Some((file, path)) = data {
            self.copy_data(file, path, e.size)?;
        }
        Ok(())
    }

    fn copy_data(&mut self, mut file: File, path: &Path, size: u64) -> Result<()> {
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(Error::FileChanged {
                        path: path.to_path_buf(),
                        expected: size,
                        read: size - left,
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("read", path)(e)),
            };
            self.out
                .write_all(&self.buf[..n])
                .map_err(|source| Error::WriteTar {
                    entry: path.display().to_string(),
                    source,
                })?;
            left -= n as u64;
        }
        self.pad(size).map_err(|source| Error::WriteTar {
            entry: path.display().to_string(),
            source,
        })
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }

    /// A PAX extended header ('x') carrying `records` for the next entry.
    /// A GNU `././@LongLink` entry (`L` for the next entry's name, `K` for its link target).
    fn gnu_long(&mut self, kind: tar::EntryType, value: &[u8]) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        let name = b"././@LongLink";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(value.len() as u64 + 1);
        h.set_entry_type(kind);
        h.set_cksum();
        self.out.write_all(h.as_bytes())?;
        self.out.write_all(value)?;
        let written = value.len() + 1;
        let pad = (512 - written % 512) % 512;
        self.out.write_all(&[0u8; 512][..pad + 1])?;
        Ok(())
    }

    fn pax_header(&mut self, name: &[u8], records: &[(Vec<u8>, Vec<u8>)]) -> io::Result<()> {
        let mut data = Vec::new();
        for (k, v) in records {
            // "<len> <key>=<value>\n" where len counts itself.
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len.to_string().len() + rest > len {
                len += 1;
            }
            data.extend_from_slice(len.to_string().as_bytes());
            data.push(b' ');
            data.extend_from_slice(k);
            data.push(b'=');
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let mut h = tar::Header::new_ustar();
        // Named like Go's writer does, shortened to fit: readers ignore it.
        let base = name
            .rsplit(|&b| b == b'/')
            .find(|s| !s.is_empty())
            .unwrap_or(b"");
        let mut pname = b"PaxHeaders.0/".to_vec();
        pname.extend(base.iter().copied().filter(|b| b.is_ascii()).take(100 - 13));
        h.as_old_mut().name[..pname.len()].copy_from_slice(&pname);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_mode(0o644);
        h.set_cksum();
        self.out.write_all(h.as_bytes())?;
        self.out.write_all(&data)?;
        self.pad(data.len() as u64)
    }
}

/// Put `path` in the ustar name (100 bytes) and prefix (155 bytes) fields, splitting at a
/// `/`. False when it does not fit or is not ASCII (then a PAX `path` record carries it and
/// the name field holds a truncated copy, as Go's writer does).
fn set_ustar_path(h: &mut tar::Header, path: &[u8]) -> bool {
    let Some(ustar) = h.as_ustar_mut() else {
        return false;
    };
    if path.is_ascii() {
        if path.len() <= 100 {
            ustar.name[..path.len()].copy_from_slice(path);
            return true;
        }
        // Split at the last '/' that leaves at most 155 bytes before and 100 after it
        // (a trailing '/' of a directory stays with the name).
        let search = &path[..path.len().saturating_sub(1).min(156)];
        if let Some(i) = search.iter().rposition(|&b| b == b'/') {
            let (prefix, name) = (&path[..i], &path[i + 1..]);
            if i > 0 && !name.is_empty() && name.len() <= 100 && prefix.len() <= 155 {
                ustar.prefix[..prefix.len()].copy_from_slice(prefix);
                ustar.name[..name.len()].copy_from_slice(name);
                return true;
            }
        }
    }
    let cut = &path[..path.len().min(100)];
    ustar.name[..cut.len()].copy_from_slice(cut);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ustar_split() {
        let mut h = tar::Header::new_ustar();
        assert!(set_ustar_path(&mut h, b"a/b"));
        let long = format!("{}/{}", "d".repeat(150), "f".repeat(99));
        let mut h = tar::Header::new_ustar();
        assert!(set_ustar_path(&mut h, long.as_bytes()));
        assert_eq!(h.path_bytes().as_ref(), long.as_bytes());
        let mut h = tar::Header::new_ustar();
        assert!(!set_ustar_path(&mut h, "x".repeat(101).as_bytes()));
        let mut h = tar::Header::new_ustar();
        assert!(!set_ustar_path(&mut h, "é".as_bytes()));
    }
}
