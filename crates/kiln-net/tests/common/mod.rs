//! Network namespaces made by the tests themselves (a child `unshare -n sleep`), and small
//! servers that run inside them.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use kiln_test::prereq;

/// A fresh network namespace, held by a child `sleep` that is killed on drop.
pub struct Netns {
    child: Child,
    pub file: File,
}

impl Netns {
    /// A namespace with `lo` up (`up_lo`) or left as the kernel makes it (down).
    pub fn new(up_lo: bool) -> Netns {
        prereq::require_root("network namespaces");
        let unshare = prereq::require_command("unshare", "util-linux");
        let child = Command::new(unshare)
            .args(["--net", "sleep", "infinity"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawning unshare --net sleep");
        let path = format!("/proc/{}/ns/net", child.id());
        // The child execs sleep after unshare: wait until its namespace differs from ours.
        let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_link(&path).ok().as_ref() == Some(&ours)
            || std::fs::read_link(&path).is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "unshare --net did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let file = File::open(&path).expect("opening the namespace");
        let ns = Netns { child, file };
        if up_lo {
            ns.ip(&["link", "set", "lo", "up"]);
        }
        ns
    }

    pub fn path(&self) -> String {
        format!("/proc/{}/ns/net", self.child.id())
    }

    /// Runs `ip ARGS` inside the namespace and returns its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = Command::new(prereq::require_command("nsenter", "util-linux"))
            .arg(format!("--net={}", self.path()))
            .arg(prereq::require_command("ip", "iproute2"))
            .args(args)
            .output()
            .expect("running ip in the namespace");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `f` on a new thread that entered the namespace.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let fd = self.file.try_clone().unwrap();
        std::thread::spawn(move || {
            let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }

    pub fn tcp_listener(&self, addr: &str) -> TcpListener {
        let addr: SocketAddr = addr.parse().unwrap();
        self.run(move || TcpListener::bind(addr).expect("bind in the namespace"))
    }

    pub fn udp_socket(&self, addr: &str) -> UdpSocket {
        let addr: SocketAddr = addr.parse().unwrap();
        self.run(move || UdpSocket::bind(addr).expect("bind in the namespace"))
    }

    /// A TCP connection made from inside the namespace.
    pub fn connect(&self, addr: SocketAddr) -> TcpStream {
        self.run(move || TcpStream::connect(addr).expect("connect in the namespace"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An echo server on `listener`: each connection gets back what it sends; at end of stream
/// the server half-closes its side after echoing everything. Runs until the process ends.
pub fn echo_server(listener: TcpListener) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) => {
                            let _ = c.shutdown(Shutdown::Write);
                            return;
                        }
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            });
        }
    })
}

/// A UDP echo server on `sock`.
pub fn udp_echo_server(sock: UdpSocket) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    })
}

/// Deterministic bytes for transfer checks.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Names of this process's threads.
pub fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}
