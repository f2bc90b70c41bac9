//! The userspace port proxy, docker's `docker-proxy` in-process: for each published port it
//! listens on the host and forwards to the container's port inside the container's network
//! namespace. Sockets that reach the container are created by one thread that entered the
//! namespace ([`NsThread`]); everything else runs in the host namespace. TCP: an acceptor
//! thread per port and a few epoll worker threads (`splice` for bulk, recv/send for small
//! messages), half-close propagated, no polling. UDP: one flow (a socket in the namespace) per
//! client address, closed after [`ProxyOptions::udp_idle`] without traffic.

mod tcp;
mod traffic;
mod udp;

pub use traffic::Traffic;

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::netns::{self, NsThread};
use crate::{Error, PortMapping, Proto};

/// Worker threads (epoll loops) for the TCP connections of one proxy, at most one per core.
const TCP_WORKERS: usize = 2;

/// Tuning of a [`Proxy`]; `Default` is docker's.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// How long a UDP flow lives without a datagram either way (docker-proxy: 90 s).
    pub udp_idle: Duration,
    /// The address to forward to inside the namespace; `None` picks the container's first
    /// non-loopback IPv4 address (docker's behaviour: a server bound only to 127.0.0.1 in the
    /// container is not reachable), or 127.0.0.1 when the namespace has none.
    pub target: Option<IpAddr>,
    /// Threads that move TCP bytes (epoll loops); 0: one per core, at most 2.
    pub tcp_workers: usize,
    /// A file the bytes carried are counted in (made anew, at zero, by the start; read with
    /// [`Traffic::read_file`], e.g. by `kiln stats`); `None`: in memory only
    /// ([`Proxy::traffic`]).
    pub traffic_file: Option<std::path::PathBuf>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            udp_idle: Duration::from_secs(90),
            target: None,
            tcp_workers: 0,
            traffic_file: None,
        }
    }
}

/// What the serving threads share with [`Proxy::stop`].
pub(crate) struct Shared {
    pub(crate) ns: NsThread,
    /// The container's network namespace, which TCP acceptor threads enter (see `tcp.rs`).
    pub(crate) netns: File,
    pub(crate) stopping: AtomicBool,
    /// An eventfd that becomes readable at stop: UDP threads poll it beside their socket.
    pub(crate) stop_fd: OwnedFd,
    pub(crate) udp_idle: Duration,
    /// Bytes delivered to the container and from it.
    pub(crate) traffic: Traffic,
}

impl Shared {
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

enum Server {
    Tcp(tcp::TcpServer),
    Udp(udp::UdpServer),
}

/// Published ports of one container, served until [`Proxy::stop`] (or drop).
pub struct Proxy {
    bound: Vec<PortMapping>,
    target: IpAddr,
    shared: Arc<Shared>,
    servers: Vec<Server>,
    threads: Vec<JoinHandle<()>>,
    workers: Option<Arc<tcp::Workers>>,
}

/// `net.ipv4.ip_unprivileged_port_start`: the lowest port a process without
/// CAP_NET_BIND_SERVICE may bind (1024 by default).
fn unprivileged_port_start() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether this process runs in a user namespace (rootless kiln): the initial one maps all of
/// u32 onto itself.
pub(crate) fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

impl Proxy {
    /// Binds every host port of `maps` (all first: nothing is served when one fails; docker's
    /// message when a port is taken), then serves them on threads, forwarding into the network
    /// namespace `netns` (an open `/proc/PID/ns/net`).
    pub fn start(netns: &File, maps: &[PortMapping]) -> Result<Proxy, Error> {
        Proxy::start_with(netns, maps, ProxyOptions::default())
    }

