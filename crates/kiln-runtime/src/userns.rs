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
        "rootless kiln needs a subordinate {kind} range for user {user} in {file}, and there is none.\n{fix}"
    )]
    NoSubordinateRange {
        kind: &'static str,
        user: String,
        file: &'static str,
        /// What to add, as root: the `usermod` command and the line for the file(s).
        fix: String,
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
/// [`ENV_HOST_UID`], and the result holds the warnings for the caller to print (subordinate
/// ranges that overlap another user's, checked when the namespace is made).
pub fn enter() -> Result<Vec<String>, UsernsError> {
    // SAFETY: geteuid/getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 {
        return Ok(Vec::new());
    }
    let user = user_name(uid).unwrap_or_else(|| uid.to_string());
    let subuid_text = read_file("/etc/subuid")?;
    let subgid_text = read_file("/etc/subgid")?;
    let subuid = parse_ranges(&subuid_text, &user, uid);
    let subgid = parse_ranges(&subgid_text, &user, uid);
    if let Some(e) = missing_range(&user, &subuid_text, &subgid_text, &subuid, &subgid) {
        return Err(e);
    }
    let (rt, rt_fd) = open_runtime_dir(uid).map_err(|source| UsernsError::RuntimeDir {
        dir: runtime_dir_path(uid).display().to_string(),
        source,
    })?;
    let rt_err = |source| UsernsError::RuntimeDir {
        dir: rt.display().to_string(),
        source,
    };
    // One kiln at a time decides whether to join or to make the namespace. Both files are
    // opened in the checked directory (by its descriptor) and never through a symlink; the
    // pid file is opened before anything is made, so a bad one stops kiln before a holder
    // exists that nothing would record.
    let lock = open_in(&rt_fd, &rt, "userns.lock").map_err(rt_err)?;
    lock.lock().map_err(rt_err)?;
    let mut pid_file = open_in(&rt_fd, &rt, HOLDER_PID_FILE).map_err(rt_err)?;
    if let Some(holder) = read_holder(&mut pid_file)
        && join(holder).is_ok()
    {
        return finish_entry(uid).map(|()| Vec::new());
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
    let mut warnings = Vec::new();
    for (kind, file, text, mine) in [
        ("uid", "/etc/subuid", &subuid_text, &subuid),
        ("gid", "/etc/subgid", &subgid_text, &subgid),
    ] {
        for (other, r) in overlaps(text, &user, uid, mine) {
            warnings.push(format!(
                "the subordinate {kind} range {}-{} of user {user} in {file} overlaps user \
                 {other}'s: each of you can reach the files the other's containers and layers \
                 own; give every user a range of their own",
                r.start,
                r.start + r.count - 1
            ));
        }
    }
    create(uid, gid, &user, &subuid, &subgid, &newuidmap, &newgidmap)?;
    let holder = spawn_holder().map_err(|source| UsernsError::Unshare {
        what: "fork the namespace holder",
        hint: "",
        source,
    })?;
    let start = start_time(holder).unwrap_or(0);
    {
        use std::io::Write;
        use std::os::unix::fs::FileExt;
        pid_file
            .set_len(0)
            .and_then(|()| pid_file.write_all_at(format!("{holder} {start}\n").as_bytes(), 0))
            .and_then(|()| pid_file.flush())
            .map_err(rt_err)?;
    }
    drop(lock);
    finish_entry(uid)?;
    Ok(warnings)
}

/// The file, in the runtime directory, naming the holder: `PID STARTTIME`.
pub const HOLDER_PID_FILE: &str = "userns.pid";

/// Joined or made: a mount namespace of this process's own (owned by the user namespace),
/// uid and gid 0, the marker in the environment.
fn finish_entry(uid: u32) -> Result<(), UsernsError> {
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
    Ok(())
}

/// The holder recorded in `pid_file`, if that process still runs (same pid and start time).
fn read_holder(pid_file: &mut std::fs::File) -> Option<i32> {
    use std::io::Read;
    let mut text = String::new();
    pid_file.read_to_string(&mut text).ok()?;
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

/// A file's text, empty when it does not exist (no ranges).
fn read_file(file: &'static str) -> Result<String, UsernsError> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(UsernsError::Read { file, source }),
    }
}

/// The ranges of user `user` (uid `uid`) in a subordinate ID file's text (`name:start:count`
/// or `uid:start:count` lines).
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
        // IDs are u32: a range past 2^32 is not one the kernel could map (and a hostile
        // line must not overflow the arithmetic on ranges).
        let start = u64::from(f.next()?.trim().parse::<u32>().ok()?);
        let count = u64::from(f.next()?.trim().parse::<u32>().ok()?);
        (count > 0 && start + count <= 1 << 32).then_some((who, Range { start, count }))
    })
}

