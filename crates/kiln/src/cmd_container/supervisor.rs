//! The supervisor: the one process that owns a running container.
//!
//! `kiln run` (foreground) and `start -a` supervise in the command's own process; `run -d` and
//! `start` leave a detached supervisor: kiln re-executed as `__container-supervise --detach`,
//! which starts itself once more (so the supervisor is not a session leader and is reparented
//! to init) in a new session with its stdio on /dev/null, then exits. The supervisor reports
//! "started" or the start error on an inherited pipe (fd 3, `KILN_READY_FD`), which the
//! command reads to print the ID or docker's error and exit code.
//!
//! The supervisor enters a private mount namespace, mounts the container's root there (so no
//! mount of a container is ever visible on the host, and all of them go when the supervisor
//! and the container are gone), makes the cgroups, clones the container, sets up its network
//! and published ports, records the container as running (pid, its own pid + start time), and
//! copies stdout/stderr into the json-file log. SIGINT, SIGTERM, SIGHUP and SIGQUIT it receives
//! are forwarded to the container. When the container's first process exits it records the
//! exit code and time, stops the port proxy, unmounts, removes the cgroups, and with `--rm`
//! removes the container. The container's processes get SIGKILL when the supervisor dies
//! (parent-death signal on its PID 1, whose death ends its PID namespace), so a killed
//! supervisor leaves no process; the store then reads the container as exited.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context;
use kiln_runtime::{Executor, ExitStatus, Stdio};
use kiln_store::Store;

use super::cgroup::Cgroups;
use super::config::ContainerConfig;
use super::{attach, health, io_stats, logfile, net, rootfs, spec, volume};

/// How the supervisor is attached.
pub enum Mode {
    /// In the command's process: output also goes to its stdout/stderr; `stdin` passes its
    /// standard input to the container (`-i`).
    Foreground { stdin: bool },
    /// Detached: `ready` receives the start report; with `attach_first`, the process starts
    /// once a client is attached (`run -t`, `start -a`), so it misses none of the output.
    Detached {
        ready: Option<File>,
        attach_first: bool,
    },
}

/// Why a start failed: docker's exit code (125, 126, 127) and message.
#[derive(Debug)]
pub struct StartError {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for StartError {}

/// The start report line on the ready pipe.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub code: i32,
    pub message: String,
    /// What the container runs without (rootless: no cgroup limits; no outbound network),
    /// printed by the command as docker's `WARNING:` lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn start_error(code: i32, e: impl std::fmt::Display) -> StartError {
    StartError {
        code,
        message: e.to_string(),
    }
}

fn anyhow_message(e: &anyhow::Error) -> String {
    crate::cmd_image::message(e)
}

/// The container's log file.
pub fn log_path(store: &Store, id: &str) -> std::path::PathBuf {
    store.container_dir(id).join(format!("{id}-json.log"))
}

/// Supervises container `id` until it exits; returns its exit code. A start failure is a
/// [`StartError`] (recorded in the container's row, and sent on the ready pipe when detached).
pub fn supervise(store: &Store, id: &str, mut mode: Mode) -> Result<i32, StartError> {
    // First, before any thread: a relayed or forwarded signal must never hit a thread that
    // lets it through (its default action would end the supervisor, and the container with
    // it). pasta's keeper, the port proxy and the warm-up start threads during setup.
    block_relay_signal();
    let sigset = block_forwarded_signals();
    let report = |mode: &mut Mode, r: &Report| {
        if let Mode::Detached { ready, .. } = mode
            && let Some(mut f) = ready.take()
        {
            let mut line = serde_json::to_vec(r).unwrap_or_default();
            line.push(b'\n');
            let _ = f.write_all(&line);
        }
    };
    match run(store, id, &mut mode, &report, sigset) {
        Ok(code) => Ok(code),
        Err(e) => {
            report(
                &mut mode,
                &Report {
                    code: e.code,
                    message: e.message.clone(),
                    warnings: Vec::new(),
                },
            );
            Err(e)
        }
    }
}

