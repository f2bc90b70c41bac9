//! Attaching to a container's stdio without a daemon: the supervisor listens on
//! `containers/<id>/attach.sock` (a unix socket only root can reach, like the store) and
//! relays between its clients and the container: output to every client, input and window
//! sizes from any of them. `kiln attach`, `run -t` and `start -a` of a `-t` container are
//! clients.
//!
//! Frames in both directions: one kind byte, a big-endian u32 length, the payload.
//!
//! ```text
//! client → supervisor   i (stdin bytes)  c (stdin closed)  w (rows u16, cols u16)  k (signal i32)
//! supervisor → client   o (stdout)  e (stderr)  x (exit code i32, the last frame)
//! ```
//!
//! The detach keys are the client's business: it stops relaying and leaves the container
//! running.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::terminal;

pub const SOCKET: &str = "attach.sock";

pub mod kind {
    pub const STDIN: u8 = b'i';
    pub const CLOSE: u8 = b'c';
    pub const RESIZE: u8 = b'w';
    pub const SIGNAL: u8 = b'k';
    pub const STDOUT: u8 = b'o';
    pub const STDERR: u8 = b'e';
    pub const EXIT: u8 = b'x';
}

/// Largest payload accepted (a bad peer cannot make us allocate more).
const MAX_FRAME: usize = 1 << 20;

pub fn write_frame(w: &mut impl Write, kind: u8, data: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(5 + data.len());
    buf.push(kind);
    buf.extend_from_slice(&(data.len() as u32).to_be_bytes());
    buf.extend_from_slice(data);
    w.write_all(&buf)
}

/// The next frame, or None at EOF.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "attach frame too large",
        ));
    }
    let mut data = vec![0u8; len];
    r.read_exact(&mut data)?;
    Ok(Some((head[0], data)))
}

/// Runs `f` with a short path to `name` in `dir` (`/proc/self/fd/N/name`): a socket path
/// must fit in 108 bytes and a store may live deeper than that.
fn short_path<T>(dir: &Path, f: impl FnOnce(&Path) -> std::io::Result<T>) -> std::io::Result<T> {
    let d = std::fs::File::open(dir)?;
    let p = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET}", d.as_raw_fd()));
    let r = f(&p);
    drop(d);
    r
}

/// Where the process's input goes and how it is resized and signalled.
#[derive(Default)]
struct Process {
    /// The pty master (tty) or the write end of the stdin pipe.
    input: Option<std::fs::File>,
    master: Option<Arc<OwnedFd>>,
}

/// The supervisor's side: the listening socket and its clients.
pub struct Hub {
    clients: Mutex<Vec<UnixStream>>,
    process: Mutex<Process>,
    /// Close the process's stdin when a client closes its own (`run -i`: docker's StdinOnce).
    stdin_once: bool,
    /// Input frames are dropped unless the container has stdin open (`-i`).
    open_stdin: bool,
    connected: (Mutex<u32>, Condvar),
    path: PathBuf,
    done: AtomicBool,
    last_size: Mutex<Option<(u16, u16)>>,
    pid: AtomicU32,
}

