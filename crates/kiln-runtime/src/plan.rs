//! The embedded executor's plan: a spec turned, before `clone`, into plain C strings, flags and
//! numbers, so that the child needs no allocation and no lock (it runs in a copy of a
//! multi-threaded process, where only async-signal-safe work is allowed).

use std::ffi::{CString, c_char};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use libc::{c_int, c_ulong};
use oci_spec::runtime::{LinuxCapabilities, LinuxNamespaceType, PosixRlimitType, Spec};

use crate::caps;
use crate::error::{Result, RuntimeError};
use crate::mountopts;

const EXECUTOR: &str = "embedded";

/// `CAP_MKNOD`'s bit number.
const CAP_MKNOD: u32 = 27;

/// A path inside the container root, split so the child can create it one level at a time:
/// `prefixes` are `a`, `a/b`, `a/b/c`; `names` are `a`, `b`, `c`.
#[derive(Debug)]
pub(crate) struct RootPath {
    pub full: CString,
    pub prefixes: Vec<CString>,
    pub names: Vec<CString>,
}

impl RootPath {
    /// Lexically clean `path` (`.` dropped, `..` clamped at the root) and split it.
    pub fn new(path: &Path) -> Result<Self> {
        let mut names: Vec<&std::ffi::OsStr> = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(n) => names.push(n),
                Component::ParentDir => {
                    names.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        let mut prefixes = Vec::with_capacity(names.len());
        let mut acc: Vec<u8> = Vec::new();
        let mut cnames = Vec::with_capacity(names.len());
        for n in &names {
            if !acc.is_empty() {
                acc.push(b'/');
            }
            acc.extend_from_slice(n.as_bytes());
            prefixes.push(cstring(acc.clone(), path)?);
            cnames.push(cstring(n.as_bytes().to_vec(), path)?);
        }
        let full = if acc.is_empty() {
            CString::from(c".")
        } else {
            cstring(acc, path)?
        };
        Ok(RootPath {
            full,
            prefixes,
            names: cnames,
        })
    }

    /// The clean path relative to the root, empty for the root itself.
    pub fn written(&self) -> &[u8] {
        match self.full.as_bytes() {
            b"." => b"",
            p => p,
        }
    }
}

fn cstring(bytes: Vec<u8>, context: &Path) -> Result<CString> {
    CString::new(bytes).map_err(|_| RuntimeError::InvalidSpec {
        what: format!("path {context:?} contains a NUL byte"),
    })
}

fn cstr(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| RuntimeError::InvalidSpec {
        what: format!("{what} {s:?} contains a NUL byte"),
    })
}

/// What a mount attaches.
#[derive(Debug)]
pub(crate) enum MountKind {
    /// A bind mount of a host path; `flags` is `MS_BIND` or `MS_BIND|MS_REC`.
    Bind { source: CString, flags: c_ulong },
    /// A filesystem mount (proc, tmpfs, sysfs, devpts, mqueue...).
    Fs {
        source: CString,
        fstype: CString,
        data: Option<CString>,
    },
}

/// One entry of `spec.mounts`, ready for the child.
#[derive(Debug)]
pub(crate) struct MountOp {
    pub target: RootPath,
    pub kind: MountKind,
    /// `MS_RDONLY`, `MS_NOSUID`...; for bind mounts applied by a remount.
    pub flags: c_ulong,
    pub propagation: Vec<c_ulong>,
    /// The mount point must be a file (a bind mount of a file such as `/etc/hosts`).
    pub file_target: bool,
    /// `tmpfs on "/dev"`, for error messages.
    pub describe: String,
    /// The destination as the spec wrote it, for error messages.
    pub destination: PathBuf,
    /// A procfs mount (the only kind allowed on `/proc`).
    pub procfs: bool,
}

