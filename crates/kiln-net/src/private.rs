//! The container's private network: its own network namespace with loopback up and outbound
//! access through `pasta` (Debian's `passt`), which plays the part of docker's bridge and NAT
//! without a daemon, a bridge device or iptables. pasta attaches a tap interface to the
//! namespace, gives it the host's address and routes (`--config-net`), and carries the
//! container's connections out through ordinary sockets of the host. It forwards no port
//! inward (`-t none -u none -T none -U none`: [`crate::Proxy`] publishes ports) and does not
//! map the gateway to the host (`--no-map-gw`: the container cannot reach services bound to the
//! host's loopback).
//!
//! pasta runs as a child of a "keeper" thread that [`PrivateNet`] owns, with
//! `PR_SET_PDEATHSIG(SIGKILL)`: it dies when the keeper thread ends, which is when the
//! `PrivateNet` is dropped or the process dies. When pasta is missing or cannot attach, the
//! network is loopback-only and [`PrivateNet::loopback_only_reason`] says why.

use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Error;
use crate::netns::{self, NsThread};

/// How long pasta may take to configure the namespace.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);
/// The wait between looks for pasta's addresses for the first [`FAST_FOR`] (then doubled up to
/// [`POLL`]): pasta needs about 10 ms, and a look (a netlink dump in the namespace) costs tens
/// of microseconds, while a doubling wait overshot by up to half the time waited.
const FIRST_POLL: Duration = Duration::from_millis(1);
const FAST_FOR: Duration = Duration::from_millis(100);
/// How much longer than IPv4's the IPv6 default route is waited for.
const V6_GRACE: Duration = Duration::from_millis(500);
/// At most this much of pasta's stderr is kept for error messages.
const STDERR_KEEP: usize = 8192;

/// The pasta arguments before `--netns`: configure the namespace, stay in the foreground, keep
/// root (it must setns into the namespace), forward no port, keep the gateway off the host.
const PASTA_ARGS: &[&str] = &[
    "--config-net",
    "--foreground",
    "--quiet",
    "--runas",
    "0",
    "--tcp-ports",
    "none",
    "--udp-ports",
    "none",
    "--tcp-ns",
    "none",
    "--udp-ns",
    "none",
    "--no-map-gw",
];

enum Ctl {
    Ready,
    Stop,
}

struct Pasta {
    pid: u32,
    ctl: mpsc::Sender<Ctl>,
    keeper: Option<JoinHandle<()>>,
    drain: Option<JoinHandle<()>>,
}

/// A container's private network; dropping it stops pasta.
pub struct PrivateNet {
    pasta: Option<Pasta>,
    address: Option<IpAddr>,
    loopback_only: Option<String>,
}

/// A private network whose pasta is starting ([`PrivateNet::start`]).
pub struct Starting {
    ns: NsThread,
    /// pasta spawned, or why the network stays loopback-only.
    state: Result<Spawned, String>,
    /// The default routes the host has, which pasta copies: ready means they are there.
    host_routes: DefaultRoutes,
}

impl Starting {
    /// Waits until pasta has configured the namespace (or failed: the network is then
    /// loopback-only, and [`PrivateNet::loopback_only_reason`] says why).
    pub fn ready(self) -> PrivateNet {
        let spawned = match self.state {
            Ok(s) => s,
            Err(why) => {
                return PrivateNet {
                    pasta: None,
                    address: None,
                    loopback_only: Some(why),
                };
            }
        };
        match wait_configured(spawned, &self.ns, self.host_routes) {
            Ok((p, address)) => PrivateNet {
                pasta: Some(p),
                address: Some(address),
                loopback_only: None,
            },
            Err(why) => PrivateNet {
                pasta: None,
                address: None,
                loopback_only: Some(why),
            },
        }
    }
}

impl PrivateNet {
    /// Brings `lo` up in the network namespace `netns` (an open `/proc/PID/ns/net`) and
    /// attaches pasta to it for outbound access. Fails only when the namespace itself cannot be
    /// set up; without pasta the network is loopback-only (see [`Self::loopback_only_reason`]).
    pub fn setup(netns: &File) -> Result<PrivateNet, Error> {
        Ok(PrivateNet::start(netns)?.ready())
    }

