//! `exec`: a new process in a running container. It joins the container's namespaces (ipc,
//! uts, net, pid, mount — taken from its first process) and cgroups, takes the container's
//! capability bounding set and no_new_privs, its user (`-u` or the config's, resolved in its
//! root), environment (+ `-e`) and working directory (`-w` or the config's).
//!
//! Entering a PID namespace only applies to children, so the forked child enters everything,
//! forks once more and waits for that grandchild, which becomes the program; the child exits
//! with its status (128 + N for a signal).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, bail};
use kiln_store::Store;

use super::config::ContainerConfig;
use super::{ExecArgs, Exit};

/// The container's cgroup.procs files (every hierarchy its first process is in), opened for
/// writing.
fn cgroup_procs(pid: u32) -> anyhow::Result<Vec<OwnedFd>> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    let cg: Vec<(String, String, Vec<String>)> = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && (f[2] == "cgroup" || f[2] == "cgroup2")).then(|| {
                (
                    f[1].to_string(),
                    f[2].to_string(),
                    f[3].split(',').map(String::from).collect(),
                )
            })
        })
        .collect();
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("reading the cgroups of pid {pid}"))?;
    let mut out = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let mount = cg.iter().find(|(_, typ, opts)| {
            if ctrls.is_empty() {
                typ == "cgroup2"
            } else {
                typ == "cgroup" && ctrls.split(',').all(|c| opts.iter().any(|o| o == c))
            }
        });
        let Some((dir, _, _)) = mount else { continue };
        let procs = Path::new(dir)
            .join(path.trim_start_matches('/'))
            .join("cgroup.procs");
        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&procs) {
            out.push(f.into());
        }
    }
    Ok(out)
}

/// The seccomp filter of an exec: docker runs it under the container's profile, resolved for
/// the container's capabilities (its first process's bounding set); none when the container
/// runs unconfined.
fn exec_seccomp(
    cfg: &ContainerConfig,
    bounding: u64,
) -> anyhow::Result<Option<(Vec<libc::sock_filter>, u32)>> {
    use kiln_runtime::seccomp;
    let Some(profile) = cfg.seccomp_profile()? else {
        return Ok(None);
    };
    let caps: Vec<String> = kiln_runtime::capability_names()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < 64 && bounding & (1u64 << i) != 0)
        .map(|(_, n)| format!("CAP_{n}"))
        .collect();
    let resolved = profile.resolve(&caps)?;
    let native = seccomp::native_arch()
        .ok_or_else(|| anyhow::anyhow!("seccomp on {} is not supported", std::env::consts::ARCH))?;
    let filter = seccomp::compile(&resolved, native)?;
    Ok(Some((filter, seccomp::filter_flags(&resolved))))
}

/// (bounding capability mask, no_new_privs) of the container's first process.
fn caps_of(pid: u32) -> anyhow::Result<(u64, bool)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |k: &str| s.lines().find_map(|l| l.strip_prefix(k)).map(str::trim);
    let bnd = field("CapBnd:")
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .unwrap_or(0);
    let nnp = field("NoNewPrivs:") == Some("1");
    Ok((bnd, nnp))
}