/// Why a mount may not be attached where its destination resolves inside the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The root itself: the mount would hide the whole container filesystem.
    Root = 1,
    /// Below `/proc` (runc's rule: nothing may be mounted there).
    BelowProc = 2,
    /// On `/proc`, but not procfs (runc's rule).
    ProcNotProcfs = 3,
    /// `/proc`, `/sys` or below it, or `/dev` itself, reached through a symlink rather than
    /// written (the destination is cleaned lexically first, so `..` alone never does this): an
    /// image's symlink redirected the mount onto the container's own file systems (runc
    /// likewise refuses proc and sysfs on a symlink).
    Redirected = 4,
}

impl Refusal {
    pub fn from_code(code: i32) -> Option<Refusal> {
        [
            Refusal::Root,
            Refusal::BelowProc,
            Refusal::ProcNotProcfs,
            Refusal::Redirected,
        ]
        .into_iter()
        .find(|r| *r as i32 == code)
    }

    pub fn explain(self) -> &'static str {
        match self {
            Refusal::Root => "a mount on / would hide the container's whole root",
            Refusal::BelowProc => "nothing may be mounted below /proc",
            Refusal::ProcNotProcfs => "only procfs may be mounted on /proc",
            Refusal::Redirected => {
                "/proc, /sys and everything below /sys, and /dev itself, may not be reached \
                 through a symlink (the container's own file systems are there)"
            }
        }
    }
}

/// Check a mount destination: `written` is it as the spec wrote it and `resolved` where it
/// resolves inside the root, both relative to the root and clean (empty for the root itself).
/// No allocation: the child calls this between `clone3` and `execve`.
pub(crate) fn refused_destination(
    written: &[u8],
    resolved: &[u8],
    procfs: bool,
) -> Option<Refusal> {
    let under = |dir: &[u8]| {
        resolved.len() > dir.len() && resolved.starts_with(dir) && resolved[dir.len()] == b'/'
    };
    if resolved.is_empty() {
        Some(Refusal::Root)
    } else if under(b"proc") {
        Some(Refusal::BelowProc)
    } else if resolved == b"proc" && !procfs {
        Some(Refusal::ProcNotProcfs)
    } else if (resolved == b"proc" || resolved == b"sys" || under(b"sys") || resolved == b"dev")
        && written != resolved
    {
        Some(Refusal::Redirected)
    } else {
        None
    }
}

/// A device node to create in `/dev`.
#[derive(Debug)]
pub(crate) struct DeviceOp {
    pub parent: RootPath,
    pub name: CString,
    /// `S_IFCHR`/`S_IFBLK`/`S_IFIFO` plus permissions.
    pub mode: libc::mode_t,
    pub rdev: libc::dev_t,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    /// Bind-mounted instead when `mknod` is not permitted.
    pub host: CString,
    pub describe: String,
}

/// Capability masks to apply (kernel bit numbers).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CapMasks {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    pub last_cap: u32,
}

/// Everything the child does, in order.
pub(crate) struct Plan {
    pub rootfs: CString,
    pub rootfs_display: PathBuf,
    pub readonly_root: bool,
    pub clone_flags: u64,
    /// Namespaces joined by path: (fd, CLONE_NEW* type, description).
    pub join: Vec<JoinNs>,
    pub loopback_up: bool,
    pub root_propagation: c_ulong,
    pub mounts: Vec<MountOp>,
    pub devices: Vec<DeviceOp>,
    /// (target, link name) created in /dev.
    pub dev_symlinks: Vec<(CString, CString)>,
    /// The container's `/dev`, where the symlinks go.
    pub dev_dir: RootPath,
    pub masked: Vec<CString>,
    pub readonly_paths: Vec<CString>,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    pub cwd: RootPath,
    pub cwd_abs: CString,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
    pub umask: libc::mode_t,
    pub caps: Option<CapMasks>,
    /// The spec's `linux.resources.devices` (enforced by the parent: devices.rs).
    pub device_rules: Vec<oci_spec::runtime::LinuxDeviceCgroup>,
    /// `cgroup.procs` of the container's device cgroup, or -1: the child moves itself in.
    pub cgroup_procs: c_int,
    /// Remount the root `nodev` (device rules without a device cgroup: devices.rs).
    pub nodev_root: bool,
    /// `process.terminal`: open a pty in the container's /dev/ptmx, this size (0: unset).
    pub terminal: Option<libc::winsize>,
    /// The socket the pty's master is sent on (SCM_RIGHTS), or -1.
    pub console_socket: c_int,
    /// The start gate's read end (`Stdio::start_gate`), or -1.
    pub start_gate: c_int,
    pub no_new_privs: bool,
    /// `linux.seccomp` compiled for this machine, and its `SECCOMP_FILTER_FLAG_*` bits
    /// (installed by the child: before the capabilities drop, or last with no_new_privs).
    pub seccomp: Option<(Vec<libc::sock_filter>, u32)>,
    pub rlimits: Vec<(c_int, libc::rlimit)>,
    pub oom_score_adj: Option<CString>,
    /// Kept alive for `argv_ptrs`/`envp_ptrs`.
    pub _argv: Vec<CString>,
    pub _envp: Vec<CString>,
    pub argv_ptrs: Vec<*const c_char>,
    pub envp_ptrs: Vec<*const c_char>,
    /// Paths to try with `execve`, in PATH order.
    pub candidates: Vec<CString>,
    pub program: String,
    /// True if argv[0] had no `/` and was looked up in PATH.
    pub searched_path: bool,
}