impl Hub {
    /// Listens on `dir/attach.sock` and accepts clients on a thread.
    pub fn listen(dir: &Path, open_stdin: bool, stdin_once: bool) -> std::io::Result<Arc<Hub>> {
        let path = dir.join(SOCKET);
        let _ = std::fs::remove_file(&path);
        let listener = short_path(dir, |p| UnixListener::bind(p))?;
        let hub = Arc::new(Hub {
            clients: Mutex::new(Vec::new()),
            process: Mutex::new(Process::default()),
            stdin_once,
            open_stdin,
            connected: (Mutex::new(0), Condvar::new()),
            path,
            done: AtomicBool::new(false),
            last_size: Mutex::new(None),
            pid: AtomicU32::new(0),
        });
        let h = hub.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if h.done.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                h.add(conn);
            }
        });
        Ok(hub)
    }

    fn add(self: &Arc<Hub>, conn: UnixStream) {
        // A client that stops reading cannot stall the container for long.
        let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
        let Ok(reader) = conn.try_clone() else { return };
        if let Ok(mut c) = self.clients.lock() {
            c.push(conn);
        }
        {
            let (m, cv) = &self.connected;
            if let Ok(mut n) = m.lock() {
                *n += 1;
                cv.notify_all();
            }
        }
        let h = self.clone();
        std::thread::spawn(move || h.serve(reader));
    }

    /// Input from one client.
    fn serve(&self, mut conn: UnixStream) {
        while let Ok(Some((k, data))) = read_frame(&mut conn) {
            match k {
                kind::STDIN if self.open_stdin => {
                    if let Ok(mut p) = self.process.lock()
                        && let Some(f) = p.input.as_mut()
                        && f.write_all(&data).is_err()
                    {
                        p.input = None;
                    }
                }
                kind::CLOSE if self.stdin_once => {
                    if let Ok(mut p) = self.process.lock()
                        && p.master.is_none()
                    {
                        p.input = None;
                    }
                }
                kind::RESIZE if data.len() == 4 => {
                    let rows = u16::from_be_bytes([data[0], data[1]]);
                    let cols = u16::from_be_bytes([data[2], data[3]]);
                    if let Ok(mut s) = self.last_size.lock() {
                        *s = Some((rows, cols));
                    }
                    if let Ok(p) = self.process.lock()
                        && let Some(m) = &p.master
                    {
                        let _ = terminal::set_size(m.as_fd(), rows, cols);
                    }
                }
                kind::SIGNAL if data.len() == 4 => {
                    let sig = i32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                    let pid = self.pid.load(Ordering::SeqCst);
                    if pid != 0 && (1..=64).contains(&sig) {
                        // SAFETY: kill of the supervisor's own child (reaped only after the
                        // pid is cleared in `process_ended`).
                        unsafe { libc::kill(pid as i32, sig) };
                    }
                }
                _ => {}
            }
        }
    }

    /// Waits (up to `limit`) until a client is connected.
    pub fn wait_for_client(&self, limit: Duration) -> bool {
        let (m, cv) = &self.connected;
        let Ok(n) = m.lock() else { return false };
        cv.wait_timeout_while(n, limit, |n| *n == 0)
            .map(|(n, _)| *n > 0)
            .unwrap_or(false)
    }

    /// The process now running: its input (pty master or stdin pipe) and pid.
    pub fn process_started(
        &self,
        input: Option<std::fs::File>,
        master: Option<Arc<OwnedFd>>,
        pid: u32,
    ) {
        if let (Some(m), Ok(Some((rows, cols)))) = (&master, self.last_size.lock().map(|s| *s)) {
            let _ = terminal::set_size(m.as_fd(), rows, cols);
        }
        if let Ok(mut p) = self.process.lock() {
            *p = Process { input, master };
        }
        self.pid.store(pid, Ordering::SeqCst);
    }

    /// The process has exited (before it is reaped).
    pub fn process_ended(&self) {
        self.pid.store(0, Ordering::SeqCst);
        if let Ok(mut p) = self.process.lock() {
            *p = Process::default();
        }
    }

    /// Output to every client (one that fails is dropped).
    pub fn broadcast(&self, kind: u8, data: &[u8]) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.retain_mut(|c| write_frame(c, kind, data).is_ok());
        }
    }

    /// The container is done: the exit code to every client, then the socket goes.
    pub fn finish(&self, code: i32) {
        self.done.store(true, Ordering::SeqCst);
        self.broadcast(kind::EXIT, &code.to_be_bytes());
        if let Ok(mut clients) = self.clients.lock() {
            for c in clients.drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A writer that sends each write to the hub's clients as `kind` frames.
pub struct Broadcast {
    pub hub: Arc<Hub>,
    pub kind: u8,
}

impl Write for Broadcast {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hub.broadcast(self.kind, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Connects to the supervisor of the container whose directory is `dir`.
pub fn connect(dir: &Path) -> std::io::Result<UnixStream> {
    short_path(dir, |p| UnixStream::connect(p))
}

/// What the client attaches.
pub struct ClientOpts {
    /// Forward this process's stdin.
    pub stdin: bool,
    /// The container has a terminal: raw mode, window size, detach keys.
    pub tty: bool,
    pub detach_keys: Vec<u8>,
    /// Forward SIGINT/SIGTERM/... to the container (without a tty).
    pub sig_proxy: bool,
}

/// How an attachment ended.
pub enum Outcome {
    Exited(i32),
    Detached,
    /// The supervisor went away without an exit code.
    Lost,
}

/// Relays between this process's stdio and the container until it exits or the client
/// detaches.
pub fn relay(sock: UnixStream, opts: ClientOpts) -> std::io::Result<Outcome> {
    let writer = Arc::new(Mutex::new(sock.try_clone()?));
    let detached = Arc::new(AtomicBool::new(false));
    if opts.tty {
        let w = writer.clone();
        let send_size = move || {
            if let Some((rows, cols)) = terminal::own_size() {
                let mut d = rows.to_be_bytes().to_vec();
                d.extend_from_slice(&cols.to_be_bytes());
                if let Ok(mut s) = w.lock() {
                    let _ = write_frame(&mut *s, kind::RESIZE, &d);
                }
            }
        };
        send_size();
        terminal::on_signals(&[libc::SIGWINCH], move |_| send_size());
    } else if opts.sig_proxy {
        let w = writer.clone();
        terminal::on_signals(
            &[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT],
            move |sig| {
                if let Ok(mut s) = w.lock() {
                    let _ = write_frame(&mut *s, kind::SIGNAL, &sig.to_be_bytes());
                }
            },
        );
    }
    let raw = (opts.tty && opts.stdin)
        .then(terminal::RawMode::enter)
        .flatten();
    if opts.stdin {
        let w = writer.clone();
        let d = detached.clone();
        let shut = sock.try_clone()?;
        let keys = opts.tty.then(|| opts.detach_keys.clone());
        std::thread::spawn(move || {
            let mut matcher = keys.map(terminal::DetachMatcher::new);
            let mut buf = [0u8; 8192];
            let mut stdin = std::io::stdin().lock();
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        if let Ok(mut s) = w.lock() {
                            let _ = write_frame(&mut *s, kind::CLOSE, &[]);
                        }
                        return;
                    }
                    Ok(n) => n,
                };
                let (out, done) = match matcher.as_mut() {
                    Some(m) => m.feed(&buf[..n]),
                    None => (buf[..n].to_vec(), false),
                };
                if !out.is_empty()
                    && let Ok(mut s) = w.lock()
                    && write_frame(&mut *s, kind::STDIN, &out).is_err()
                {
                    return;
                }
                if done {
                    d.store(true, Ordering::SeqCst);
                    let _ = shut.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        });
    }
    let mut reader = std::io::BufReader::new(sock);
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let outcome = loop {
        match read_frame(&mut reader) {
            Ok(Some((kind::STDOUT, d))) => {
                let _ = out.write_all(&d);
                let _ = out.flush();
            }
            Ok(Some((kind::STDERR, d))) => {
                let _ = err.write_all(&d);
                let _ = err.flush();
            }
            Ok(Some((kind::EXIT, d))) if d.len() == 4 => {
                break Outcome::Exited(i32::from_be_bytes([d[0], d[1], d[2], d[3]]));
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                break if detached.load(Ordering::SeqCst) {
                    Outcome::Detached
                } else {
                    Outcome::Lost
                };
            }
        }
    };
    drop(raw);
    Ok(outcome)
}
