//! A private docker 20.10 daemon for the differential suite.
//!
//! The suite prunes images and build cache and lists everything (`images`, `system df`), so it
//! cannot share the machine's dockerd with other tests: it starts its own `dockerd` (same binary,
//! its own data root, exec root, socket and containerd namespace) and stops it by PID on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The docker client the suite compares against: 20.10, as dockerd. (/usr/local/bin/docker is a
/// newer client with other wording.)
pub const DOCKER_CLI: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";

pub struct Daemon {
    child: Child,
    pub host: String,
    /// An empty client config directory, so no user config (formats, aliases) leaks in.
    pub config: PathBuf,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts dockerd and waits until it answers; panics with its log if it does not.
    pub fn start() -> Daemon {
        for tool in [DOCKER_CLI, DOCKERD] {
            assert!(
                Path::new(tool).exists(),
                "the docker differential suite needs docker 20.10's {tool} (apt-get install docker.io)"
            );
        }
        // Short path: the socket's path must fit in sun_path (108 bytes).
        let dir = tempfile::Builder::new()
            .prefix("kdc")
            .tempdir_in("/tmp")
            .unwrap();
        let sock = dir.path().join("sock");
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).unwrap();
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let ns = format!("kilncompat{}", std::process::id());
        let child = Command::new(DOCKERD)
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(["--containerd-namespace", &ns])
            .args(["--containerd-plugins-namespace", &format!("{ns}-plugins")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let mut d = Daemon {
            child,
            host: format!("unix://{}", sock.display()),
            config,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let st = d
                .cli()
                .args(["version", "--format", "{{.Server.Version}}"])
                .output()
                .unwrap();
            if st.status.success() {
                let v = String::from_utf8_lossy(&st.stdout);
                assert!(
                    v.starts_with("20.10."),
                    "the suite compares against docker 20.10; dockerd is {v}"
                );
                return d;
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("dockerd exited ({status}):\n{}", d.log());
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer in 60s:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `docker` pointed at this daemon, with BuildKit on.
    pub fn cli(&self) -> Command {
        let mut c = Command::new(DOCKER_CLI);
        c.env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", &self.config)
            .env("DOCKER_BUILDKIT", "1")
            .env_remove("BUILDKIT_PROGRESS")
            .env_remove("DOCKER_CONTEXT");
        c
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM to the dockerd we started (it stops its own containerd), then wait.
        // SAFETY: kill has no memory preconditions; the PID is our own child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut exited = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // dockerd leaves its network namespace (exec/netns/default) mounted, which would keep
        // the temporary directory from being removed.
        for m in mounts_under(self.dir.path()) {
            let c = std::ffi::CString::new(m.into_os_string().into_encoded_bytes()).unwrap();
            // SAFETY: c is a valid NUL-terminated path for the duration of the call.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Mount points at or below `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}