/// A start for a suggested 65536-wide range that overlaps nobody's in either file: 100000, or
/// above the highest range there.
fn free_start(subuid: &str, subgid: &str) -> u64 {
    all_ranges(subuid)
        .chain(all_ranges(subgid))
        .map(|(_, r)| r.start + r.count)
        .fold(100_000, u64::max)
}

fn overlap(a: Range, b: Range) -> bool {
    a.start < b.start + b.count && b.start < a.start + a.count
}

/// The error for a user without a range in one file or both, with the exact fix: where one
/// file has a range, the other gets the same IDs when nobody there has them (uid and gid
/// ranges that match, as `useradd` makes them); otherwise a free 65536-wide range.
fn missing_range(
    user: &str,
    subuid_text: &str,
    subgid_text: &str,
    subuid: &[Range],
    subgid: &[Range],
) -> Option<UsernsError> {
    let free = free_start(subuid_text, subgid_text);
    let fresh = Range {
        start: free,
        count: 65536,
    };
    let (kind, file, range, what, command, files) = match (subuid.first(), subgid.first()) {
        (Some(_), Some(_)) => return None,
        (None, None) => (
            "uid",
            "/etc/subuid",
            fresh,
            "one (65536 IDs that no other user's range overlaps)".to_string(),
            format!(
                "usermod --add-subuids {0}-{1} --add-subgids {0}-{1} {user}",
                fresh.start,
                fresh.start + fresh.count - 1
            ),
            "both /etc/subuid and /etc/subgid",
        ),
        (Some(&have), None) | (None, Some(&have)) => {
            let (kind, file, flag, other_text, other_file) = if subgid.is_empty() {
                (
                    "gid",
                    "/etc/subgid",
                    "--add-subgids",
                    subgid_text,
                    "/etc/subuid",
                )
            } else {
                (
                    "uid",
                    "/etc/subuid",
                    "--add-subuids",
                    subuid_text,
                    "/etc/subgid",
                )
            };
            let same_is_free = !all_ranges(other_text).any(|(_, r)| overlap(r, have));
            let (range, what) = if same_is_free {
                (
                    have,
                    format!("the same IDs as the user's range in {other_file}"),
                )
            } else {
                (
                    fresh,
                    "one (65536 IDs that no other user's range overlaps; the IDs of the \
                     user's other range are taken there)"
                        .to_string(),
                )
            };
            (
                kind,
                file,
                range,
                what,
                format!(
                    "usermod {flag} {}-{} {user}",
                    range.start,
                    range.start + range.count - 1
                ),
                file,
            )
        }
    };
    Some(UsernsError::NoSubordinateRange {
        kind,
        user: user.to_string(),
        file,
        fix: format!(
            "As root, add {what}:\n    {command}\nor add the line\n    {user}:{}:{}\nto {files}",
            range.start, range.count
        ),
    })
}

