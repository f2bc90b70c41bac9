//! `RUN --mount=type=ssh`: a socket inside the container that forwards each connection to the
//! SSH agent socket given with `--ssh`, as BuildKit's session proxy does. The container never
//! sees the host path, and the socket gets the mount's uid, gid and mode (default 0600).

use std::io;
use std::net::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// A forwarding socket; stops accepting when dropped.
pub(crate) struct AgentProxy {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AgentProxy {
    /// Listen at `dir/agent.sock` and forward to `agent`.
    pub fn start(
        agent: &Path,
        dir: &Path,
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> io::Result<AgentProxy> {
        let path = dir.join("agent.sock");
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
        let stop = Arc::new(AtomicBool::new(false));
        let agent = agent.to_path_buf();
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::Acquire) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let agent = agent.clone();
                std::thread::spawn(move || {
                    if let Ok(upstream) = UnixStream::connect(&agent) {
                        splice(client, upstream);
                    }
                });
            }
        });
        Ok(AgentProxy {
            path,
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AgentProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copy both ways until each side closes its end.
fn splice(a: UnixStream, b: UnixStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let back = std::thread::spawn(move || {
        let (mut from, mut to) = (b2, a2);
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
    let (mut from, mut to) = (a, b);
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = back.join();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn forwards_each_connection_to_the_agent() {
        let d = tempfile::tempdir().unwrap();
        let agent_path = d.path().join("agent");
        let agent = UnixListener::bind(&agent_path).unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut s, _) = agent.accept().unwrap();
                let mut buf = [0u8; 4];
                s.read_exact(&mut buf).unwrap();
                s.write_all(&[b"re:", &buf[..]].concat()).unwrap();
            }
        });
        let pdir = d.path().join("p");
        std::fs::create_dir(&pdir).unwrap();
        let proxy = AgentProxy::start(&agent_path, &pdir, 0, 0, 0o600).unwrap();
        let meta = std::fs::metadata(proxy.path()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        for msg in [b"ping", b"pong"] {
            let mut c = UnixStream::connect(proxy.path()).unwrap();
            c.write_all(msg).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let mut reply = Vec::new();
            c.read_to_end(&mut reply).unwrap();
            assert_eq!(reply, [b"re:", &msg[..]].concat());
        }
        server.join().unwrap();
        let p = proxy.path().to_path_buf();
        drop(proxy);
        // Stopped: nothing accepts any more.
        let late = UnixStream::connect(&p).and_then(|mut s| {
            s.write_all(b"x")?;
            let mut r = Vec::new();
            s.read_to_end(&mut r)?;
            Ok(r)
        });
        assert!(late.map(|r| r.is_empty()).unwrap_or(true));
    }
}
