//! A container's network: where kiln-net plugs in.
//!
//! `--network host` shares the host's namespace; `none` and the default (`private`, docker's
//! `bridge`/`default`) get a new network namespace with loopback up. Before the container's
//! first process starts, the supervisor calls [`start_private`] (outbound access through
//! `pasta`, kiln-net's `PrivateNet`) and [`publish`] (`-p`/`-P`: for root, IPv4 TCP ports go
//! through the kernel, a veth pair and nftables DNAT, kiln-net's `KernelPorts`; kiln-net's
//! userspace proxy keeps every port's listener and serves the rest) with that namespace, keeps
//! them for the container's life, and stops them when it stops. The types here are kiln-net's,
//! made serializable for the container's record.

use std::fs::File;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A published port's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One published port (kiln-net's `PortMapping`, field for field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: IpAddr,
    /// 0: an ephemeral port.
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl PortMapping {
    /// docker's `ps` PORTS text: `0.0.0.0:3000->80/tcp`.
    pub fn ps_text(&self) -> String {
        format!(
            "{}->{}/{}",
            host_addr(self.host_ip, self.host_port),
            self.container_port,
            self.proto.as_str()
        )
    }
}

/// `0.0.0.0:3000`, `[::1]:3000`.
pub fn host_addr(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// docker's `-p` grammar (kiln-net's parser): `[IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`, with
/// port ranges, `IP::CONTAINER_PORT` for an ephemeral host port, IPv6 in brackets.
pub fn parse_publish(spec: &str) -> Result<Vec<PortMapping>, String> {
    kiln_net::parse_publish(spec)
        .map(|v| v.iter().map(PortMapping::from_net).collect())
        .map_err(|e| e.to_string())
}

impl PortMapping {
    fn from_net(m: &kiln_net::PortMapping) -> PortMapping {
        PortMapping {
            host_ip: m.host_ip,
            host_port: m.host_port,
            container_port: m.container_port,
            proto: match m.proto {
                kiln_net::Proto::Tcp => Proto::Tcp,
                kiln_net::Proto::Udp => Proto::Udp,
            },
        }
    }

    fn to_net(&self) -> kiln_net::PortMapping {
        kiln_net::PortMapping {
            host_ip: self.host_ip,
            host_port: self.host_port,
            container_port: self.container_port,
            proto: match self.proto {
                Proto::Tcp => kiln_net::Proto::Tcp,
                Proto::Udp => kiln_net::Proto::Udp,
            },
        }
    }
}

/// Published ports, forwarded into the container's network namespace while it runs.
pub struct Proxy {
    proxy: Option<kiln_net::Proxy>,
    /// The kernel path (veth + DNAT), when it could be set up; dropped after the proxy.
    kernel: Option<kiln_net::KernelPorts>,
    bound: Vec<PortMapping>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("bound", &self.bound).finish()
    }
}

impl Proxy {
    /// No published ports.
    pub fn none() -> Proxy {
        Proxy {
            proxy: None,
            kernel: None,
            bound: Vec::new(),
        }
    }

    /// The mappings as bound (ephemeral host ports resolved).
    pub fn bound(&self) -> Vec<PortMapping> {
        self.bound.clone()
    }

    /// Stop forwarding: close the listening sockets and live connections, delete the
    /// nftables rules (the veth pair goes with the container's namespace).
    pub fn stop(self) {
        if let Some(p) = self.proxy {
            p.stop();
        }
        // The veth dies with the namespace, which ends with the supervisor.
        if let Some(k) = self.kernel {
            let _ = k.release();
        }
    }
}

/// A new network namespace with loopback up, made by a short-lived thread of this process
/// (network namespaces are per thread); the container joins it by path. Made before the
/// container so that its network (kiln-net's setup, published ports) is ready when its
/// program starts.
pub fn create_netns() -> std::io::Result<File> {
    std::thread::spawn(|| -> std::io::Result<File> {
        // SAFETY: unshare of this thread's network namespace only.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        loopback_up()?;
        File::open("/proc/thread-self/ns/net")
    })
    .join()
    .map_err(|_| std::io::Error::other("the network namespace thread panicked"))?
}

/// `ip link set lo up` in this thread's network namespace.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a datagram socket, an ifreq filled by name, and two ioctls on it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let r = if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            -1
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req)
        };
        let e = std::io::Error::last_os_error();
        libc::close(fd);
        if r < 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// The kernel path's veth pair being made on a thread while the supervisor does the rest of