/// Host files a container sees as /etc/hosts, /etc/hostname and /etc/resolv.conf.
fn write_etc(dir: &Path, config: &ContainerConfig, hostname: &str) -> anyhow::Result<()> {
    let host_mode = config.host.network_mode == "host";
    let mut hosts = if host_mode {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.0.1\t{hostname}\n"
        )
    };
    for h in &config.host.extra_hosts {
        if let Some((name, ip)) = h.split_once(':').or_else(|| h.split_once('=')) {
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    let resolv = super::run_flags::resolv_conf(
        &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        &super::run_flags::DnsFlags {
            dns: &config.host.dns,
            dns_search: &config.host.dns_search,
            dns_options: &config.host.dns_options,
        },
    );
    for (f, text) in [
        ("hosts", hosts),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv),
    ] {
        let p = dir.join(f);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn host_hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Blocks the signals the supervisor forwards (before any thread exists, so every thread
/// inherits the mask; the runtime's child clears it) and returns them.
pub(super) fn block_forwarded_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local value, then pthread_sigmask of this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// The real-time signal that carries another signal's number (in `si_value`) for the
/// supervisor to deliver to the container's first process: rootless, `kiln stop`, `kill` and
/// `rm -f` run in a user namespace of their own, a sibling of the supervisor's, and the kernel
/// refuses them a signal to a container process whose uid is one of the user's subordinate
/// ids (it would need CAP_KILL in the supervisor's namespace); the supervisor, owned by the
/// user, may be signalled, and it may signal its container.
pub fn relay_signal() -> libc::c_int {
    libc::SIGRTMIN() + 3
}

fn block_relay_signal() {
    // SAFETY: sigset manipulation on a local value, then pthread_sigmask of this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, relay_signal());
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Forwards the blocked signals to the process whose pid is in `pid` (0: none running), and
/// the signal a [`relay_signal`] names. A signal sent to the supervisor itself (not relayed by
/// `kiln stop`/`kill`) sets `signalled`: a detached supervisor being stopped (the system
/// shutting down) does not restart its container afterwards, as docker's daemon does not.
/// A signal that arrives before the process runs (setup, a restart's back-off) waits in
/// `pending`, and the start cancels itself (see `run_once`). One that races the start (the
/// process just exec'd, so it has no handlers and the kernel would drop a signal to its PID 1)
/// kills it ([`cancel_if_pending`]).
fn forward_signals(
    mut set: libc::sigset_t,
    pid: Arc<AtomicU32>,
    pending: Arc<AtomicI32>,
    signalled: Arc<AtomicBool>,
) {
    // SAFETY: adds to a local sigset (the relay signal is blocked since `supervise` began).
    unsafe { libc::sigaddset(&mut set, relay_signal()) };
    std::thread::spawn(move || {
        loop {
            // SAFETY: siginfo_t is plain data, filled by sigwaitinfo.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: sigwaitinfo on a set blocked in every thread of this process.
            let mut sig = unsafe { libc::sigwaitinfo(&set, &mut info) };
            if sig < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return;
            }
            if sig == relay_signal() {
                // Only what sigqueue sent (SI_QUEUE) carries a number.
                if info.si_code != libc::SI_QUEUE {
                    continue;
                }
                // SAFETY: a SI_QUEUE siginfo has si_value.
                sig = unsafe { info.si_value() }.sival_ptr as usize as libc::c_int;
                if !(1..=64).contains(&sig) {
                    continue;
                }
            } else {
                signalled.store(true, Ordering::SeqCst);
            }
            let p = pid.load(Ordering::SeqCst);
            if p != 0 {
                deliver_when_receivable(p, sig);
            } else {
                pending.store(sig, Ordering::SeqCst);
                // The process may have started meanwhile, its start seeing no signal yet.
                cancel_if_pending(&pid, &pending);
            }
        }
    });
}

/// Sends `sig` to the container's first process once it can receive it. The kernel drops a
/// signal to a PID namespace's init that neither handles nor blocks it; a program that was
/// exec'd a moment ago has not set up its handlers yet (tini, a shell's `trap`), so for up to
/// 100 ms the signal waits until `/proc/PID/status` shows it caught or blocked. A program
/// that never handles it (`sleep` as PID 1) gets it then and ignores it, as under docker.
fn deliver_when_receivable(pid: u32, sig: libc::c_int) {
    let receivable = || -> bool {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return true;
        };
        let mask = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .unwrap_or(0)
        };
        let bit = 1u64 << (sig - 1);
        (mask("SigCgt:") | mask("SigBlk:")) & bit != 0
    };
    let t0 = std::time::Instant::now();
    while !receivable() && t0.elapsed() < Duration::from_millis(100) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: kill of our own child (not yet reaped while the pid is set).
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// Kills the process in `pid` (SIGKILL) when a signal waits in `pending`: it came while the
/// process was starting. Both the forwarder and the start call it after their store, and the
/// swap gives the signal to one. Returns the signal it found.
fn cancel_if_pending(pid: &AtomicU32, pending: &AtomicI32) -> i32 {
    let p = pid.load(Ordering::SeqCst);
    if p == 0 {
        return 0;
    }
    let sig = pending.swap(0, Ordering::SeqCst);
    if sig != 0 {
        // SAFETY: kill of our own child (not yet reaped while the pid is set).
        unsafe { libc::kill(p as libc::pid_t, libc::SIGKILL) };
    }
    sig
}

/// The file `stop`, `kill` and `rm -f` leave in the container's directory before they
/// signal it: the restart policy does not apply to what the user stopped.
pub const MANUAL_STOP: &str = "stopped-by-user";

/// `containers/<id>/supervisor.lock`: the supervisor holds an exclusive `flock` on it for its
/// whole life, so two supervisors (two concurrent `start`s or `restart`s) never run one
/// container on one upper, and `rm` can tell a container that is starting from a stopped one.
pub const SUPERVISOR_LOCK: &str = "supervisor.lock";

/// Takes `dir`'s supervisor lock without waiting: None when another process holds it.
pub fn try_supervisor_lock(dir: &Path) -> std::io::Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(SUPERVISOR_LOCK))?;
    // SAFETY: flock on a file this function owns (opened O_CLOEXEC by std: no container or
    // pasta process inherits it).
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(Some(f))
}

