//! Rootless entry: an ordinary user's kiln moves itself into a new user namespace (plus a mount
//! namespace it owns) whose ID maps come from the user's subordinate ranges, and from then on
//! is uid 0 there, with every capability over what it creates.
//!
//! ```text
//! kiln (uid 1000)                         helper (fork, stays in the host namespace)
//!   fork ───────────────────────────────▶  waits on a pipe
//!   unshare(CLONE_NEWUSER | CLONE_NEWNS)
//!   write the pipe ─────────────────────▶  newuidmap KILN 0 1000 1  1 100000 65536
//!                                          newgidmap KILN 0 1000 1  1 100000 65536
//!   waitpid(helper) ◀───────────────────── exit status
//!   uid 0 / gid 0 in the namespace: the store's files are the user's on the host,
//!   a layer's uid 1001 is 100000+1000 on the host
//! ```
//!
//! The process itself enters (no re-exec, no second process that lives on): its pid, process
//! group, terminal, signals and exit code stay what the shell gave it, so `kiln run -it` and
//! Ctrl-C work as in root mode. `unshare(CLONE_NEWUSER)` refuses a multi-threaded process, so
//! [`enter`] must run before any thread starts. The helper is forked *before* the unshare
//! because the setuid-root `newuidmap` only works from the namespace where root is mapped.
//!
//! One namespace per user, shared: the first kiln also forks a *holder* (`kiln-userns`, as
//! podman's pause process) that only sleeps in the new user namespace, and records it in
//! `RUNTIME_DIR/userns.pid` ([`runtime_dir`]). Every later kiln of that user joins it
//! (`setns`, allowed to the namespace's owner without newuidmap) and then unshares a mount
//! namespace of its own. So a `kiln stop`, `kill` or `exec` acts from the same user namespace
//! as the container it targets (from a sibling namespace the kernel refuses signals and
//! `setns` to processes whose IDs are subordinate ones). Kill the holder to start afresh, for
//! example after /etc/subuid changed: `kill $(cut -d' ' -f1 RUNTIME_DIR/userns.pid)`.
//!
//! No single-uid fallback: without a subordinate range kiln refuses (with the line to add)
//! instead of building images whose files all belong to one user, which would differ from
//! the images root builds.

use std::ffi::CStr;
use std::io;
use std::path::{Path, PathBuf};

/// Set in the environment of a kiln that entered a rootless namespace (and inherited by the
/// kiln processes it starts, such as `kiln run -d`'s supervisor): the host uid it came from.
pub const ENV_HOST_UID: &str = "_KILN_ROOTLESS_UID";

/// Why an ordinary user's kiln could not enter its user namespace; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error(
        "rootless kiln needs a subordinate {kind} range for user {user} in {file}, and there is none.\n\
         As root, add one (65536 IDs that no other user's range overlaps):\n    \
         usermod --add-subuids {start}-{end} --add-subgids {start}-{end} {user}\n\
         or add the line\n    {user}:{start}:65536\n\
         to both /etc/subuid and /etc/subgid"
    )]
    NoSubordinateRange {
        kind: &'static str,
        user: String,
        file: &'static str,
        start: u64,
        end: u64,
    },

    #[error(
        "rootless kiln needs `{tool}` (setuid root) to map the subordinate IDs of user {user}, and it is not on PATH: install uidmap (`apt-get install uidmap`, as root)"
    )]
    ToolMissing { tool: &'static str, user: String },

    #[error("cannot read {file}: {source}")]
    Read {
        file: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("cannot create a user namespace: {what}: {source}{hint}")]
    Unshare {
        what: &'static str,
        hint: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("kiln's runtime directory {dir}: {source}")]
    RuntimeDir {
        dir: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "`{command}` failed ({status}); its message is above. Check that /etc/subuid and /etc/subgid give user {user} a range and that {tool} is setuid root (`ls -l {tool_path}`)"
    )]
    Map {
        command: String,
        status: String,
        user: String,
        tool: &'static str,
        tool_path: String,
    },
}

/// One subordinate range: `start` on the host, `count` IDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub count: u64,
}

