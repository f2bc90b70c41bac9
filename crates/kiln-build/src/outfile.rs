//! Files an export writes (`kiln save -o`, `--output type=docker|oci,dest=`).
//!
//! A regular destination is written beside itself and renamed over it, so a failed export
//! never leaves half a file. A destination that exists and is not a regular file — a device
//! such as `/dev/null`, a FIFO — is written in place, as docker does: renaming over it would
//! replace the device node with a regular file (for `/dev/null`, breaking the whole machine).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// An export's output file; [`OutputFile::commit`] makes it visible.
#[derive(Debug)]
pub enum OutputFile {
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
            OutputFile::Direct(f) => f,
        }
    }

    /// Makes what was written visible at the destination. No fsync, as docker and skopeo:
    /// the rename already hides a half-written file from a crash of this process.
    pub fn commit(self) -> io::Result<()> {
        match self {
            OutputFile::Temp { tmp, dest } => tmp.persist(&dest).map(|_| ()).map_err(|e| e.error),
            OutputFile::Direct(_) => Ok(()),
        }
    }
}
