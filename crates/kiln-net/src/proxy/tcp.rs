//! TCP forwarding. An acceptor thread per published port, which entered the container's
//! namespace (see `accept_loop`), accepts on the host, creates the container-side socket
//! itself and starts a non-blocking connect; the
//! pair goes to one of a few worker threads, each a level-triggered epoll loop over its
//! connections, which watches a socket only for what can make progress (see
//! `apply_interest`): a direction with bytes waiting stops reading from its sender
//! (back-pressure). Bulk data moves with `splice` (socket → pipe → socket, no copy through
//! user space; the pipes are made on a direction's first bulk read), small messages with
//! recv/send through the worker's buffer (see `pump`). End of
//! stream one way becomes `shutdown(Write)` the same way (half-close); an error either way
//! closes both sides. Nothing polls: threads sleep in `accept` or `epoll_wait` (a 1 s tick
//! only while a connect is pending, for its timeout).

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Shared, Traffic};
use crate::Error;
use crate::netns;

/// How long connecting inside the namespace may take (a full listen backlog drops SYNs).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The pipe capacity asked for (bytes per splice); the kernel may grant less (64 KiB).
const PIPE_SIZE: libc::c_int = 1024 * 1024;
const STACK: usize = 128 * 1024;
const WAKE: u64 = u64::MAX;
const MAX_EVENTS: usize = 256;
/// A worker's buffer for small messages (recv/send); a read that fills it switches the
/// direction to splice.
const COPY_BUF: usize = 64 * 1024;
/// A splice read smaller than this switches the direction back to recv/send.
const SPLICE_ABOVE: usize = 16 * 1024;

/// A new connection for a worker: the accepted client and the connecting container socket.
struct NewConn {
    client: TcpStream,
    server: TcpStream,
    live: Live,
}

/// One count in a port's number of live connections, for as long as it is held.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Live {
        count.fetch_add(1, Ordering::SeqCst);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The worker threads shared by every TCP port of one proxy.
pub(crate) struct Workers {
    senders: Vec<(mpsc::Sender<NewConn>, Arc<OwnedFd>)>,
    next: AtomicUsize,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl Workers {
    pub(crate) fn start(n: usize, shared: &Arc<Shared>) -> Result<Arc<Workers>, Error> {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for i in 0..n {
            let name = format!("kiln-net-tcp-w{i}");
            let wake = Arc::new(eventfd().map_err(|e| Error::thread(&name, e))?);
            let (tx, rx) = mpsc::channel();
            let ep = worker_epoll(&wake).map_err(|e| Error::thread(&name, e))?;
            let (w, s) = (wake.clone(), shared.clone());
            let h = std::thread::Builder::new()
                .name(name.clone())
                .stack_size(STACK)
                // Past its setup only epoll_wait can fail, and only on a bad fd or argument (a
                // bug): the worker then ends, dropping (closing) its connections.
                .spawn(move || {
                    let _ = worker(ep, &rx, &w, &s);
                })
                .map_err(|e| Error::thread(&name, e))?;
            senders.push((tx, wake));
            handles.push(h);
        }
        Ok(Arc::new(Workers {
            senders,
            next: AtomicUsize::new(0),
            handles: Mutex::new(handles),
        }))
    }

    fn hand(&self, c: NewConn) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len();
        let (tx, wake) = &self.senders[i];
        if tx.send(c).is_ok() {
            signal(wake.as_raw_fd());
        }
    }

    /// Wakes every worker (which sees `stopping`, closes its connections and ends) and joins.
    pub(crate) fn stop(&self) {
        for (_, wake) in &self.senders {
            signal(wake.as_raw_fd());
        }
        let handles: Vec<_> = self
            .handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for h in handles {
            let _ = h.join();
        }
    }
}

pub(crate) struct TcpServer {
    listener: Arc<TcpListener>,
    live: Arc<AtomicUsize>,
}

impl TcpServer {
    pub(crate) fn start(
        listener: TcpListener,
        to: SocketAddr,
        shared: &Arc<Shared>,
        workers: &Arc<Workers>,
    ) -> Result<(TcpServer, JoinHandle<()>), Error> {
        let listener = Arc::new(listener);
        let live = Arc::new(AtomicUsize::new(0));
        let (l, s, w, lv) = (
            listener.clone(),
            shared.clone(),
            workers.clone(),
            live.clone(),
        );
        let name = format!("kiln-net-tcp-{}", to.port());
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .stack_size(STACK)
            .spawn(move || accept_loop(&l, to, &s, &w, &lv))
            .map_err(|e| Error::thread(&name, e))?;
        Ok((TcpServer { listener, live }, handle))
    }

    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Makes the blocked `accept` return (Linux: EINVAL after shutdown of a listener).
    pub(crate) fn wake_acceptor(&self) {
        // SAFETY: shutdown(2) on a socket we own.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
    }
}

