//! The veth pair that carries a container's published-port traffic: `kiln<11 hex>` on the
//! host, `kiln0` in the container's namespace, a /30 of 169.254.0.0/16 between them.
//!
//! Link-local because nothing routes it off the host and DHCP/cloud setups rarely use more
//! than one address of it; a subnet is taken only when no route and no address of the host
//! overlaps it (each live pair's connected route marks its /30 as taken), and never from
//! 169.254.0.0/24, 169.254.255.0/24 (RFC 3927 reserves them) or 169.254.169.0/24 (cloud
//! metadata). The caller holds the host-wide lock while it picks and configures one.

use std::fs::File;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::netns::{self, NsThread};

/// The interface name inside the container.
pub(crate) const CONTAINER_IF: &str = "kiln0";
/// The pair's MTU: loopback's (64 KiB) rather than ethernet's, as the traffic never leaves
/// the host; a client elsewhere still gets its own MSS (each side sends at most the other's).
/// Bulk transfers (bench/net-proxy.sh, load 6-9): 0.58-0.64 of direct at 1500, 0.93-1.12 at 65535.
const MTU: u32 = 65535;
/// Host-side interface names start with this.
pub(crate) const HOST_PREFIX: &str = "kiln";

/// A /30 of 169.254.0.0/16: `.1` is the host's end, `.2` the container's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subnet(u32);

impl Subnet {
    pub(crate) fn host(self) -> Ipv4Addr {
        Ipv4Addr::from(self.0 + 1)
    }
    pub(crate) fn container(self) -> Ipv4Addr {
        Ipv4Addr::from(self.0 + 2)
    }
}

/// (network, mask) of every IPv4 route of the main table (`/proc/net/route`, addresses in
/// the kernel's byte order), the default route left out.
fn routes(text: &str) -> Vec<(u32, u32)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let hex = |s: &str| {
                u32::from_str_radix(s, 16)
                    .ok()
                    .map(|v| u32::from_be(v.to_le()))
            };
            // Fields: Iface Destination Gateway Flags RefCnt Use Metric Mask ...
            let (dst, mask) = (hex(f.get(1)?)?, hex(f.get(7)?)?);
            (mask != 0).then_some((dst & mask, mask))
        })
        .collect()
}

/// The first free /30 (see the module's comment), given the host's routes and addresses.
pub(crate) fn pick(routes: &[(u32, u32)], addrs: &[Ipv4Addr]) -> Option<Subnet> {
    let base = u32::from(Ipv4Addr::new(169, 254, 0, 0));
    (1u32..255)
        .flat_map(|third| (0u32..64).map(move |q| (third << 8) | (q << 2)))
        .filter(|off| off >> 8 != 169)
        .map(|off| base | off)
        .find(|&net| {
            let overlaps = |dst: u32, mask: u32| {
                // Two prefixes overlap when the shorter one contains the other's network.
                let m = mask & 0xffff_fffc;
                (net & m) == (dst & m)
            };
            !routes.iter().any(|&(d, m)| overlaps(d, m))
                && !addrs.iter().any(|a| u32::from(*a) & 0xffff_fffc == net)
        })
        .map(Subnet)
}