/// The default devices every container gets (runc's list): name, major, minor.
const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

impl CapMasks {
    /// Remove one capability from every set.
    pub fn drop_cap(&mut self, cap: u32) {
        let bit = !(1u64 << cap);
        self.bounding &= bit;
        self.effective &= bit;
        self.permitted &= bit;
        self.inheritable &= bit;
        self.ambient &= bit;
    }
}

impl Plan {
    /// Device rules that no cgroup can enforce: no `CAP_MKNOD`, and the root and every bind
    /// mount `nodev`, so that neither a new node nor one shipped in an image layer or a
    /// mounted directory can be opened. Only the `/dev` tmpfs keeps device nodes: the
    /// standard ones the child makes there.
    pub fn without_devices(&mut self) {
        if let Some(c) = &mut self.caps {
            c.drop_cap(CAP_MKNOD);
        }
        self.nodev_root = true;
        for m in &mut self.mounts {
            if matches!(m.kind, MountKind::Bind { .. }) {
                m.flags |= libc::MS_NODEV;
            }
        }
    }

    /// Check `spec` and turn it into a plan. Fails on what the embedded executor cannot do.
    pub fn new(spec: &Spec) -> Result<Plan> {
        let invalid = |what: &str| RuntimeError::InvalidSpec {
            what: what.to_string(),
        };
        let root = spec.root().as_ref().ok_or_else(|| invalid("no root"))?;
        let rootfs = root.path();
        if !rootfs.is_absolute() {
            return Err(invalid(&format!(
                "root.path {rootfs:?} must be an absolute path"
            )));
        }
        let meta = std::fs::metadata(rootfs).map_err(|source| RuntimeError::Host {
            what: "cannot use root.path",
            path: rootfs.clone(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(invalid(&format!("root.path {rootfs:?} is not a directory")));
        }
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| invalid("no process"))?;
        let args = process.args().clone().unwrap_or_default();
        let program = args
            .first()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| invalid("process.args is empty"))?
            .clone();
        // A pseudo-terminal made inside the container's own devpts (as runc does), sized from
        // process.consoleSize; its master goes back to the parent (embedded.rs).
        let terminal = (process.terminal() == Some(true)).then(|| {
            let size = process.console_size();
            libc::winsize {
                ws_row: size.map_or(0, |b| b.height().min(u16::MAX as u64) as u16),
                ws_col: size.map_or(0, |b| b.width().min(u16::MAX as u64) as u16),
                ws_xpixel: 0,
                ws_ypixel: 0,
            }
        });

        let linux = spec.linux().clone().unwrap_or_default();
        let (clone_flags, join, loopback_up) = namespaces(spec)?;
        if linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(RuntimeError::Unsupported {
                executor: EXECUTOR,
                what: "user namespace id mappings".into(),
            });
        }
        let root_propagation = match linux.rootfs_propagation().as_deref() {
            None | Some("") | Some("private") | Some("rprivate") => libc::MS_PRIVATE | libc::MS_REC,
            Some("slave") | Some("rslave") => libc::MS_SLAVE | libc::MS_REC,
            Some(other) => {
                return Err(RuntimeError::Unsupported {
                    executor: EXECUTOR,
                    what: format!("rootfsPropagation {other:?}"),
                });
            }
        };

