//! The embedded executor: `clone3` straight into the new namespaces, set up by [`crate::child`],
//! `execve` the process as PID 1. The parent holds a pidfd, so waiting and killing can never hit
//! a recycled PID.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use libc::c_int;
use oci_spec::runtime::Spec;

use crate::child::{self, Report, stage};
use crate::devices::{DeviceCgroup, Enforcement};
use crate::error::{Result, RuntimeError};
use crate::fdpass::receive_fd;
use crate::plan::Plan;
use crate::stdio::{ExitStatus, Stdio};

/// A started container process, as a pid and a pidfd.
pub(crate) struct Process {
    pub pid: u32,
    pub pidfd: OwnedFd,
    /// Removed once the process has been reaped.
    pub cgroup: Option<DeviceCgroup>,
    /// The pseudo-terminal's master (`process.terminal`).
    pub terminal: Option<OwnedFd>,
}

pub(crate) fn spawn(spec: &Spec, stdio: Stdio) -> Result<Process> {
    let plan = Plan::new(spec)?;
    let enforcement = crate::devices::enforce(&plan.device_rules)?;
    spawn_plan(plan, enforcement, stdio)
}

/// Start `plan` with its device rules enforced as `enforcement` says.
pub(crate) fn spawn_plan(
    mut plan: Plan,
    enforcement: Enforcement,
    stdio: Stdio,
) -> Result<Process> {
    create_mount_points(&plan)?;
    let cgroup = match enforcement {
        Enforcement::None => None,
        Enforcement::Cgroup(cg) => {
            plan.cgroup_procs = cg.procs.as_raw_fd();
            Some(cg)
        }
        Enforcement::Unenforceable => {
            plan.without_devices();
            None
        }
    };
    // The pty's master comes back on a socket pair (the child's end closes on exec).
    let console = if plan.terminal.is_some() {
        let mut sv = [0 as c_int; 2];
        // SAFETY: socketpair writes two fds into the array.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                sv.as_mut_ptr(),
            )
        } < 0
        {
            return Err(RuntimeError::Spawn {
                what: "socketpair for the terminal",
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: both fds were just created and are owned here.
        let pair = unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) };
        plan.console_socket = pair.1.as_raw_fd();
        Some(pair)
    } else {
        None
    };
    plan.start_gate = stdio.start_gate.as_ref().map_or(-1, |f| f.as_raw_fd());
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(RuntimeError::Spawn {
            what: "pipe2",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: both fds were just created and are owned here.
    let (report_rd, report_wr) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    let mut pidfd: c_int = -1;
    let args = libc::clone_args {
        flags: plan.clone_flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut c_int as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: 0,
    };
    let stdio_fds = [
        stdio.stdin.as_raw_fd(),
        stdio.stdout.as_raw_fd(),
        stdio.stderr.as_raw_fd(),
    ];
    // SAFETY: clone3 without CLONE_VM behaves like fork; the child only runs child::run, which
    // never returns and does only async-signal-safe work on the plan.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const libc::clone_args,
            size_of::<libc::clone_args>(),
        )
    };
    if pid == 0 {
        // SAFETY: we are the child of clone3.
        unsafe { child::run(&plan, stdio_fds, report_wr.as_raw_fd()) }
    }
    if pid < 0 {
        return Err(RuntimeError::Spawn {
            what: "clone3",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: CLONE_PIDFD stored a new fd owned by us.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let mut process = Process {
        pid: pid as u32,
        pidfd,
        cgroup,
        terminal: None,
    };
    let console = console.map(|(ours, theirs)| {
        drop(theirs);
        ours
    });
    // The container has its own copies now; EOF on the report pipe means execve succeeded.
    drop(report_wr);
    drop(stdio);

    let mut report = Report::new();
    let n = loop {
        // SAFETY: reading into a plain repr(C) value of the given size.
        let n = unsafe {
            libc::read(
                report_rd.as_raw_fd(),
                (&mut report as *mut Report).cast(),
                size_of::<Report>(),
            )
        };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        break n;
    };
    if n == 0 {
        if let Some(sock) = &console {
            // Sent before execve, so it is queued by now.
            process.terminal = Some(receive_fd(sock).map_err(|source| RuntimeError::Spawn {
                what: "receiving the terminal's master",
                source,
            })?);
        }
        return Ok(process);
    }
    // The child exits 127 after reporting; reap it so no zombie is left.
    let _ = wait(&process.pidfd, process.pid);
    if n as usize != size_of::<Report>() {
        return Err(RuntimeError::Spawn {
            what: "reading the container's setup report",
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "short report"),
        });
    }
    Err(describe(&plan, &report))
}

/// Create missing mount points (and the working directory) in the rootfs from here, where
/// symlinks can be followed inside the root with ordinary code. Targets beneath another mount of
/// the spec (`/dev/pts` under the `/dev` tmpfs) only exist in the child and are made there.
fn create_mount_points(plan: &Plan) -> Result<()> {
    let root = plan.rootfs_display.as_path();
    let under_a_mount = |target: &crate::plan::RootPath, before: usize| {
        plan.mounts[..before].iter().any(|m| {
            let m = m.target.full.as_bytes();
            let t = target.full.as_bytes();
            m == b"." || t == m || (t.starts_with(m) && t.get(m.len()) == Some(&b'/'))
        })
    };
    let targets = plan
        .mounts
        .iter()
        .enumerate()
        .map(|(i, m)| (&m.target, m.file_target, i))
        .chain(std::iter::once((&plan.cwd, false, plan.mounts.len())));
    for (target, file, i) in targets {
        if under_a_mount(target, i) || target.prefixes.is_empty() {
            continue;
        }
        let dest = std::path::Path::new(std::ffi::OsStr::from_bytes(target.full.as_bytes()));
        crate::stubs::create_mount_point(root, dest, file).map_err(|source| {
            RuntimeError::Host {
                what: "cannot create mount point",
                path: root.join(dest),
                source,
            }
        })?;
    }
    Ok(())
}

/// Turn a child's failure report into an error that names the step.
fn describe(plan: &Plan, report: &Report) -> RuntimeError {
    let f = report.failure;
    let source = io::Error::from_raw_os_error(f.errno);
    let i = f.index as usize;
    let mount = |suffix: &str| {
        plan.mounts
            .get(i)
            .map(|m| format!("{}{suffix}", m.describe))
            .unwrap_or_default()
    };
    let list = |l: &[std::ffi::CString]| {
        l.get(i)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let step = match f.stage {
        stage::REFUSED_MOUNT => {
            let op = plan.mounts.get(i);
            return RuntimeError::MountDestination {
                mount: op.map(|m| m.describe.clone()).unwrap_or_default(),
                destination: op.map(|m| m.destination.clone()).unwrap_or_default(),
                resolved: std::path::PathBuf::from(std::ffi::OsStr::from_bytes(report.path())),
                why: crate::plan::Refusal::from_code(f.errno)
                    .map_or("refused", |r| r.explain())
                    .to_string(),
            };
        }
        stage::EXEC_NOT_FOUND => {
            return RuntimeError::NotFound {
                program: plan.program.clone(),
            };
        }
        stage::EXEC => {
            return RuntimeError::Exec {
                program: plan.program.clone(),
                source,
            };
        }
        stage::STDIO => "set up stdio".to_string(),
        stage::PDEATHSIG => "set the parent-death signal".to_string(),
        stage::DEVICE_CGROUP => "join the device cgroup".to_string(),
        stage::JOIN_NS => format!(
            "join {}",
            plan.join
                .get(i)
                .map(|j| j.2.as_str())
                .unwrap_or("namespace")
        ),
        stage::LOOPBACK => "bring up lo in the new network namespace".to_string(),
        stage::PROPAGATION => "make the mount namespace private".to_string(),
        stage::BIND_ROOT => format!("bind mount the root {:?}", plan.rootfs_display),
        stage::OPEN_ROOT => format!("open the root {:?}", plan.rootfs_display),
        stage::MOUNT_POINT => mount(": create the mount point"),
        stage::MOUNT => mount(""),
        stage::REMOUNT => mount(": apply its options"),
        stage::PROPAGATE => mount(": set its propagation"),
        stage::DEVICE => format!(
            "create device {}",
            plan.devices
                .get(i)
                .map(|d| d.describe.as_str())
                .unwrap_or("?")
        ),
        stage::DEV_SYMLINK => "create the /dev symlinks".to_string(),
        stage::CWD => format!(
            "create the working directory {:?}",
            plan.cwd_abs.to_string_lossy()
        ),
        stage::PIVOT => format!("pivot_root into {:?}", plan.rootfs_display),
        stage::MASK => format!("mask {:?}", list(&plan.masked)),
        stage::READONLY => format!("make {:?} read-only", list(&plan.readonly_paths)),
        stage::ROOT_READONLY => "make the root read-only".to_string(),
        stage::HOSTNAME => "set the hostname".to_string(),
        stage::DOMAINNAME => "set the domain name".to_string(),
        stage::OOM => "set oom_score_adj".to_string(),
        stage::RLIMIT => format!("set rlimit #{i}"),
        stage::CAPS => "set capabilities".to_string(),
        stage::SECCOMP => "install the seccomp filter".to_string(),
        stage::START_GATE => "wait for the start gate (its writer closed it unopened)".to_string(),
        stage::GROUPS => format!("set additional groups {:?}", plan.groups),
        stage::SETGID => format!("set gid {}", plan.gid),
        stage::SETUID => format!("set uid {}", plan.uid),
        stage::NO_NEW_PRIVS => "set no_new_privs".to_string(),
        stage::CHDIR => format!(
            "change to the working directory {:?}",
            plan.cwd_abs.to_string_lossy()
        ),
        other => format!("step {other}"),
    };
    RuntimeError::Setup { step, source }
}

/// Wait for the process to end and reap it.
pub(crate) fn wait(pidfd: &OwnedFd, pid: u32) -> Result<ExitStatus> {
    loop {
        // SAFETY: siginfo_t is plain data; waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(RuntimeError::Process {
                what: "wait for",
                pid,
                source: e,
            });
        }
        // SAFETY: waitid succeeded with WEXITED, so the status fields are set.
        let status = unsafe { info.si_status() };
        return Ok(match info.si_code {
            libc::CLD_EXITED => ExitStatus::Code(status),
            _ => ExitStatus::Signal(status),
        });
    }
}

