//! The container process between `clone3` and `execve`.
//!
//! It runs in a copy of a multi-threaded process, so it does only async-signal-safe work: raw
//! system calls on data the parent prepared ([`Plan`]). No allocation, no locks, no glibc
//! wrappers that synchronise threads (`setuid` and friends broadcast to every thread in glibc,
//! and the copied thread list would make them hang), no panics. A failure is written as a
//! [`Failure`] to the report pipe and the process exits 127.

use std::ffi::{CStr, c_void};
use std::mem::size_of;
use std::ptr::null;

use libc::{c_int, c_ulong};

use crate::mountopts::locked_flags;
use crate::plan::{Plan, RootPath};

/// A failed setup step: which step, which item, the errno.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    pub stage: u32,
    pub index: u32,
    /// The errno; for [`stage::REFUSED_MOUNT`], a [`crate::plan::Refusal`] code.
    pub errno: i32,
}

impl Failure {
    pub const fn new(stage: u32, index: u32, errno: i32) -> Failure {
        Failure {
            stage,
            index,
            errno,
        }
    }
}

/// Room for a path in a [`Report`] (the whole report stays below `PIPE_BUF`, so it is written
/// atomically).
pub(crate) const REPORT_PATH: usize = 1024;

/// What the child sends through the report pipe when setup fails.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Report {
    pub failure: Failure,
    /// For [`stage::REFUSED_MOUNT`]: where the destination resolved, `/`-rooted, truncated.
    pub path_len: u32,
    pub path: [u8; REPORT_PATH],
}

impl Report {
    pub const fn new() -> Report {
        Report {
            failure: Failure::new(0, 0, 0),
            path_len: 0,
            path: [0; REPORT_PATH],
        }
    }

    /// The recorded path, if any.
    pub fn path(&self) -> &[u8] {
        &self.path[..(self.path_len as usize).min(REPORT_PATH)]
    }

    /// Record `/` + `rel`, truncated.
    fn set_path(&mut self, rel: &[u8]) {
        self.path[0] = b'/';
        let len = rel.len().min(REPORT_PATH - 1);
        self.path[1..1 + len].copy_from_slice(&rel[..len]);
        self.path_len = (1 + len) as u32;
    }
}

/// Setup steps, for [`Failure::stage`].
pub(crate) mod stage {
    pub const STDIO: u32 = 1;
    pub const JOIN_NS: u32 = 2;
    pub const LOOPBACK: u32 = 3;
    pub const PROPAGATION: u32 = 4;
    pub const BIND_ROOT: u32 = 5;
    pub const OPEN_ROOT: u32 = 6;
    pub const MOUNT_POINT: u32 = 7;
    pub const MOUNT: u32 = 8;
    pub const REMOUNT: u32 = 9;
    pub const PROPAGATE: u32 = 10;
    pub const DEVICE: u32 = 11;
    pub const DEV_SYMLINK: u32 = 12;
    pub const CWD: u32 = 13;
    pub const PIVOT: u32 = 14;
    pub const MASK: u32 = 15;
    pub const READONLY: u32 = 16;
    pub const ROOT_READONLY: u32 = 17;
    pub const HOSTNAME: u32 = 18;
    pub const OOM: u32 = 19;
    pub const RLIMIT: u32 = 20;
    pub const CAPS: u32 = 21;
    pub const GROUPS: u32 = 22;
    pub const SETGID: u32 = 23;
    pub const SETUID: u32 = 24;
    pub const NO_NEW_PRIVS: u32 = 25;
    pub const CHDIR: u32 = 26;
    pub const EXEC_NOT_FOUND: u32 = 27;
    pub const EXEC: u32 = 28;
    pub const DOMAINNAME: u32 = 29;
    pub const PDEATHSIG: u32 = 30;
    pub const DEVICE_CGROUP: u32 = 31;
    /// A mount destination resolved inside the root to a place no mount may cover.
    pub const REFUSED_MOUNT: u32 = 32;
    /// Opening the pseudo-terminal (index: 0 open ptmx, 1 unlock, 2 peer, 3 size, 4 send,
    /// 5 setsid, 6 controlling terminal, 7 chown).
    pub const TERMINAL: u32 = 33;
    pub const SECCOMP: u32 = 34;
    /// Waiting at the start gate (index: 0 moving its fd, 1 reading it, 2 closed unopened).
    pub const START_GATE: u32 = 35;
}

