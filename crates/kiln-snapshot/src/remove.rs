//! Removing trees that a container may have made hard to remove: mode-000 or read-only
//! directories and files with the immutable or append-only attribute. Symlinks are removed,
//! never followed.

use crate::error::{Error, Result};
use rustix::fs::{AtFlags, CWD, FileType, IFlags, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Remove `path` and everything below it. A missing path is not an error.
///
/// Unlike `std::fs::remove_dir_all` this also removes trees holding directories without
/// permissions (`chmod 000`, left by a RUN step) and files marked immutable or append-only.
pub fn remove_dir_all(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = match path.file_name() {
        Some(n) => n,
        // `/`, `..` or `x/..`: refuse rather than guess what was meant.
        None => {
            return Err(Error::Io {
                op: "remove",
                path: path.to_path_buf(),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            });
        }
    };
    let dir = match rustix::fs::openat(
        CWD,
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(d) => d,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(crate::error::io_err("open", parent)(e.into())),
    };
    remove_at(dir.as_fd(), name).map_err(crate::error::io_err("remove", path))
}

/// Remove the entry `name` of directory `dir` recursively (without following symlinks).
pub(crate) fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let child = open_dir_for_removal(dir, name)?;
        empty_dir(child.as_fd())?;
        drop(child);
        unlink_with_retry(dir, name, AtFlags::REMOVEDIR)
    } else {
        unlink_with_retry(dir, name, AtFlags::empty())
    }
}

/// Remove every entry of the open directory `dir`.
pub(crate) fn empty_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    for name in list_dir(dir)? {
        remove_at(dir, &name)?;
    }
    Ok(())
}

/// The names in a directory, without `.` and `..`.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    // Read through a fresh descriptor: `Dir` takes its own duplicate and seeks it.
    let mut d = rustix::fs::Dir::read_from(dir)?;
    let mut names = Vec::new();
    while let Some(entry) = d.read() {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    Ok(names)
}

fn open_dir_for_removal(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        // A mode-000 directory and we are not root: give ourselves access and retry.
        Err(Errno::ACCESS) => {
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(0o700), AtFlags::empty())?;
            rustix::fs::openat(dir, name, flags, Mode::empty())?
        }
        Err(e) => return Err(e.into()),
    };
    if !rustix::process::geteuid().is_root() {
        // Without CAP_DAC_OVERRIDE a read-only directory cannot be emptied.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))?;
    }
    Ok(fd)
}

fn unlink_with_retry(dir: BorrowedFd<'_>, name: &OsStr, flags: AtFlags) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, flags) {
        Ok(()) => Ok(()),
        Err(Errno::PERM) => {
            // Immutable or append-only, on the entry or on its directory: clear and retry.
            clear_attr_flags_at(dir, name);
            if let Ok(d) = rustix::fs::openat(
                dir,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                clear_attr_flags(d.as_fd());
            }
            rustix::fs::unlinkat(dir, name, flags).map_err(Into::into)
        }
        Err(e) => Err(e.into()),
    }
}

fn clear_attr_flags_at(dir: BorrowedFd<'_>, name: &OsStr) {
    // Symlinks and device nodes cannot be opened for the ioctl; they cannot carry the flags
    // in a way that matters here either.
    if let Ok(fd) = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        clear_attr_flags(fd.as_fd());
    }
}

fn clear_attr_flags(fd: BorrowedFd<'_>) {
    if let Ok(flags) = rustix::fs::ioctl_getflags(fd) {
        let cleared = flags - (IFlags::IMMUTABLE | IFlags::APPEND);
        if cleared != flags {
            let _ = rustix::fs::ioctl_setflags(fd, cleared);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn removes_mode_000_dirs_and_read_only_trees() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("tree");
        fs::create_dir_all(root.join("a/b/c")).unwrap();
        fs::write(root.join("a/b/c/f"), b"x").unwrap();
        fs::write(root.join("a/g"), b"y").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/etc")).unwrap();
        fs::set_permissions(root.join("a/b/c"), fs::Permissions::from_mode(0o000)).unwrap();
        fs::set_permissions(root.join("a/b"), fs::Permissions::from_mode(0o500)).unwrap();
        remove_dir_all(&root).unwrap();
        assert!(!root.exists());
        assert!(
            Path::new("/etc/passwd").exists(),
            "symlink must not be followed"
        );
    }

    #[test]
    fn missing_path_is_fine_and_files_are_removed() {
        let t = tempfile::tempdir().unwrap();
        remove_dir_all(&t.path().join("nope")).unwrap();
        let f = t.path().join("file");
        fs::write(&f, b"x").unwrap();
        remove_dir_all(&f).unwrap();
        assert!(!f.exists());
    }

    #[test]
    fn removes_immutable_files() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("tree");
        fs::create_dir(&root).unwrap();
        let f = root.join("locked");
        fs::write(&f, b"x").unwrap();
        let fd = fs::File::open(&f).unwrap();
        let flags = rustix::fs::ioctl_getflags(&fd).unwrap();
        if rustix::fs::ioctl_setflags(&fd, flags | IFlags::IMMUTABLE).is_err() {
            // The file system here has no attribute flags (tmpfs without support, or not
            // root): nothing to test.
            return;
        }
        drop(fd);
        assert!(fs::remove_file(&f).is_err());
        remove_dir_all(&root).unwrap();
        assert!(!root.exists());
    }
}