/// The file `restart` leaves beside [`MANUAL_STOP`]: the supervisor that stops keeps a `--rm`
/// container (docker's restart does not remove it); the next start removes the file.
pub const RESTART_REQUESTED: &str = "restart-requested";

/// `containers/<id>/exit-code`: made empty at each start, the exit code written into the same
/// file before the row is updated or removed, so a `wait` that opened it first reads the code
/// of a `--rm` container whose row and directory are gone.
pub const EXIT_CODE: &str = "exit-code";

/// `containers/<id>/oom-killed`: there when the kernel's OOM killer killed a process of the
/// container during its last run (`State.OOMKilled`).
pub const OOM_KILLED: &str = "oom-killed";

fn write_exit_code(dir: &Path, code: i32) {
    let _ = std::fs::write(dir.join(EXIT_CODE), code.to_string());
}

/// What one run of the container's process needs from the supervisor's setup.
struct Setup<'a> {
    store: &'a Store,
    id: &'a str,
    config: &'a ContainerConfig,
    spec: &'a kiln_runtime::oci_spec::runtime::Spec,
    cg: &'a Cgroups,
    sink: &'a logfile::Sink,
    hub: &'a Arc<attach::Hub>,
    ports: &'a str,
    pid: &'a Arc<AtomicU32>,
    pending: &'a Arc<AtomicI32>,
}

