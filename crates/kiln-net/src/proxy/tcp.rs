//! TCP forwarding: an acceptor thread per published port, and per connection a thread for each
//! direction that moves bytes with `splice` (socket → pipe → socket, no copy through user
//! space). End of stream one way becomes `shutdown(Write)` the same way (half-close); an error
//! either way closes both sides. Every thread is joined: finished connections by the acceptor,
//! the rest by [`TcpServer::close_all`].

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Shared;
use crate::Error;
use crate::netns;

/// How long connecting inside the namespace may take (a full listen backlog drops SYNs).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes moved per splice call, and the pipe's capacity when the kernel grants it.
const CHUNK: usize = 1024 * 1024;
/// The read/write fallback's buffer.
const BUF: usize = 64 * 1024;
const CONN_STACK: usize = 128 * 1024;

#[derive(Default)]
struct Entry {
    client: Option<Arc<TcpStream>>,
    server: Option<Arc<TcpStream>>,
    handle: Option<JoinHandle<()>>,
    done: bool,
}

#[derive(Default)]
struct Conns {
    next: u64,
    map: HashMap<u64, Entry>,
}

pub(crate) struct TcpServer {
    listener: Arc<TcpListener>,
    conns: Arc<Mutex<Conns>>,
}

fn lock(c: &Mutex<Conns>) -> MutexGuard<'_, Conns> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

impl TcpServer {
    pub(crate) fn start(
        listener: TcpListener,
        to: SocketAddr,
        shared: &Arc<Shared>,
    ) -> Result<(TcpServer, JoinHandle<()>), Error> {
        let listener = Arc::new(listener);
        let conns = Arc::new(Mutex::new(Conns::default()));
        let (l, c, s) = (listener.clone(), conns.clone(), shared.clone());
        let name = format!("kiln-net-tcp-{}", to.port());
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .stack_size(CONN_STACK)
            .spawn(move || accept_loop(&l, to, &s, &c))
            .map_err(|e| Error::thread(&name, e))?;
        Ok((TcpServer { listener, conns }, handle))
    }

    pub(crate) fn live(&self) -> usize {
        lock(&self.conns).map.values().filter(|e| !e.done).count()
    }

    /// Makes the blocked `accept` return (Linux: EINVAL after shutdown of a listener).
    pub(crate) fn wake_acceptor(&self) {
        // SAFETY: shutdown(2) on a socket we own.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
    }