pub fn exec(store: &Store, a: ExecArgs) -> anyhow::Result<()> {
    let c = store.find_container(&a.container)?;
    // docker's daemon checks the keys whether or not they will be used.
    let detach_keys = match &a.detach_keys {
        Some(k) => super::terminal::parse_detach_keys(k).map_err(|_| {
            eprintln!("Error response from daemon: Invalid escape keys ({k}) provided");
            anyhow::Error::from(crate::cmd_image::Reported)
        })?,
        None => super::terminal::parse_detach_keys(super::terminal::DEFAULT_DETACH_KEYS)?,
    };
    if !c.state.is_live() || c.pid == 0 {
        bail!("Container {} is not running", c.id);
    }
    if c.state == kiln_store::ContainerState::Paused {
        bail!(
            "Container {} is paused, unpause the container before exec",
            c.id
        );
    }
    let cfg: ContainerConfig = serde_json::from_str(&c.config).unwrap_or_default();
    let pid = c.pid;
    // Rootless, every kiln command has a user namespace of its own: the container's
    // namespaces belong to its supervisor's, which this one may not enter. The supervisor
    // runs the exec for it (see `serve_relay`).
    if kiln_runtime::userns::in_user_namespace() {
        let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/user")).ok();
        if ns(&pid.to_string()).is_none() || ns(&pid.to_string()) != ns("self") {
            return through_supervisor(store, &c.id, &a);
        }
    }
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    let user = a.user.clone().unwrap_or_else(|| cfg.user.clone());
    let mut who = match super::spec::identity(&root, &user) {
        Ok(w) => w,
        // docker: the message alone, exit 126.
        Err(e) => {
            eprintln!("{e}");
            return Err(Exit(126).into());
        }
    };
    // docker's exec joins the container's --group-add groups too.
    let added = super::run_flags::group_add(&root, &cfg.host.group_add)?;
    super::spec::add_groups(&mut who, added);
    let mut env = cfg.env.clone();
    for e in &a.env {
        let kv = if e.contains('=') {
            e.clone()
        } else if let Ok(v) = std::env::var(e) {
            format!("{e}={v}")
        } else {
            continue;
        };
        let key = kv.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", who.home));
    }
    let workdir = a
        .workdir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| {
            if cfg.working_dir.is_empty() {
                "/".into()
            } else {
                cfg.working_dir.clone()
            }
        });
    let workdir_c = std::ffi::CString::new(workdir.clone())?;
    let mut ns = Vec::new();
    for (name, flag) in [
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
        ("net", libc::CLONE_NEWNET),
        ("pid", libc::CLONE_NEWPID),
        ("mnt", libc::CLONE_NEWNS),
    ] {
        let p = format!("/proc/{pid}/ns/{name}");
        let f = std::fs::File::open(&p).with_context(|| format!("opening {p}"))?;
        ns.push((OwnedFd::from(f), flag));
    }
    let procs = cgroup_procs(pid)?;
    let (bounding, nnp) = caps_of(pid)?;
    let seccomp = exec_seccomp(&cfg, bounding)?;
    let ns_raw: Vec<(i32, i32)> = ns.iter().map(|(f, t)| (f.as_raw_fd(), *t)).collect();
    let procs_raw: Vec<i32> = procs.iter().map(|f| f.as_raw_fd()).collect();
    let groups: Vec<libc::gid_t> = who.additional_gids.clone();
    let rlimits = super::run_flags::exec_rlimits(&cfg.host.ulimits);
    let (uid, gid) = (who.uid, who.gid);
    let detach = a.detach;
    // -t: a pty made in the container's devpts by the program's process; its master comes
    // back on this socket pair.
    let tty = a.tty && !a.detach;
    if tty && a.interactive && !super::terminal::is_tty(0) {
        bail!("the input device is not a TTY");
    }
    let console = if tty {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .context("making the socket pair for the terminal")?;
        Some((OwnedFd::from(ours), OwnedFd::from(theirs)))
    } else {
        None
    };
    let console_fd = console.as_ref().map_or(-1, |(_, t)| t.as_raw_fd());
    let size = super::terminal::own_size().map(|(rows, cols)| libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    });
    if !env.iter().any(|e| e.starts_with("TERM=")) && tty {
        env.push("TERM=xterm".into());
    }

    let (program, args) = a
        .command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("exec needs a command"))?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).env_clear();
    for kv in &env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    if a.detach || tty {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    } else if !a.interactive {
        cmd.stdin(Stdio::null());
    }
    // SAFETY: only async-signal-safe system calls between fork and exec, on data prepared
    // above (raw fds, integers, a CString).
    unsafe {
        cmd.pre_exec(move || {
            let err = || std::io::Error::last_os_error();
            for &(fd, flag) in &ns_raw {
                if libc::setns(fd, flag) != 0 {
                    return Err(err());
                }
            }
            // Enter the PID namespace: the program is a child of this process.
            let child = libc::fork();
            if child < 0 {
                return Err(err());
            }
            if child > 0 && detach {
                // Detached: the program is reparented to the container's init.
                libc::_exit(0);
            }
            if child > 0 {
                let mut status = 0;
                loop {
                    let r = libc::waitpid(child, &mut status, 0);
                    if r == child {
                        break;
                    }
                    if r < 0 && *libc::__errno_location() != libc::EINTR {
                        libc::_exit(255);
                    }
                }
                if libc::WIFEXITED(status) {
                    libc::_exit(libc::WEXITSTATUS(status));
                }
                libc::_exit(128 + libc::WTERMSIG(status));
            }
            for &fd in &procs_raw {
                libc::write(fd, b"0".as_ptr().cast(), 1);
            }
            if console_fd >= 0 {
                let slave = open_pty(console_fd, size.as_ref(), uid)?;
                for i in 0..3 {
                    if libc::dup2(slave, i) < 0 {
                        return Err(err());
                    }
                }
                libc::close(slave);
            }
            // As the runtime (and runc) does: without no_new_privs the filter goes in while
            // CAP_SYS_ADMIN is still held, and every call after it is in docker's profile.
            if !nnp
                && let Some((filter, flags)) = &seccomp
                && kiln_runtime::seccomp::install(filter, *flags) < 0
            {
                return Err(err());
            }
            // The container's bounding set; nothing inheritable or ambient.
            for cap in 0..64u64 {
                if bounding & (1 << cap) == 0 {
                    libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
                }
            }
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            );
            for (resource, lim) in &rlimits {
                if libc::setrlimit(*resource, lim) != 0 {
                    return Err(err());
                }
            }
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
                return Err(err());
            }
            if libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                return Err(err());
            }
            if nnp && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(err());
            }
            if libc::chdir(workdir_c.as_ptr()) != 0 {
                // Told apart from the exec's own failure by the offset (std passes the
                // number through unchanged).
                let n = err().raw_os_error().unwrap_or(libc::EIO);
                return Err(std::io::Error::from_raw_os_error(CHDIR_FAILED + n));
            }
            if nnp
                && let Some((filter, flags)) = &seccomp
                && kiln_runtime::seccomp::install(filter, *flags) < 0
            {
                return Err(err());
            }
            Ok(())
        });
    }
    // The relay runs while `spawn` waits (it returns once the intermediate process ends).
    let relay = console.map(|(ours, theirs)| {
        let interactive = a.interactive;
        // SIGWINCH is taken by a thread of its own (blocked here first, so no other thread
        // swallows it) and resizes the master once it is known.
        let slot: Arc<OnceLock<Arc<std::fs::File>>> = Arc::new(OnceLock::new());
        let s = slot.clone();
        super::terminal::on_signals(&[libc::SIGWINCH], move |_| {
            use std::os::fd::AsFd;
            if let (Some(m), Some((rows, cols))) = (s.get(), super::terminal::own_size()) {
                let _ = super::terminal::set_size(m.as_fd(), rows, cols);
            }
        });
        let t = std::thread::spawn(move || relay_pty(&ours, interactive, detach_keys, &slot));
        (t, theirs)
    });
    let mut child = match cmd.spawn() {
        Ok(ch) => ch,
        Err(e) if e.raw_os_error().is_some_and(|n| n >= CHDIR_FAILED) => {
            let n = e.raw_os_error().unwrap_or(CHDIR_FAILED) - CHDIR_FAILED;
            eprintln!(
                "OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd ({workdir:?}) set in config.json failed: {}: unknown",
                go_errno_text(n)
            );
            return Err(Exit(126).into());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "OCI runtime exec failed: exec failed: unable to start container process: exec: {program:?}: executable file not found in $PATH: unknown"
            );
            return Err(Exit(126).into());
        }
        Err(e)
            if e.raw_os_error() == Some(libc::ENOENT) || e.raw_os_error() == Some(libc::EACCES) =>
        {
            eprintln!(
                "OCI runtime exec failed: exec failed: unable to start container process: exec: {program:?}: {e}: unknown"
            );
            return Err(Exit(126).into());
        }
        Err(e) => {
            eprintln!(
                "OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd ({workdir:?}) or entering the container: {e}: unknown"
            );
            return Err(Exit(126).into());
        }
    };
    drop(ns);
    drop(procs);
    if a.detach {
        return Ok(());
    }
    let status = child.wait()?;
    if let Some((t, theirs)) = relay {
        drop(theirs);
        let _ = t.join();
    }
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(Exit(code as u8).into()),
        None => Err(Exit(255).into()),
    }
}

