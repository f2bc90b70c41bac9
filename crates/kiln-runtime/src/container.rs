//! The executor enum and the handle of a running container.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use oci_spec::runtime::Spec;

use crate::embedded;
use crate::error::{Result, RuntimeError};
use crate::external;
use crate::stdio::{ExitStatus, Stdio};

/// How containers are run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Executor {
    /// kiln's own executor: namespaces, mounts, `pivot_root`, credentials and capabilities done
    /// with system calls in a child of this process. Needs nothing installed.
    #[default]
    Embedded,
    /// An OCI runtime binary (runc, crun, youki, ...).
    External { path: PathBuf },
}

impl Executor {
    /// `embedded`, or an external runtime by name (looked up in `PATH`) or by path.
    pub fn from_name(name: &str) -> Result<Executor> {
        if name == "embedded" || name.is_empty() {
            return Ok(Executor::Embedded);
        }
        external::resolve(name)
            .map(|path| Executor::External { path })
            .ok_or_else(|| RuntimeError::ExternalIo {
                what: "find",
                runtime: PathBuf::from(name),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not found in PATH (install it or pass a path)",
                ),
            })
    }

    /// Start the container described by `spec` with the given stdio, and return at once.
    ///
    /// The container is tied to the calling thread (parent-death signal): keep that thread
    /// alive until [`Container::wait`] returns, or call [`Executor::run`], which does both.
    pub fn spawn(&self, spec: &Spec, stdio: Stdio) -> Result<Container> {
        let inner = match self {
            Executor::Embedded => {
                let p = embedded::spawn(spec, stdio)?;
                let terminal = p.terminal;
                return Ok(Container {
                    inner: Some(Inner::Embedded {
                        pid: p.pid,
                        pidfd: Arc::new(p.pidfd),
                        cgroup: p.cgroup,
                    }),
                    terminal,
                });
            }
            Executor::External { path } => {
                if stdio.start_gate.is_some() {
                    return Err(RuntimeError::Unsupported {
                        executor: "external",
                        what: "a start gate".into(),
                    });
                }
                // An external runtime hands a pty's master over a console socket; not wired.
                if spec.process().as_ref().and_then(|p| p.terminal()) == Some(true) {
                    return Err(RuntimeError::Unsupported {
                        executor: "external",
                        what: "process.terminal (a pseudo-terminal)".into(),
                    });
                }
                Inner::External(external::spawn(path, spec, stdio)?)
            }
        };
        Ok(Container {
            inner: Some(inner),
            terminal: None,
        })
    }

    /// Run the container to completion. Blocking: call it from a blocking thread.
    pub fn run(&self, spec: &Spec, stdio: Stdio) -> Result<ExitStatus> {
        self.spawn(spec, stdio)?.wait()
    }
}

enum Inner {
    Embedded {
        pid: u32,
        pidfd: Arc<OwnedFd>,
        /// The container's device cgroup, removed after the wait.
        cgroup: Option<crate::devices::DeviceCgroup>,
    },
    External(external::Running),
}

/// A started container. Dropping it without [`Container::wait`] kills and reaps it, so an
/// error path cannot leak a process.
pub struct Container {
    inner: Option<Inner>,
    terminal: Option<OwnedFd>,
}

impl Container {
    /// The host PID of the container's first process (for the external executor: of the
    /// runtime process).
    pub fn pid(&self) -> u32 {
        match &self.inner {
            Some(Inner::Embedded { pid, .. }) => *pid,
            Some(Inner::External(r)) => r.child.id(),
            None => 0,
        }
    }

    /// The master of the container's pseudo-terminal (`process.terminal`: the embedded
    /// executor makes it in the container's devpts; its slave is the process's stdio and
    /// controlling terminal). Taken once.
    pub fn take_terminal(&mut self) -> Option<OwnedFd> {
        self.terminal.take()
    }

    /// A handle that can kill this container from another thread (for Ctrl-C).
    pub fn killer(&self) -> Killer {
        Killer(match &self.inner {
            Some(Inner::Embedded { pid, pidfd, .. }) => KillerInner::Embedded {
                pid: *pid,
                pidfd: pidfd.clone(),
            },
            Some(Inner::External(r)) => KillerInner::External {
                runtime: r.runtime.clone(),
                state: r.state.clone(),
                id: r.id.clone(),
                pidfd: r.pidfd.clone(),
            },
            None => KillerInner::Done,
        })
    }

    /// SIGKILL the container (all of its processes when it has a PID namespace).
    pub fn kill(&self) -> Result<()> {
        match &self.inner {
            Some(Inner::Embedded { pid, pidfd, .. }) => embedded::kill(pidfd, *pid),
            Some(Inner::External(r)) => r.kill(),
            None => Ok(()),
        }
    }

    /// Wait for the container to exit and return its status.
    pub fn wait(mut self) -> Result<ExitStatus> {
        match self.inner.take() {
            Some(Inner::Embedded { pid, pidfd, cgroup }) => {
                let status = embedded::wait(&pidfd, pid);
                drop(cgroup);
                status
            }
            Some(Inner::External(r)) => r.wait(),
            None => Ok(ExitStatus::Code(-1)),
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.inner.is_some() {
            let _ = self.kill();
            let c = Container {
                inner: self.inner.take(),
                terminal: None,
            };
            let _ = c.wait();
        }
    }
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("pid", &self.pid())
            .finish()
    }
}

/// Kills a container from any thread; cheap to clone. Killing one that has ended is a no-op.
#[derive(Clone, Debug)]
pub struct Killer(KillerInner);

#[derive(Clone, Debug)]
enum KillerInner {
    Embedded {
        pid: u32,
        pidfd: Arc<OwnedFd>,
    },
    External {
        runtime: PathBuf,
        state: PathBuf,
        id: String,
        pidfd: Arc<OwnedFd>,
    },
    Done,
}

impl Killer {
    /// SIGKILL the container.
    pub fn kill(&self) -> Result<()> {
        match &self.0 {
            KillerInner::Embedded { pid, pidfd } => embedded::kill(pidfd, *pid),
            KillerInner::External {
                runtime,
                state,
                id,
                pidfd,
            } => external::kill(runtime, state, id, pidfd),
            KillerInner::Done => Ok(()),
        }
    }
}
