//! The runtime's error type: every variant names what failed and where.

use std::io;
use std::path::PathBuf;

/// Why a container could not be started, waited for or killed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The spec asks for something that cannot work (missing root or args, relative paths...).
    #[error("invalid runtime spec: {what}")]
    InvalidSpec { what: String },

    /// The spec asks for a feature this executor does not implement.
    #[error("the {executor} executor does not support {what}")]
    Unsupported {
        executor: &'static str,
        what: String,
    },

    /// A file the executor needs on the host could not be used.
    #[error("{what} {path:?}: {source}")]
    Host {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Creating the container process failed (clone3, pipes, pidfd).
    #[error("cannot start the container process: {what}: {source}")]
    Spawn {
        what: &'static str,
        #[source]
        source: io::Error,
    },

    /// A setup step inside the new namespaces failed (a mount, pivot_root, setuid...).
    #[error("container setup failed: {step}: {source}")]
    Setup {
        step: String,
        #[source]
        source: io::Error,
    },

    /// A mount's destination resolved, inside the container root (symlinks followed, `..`
    /// clamped at the root), to a place no mount may cover: the root itself, `/proc`, `/sys`
    /// or `/dev` reached through a symlink, or anything below `/proc`.
    #[error("{mount}: the destination resolves to {resolved:?} in the container root: {why}")]
    MountDestination {
        /// `mount tmpfs "tmpfs" on "/d"`.
        mount: String,
        /// The destination as the spec wrote it.
        destination: PathBuf,
        /// Where it resolved, as a container path.
        resolved: PathBuf,
        /// The rule it broke.
        why: String,
    },

    /// `process.args[0]` was not found in the container, as runc words it.
    #[error("exec: {program:?}: executable file not found in $PATH")]
    NotFound { program: String },

    /// `execve` of the resolved program failed.
    #[error("exec: {program:?}: {source}")]
    Exec {
        program: String,
        #[source]
        source: io::Error,
    },

    /// Waiting for or signalling the container failed.
    #[error("{what} container process {pid}: {source}")]
    Process {
        what: &'static str,
        pid: u32,
        #[source]
        source: io::Error,
    },

    /// An external OCI runtime (runc, crun...) could not be run.
    #[error("{what} with runtime {runtime:?}: {source}")]
    ExternalIo {
        what: &'static str,
        runtime: PathBuf,
        #[source]
        source: io::Error,
    },

    /// An external OCI runtime reported an error of its own (not the container's exit status).
    #[error("runtime {runtime:?} failed: {message}")]
    External { runtime: PathBuf, message: String },
}

impl RuntimeError {
    /// The exit code a shell would use for this error: 127 for a missing program (also a
    /// path to nothing, as docker's `run /nonexistent`) and 126 for one that cannot be
    /// executed, as `sh` and runc-based builders report them.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            RuntimeError::NotFound { .. } => Some(127),
            RuntimeError::Exec { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                Some(127)
            }
            RuntimeError::Exec { .. } => Some(126),
            _ => None,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