/// Other users' ranges in `text` that overlap one of `mine` (user `user`, uid `uid`).
fn overlaps(text: &str, user: &str, uid: u32, mine: &[Range]) -> Vec<(String, Range)> {
    let uid = uid.to_string();
    let mut out = Vec::new();
    for (who, r) in all_ranges(text) {
        if who == user || who == uid {
            continue;
        }
        if let Some(m) = mine.iter().find(|m| overlap(**m, r)) {
            out.push((who.to_string(), *m));
        }
    }
    out
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
/// (0700) if missing. Either one must be a directory owned by the user with mode 0700, not a
/// symlink, or it is refused with what to fix: someone else could have made it, to read or
/// replace the holder's pid file. A set `XDG_RUNTIME_DIR` that does not exist or where the user
/// cannot create `kiln` is refused too, saying so. Call with the host uid (before [`enter`],
/// or from [`ENV_HOST_UID`] after).
pub fn runtime_dir(host_uid: u32) -> io::Result<PathBuf> {
    open_runtime_dir(host_uid).map(|(d, _)| d)
}

/// [`runtime_dir`], and the directory open (the descriptor that was checked: the files in it
/// are opened through it, so a rename of the path after the check changes nothing).
fn open_runtime_dir(host_uid: u32) -> io::Result<(PathBuf, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let d = runtime_dir_path(host_uid);
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty());
    let fallback = format!("/tmp/kiln-{host_uid}");
    let other_choice = match &xdg {
        Some(_) => format!("or unset XDG_RUNTIME_DIR to use {fallback}"),
        None => "or set XDG_RUNTIME_DIR to a directory of yours".to_string(),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&d) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            let Some(x) = &xdg else { return Err(e) };
            let x = Path::new(x).display();
            let msg = if e.kind() == io::ErrorKind::NotFound {
                format!(
                    "XDG_RUNTIME_DIR is {x}, which does not exist (common after su or runuser without a login session): create it as a directory of yours with mode 0700 (mkdir -m 0700 {x}), {other_choice}"
                )
            } else {
                format!(
                    "XDG_RUNTIME_DIR is {x}, where this user cannot create {} ({e}): set XDG_RUNTIME_DIR to a directory of yours, {other_choice}",
                    d.display()
                )
            };
            return Err(io::Error::new(e.kind(), msg));
        }
    }
    let refuse = |what: String, fix: String| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is {what}, not a directory of yours with mode 0700 (someone else could read or replace kiln's files there): {fix}",
                d.display()
            ),
        )
    };
    let remove = format!("remove it (as its owner or root), {other_choice}");
    let c = std::ffi::CString::new(d.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    // SAFETY: a valid NUL-terminated path; the flags make a descriptor of a directory only.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        // With O_DIRECTORY, a symlink gives ENOTDIR rather than ELOOP.
        let link = std::fs::symlink_metadata(&d).is_ok_and(|m| m.file_type().is_symlink());
        return Err(match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) if link => refuse("a symbolic link".into(), remove),
            Some(libc::ENOTDIR) => refuse("not a directory".into(), remove),
            Some(libc::EACCES) => {
                refuse(format!("a directory this user cannot open ({e})"), remove)
            }
            _ => e,
        });
    }
    // SAFETY: a descriptor just opened, owned by nothing else.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let m = std::fs::File::from(fd.try_clone()?).metadata()?;
    // Inside the namespace the user's own uid reads as 0.
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if m.uid() != host_uid && m.uid() != me {
        return Err(refuse(format!("owned by uid {}", m.uid()), remove));
    }
    if m.mode() & 0o077 != 0 {
        return Err(refuse(
            format!("mode {:04o}", m.mode() & 0o7777),
            format!("chmod 0700 {}", d.display()),
        ));
    }
    Ok((d, fd))
}

