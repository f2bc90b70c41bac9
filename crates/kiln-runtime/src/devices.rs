//! `linux.resources.devices`: which device nodes a container may open, and which it may make.
//!
//! A container keeps `CAP_MKNOD` (Docker's default set does, and BuildKit's RUN may `mknod`), so
//! without a rule it could make a node for the host's disk and read it. The embedded executor
//! enforces the spec's device rules with a cgroup of the v1 `devices` controller made for the
//! container (`<hierarchy>/<our cgroup>/kiln-<pid>-<n>`): the rules are written to
//! `devices.deny`/`devices.allow` before the clone, the child moves itself in (writes `0` to
//! `cgroup.procs`, an fd the parent opened) before anything else, and the directory is removed
//! once the container has been reaped. Without a v1 `devices` hierarchy (cgroup v2 only) the
//! cgroup is made in the v2 hierarchy with an eBPF device program attached (`bpf.rs`). Where
//! neither can be made (a read-only /sys/fs/cgroup, BPF refused), the container loses
//! `CAP_MKNOD` and its root and bind mounts are `nodev` instead: it cannot make device nodes
//! (FIFOs still work) nor open any outside its `/dev`.

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Result, RuntimeError};

mod bpf;

/// A device cgroup made for one container; removed on drop.
#[derive(Debug)]
pub(crate) struct DeviceCgroup {
    pub dir: PathBuf,
    /// `cgroup.procs` of `dir`, opened for writing: the child writes `0` to it.
    pub procs: OwnedFd,
}

/// How the spec's device rules can be enforced here.
pub(crate) enum Enforcement {
    /// No rules in the spec.
    None,
    Cgroup(DeviceCgroup),
    /// No devices controller to hold the rules: see [`crate::plan::Plan::without_devices`].
    Unenforceable,
}

/// The v1 devices rule line for one OCI rule (`a`, `c 1:3 rwm`, `b *:* m`).
pub(crate) fn rule_line(r: &LinuxDeviceCgroup) -> String {
    let typ = match r.typ() {
        None | Some(LinuxDeviceType::A) => return "a".into(),
        Some(LinuxDeviceType::B) => 'b',
        // `u` (unbuffered char) is a char device to the kernel; `p` (FIFO) has no rules.
        Some(_) => 'c',
    };
    let num = |v: Option<i64>| v.map_or("*".to_string(), |n| n.to_string());
    let access = r.access().clone().unwrap_or_else(|| "rwm".into());
    format!("{typ} {}:{} {access}", num(r.major()), num(r.minor()))
}

/// Make the cgroup for `rules`, or say how else they are enforced: the v1 devices controller
/// where it is mounted, else an eBPF device program on a cgroup v2 (for rules of Docker's
/// shape: deny all, then allows), else [`Enforcement::Unenforceable`].
pub(crate) fn enforce(rules: &[LinuxDeviceCgroup]) -> Result<Enforcement> {
    if rules.is_empty() {
        return Ok(Enforcement::None);
    }
    if let Some(parent) = our_cgroup(V1_DEVICES) {
        return enforce_v1(&parent, rules);
    }
    enforce_v2(rules)
}

fn enforce_v1(parent: &Path, rules: &[LinuxDeviceCgroup]) -> Result<Enforcement> {
    let Some(cg) = make_cgroup(parent)? else {
        return Ok(Enforcement::Unenforceable);
    };
    for r in rules {
        let file = cg.dir.join(if r.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        });
        // One rule per write: the kernel parses one per call.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|mut f| f.write_all(rule_line(r).as_bytes()))
            .map_err(|source| RuntimeError::Host {
                what: "cannot write the device rule",
                path: file.clone(),
                source: io::Error::new(source.kind(), format!("{:?}: {source}", rule_line(r))),
            })?;
    }
    Ok(Enforcement::Cgroup(cg))
}

/// A cgroup v2 of our own with a `BPF_PROG_TYPE_CGROUP_DEVICE` program attached (what runc and
/// crun do on cgroup v2; the kernel runs it on the task's v2 cgroup even where the devices
/// controller is bound to v1, so this is testable on a hybrid host).
pub(crate) fn enforce_v2(rules: &[LinuxDeviceCgroup]) -> Result<Enforcement> {
    let (Some(parent), Some(prog)) = (our_cgroup(V2), bpf::program(rules)) else {
        return Ok(Enforcement::Unenforceable);
    };
    let Some(cg) = make_cgroup(&parent)? else {
        return Ok(Enforcement::Unenforceable);
    };
    let dir = std::fs::File::open(&cg.dir).map_err(|source| RuntimeError::Host {
        what: "cannot open the device cgroup",
        path: cg.dir.clone(),
        source,
    })?;
    match bpf::load_and_attach(&prog, &dir) {
        Ok(()) => Ok(Enforcement::Cgroup(cg)),
        // No BPF here (a seccomp filter, a kernel without CGROUP_BPF): as if no cgroup.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM | libc::EINVAL | libc::ENOSYS)
            ) =>
        {
            Ok(Enforcement::Unenforceable)
        }
        Err(source) => Err(RuntimeError::Host {
            what: "cannot attach the device program to",
            path: cg.dir.clone(),
            source,
        }),
    }
}