        let mut mounts = Vec::new();
        let mut dev_fs = false;
        let mut has_pts = false;
        for m in spec.mounts().iter().flatten() {
            let mut op = mount_op(m)?;
            if m.typ().as_deref() == Some("sysfs")
                && clone_flags & libc::CLONE_NEWNET as u64 == 0
                && crate::userns::in_user_namespace()
            {
                // Rootless with the host's network: the kernel mounts sysfs only for a network
                // namespace the user namespace owns; bind the host's /sys instead (as podman),
                // with the same flags (read-only unless --privileged).
                op.kind = MountKind::Bind {
                    source: c"/sys".into(),
                    flags: libc::MS_BIND | libc::MS_REC,
                };
            }
            let dest = RootPath::new(m.destination())?;
            if matches!(op.kind, MountKind::Fs { .. }) && dest.full.as_bytes() == b"dev" {
                dev_fs = true;
            }
            if dest.full.as_bytes() == b"dev/pts" {
                has_pts = true;
            }
            mounts.push(op);
        }

        let dev_dir = RootPath::new(Path::new("/dev"))?;
        let mut devices = Vec::new();
        let mut dev_symlinks = Vec::new();
        if dev_fs {
            for (name, major, minor) in DEFAULT_DEVICES {
                devices.push(DeviceOp {
                    parent: RootPath::new(Path::new("/dev"))?,
                    name: cstr(name, "device")?,
                    mode: libc::S_IFCHR | 0o666,
                    rdev: libc::makedev(major, minor),
                    uid: 0,
                    gid: 0,
                    host: cstr(&format!("/dev/{name}"), "device")?,
                    describe: format!("/dev/{name}"),
                });
            }
            let mut links = vec![
                ("/proc/self/fd", "fd"),
                ("/proc/self/fd/0", "stdin"),
                ("/proc/self/fd/1", "stdout"),
                ("/proc/self/fd/2", "stderr"),
            ];
            if has_pts {
                links.push(("pts/ptmx", "ptmx"));
            }
            for (target, name) in links {
                dev_symlinks.push((cstr(target, "symlink")?, cstr(name, "symlink")?));
            }
        }
        for d in linux.devices().iter().flatten() {
            let path = d.path();
            let parent = RootPath::new(path.parent().unwrap_or(Path::new("/")))?;
            let name = path
                .file_name()
                .ok_or_else(|| invalid(&format!("device path {path:?} has no name")))?;
            let kind = match d.typ() {
                oci_spec::runtime::LinuxDeviceType::C | oci_spec::runtime::LinuxDeviceType::U => {
                    libc::S_IFCHR
                }
                oci_spec::runtime::LinuxDeviceType::B => libc::S_IFBLK,
                oci_spec::runtime::LinuxDeviceType::P => libc::S_IFIFO,
                other => return Err(invalid(&format!("device {path:?} has type {other:?}"))),
            };
            devices.push(DeviceOp {
                parent,
                name: cstring(name.as_bytes().to_vec(), path)?,
                mode: kind | (d.file_mode().unwrap_or(0o666) & 0o7777),
                rdev: libc::makedev(d.major() as u32, d.minor() as u32),
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
                host: cstring(path.as_os_str().as_bytes().to_vec(), path)?,
                describe: path.display().to_string(),
            });
        }