type R<T> = Result<T, Failure>;

fn errno() -> i32 {
    // SAFETY: errno is thread-local and this thread is the child's only one.
    unsafe { *libc::__errno_location() }
}

fn fail(stage: u32, index: usize) -> Failure {
    Failure::new(stage, index as u32, errno())
}

fn check(ret: libc::c_long, stage: u32, index: usize) -> R<libc::c_long> {
    if ret < 0 {
        Err(fail(stage, index))
    } else {
        Ok(ret)
    }
}

/// `/proc/self/fd/N` in a stack buffer, NUL-terminated.
struct FdPath([u8; 32]);

impl FdPath {
    fn new(fd: c_int) -> FdPath {
        let mut buf = [0u8; 32];
        let prefix = b"/proc/self/fd/";
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 12];
        let mut n = fd.max(0) as u32;
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in 0..len {
            buf[prefix.len() + i] = digits[len - 1 - i];
        }
        FdPath(buf)
    }

    fn ptr(&self) -> *const libc::c_char {
        self.0.as_ptr().cast()
    }
}

/// The kernel's `struct open_how` (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(root, path, O_PATH)` resolving inside `root`: symlinks and `..` never leave it.
fn open_in_root_raw(root: c_int, path: &CStr) -> c_int {
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: valid pointers to a NUL-terminated path and an open_how of the given size.
    unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root as libc::c_long,
            path.as_ptr(),
            &how as *const OpenHow,
            size_of::<OpenHow>(),
        ) as c_int
    }
}

/// Open `path` inside `root`, creating missing directories (and the last component as an empty
/// file when `file` is set) like `mkdir -p`, each level resolved inside the root.
fn open_in_root(root: c_int, path: &RootPath, file: bool) -> Result<c_int, i32> {
    let fd = open_in_root_raw(root, &path.full);
    if fd >= 0 {
        return Ok(fd);
    }
    if errno() != libc::ENOENT {
        return Err(errno());
    }
    // SAFETY: plain fd syscalls.
    let mut dir = unsafe { libc::fcntl(root, libc::F_DUPFD_CLOEXEC, 3) };
    if dir < 0 {
        return Err(errno());
    }
    let last = path.prefixes.len().saturating_sub(1);
    for (i, (prefix, name)) in path.prefixes.iter().zip(&path.names).enumerate() {
        let mut fd = open_in_root_raw(root, prefix);
        if fd < 0 && errno() == libc::ENOENT {
            // SAFETY: `dir` is a directory resolved inside the root; `name` is one component.
            let r = unsafe {
                if file && i == last {
                    let f = libc::openat(
                        dir,
                        name.as_ptr(),
                        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o644,
                    );
                    if f >= 0 {
                        libc::close(f);
                    }
                    f
                } else {
                    libc::mkdirat(dir, name.as_ptr(), 0o755)
                }
            };
            if r < 0 && errno() != libc::EEXIST {
                let e = errno();
                // SAFETY: closing our own fd.
                unsafe { libc::close(dir) };
                return Err(e);
            }
            fd = open_in_root_raw(root, prefix);
        }
        if fd < 0 {
            let e = errno();
            // SAFETY: closing our own fd.
            unsafe { libc::close(dir) };
            return Err(e);
        }
        // SAFETY: closing our own fd.
        unsafe { libc::close(dir) };
        dir = fd;
    }
    Ok(dir)
}

fn in_root(root: c_int, path: &RootPath, file: bool, stage: u32, index: usize) -> R<c_int> {
    open_in_root(root, path, file).map_err(|errno| Failure::new(stage, index as u32, errno))
}