    /// [`PrivateNet::setup`] with the pasta binary given (`None`: loopback only, as when
    /// pasta is not installed).
    pub fn setup_with(netns: &File, pasta: Option<&Path>) -> Result<PrivateNet, Error> {
        Ok(PrivateNet::start_with(netns, pasta)?.ready())
    }

    /// The first half of [`PrivateNet::setup`]: `lo` up and pasta started, without waiting
    /// for pasta to configure the namespace. pasta takes some milliseconds for that (it
    /// sandboxes itself first); the caller does its other work meanwhile and calls
    /// [`Starting::ready`] before the container's program needs the network.
    pub fn start(netns: &File) -> Result<Starting, Error> {
        PrivateNet::start_with(netns, find_pasta().as_deref())
    }

    /// [`PrivateNet::start`] with the pasta binary given (`None`: loopback only).
    pub fn start_with(netns: &File, pasta: Option<&Path>) -> Result<Starting, Error> {
        // This thread is in the host's namespace (the caller's).
        let host_routes = default_routes();
        let ns = NsThread::start(netns, "kiln-net-setup")?;
        ns.run(|| netns::link_up("lo"))
            .and_then(|r| r)
            .map_err(|e| Error::netns("bringing lo up", e))?;
        let Some(pasta) = pasta else {
            return Ok(Starting {
                ns,
                host_routes,
                state: Err(
                    "pasta (Debian package passt) is not installed: the container has loopback \
                     only; `apt-get install passt` gives it outbound access"
                        .into(),
                ),
            });
        };
        let netns = netns
            .try_clone()
            .map_err(|e| Error::netns("duplicating the namespace file", e))?;
        Ok(Starting {
            ns,
            host_routes,
            state: spawn_pasta(pasta.to_path_buf(), netns),
        })
    }

    /// The pid of the pasta process serving this network, when there is one.
    pub fn pasta_pid(&self) -> Option<u32> {
        self.pasta.as_ref().map(|p| p.pid)
    }

    /// The container's address on pasta's interface (the host's own address, as pasta copies
    /// it), when outbound access works.
    pub fn address(&self) -> Option<IpAddr> {
        self.address
    }

    /// Why the network has loopback only (pasta missing or failing), or `None` when outbound
    /// access works.
    pub fn loopback_only_reason(&self) -> Option<&str> {
        self.loopback_only.as_deref()
    }
}

impl Drop for PrivateNet {
    fn drop(&mut self) {
        if let Some(p) = self.pasta.take() {
            p.stop();
        }
    }
}

impl Pasta {
    /// Tells the keeper to kill pasta, and returns without waiting for pasta to exit: its exit
    /// tears down the namespaces it sandboxed itself in, which took tens of milliseconds of
    /// every `kiln run --rm`. The keeper reaps it; if this process ends first, the kernel
    /// kills pasta anyway (its parent-death signal) and init reaps it.
    fn stop(self) {
        let _ = self.ctl.send(Ctl::Stop);
    }

    /// [`Pasta::stop`], then waits until pasta has exited and been reaped.
    fn stop_and_wait(mut self) {
        let _ = self.ctl.send(Ctl::Stop);
        if let Some(k) = self.keeper.take() {
            let _ = k.join();
        }
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
    }
}

fn find_pasta() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("pasta"))
        .find(|p| p.is_file())
}

/// pasta's AVX2 build beside `bin` (`pasta.avx2`, as Debian ships it), on a CPU that has AVX2.
/// pasta's own start re-executes itself as that build; starting it directly saves an exec and
/// a dynamic link on the container's start path, which waits for pasta. It is given `bin` as
/// its argv[0], as the re-exec would.
fn avx2_build(bin: &Path) -> Option<PathBuf> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        let mut name = bin.as_os_str().to_owned();
        name.push(".avx2");
        let p = PathBuf::from(name);
        if p.is_file() {
            return Some(p);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bin;
    None
}

/// pasta started on its keeper thread, not yet known to have configured the namespace.
struct Spawned {
    pasta: Pasta,
    exited: Arc<Mutex<Option<ExitStatus>>>,
    err_text: Arc<Mutex<Vec<u8>>>,
    started: Instant,
}