/// Whether this kiln entered a rootless namespace (this process or a kiln that started it).
pub fn is_rootless() -> bool {
    std::env::var_os(ENV_HOST_UID).is_some()
}

/// Whether this process runs in a user namespace other than the initial one (rootless kiln,
/// or root in a container with its own user namespace): overlayfs then needs `userxattr`,
/// and device nodes cannot be made.
pub fn in_user_namespace() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .map(|m| !is_initial_uid_map(&m))
            .unwrap_or(false)
    })
}

/// The initial namespace's map is the identity over all of u32: `0 0 4294967295`.
fn is_initial_uid_map(map: &str) -> bool {
    let f: Vec<&str> = map.split_whitespace().collect();
    f == ["0", "0", "4294967295"]
}

/// Enter a new user + mount namespace as uid 0 when the effective uid is not 0; does nothing
/// for root. Call before any thread exists. On success the environment carries
/// [`ENV_HOST_UID`].
pub fn enter() -> Result<bool, UsernsError> {
    // SAFETY: geteuid/getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 {
        return Ok(false);
    }
    let user = user_name(uid).unwrap_or_else(|| uid.to_string());
    let subuid = read_ranges("/etc/subuid", &user, uid)?;
    let subgid = read_ranges("/etc/subgid", &user, uid)?;
    for (kind, file, ranges) in [
        ("uid", "/etc/subuid", &subuid),
        ("gid", "/etc/subgid", &subgid),
    ] {
        if ranges.is_empty() {
            let start = free_start()?;
            return Err(UsernsError::NoSubordinateRange {
                kind,
                user,
                file,
                start,
                end: start + 65535,
            });
        }
    }
    let rt = runtime_dir(uid).map_err(|source| UsernsError::RuntimeDir {
        dir: runtime_dir_path(uid).display().to_string(),
        source,
    })?;
    let rt_err = |source| UsernsError::RuntimeDir {
        dir: rt.display().to_string(),
        source,
    };
    // One kiln at a time decides whether to join or to make the namespace.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(rt.join("userns.lock"))
        .map_err(rt_err)?;
    lock.lock().map_err(rt_err)?;
    let pid_file = rt.join(HOLDER_PID_FILE);
    if let Some(holder) = read_holder(&pid_file)
        && join(holder).is_ok()
    {
        return finish_entry(uid);
    }
    // Making the namespace (joining needs neither tool).
    let newuidmap = find_tool("newuidmap").ok_or_else(|| UsernsError::ToolMissing {
        tool: "newuidmap",
        user: user.clone(),
    })?;
    let newgidmap = find_tool("newgidmap").ok_or_else(|| UsernsError::ToolMissing {
        tool: "newgidmap",
        user: user.clone(),
    })?;
    create(uid, gid, &user, &subuid, &subgid, &newuidmap, &newgidmap)?;
    let holder = spawn_holder().map_err(|source| UsernsError::Unshare {
        what: "fork the namespace holder",
        hint: "",
        source,
    })?;
    let start = start_time(holder).unwrap_or(0);
    std::fs::write(&pid_file, format!("{holder} {start}\n")).map_err(rt_err)?;
    drop(lock);
    finish_entry(uid)
}

/// The file, in the runtime directory, naming the holder: `PID STARTTIME`.
pub const HOLDER_PID_FILE: &str = "userns.pid";

/// Joined or made: a mount namespace of this process's own (owned by the user namespace),
/// uid and gid 0, the marker in the environment.
fn finish_entry(uid: u32) -> Result<bool, UsernsError> {
    // SAFETY: unshare with a plain flag.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(UsernsError::Unshare {
            what: "unshare(CLONE_NEWNS) in the user namespace",
            hint: "",
            source: io::Error::last_os_error(),
        });
    }
    // uid and gid 0 in the namespace now; drop the unmapped supplementary groups.
    // SAFETY: plain credential syscalls.
    unsafe {
        libc::setgroups(0, std::ptr::null());
        if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
            return Err(UsernsError::Unshare {
                what: "setresuid(0) in the new namespace",
                hint: "",
                source: io::Error::last_os_error(),
            });
        }
    }
    // SAFETY: single-threaded (the caller's contract).
    unsafe { std::env::set_var(ENV_HOST_UID, uid.to_string()) };
    Ok(true)
}