        let paths = |list: &Option<Vec<String>>| -> Result<Vec<CString>> {
            list.iter()
                .flatten()
                .map(|p| {
                    if !p.starts_with('/') {
                        return Err(invalid(&format!("path {p:?} must be absolute")));
                    }
                    cstr(p, "path")
                })
                .collect()
        };
        let masked = paths(linux.masked_paths())?;
        let seccomp = match linux.seccomp() {
            None => None,
            Some(s) => {
                let native =
                    crate::seccomp::native_arch().ok_or_else(|| RuntimeError::Unsupported {
                        executor: "embedded",
                        what: format!("seccomp on {}", std::env::consts::ARCH),
                    })?;
                let filter =
                    crate::seccomp::compile(s, native).map_err(|e| invalid(&e.to_string()))?;
                Some((filter, crate::seccomp::filter_flags(s)))
            }
        };
        let readonly_paths = paths(linux.readonly_paths())?;

        let new_uts = clone_flags & libc::CLONE_NEWUTS as u64 != 0;
        let hostname = match spec.hostname() {
            Some(h) if !h.is_empty() => {
                if !new_uts {
                    return Err(invalid("hostname is set without a new uts namespace"));
                }
                Some(cstr(h, "hostname")?)
            }
            _ => None,
        };
        let domainname = match spec.domainname() {
            Some(h) if !h.is_empty() && new_uts => Some(cstr(h, "domainname")?),
            _ => None,
        };

        let cwd_path = process.cwd();
        if !cwd_path.is_absolute() {
            return Err(invalid(&format!(
                "process.cwd {cwd_path:?} must be absolute"
            )));
        }
        let cwd = RootPath::new(cwd_path)?;
        let cwd_abs = cstring([b"/".as_slice(), cwd.full.as_bytes()].concat(), cwd_path)?;
        let cwd_abs = if cwd.prefixes.is_empty() {
            CString::from(c"/")
        } else {
            cwd_abs
        };

        let user = process.user();
        let caps = process.capabilities().as_ref().map(cap_masks);

        let mut rlimits = Vec::new();
        for r in process.rlimits().iter().flatten() {
            rlimits.push((
                rlimit_resource(r.typ()),
                libc::rlimit {
                    rlim_cur: r.soft(),
                    rlim_max: r.hard(),
                },
            ));
        }

        let env = process.env().clone().unwrap_or_default();
        let argv: Vec<CString> = args
            .iter()
            .map(|a| cstr(a, "argument"))
            .collect::<Result<_>>()?;
        let envp: Vec<CString> = env
            .iter()
            .map(|e| cstr(e, "environment variable"))
            .collect::<Result<_>>()?;
        let mut argv_ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp_ptrs: Vec<*const c_char> = envp.iter().map(|e| e.as_ptr()).collect();
        envp_ptrs.push(std::ptr::null());

        let searched_path = !program.contains('/');
        let candidates = if searched_path {
            // Like Go's exec.LookPath in runc: PATH from the process env; an empty entry is ".".
            let path_var = env
                .iter()
                .rev()
                .find_map(|e| e.strip_prefix("PATH="))
                .unwrap_or("");
            path_var
                .split(':')
                .filter(|_| !path_var.is_empty())
                .map(|dir| {
                    let dir = if dir.is_empty() { "." } else { dir };
                    cstr(&format!("{dir}/{program}"), "program path")
                })
                .collect::<Result<_>>()?
        } else {
            vec![cstr(&program, "program")?]
        };

        Ok(Plan {
            rootfs: cstring(rootfs.as_os_str().as_bytes().to_vec(), rootfs)?,
            rootfs_display: rootfs.clone(),
            readonly_root: root.readonly().unwrap_or(false),
            terminal,
            console_socket: -1,
            start_gate: -1,
            clone_flags,
            join,
            loopback_up,
            root_propagation,
            mounts,
            devices,
            dev_symlinks,
            dev_dir,
            masked,
            readonly_paths,
            hostname,
            domainname,
            cwd,
            cwd_abs,
            uid: user.uid(),
            gid: user.gid(),
            groups: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask().unwrap_or(0o022),
            caps,
            device_rules: linux
                .resources()
                .as_ref()
                .and_then(|r| r.devices().clone())
                .unwrap_or_default(),
            cgroup_procs: -1,
            nodev_root: false,
            no_new_privs: process.no_new_privileges().unwrap_or(false),
            seccomp,
            rlimits,
            oom_score_adj: process
                .oom_score_adj()
                .map(|v| cstr(&v.to_string(), "oom_score_adj"))
                .transpose()?,
            _argv: argv,
            _envp: envp,
            argv_ptrs,
            envp_ptrs,
            candidates,
            program,
            searched_path,
        })
    }

    /// The raw fds of namespaces to join, for the child.
    pub fn join_fds(&self) -> impl Iterator<Item = (c_int, c_int)> + '_ {
        self.join.iter().map(|(fd, t, _)| (fd.as_raw_fd(), *t))
    }
}

