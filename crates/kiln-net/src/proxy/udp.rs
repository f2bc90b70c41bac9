//! UDP forwarding: one receiver thread per published port reads datagrams on the host; each
//! client address gets a flow, a socket of the namespace connected to the container's port,
//! with a thread that sends replies back to that client. A flow ends after the idle timeout;
//! the receiver joins finished flows, [`UdpServer::close_all`] the rest. Threads wait in
//! `poll` on their socket and the proxy's stop eventfd, waking once a second to check idleness.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Shared;
use crate::Error;

const TICK_MS: i32 = 1000;
const STACK: usize = 128 * 1024;
const MAX_DATAGRAM: usize = 65536;
/// Flows (client addresses, each a thread) one port keeps at most; datagrams from further
/// clients are dropped until flows end.
const MAX_FLOWS: usize = 1024;

struct Flow {
    sock: Arc<UdpSocket>,
    last_ms: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

type Flows = Mutex<HashMap<SocketAddr, Flow>>;

pub(crate) struct UdpServer {
    flows: Arc<Flows>,
}

fn lock(f: &Flows) -> MutexGuard<'_, HashMap<SocketAddr, Flow>> {
    f.lock().unwrap_or_else(|p| p.into_inner())
}

impl UdpServer {
    pub(crate) fn start(
        sock: UdpSocket,
        to: SocketAddr,
        shared: &Arc<Shared>,
    ) -> Result<(UdpServer, JoinHandle<()>), Error> {
        let name = format!("kiln-net-udp-{}", to.port());
        sock.set_nonblocking(true)
            .map_err(|e| Error::thread(&name, e))?;
        let sock = Arc::new(sock);
        let flows: Arc<Flows> = Arc::default();
        let (f, s) = (flows.clone(), shared.clone());
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .stack_size(STACK)
            .spawn(move || receive_loop(&sock, to, &s, &f))
            .map_err(|e| Error::thread(&name, e))?;
        Ok((UdpServer { flows }, handle))
    }

    pub(crate) fn live(&self) -> usize {
        lock(&self.flows)
            .values()
            .filter(|f| !f.done.load(Ordering::SeqCst))
            .count()
    }

    /// Joins every flow thread (the stop eventfd is already readable, so they are ending).
    pub(crate) fn close_all(self) {
        let handles: Vec<JoinHandle<()>> = lock(&self.flows)
            .drain()
            .filter_map(|(_, mut f)| f.handle.take())
            .collect();
        for h in handles {
            let _ = h.join();
        }
    }
}

/// Waits until `fd` is readable (true), the proxy stops, or a tick passes (false).
fn wait_readable(fd: RawFd, stop: RawFd) -> io::Result<bool> {
    let mut fds = [
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: poll on two valid pollfds.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, TICK_MS) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(fds[0].revents != 0)
}

fn receive_loop(host: &Arc<UdpSocket>, to: SocketAddr, shared: &Arc<Shared>, flows: &Arc<Flows>) {
    let epoch = Instant::now();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let readable = match wait_readable(host.as_raw_fd(), shared.stop_fd.as_raw_fd()) {
            Ok(r) => r,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(TICK_MS as u64));
                false
            }
        };
        if shared.stopping() {
            return;
        }
        reap(flows);
        if !readable {
            continue;
        }
        loop {
            let (n, client) = match host.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock: drained; anything else (an ICMP error queued): next poll.
                Err(_) => break,
            };
            let now = epoch.elapsed().as_millis() as u64;
            let sock = {
                let mut g = lock(flows);
                match g.get(&client) {
                    Some(f) if !f.done.load(Ordering::SeqCst) => {
                        f.last_ms.store(now, Ordering::SeqCst);
                        Some(f.sock.clone())
                    }
                    _ if g.len() >= MAX_FLOWS && !g.contains_key(&client) => None,
                    _ => match new_flow(host, client, to, shared, epoch, now) {
                        Ok(f) => {
                            let s = f.sock.clone();
                            if let Some(mut old) = g.insert(client, f)
                                && let Some(h) = old.handle.take()
                            {
                                let _ = h.join();
                            }
                            Some(s)
                        }
                        Err(_) => None,
                    },
                }
            };
            if let Some(s) = sock {
                // A refused or full container socket drops the datagram, as UDP does.
                if let Ok(m) = s.send(&buf[..n]) {
                    shared
                        .traffic
                        .received()
                        .fetch_add(m as u64, Ordering::Relaxed);
                }
            }
        }
    }
}

fn reap(flows: &Flows) {
    let done: Vec<JoinHandle<()>> = {
        let mut g = lock(flows);
        let ended: Vec<SocketAddr> = g
            .iter()
            .filter(|(_, f)| f.done.load(Ordering::SeqCst))
            .map(|(a, _)| *a)
            .collect();
        ended
            .iter()
            .filter_map(|a| g.remove(a).and_then(|mut f| f.handle.take()))
            .collect()
    };
    for h in done {
        let _ = h.join();
    }
}

fn new_flow(
    host: &Arc<UdpSocket>,
    client: SocketAddr,
    to: SocketAddr,
    shared: &Arc<Shared>,
    epoch: Instant,
    now: u64,
) -> io::Result<Flow> {
    let sock = shared.ns.udp_socket(to)?;
    sock.connect(to)?;
    sock.set_nonblocking(true)?;
    let sock = Arc::new(sock);
    let last_ms = Arc::new(AtomicU64::new(now));
    let done = Arc::new(AtomicBool::new(false));
    let (s, h, l, d, sh) = (
        sock.clone(),
        host.clone(),
        last_ms.clone(),
        done.clone(),
        shared.clone(),
    );
    let handle = std::thread::Builder::new()
        .name("kiln-net-udp-flow".into())
        .stack_size(STACK)
        .spawn(move || {
            flow_loop(&s, &h, client, &sh, epoch, &l);
            d.store(true, Ordering::SeqCst);
        })?;
    Ok(Flow {
        sock,
        last_ms,
        done,
        handle: Some(handle),
    })
}

fn flow_loop(
    inner: &UdpSocket,
    host: &UdpSocket,
    client: SocketAddr,
    shared: &Shared,
    epoch: Instant,
    last_ms: &AtomicU64,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let idle = shared.udp_idle.as_millis() as u64;
    loop {
        let readable =
            wait_readable(inner.as_raw_fd(), shared.stop_fd.as_raw_fd()).unwrap_or(false);
        if shared.stopping() {
            return;
        }
        if readable {
            loop {
                match inner.recv(&mut buf) {
                    Ok(n) => {
                        last_ms.store(epoch.elapsed().as_millis() as u64, Ordering::SeqCst);
                        if let Ok(m) = host.send_to(&buf[..n], client) {
                            shared.traffic.sent().fetch_add(m as u64, Ordering::Relaxed);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
        let now = epoch.elapsed().as_millis() as u64;
        if now.saturating_sub(last_ms.load(Ordering::SeqCst)) >= idle {
            return;
        }
    }
}