    /// [`Proxy::start`] with options.
    pub fn start_with(
        netns: &File,
        maps: &[PortMapping],
        opts: ProxyOptions,
    ) -> Result<Proxy, Error> {
        raise_nofile_limit();
        ignore_sigpipe();
        let mut listeners = Vec::with_capacity(maps.len());
        let mut bound = Vec::with_capacity(maps.len());
        for m in maps {
            let addr = SocketAddr::new(m.host_ip, m.host_port);
            let bind_err = |e: io::Error| {
                if e.kind() == io::ErrorKind::AddrInUse {
                    Error::PortAllocated(addr)
                } else if e.kind() == io::ErrorKind::PermissionDenied
                    && in_user_namespace()
                    && let Some(start) = unprivileged_port_start()
                    && addr.port() < start
                {
                    Error::PrivilegedPort {
                        addr,
                        container_port: m.container_port,
                        start,
                    }
                } else {
                    Error::Bind { addr, source: e }
                }
            };
            let (listener, port) = match m.proto {
                Proto::Tcp => {
                    let l = TcpListener::bind(addr).map_err(bind_err)?;
                    let port = l.local_addr().map_err(bind_err)?.port();
                    (Listener::Tcp(l), port)
                }
                Proto::Udp => {
                    let s = UdpSocket::bind(addr).map_err(bind_err)?;
                    let port = s.local_addr().map_err(bind_err)?.port();
                    (Listener::Udp(s), port)
                }
            };
            listeners.push(listener);
            bound.push(PortMapping {
                host_port: port,
                ..*m
            });
        }

        let traffic = match &opts.traffic_file {
            Some(p) => Traffic::create_file(p).map_err(|source| Error::Traffic {
                path: p.clone(),
                source,
            })?,
            None => Traffic::in_memory(),
        };
        let ns = NsThread::start(netns, "kiln-net-ns")?;
        let netns_dup = netns
            .try_clone()
            .map_err(|e| Error::netns("duplicating the namespace file", e))?;
        let target = match opts.target {
            Some(t) => t,
            None => {
                let addrs = ns
                    .run(netns::addresses)
                    .and_then(|r| r)
                    .map_err(|e| Error::netns("listing addresses (getifaddrs)", e))?;
                IpAddr::V4(netns::container_ipv4(&addrs).unwrap_or(Ipv4Addr::LOCALHOST))
            }
        };
        // SAFETY: eventfd(2) with valid flags; the fd is owned right away.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(Error::thread(
                "kiln-net stop event",
                io::Error::last_os_error(),
            ));
        }
        let shared = Arc::new(Shared {
            ns,
            netns: netns_dup,
            stopping: AtomicBool::new(false),
            // SAFETY: efd was just returned by eventfd and is owned by nobody else.
            stop_fd: unsafe { OwnedFd::from_raw_fd(efd) },
            udp_idle: opts.udp_idle,
            traffic,
        });

        let mut proxy = Proxy {
            bound: bound.clone(),
            target,
            shared,
            servers: Vec::new(),
            threads: Vec::new(),
            workers: None,
        };
        if maps.iter().any(|m| m.proto == Proto::Tcp) {
            let n = match opts.tcp_workers {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(TCP_WORKERS)),
                n => n,
            };
            match tcp::Workers::start(n, &proxy.shared) {
                Ok(w) => proxy.workers = Some(w),
                Err(e) => {
                    proxy.shutdown();
                    return Err(e);
                }
            }
        }
        for (listener, m) in listeners.into_iter().zip(&bound) {
            let to = SocketAddr::new(target, m.container_port);
            let started = match listener {
                Listener::Tcp(l) => {
                    let workers = proxy.workers.as_ref().expect("workers for TCP ports");
                    tcp::TcpServer::start(l, to, &proxy.shared, workers)
                        .map(|(s, h)| (Server::Tcp(s), h))
                }
                Listener::Udp(s) => {
                    udp::UdpServer::start(s, to, &proxy.shared).map(|(s, h)| (Server::Udp(s), h))
                }
            };
            match started {
                Ok((server, handle)) => {
                    proxy.servers.push(server);
                    proxy.threads.push(handle);
                }
                Err(e) => {
                    proxy.shutdown();
                    return Err(e);
                }
            }
        }
        Ok(proxy)
    }

    /// The mappings as bound: ephemeral host ports (0) replaced by the ports the kernel chose.
    pub fn bound(&self) -> Vec<PortMapping> {
        self.bound.clone()
    }

    /// The address connections are forwarded to inside the namespace.
    pub fn target_ip(&self) -> IpAddr {
        self.target
    }

    /// (received, sent) bytes: delivered to the container, and from it to clients (TCP
    /// payload and UDP datagrams).
    pub fn traffic(&self) -> (u64, u64) {
        self.shared.traffic.get()
    }

    /// TCP connections being forwarded now.
    pub fn live_connections(&self) -> usize {
        self.servers
            .iter()
            .map(|s| match s {
                Server::Tcp(t) => t.live(),
                Server::Udp(_) => 0,
            })
            .sum()
    }

    /// UDP flows (client addresses) being forwarded now.
    pub fn live_udp_flows(&self) -> usize {
        self.servers
            .iter()
            .map(|s| match s {
                Server::Udp(u) => u.live(),
                Server::Tcp(_) => 0,
            })
            .sum()
    }

    /// Closes the listeners and every live connection and flow, and joins all threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let one: u64 = 1;
        // SAFETY: writing 8 bytes to our eventfd.
        unsafe {
            libc::write(
                self.shared.stop_fd.as_raw_fd(),
                (&one as *const u64).cast(),
                8,
            )
        };
        for s in &self.servers {
            if let Server::Tcp(t) = s {
                t.wake_acceptor();
            }
        }
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
        if let Some(w) = self.workers.take() {
            w.stop();
        }
        for s in self.servers.drain(..) {
            if let Server::Udp(u) = s {
                u.close_all();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// splice into a socket the peer reset raises SIGPIPE (send has MSG_NOSIGNAL, splice has no
/// such flag), which by default kills the process. Rust programs start with SIGPIPE ignored;
/// this makes sure of it in any host program, and changes nothing when a handler is set.
fn ignore_sigpipe() {
    // SAFETY: reading the current disposition, then setting SIG_IGN only over SIG_DFL.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_DFL
        {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    }
}

/// Raises the soft limit of open files to the hard one: a TCP connection holds up to 6 fds (two
/// sockets, and a pipe each way once it carries bulk data), so 200 bulk connections need more
/// than the usual soft limit of 1024.
/// Docker's containers get a high limit too; a failure leaves the limit as it was.
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

enum Listener {
    Tcp(TcpListener),
    Udp(UdpSocket),
}