/// its setup (`ip` takes some milliseconds); [`publish`] takes it.
pub struct KernelLink(Option<std::thread::JoinHandle<Result<kiln_net::KernelPorts, String>>>);

impl KernelLink {
    /// No kernel path (no network namespace of the supervisor's).
    pub fn none() -> KernelLink {
        KernelLink(None)
    }
}

/// Starts making the veth pair of container `id` for the kernel path of its published ports:
/// only when there are ports, for the private network (`--network none` keeps the proxy
/// alone), and not for rootless kiln (no privilege in the host's network namespace).
pub fn start_kernel_link(
    netns: &File,
    id: &str,
    maps: &[PortMapping],
    private: bool,
) -> KernelLink {
    if maps.is_empty() || !private || kiln_runtime::userns::in_user_namespace() {
        return KernelLink(None);
    }
    let (Ok(ns), id) = (netns.try_clone(), id.to_string()) else {
        return KernelLink(None);
    };
    let t = std::thread::Builder::new()
        .name("kiln-net-link".into())
        .spawn(move || kiln_net::KernelPorts::link(&ns, &id).map_err(|e| e.to_string()));
    KernelLink(t.ok())
}

/// Publish `maps` from the host into the container's network namespace `netns`.
/// kiln-net's proxy binds every host port (docker's `Bind for 0.0.0.0:3000 failed: port is
/// already allocated` when one is taken). For root, IPv4 TCP ports then go through the kernel
/// (kiln-net's `KernelPorts`: veth pair, nftables DNAT); the proxy reaches the container over
/// the same veth, so `stats` counts all published traffic on the veth. Where the kernel path
/// cannot be set up, the proxy serves every port, reaching the container over its loopback,
/// and counts what it carries in the file `traffic` (`stats`' NET I/O adds it: io_stats.rs);
/// the reason is returned as the warning to print (none for rootless kiln, which never has it).
/// `link` is the veth pair [`start_kernel_link`] started making (none: the proxy alone).
pub fn publish(
    netns: &File,
    link: KernelLink,
    maps: &[PortMapping],
    traffic: &Path,
) -> Result<(Proxy, Option<String>), String> {
    if maps.is_empty() {
        return Ok((Proxy::none(), None));
    }
    let wanted: Vec<kiln_net::PortMapping> = maps.iter().map(PortMapping::to_net).collect();
    let mut warning = None;
    let mut kernel = match link.0.map(|t| t.join()) {
        None => None,
        Some(Ok(Ok(k))) => Some(k),
        Some(Ok(Err(e))) => {
            warning = Some(format!("{e}; publishing through the port proxy only"));
            None
        }
        Some(Err(_)) => {
            warning = Some(
                "published ports through the kernel: the veth thread panicked; publishing \
                 through the port proxy only"
                    .into(),
            );
            None
        }
    };
    let opts = match &kernel {
        Some(k) => {
            // No stale count from an earlier run of the container: the veth counts it all.
            let _ = std::fs::remove_file(traffic);
            kiln_net::ProxyOptions {
                target: Some(IpAddr::V4(k.container_ip())),
                ..Default::default()
            }
        }
        None => kiln_net::ProxyOptions {
            traffic_file: Some(traffic.to_path_buf()),
            ..Default::default()
        },
    };
    let proxy = kiln_net::Proxy::start_with(netns, &wanted, opts).map_err(|e| e.to_string())?;
    // Without rules the veth stays: the proxy reaches the container over it.
    if let Some(k) = kernel.as_mut()
        && let Err(e) = k.publish(&proxy.bound())
    {
        warning = Some(format!("{e}; publishing through the port proxy only"));
    }
    let bound = proxy.bound().iter().map(PortMapping::from_net).collect();
    Ok((
        Proxy {
            proxy: Some(proxy),
            kernel,
            bound,
        },
        warning,
    ))
}

/// What `kiln system check --repair` does with [`stale_rules`].
pub const STALE_RULES_REPAIR: &str = "deletes the rules";