/// `kiln-<pid>-<n>` below `parent`, with its `cgroup.procs` open; `None` where the hierarchy
/// may not be changed (kiln in a container with /sys/fs/cgroup read-only).
fn make_cgroup(parent: &Path) -> Result<Option<DeviceCgroup>> {
    static N: AtomicU64 = AtomicU64::new(0);
    remove_stale(parent);
    let dir = parent.join(format!(
        "kiln-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied
            ) =>
        {
            return Ok(None);
        }
        Err(source) => {
            return Err(RuntimeError::Host {
                what: "cannot create the device cgroup",
                path: dir,
                source,
            });
        }
    }
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))
        .map(OwnedFd::from);
    // From here on, dropping `cg` removes the directory.
    let cg = |procs| DeviceCgroup {
        dir: dir.clone(),
        procs,
    };
    match procs {
        Ok(p) => Ok(Some(cg(p))),
        Err(source) => {
            let _ = std::fs::remove_dir(&dir);
            Err(RuntimeError::Host {
                what: "cannot open the device cgroup",
                path: dir.clone(),
                source,
            })
        }
    }
}

impl Drop for DeviceCgroup {
    fn drop(&mut self) {
        // The container has been reaped, and with it (PID 1 of its namespace) every process
        // in the cgroup; a few retries cover tasks the kernel is still tearing down.
        for _ in 0..50 {
            match std::fs::remove_dir(&self.dir) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                _ => return,
            }
        }
    }
}

/// Which hierarchy [`our_cgroup`] looks for.
const V1_DEVICES: Option<&str> = Some("devices");
const V2: Option<&str> = None;

/// Our own cgroup in the v1 hierarchy of `controller` (or, for `None`, the v2 one), when it
/// is mounted.
fn our_cgroup(controller: Option<&str>) -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let ours = cgroups.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (id, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let hit = match controller {
            Some(c) => controllers.split(',').any(|x| x == c),
            None => id == "0" && controllers.is_empty(),
        };
        hit.then(|| path.to_string())
    })?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for l in mountinfo.lines() {
        // id parent maj:min root mountpoint options [optional...] - fstype source superoptions
        let (pre, post) = l.split_once(" - ")?;
        let mut post = post.split(' ');
        let (fstype, _, superopts) = (post.next()?, post.next()?, post.next()?);
        let hit = match controller {
            Some(c) => fstype == "cgroup" && superopts.split(',').any(|o| o == c),
            None => fstype == "cgroup2",
        };
        if !hit {
            continue;
        }
        let pre: Vec<&str> = pre.split(' ').collect();
        let (root, mountpoint) = (*pre.get(3)?, *pre.get(4)?);
        // Our path as seen from this mount's root.
        let rel = ours
            .strip_prefix(root)
            .unwrap_or(&ours)
            .trim_start_matches('/');
        let dir = Path::new(mountpoint).join(rel);
        return dir.join("cgroup.procs").exists().then_some(dir);
    }
    None
}

/// Remove the device cgroups of kiln processes that died before removing theirs (`kill -9`).
fn remove_stale(parent: &Path) {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        let Ok(rd) = std::fs::read_dir(parent) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("kiln-"))
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    });
}

/// Docker's default device rules: deny everything, allow `mknod` of any node, and reading
/// and writing only the standard ones (moby's `DefaultLinuxSpec`, without `/dev/net/tun`).
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |allow: bool,
                typ: LinuxDeviceType,
                major: Option<i64>,
                minor: Option<i64>,
                access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow)
            .set_typ(Some(typ))
            .set_major(major)
            .set_minor(minor)
            .set_access(Some(access.into()));
        r
    };
    use LinuxDeviceType::{A, B, C};
    vec![
        rule(false, A, None, None, "rwm"),
        rule(true, C, None, None, "m"),
        rule(true, B, None, None, "m"),
        rule(true, C, Some(1), Some(3), "rwm"), // null
        rule(true, C, Some(1), Some(8), "rwm"), // random
        rule(true, C, Some(1), Some(7), "rwm"), // full
        rule(true, C, Some(5), Some(0), "rwm"), // tty
        rule(true, C, Some(1), Some(5), "rwm"), // zero
        rule(true, C, Some(1), Some(9), "rwm"), // urandom
        rule(true, C, Some(5), Some(1), "rwm"), // console
        rule(true, C, Some(136), None, "rwm"),  // pts/*
        rule(true, C, Some(5), Some(2), "rwm"), // ptmx
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_written_as_the_v1_controller_reads_them() {
        let lines: Vec<String> = default_device_rules().iter().map(rule_line).collect();
        assert_eq!(lines[0], "a");
        assert_eq!(lines[1], "c *:* m");
        assert_eq!(lines[2], "b *:* m");
        assert_eq!(lines[3], "c 1:3 rwm");
        assert!(lines.contains(&"c 136:* rwm".to_string()));
    }
}