/// The holder recorded in `pid_file`, if that process still runs (same pid and start time).
fn read_holder(pid_file: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    let mut f = text.split_whitespace();
    let pid: i32 = f.next()?.parse().ok()?;
    let start: u64 = f.next()?.parse().ok()?;
    (pid > 0 && start_time(pid) == Some(start)).then_some(pid)
}

/// Field 22 of /proc/PID/stat: the start time, which tells a reused pid apart.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from the closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Join the user namespace of `holder` (the same user's: no capability needed).
fn join(holder: i32) -> io::Result<()> {
    let f = std::fs::File::open(format!("/proc/{holder}/ns/user"))?;
    let mine = std::fs::metadata("/proc/self/ns/user")?;
    use std::os::unix::fs::MetadataExt;
    let theirs = f.metadata()?;
    if theirs.ino() == mine.ino() && theirs.dev() == mine.dev() {
        return Err(io::Error::other(
            "the holder is in the initial user namespace",
        ));
    }
    use std::os::fd::AsRawFd;
    // SAFETY: a valid namespace fd; the process is single-threaded (the caller's contract).
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWUSER) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Fork the holder (twice, so that it is nobody's child): a new session, no open files, `/`
/// as its directory, named `kiln-userns`, sleeping until killed. Returns its pid.
fn spawn_holder() -> io::Result<i32> {
    let (rd, wr) = pipe()?;
    // SAFETY: single-threaded (the caller's contract).
    let mid = unsafe { libc::fork() };
    if mid < 0 {
        return Err(io::Error::last_os_error());
    }
    if mid == 0 {
        // SAFETY: only async-signal-safe calls from here on (fork, write, _exit, ...).
        unsafe {
            let pid = libc::fork();
            if pid == 0 {
                libc::setsid();
                libc::chdir(c"/".as_ptr());
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                for fd in 0..3 {
                    libc::dup2(null, fd);
                }
                libc::close_range(3, u32::MAX, 0);
                libc::prctl(libc::PR_SET_NAME, c"kiln-userns".as_ptr());
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                for sig in [libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGPIPE] {
                    libc::signal(sig, libc::SIG_IGN);
                }
                loop {
                    libc::pause();
                }
            }
            let b = pid.to_ne_bytes();
            libc::write(wr, b.as_ptr().cast(), b.len());
            libc::_exit(if pid < 0 { 1 } else { 0 });
        }
    }
    // SAFETY: closing our copy of the write end; reading into a valid buffer; reaping our child.
    unsafe {
        libc::close(wr);
        let mut b = [0u8; 4];
        let n = libc::read(rd, b.as_mut_ptr().cast(), b.len());
        libc::close(rd);
        let mut status = 0;
        while libc::waitpid(mid, &mut status, 0) < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
        let pid = i32::from_ne_bytes(b);
        if n != 4 || pid <= 0 {
            return Err(io::Error::other("the holder process did not start"));
        }
        Ok(pid)
    }
}

/// Make the user namespace: unshare it, have a helper forked beforehand map it with
/// newuidmap/newgidmap from the user's ranges.
#[allow(clippy::too_many_arguments)]
fn create(
    uid: u32,
    gid: u32,
    user: &str,
    subuid: &[Range],
    subgid: &[Range],
    newuidmap: &Path,
    newgidmap: &Path,
) -> Result<(), UsernsError> {
    let user = user.to_string();
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let uid_args = map_args(pid, uid, subuid);
    let gid_args = map_args(pid, gid, subgid);

    let (rd, wr) = pipe().map_err(|source| UsernsError::Unshare {
        what: "pipe",
        hint: "",
        source,
    })?;
    // SAFETY: the process is single-threaded (the caller's contract), so the child may run
    // arbitrary code, including allocation and std::process.
    let helper = unsafe { libc::fork() };
    if helper < 0 {
        return Err(UsernsError::Unshare {
            what: "fork",
            hint: "",
            source: io::Error::last_os_error(),
        });
    }
    if helper == 0 {
        // The helper: wait until the parent has unshared (or gave up: EOF), then map it.
        // SAFETY: closing our copy of the write end so that the parent's exit gives EOF.
        unsafe { libc::close(wr) };
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into a valid buffer.
        let n = unsafe { libc::read(rd, b.as_mut_ptr().cast(), 1) };
        if n != 1 {
            // SAFETY: _exit in a forked child.
            unsafe { libc::_exit(3) };
        }
        let code = [(newuidmap, &uid_args), (newgidmap, &gid_args)]
            .iter()
            .map(
                |(tool, args)| match std::process::Command::new(tool).args(*args).status() {
                    Ok(s) if s.success() => 0,
                    Ok(_) => 1,
                    Err(e) => {
                        eprintln!("kiln: cannot run {}: {e}", tool.display());
                        1
                    }
                },
            )
            .enumerate()
            .find(|(_, c)| *c != 0)
            .map(|(i, _)| 1 + i as i32)
            .unwrap_or(0);
        // SAFETY: _exit in a forked child.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: closing our copy of the read end.
    unsafe { libc::close(rd) };
    // The mount namespace comes after the holder is forked (finish_entry): the holder stays
    // in the host's and pins no mount.
    // SAFETY: unshare with a plain flag.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
    let unshare_err = (rc != 0).then(io::Error::last_os_error);
    if unshare_err.is_none() {
        // SAFETY: writing one byte from a valid buffer to our pipe.
        unsafe { libc::write(wr, b"x".as_ptr().cast(), 1) };
    }
    // SAFETY: closing our write end (EOF for the helper when unshare failed).
    unsafe { libc::close(wr) };
    let mut status = 0;
    // SAFETY: waiting for the child we forked.
    while unsafe { libc::waitpid(helper, &mut status, 0) } < 0 {
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    if let Some(source) = unshare_err {
        let hint = if source.raw_os_error() == Some(libc::ENOSPC) {
            " (user.max_user_namespaces is exhausted or 0: `sysctl user.max_user_namespaces`)"
        } else if source.raw_os_error() == Some(libc::EPERM) {
            " (unprivileged user namespaces are disabled here: `sysctl kernel.unprivileged_userns_clone=1`, or an AppArmor/seccomp policy forbids them)"
        } else {
            ""
        };
        return Err(UsernsError::Unshare {
            what: "unshare(CLONE_NEWUSER)",
            hint,
            source,
        });
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    if code != 0 {
        let (tool, path, args) = if code == 2 {
            ("newgidmap", newgidmap, &gid_args)
        } else {
            ("newuidmap", newuidmap, &uid_args)
        };
        return Err(UsernsError::Map {
            command: format!("{tool} {}", args.join(" ")),
            status: if code < 0 {
                format!("killed, wait status {status}")
            } else {
                format!("exit status {code}")
            },
            user,
            tool,
            tool_path: path.display().to_string(),
        });
    }
    Ok(())
}

/// `PID 0 ID 1  1 START1 COUNT1  1+COUNT1 START2 COUNT2 ...`.
fn map_args(pid: i32, id: u32, ranges: &[Range]) -> Vec<String> {
    let mut args = vec![pid.to_string(), "0".into(), id.to_string(), "1".into()];
    let mut inside = 1u64;
    for r in ranges {
        args.extend([inside.to_string(), r.start.to_string(), r.count.to_string()]);
        inside += r.count;
    }
    args
}

/// The user's ranges in `file` (`name:start:count` or `uid:start:count` lines); a missing
/// file means none.
fn read_ranges(file: &'static str, user: &str, uid: u32) -> Result<Vec<Range>, UsernsError> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(parse_ranges(&text, user, uid)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(UsernsError::Read { file, source }),
    }
}

fn parse_ranges(text: &str, user: &str, uid: u32) -> Vec<Range> {
    let uid = uid.to_string();
    all_ranges(text)
        .filter(|(who, _)| *who == user || *who == uid)
        .map(|(_, r)| r)
        .collect()
}

fn all_ranges(text: &str) -> impl Iterator<Item = (&str, Range)> {
    text.lines().filter_map(|l| {
        let l = l.trim();
        if l.starts_with('#') {
            return None;
        }
        let mut f = l.split(':');
        let who = f.next()?;
        let start = f.next()?.trim().parse().ok()?;
        let count: u64 = f.next()?.trim().parse().ok()?;
        (count > 0).then_some((who, Range { start, count }))
    })
}

/// A start for a suggested 65536-wide range that overlaps nobody's in /etc/subuid or
/// /etc/subgid: 100000, or above the highest range there.
fn free_start() -> Result<u64, UsernsError> {
    let mut start = 100_000;
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(UsernsError::Read { file, source }),
        };
        for (_, r) in all_ranges(&text) {
            start = start.max(r.start + r.count);
        }
    }
    Ok(start)
}

/// `newuidmap` on PATH (Debian installs it in /usr/bin, on every user's PATH).
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The login name of `uid` (getpwuid_r), if it has one.
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: a zeroed passwd is a valid out-parameter.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: valid buffers; the result points into `buf` while it lives.
    let rc =
        unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return None;
    }
    // SAFETY: pw_name is a NUL-terminated string inside `buf`.
    let name = unsafe { CStr::from_ptr(pw.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

fn pipe() -> io::Result<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: a valid two-int array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((fds[0], fds[1]))
}

/// The per-user directory for kiln's runtime files (sockets, pid files, locks that die with a
/// login): `$XDG_RUNTIME_DIR/kiln`, else `/tmp/kiln-UID` (mode 0700, as podman's), created
/// if missing. A `/tmp/kiln-UID` that is not a directory owned by the user with mode 0700 is
/// refused: someone else could have made it. Call with the host uid (before [`enter`], or
/// from [`ENV_HOST_UID`] after).
pub fn runtime_dir(host_uid: u32) -> io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|x| !x.is_empty()) {
        let d = runtime_dir_path(host_uid);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&d)?;
        return Ok(d);
    }
    let d = runtime_dir_path(host_uid);
    match std::fs::DirBuilder::new().mode(0o700).create(&d) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let m = std::fs::symlink_metadata(&d)?;
    // Inside the namespace the user's own uid reads as 0.
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !m.is_dir() || (m.uid() != host_uid && m.uid() != me) || m.permissions().mode() & 0o077 != 0
    {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a directory of yours with mode 0700; remove it or set XDG_RUNTIME_DIR",
                d.display()
            ),
        ));
    }
    Ok(d)
}