fn accept_loop(
    listener: &TcpListener,
    to: SocketAddr,
    shared: &Shared,
    workers: &Workers,
    live: &Arc<AtomicUsize>,
) {
    // This thread enters the container's namespace, so that it makes the container-side
    // socket of each connection itself (a socket belongs to the namespace of the thread that
    // creates it; accept on the host's listener still gives host sockets). Without it (setns
    // refused), each socket is a round trip to the namespace thread: two thread switches per
    // connection.
    // SAFETY: setns on a valid fd; it changes only this thread's namespace.
    let in_ns = unsafe { libc::setns(shared.netns.as_raw_fd(), libc::CLONE_NEWNET) } == 0;
    loop {
        let client = match accept(listener) {
            Ok(c) => c,
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
        // A failure here closes the client (docker-proxy does the same when it cannot dial).
        let Ok(server) = start_connect(shared, to, in_ns) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        workers.hand(NewConn {
            client,
            server,
            live: Live::new(live),
        });
    }
}

/// A non-blocking socket of the namespace with its connect to `to` under way.
/// `in_ns`: the calling thread is in the namespace and makes the socket itself.
fn start_connect(shared: &Shared, to: SocketAddr, in_ns: bool) -> io::Result<TcpStream> {
    let fd = if in_ns {
        let domain = if to.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let flags = libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe { libc::socket(domain, flags, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd) }
    } else {
        let fd = shared.ns.tcp_socket(to)?;
        // SAFETY: F_SETFL on our socket.
        unsafe {
            let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        fd
    };
    let s = netns::connect(fd, to)?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// A pipe for splice: read end, write end, capacity.
struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    chunk: usize,
}

/// One direction of a connection: `src` → pipe → `dst`, or `src` → buffer → `dst`.
#[derive(Default)]
struct Dir {
    /// Made when the direction first switches to splice: connections that only carry small
    /// messages never hold one (2 fds per connection instead of 6, no pipe set-up).
    pipe: Option<Pipe>,
    /// Bytes in the pipe.
    pending: usize,
    /// Bytes read with `recv` that `dst` did not take yet (from `held_off`).
    held: Vec<u8>,
    held_off: usize,
    /// Whether reads use splice (bulk) or recv into the worker's buffer (small messages,
    /// where splice's page handling costs more than the copy).
    splicing: bool,
    eof: bool,
    done: bool,
}

impl Dir {
    /// Bytes read from `src` and not yet written to `dst`.
    fn waiting(&self) -> usize {
        self.pending + self.held.len() - self.held_off
    }
}

struct Conn {
    client: TcpStream,
    server: TcpStream,
    up: Dir,
    down: Dir,
    connecting: Option<Instant>,
    /// The events the client / server socket is registered for (0: not registered).
    client_ev: u32,
    server_ev: u32,
    _live: Live,
}

enum Step {
    Open,
    Closed,
}

/// A worker's epoll instance, watching its wake fd: made before the worker thread starts, so a
/// failure is the caller's error rather than a thread that stops on its own.
fn worker_epoll(wake: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1 returns a new fd we own.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ep was just created.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    ctl(&ep, wake.as_raw_fd(), WAKE, libc::EPOLLIN as u32)?;
    Ok(ep)
}

fn worker(
    ep: OwnedFd,
    rx: &mpsc::Receiver<NewConn>,
    wake: &OwnedFd,
    shared: &Shared,
) -> io::Result<()> {
    let mut conns: HashMap<u64, Conn> = HashMap::new();
    let mut next_id: u64 = 0;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    let mut buf = vec![0u8; COPY_BUF];
    // Connections whose connect is under way, for its timeout.
    let mut connecting: Vec<u64> = Vec::new();
    loop {
        let timeout = if connecting.is_empty() { -1 } else { 1000 };
        // SAFETY: events has MAX_EVENTS entries.
        let n = unsafe {
            libc::epoll_wait(
                ep.as_raw_fd(),
                events.as_mut_ptr(),
                MAX_EVENTS as i32,
                timeout,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if shared.stopping() {
            // Dropping the connections closes both sides of each.
            return Ok(());
        }
        for ev in &events[..n as usize] {
            let token = ev.u64;
            if token == WAKE {
                drain(wake.as_raw_fd());
                while let Ok(nc) = rx.try_recv() {
                    next_id += 1;
                    let id = next_id;
                    if let Ok(c) = register(&ep, id, nc) {
                        conns.insert(id, c);
                        connecting.push(id);
                    }
                }
                continue;
            }
            let id = token >> 1;
            let Some(c) = conns.get_mut(&id) else {
                continue;
            };
            let t = &shared.traffic;
            if let Step::Closed = step(&ep, id, c, token & 1 == 1, ev.events, &mut buf, t) {
                conns.remove(&id);
            }
        }
        // Connects that ended, and those that took too long (closed).
        if !connecting.is_empty() {
            let now = Instant::now();
            connecting.retain(|id| {
                let Some(since) = conns.get(id).and_then(|c| c.connecting) else {
                    return false;
                };
                if now.duration_since(since) < CONNECT_TIMEOUT {
                    return true;
                }
                conns.remove(id);
                false
            });
        }
    }
}

fn register(ep: &OwnedFd, id: u64, nc: NewConn) -> io::Result<Conn> {
    let mut c = Conn {
        up: Dir::default(),
        down: Dir::default(),
        connecting: Some(Instant::now()),
        client_ev: 0,
        server_ev: 0,
        client: nc.client,
        server: nc.server,
        _live: nc.live,
    };
    // Until connected: only the server socket, for writability (the connect's end).
    apply_interest(ep, id, &mut c)?;
    Ok(c)
}

/// Handles an event on the client socket or the server one (`server_side`): readable feeds
/// the direction that socket is the source of, writable drains the one it is the destination
/// of, hang-ups and errors run both (reads then see the end or the error).
fn step(
    ep: &OwnedFd,
    id: u64,
    c: &mut Conn,
    server_side: bool,
    events: u32,
    buf: &mut [u8],
    traffic: &Traffic,
) -> Step {
    let (rx, tx) = (traffic.received(), traffic.sent());
    let r = if c.connecting.is_some() {
        match connect_result(&c.server) {
            None => return Step::Open,
            Some(Err(_)) => return Step::Closed,
            Some(Ok(())) => {
                c.connecting = None;
                // Whatever the client sent meanwhile is waiting.
                pump(&mut c.up, &c.client, &c.server, buf, rx)
            }
        }
    } else if events & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
        pump(&mut c.up, &c.client, &c.server, buf, rx)
            .and_then(|()| pump(&mut c.down, &c.server, &c.client, buf, tx))
    } else {
        let readable = events & libc::EPOLLIN as u32 != 0;
        let writable = events & libc::EPOLLOUT as u32 != 0;
        let mut r = Ok(());
        // Readable client or writable server: client → server; readable server or writable
        // client: server → client.
        if (readable && !server_side) || (writable && server_side) {
            r = pump(&mut c.up, &c.client, &c.server, buf, rx);
        }
        if r.is_ok() && ((readable && server_side) || (writable && !server_side)) {
            r = pump(&mut c.down, &c.server, &c.client, buf, tx);
        }
        r
    };
    if r.is_err() || (c.up.done && c.down.done) {
        return Step::Closed;
    }
    match apply_interest(ep, id, c) {
        Ok(()) => Step::Open,
        Err(_) => Step::Closed,
    }
}

/// The events each socket should be watched for (level-triggered): readable while its
/// outgoing direction has an empty pipe and no end of stream, writable while bytes wait for
/// it; a socket with nothing to wait for is taken out of epoll (so a hang-up cannot spin).
fn apply_interest(ep: &OwnedFd, id: u64, c: &mut Conn) -> io::Result<()> {
    let want = |out_dir: &Dir, in_dir: &Dir| {
        let mut ev = 0u32;
        if !out_dir.eof && out_dir.waiting() == 0 {
            ev |= libc::EPOLLIN as u32;
        }
        if in_dir.waiting() > 0 {
            ev |= libc::EPOLLOUT as u32;
        }
        ev
    };
    let (client, server) = if c.connecting.is_some() {
        (0, libc::EPOLLOUT as u32)
    } else {
        (want(&c.up, &c.down), want(&c.down, &c.up))
    };
    set_interest(ep, c.client.as_raw_fd(), id << 1, &mut c.client_ev, client)?;
    set_interest(
        ep,
        c.server.as_raw_fd(),
        (id << 1) | 1,
        &mut c.server_ev,
        server,
    )
}

fn set_interest(ep: &OwnedFd, fd: RawFd, token: u64, cur: &mut u32, want: u32) -> io::Result<()> {
    if *cur == want {
        return Ok(());
    }
    let op = match (*cur, want) {
        (0, _) => libc::EPOLL_CTL_ADD,
        (_, 0) => libc::EPOLL_CTL_DEL,
        _ => libc::EPOLL_CTL_MOD,
    };
    epoll_ctl(ep, op, fd, token, want)?;
    *cur = want;
    Ok(())
}

/// `None` while the connect is in progress, then its outcome.
fn connect_result(s: &TcpStream) -> Option<io::Result<()>> {
    match s.take_error() {
        Ok(Some(e)) => Some(Err(e)),
        Err(e) => Some(Err(e)),
        Ok(None) => match s.peer_addr() {
            Ok(_) => Some(Ok(())),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
            Err(e) => Some(Err(e)),
        },
    }
}

/// Moves `src` → `dst`: first what waits, then one read from `src` (epoll is level-triggered:
/// more data is reported again) and its write. Large reads go through the pipe with `splice`
/// (no copy through user space); small ones through `buf` with recv/send, which is cheaper for
/// a few KiB. The mode changes only when nothing waits, so bytes keep their order. At `src`'s
/// end of stream, with nothing waiting, half-closes `dst`.
/// `count`: the traffic cell of this direction, which gets every byte written to `dst`.
fn pump(
    d: &mut Dir,
    src: &TcpStream,
    dst: &TcpStream,
    buf: &mut [u8],
    count: &AtomicU64,
) -> io::Result<()> {
    if d.done {
        return Ok(());
    }
    flush(d, dst, count)?;
    if d.waiting() == 0 && !d.eof {
        if let (true, Some(p)) = (d.splicing, &d.pipe) {
            match splice(src.as_raw_fd(), p.w.as_raw_fd(), p.chunk) {
                Ok(0) => d.eof = true,
                Ok(n) => {
                    d.pending = n;
                    d.splicing = n >= SPLICE_ABOVE;
                    flush(d, dst, count)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        } else {
            match recv(src.as_raw_fd(), buf) {
                Ok(0) => d.eof = true,
                Ok(n) => {
                    // A full buffer: bulk data, which moves through a pipe from now on (if
                    // one can be made: out of fds, the direction keeps copying).
                    if n == buf.len() && d.pipe.is_none() {
                        d.pipe = new_pipe().ok();
                    }
                    d.splicing = n == buf.len() && d.pipe.is_some();
                    let sent = match send(dst.as_raw_fd(), &buf[..n]) {
                        Ok(m) => m,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                        Err(e) => return Err(e),
                    };
                    count.fetch_add(sent as u64, Ordering::Relaxed);
                    if sent < n {
                        d.held.clear();
                        d.held.extend_from_slice(&buf[sent..n]);
                        d.held_off = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
    if d.eof && d.waiting() == 0 {
        let _ = dst.shutdown(Shutdown::Write);
        d.done = true;
    }
    Ok(())
}

/// Writes what waits (in the pipe, or held from a recv) to `dst` until nothing waits or `dst`
/// would block.
fn flush(d: &mut Dir, dst: &TcpStream, count: &AtomicU64) -> io::Result<()> {
    while d.pending > 0 {
        let p = d.pipe.as_ref().expect("bytes pending in a pipe");
        match splice(p.r.as_raw_fd(), dst.as_raw_fd(), d.pending) {
            Ok(n) => {
                d.pending -= n;
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    while d.held_off < d.held.len() {
        match send(dst.as_raw_fd(), &d.held[d.held_off..]) {
            Ok(n) => {
                d.held_off += n;
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    d.held.clear();
    d.held_off = 0;
    Ok(())
}

/// A connection from `listener`, non-blocking and close-on-exec (accept4: no fcntl after).
fn accept(listener: &TcpListener) -> io::Result<TcpStream> {
    // SAFETY: accept4 without the peer address; the fd is owned right away.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by accept4 and is owned by nobody else.
    Ok(unsafe { TcpStream::from_raw_fd(fd) })
}

fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: recv into a buffer of buf.len() bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: send from a buffer of buf.len() bytes; no SIGPIPE on a closed peer.
        let n = unsafe {
            libc::send(
                fd,
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: splice between a socket and a pipe we own, null offsets (neither seeks).
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn new_pipe() -> io::Result<Pipe> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we own from here on.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just returned by pipe2.
    let (pipe_r, pipe_w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: F_SETPIPE_SZ on our pipe; on failure (pipe-max-size) the pipe keeps 64 KiB.
    let cap = unsafe { libc::fcntl(pipe_w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
    Ok(Pipe {
        r: pipe_r,
        w: pipe_w,
        chunk: if cap > 0 { cap as usize } else { 64 * 1024 },
    })
}

fn ctl(ep: &OwnedFd, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
    epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, token, events)
}

fn epoll_ctl(ep: &OwnedFd, op: libc::c_int, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: epoll_ctl of a valid fd on our epoll instance.
    if unsafe { libc::epoll_ctl(ep.as_raw_fd(), op, fd, &mut ev) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd(2) with valid flags.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by eventfd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writing 8 bytes to an eventfd.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

fn drain(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reading 8 bytes from a non-blocking eventfd.
    unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
}