/// Starts pasta on a keeper thread. The error is the reason the network stays loopback-only.
fn spawn_pasta(bin: PathBuf, netns: File) -> Result<Spawned, String> {
    let bin_name = bin.display().to_string();
    let (ctl, ctl_rx) = mpsc::channel::<Ctl>();
    let (started_tx, started_rx) = mpsc::channel();
    let exited: Arc<Mutex<Option<ExitStatus>>> = Arc::default();
    let exited2 = exited.clone();
    let keeper = std::thread::Builder::new()
        .name("kiln-net-pasta".into())
        .stack_size(128 * 1024)
        .spawn(move || keep_pasta(bin, netns, &ctl_rx, &started_tx, &exited2))
        .map_err(|e| format!("starting pasta's keeper thread: {e}"))?;
    let (pid, stderr) = match started_rx.recv() {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            let _ = keeper.join();
            return Err(format!("pasta ({}) could not be started: {e}", bin_name));
        }
        Err(_) => {
            let _ = keeper.join();
            return Err("pasta's keeper thread died".into());
        }
    };
    let err_text: Arc<Mutex<Vec<u8>>> = Arc::default();
    let err2 = err_text.clone();
    let drain = std::thread::Builder::new()
        .name("kiln-net-pasta-err".into())
        .stack_size(64 * 1024)
        .spawn(move || drain_stderr(stderr, &err2))
        .ok();
    Ok(Spawned {
        pasta: Pasta {
            pid,
            ctl,
            keeper: Some(keeper),
            drain,
        },
        exited,
        err_text,
        started: Instant::now(),
    })
}

/// Waits until the namespace has a non-loopback address and the default routes the host has
/// (pasta configured it). The error is
/// the reason the network stays loopback-only; pasta is stopped then.
fn wait_configured(
    s: Spawned,
    ns: &NsThread,
    host_routes: DefaultRoutes,
) -> Result<(Pasta, IpAddr), String> {
    let Spawned {
        pasta,
        exited,
        err_text,
        started,
    } = s;
    let fail = |pasta: Pasta, why: String| {
        // Its stderr, complete once it has exited, explains the failure.
        pasta.stop_and_wait();
        let text = String::from_utf8_lossy(&err_text.lock().unwrap_or_else(|p| p.into_inner()))
            .lines()
            .filter(|l| !l.starts_with("Failed to send") && !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        if text.is_empty() {
            Err(why)
        } else {
            Err(format!("{why}: {text}"))
        }
    };
    let deadline = started + READY_TIMEOUT;
    let mut poll = FIRST_POLL;
    // When the IPv4 side was complete; the IPv6 default route is waited for V6_GRACE longer.
    let mut v4_done: Option<Instant> = None;
    loop {
        if let Some(st) = *exited.lock().unwrap_or_else(|p| p.into_inner()) {
            return fail(
                pasta,
                format!("pasta exited ({st}) before configuring the network"),
            );
        }
        match ns.run(|| netns::addresses().map(|a| (a, default_routes()))) {
            Ok(Ok((addrs, routes))) => {
                // pasta adds the address, then the default route, for IPv4 and then IPv6: the
                // address alone would let the program start before it can reach anything.
                if let Some((_, ip)) = addrs
                    .iter()
                    .find(|(name, ip)| name != "lo" && !ip.is_loopback() && is_global(ip))
                    && (routes.v4 || !host_routes.v4)
                {
                    let v4_at = *v4_done.get_or_insert_with(Instant::now);
                    // An IPv6 default route pasta did not copy (a host whose IPv6 route pasta
                    // cannot use) leaves the container with IPv4 only, as it would be anyway.
                    if routes.v6 || !host_routes.v6 || v4_at.elapsed() >= V6_GRACE {
                        let _ = pasta.ctl.send(Ctl::Ready);
                        return Ok((pasta, *ip));
                    }
                }
            }
            Ok(Err(e)) | Err(e) => {
                return fail(pasta, format!("listing the namespace's addresses: {e}"));
            }
        }
        if Instant::now() >= deadline {
            return fail(
                pasta,
                format!(
                    "pasta did not configure the network within {}s",
                    READY_TIMEOUT.as_secs()
                ),
            );
        }
        std::thread::sleep(poll);
        // pasta usually configures the namespace within tens of milliseconds: look every
        // millisecond at first, then back off to POLL.
        if started.elapsed() >= FAST_FOR {
            poll = (poll * 2).min(POLL);
        }
    }
}

/// Which default routes (up, not through `lo`) the calling thread's namespace has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct DefaultRoutes {
    v4: bool,
    v6: bool,
}