/// A namespace joined by path: its fd, its `CLONE_NEW*` type, a description.
pub(crate) type JoinNs = (OwnedFd, c_int, String);

/// Clone flags, namespaces to join, and whether a new network namespace needs `lo` up.
fn namespaces(spec: &Spec) -> Result<(u64, Vec<JoinNs>, bool)> {
    let mut flags: u64 = 0;
    let mut join = Vec::new();
    let mut loopback = false;
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for ns in &list {
        let (flag, name) = match ns.typ() {
            LinuxNamespaceType::Mount => (libc::CLONE_NEWNS, "mount"),
            LinuxNamespaceType::Pid => (libc::CLONE_NEWPID, "pid"),
            LinuxNamespaceType::Uts => (libc::CLONE_NEWUTS, "uts"),
            LinuxNamespaceType::Ipc => (libc::CLONE_NEWIPC, "ipc"),
            LinuxNamespaceType::Network => (libc::CLONE_NEWNET, "network"),
            LinuxNamespaceType::Cgroup => (libc::CLONE_NEWCGROUP, "cgroup"),
            LinuxNamespaceType::User | LinuxNamespaceType::Time => {
                return Err(RuntimeError::Unsupported {
                    executor: EXECUTOR,
                    what: format!("{} namespaces", ns.typ()),
                });
            }
        };
        match ns.path() {
            None => {
                flags |= flag as u64;
                if flag == libc::CLONE_NEWNET {
                    loopback = true;
                }
            }
            Some(path) => {
                // Joining a mount or pid namespace would need the rootfs and init set up
                // differently; builds never ask for it.
                if flag == libc::CLONE_NEWNS || flag == libc::CLONE_NEWPID {
                    return Err(RuntimeError::Unsupported {
                        executor: EXECUTOR,
                        what: format!("joining an existing {name} namespace"),
                    });
                }
                let fd = std::fs::File::open(path).map_err(|source| RuntimeError::Host {
                    what: "cannot open namespace",
                    path: path.clone(),
                    source,
                })?;
                join.push((
                    OwnedFd::from(fd),
                    flag,
                    format!("{name} namespace {path:?}"),
                ));
            }
        }
    }
    if flags & libc::CLONE_NEWNS as u64 == 0 {
        // Without its own mount namespace the container's mounts would land on the host.
        return Err(RuntimeError::InvalidSpec {
            what: "the spec must list a mount namespace".into(),
        });
    }
    Ok((flags, join, loopback))
}