/// Starts the process once and copies its output until it exits: its exit code and error.
/// `on_started` runs once it runs (the start report).
/// With `gate`, the process runs its program only once a byte arrives on it (the network is
/// ready: `net::NetWait`); its setup runs meanwhile.
fn run_once(
    s: &Setup<'_>,
    foreground: bool,
    foreground_stdin: bool,
    gate: Option<std::io::PipeReader>,
    on_started: &mut dyn FnMut(),
) -> Result<(i32, String), StartError> {
    let config = s.config;
    let io = (|| -> std::io::Result<_> {
        if config.tty {
            // The runtime makes the pty; these are not used.
            let null = || File::options().read(true).write(true).open("/dev/null");
            return Ok((None, None, Stdio::new(null()?, null()?, null()?), None));
        }
        let (out_r, out_w) = std::io::pipe()?;
        let (err_r, err_w) = std::io::pipe()?;
        let (stdin, keep): (OwnedFd, Option<std::io::PipeWriter>) = if foreground_stdin {
            // SAFETY: fd 0 is open for the life of the process.
            (
                unsafe { std::os::fd::BorrowedFd::borrow_raw(0) }.try_clone_to_owned()?,
                None,
            )
        } else if config.open_stdin {
            // Open; attached clients write to it (`-i`).
            let (r, w) = std::io::pipe()?;
            (r.into(), Some(w))
        } else {
            (File::open("/dev/null")?.into(), None)
        };
        Ok((
            Some(out_r),
            Some(err_r),
            Stdio::new(stdin, out_w, err_w),
            keep,
        ))
    })();
    let (out_r, err_r, stdio, keep_stdin) =
        io.map_err(|e| start_error(125, format!("making the container's stdio: {e}")))?;
    let stdio = match gate {
        Some(g) => stdio.with_start_gate(g),
        None => stdio,
    };
    // A signal that came during setup (Ctrl-C, a stop) cancels the start: delivered to the
    // new PID 1 before it has installed handlers, the kernel would drop it, and the container
    // would run on as if nothing had been asked (docker's CLI dies of such a Ctrl-C too).
    let early = s.pending.swap(0, Ordering::SeqCst);
    if early != 0 {
        return Err(start_error(
            128 + early,
            format!("signal {early} before the container's process started: not started"),
        ));
    }
    s.cg.enter()
        .map_err(|e| start_error(125, anyhow_message(&e)))?;
    let spawned = Executor::Embedded.spawn(s.spec, stdio);
    s.cg.leave();
    let mut container = spawned.map_err(|e| start_error(e.exit_code().unwrap_or(125), e))?;
    let pid = container.pid();
    let master = container.take_terminal().map(Arc::new);
    if let Err(e) = s.store.container_started(s.id, pid, s.ports) {
        let _ = container.kill();
        let _ = container.wait();
        return Err(start_error(125, e));
    }
    s.pid.store(pid, Ordering::SeqCst);
    let early = cancel_if_pending(s.pid, s.pending);
    if early != 0 {
        let _ = container.wait();
        s.pid.store(0, Ordering::SeqCst);
        return Err(start_error(
            128 + early,
            format!("signal {early} before the container's process started: not started"),
        ));
    }
    let input = match (&master, keep_stdin) {
        (Some(m), _) => m.try_clone().ok().map(File::from),
        (None, Some(w)) => Some(File::from(OwnedFd::from(w))),
        (None, None) => None,
    };
    s.hub.process_started(input, master.clone(), pid);
    on_started();
    let running = Arc::new(AtomicBool::new(true));
    let monitor = config.healthcheck.clone().and_then(|h| {
        health::monitor(
            s.store.root().to_path_buf(),
            s.store.container_dir(s.id),
            s.id.to_string(),
            h,
            running.clone(),
        )
    });
    let tee = |local: Option<Box<dyn Write + Send>>, kind: u8| -> Box<dyn Write + Send> {
        Box::new(Tee {
            local,
            hub: attach::Broadcast {
                hub: s.hub.clone(),
                kind,
            },
        })
    };
    let mut pumps = Vec::new();
    if let Some(m) = &master {
        let reader = m.try_clone().map(File::from);
        let t = tee(None, attach::kind::STDOUT);
        let sink = s.sink.clone();
        if let Ok(r) = reader {
            pumps.push(std::thread::spawn(move || {
                logfile::pump(r, "stdout", sink, Some(t))
            }));
        }
    }
    for (r, stream, kind) in [
        (out_r, "stdout", attach::kind::STDOUT),
        (err_r, "stderr", attach::kind::STDERR),
    ] {
        let Some(r) = r else { continue };
        let local: Option<Box<dyn Write + Send>> = foreground.then(|| {
            if stream == "stdout" {
                Box::new(std::io::stdout()) as Box<dyn Write + Send>
            } else {
                Box::new(std::io::stderr()) as Box<dyn Write + Send>
            }
        });
        let t = tee(local, kind);
        let sink = s.sink.clone();
        pumps.push(std::thread::spawn(move || {
            logfile::pump(r, stream, sink, Some(t))
        }));
    }
    let status = container.wait();
    running.store(false, Ordering::SeqCst);
    if let Some(m) = monitor {
        let _ = m.join();
    }
    s.pid.store(0, Ordering::SeqCst);
    s.hub.process_ended();
    // A pty's master reads EIO once the last slave is closed; a pipe, EOF.
    drop(master);
    let failures: u64 = pumps.into_iter().map(|p| p.join().unwrap_or(0)).sum();
    let (code, error) = match status {
        Ok(ExitStatus::Code(c)) => (c, String::new()),
        Ok(ExitStatus::Signal(s)) => (128 + s, String::new()),
        Err(e) => (255, e.to_string()),
    };
    let error = if failures > 0 && error.is_empty() {
        format!("{failures} log lines could not be written to the log file")
    } else {
        error
    };
    Ok((code, error))
}