/// The path of what `fd` refers to, as `/proc/self/fd/N` shows it, written into `buf`; its
/// length.
fn fd_path(fd: c_int, buf: &mut [u8]) -> Result<usize, i32> {
    let p = FdPath::new(fd);
    // SAFETY: readlink writes at most buf.len() bytes into buf.
    let n = unsafe { libc::readlink(p.ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(errno());
    }
    let n = n as usize;
    if n >= buf.len() {
        return Err(libc::ENAMETOOLONG);
    }
    Ok(n)
}

/// Check where a mount's destination, opened as `fd`, resolved inside the root (whose own path
/// is `root_path`, empty for `/`): symlinks in the image (or earlier mounts) must not carry a
/// mount onto the root, `/proc`, `/sys` or `/dev` ([`crate::plan::refused_destination`]).
fn check_destination(
    root_path: &[u8],
    fd: c_int,
    op: &crate::plan::MountOp,
    i: usize,
    report: &mut Report,
) -> R<()> {
    let mut buf = [0u8; 4096];
    let n = fd_path(fd, &mut buf).map_err(|e| Failure::new(stage::MOUNT_POINT, i as u32, e))?;
    let resolved = match buf[..n].strip_prefix(root_path) {
        Some([]) => &[][..],
        Some([b'/', rest @ ..]) => rest,
        // Resolved inside the root by construction (RESOLVE_IN_ROOT); refuse what is not.
        _ => return Err(Failure::new(stage::MOUNT_POINT, i as u32, libc::EXDEV)),
    };
    let Some(why) = crate::plan::refused_destination(op.target.written(), resolved, op.procfs)
    else {
        return Ok(());
    };
    report.set_path(resolved);
    Err(Failure::new(stage::REFUSED_MOUNT, i as u32, why as i32))
}

fn mount(
    src: *const libc::c_char,
    target: *const libc::c_char,
    fstype: *const libc::c_char,
    flags: c_ulong,
    data: *const c_void,
) -> libc::c_long {
    // SAFETY: every pointer is null or a NUL-terminated string owned by the plan or the stack.
    unsafe { libc::mount(src, target, fstype, flags, data) as libc::c_long }
}

/// The flags of the mount holding `fd`, to repeat them in a bind remount.
fn existing_flags(fd: c_int) -> c_ulong {
    // SAFETY: statvfs is plain data; fstatvfs writes into it.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::fstatvfs(fd, &mut st) == 0 {
            locked_flags(st.f_flag)
        } else {
            0
        }
    }
}

/// `prctl` with every argument as the kernel's unsigned long (the libc binding is variadic,
/// so an `i32` literal would leave the register's upper half undefined).
fn prctl(option: c_int, a2: u64, a3: u64, a4: u64, a5: u64) -> c_int {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            option,
            a2 as c_ulong,
            a3 as c_ulong,
            a4 as c_ulong,
            a5 as c_ulong,
        )
    }
}

/// A uid or gid as a syscall argument.
fn id(v: u32) -> libc::c_long {
    libc::c_long::from(v)
}

fn close(fd: c_int) {
    // SAFETY: closing an fd this code opened.
    unsafe { libc::close(fd) };
}

/// The child's whole life: set up, then exec. Never returns.
///
/// # Safety
/// Must be called only in the child of `clone3` (no `CLONE_VM`), with `plan` prepared by the
/// parent and the four fds open.
pub(crate) unsafe fn run(plan: &Plan, stdio: [c_int; 3], report: c_int) -> ! {
    // Move our fds above the standard ones so that dup2 onto 0..2 cannot close them.
    // SAFETY: fd syscalls.
    let report = unsafe { libc::fcntl(report, libc::F_DUPFD_CLOEXEC, 10) };
    let mut detail = Report::new();
    detail.failure = match setup(plan, stdio, &mut detail) {
        Err(f) => f,
        Ok(never) => match never {},
    };
    if report >= 0 {
        // SAFETY: writing a plain repr(C) value.
        unsafe {
            libc::write(
                report,
                (&detail as *const Report).cast(),
                size_of::<Report>(),
            )
        };
    }
    // SAFETY: leave without running any destructor or atexit handler of the copied process.
    unsafe { libc::_exit(127) }
}

enum Never {}

