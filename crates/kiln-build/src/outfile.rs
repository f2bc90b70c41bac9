//! Files an export writes (`kiln save -o`, `--output type=docker|oci,dest=`).
//!
//! A regular destination is written beside itself and renamed over it, so a failed export
//! never leaves half a file. The file being written has no name until it is complete
//! (`O_TMPFILE`, linked in at commit), so not even `kill -9` leaves a partial file behind;
//! where the file system has no `O_TMPFILE`, a named temp file is used (removed on drop). A destination that exists and is not a regular file — a device
//! such as `/dev/null`, a FIFO — is written in place, as docker does: renaming over it would
//! replace the device node with a regular file (for `/dev/null`, breaking the whole machine).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// An export's output file; [`OutputFile::commit`] makes it visible.
#[derive(Debug)]
pub enum OutputFile {
    /// An unnamed file in `dest`'s directory, linked in and renamed over `dest` on commit
    /// (dropped, or the process killed: it never had a name).
    Unnamed {
        file: File,
        dir: PathBuf,
        dest: PathBuf,
    },
    /// A temp file beside `dest`, renamed over it on commit (dropped: removed).
    Temp {
        tmp: tempfile::NamedTempFile,
        dest: PathBuf,
    },
    /// The destination itself.
    Direct(File),
}

impl OutputFile {
    /// Prepares to write `dest`; `-` is standard output.
    pub fn create(dest: &Path) -> io::Result<OutputFile> {
        if dest == Path::new("-") {
            use std::os::fd::AsFd;
            let fd = io::stdout().as_fd().try_clone_to_owned()?;
            return Ok(OutputFile::Direct(File::from(fd)));
        }
        // Following symlinks: a link to /dev/null is written through as well.
        if let Ok(m) = std::fs::metadata(dest)
            && !m.is_file()
        {
            if m.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("{} is a directory", dest.display()),
                ));
            }
            return Ok(OutputFile::Direct(File::options().write(true).open(dest)?));
        }
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        match rustix::fs::open(
            dir,
            rustix::fs::OFlags::TMPFILE | rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => {
                return Ok(OutputFile::Unnamed {
                    file: File::from(fd),
                    dir: dir.to_path_buf(),
                    dest: dest.to_path_buf(),
                });
            }
            // No O_TMPFILE on this file system: a named temp file instead.
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR) => {}
            Err(e) => return Err(e.into()),
        }
        let tmp = tempfile::Builder::new()
            .prefix(".kiln-save-")
            .tempfile_in(dir)?;
        Ok(OutputFile::Temp {
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// The file to write to.
    pub fn file(&self) -> &File {
        match self {
            OutputFile::Temp { tmp, .. } => tmp.as_file(),
            OutputFile::Unnamed { file, .. } | OutputFile::Direct(file) => file,
        }
    }

    /// Makes what was written visible at the destination. No fsync, as docker and skopeo:
    /// the rename already hides a half-written file from a crash of this process.
    pub fn commit(self) -> io::Result<()> {
        match self {
            OutputFile::Temp { tmp, dest } => tmp.persist(&dest).map(|_| ()).map_err(|e| e.error),
            OutputFile::Unnamed { file, dir, dest } => {
                // linkat cannot replace a file: link under a fresh name, then rename over dest.
                // Only a kill between these two calls can leave the (complete) file named.
                use std::os::fd::AsFd;
                for _ in 0..16 {
                    let name = dir.join(format!(".kiln-save-{:016x}", rand_u64()));
                    // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc/self/fd works without it.
                    let linked = rustix::fs::linkat(
                        file.as_fd(),
                        "",
                        rustix::fs::CWD,
                        &name,
                        rustix::fs::AtFlags::EMPTY_PATH,
                    )
                    .or_else(|e| match e {
                        rustix::io::Errno::NOENT | rustix::io::Errno::PERM => {
                            use std::os::fd::AsRawFd;
                            rustix::fs::linkat(
                                rustix::fs::CWD,
                                format!("/proc/self/fd/{}", file.as_raw_fd()),
                                rustix::fs::CWD,
                                &name,
                                rustix::fs::AtFlags::SYMLINK_FOLLOW,
                            )
                        }
                        e => Err(e),
                    });
                    match linked {
                        Ok(()) => {
                            return std::fs::rename(&name, &dest).inspect_err(|_| {
                                let _ = std::fs::remove_file(&name);
                            });
                        }
                        Err(rustix::io::Errno::EXIST) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("no free temporary name in {}", dir.display()),
                ))
            }
            OutputFile::Direct(_) => Ok(()),
        }
    }
}

/// A name suffix that another writer in the same directory is unlikely to pick.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}
