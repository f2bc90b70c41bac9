//! Entry metadata from a tar header (and its PAX records), and applying it to what was made.
//!
//! Order matters: chown first (it clears setuid/setgid bits and `security.capability`), then
//! chmod, then xattrs, then times (every other change would bump the mtime).

use crate::error::EntryError;
use crate::xattr::is_overlay_private;
use rustix::fs::{AtFlags, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub(crate) struct Meta {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mode: u32,
    pub(crate) mtime: Timespec,
    pub(crate) xattrs: Vec<(OsString, Vec<u8>)>,
    /// `trusted.*` xattrs left out because this process is in a user namespace.
    pub(crate) dropped_xattrs: u64,
}

impl Meta {
    pub(crate) fn read<R: std::io::Read>(
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<Meta, EntryError> {
        let h = entry.header();
        let bad = |source| EntryError::Io {
            op: "parse header",
            source,
        };
        let old = h.as_old();
        let uid = lenient(&old.uid, h.uid()).map_err(bad)?;
        let gid = lenient(&old.gid, h.gid()).map_err(bad)?;
        let mode = lenient(&old.mode, h.mode().map(u64::from)).map_err(bad)? as u32 & 0o7777;
        let mut mtime = Timespec {
            tv_sec: lenient(&old.mtime, h.mtime())
                .map_err(bad)?
                .min(i64::MAX as u64) as i64,
            tv_nsec: 0,
        };
        let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
            return Err(EntryError::Io {
                op: "parse header",
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "uid or gid above 2^32",
                ),
            });
        };
        let mut xattrs = Vec::new();
        let mut dropped_xattrs = 0;
        if let Some(exts) = entry.pax_extensions().map_err(|source| EntryError::Io {
            op: "read PAX records",
            source,
        })? {
            for ext in exts {
                let ext = ext.map_err(|source| EntryError::Io {
                    op: "read PAX records",
                    source,
                })?;
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if name.starts_with(b"trusted.") && crate::xattr::in_user_namespace() {
                        // Needs CAP_SYS_ADMIN in the initial user namespace: rootless
                        // extraction cannot keep it (counted, and reported by the caller).
                        dropped_xattrs += 1;
                    } else if !is_overlay_private(name) && !name.is_empty() {
                        xattrs.push((
                            OsString::from_vec(name.to_vec()),
                            ext.value_bytes().to_vec(),
                        ));
                    }
                } else if key == b"mtime"
                    && let Some(t) = parse_pax_time(ext.value_bytes())
                {
                    mtime = t;
                }
            }
        }
        Ok(Meta {
            uid,
            gid,
            mode,
            mtime,
            xattrs,
            dropped_xattrs,
        })
    }

    fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }

    /// Apply everything through an open (non-`O_PATH`) descriptor.
    pub(crate) fn apply_fd(&self, fd: BorrowedFd<'_>, same_owner: bool) -> Result<(), EntryError> {
        if same_owner {
            rustix::fs::fchown(
                fd,
                Some(Uid::from_raw(self.uid)),
                Some(Gid::from_raw(self.gid)),
            )
            .map_err(EntryError::io("chown"))?;
        }
        rustix::fs::fchmod(fd, Mode::from_raw_mode(self.mode)).map_err(EntryError::io("chmod"))?;
        for (name, value) in &self.xattrs {
            rustix::fs::fsetxattr(fd, name.as_os_str(), value, XattrFlags::empty())
                .map_err(|e| xattr_err(name, e))?;
        }
        rustix::fs::futimens(fd, &self.times()).map_err(EntryError::io("set times"))
    }

    /// Apply to `name` in `dir` (an `O_PATH` descriptor) for what cannot be opened: symlinks,
    /// device nodes and fifos. Symlinks keep their 0777 mode.
    pub(crate) fn apply_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        is_symlink: bool,
        same_owner: bool,
    ) -> Result<(), EntryError> {
        if same_owner {
            rustix::fs::chownat(
                dir,
                name,
                Some(Uid::from_raw(self.uid)),
                Some(Gid::from_raw(self.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(EntryError::io("chown"))?;
        }
        if !is_symlink {
            // The node was just made by mknodat in a directory only we write to, so following
            // is safe here, and portable (fchmodat has no working NOFOLLOW before Linux 6.6).
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(self.mode), AtFlags::empty())
                .map_err(EntryError::io("chmod"))?;
        }
        if !self.xattrs.is_empty() {
            // No fd-relative xattr calls before Linux 6.13: go through our own directory fd.
            let path = proc_path(dir, name);
            for (xname, value) in &self.xattrs {
                rustix::fs::lsetxattr(&path, xname.as_os_str(), value, XattrFlags::empty())
                    .map_err(|e| xattr_err(xname, e))?;
            }
        }
        rustix::fs::utimensat(dir, name, &self.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(EntryError::io("set times"))
    }
}

/// A numeric header field left empty (all NULs or spaces) means 0, as Go's archive/tar reads
/// it; some tools write such headers.
fn lenient(raw: &[u8], parsed: std::io::Result<u64>) -> std::io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        other => other,
    }
}

fn xattr_err(name: &OsStr, e: rustix::io::Errno) -> EntryError {
    EntryError::Io {
        op: "set xattr",
        source: std::io::Error::new(
            std::io::Error::from(e).kind(),
            format!("{}: {}", name.to_string_lossy(), std::io::Error::from(e)),
        ),
    }
}

/// `/proc/self/fd/N/name`: a path to `name` in the directory held by `dir`.
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd()));
    p.push(name);
    p
}

/// PAX times are decimal seconds with an optional fraction (`1700000000.123456789`).
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let tv_sec: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    for (i, ch) in frac.chars().take(9).enumerate() {
        let d = ch.to_digit(10)? as i64;
        nanos += d * 10i64.pow(8 - i as u32);
    }
    if tv_sec < 0 && nanos > 0 {
        return Some(Timespec {
            tv_sec: tv_sec - 1,
            tv_nsec: 1_000_000_000 - nanos,
        });
    }
    Some(Timespec {
        tv_sec,
        tv_nsec: nanos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time(b"12").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 0));
        let t = parse_pax_time(b"-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        assert!(parse_pax_time(b"x").is_none());
    }
}
