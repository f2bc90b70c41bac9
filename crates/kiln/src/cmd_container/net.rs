//! A container's network: the one place where kiln-net plugs in.
//!
//! `--network host` shares the host's namespace; `none` and the default (`private`, docker's
//! `bridge`/`default`) get a new network namespace, which the runtime brings up with loopback.
//! After the container's first process exists the supervisor calls [`setup_private`] (outbound
//! access, kiln-net's `PrivateNet::setup`) and [`publish`] (the userspace port proxy for
//! `-p`/`-P`, kiln-net's `Proxy::start`) with that namespace, and stops the proxy when the
//! container stops. Until kiln-net is merged, the private network has loopback only and a
//! container with published ports is refused at start with a message that says so.

use std::fs::File;
use std::net::IpAddr;

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

/// docker's `-p` grammar: `[IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`, with port ranges
/// (`8000-8001:80-81`), `IP::CONTAINER_PORT` for an ephemeral host port, IPv6 in brackets.
pub fn parse_publish(spec: &str) -> Result<Vec<PortMapping>, String> {
    let bad = |why: &str| format!("invalid publish spec {spec:?}: {why}");
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, "tcp")) => (r, Proto::Tcp),
        Some((r, "udp")) => (r, Proto::Udp),
        Some((_, p)) => return Err(format!("invalid proto: {p}")),
        None => (spec, Proto::Tcp),
    };
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, r) = r.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        let r = r
            .strip_prefix(':')
            .ok_or_else(|| bad("expected ':' after ']'"))?;
        (Some(ip), r)
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (None, rest),
            3 => (Some(parts[0]), &rest[parts[0].len() + 1..]),
            _ => return Err(bad("too many colons")),
        }
    };
    let host_ip: IpAddr = match ip {
        None | Some("") => IpAddr::from([0, 0, 0, 0]),
        Some(s) => s.parse().map_err(|_| format!("invalid IP address: {s}"))?,
    };
    let (host, ctr) = match rest.split_once(':') {
        Some((h, c)) => (h, c),
        None => ("", rest),
    };
    let range = |s: &str| -> Result<(u16, u16), String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let p = |x: &str| {
            x.parse::<u16>()
                .ok()
                .filter(|n| *n != 0)
                .ok_or_else(|| format!("invalid containerPort: {s}"))
        };
        let (a, b) = (p(a)?, p(b)?);
        if b < a {
            return Err(format!("invalid range specified for port: {s}"));
        }
        Ok((a, b))
    };
    let (c0, c1) = range(ctr)?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(range(host).map_err(|_| format!("invalid hostPort: {host}"))?)
    };
    let n = c1 - c0;
    if let Some((h0, h1)) = host_range
        && h1 - h0 != n
        && h1 != h0
    {
        return Err(format!(
            "invalid ranges specified for container and host Ports: {ctr} and {host}"
        ));
    }
    Ok((0..=n)
        .map(|i| PortMapping {
            host_ip,
            host_port: match host_range {
                None => 0,
                Some((h0, h1)) if h0 == h1 => h0,
                Some((h0, _)) => h0 + i,
            },
            container_port: c0 + i,
            proto,
        })
        .collect())
}

/// Published ports, forwarded into the container's network namespace while it runs.
#[derive(Debug)]
pub struct Proxy {
    bound: Vec<PortMapping>,
}

impl Proxy {
    /// No published ports.
    pub fn none() -> Proxy {
        Proxy { bound: Vec::new() }
    }

    /// The mappings as bound (ephemeral host ports resolved).
    pub fn bound(&self) -> Vec<PortMapping> {
        self.bound.clone()
    }

    /// Stop forwarding and close the listening sockets.
    pub fn stop(self) {}
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

/// Publish `maps` from the host into the network namespace `netns` (kiln-net's
/// `Proxy::start(netns, maps)`). Called by the supervisor once the container's network
/// namespace exists; the proxy is stopped when the container stops.
pub fn publish(_netns: &File, maps: &[PortMapping]) -> Result<Proxy, String> {
    if maps.is_empty() {
        return Ok(Proxy { bound: Vec::new() });
    }
    Err(format!(
        "cannot publish {}: the port proxy (crate kiln-net) is not part of this kiln build",
        maps.iter()
            .map(PortMapping::ps_text)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Give the private network namespace `netns` outbound access (kiln-net's
/// `PrivateNet::setup(netns)`). Until kiln-net is merged it has loopback only (which the
/// runtime brought up).
pub fn setup_private(_netns: &File) -> Result<(), String> {
    Ok(())
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
