//! The container's standard streams and its exit status.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

/// The three file descriptors the container gets as 0, 1 and 2. The executor takes ownership
/// and closes its copies once the container has them, so a pipe's reader sees EOF when the
/// container exits.
#[derive(Debug)]
pub struct Stdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// A pipe's read end the container's process reads one byte from just before `execve`
    /// (its whole setup done): the caller opens the gate when what the program needs (its
    /// network) is ready, and the setup runs meanwhile. End of file instead of a byte fails
    /// the start. The embedded executor only; spawning blocks until the gate is open.
    pub start_gate: Option<OwnedFd>,
}

impl Stdio {
    /// From anything that owns a descriptor: `File`, `OwnedFd`, `std::io::PipeWriter`...
    pub fn new(
        stdin: impl Into<OwnedFd>,
        stdout: impl Into<OwnedFd>,
        stderr: impl Into<OwnedFd>,
    ) -> Stdio {
        Stdio {
            stdin: stdin.into(),
            stdout: stdout.into(),
            stderr: stderr.into(),
            start_gate: None,
        }
    }

    /// With a start gate (see [`Stdio::start_gate`]).
    pub fn with_start_gate(mut self, gate: impl Into<OwnedFd>) -> Stdio {
        self.start_gate = Some(gate.into());
        self
    }

    /// All three on `/dev/null` (read and write).
    pub fn null() -> io::Result<Stdio> {
        let open = || -> io::Result<OwnedFd> {
            Ok(OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?
                .into())
        };
        Ok(Stdio::new(open()?, open()?, open()?))
    }

    /// Copies of this process's own stdin, stdout and stderr.
    pub fn inherit() -> io::Result<Stdio> {
        // SAFETY: 0, 1 and 2 are open for the life of the process (Rust's runtime ensures it).
        let dup = |fd: i32| unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned();
        Ok(Stdio::new(dup(0)?, dup(1)?, dup(2)?))
    }
}

/// How the container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// The exit code, if it exited.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Code(c) => Some(c),
            ExitStatus::Signal(_) => None,
        }
    }

    /// The signal that killed it, if any.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Signal(s) => Some(s),
            ExitStatus::Code(_) => None,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code: {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}