/// Picks a subnet from this namespace's routes and addresses.
pub(crate) fn pick_free() -> io::Result<Subnet> {
    // thread-self: the namespace of this thread (a caller may have entered another).
    let text = std::fs::read_to_string("/proc/thread-self/net/route")?;
    let addrs: Vec<Ipv4Addr> = netns::addresses_all()?
        .into_iter()
        .filter_map(|(_, ip)| match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    pick(&routes(&text), &addrs).ok_or_else(|| {
        io::Error::other("no free /30 left in 169.254.0.0/16 (routes of the host cover them)")
    })
}

/// Finds `name` (`ip`, `nft`) on PATH or in the usual sbin directories.
pub(crate) fn find_tool(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(std::path::PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs `tool` with `stdin` fed in; keeps `keep_fd` open across exec (the namespace file
/// `ip` names as /proc/self/fd/N). The error carries the tool's stderr.
pub(crate) fn run_tool(
    tool: &Path,
    args: &[&str],
    stdin: &str,
    keep_fd: Option<i32>,
) -> io::Result<String> {
    use std::io::Write;
    let mut cmd = Command::new(tool);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(fd) = keep_fd {
        // SAFETY: only fcntl, async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn()?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(io::Error::other(format!(
        "{} {} failed ({}): {}",
        tool.display(),
        args.join(" "),
        out.status,
        err.trim().lines().collect::<Vec<_>>().join("; ")
    )))
}

/// Makes the pair: the host end `host_if` with `subnet.host()`/30, up, `route_localnet=1` (so
/// that connections to 127.0.0.1 may be DNATed out of it, and their replies come back), and
/// [`CONTAINER_IF`] in `netns` with `subnet.container()`/30, up. On error nothing is left.
pub(crate) fn create(
    ip: &Path,
    netns: &File,
    ns: &NsThread,
    host_if: &str,
    subnet: Subnet,
) -> io::Result<()> {
    let fd = netns.as_raw_fd();
    let batch = format!(
        "link add {host_if} mtu {MTU} type veth peer name {CONTAINER_IF} mtu {MTU} netns /proc/self/fd/{fd}\n\
         addr add {}/30 dev {host_if}\n\
         link set {host_if} up\n",
        subnet.host()
    );
    let made = run_tool(ip, &["-batch", "-"], &batch, Some(fd))
        .and_then(|_| {
            std::fs::write(
                format!("/proc/sys/net/ipv4/conf/{host_if}/route_localnet"),
                "1",
            )
        })
        .and_then(|()| {
            // IPv4 only: no IPv6 link-local chatter (DAD, router solicitations) counted as the
            // container's traffic. Best effort: a kernel without IPv6 has no such file.
            let _ = std::fs::write(
                format!("/proc/sys/net/ipv6/conf/{host_if}/disable_ipv6"),
                "1",
            );
            let addr = subnet.container();
            ns.run(move || {
                // /proc/sys/net is the namespace of the thread that opens it.
                let _ = std::fs::write(
                    format!("/proc/sys/net/ipv6/conf/{CONTAINER_IF}/disable_ipv6"),
                    "1",
                );
                configure(CONTAINER_IF, addr, Ipv4Addr::new(255, 255, 255, 252))
            })?
        });
    if let Err(e) = made {
        let _ = delete(ip, host_if);
        return Err(e);
    }
    Ok(())
}

/// Whether an interface `name` exists in the calling thread's namespace.
pub(crate) fn exists(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: a NUL-terminated name; if_nametoindex only reads it.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

/// Deletes the host end (the container's end goes with it).
pub(crate) fn delete(ip: &Path, host_if: &str) -> io::Result<()> {
    run_tool(ip, &["link", "del", host_if], "", None).map(drop)
}

/// Sets `name`'s IPv4 address and netmask, and brings it up, in the calling thread's namespace
/// (the kernel adds the connected route).
fn configure(name: &str, addr: Ipv4Addr, mask: Ipv4Addr) -> io::Result<()> {
    // SAFETY: a plain datagram socket, for the interface ioctls only.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    for (req, ip) in [(libc::SIOCSIFADDR, addr), (libc::SIOCSIFNETMASK, mask)] {
        // SAFETY: an all-zero ifreq is valid.
        let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
        for (i, b) in name.bytes().enumerate() {
            ifr.ifr_name[i] = b as libc::c_char;
        }
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(ip.octets()),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: ifru_addr is a sockaddr, which sockaddr_in fits exactly.
        unsafe {
            std::ptr::write(
                (&mut ifr.ifr_ifru.ifru_addr as *mut libc::sockaddr).cast(),
                sin,
            )
        };
        // SAFETY: the ioctl reads the ifreq filled above.
        if unsafe { libc::ioctl(sock.as_raw_fd(), req, &ifr) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    netns::link_up(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(a: [u8; 4]) -> u32 {
        u32::from(Ipv4Addr::from(a))
    }

    #[test]
    fn routes_parse_from_the_kernels_byte_order() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    kilnx\t0064FEA9\t00000000\t0001\t0\t0\t0\tFCFFFFFF\t0\t0\t0\n\
                    eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            routes(text),
            vec![
                (net([169, 254, 100, 0]), net([255, 255, 255, 252])),
                (net([192, 0, 2, 0]), net([255, 255, 255, 0]))
            ]
        );
    }

    #[test]
    fn a_subnet_overlaps_no_route_and_no_address() {
        let s = pick(&[], &[]).unwrap();
        assert_eq!(s.host(), Ipv4Addr::new(169, 254, 1, 1));
        assert_eq!(s.container(), Ipv4Addr::new(169, 254, 1, 2));
        // Taken by a live pair's route, and an address of the host.
        let s = pick(
            &[(net([169, 254, 1, 0]), net([255, 255, 255, 252]))],
            &[Ipv4Addr::new(169, 254, 1, 5)],
        )
        .unwrap();
        assert_eq!(s.host(), Ipv4Addr::new(169, 254, 1, 9));
        // A host route over all of 169.254.0.0/16 (zeroconf) leaves nothing.
        assert_eq!(
            pick(&[(net([169, 254, 0, 0]), net([255, 255, 0, 0]))], &[]),
            None
        );
        // 10.0.0.0/8 is no concern.
        assert!(pick(&[(net([10, 0, 0, 0]), net([255, 0, 0, 0]))], &[]).is_some());
        // The metadata /24 is never used.
        let all: Vec<(u32, u32)> = (1u32..169)
            .map(|t| (net([169, 254, t as u8, 0]), net([255, 255, 255, 0])))
            .collect();
        assert_eq!(
            pick(&all, &[]).unwrap().host(),
            Ipv4Addr::new(169, 254, 170, 1)
        );
    }
}