fn setup(plan: &Plan, stdio: [c_int; 3], report: &mut Report) -> R<Never> {
    // SAFETY (whole function): raw syscalls on prepared, NUL-terminated data and own fds.
    unsafe {
        // Die with the spawning thread: a killed kiln leaves no container behind.
        check(
            prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0, 0, 0) as _,
            stage::PDEATHSIG,
            0,
        )?;
        // Into the device cgroup before anything can open a device node.
        if plan.cgroup_procs >= 0 && libc::write(plan.cgroup_procs, c"0".as_ptr().cast(), 1) != 1 {
            return Err(fail(stage::DEVICE_CGROUP, 0));
        }
        let mut io: [c_int; 3] = [0; 3];
        for (i, fd) in stdio.iter().enumerate() {
            io[i] = check(
                libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10) as _,
                stage::STDIO,
                i,
            )? as c_int;
        }
        // Above the standard fds too: dup2 onto 0..2 below must not close it.
        let gate = if plan.start_gate >= 0 {
            check(
                libc::fcntl(plan.start_gate, libc::F_DUPFD_CLOEXEC, 10) as _,
                stage::START_GATE,
                0,
            )? as c_int
        } else {
            -1
        };
        libc::umask(0o022);

        for (i, (fd, nstype)) in plan.join_fds().enumerate() {
            check(libc::setns(fd, nstype) as _, stage::JOIN_NS, i)?;
        }
        if plan.loopback_up {
            loopback_up()?;
        }

        // Nothing below may propagate back to the host's mounts.
        check(
            mount(
                c"".as_ptr(),
                c"/".as_ptr(),
                null(),
                plan.root_propagation,
                null(),
            ),
            stage::PROPAGATION,
            0,
        )?;
        // pivot_root needs the new root to be a mount point.
        check(
            mount(
                plan.rootfs.as_ptr(),
                plan.rootfs.as_ptr(),
                null(),
                libc::MS_BIND | libc::MS_REC,
                null(),
            ),
            stage::BIND_ROOT,
            0,
        )?;
        if plan.nodev_root {
            let fd = libc::open(plan.rootfs.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
            let flags = existing_flags(fd);
            close(fd);
            check(
                mount(
                    null(),
                    plan.rootfs.as_ptr(),
                    null(),
                    libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NODEV | flags,
                    null(),
                ),
                stage::BIND_ROOT,
                1,
            )?;
        }
        let root = check(
            libc::open(
                plan.rootfs.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            ) as _,
            stage::OPEN_ROOT,
            0,
        )? as c_int;

        // Where the root is, as /proc/self/fd shows paths: mount destinations are checked
        // against it once resolved.
        let mut root_buf = [0u8; 4096];
        let root_len =
            fd_path(root, &mut root_buf).map_err(|e| Failure::new(stage::OPEN_ROOT, 1, e))?;
        let root_path = match &root_buf[..root_len] {
            b"/" => &[][..],
            p => p,
        };
        for (i, op) in plan.mounts.iter().enumerate() {
            mount_one(root, root_path, op, i, report)?;
        }
        for (i, dev) in plan.devices.iter().enumerate() {
            make_device(root, dev, i)?;
        }
        if !plan.dev_symlinks.is_empty() {
            let dev = in_root(root, &plan.dev_dir, false, stage::DEV_SYMLINK, 0)?;
            for (i, (target, name)) in plan.dev_symlinks.iter().enumerate() {
                if libc::symlinkat(target.as_ptr(), dev, name.as_ptr()) < 0
                    && errno() != libc::EEXIST
                {
                    return Err(fail(stage::DEV_SYMLINK, i));
                }
            }
            close(dev);
        }
        // WORKDIR is created if missing, as runc and BuildKit do.
        close(in_root(root, &plan.cwd, false, stage::CWD, 0)?);
        close(root);

        check(libc::chdir(plan.rootfs.as_ptr()) as _, stage::PIVOT, 0)?;
        check(
            libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()),
            stage::PIVOT,
            1,
        )?;
        check(
            libc::umount2(c".".as_ptr(), libc::MNT_DETACH) as _,
            stage::PIVOT,
            2,
        )?;
        check(libc::chdir(c"/".as_ptr()) as _, stage::PIVOT, 3)?;

        for (i, path) in plan.masked.iter().enumerate() {
            mask_path(path, i)?;
        }
        for (i, path) in plan.readonly_paths.iter().enumerate() {
            readonly_path(path, i)?;
        }
        if plan.readonly_root {
            let fd = libc::open(c"/".as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
            let flags = existing_flags(fd);
            close(fd);
            check(
                mount(
                    null(),
                    c"/".as_ptr(),
                    null(),
                    libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | flags,
                    null(),
                ),
                stage::ROOT_READONLY,
                0,
            )?;
        }
        if let Some(h) = &plan.hostname {
            check(
                libc::sethostname(h.as_ptr(), h.as_bytes().len()) as _,
                stage::HOSTNAME,
                0,
            )?;
        }
        if let Some(d) = &plan.domainname {
            check(
                libc::setdomainname(d.as_ptr(), d.as_bytes().len()) as _,
                stage::DOMAINNAME,
                0,
            )?;
        }
        if let Some(v) = &plan.oom_score_adj {
            let fd = check(
                libc::open(
                    c"/proc/self/oom_score_adj".as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                ) as _,
                stage::OOM,
                0,
            )? as c_int;
            let n = libc::write(fd, v.as_ptr().cast(), v.as_bytes().len());
            close(fd);
            check(n as _, stage::OOM, 0)?;
        }
        for (i, (resource, limit)) in plan.rlimits.iter().enumerate() {
            check(
                libc::syscall(
                    libc::SYS_prlimit64,
                    0 as libc::c_long,
                    *resource as libc::c_long,
                    limit as *const libc::rlimit,
                    null::<libc::rlimit>(),
                ),
                stage::RLIMIT,
                i,
            )?;
        }
        check(libc::chdir(plan.cwd_abs.as_ptr()) as _, stage::CHDIR, 0)?;

        if let Some(size) = &plan.terminal {
            let slave = open_terminal(plan, size)?;
            io = [slave; 3];
        }
        // As runc: without no_new_privs, installing a filter needs CAP_SYS_ADMIN, so it goes in
        // before the capabilities are dropped (the calls after it are all in docker's
        // profile); with no_new_privs, as late as possible, just before execve.
        if !plan.no_new_privs
            && let Some((filter, flags)) = &plan.seccomp
        {
            check(crate::seccomp::install(filter, *flags), stage::SECCOMP, 0)?;
        }
        set_credentials(plan)?;
        if plan.no_new_privs {
            check(
                prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as _,
                stage::NO_NEW_PRIVS,
                0,
            )?;
        }
        // Changing credentials cleared the parent-death signal; set it again.
        check(
            prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0, 0, 0) as _,
            stage::PDEATHSIG,
            1,
        )?;
        libc::umask(plan.umask);
        reset_signals();

        for (i, fd) in io.iter().enumerate() {
            check(libc::dup2(*fd, i as c_int) as _, stage::STDIO, i)?;
        }
        // Nothing of the parent's leaks into the container: every other fd closes on exec.
        check(
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_long,
                libc::c_long::from(u32::MAX),
                libc::CLOSE_RANGE_CLOEXEC as libc::c_long,
            ),
            stage::STDIO,
            3,
        )?;
        if gate >= 0 {
            wait_at_gate(gate)?;
        }
        if plan.no_new_privs
            && let Some((filter, flags)) = &plan.seccomp
        {
            check(crate::seccomp::install(filter, *flags), stage::SECCOMP, 1)?;
        }

        exec(plan)
    }
}