/// The local terminal (foreground) and the attached clients.
struct Tee {
    local: Option<Box<dyn Write + Send>>,
    hub: attach::Broadcast,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(l) = self.local.as_mut()
            && (l.write_all(buf).is_err() || l.flush().is_err())
        {
            self.local = None;
        }
        self.hub.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn run(
    store: &Store,
    id: &str,
    mode: &mut Mode,
    report: &dyn Fn(&mut Mode, &Report),
    sigset: libc::sigset_t,
) -> Result<i32, StartError> {
    let rec = store.find_container(id).map_err(|e| start_error(125, e))?;
    let id = rec.id.clone();
    let config: ContainerConfig = serde_json::from_str(&rec.config)
        .map_err(|e| start_error(125, format!("container {id}: bad config: {e}")))?;
    // One supervisor per container: a second one leaves the record as the first keeps it.
    let _supervisor_lock = match try_supervisor_lock(&store.container_dir(&id)) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            return Err(start_error(
                125,
                format!("container {id} is already running (another supervisor started it)"),
            ));
        }
        Err(e) => return Err(start_error(125, format!("container {id}: {e}"))),
    };
    let fail = |code: i32, message: String| -> StartError {
        write_exit_code(&store.container_dir(&id), code);
        let _ = store.container_finished(&id, code, &message, false);
        if config.host.auto_remove {
            let _ = store.remove_container(&id);
        }
        StartError { code, message }
    };
    kiln_build::namespace::enter_private_mount_namespace().map_err(|e| {
        fail(
            125,
            format!("kiln run needs root (CAP_SYS_ADMIN) for overlay mounts and namespaces: {e}"),
        )
    })?;
    let dir = store.container_dir(&id);
    std::fs::create_dir_all(&dir)
        .map_err(|e| fail(125, format!("creating {}: {e}", dir.display())))?;
    let _ = std::fs::remove_file(dir.join(MANUAL_STOP));
    let _ = std::fs::remove_file(dir.join(RESTART_REQUESTED));
    let _ = std::fs::write(dir.join(EXIT_CODE), "");
    let _ = std::fs::remove_file(dir.join(OOM_KILLED));
    // The network first: pasta starts configuring the namespace now and is waited for just
    // before the container's program starts (the rest of the setup runs meanwhile; pasta
    // takes about 10 ms).
    let mut starting_net = None;
    let mut warnings = Vec::new();
    let wanted_ports = config.wanted_ports();
    // `--network none` with nothing to publish: the container's process gets a new namespace
    // as it is cloned; nothing here needs a handle on it.
    let new_netns = config.host.network_mode == "none" && wanted_ports.is_empty();
    let netns = if config.host.network_mode == "host" || new_netns {
        None
    } else {
        let ns = net::create_netns().map_err(|e| {
            fail(
                125,
                format!("creating the container's network namespace: {e}"),
            )
        })?;
        if config.host.network_mode == "private" {
            starting_net = Some(net::start_private(&ns).map_err(|m| fail(125, m))?);
        }
        Some(ns)
    };
    // The veth pair of published ports is made meanwhile (net.rs).
    let kernel_link = match &netns {
        Some(ns) => net::start_kernel_link(
            ns,
            &id,
            &wanted_ports,
            config.host.network_mode == "private",
        ),
        None => net::KernelLink::none(),
    };
    // The cgroups first (removed when dropped): making them waits for the cgroup lock, which
    // the warm-up's migration holds through its grace period.
    let cg = Cgroups::create(&dir, &id, &config.host).map_err(|e| fail(125, anyhow_message(&e)))?;
    // The cgroup migration's grace period passes while the rest is set up (see its docs).
    let warm_up = super::cgroup::MigrationWarmUp::start();
    let (lease, layers) =
        rootfs::image_layers(store, &rec.image).map_err(|e| fail(125, anyhow_message(&e)))?;
    let lowers: Vec<_> = layers.iter().map(|(_, d)| d.clone()).collect();
    let (mount, root) = rootfs::mount_rootfs(store, &id, &lowers, config.host.auto_remove)
        .map_err(|e| fail(125, anyhow_message(&e)))?;
    // The container's row keeps its snapshots from now on.
    drop(lease);
    let hostname = if !config.hostname.is_empty() {
        config.hostname.clone()
    } else if config.host.network_mode == "host" {
        host_hostname()
    } else {
        crate::cmd_image::render::truncate_id(&id)
    };
    let proxy = match &netns {
        Some(ns) => {
            let (proxy, warning) = net::publish(
                ns,
                kernel_link,
                &wanted_ports,
                &io_stats::traffic_file(&dir),
            )
            .map_err(|m| fail(125, m))?;
            warnings.extend(warning);
            proxy
        }
        None => net::Proxy::none(),
    };
    let netns_path = netns.as_ref().map(|f| {
        use std::os::fd::AsRawFd;
        std::path::PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))
    });
    let prepared = (|| -> anyhow::Result<_> {
        volume::seed(&root, &config.host.mount_points)?;
        write_etc(&dir, &config, &hostname)?;
        let mut who = spec::identity(&root, &config.user)?;
        super::spec::add_groups(
            &mut who,
            super::run_flags::group_add(&root, &config.host.group_add)?,
        );
        let netns = match netns_path.as_deref() {
            Some(p) => spec::NetNs::Path(p),
            None if new_netns => spec::NetNs::New,
            None => spec::NetNs::Host,
        };
        spec::build(&config, &root, &dir, &hostname, &who, netns)
    })();
    let spec = match prepared {
        Ok(v) => v,
        Err(e) => {
            proxy.stop();
            // Unmounted first: `--rm` removes the directory the root is mounted in.
            drop(mount);
            return Err(fail(125, anyhow_message(&e)));
        }
    };
    warnings.extend(cg.warning().map(str::to_string));
    let sink = match logfile::open_sink(&log_path(store, &id)) {
        Ok(s) => s,
        Err(e) => {
            proxy.stop();
            cg.remove();
            drop(mount);
            return Err(fail(125, format!("opening the log file: {e}")));
        }
    };
    let hub = match attach::Hub::listen(&dir, config.open_stdin, config.stdin_once) {
        Ok(h) => h,
        Err(e) => {
            proxy.stop();
            cg.remove();
            drop(mount);
            return Err(fail(
                125,
                format!(
                    "listening for attach on {}: {e}",
                    dir.join(attach::SOCKET).display()
                ),
            ));
        }
    };
    let cleanup = |hub: &attach::Hub, code: i32| {
        hub.finish(code);
    };
    if matches!(
        mode,
        Mode::Detached {
            attach_first: true,
            ..
        }
    ) && !hub.wait_for_client(Duration::from_secs(30))
    {
        proxy.stop();
        cg.remove();
        drop(mount);
        cleanup(&hub, 125);
        return Err(fail(125, "no client attached within 30 s".into()));
    }
    let foreground_mode = matches!(mode, Mode::Foreground { .. });
    let pid = Arc::new(AtomicU32::new(0));
    let pending = Arc::new(AtomicI32::new(0));
    let signalled = Arc::new(AtomicBool::new(false));
    forward_signals(sigset, pid.clone(), pending.clone(), signalled.clone());
    // Only a detached supervisor stops restarting when signalled: a foreground `run`'s Ctrl-C
    // goes to the container, which docker's restart policy then restarts.
    let stopping = || !foreground_mode && signalled.load(Ordering::SeqCst);
    // Rootless: other kiln commands cannot enter this user namespace; their execs come here
    // (after the signal mask is set, which the relay's thread inherits).
    let _exec_relay = if kiln_runtime::userns::in_user_namespace() {
        match super::exec::serve_relay(store.root(), &dir) {
            Ok(g) => Some(g),
            Err(e) => {
                let w = format!("kiln exec will not work for this container: {e:#}");
                if matches!(mode, Mode::Foreground { .. }) {
                    eprintln!("WARNING: {w}");
                }
                warnings.push(w);
                None
            }
        }
    } else {
        None
    };
    let ports = serde_json::to_string(&proxy.bound()).unwrap_or_else(|_| "[]".into());
    let setup = Setup {
        store,
        id: &id,
        config: &config,
        spec: &spec,
        cg: &cg,
        sink: &sink,
        hub: &hub,
        ports: &ports,
        pid: &pid,
        pending: &pending,
    };
    // The network is ready before the program starts: a thread waits for pasta and opens the
    // first start's gate, through which the container's process (set up meanwhile) execs its
    // program. `private_net` (pasta) lives until this function returns, when the container has
    // stopped.
    let (mut net_wait, mut gate) = match starting_net {
        Some(s) => {
            let (w, g) = net::NetWait::start(s);
            (Some(w), g)
        }
        None => (None, None),
    };
    let mut private_net: Option<kiln_net::PrivateNet> = None;
    // Before the first migration into the container's cgroups.
    drop(warm_up);
    let foreground = matches!(mode, Mode::Foreground { .. });
    let foreground_stdin = matches!(mode, Mode::Foreground { stdin: true });
    let mut restarts: i64 = 0;
    let mut delay = Duration::from_millis(100);
    let mut first = true;
    let mut ooms_before;
    let (code, error) = loop {
        let started_at = std::time::Instant::now();
        ooms_before = cg.oom_kills();
        let mut on_started = || {
            if first {
                // The gate opened, so the wait is over.
                private_net = net_wait.take().and_then(net::NetWait::finish);
                // A host with no routable interface (offline) has no outbound access to give:
                // the container loses nothing, so no warning (docker's bridge says nothing
                // either).
                if let Some(why) = private_net
                    .as_ref()
                    .and_then(|p| p.loopback_only_reason())
                    .filter(|why| !why.contains("No external routable interface"))
                {
                    warnings.insert(0, why.to_string());
                }
                if foreground {
                    for w in &warnings {
                        eprintln!("WARNING: {w}");
                    }
                }
                report(
                    mode,
                    &Report {
                        code: 0,
                        message: String::new(),
                        warnings: warnings.clone(),
                    },
                );
            }
        };
        let outcome = run_once(
            &setup,
            foreground,
            foreground_stdin,
            gate.take(),
            &mut on_started,
        );
        let (code, error) = match outcome {
            Ok(v) => v,
            Err(e) if first => {
                proxy.stop();
                drop(mount);
                cg.remove();
                cleanup(&hub, e.code);
                return Err(fail(e.code, e.message));
            }
            Err(e) => (e.code, e.message),
        };
        first = false;
        let manual = dir.join(MANUAL_STOP).exists();
        if stopping() {
            break (code, error);
        }
        if !config.host.restart_policy.restarts(code, restarts, manual) {
            break (code, error);
        }
        // docker's back-off: 100 ms doubling, reset after 10 s of running.
        if started_at.elapsed() >= Duration::from_secs(10) {
            delay = Duration::from_millis(100);
        }
        super::restarting::mark(&dir, code);
        std::thread::sleep(delay);
        super::restarting::clear(&dir);
        delay = (delay * 2).min(Duration::from_secs(60));
        if dir.join(MANUAL_STOP).exists() || stopping() {
            break (code, error);
        }
        restarts += 1;
        let _ = store.container_restarted(&id);
    };
    proxy.stop();
    // A volatile root (--rm) leaves `work/work/incompat/volatile`, which makes the kernel refuse
    // to mount that upper again, to catch a crash that lost its unsynced data. A clean
    // unmount lost nothing, so a restart may mount it again.
    if mount.unmount().is_ok() && config.host.auto_remove {
        let _ = std::fs::remove_dir_all(dir.join("work/work/incompat"));
    }
    if cg.oom_kills() > ooms_before {
        let _ = std::fs::write(dir.join(OOM_KILLED), "");
    }
    cg.remove();
    write_exit_code(&dir, code);
    if config.host.auto_remove && !dir.join(RESTART_REQUESTED).exists() {
        let _ = store.remove_container(&id);
        volume::remove_anonymous(store, &config);
    } else {
        let _ = store.container_finished(&id, code, &error, true);
    }
    cleanup(&hub, code);
    Ok(code)
}