/// `system check`: nftables rules of published ports whose supervisor is gone (SIGKILLed),
/// host-wide (kiln's table is the kernel's, shared by every store; the rules name their
/// supervisor), each with its description; `repair` deletes them. A problem reading the
/// rules is one entry too.
pub fn stale_rules(repair: bool) -> Vec<String> {
    let found = if repair {
        kiln_net::remove_stale_rules()
    } else {
        kiln_net::stale_rules()
    };
    match found {
        Ok(v) => v
            .iter()
            .map(|s| {
                format!(
                    "nftables table ip kiln: {} of container {} (supervisor pid {} is gone)",
                    if s.rules == 1 {
                        "1 rule".to_string()
                    } else {
                        format!("{} rules", s.rules)
                    },
                    s.owner,
                    s.pid
                )
            })
            .collect(),
        Err(e) => vec![format!("nftables table ip kiln: {e}")],
    }
}

/// Outbound access for the private network namespace `netns` (kiln-net's `PrivateNet`: `pasta`
/// attached to it; loopback only, with the reason recorded, where pasta is missing or fails),
/// started without waiting for pasta to configure the namespace: `Starting::ready` waits, and
/// its `PrivateNet` is kept for the container's life; dropping it stops pasta.
pub fn start_private(netns: &File) -> Result<kiln_net::Starting, String> {
    kiln_net::PrivateNet::start(netns).map_err(|e| e.to_string())
}

/// The private network being waited for on a thread, which opens the container's start gate
/// (kiln-runtime's `Stdio::start_gate`) once pasta has configured the namespace (or failed:
/// loopback only). The container's process does its whole setup (namespaces, mounts, pivot,
/// credentials) meanwhile and runs its program only through the gate.
pub struct NetWait {
    thread: Option<std::thread::JoinHandle<kiln_net::PrivateNet>>,
    /// Waited for already (no pipe or thread could be made: no gate then).
    done: Option<kiln_net::PrivateNet>,
}

impl NetWait {
    /// Starts the wait and returns the gate to give the container (the pipe's read end), or
    /// waits here and returns none when the pipe or the thread cannot be made.
    pub fn start(starting: kiln_net::Starting) -> (NetWait, Option<std::io::PipeReader>) {
        use std::io::Write;
        let Ok((gate_r, mut gate_w)) = std::io::pipe() else {
            let done = Some(starting.ready());
            return (NetWait { thread: None, done }, None);
        };
        let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(starting)));
        let theirs = slot.clone();
        let spawned = std::thread::Builder::new()
            .name("kiln-net-ready".into())
            .spawn(move || {
                let starting = theirs.lock().unwrap_or_else(|p| p.into_inner()).take();
                let net = starting.map(kiln_net::Starting::ready);
                // A start that failed before the gate closed its end: nothing to open.
                let _ = gate_w.write_all(b"1");
                net.expect("the private network is taken once")
            });
        match spawned {
            Ok(t) => (
                NetWait {
                    thread: Some(t),
                    done: None,
                },
                Some(gate_r),
            ),
            Err(_) => {
                let starting = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
                let done = starting.map(kiln_net::Starting::ready);
                (NetWait { thread: None, done }, None)
            }
        }
    }

    /// The network, once ready (the gate is open then). pasta runs until it is dropped.
    pub fn finish(mut self) -> Option<kiln_net::PrivateNet> {
        match self.thread.take() {
            Some(t) => t.join().ok(),
            None => self.done.take(),
        }
    }
}

impl Drop for NetWait {
    fn drop(&mut self) {
        // Not finished (the start failed): the thread ends once pasta is ready or has failed,
        // and its PrivateNet stops pasta as it is dropped.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs_follow_dockers_grammar() {
        let one = |s: &str| parse_publish(s).unwrap();
        assert_eq!(one("3000:80")[0].ps_text(), "0.0.0.0:3000->80/tcp");
        assert_eq!(one("80")[0].ps_text(), "0.0.0.0:0->80/tcp");
        assert_eq!(one("127.0.0.1::53/udp")[0].ps_text(), "127.0.0.1:0->53/udp");
        assert_eq!(one("[::1]:8080:80")[0].ps_text(), "[::1]:8080->80/tcp");
        let r = one("8000-8001:80-81");
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].ps_text(), "0.0.0.0:8001->81/tcp");
        assert!(parse_publish("80/sctp").is_err());
        assert!(parse_publish("x:80").is_err());
        assert!(parse_publish("1:2:3:4").is_err());
    }
}