    /// Closes every connection and joins its threads (after the acceptor was joined).
    pub(crate) fn close_all(self) {
        let handles: Vec<JoinHandle<()>> = {
            let mut g = lock(&self.conns);
            g.map
                .drain()
                .filter_map(|(_, mut e)| {
                    for s in [&e.client, &e.server].into_iter().flatten() {
                        let _ = s.shutdown(Shutdown::Both);
                    }
                    e.handle.take()
                })
                .collect()
        };
        for h in handles {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, to: SocketAddr, shared: &Arc<Shared>, conns: &Arc<Mutex<Conns>>) {
    loop {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(_) if shared.stopping() => return,
            Err(e) => match e.kind() {
                io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => continue,
                // Out of fds or memory: wait instead of spinning.
                _ => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            },
        };
        if shared.stopping() {
            return;
        }
        reap(conns);
        let client = Arc::new(client);
        let id = {
            let mut g = lock(conns);
            g.next += 1;
            let id = g.next;
            g.map.insert(
                id,
                Entry {
                    client: Some(client.clone()),
                    ..Entry::default()
                },
            );
            id
        };
        let (s, c) = (shared.clone(), conns.clone());
        let spawned = std::thread::Builder::new()
            .name("kiln-net-conn".into())
            .stack_size(CONN_STACK)
            .spawn(move || connection(id, client, to, &s, &c));
        let mut g = lock(conns);
        match spawned {
            Ok(h) => {
                if let Some(e) = g.map.get_mut(&id) {
                    e.handle = Some(h);
                }
            }
            Err(_) => {
                // No thread for it: close the client now.
                g.map.remove(&id);
            }
        }
    }
}

/// Joins the threads of finished connections.
fn reap(conns: &Mutex<Conns>) {
    let done: Vec<JoinHandle<()>> = {
        let mut g = lock(conns);
        let ids: Vec<u64> = g
            .map
            .iter()
            .filter(|(_, e)| e.done && e.handle.is_some())
            .map(|(id, _)| *id)
            .collect();
        ids.iter()
            .filter_map(|id| g.map.remove(id).and_then(|e| e.handle))
            .collect()
    };
    for h in done {
        let _ = h.join();
    }
}

fn connection(
    id: u64,
    client: Arc<TcpStream>,
    to: SocketAddr,
    shared: &Arc<Shared>,
    conns: &Mutex<Conns>,
) {
    let finish = |conns: &Mutex<Conns>| {
        let mut g = lock(conns);
        if let Some(e) = g.map.get_mut(&id) {
            e.client = None;
            e.server = None;
            e.done = true;
        }
    };
    let server = match connect_inside(shared, to) {
        Ok(s) => Arc::new(s),
        Err(_) => {
            // docker-proxy closes the client when the container refuses.
            let _ = client.shutdown(Shutdown::Both);
            finish(conns);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    {
        let mut g = lock(conns);
        if let Some(e) = g.map.get_mut(&id) {
            e.server = Some(server.clone());
        }
        if shared.stopping() {
            let _ = server.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
        }
    }
    let (c2, s2) = (client.clone(), server.clone());
    let back = std::thread::Builder::new()
        .name("kiln-net-conn".into())
        .stack_size(CONN_STACK)
        .spawn(move || direction(&s2, &c2));
    match back {
        Ok(back) => {
            direction(&client, &server);
            let _ = back.join();
        }
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }
    finish(conns);
}

/// A TCP connection to `to` made from a socket of the namespace.
fn connect_inside(shared: &Shared, to: SocketAddr) -> io::Result<TcpStream> {
    let fd = shared.ns.tcp_socket(to)?;
    let tv = libc::timeval {
        tv_sec: CONNECT_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: SO_SNDTIMEO (which also bounds connect) with a timeval.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    let s = netns::connect(fd, to)?;
    s.set_write_timeout(None)?;
    Ok(s)
}

/// Moves bytes `from` → `to` until end of stream (then half-closes `to`) or an error (then
/// closes both, which ends the other direction too).
fn direction(from: &TcpStream, to: &TcpStream) {
    match pump(from, to) {
        Ok(()) => {
            let _ = to.shutdown(Shutdown::Write);
        }
        Err(_) => {
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        }
    }
}

fn pump(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    let Ok((pr, pw)) = pipe() else {
        return copy(from, to);
    };
    // A larger pipe moves more per call; without it (pipe-max-size) splice moves 64 KiB.
    // SAFETY: F_SETPIPE_SZ on our pipe.
    let cap = unsafe { libc::fcntl(pw.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
    let chunk = if cap > 0 { cap as usize } else { 64 * 1024 };
    let mut first = true;
    loop {
        // SAFETY: splice between a socket and our pipe, with null offsets (neither seeks).
        let n = unsafe {
            libc::splice(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                pw.as_raw_fd(),
                std::ptr::null_mut(),
                chunk,
                libc::SPLICE_F_MOVE,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EINVAL) if first => return copy(from, to),
                _ => return Err(e),
            }
        }
        first = false;
        if n == 0 {
            return Ok(());
        }
        let mut left = n as usize;
        while left > 0 {
            // SAFETY: as above, pipe → socket.
            let m = unsafe {
                libc::splice(
                    pr.as_raw_fd(),
                    std::ptr::null_mut(),
                    to.as_raw_fd(),
                    std::ptr::null_mut(),
                    left,
                    libc::SPLICE_F_MOVE,
                )
            };
            if m < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e);
            }
            left -= m as usize;
        }
    }
}

/// The fallback when splice is not available: read/write through a 64 KiB buffer.
fn copy(mut from: &TcpStream, mut to: &TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we own from here on.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just returned by pipe2.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
