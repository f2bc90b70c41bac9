//! The client's side of a container terminal: raw mode while attached, the window size, the
//! detach key sequence (docker's `--detach-keys` grammar), and a thread that turns SIGWINCH
//! into resize callbacks.

use std::os::fd::{AsRawFd, BorrowedFd};

use anyhow::bail;

/// docker's default: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// Parses docker's detach keys: comma-separated `ctrl-X` (X one of a-z @ [ \ ] ^ _) or single
/// characters.
pub fn parse_detach_keys(keys: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for k in keys.split(',') {
        let k = k.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b @ b'a'..=b'z'] => b - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] | [b'\\', b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => bail!("Unknown character: '{k}'"),
            };
            out.push(b);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            bail!("Unknown character: '{k}'");
        }
    }
    if out.is_empty() {
        bail!("invalid detach keys ({keys})");
    }
    Ok(out)
}

/// Finds the detach sequence in a stream of input chunks. Bytes that may start the sequence
/// are held back until they match or not (then passed on, as docker's proxy does).
pub struct DetachMatcher {
    keys: Vec<u8>,
    held: usize,
}

impl DetachMatcher {
    pub fn new(keys: Vec<u8>) -> DetachMatcher {
        DetachMatcher { keys, held: 0 }
    }

    /// The bytes of `chunk` to forward, and whether the sequence is complete (then nothing
    /// after it is forwarded).
    pub fn feed(&mut self, chunk: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(chunk.len());
        for &b in chunk {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.held]);
            self.held = 0;
            if b == self.keys[0] {
                self.held = 1;
                if self.keys.len() == 1 {
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// Whether fd is a terminal.
pub fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty on a descriptor number only queries it.
    unsafe { libc::isatty(fd) == 1 }
}

/// The size of the terminal on fd (rows, cols), if it is one.
pub fn size_of(fd: i32) -> Option<(u16, u16)> {
    // SAFETY: winsize is plain data; TIOCGWINSZ fills it.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: ioctl with a pointer to the local value.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && (ws.ws_row != 0 || ws.ws_col != 0)).then_some((ws.ws_row, ws.ws_col))
}

/// The size of this process's terminal: stdout's, else stdin's.
pub fn own_size() -> Option<(u16, u16)> {
    size_of(1).or_else(|| size_of(0))
}

/// Sets the size of the terminal on `fd` (a pty master: its foreground process group gets
/// SIGWINCH).
pub fn set_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: ioctl with a pointer to the local value.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The client's terminal in raw mode until dropped (then restored as it was).
pub struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    /// Raw mode on stdin, if it is a terminal.
    pub fn enter() -> Option<RawMode> {
        if !is_tty(0) {
            return None;
        }
        // SAFETY: termios is plain data; tcgetattr fills it.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr/tcsetattr on fd 0 with local values.
        unsafe {
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(RawMode { saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the attributes read in `enter`.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.saved) };
    }
}

/// Blocks `signals` in this thread (threads started later inherit the mask) and starts a
/// thread that calls `f` with each one received. Call before starting other threads.
pub fn on_signals(signals: &[i32], f: impl Fn(i32) + Send + 'static) {
    // SAFETY: sigset manipulation on a local value, then pthread_sigmask of this thread.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: sigwait on a set blocked in this thread (inherited from its creator).
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                return;
            }
            f(sig);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_docker() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert_eq!(parse_detach_keys("ctrl-@,ctrl-_").unwrap(), vec![0, 31]);
        assert!(parse_detach_keys("ctrl-").is_err());
        assert!(parse_detach_keys("abc").is_err());
    }

    #[test]
    fn matcher_holds_a_prefix_and_passes_it_on_a_mismatch() {
        let mut m = DetachMatcher::new(vec![16, 17]);
        assert_eq!(m.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(m.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(m.feed(b"x\x10"), (b"x".to_vec(), false));
        assert_eq!(m.feed(b"\x11rest"), (Vec::new(), true));
        let mut m = DetachMatcher::new(vec![16, 17]);
        assert_eq!(m.feed(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
    }
}
