//! Docker's (and BuildKit's) default runtime spec: capabilities, mounts, masked and read-only
//! paths, and the helpers a builder uses to adjust it.

use std::path::PathBuf;

use oci_spec::runtime::{
    Capabilities, Linux, LinuxCapabilities, LinuxNamespace, LinuxNamespaceType, Mount,
    PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec, User,
};

pub use crate::caps::default_capabilities;

/// The `PATH` Docker and BuildKit give a process whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's masked paths (moby `oci/defaults.go`): hidden behind `/dev/null` or an empty
/// read-only tmpfs.
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Docker's read-only paths.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// How a container reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Share the host's network namespace (BuildKit's default for RUN, so package managers work).
    Host,
    /// A new network namespace with only loopback, up (`--network=none`).
    None,
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

/// Docker's default mounts without `/sys/fs/cgroup` (a build needs no cgroup view, and this
/// host's hybrid cgroup layout has no single hierarchy to show).
pub fn default_mounts() -> Vec<Mount> {
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
    ]
}

/// A bind mount of a host path, read-only unless `readonly` is false.
pub fn bind_mount(source: impl Into<PathBuf>, dest: impl Into<PathBuf>, readonly: bool) -> Mount {
    let mut m = Mount::default();
    m.set_destination(dest.into());
    m.set_typ(Some("bind".to_string()));
    m.set_source(Some(source.into()));
    let mode = if readonly { "ro" } else { "rw" };
    m.set_options(Some(vec!["rbind".to_string(), mode.to_string()]));
    m
}

/// A tmpfs mount with extra options such as `size=64m` or `mode=1777`.
pub fn tmpfs_mount(dest: impl Into<PathBuf>, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(dest.into());
    m.set_typ(Some("tmpfs".to_string()));
    m.set_source(Some(PathBuf::from("tmpfs")));
    let mut opts = vec!["nosuid".to_string(), "nodev".to_string()];
    opts.extend(options.iter().map(|s| s.to_string()));
    m.set_options(Some(opts));
    m
}

/// The spec a Docker/BuildKit RUN step gets: root user, `cwd` `/`, `PATH` only, Docker's
/// capabilities (bounding = effective = permitted; inheritable and ambient empty, as moby sets
/// them since CVE-2022-24769), BuildKit's `RLIMIT_NOFILE` of 1048576, Docker's mounts, masked and
/// read-only paths, and mount/pid/uts/ipc namespaces with the host's network.
///
/// `root.path` is empty: set it to the prepared rootfs; set `process.args` to the command.
pub fn docker_default_spec() -> Spec {
    let caps: Capabilities = default_capabilities();
    let mut capabilities = LinuxCapabilities::default();
    capabilities.set_bounding(Some(caps.clone()));
    capabilities.set_effective(Some(caps.clone()));
    capabilities.set_permitted(Some(caps));
    capabilities.set_inheritable(Some(Capabilities::new()));
    capabilities.set_ambient(Some(Capabilities::new()));

    // BuildKit asks for 1048576, which needs CAP_SYS_RESOURCE above the current hard limit;
    // ask for no more than this process may grant, so the spec also works for runc here.
    let nofile_limit = nofile_hard_limit().min(1024 * 1024);
    // The builder cannot fail with every field set; `ok()` keeps this function panic-free.
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .hard(nofile_limit)
        .soft(nofile_limit)
        .build()
        .ok();

    let mut process = Process::default();
    process.set_terminal(Some(false));
    process.set_user(User::default());
    process.set_args(Some(vec!["/bin/sh".to_string()]));
    process.set_env(Some(vec![format!("PATH={DEFAULT_PATH}")]));
    process.set_cwd(PathBuf::from("/"));
    process.set_capabilities(Some(capabilities));
    process.set_rlimits(Some(nofile.into_iter().collect()));
    process.set_no_new_privileges(Some(false));

    let mut root = Root::default();
    root.set_path(PathBuf::new());
    root.set_readonly(Some(false));

    let mut linux = Linux::default();
    linux.set_namespaces(Some(
        [
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Ipc,
        ]
        .into_iter()
        .map(namespace)
        .collect(),
    ));
    // Docker's device rules: any node may be made (BuildKit allows mknod), only the standard
    // ones opened (see devices.rs for how the embedded executor enforces them).
    let mut resources = oci_spec::runtime::LinuxResources::default();
    resources.set_devices(Some(crate::devices::default_device_rules()));
    linux.set_resources(Some(resources));
    linux.set_masked_paths(Some(strings(DEFAULT_MASKED_PATHS)));
    linux.set_readonly_paths(Some(strings(DEFAULT_READONLY_PATHS)));

    let mut spec = Spec::default();
    spec.set_version("1.0.2".to_string());
    spec.set_process(Some(process));
    spec.set_root(Some(root));
    spec.set_hostname(None);
    spec.set_annotations(None);
    spec.set_mounts(Some(default_mounts()));
    spec.set_linux(Some(linux));
    // Docker's default seccomp profile, for Docker's default capabilities (a spec whose
    // capabilities change gets it again through `seccomp::set_seccomp`).
    let profile = crate::seccomp::default_profile();
    crate::seccomp::set_seccomp(&mut spec, Some(&profile))
        .expect("uname(2) gives the kernel version docker's default profile's minKernel needs");
    spec
}