/// Opens a pseudo-terminal in the container's devpts (`/dev/ptmx` after `pivot_root`), sends
/// its master to the parent on `plan.console_socket`, makes the slave this process's
/// controlling terminal in a new session and returns it (close-on-exec; dup2'd onto 0-2).
fn open_terminal(plan: &Plan, size: &libc::winsize) -> R<c_int> {
    // SAFETY (whole function): raw syscalls on our own fds and stack values.
    unsafe {
        let master = check(
            libc::open(
                c"/dev/ptmx".as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ) as _,
            stage::TERMINAL,
            0,
        )? as c_int;
        let unlock: c_int = 0;
        check(
            libc::ioctl(master, libc::TIOCSPTLCK, &unlock) as _,
            stage::TERMINAL,
            1,
        )?;
        let slave = check(
            libc::ioctl(
                master,
                libc::TIOCGPTPEER,
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ) as _,
            stage::TERMINAL,
            2,
        )? as c_int;
        if size.ws_row != 0 || size.ws_col != 0 {
            check(
                libc::ioctl(slave, libc::TIOCSWINSZ, size as *const libc::winsize) as _,
                stage::TERMINAL,
                3,
            )?;
        }
        // The process owns its terminal, as with runc (a non-root USER can reopen /dev/tty).
        check(
            libc::fchown(slave, plan.uid, u32::MAX) as _,
            stage::TERMINAL,
            7,
        )?;
        check(
            crate::fdpass::send_fd(plan.console_socket, master) as _,
            stage::TERMINAL,
            4,
        )?;
        close(master);
        check(libc::setsid() as _, stage::TERMINAL, 5)?;
        check(
            libc::ioctl(slave, libc::TIOCSCTTY, 0) as _,
            stage::TERMINAL,
            6,
        )?;
        Ok(slave)
    }
}

