//! A real registry for tests: Debian's `docker-registry` (distribution 2.8) started on
//! 127.0.0.1 with a temp storage directory, optionally with htpasswd basic auth or TLS
//! (a self-signed CA and a server certificate made with `openssl`), stopped (this PID only)
//! when dropped. And [`CutProxy`], a TCP proxy that cuts connections after some bytes.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::prereq;

/// How the registry is started.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Basic auth with this user and password (htpasswd, bcrypt).
    pub htpasswd: Option<(String, String)>,
    /// Serve HTTPS with a certificate signed by a fresh CA ([`Registry::ca_cert`]).
    pub tls: bool,
}

/// A running `docker-registry serve`.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Registry {
    /// A plain-HTTP registry.
    pub fn start() -> Registry {
        Registry::start_with(RegistryOptions::default())
    }

    /// A registry as `opts` says.
    pub fn start_with(opts: RegistryOptions) -> Registry {
        let bin = prereq::require_command("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if opts.tls {
            let d = dir.path();
            let openssl = prereq::require_command("openssl", "openssl");
            run(Command::new(&openssl).current_dir(d).args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=kiln test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]));
            run(Command::new(&openssl).current_dir(d).args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ]));
            std::fs::write(
                d.join("ext.cnf"),
                "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            )
            .unwrap();
            run(Command::new(&openssl).current_dir(d).args([
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-out",
                "server.crt",
            ]));
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                d.join("server.crt").display(),
                d.join("server.key").display()
            ));
        }
        if let Some((user, pass)) = &opts.htpasswd {
            let htpasswd = prereq::require_command("htpasswd", "apache2-utils");
            let out = Command::new(htpasswd)
                .args(["-Bbn", user, pass])
                .output()
                .unwrap();
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let mut r = Registry { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&r.addr).is_err() {
            let exited = r.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "docker-registry did not start ({exited:?}); its log:\n{}",
                std::fs::read_to_string(r.dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    /// The CA that signed a TLS registry's certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The registry's temp directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy on 127.0.0.1 to `upstream` that, for the first `cuts` connections whose
/// answer goes past `after` bytes, closes the connection there (a registry dropping a
/// download half-way). Runs until the process ends; its threads only hold sockets.
pub struct CutProxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    cut: Arc<AtomicUsize>,
}

impl CutProxy {
    /// Starts the proxy.
    pub fn start(upstream: &str, after: u64, cuts: usize) -> CutProxy {
        Self::start_with(upstream, after, cuts, None)
    }

    /// A proxy that cuts nothing and waits `pause` after every 16 KiB it passes on, both
    /// ways (a slow link, to stop a transfer in the middle).
    pub fn slow(upstream: &str, pause: Duration) -> CutProxy {
        Self::start_with(upstream, u64::MAX, 0, Some(pause))
    }

    fn start_with(upstream: &str, after: u64, cuts: usize, pause: Option<Duration>) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(AtomicUsize::new(0));
        let upstream = upstream.to_string();
        let counter = cut.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let counter = counter.clone();
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pipe(c2, s2, u64::MAX, None, pause));
                std::thread::spawn(move || {
                    pipe(server, client, after, Some((counter, cuts)), pause)
                });
            }
        });
        CutProxy { addr, cut }
    }

    /// How many connections were cut so far.
    pub fn cuts(&self) -> usize {
        self.cut.load(Ordering::SeqCst)
    }
}

fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    after: u64,
    cut: Option<(Arc<AtomicUsize>, usize)>,
    pause: Option<Duration>,
) {
    let mut buf = [0u8; 16 << 10];
    let mut sent = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut n = n as u64;
        if let Some((counter, max)) = &cut
            && sent + n > after
            && counter.load(Ordering::SeqCst) < *max
        {
            counter.fetch_add(1, Ordering::SeqCst);
            n = after - sent;
            let _ = to.write_all(&buf[..n as usize]);
            break;
        }
        if to.write_all(&buf[..n as usize]).is_err() {
            break;
        }
        sent += n;
        if let Some(p) = pause {
            std::thread::sleep(p);
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
