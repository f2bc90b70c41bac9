//! The external executor: an OCI runtime binary (runc, crun, youki...) run as
//! `<runtime> --root STATE --log LOG --log-format json run --bundle DIR ID`, with the caller's
//! stdio passed straight through. The bundle and the runtime's state live in one temporary
//! directory that is removed afterwards.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::runtime::Spec;

use crate::error::{Result, RuntimeError};
use crate::stdio::{ExitStatus, Stdio};

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A running `<runtime> run` process.
pub(crate) struct Running {
    pub child: Child,
    pub pidfd: Arc<OwnedFd>,
    pub runtime: PathBuf,
    pub state: PathBuf,
    pub id: String,
    pub log: PathBuf,
    pub program: String,
    /// Removed on drop, with the state directory inside it.
    pub _bundle: tempfile::TempDir,
}

pub(crate) fn spawn(runtime: &Path, spec: &Spec, stdio: Stdio) -> Result<Running> {
    let io_err = |what: &'static str| {
        let runtime = runtime.to_path_buf();
        move |source: io::Error| RuntimeError::ExternalIo {
            what,
            runtime,
            source,
        }
    };
    let bundle = tempfile::Builder::new()
        .prefix("kiln-bundle-")
        .tempdir()
        .map_err(io_err("create the bundle directory"))?;
    let config = serde_json::to_vec_pretty(spec).map_err(|e| RuntimeError::InvalidSpec {
        what: format!("cannot serialize the spec: {e}"),
    })?;
    fs::write(bundle.path().join("config.json"), config).map_err(io_err("write config.json"))?;
    let state = bundle.path().join("state");
    let log = bundle.path().join("log.json");
    let id = format!(
        "kiln-{}-{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    );
    let program = spec
        .process()
        .as_ref()
        .and_then(|p| p.args().as_ref())
        .and_then(|a| a.first().cloned())
        .unwrap_or_default();

    let mut cmd = Command::new(runtime);
    cmd.arg("--root")
        .arg(&state)
        .arg("--log")
        .arg(&log)
        .arg("--log-format")
        .arg("json")
        .arg("run")
        .arg("--bundle")
        .arg(bundle.path())
        .arg(&id)
        .stdin(stdio.stdin)
        .stdout(stdio.stdout)
        .stderr(stdio.stderr);
    // SAFETY: prctl is async-signal-safe. A killed kiln takes the runtime down with it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) < 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(io_err("start"))?;
    // SAFETY: pidfd_open on our own unreaped child; the fd is new and owned here.
    let raw = unsafe {
        libc::syscall(
            libc::SYS_pidfd_open,
            libc::c_long::from(child.id()),
            0 as libc::c_long,
        )
    };
    if raw < 0 {
        let source = io::Error::last_os_error();
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        return Err(RuntimeError::ExternalIo {
            what: "pidfd_open",
            runtime: runtime.to_path_buf(),
            source,
        });
    }
    // SAFETY: see above.
    let pidfd = Arc::new(unsafe { OwnedFd::from_raw_fd(raw as i32) });
    Ok(Running {
        child,
        pidfd,
        runtime: runtime.to_path_buf(),
        state,
        id,
        log,
        program,
        _bundle: bundle,
    })
}

impl Running {
    /// Wait for `<runtime> run` to finish, then check its log for errors of its own.
    pub fn wait(mut self) -> Result<ExitStatus> {
        let status = self.child.wait().map_err(|source| RuntimeError::Process {
            what: "wait for",
            pid: self.child.id(),
            source,
        })?;
        let result = match (status.code(), status.signal()) {
            (Some(0), _) => Ok(ExitStatus::Code(0)),
            (Some(code), _) => match runtime_error(&self.log) {
                Some(message) if message.contains("executable file not found") => {
                    Err(RuntimeError::NotFound {
                        program: self.program.clone(),
                    })
                }
                Some(message) => Err(RuntimeError::External {
                    runtime: self.runtime.clone(),
                    message,
                }),
                None => Ok(ExitStatus::Code(code)),
            },
            (None, Some(sig)) => Ok(ExitStatus::Signal(sig)),
            (None, None) => Ok(ExitStatus::Code(-1)),
        };
        self.cleanup();
        result
    }

    /// SIGKILL the container through the runtime (`kill ID KILL`); if the runtime has not
    /// created it yet, kill the runtime process instead.
    pub fn kill(&self) -> Result<()> {
        kill(&self.runtime, &self.state, &self.id, &self.pidfd)
    }

    fn cleanup(&self) {
        // `run` deletes its container on a normal exit; this covers a killed runtime.
        if self.state.join(&self.id).exists() {
            let _ = Command::new(&self.runtime)
                .arg("--root")
                .arg(&self.state)
                .args(["delete", "--force", &self.id])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

pub(crate) fn kill(runtime: &Path, state: &Path, id: &str, pidfd: &OwnedFd) -> Result<()> {
    let killed = Command::new(runtime)
        .arg("--root")
        .arg(state)
        .args(["kill", id, "KILL"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !killed {
        // SAFETY: pidfd_send_signal on our own pidfd.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd() as libc::c_long,
                libc::SIGKILL as libc::c_long,
                std::ptr::null::<libc::siginfo_t>(),
                0 as libc::c_long,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(RuntimeError::ExternalIo {
                    what: "kill",
                    runtime: runtime.to_path_buf(),
                    source: e,
                });
            }
        }
    }
    Ok(())
}

/// The last error-level message in the runtime's JSON log, if any.
fn runtime_error(log: &Path) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
        .filter_map(|v| v["msg"].as_str().map(str::to_string))
        .next_back()
}

/// Find a runtime by name in `PATH`, or check a path.
pub(crate) fn resolve(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_are_read_from_the_json_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.json");
        fs::write(
            &log,
            "{\"level\":\"warning\",\"msg\":\"w\"}\nnot json\n{\"level\":\"error\",\"msg\":\"runc run failed: boom\"}\n",
        )
        .unwrap();
        assert_eq!(
            runtime_error(&log).as_deref(),
            Some("runc run failed: boom")
        );
        fs::write(&log, "{\"level\":\"info\",\"msg\":\"fine\"}\n").unwrap();
        assert_eq!(runtime_error(&log), None);
        assert_eq!(runtime_error(&dir.path().join("missing")), None);
    }
}