/// Send SIGKILL through the pidfd. With a PID namespace, killing its init kills everything in
/// it. A process that already ended is not an error.
pub(crate) fn kill(pidfd: &OwnedFd, pid: u32) -> Result<()> {
    // SAFETY: pidfd_send_signal with a pidfd we own and no siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd() as libc::c_long,
            libc::SIGKILL as libc::c_long,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_long,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(RuntimeError::Process {
                what: "kill",
                pid,
                source: e,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Busybox in a test root, hard-linked: a copy is open for writing while the tests beside
    /// this one clone their containers, and a clone that inherits that descriptor makes the
    /// exec of the copy fail with ETXTBSY ("text file busy") until it execs itself.
    fn link_busybox(dest: &std::path::Path) {
        if std::fs::hard_link("/bin/busybox", dest).is_err() {
            std::fs::copy("/bin/busybox", dest).unwrap();
        }
    }

    /// A root with busybox and `applets` linked to it in /bin (needs root and busybox-static).
    fn busybox_root(applets: &[&str]) -> tempfile::TempDir {
        assert!(
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() } == 0 && std::path::Path::new("/bin/busybox").exists(),
            "needs root and /bin/busybox (busybox-static)"
        );
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        link_busybox(&bin.join("busybox"));
        for a in applets {
            std::os::unix::fs::symlink("busybox", bin.join(a)).unwrap();
        }
        root
    }

    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// The cgroup v2 path (an eBPF device program), tested here although this host has the
    /// v1 devices controller: the kernel runs the program on the v2 cgroup all the same.
    #[test]
    fn a_cgroup_v2_device_program_allows_mknod_but_not_open() {
        let root = busybox_root(&["sh", "mknod", "head", "cat", "echo", "wc", "dd"]);
        // The control: this host lets root open a loop device node.
        let lp = root.path().join("control");
        let c = std::ffi::CString::new(lp.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(7, 0)) };
        assert_eq!(made, 0);
        std::fs::File::open(&lp).expect("the host cannot open b 7:0: no control device");
        let mut spec = crate::docker_default_spec();
        spec.root_mut()
            .as_mut()
            .unwrap()
            .set_path(root.path().to_path_buf());
        let out = root.path().join("out");
        std::fs::write(&out, "").unwrap();
        spec.process_mut().as_mut().unwrap().set_args(Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "exec > /out 2>&1; mknod /loop b 7 0; echo mknod=$?; \
             dd if=/loop of=/dev/null count=0 2>/dev/null; echo loop=$?; \
             dd if=/control of=/dev/null count=0 2>/dev/null; echo control=$?; \
             head -c4 /dev/zero | wc -c; echo x > /dev/null && echo null=ok; cat /proc/self/cgroup"
                .into(),
        ]));
        let plan = Plan::new(&spec).unwrap();
        let enforcement = crate::devices::enforce_v2(&plan.device_rules).unwrap();
        assert!(
            matches!(enforcement, Enforcement::Cgroup(_)),
            "no cgroup v2 with a device program here"
        );
        let p = spawn_plan(plan, enforcement, Stdio::null().unwrap()).unwrap();
        let status = wait(&p.pidfd, p.pid).unwrap();
        let dir = p.cgroup.as_ref().map(|c| c.dir.clone()).unwrap();
        drop(p);
        assert!(!dir.exists(), "{} left behind", dir.display());
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(status.success(), "{status:?}: {text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..5],
            ["mknod=0", "loop=1", "control=1", "4", "null=ok"],
            "{text}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("0::") && l.contains("/kiln-")),
            "not in the v2 cgroup: {text}"
        );
    }

    /// Where no device cgroup can hold the rules: no node can be made, and a node for the
    /// host's disk shipped in the rootfs (as an image layer may) cannot be opened; the
    /// standard /dev nodes and FIFOs work.
    #[test]
    fn without_a_device_cgroup_nodes_can_be_neither_made_nor_opened() {
        let root = busybox_root(&["sh", "mknod", "head", "mkfifo", "cat", "echo", "wc"]);
        let dev = std::fs::metadata("/").unwrap().dev();
        let disk = root.path().join("disk");
        let c = std::ffi::CString::new(disk.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(
            unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, dev) },
            0
        );
        let mut spec = crate::docker_default_spec();
        spec.root_mut()
            .as_mut()
            .unwrap()
            .set_path(root.path().to_path_buf());
        let out = root.path().join("out");
        std::fs::write(&out, "").unwrap();
        spec.process_mut().as_mut().unwrap().set_args(Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "exec > /out 2>&1; mknod /disk2 b 1 1; echo mknod=$?; head -c1 /disk >/dev/null; \
             echo open=$?; head -c4 /dev/zero | wc -c; mkfifo /fifo && (echo f > /fifo &) && cat /fifo"
                .into(),
        ]));
        let plan = Plan::new(&spec).unwrap();
        let p = spawn_plan(plan, Enforcement::Unenforceable, Stdio::null().unwrap()).unwrap();
        let status = wait(&p.pidfd, p.pid).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(status.success(), "{status:?}: {text}");
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("ermission") && !l.contains("not permitted"))
            .collect();
        assert_eq!(lines, ["mknod=1", "open=1", "4", "f"], "{text}");
    }
}
