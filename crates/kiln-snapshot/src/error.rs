//! The crate's error type: every variant names the path or layer entry it concerns.

use std::io;
use std::path::PathBuf;

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in kiln-snapshot.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation on a path failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`"create"`, `"read"`, ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An entry of a layer tar was refused or could not be written.
    #[error("layer entry {entry:?}: {kind}")]
    Entry {
        /// The entry's path as written in the tar.
        entry: String,
        /// Why it failed.
        kind: EntryError,
    },
    /// The layer tar could not be read (truncated, corrupt, not a tar).
    #[error("reading layer tar {}: {source}", match .after { Some(e) => format!("after entry {e:?}"), None => "at its start".to_string() })]
    Archive {
        /// The last entry read completely, if any.
        after: Option<String>,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The layer is compressed with a format kiln does not read.
    #[error("layer compressed with {0}, which kiln does not read (use gzip, zstd or none)")]
    UnsupportedCompression(&'static str),
    /// Writing a layer tar failed.
    #[error("writing layer tar entry {entry:?}: {source}")]
    WriteTar {
        /// The path (inside the diff directory) being written.
        entry: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file changed size while it was being written into a layer tar.
    #[error("{path} changed while it was being exported (expected {expected} bytes, read {read})")]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// Its size when the header was written.
        expected: u64,
        /// The bytes actually read.
        read: u64,
    },
    /// Rootless: the kernel refused an overlay mount in kiln's user namespace.
    #[error(
        "the kernel refused overlayfs in kiln's rootless user namespace ({source}). Rootless kiln needs a kernel that lets an unprivileged user mount overlayfs (Linux 5.11 or later, with `userxattr`; some distributions turn it off), or its fallback fuse-overlayfs, which is not installed: `apt-get install fuse-overlayfs` (as root); see docs/rootless.md"
    )]
    RootlessOverlayRefused {
        /// The mount error.
        #[source]
        source: Box<Error>,
    },
    /// A mount step failed.
    #[error("mount {fstype} on {target}: {step} failed: {source}{}", kernel_message(.message))]
    Mount {
        /// `overlay` or `bind`.
        fstype: &'static str,
        /// The mount point.
        target: PathBuf,
        /// The failing step (`fsopen`, `fsconfig lowerdir+ /x`, `move_mount`, ...).
        step: String,
        /// What the kernel logged into the fs context, if anything.
        message: Option<String>,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An overlay mount needs at least one lower directory (or two for a read-only view).
    #[error("overlay mount on {target} needs at least one lower directory")]
    NoLowerDirs {
        /// The mount point.
        target: PathBuf,
    },
}

fn kernel_message(m: &Option<String>) -> String {
    match m {
        Some(m) => format!(" (kernel: {m})"),
        None => String::new(),
    }
}

/// Why one layer tar entry was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The entry's path is absolute.
    #[error("absolute path refused")]
    AbsolutePath,
    /// The entry's path climbs out of the root with `..`.
    #[error("path escapes the root through `..`")]
    EscapesRoot,
    /// The path has a NUL byte or an empty whiteout name.
    #[error("invalid name")]
    InvalidName,
    /// A parent of the entry is a symbolic link this layer created (or, when extracting a
    /// diff, any symbolic link): writing through it is refused.
    #[error("parent {component:?} is a symbolic link; refusing to write through it")]
    ThroughSymlink {
        /// The parent path that is a symlink.
        component: String,
    },
    /// A parent of the entry exists and is not a directory.
    #[error("parent {component:?} is not a directory")]
    NotADirectory {
        /// The parent path.
        component: String,
    },
    /// A hard link whose target is not a file written earlier by this layer.
    #[error("hard link target {target:?} is not a file of this layer")]
    HardlinkOutsideLayer {
        /// The link target as written in the tar.
        target: String,
    },
    /// A device node, refused because the caller is not root (or devices are disabled).
    #[error("device node refused (not running as root)")]
    DeviceRefused,
    /// A tar entry type kiln does not extract.
    #[error("unsupported tar entry type {0:?}")]
    UnsupportedType(char),
    /// A system call on the entry failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl EntryError {
    pub(crate) fn io(op: &'static str) -> impl FnOnce(rustix::io::Errno) -> EntryError {
        move |e| EntryError::Io {
            op,
            source: e.into(),
        }
    }
}

/// Attach a path to an `io::Error`.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