fn mount_op(m: &oci_spec::runtime::Mount) -> Result<MountOp> {
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(RuntimeError::InvalidSpec {
            what: format!("mount destination {dest:?} must be absolute"),
        });
    }
    let opts = mountopts::parse(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().clone().unwrap_or_default();
    let source = m.source().clone().unwrap_or_default();
    let describe = format!("mount {typ} {source:?} on {dest:?}");
    // As runc: procfs on /proc and nothing below it. Another file system there would hide
    // the /proc/self/fd paths this executor mounts through and the masked /proc entries. Nor
    // anything on the root itself. The child checks again where the destination resolves.
    let target = RootPath::new(dest)?;
    let procfs = typ == "proc";
    let written = target.written();
    if let Some(why) = refused_destination(written, written, procfs) {
        return Err(RuntimeError::InvalidSpec {
            what: format!("{describe}: {}", why.explain()),
        });
    }
    let is_bind = opts.bind.is_some() || typ == "bind" || typ == "rbind";
    let (kind, file_target) = if is_bind {
        if !source.is_absolute() {
            return Err(RuntimeError::InvalidSpec {
                what: format!("{describe}: a bind source must be an absolute host path"),
            });
        }
        let meta = std::fs::metadata(&source).map_err(|e| RuntimeError::Host {
            what: "cannot use bind mount source",
            path: source.clone(),
            source: e,
        })?;
        let flags = match (opts.bind, typ.as_str()) {
            (Some(f), _) => f,
            (None, "rbind") => libc::MS_BIND | libc::MS_REC,
            (None, _) => libc::MS_BIND,
        };
        (
            MountKind::Bind {
                source: cstring(source.as_os_str().as_bytes().to_vec(), &source)?,
                flags,
            },
            !meta.is_dir(),
        )
    } else {
        if typ.is_empty() {
            return Err(RuntimeError::InvalidSpec {
                what: format!("mount on {dest:?} has no type"),
            });
        }
        if typ == "cgroup" || typ == "cgroup2" {
            return Err(RuntimeError::Unsupported {
                executor: EXECUTOR,
                what: format!("{describe} (cgroup mounts)"),
            });
        }
        let src = if source.as_os_str().is_empty() {
            typ.clone()
        } else {
            source.to_string_lossy().into_owned()
        };
        (
            MountKind::Fs {
                source: cstr(&src, "mount source")?,
                fstype: cstr(&typ, "mount type")?,
                data: if opts.data.is_empty() {
                    None
                } else {
                    Some(cstr(&opts.data, "mount options")?)
                },
            },
            false,
        )
    };
    Ok(MountOp {
        target,
        kind,
        flags: opts.flags,
        propagation: opts.propagation,
        file_target,
        describe,
        destination: dest.to_path_buf(),
        procfs,
    })
}

fn cap_masks(c: &LinuxCapabilities) -> CapMasks {
    let m = |s: &Option<oci_spec::runtime::Capabilities>| s.as_ref().map(caps::mask).unwrap_or(0);
    CapMasks {
        bounding: m(c.bounding()),
        effective: m(c.effective()),
        permitted: m(c.permitted()),
        inheritable: m(c.inheritable()),
        ambient: m(c.ambient()),
        last_cap: caps::last_cap(),
    }
}