fn mount_one(
    root: c_int,
    root_path: &[u8],
    op: &crate::plan::MountOp,
    i: usize,
    report: &mut Report,
) -> R<()> {
    use crate::plan::MountKind;
    let fd = in_root(root, &op.target, op.file_target, stage::MOUNT_POINT, i)?;
    if let Err(f) = check_destination(root_path, fd, op, i, report) {
        close(fd);
        return Err(f);
    }
    let path = FdPath::new(fd);
    let r = match &op.kind {
        MountKind::Bind { source, flags } => {
            mount(source.as_ptr(), path.ptr(), null(), *flags, null())
        }
        MountKind::Fs {
            source,
            fstype,
            data,
        } => mount(
            source.as_ptr(),
            path.ptr(),
            fstype.as_ptr(),
            op.flags,
            data.as_ref().map_or(null(), |d| d.as_ptr().cast()),
        ),
    };
    close(fd);
    check(r, stage::MOUNT, i)?;
    let remount = matches!(op.kind, MountKind::Bind { .. }) && op.flags != 0;
    if remount || !op.propagation.is_empty() {
        // Reopen: the old fd is the directory under the new mount, not the mount's root.
        let fd = in_root(root, &op.target, false, stage::MOUNT_POINT, i)?;
        let path = FdPath::new(fd);
        if remount {
            let flags = (existing_flags(fd) & !libc::MS_RDONLY) | op.flags;
            let r = mount(
                null(),
                path.ptr(),
                null(),
                libc::MS_REMOUNT | libc::MS_BIND | flags,
                null(),
            );
            if r < 0 {
                let f = fail(stage::REMOUNT, i);
                close(fd);
                return Err(f);
            }
            // A recursive bind (rootless /sys: the host's, with its cgroup mounts below) made
            // read-only must be so all the way down, or a container could write its own
            // cgroup limits: MS_REMOUNT only changes the top mount.
            if let MountKind::Bind { flags: bflags, .. } = &op.kind
                && bflags & libc::MS_REC != 0
                && op.flags & libc::MS_RDONLY != 0
                && readonly_recursively(fd) < 0
            {
                let f = fail(stage::REMOUNT, i);
                close(fd);
                return Err(f);
            }
        }
        for prop in &op.propagation {
            if mount(null(), path.ptr(), null(), *prop, null()) < 0 {
                let f = fail(stage::PROPAGATE, i);
                close(fd);
                return Err(f);
            }
        }
        close(fd);
    }
    Ok(())
}

fn make_device(root: c_int, dev: &crate::plan::DeviceOp, i: usize) -> R<()> {
    let dir = in_root(root, &dev.parent, false, stage::DEVICE, i)?;
    // SAFETY: *at syscalls relative to a directory resolved inside the root.
    let result = unsafe {
        if libc::mknodat(dir, dev.name.as_ptr(), dev.mode, dev.rdev) == 0 {
            // mknod applies the umask; set the exact mode and owner.
            if libc::fchmodat(dir, dev.name.as_ptr(), dev.mode & 0o7777, 0) < 0
                || libc::fchownat(
                    dir,
                    dev.name.as_ptr(),
                    dev.uid,
                    dev.gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                ) < 0
            {
                Err(fail(stage::DEVICE, i))
            } else {
                Ok(())
            }
        } else if errno() == libc::EPERM {
            // Not allowed to make device nodes (e.g. nodev): bind the host's instead.
            let f = libc::openat(
                dir,
                dev.name.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                0o666,
            );
            if f < 0 {
                Err(fail(stage::DEVICE, i))
            } else {
                close(f);
                let fd = libc::openat(
                    dir,
                    dev.name.as_ptr(),
                    libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                );
                let path = FdPath::new(fd);
                let r = mount(dev.host.as_ptr(), path.ptr(), null(), libc::MS_BIND, null());
                let err = fail(stage::DEVICE, i);
                close(fd);
                if r < 0 { Err(err) } else { Ok(()) }
            }
        } else if errno() == libc::EEXIST {
            Ok(())
        } else {
            Err(fail(stage::DEVICE, i))
        }
    };
    close(dir);
    result
}