/// In the program's process (after fork, before exec; async-signal-safe calls only): a pty
/// from the container's /dev/ptmx, its master sent on `sock`, the slave made the controlling
/// terminal of a new session and returned.
///
/// # Safety
/// Only in a forked child, as `pre_exec` runs it.
unsafe fn open_pty(
    sock: libc::c_int,
    size: Option<&libc::winsize>,
    uid: u32,
) -> std::io::Result<libc::c_int> {
    let err = || std::io::Error::last_os_error();
    // SAFETY (whole body): raw syscalls on our own fds and stack values.
    unsafe {
        let master = libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if master < 0 {
            return Err(err());
        }
        let unlock: libc::c_int = 0;
        if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) < 0 {
            return Err(err());
        }
        let slave = libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
        if slave < 0 {
            return Err(err());
        }
        if let Some(ws) = size {
            libc::ioctl(slave, libc::TIOCSWINSZ, ws as *const libc::winsize);
        }
        libc::fchown(slave, uid, u32::MAX);
        if kiln_runtime::send_fd(sock, master) < 0 {
            return Err(err());
        }
        libc::close(master);
        libc::close(sock);
        if libc::setsid() < 0 || libc::ioctl(slave, libc::TIOCSCTTY, 0) < 0 {
            return Err(err());
        }
        Ok(slave)
    }
}