/// Make `spec` privileged, as `docker run --privileged` and BuildKit's `RUN --security=insecure`:
/// every capability the kernel knows (bounding, effective, permitted), no masked or read-only
/// paths, `/sys` writable, no seccomp filter, and no device rules (any device node may be made
/// and opened). Host devices are not added to `/dev`.
pub fn set_insecure(spec: &mut Spec) {
    let caps = crate::caps::all_capabilities();
    if let Some(process) = spec.process_mut() {
        let mut c = process.capabilities().clone().unwrap_or_default();
        c.set_bounding(Some(caps.clone()));
        c.set_effective(Some(caps.clone()));
        c.set_permitted(Some(caps));
        process.set_capabilities(Some(c));
    }
    if let Some(linux) = spec.linux_mut() {
        linux.set_masked_paths(Some(Vec::new()));
        linux.set_readonly_paths(Some(Vec::new()));
        linux.set_seccomp(None);
        if let Some(resources) = linux.resources_mut() {
            resources.set_devices(None);
        }
    }
    if let Some(mounts) = spec.mounts_mut() {
        for m in mounts.iter_mut() {
            if m.typ().as_deref() == Some("sysfs")
                && let Some(opts) = m.options_mut()
            {
                for o in opts.iter_mut() {
                    if o == "ro" {
                        *o = "rw".to_string();
                    }
                }
            }
        }
    }
}

/// Select the host network or a new empty one (`--network=none`) in `spec`.
pub fn set_network(spec: &mut Spec, network: Network) {
    let linux = spec.linux_mut().get_or_insert_with(Linux::default);
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.retain(|ns| ns.typ() != LinuxNamespaceType::Network);
    if network == Network::None {
        namespaces.push(namespace(LinuxNamespaceType::Network));
    }
    linux.set_namespaces(Some(namespaces));
}

/// This process's hard `RLIMIT_NOFILE`, or BuildKit's value if a raise is permitted.
fn nofile_hard_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if has_sys_resource() {
        return 1024 * 1024;
    }
    lim.rlim_max
}

/// Whether this process holds CAP_SYS_RESOURCE (bit 24) in its effective set, in the initial
/// user namespace: the kernel checks rlimit raises there, so a rootless kiln (every capability,
/// but in its own namespace) may not raise them either.
fn has_sys_resource() -> bool {
    if crate::userns::in_user_namespace() {
        return false;
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

fn namespace(typ: LinuxNamespaceType) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ);
    ns
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