fn default_routes() -> DefaultRoutes {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    // /proc/thread-self: /proc/self/net is the namespace of the process's main thread.
    DefaultRoutes {
        v4: has_v4_default(&read("/proc/thread-self/net/route")),
        v6: has_v6_default(&read("/proc/thread-self/net/ipv6_route")),
    }
}

/// `/proc/net/route`: a line whose destination and mask are 0, flagged up (RTF_UP).
fn has_v4_default(table: &str) -> bool {
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 8
            && f[1] == "00000000"
            && f[7] == "00000000"
            && u32::from_str_radix(f[3], 16).is_ok_and(|fl| fl & 1 != 0)
    })
}

/// `/proc/net/ipv6_route`: ::/0, up, through an interface other than `lo` (the kernel keeps an
/// unreachable ::/0 on `lo`).
fn has_v6_default(table: &str) -> bool {
    table.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 10
            && f[0].bytes().all(|b| b == b'0')
            && f[1] == "00"
            && f[9] != "lo"
            && u32::from_str_radix(f[8], 16).is_ok_and(|fl| fl & 1 != 0)
    })
}

/// Not link-local (pasta's tap gets an IPv6 link-local address before the real ones).
fn is_global(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

type Started = Result<(u32, std::process::ChildStderr), std::io::Error>;

/// The keeper thread: pasta's parent (its death signal is tied to this thread), which kills
/// and reaps it on `Ctl::Stop` or when the `PrivateNet` is gone.
fn keep_pasta(
    bin: PathBuf,
    netns: File,
    ctl: &mpsc::Receiver<Ctl>,
    started: &mpsc::Sender<Started>,
    exited: &Mutex<Option<ExitStatus>>,
) {
    let fd = netns.as_raw_fd();
    let mut cmd = Command::new(avx2_build(&bin).as_deref().unwrap_or(&bin));
    cmd.arg0(&bin)
        .args(PASTA_ARGS)
        .arg("--netns")
        .arg(format!("/proc/self/fd/{fd}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // pasta opens the namespace as /proc/self/fd/N: keep N open across exec. (A
            // /proc/PID/ns/net path of another process fails: pasta drops the capabilities
            // that ptrace access to a root process needs before it opens the path.)
            if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    drop(netns);
    let Some(stderr) = child.stderr.take() else {
        let _ = child.kill();
        let _ = child.wait();
        let _ = started.send(Err(std::io::Error::other("no stderr pipe")));
        return;
    };
    if started.send(Ok((child.id(), stderr))).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        return;
    }
    // Until setup sees the network configured: watch for pasta exiting early.
    loop {
        match ctl.recv_timeout(POLL) {
            Ok(Ctl::Ready) => break,
            Ok(Ctl::Stop) | Err(RecvTimeoutError::Disconnected) => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Ok(Some(st)) = child.try_wait() {
                    *exited.lock().unwrap_or_else(|p| p.into_inner()) = Some(st);
                    let _ = ctl.recv();
                    return;
                }
            }
        }
    }
    // Running: wait for the stop, then kill and reap.
    let _ = ctl.recv();
    let _ = child.kill();
    let _ = child.wait();
}

fn drain_stderr(mut r: std::process::ChildStderr, keep: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut k = keep.lock().unwrap_or_else(|p| p.into_inner());
                if k.len() < STDERR_KEEP {
                    let room = STDERR_KEEP - k.len();
                    k.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_routes_are_read_from_procfs_tables() {
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                  eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert!(has_v4_default(v4));
        let no_default = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                          eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n";
        assert!(!has_v4_default(no_default));
        assert!(!has_v4_default(""));
        let lo_only = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                       00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";
        assert!(!has_v6_default(lo_only));
        let eth0 = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 \
                    00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n\
                    00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                    fd000000000000000000000000000001 00000400 00000003 00000000 00000003 eth0\n";
        assert!(has_v6_default(&format!("{lo_only}{eth0}")));
    }

    #[test]
    fn this_hosts_default_routes_are_found() {
        // The test host reaches the package registries: it has an IPv4 default route.
        assert!(
            default_routes().v4,
            "no IPv4 default route in /proc/thread-self/net/route"
        );
    }
}