fn rlimit_resource(t: PosixRlimitType) -> c_int {
    (match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as c_int
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_paths_are_cleaned_and_clamped() {
        let p = RootPath::new(Path::new("/a/./b/../../../c/d")).unwrap();
        assert_eq!(p.full.as_bytes(), b"c/d");
        assert_eq!(p.prefixes[0].as_bytes(), b"c");
        assert_eq!(p.prefixes[1].as_bytes(), b"c/d");
        assert_eq!(p.names[1].as_bytes(), b"d");
        let root = RootPath::new(Path::new("/")).unwrap();
        assert_eq!(root.full.as_bytes(), b".");
        assert!(root.prefixes.is_empty());
    }

    #[test]
    fn path_lookup_follows_process_env() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = crate::docker_default_spec();
        spec.root_mut()
            .as_mut()
            .unwrap()
            .set_path(dir.path().to_path_buf());
        let p = spec.process_mut().as_mut().unwrap();
        p.set_args(Some(vec!["ls".into()]));
        p.set_env(Some(vec!["PATH=/x::/y".into()]));
        let plan = Plan::new(&spec).unwrap();
        let c: Vec<_> = plan
            .candidates
            .iter()
            .map(|c| c.to_str().unwrap())
            .collect();
        assert_eq!(c, ["/x/ls", "./ls", "/y/ls"]);
    }

    #[test]
    fn missing_mount_namespace_and_user_namespace_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = crate::docker_default_spec();
        spec.root_mut()
            .as_mut()
            .unwrap()
            .set_path(dir.path().to_path_buf());
        let linux = spec.linux_mut().as_mut().unwrap();
        linux.set_namespaces(Some(vec![]));
        assert!(matches!(
            Plan::new(&spec),
            Err(RuntimeError::InvalidSpec { .. })
        ));
        let mut ns = oci_spec::runtime::LinuxNamespace::default();
        ns.set_typ(LinuxNamespaceType::User);
        let mut mnt = oci_spec::runtime::LinuxNamespace::default();
        mnt.set_typ(LinuxNamespaceType::Mount);
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_namespaces(Some(vec![mnt, ns]));
        assert!(matches!(
            Plan::new(&spec),
            Err(RuntimeError::Unsupported { .. })
        ));
    }

    #[test]
    fn mounts_over_or_below_proc_are_refused_as_runc_does() {
        let dir = tempfile::tempdir().unwrap();
        for (dest, typ) in [
            ("/proc", "tmpfs"),
            ("/proc/sys", "tmpfs"),
            ("/x/../proc/1", "proc"),
        ] {
            let mut spec = crate::docker_default_spec();
            spec.root_mut()
                .as_mut()
                .unwrap()
                .set_path(dir.path().to_path_buf());
            let mut mounts = spec.mounts().clone().unwrap();
            mounts.push(crate::tmpfs_mount(dest, &[]));
            if typ == "proc" {
                mounts.last_mut().unwrap().set_typ(Some("proc".into()));
            }
            spec.set_mounts(Some(mounts));
            let err = Plan::new(&spec).err().expect(dest);
            assert!(err.to_string().contains("/proc"), "{dest}: {err}");
        }
        // The default spec's own procfs on /proc is fine.
        let mut spec = crate::docker_default_spec();
        spec.root_mut()
            .as_mut()
            .unwrap()
            .set_path(dir.path().to_path_buf());
        assert!(Plan::new(&spec).is_ok());
    }

    #[test]
    fn destinations_are_checked_where_they_resolve() {
        use Refusal::*;
        let cases: [(&str, &str, bool, Option<Refusal>); 14] = [
            ("tmp", "tmp", false, None),
            ("t", "tmp", false, None),
            ("proc", "proc", true, None),
            ("sys", "sys", false, None),
            ("sys/fs/cgroup", "sys/fs/cgroup", false, None),
            ("dev", "dev", false, None),
            ("d/shm", "dev/shm", false, None),
            ("", "", false, Some(Root)),
            ("r", "", false, Some(Root)),
            ("p/sys", "proc/sys", false, Some(BelowProc)),
            ("r/proc", "proc", false, Some(ProcNotProcfs)),
            ("r/proc", "proc", true, Some(Redirected)),
            ("r/sys", "sys", false, Some(Redirected)),
            ("d", "dev", false, Some(Redirected)),
        ];
        for (written, resolved, procfs, want) in cases {
            assert_eq!(
                refused_destination(written.as_bytes(), resolved.as_bytes(), procfs),
                want,
                "{written} -> {resolved}"
            );
        }
        assert_eq!(
            refused_destination(b"x", b"sysfoo", false),
            None,
            "a name that only starts like sys"
        );
        for r in [Root, BelowProc, ProcNotProcfs, Redirected] {
            assert_eq!(Refusal::from_code(r as i32), Some(r));
        }
    }

    #[test]
    fn a_mount_on_the_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for dest in ["/", "/x/..", "/../.."] {
            let mut spec = crate::docker_default_spec();
            spec.root_mut()
                .as_mut()
                .unwrap()
                .set_path(dir.path().to_path_buf());
            let mut mounts = spec.mounts().clone().unwrap();
            mounts.push(crate::tmpfs_mount(dest, &[]));
            spec.set_mounts(Some(mounts));
            let err = Plan::new(&spec).err().expect(dest);
            assert!(
                err.to_string().contains("hide the container's whole root"),
                "{dest}: {err}"
            );
        }
    }

    #[test]
    fn relative_root_is_invalid() {
        let mut spec = crate::docker_default_spec();
        spec.root_mut().as_mut().unwrap().set_path("rootfs".into());
        let err = Plan::new(&spec).err().unwrap();
        assert!(err.to_string().contains("absolute"), "{err}");
    }
}