/// `__container-supervise`: the detached supervisor's entry. With `detach`, start the real
/// supervisor (a grandchild of the command) and return at once.
pub fn internal(store_root: &Path, id: &str, detach: bool) -> anyhow::Result<()> {
    let ready_fd: Option<i32> = std::env::var("KILN_READY_FD")
        .ok()
        .and_then(|s| s.parse().ok());
    if detach {
        let exe = std::fs::read_link("/proc/self/exe").context("finding kiln's own binary")?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("--root")
            .arg(store_root)
            .args(["__container-supervise", id])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .current_dir("/");
        cmd.spawn().context("starting the container's supervisor")?;
        return Ok(());
    }
    // SAFETY: the fd was passed by our parent for this purpose and is owned here alone.
    let ready = ready_fd.map(|fd| {
        // SAFETY: fcntl on an fd we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        unsafe { File::from_raw_fd(fd) }
    });
    let store = Store::open(store_root)?;
    let attach_first = std::env::var_os("KILN_ATTACH_FIRST").is_some();
    let _ = supervise(
        &store,
        id,
        Mode::Detached {
            ready,
            attach_first,
        },
    );
    Ok(())
}

/// Starts container `id` under a detached supervisor and waits for its start report.
pub fn start_detached(store: &Store, id: &str) -> Result<(), StartError> {
    let mut r = launch(store, id, false)?;
    read_report(&mut r, id)
}

