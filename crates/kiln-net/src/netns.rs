//! A thread that lives inside a network namespace. A socket belongs to the namespace of the
//! thread that creates it, whatever thread uses it later; so the proxy keeps one such thread,
//! which creates sockets on request and hands them back to threads of the host namespace.

use std::fs::File;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::Error;

type Job = Box<dyn FnOnce() + Send>;

/// A thread that entered a network namespace once (`setns`) and runs jobs there. It ends when
/// the `NsThread` is dropped.
pub(crate) struct NsThread {
    jobs: Option<mpsc::Sender<Job>>,
    handle: Option<JoinHandle<()>>,
}

impl NsThread {
    /// Starts the thread and enters `netns` (an open `/proc/PID/ns/net` or bind mount of it).
    pub(crate) fn start(netns: &File, name: &str) -> Result<NsThread, Error> {
        let fd = netns
            .try_clone()
            .map_err(|e| Error::netns("duplicating the namespace file", e))?;
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .stack_size(256 * 1024)
            .spawn(move || {
                // SAFETY: setns on a valid fd; it changes only this thread's namespace.
                let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
                drop(fd);
                if rc != 0 {
                    let _ = ready_tx.send(Err(io::Error::last_os_error()));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                for job in rx {
                    job();
                }
            })
            .map_err(|e| Error::thread(name, e))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(NsThread {
                jobs: Some(jobs),
                handle: Some(handle),
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(Error::netns("setns(CLONE_NEWNET)", e))
            }
            Err(_) => {
                let _ = handle.join();
                Err(Error::netns(
                    "setns(CLONE_NEWNET)",
                    io::Error::other("the namespace thread died"),
                ))
            }
        }
    }

    /// Runs `f` on the thread, inside the namespace, and returns what it returns.
    pub(crate) fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> io::Result<R> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        let gone = || io::Error::other("the network namespace thread has stopped");
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())
    }

    /// A new, unconnected TCP socket in the namespace, for an address of `addr`'s family.
    pub(crate) fn tcp_socket(&self, addr: SocketAddr) -> io::Result<OwnedFd> {
        let domain = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        self.run(move || {
            // SAFETY: plain socket(2); the fd is owned right away.
            let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })?
    }

    /// A UDP socket in the namespace, bound to an ephemeral port of `addr`'s family.
    pub(crate) fn udp_socket(&self, addr: SocketAddr) -> io::Result<UdpSocket> {
        let local: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        self.run(move || UdpSocket::bind(local))?
    }
}

impl Drop for NsThread {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Connects a socket made by [`NsThread::tcp_socket`] on the calling thread; for a
/// non-blocking socket, returns it with the connect in progress.
pub(crate) fn connect(fd: OwnedFd, addr: SocketAddr) -> io::Result<TcpStream> {
    let (storage, len) = sockaddr(addr);
    loop {
        // SAFETY: storage holds a sockaddr of `len` bytes for the fd's family.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&storage as *const libc::sockaddr_storage).cast(),
                len,
            )
        };
        if rc == 0 {
            return Ok(TcpStream::from(fd));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EINPROGRESS) => return Ok(TcpStream::from(fd)),
            _ => return Err(e),
        }
    }
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// The addresses of the namespace's interfaces that are up: `(interface, address)`. Run it on
/// an [`NsThread`] (getifaddrs asks the netlink of the calling thread's namespace).
pub(crate) fn addresses() -> io::Result<Vec<(String, IpAddr)>> {
    list_addresses(true)
}

/// The addresses of every interface, up or down (a subnet must not reuse one).
pub(crate) fn addresses_all() -> io::Result<Vec<(String, IpAddr)>> {
    list_addresses(false)
}

fn list_addresses(up_only: bool) -> io::Result<Vec<(String, IpAddr)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || (up_only && ifa.ifa_flags & libc::IFF_UP as u32 == 0) {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr is non-null and its family says which sockaddr it is.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        let ip = match family {
            libc::AF_INET => {
                // SAFETY: the family is AF_INET, so this is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                IpAddr::V4(Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()))
            }
            libc::AF_INET6 => {
                // SAFETY: the family is AF_INET6, so this is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
            }
            _ => continue,
        };
        out.push((name, ip));
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The container's own IPv4 address: the first on an interface that is up and not loopback.
pub(crate) fn container_ipv4(addrs: &[(String, IpAddr)]) -> Option<Ipv4Addr> {
    addrs.iter().find_map(|(_, ip)| match ip {
        IpAddr::V4(v4) if !v4.is_loopback() => Some(*v4),
        _ => None,
    })
}

/// Brings interface `name` up (SIOCSIFFLAGS) in the calling thread's namespace.
pub(crate) fn link_up(name: &str) -> io::Result<()> {
    // SAFETY: a plain datagram socket, for the interface ioctls only.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero ifreq is valid.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name too long: {name}"),
        ));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the flags into req, which names the interface.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the union field the kernel just filled for SIOCGIFFLAGS.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS with the flags read above plus IFF_UP.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