fn mask_path(path: &CStr, i: usize) -> R<()> {
    // SAFETY: syscalls on a NUL-terminated path and an fd we own.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
        if fd < 0 {
            return if errno() == libc::ENOENT {
                Ok(())
            } else {
                Err(fail(stage::MASK, i))
            };
        }
        let mut st: libc::stat = std::mem::zeroed();
        let is_dir = libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let target = FdPath::new(fd);
        let r = if is_dir {
            mount(
                c"tmpfs".as_ptr(),
                target.ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_RDONLY,
                null(),
            )
        } else {
            mount(
                c"/dev/null".as_ptr(),
                target.ptr(),
                null(),
                libc::MS_BIND,
                null(),
            )
        };
        let f = fail(stage::MASK, i);
        close(fd);
        if r < 0 { Err(f) } else { Ok(()) }
    }
}

fn readonly_path(path: &CStr, i: usize) -> R<()> {
    // SAFETY: syscalls on a NUL-terminated path and fds we own.
    unsafe {
        let r = mount(
            path.as_ptr(),
            path.as_ptr(),
            null(),
            libc::MS_BIND | libc::MS_REC,
            null(),
        );
        if r < 0 {
            return if errno() == libc::ENOENT {
                Ok(())
            } else {
                Err(fail(stage::READONLY, i))
            };
        }
        let fd = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
        let flags = existing_flags(fd);
        close(fd);
        check(
            mount(
                null(),
                path.as_ptr(),
                null(),
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | flags,
                null(),
            ),
            stage::READONLY,
            i,
        )?;
        Ok(())
    }
}

/// Bring `lo` up in a new network namespace (`SIOCSIFFLAGS`).
fn loopback_up() -> R<()> {
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    // SAFETY: ioctl with a correctly sized ifreq.
    unsafe {
        let sock = check(
            libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) as _,
            stage::LOOPBACK,
            0,
        )? as c_int;
        let mut req = IfReq {
            name: [0; 16],
            flags: (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short,
            _pad: [0; 22],
        };
        req.name[..2].copy_from_slice(b"lo");
        let r = libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &mut req as *mut IfReq);
        let f = fail(stage::LOOPBACK, 1);
        close(sock);
        if r < 0 { Err(f) } else { Ok(()) }
    }
}