/// Where [`runtime_dir`] is: `$XDG_RUNTIME_DIR/kiln`, else `/tmp/kiln-UID`.
pub fn runtime_dir_path(host_uid: u32) -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        Some(x) => PathBuf::from(x).join("kiln"),
        None => PathBuf::from(format!("/tmp/kiln-{host_uid}")),
    }
}

/// The host uid of this kiln's user: [`ENV_HOST_UID`] in a rootless kiln, else the euid.
pub fn host_uid() -> u32 {
    std::env::var(ENV_HOST_UID)
        .ok()
        .and_then(|v| v.parse().ok())
        // SAFETY: geteuid has no preconditions.
        .unwrap_or_else(|| unsafe { libc::geteuid() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_by_name_or_uid() {
        let text =
            "# comment\nalice:100000:65536\n1001:165536:65536\nbob:231072:0\nalice:300000:10\n";
        assert_eq!(
            parse_ranges(text, "alice", 1000),
            [
                Range {
                    start: 100000,
                    count: 65536
                },
                Range {
                    start: 300000,
                    count: 10
                }
            ]
        );
        assert_eq!(parse_ranges(text, "carol", 1001).len(), 1);
        assert!(parse_ranges(text, "bob", 1002).is_empty());
    }

    #[test]
    fn map_arguments() {
        let r = [
            Range {
                start: 100000,
                count: 65536,
            },
            Range {
                start: 300000,
                count: 10,
            },
        ];
        assert_eq!(
            map_args(42, 1000, &r).join(" "),
            "42 0 1000 1 1 100000 65536 65537 300000 10"
        );
    }

    #[test]
    fn initial_map() {
        assert!(is_initial_uid_map("         0          0 4294967295\n"));
        assert!(!is_initial_uid_map("0 1000 1\n1 100000 65536\n"));
    }
}