/// `name` in the runtime directory `dir` (open as `dir_fd`), opened read-write and created
/// (0600) if missing; never through a symlink (`O_NOFOLLOW`), and only a regular file.
fn open_in(dir_fd: &std::os::fd::OwnedFd, dir: &Path, name: &str) -> io::Result<std::fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let path = dir.join(name);
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the name"))?;
    // SAFETY: a valid directory descriptor and NUL-terminated name; the mode is an int.
    let fd = unsafe {
        libc::openat(
            dir_fd.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
            0o600 as libc::c_uint,
        )
    };
    let not_followed = |what: &str| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is {what}, which kiln does not follow or use: remove it",
                path.display()
            ),
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ELOOP) => not_followed("a symbolic link"),
            _ => io::Error::new(e.kind(), format!("{}: {e}", path.display())),
        });
    }
    // SAFETY: a descriptor just opened, owned by nothing else.
    let f = unsafe { std::fs::File::from_raw_fd(fd) };
    if !f.metadata()?.is_file() {
        return Err(not_followed("not a regular file"));
    }
    Ok(f)
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

    fn err_text(e: Option<UsernsError>) -> String {
        e.expect("an error").to_string()
    }

    #[test]
    fn no_range_at_all_gets_one_free_range_in_both_files() {
        let uids = "alice:100000:65536\n";
        let gids = "alice:100000:65536\nbob:300000:65536\n";
        let t = err_text(missing_range("carol", uids, gids, &[], &[]));
        assert!(
            t.contains("usermod --add-subuids 365536-431071 --add-subgids 365536-431071 carol"),
            "{t}"
        );
        assert!(t.contains("carol:365536:65536"), "{t}");
        assert!(t.contains("both /etc/subuid and /etc/subgid"), "{t}");
    }

    #[test]
    fn only_subgid_missing_gets_the_uid_range_in_subgid_alone() {
        let uids = "alice:100000:65536\ncarol:165536:65536\n";
        let gids = "alice:100000:65536\n";
        let mine = [Range {
            start: 165536,
            count: 65536,
        }];
        let t = err_text(missing_range("carol", uids, gids, &mine, &[]));
        assert!(
            t.contains("subordinate gid range for user carol in /etc/subgid"),
            "{t}"
        );
        assert!(
            t.contains("usermod --add-subgids 165536-231071 carol"),
            "{t}"
        );
        assert!(!t.contains("--add-subuids"), "{t}");
        assert!(t.contains("carol:165536:65536\nto /etc/subgid"), "{t}");
        assert!(
            t.contains("the same IDs as the user's range in /etc/subuid"),
            "{t}"
        );
    }

    #[test]
    fn only_subuid_missing_and_its_gids_taken_there_gets_a_free_range() {
        let uids = "bob:200000:65536\n";
        let gids = "carol:200000:65536\nbob:500000:65536\n";
        let mine = [Range {
            start: 200000,
            count: 65536,
        }];
        let t = err_text(missing_range("carol", uids, gids, &[], &mine));
        assert!(
            t.contains("usermod --add-subuids 565536-631071 carol"),
            "{t}"
        );
        assert!(t.contains("to /etc/subuid"), "{t}");
    }

    #[test]
    fn both_ranges_present_is_no_error() {
        let r = [Range { start: 1, count: 2 }];
        assert!(missing_range("a", "", "", &r, &r).is_none());
    }

    #[test]
    fn hostile_lines_are_skipped_not_overflowed() {
        let text = "a:18446744073709551615:2\na:4294967295:2\na:4294967295:1\na:-1:5\na:5:0\n";
        let got = parse_ranges(text, "a", 1);
        assert_eq!(
            got,
            [Range {
                start: 4294967295,
                count: 1
            }]
        );
        assert_eq!(free_start(text, ""), 1 << 32);
    }

    #[test]
    fn overlapping_ranges_are_found_by_name_and_uid() {
        let text = "alice:100000:65536\nbob:150000:65536\n1001:165536:10\ncarol:300000:5\n";
        let mine = [Range {
            start: 100000,
            count: 65536,
        }];
        let found = overlaps(text, "alice", 1000, &mine);
        assert_eq!(
            found.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>(),
            ["bob"]
        );
        assert!(
            overlaps(
                text,
                "carol",
                1002,
                &[Range {
                    start: 300000,
                    count: 5
                }]
            )
            .is_empty()
        );
    }

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