/// Starts container `id` under a detached supervisor that waits for this client before it
/// starts the process: the attached socket, once the process runs.
pub fn start_attached(
    store: &Store,
    id: &str,
) -> Result<std::os::unix::net::UnixStream, StartError> {
    use std::os::fd::AsRawFd;
    let mut r = launch(store, id, true)?;
    let dir = store.container_dir(id);
    let t0 = std::time::Instant::now();
    let sock = loop {
        if let Ok(s) = attach::connect(&dir) {
            break s;
        }
        // The supervisor may have failed before it listens: its report is then waiting.
        let mut pfd = libc::pollfd {
            fd: r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one local pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 10) } > 0 {
            read_report(&mut r, id)?;
            return Err(start_error(
                125,
                format!(
                    "the supervisor of container {id} reported a start before a client attached"
                ),
            ));
        }
        if t0.elapsed() > Duration::from_secs(30) {
            return Err(start_error(
                125,
                format!("cannot attach to container {id}: its supervisor is not listening"),
            ));
        }
    };
    read_report(&mut r, id)?;
    Ok(sock)
}

fn launch(store: &Store, id: &str, attach_first: bool) -> Result<std::io::PipeReader, StartError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (r, w) = std::io::pipe().map_err(|e| start_error(125, e))?;
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| start_error(125, e))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root")
        .arg(store.root())
        .args(["__container-supervise", "--detach", id])
        .env("KILN_READY_FD", "3")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .current_dir("/");
    if attach_first {
        cmd.env("KILN_ATTACH_FIRST", "1");
    } else {
        cmd.env_remove("KILN_ATTACH_FIRST");
    }
    let wfd = w.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if wfd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0);
            } else if libc::dup2(wfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| start_error(125, format!("starting the supervisor: {e}")))?;
    drop(w);
    drop(cmd);
    let _ = child.wait();
    Ok(r)
}

/// The supervisor's start report: one JSON line, then EOF.
fn read_report(r: &mut std::io::PipeReader, id: &str) -> Result<(), StartError> {
    let mut text = String::new();
    let _ = r.read_to_string(&mut text);
    match serde_json::from_str::<Report>(text.trim()) {
        Ok(rep) if rep.code == 0 => {
            for w in &rep.warnings {
                eprintln!("WARNING: {w}");
            }
            Ok(())
        }
        Ok(rep) => Err(StartError {
            code: rep.code,
            message: rep.message,
        }),
        Err(_) => Err(start_error(
            125,
            format!("the supervisor of container {id} ended before the container started"),
        )),
    }
}
