//! Docker's `-p`/`--publish` grammar (`[IP:][HOSTPORT:]CONTAINERPORT[/PROTO]`, ranges, IPv6 in
//! brackets, and the long form `published=8080,target=80,protocol=udp`), `-P`, and the line
//! `kiln port` prints. Parsing follows go-connections' `nat.ParsePortSpec`, which the docker
//! CLI uses, down to its error messages.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::Error;

/// A transport protocol a port is published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// Docker's name: `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One published port: `host_ip:host_port` on the host forwards to `container_port` in the
/// container. `host_port` 0 asks for an ephemeral port ([`crate::Proxy::bound`] says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortMapping {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Parses one `-p` value into its mappings (a range gives one per port), with docker's error
/// messages for what docker rejects. An empty IP means `0.0.0.0` (IPv4 only; see
/// docs/networking.md), an empty host port an ephemeral one.
pub fn parse_publish(spec: &str) -> Result<Vec<PortMapping>, Error> {
    let standard = if spec.contains('=') {
        long_to_standard(spec)?
    } else {
        spec.to_string()
    };
    parse_standard(&standard)
}

/// `-P`: every exposed port on an ephemeral host port of `0.0.0.0`.
pub fn publish_all(exposed: &[(u16, Proto)]) -> Vec<PortMapping> {
    exposed
        .iter()
        .map(|&(container_port, proto)| PortMapping {
            host_ip: ANY,
            host_port: 0,
            container_port,
            proto,
        })
        .collect()
}

/// The line `kiln port` prints for a mapping, as `docker port` does: `80/tcp -> 0.0.0.0:3000`,
/// `53/udp -> [::1]:5353`.
pub fn format_port_line(m: &PortMapping) -> String {
    let host = match m.host_ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!(
        "{}/{} -> {}:{}",
        m.container_port, m.proto, host, m.host_port
    )
}

/// The docker CLI's `convertToStandardNotation`: `published=8080,target=80,protocol=udp` →
/// `8080:80/udp`.
fn long_to_standard(spec: &str) -> Result<String, Error> {
    let (mut published, mut target, mut protocol) = ("", "", "tcp");
    for param in spec.split(',') {
        let mut kv = param.splitn(2, '=');
        let (key, value) = match (kv.next(), kv.next()) {
            (Some(k), Some(v)) => (k, v.split('=').next().unwrap_or(v)),
            _ => {
                return Err(Error::InvalidPublish(format!(
                    "invalid publish opts format (should be name=value but got '{param}')"
                )));
            }
        };
        match key {
            "published" => published = value,
            "target" => target = value,
            "protocol" => protocol = value,
            "mode" if value == "ingress" || value == "host" => {}
            _ => {
                return Err(Error::UnsupportedPublish(format!(
                    "unsupported publish option '{param}' (kiln knows published, target, \
                     protocol and mode)"
                )));
            }
        }
    }
    Ok(format!("{published}:{target}/{protocol}"))
}

/// go-connections' `splitParts`: the last part is the container port, the one before the host
/// port, everything before that the IP (which may contain colons).
fn split_parts(raw: &str) -> (String, &str, &str) {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    match n {
        1 => (String::new(), "", parts[0]),
        2 => (String::new(), parts[0], parts[1]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    }
}

/// go-connections' `SplitProtoPort`: `80/udp` → (`udp`, `80`); `80` → (`tcp`, `80`).
fn split_proto_port(raw: &str) -> (&str, &str) {
    let parts: Vec<&str> = raw.split('/').collect();
    if raw.is_empty() || parts[0].is_empty() {
        return ("", "");
    }
    if parts.len() == 1 || parts[1].is_empty() {
        return ("tcp", parts[0]);
    }
    (parts[1], parts[0])
}

/// go-connections' `ParsePortRange`: `80` or `8000-8010`.
fn parse_range(ports: &str) -> Option<(u16, u16)> {
    if ports.is_empty() {
        return None;
    }
    let Some((a, b)) = ports.split_once('-') else {
        let p = ports.parse::<u16>().ok()?;
        return Some((p, p));
    };
    // Go splits on every '-' and reads the first two parts.
    let b = b.split('-').next().unwrap_or(b);
    let (start, end) = (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?);
    (end >= start).then_some((start, end))
}

fn parse_standard(raw: &str) -> Result<Vec<PortMapping>, Error> {
    let invalid = |m: String| Err(Error::InvalidPublish(m));
    let (mut ip, host_port, container_port) = split_parts(raw);
    let (proto, container_port) = split_proto_port(container_port);

    if ip.starts_with('[') {
        match ip.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            Some(inner) if !inner.contains(['[', ']']) => ip = inner.to_string(),
            _ => {
                return invalid(format!(
                    "Invalid ip address {ip}: address {ip}:: missing ']' in address"
                ));
            }
        }
    }
    let host_ip = if ip.is_empty() {
        ANY
    } else {
        match ip.parse::<IpAddr>() {
            Ok(a) => a,
            Err(_) => return invalid(format!("Invalid ip address: {ip}")),
        }
    };
    if container_port.is_empty() {
        return invalid(format!("No port specified: {raw}<empty>"));
    }
    let Some((start, end)) = parse_range(container_port) else {
        return invalid(format!("Invalid containerPort: {container_port}"));
    };
    let host = if host_port.is_empty() {
        None
    } else {
        match parse_range(host_port) {
            Some(r) => Some(r),
            None => return invalid(format!("Invalid hostPort: {host_port}")),
        }
    };
    if let Some((hs, he)) = host
        && end - start != he - hs
    {
        if end != start {
            return invalid(format!(
                "Invalid ranges specified for container and host Ports: {container_port} and \
                 {host_port}"
            ));
        }
        return Err(Error::UnsupportedPublish(format!(
            "a host port range for one container port ({host_port}:{container_port}) is not \
             supported by kiln: give one host port, or none for an ephemeral one"
        )));
    }
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "sctp" => {
            return Err(Error::UnsupportedPublish(format!(
                "{raw}: kiln publishes tcp and udp ports, not sctp"
            )));
        }
        _ => return invalid(format!("Invalid proto: {proto}")),
    };
    if start == 0 {
        return invalid(format!("Invalid containerPort: {container_port}"));
    }
    Ok((0..=end - start)
        .map(|i| PortMapping {
            host_ip,
            host_port: host.map_or(0, |(hs, _)| hs + i),
            container_port: start + i,
            proto,
        })
        .collect())
}
