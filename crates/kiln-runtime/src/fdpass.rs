//! Passing one file descriptor over a Unix socket (SCM_RIGHTS): a container's (or an exec's)
//! pty master goes from the process that opened it, inside the container, to the supervisor.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use libc::c_int;

/// A control buffer aligned for `cmsghdr`, big enough for one descriptor.
#[repr(C)]
union Control {
    buf: [u8; 64],
    _align: libc::cmsghdr,
}

/// Sends `fd` on `sock` with one byte of data. Allocation-free and async-signal-safe: a
/// forked child calls it before exec. Returns `sendmsg`'s result (-1 and errno on failure).
///
/// # Safety
/// `sock` and `fd` must be open descriptors of this process.
pub unsafe fn send_fd(sock: c_int, fd: c_int) -> isize {
    let mut control = Control { buf: [0; 64] };
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: msghdr is plain data pointing at the local buffers above; the control message
    // written fits in them (CMSG_SPACE of one int is well under 64 bytes).
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = (&mut control as *mut Control).cast();
        msg.msg_controllen = libc::CMSG_SPACE(size_of::<c_int>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>(), fd);
        libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL)
    }
}

/// One fd sent with SCM_RIGHTS on `sock` (non-blocking: it must be queued already).
pub fn receive_fd(sock: &OwnedFd) -> io::Result<OwnedFd> {
    receive_fd_flags(sock, libc::MSG_DONTWAIT)
}

/// One fd sent with SCM_RIGHTS on `sock`, waiting for it.
pub fn receive_fd_blocking(sock: &OwnedFd) -> io::Result<OwnedFd> {
    receive_fd_flags(sock, 0)
}

fn receive_fd_flags(sock: &OwnedFd, flags: c_int) -> io::Result<OwnedFd> {
    let mut control = Control { buf: [0; 64] };
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: msghdr is plain data pointing at the local buffers above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut control as *mut Control).cast();
    msg.msg_controllen = size_of::<Control>() as _;
    // SAFETY: recvmsg into the buffers above.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, flags | libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: walking the control messages recvmsg filled in.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no file descriptor in the message",
            ));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}