/// Relays this terminal and the exec's pty master (received on `sock`) until the master
/// reads EIO (every slave closed). With `interactive`, the detach keys in the input end the
/// command as docker's does (`read escape sequence`, exit 1) and leave the program running.
fn relay_pty(
    sock: &OwnedFd,
    interactive: bool,
    detach_keys: Vec<u8>,
    slot: &OnceLock<Arc<std::fs::File>>,
) {
    use std::io::{Read, Write};
    let Ok(master) = kiln_runtime::receive_fd_blocking(sock) else {
        return;
    };
    let master = Arc::new(std::fs::File::from(master));
    let _ = slot.set(master.clone());
    let raw = Arc::new(std::sync::Mutex::new(
        interactive.then(super::terminal::RawMode::enter).flatten(),
    ));
    if interactive {
        let m = master.clone();
        let raw = raw.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut stdin = std::io::stdin().lock();
            let mut keys = super::terminal::DetachMatcher::new(detach_keys);
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let (pass, detached) = keys.feed(&buf[..n]);
                        if (&*m).write_all(&pass).is_err() {
                            return;
                        }
                        if detached {
                            // The terminal as it was, then the pty left to a holder.
                            drop(raw.lock().map(|mut r| r.take()));
                            detach(&m);
                        }
                    }
                }
            }
        });
    }
    let mut out = std::io::stdout();
    let mut buf = [0u8; 8192];
    loop {
        match (&*master).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let _ = out.write_all(&buf[..n]);
                let _ = out.flush();
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    drop(raw.lock().map(|mut r| r.take()));
}

/// Detaching from `exec -it`: a process of its own keeps the pty master open and reads (and
/// drops) the program's output until every slave is closed, so the program runs on as docker
/// leaves it; this command says so as docker's does and exits 1.
fn detach(master: &std::fs::File) -> ! {
    let fd = master.as_raw_fd();
    // SAFETY: after fork only async-signal-safe calls (setsid, open, dup2, read, _exit) on
    // descriptors this process holds.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::setsid();
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if null >= 0 {
                for i in 0..3 {
                    libc::dup2(null, i);
                }
            }
            let mut buf = [0u8; 4096];
            loop {
                let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                if n > 0 {
                    continue;
                }
                if n < 0 && *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                libc::_exit(0);
            }
        }
    }
    eprintln!("read escape sequence");
    std::process::exit(1);
}

/// The socket in the container's directory where a rootless supervisor takes execs.
const RELAY_SOCKET: &str = "exec.sock";

/// Runs `f` with a short path to the relay socket of the container whose directory is `dir`
/// (a socket path must fit in 108 bytes).
fn relay_path<T>(dir: &Path, f: impl FnOnce(&Path) -> std::io::Result<T>) -> std::io::Result<T> {
    let d = std::fs::File::open(dir)?;
    let p = std::path::PathBuf::from(format!("/proc/self/fd/{}/{RELAY_SOCKET}", d.as_raw_fd()));
    let r = f(&p);
    drop(d);
    r
}

