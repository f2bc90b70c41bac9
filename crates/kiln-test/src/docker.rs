//! A Docker engine for interop tests. The engine that answers (`DOCKER_HOST` or the default
//! socket) is used as it is; when none answers and `DOCKER_HOST` is unset, this process starts
//! `dockerd --bridge=none --iptables=false` (as scripts/conformance.sh does) and stops that
//! PID, and only that one, when the [`Docker`] handle is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::prereq;

/// The client: `$DOCKER`, else Debian's `/usr/bin/docker` (named by path: another `docker`
/// earlier on `PATH` may be a different client).
pub const DEFAULT_CLIENT: &str = "/usr/bin/docker";

/// A Docker engine that answers, for as long as this lives. Tests in one process that use it
/// run one after another, so a daemon this process started is not stopped under another test.
pub struct Docker {
    client: PathBuf,
    /// The daemon this process started, and its log (removed once it has stopped).
    started: Option<(Child, PathBuf)>,
    _turn: MutexGuard<'static, ()>,
}

impl Docker {
    /// The running engine, or one started here; fails the test (with what to install or
    /// the daemon's log) when neither works.
    pub fn engine() -> Docker {
        static TURN: Mutex<()> = Mutex::new(());
        let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let client = match std::env::var_os("DOCKER") {
            Some(c) => PathBuf::from(c),
            None => prereq::require_file(DEFAULT_CLIENT, "docker.io"),
        };
        let mut d = Docker {
            client,
            started: None,
            _turn: turn,
        };
        if d.answers() {
            return d;
        }
        assert!(
            std::env::var_os("DOCKER_HOST").is_none(),
            "no Docker engine answers at DOCKER_HOST={:?}; start it, or unset DOCKER_HOST to \
             let the test start dockerd on the default socket",
            std::env::var_os("DOCKER_HOST").unwrap_or_default()
        );
        prereq::require_root("starting dockerd for the docker interop test");
        let dockerd = prereq::require_command("dockerd", "docker.io");
        let log =
            std::env::temp_dir().join(format!("kiln-test-dockerd-{}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(&dockerd)
            .args(["--bridge=none", "--iptables=false"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", dockerd.display()));
        d.started = Some((child, log.clone()));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d.answers() {
            let exited = d.started.as_mut().unwrap().0.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "dockerd (started by the test) {}; its log ({}):\n{}",
                match exited {
                    Some(s) => format!("exited: {s}"),
                    None => "did not answer within 60 s".into(),
                },
                log.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        d
    }

    /// The client binary.
    pub fn client(&self) -> &Path {
        &self.client
    }

    /// A `docker` command for this engine.
    pub fn command(&self) -> Command {
        Command::new(&self.client)
    }

    /// Whether this process started the daemon (none was answering).
    pub fn started_here(&self) -> bool {
        self.started.is_some()
    }

    fn answers(&self) -> bool {
        self.command()
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let Some((child, log)) = self.started.as_mut() else {
            return;
        };
        let Ok(pid) = libc::pid_t::try_from(child.id()) else {
            return;
        };
        // SAFETY: kill has no memory preconditions; `pid` is our own child, not yet reaped
        // (so the number cannot have been reused).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(log);
        }
    }
}