/// Bounding set, groups, gid, uid, then capabilities, in the order that keeps the privileges
/// each step needs (runc's order).
fn set_credentials(plan: &Plan) -> R<()> {
    // SAFETY: raw syscalls (never glibc's setxid wrappers, see the module comment).
    unsafe {
        if let Some(c) = &plan.caps {
            check(
                prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) as _,
                stage::CAPS,
                0,
            )?;
            for cap in 0..=c.last_cap {
                if c.bounding & (1u64 << cap) == 0
                    && prctl(libc::PR_CAPBSET_DROP, cap as c_ulong, 0, 0, 0) < 0
                    && errno() != libc::EINVAL
                {
                    return Err(fail(stage::CAPS, 1));
                }
            }
        }
        check(
            libc::syscall(libc::SYS_setgroups, plan.groups.len(), plan.groups.as_ptr()),
            stage::GROUPS,
            0,
        )?;
        check(
            libc::syscall(
                libc::SYS_setresgid,
                id(plan.gid),
                id(plan.gid),
                id(plan.gid),
            ),
            stage::SETGID,
            0,
        )?;
        check(
            libc::syscall(
                libc::SYS_setresuid,
                id(plan.uid),
                id(plan.uid),
                id(plan.uid),
            ),
            stage::SETUID,
            0,
        )?;
        if let Some(c) = &plan.caps {
            check(
                prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) as _,
                stage::CAPS,
                2,
            )?;
            #[repr(C)]
            struct Header {
                version: u32,
                pid: c_int,
            }
            #[repr(C)]
            struct Data {
                effective: u32,
                permitted: u32,
                inheritable: u32,
            }
            let header = Header {
                version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
                pid: 0,
            };
            let data = [
                Data {
                    effective: c.effective as u32,
                    permitted: c.permitted as u32,
                    inheritable: c.inheritable as u32,
                },
                Data {
                    effective: (c.effective >> 32) as u32,
                    permitted: (c.permitted >> 32) as u32,
                    inheritable: (c.inheritable >> 32) as u32,
                },
            ];
            check(
                libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()),
                stage::CAPS,
                3,
            )?;
            check(
                prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong,
                    0,
                    0,
                    0,
                ) as _,
                stage::CAPS,
                4,
            )?;
            for cap in 0..=c.last_cap {
                if c.ambient & (1u64 << cap) != 0 {
                    check(
                        prctl(
                            libc::PR_CAP_AMBIENT,
                            libc::PR_CAP_AMBIENT_RAISE as c_ulong,
                            cap as c_ulong,
                            0,
                            0,
                        ) as _,
                        stage::CAPS,
                        5,
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Blocks until the start gate gives a byte (go) or reaches end of file (the caller gave up:
/// fail the start).
fn wait_at_gate(gate: c_int) -> R<()> {
    let mut b = 0u8;
    loop {
        // SAFETY: a one-byte read into a stack value.
        let n = unsafe { libc::read(gate, (&mut b as *mut u8).cast(), 1) };
        if n == 1 {
            // SAFETY: our own fd, not used again.
            unsafe { libc::close(gate) };
            return Ok(());
        }
        if n == 0 {
            return Err(Failure::new(stage::START_GATE, 2, libc::ECANCELED));
        }
        let e = errno();
        if e != libc::EINTR {
            return Err(Failure::new(stage::START_GATE, 1, e));
        }
    }
}

/// Ignored signals and the signal mask survive execve; give the process the defaults
/// (Rust ignores SIGPIPE, which would change `yes | head` in a RUN).
fn reset_signals() {
    // SAFETY: sigaction/sigprocmask with zeroed (SIG_DFL, empty mask) values.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_DFL;
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &act, std::ptr::null_mut());
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Try each PATH candidate like execvpe: a missing one moves on, a non-executable one is
/// remembered, anything else stops.
fn exec(plan: &Plan) -> R<Never> {
    let mut denied: Option<Failure> = None;
    for (i, path) in plan.candidates.iter().enumerate() {
        // SAFETY: argv/envp are NUL-terminated arrays of pointers into the plan's CStrings.
        unsafe {
            libc::execve(
                path.as_ptr(),
                plan.argv_ptrs.as_ptr(),
                plan.envp_ptrs.as_ptr(),
            )
        };
        let e = errno();
        match e {
            libc::ENOENT | libc::ENOTDIR if plan.searched_path => continue,
            libc::EACCES if plan.searched_path => {
                denied.get_or_insert(Failure::new(stage::EXEC, i as u32, e));
            }
            _ => {
                return Err(Failure::new(stage::EXEC, i as u32, e));
            }
        }
    }
    Err(denied.unwrap_or(Failure::new(stage::EXEC_NOT_FOUND, 0, libc::ENOENT)))
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, MOUNT_ATTR_RDONLY): the mount at `fd`
/// and every mount below it read-only. A raw system call on stack data (child-safe).
fn readonly_recursively(fd: c_int) -> c_int {
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const AT_RECURSIVE: c_int = 0x8000;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a valid fd, a NUL-terminated empty path, and a struct of the kernel's layout and
    // size that outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        ) as c_int
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_paths_are_formatted_without_allocating() {
        let p = FdPath::new(1234);
        let s = CStr::from_bytes_until_nul(&p.0).unwrap();
        assert_eq!(s.to_str().unwrap(), "/proc/self/fd/1234");
        let p = FdPath::new(0);
        assert_eq!(
            CStr::from_bytes_until_nul(&p.0).unwrap().to_str().unwrap(),
            "/proc/self/fd/0"
        );
    }
}