/// Rootless `exec` of a container another kiln command started: this process's stdin,
/// stdout and stderr go to the container's supervisor (SCM_RIGHTS), which runs `kiln exec`
/// with them in its own user namespace, and sends back the exit code.
fn through_supervisor(store: &Store, id: &str, a: &ExecArgs) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    let dir = store.container_dir(id);
    let sock =
        relay_path(&dir, |p| std::os::unix::net::UnixStream::connect(p)).with_context(|| {
            format!(
                "kiln exec rootless: cannot reach the supervisor of container {id} at {} \
                 (a container started by an older kiln has none: restart it)",
                dir.join(RELAY_SOCKET).display()
            )
        })?;
    let mut argv: Vec<String> = Vec::new();
    if a.detach {
        argv.push("--detach".into());
    }
    if a.interactive {
        argv.push("--interactive".into());
    }
    if a.tty {
        argv.push("--tty".into());
    }
    if let Some(k) = &a.detach_keys {
        argv.extend(["--detach-keys".into(), k.clone()]);
    }
    for e in &a.env {
        // `-e NAME` takes this process's value (the supervisor's environment is not the user's).
        if e.contains('=') {
            argv.extend(["--env".into(), e.clone()]);
        } else if let Ok(v) = std::env::var(e) {
            argv.extend(["--env".into(), format!("{e}={v}")]);
        }
    }
    if let Some(u) = &a.user {
        argv.extend(["--user".into(), u.clone()]);
    }
    if let Some(w) = &a.workdir {
        argv.extend(["--workdir".into(), w.clone()]);
    }
    argv.push(id.to_string());
    argv.extend(a.command.iter().cloned());
    for fd in 0..3 {
        // SAFETY: the socket and the standard descriptors are open in this process.
        if unsafe { kiln_runtime::send_fd(sock.as_raw_fd(), fd) } < 0 {
            return Err(std::io::Error::last_os_error())
                .context("kiln exec rootless: passing the standard streams to the supervisor");
        }
    }
    let mut line = serde_json::to_vec(&argv)?;
    line.push(b'\n');
    (&sock)
        .write_all(&line)
        .context("kiln exec rootless: writing to the supervisor")?;
    let mut answer = String::new();
    std::io::BufReader::new(&sock)
        .read_line(&mut answer)
        .context("kiln exec rootless: reading the exit code from the supervisor")?;
    let code: i32 = answer.trim().parse().map_err(|_| {
        anyhow::anyhow!("kiln exec rootless: the supervisor of container {id} went away")
    })?;
    if code == 0 {
        Ok(())
    } else {
        Err(Exit(code.clamp(0, 255) as u8).into())
    }
}

/// The supervisor's side of [`through_supervisor`], rootless only: listens on the container
/// directory's `exec.sock` (removed when the returned guard drops) and runs each request as
/// `kiln exec` (a child of the supervisor, so in its user namespace) with the client's
/// standard streams.
pub(super) fn serve_relay(store_root: &Path, dir: &Path) -> anyhow::Result<RelayGuard> {
    use std::io::{BufRead, Write};
    let listener = relay_path(dir, |p| {
        let _ = std::fs::remove_file(p);
        std::os::unix::net::UnixListener::bind(p)
    })
    .with_context(|| format!("listening on {}", dir.join(RELAY_SOCKET).display()))?;
    let exe = std::fs::read_link("/proc/self/exe").context("finding kiln's own binary")?;
    let root = store_root.to_path_buf();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (exe, root) = (exe.clone(), root.clone());
            std::thread::spawn(move || {
                let fd = OwnedFd::from(match conn.try_clone() {
                    Ok(c) => c,
                    Err(_) => return,
                });
                let mut stdio = Vec::new();
                for _ in 0..3 {
                    match kiln_runtime::receive_fd_blocking(&fd) {
                        Ok(f) => stdio.push(f),
                        Err(_) => return,
                    }
                }
                let mut line = String::new();
                if std::io::BufReader::new(&conn).read_line(&mut line).is_err() {
                    return;
                }
                let Ok(argv) = serde_json::from_str::<Vec<String>>(line.trim()) else {
                    return;
                };
                let mut it = stdio.into_iter();
                let (i, o, e) = (it.next(), it.next(), it.next());
                let (Some(i), Some(o), Some(e)) = (i, o, e) else {
                    return;
                };
                let code = std::process::Command::new(&exe)
                    .arg("--root")
                    .arg(&root)
                    .arg("exec")
                    .args(&argv)
                    .stdin(Stdio::from(i))
                    .stdout(Stdio::from(o))
                    .stderr(Stdio::from(e))
                    .status()
                    .map(|st| {
                        use std::os::unix::process::ExitStatusExt;
                        st.code().unwrap_or(128 + st.signal().unwrap_or(0))
                    })
                    .unwrap_or(126);
                let _ = (&conn).write_all(format!("{code}\n").as_bytes());
            });
        }
    });
    Ok(RelayGuard(dir.join(RELAY_SOCKET)))
}

/// Removes the relay socket when the supervisor is done.
pub(super) struct RelayGuard(std::path::PathBuf);

impl Drop for RelayGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The error number a failed `chdir` in the exec'd child reports is offset by this.
const CHDIR_FAILED: i32 = 1 << 16;

/// An errno as Go prints it: `no such file or directory`.
fn go_errno_text(n: i32) -> String {
    let s = std::io::Error::from_raw_os_error(n).to_string();
    let s = s.split(" (os error").next().unwrap_or(&s);
    s.to_lowercase()
}
