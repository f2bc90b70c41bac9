//! A container's resource cgroups (`--memory`, `--cpus`, `--pids-limit`, and the accounting
//! `stats` reads): `kiln/<id>` in the v1 memory, cpu, cpuacct, pids, freezer and blkio
//! hierarchies, or in the v2 hierarchy where /sys/fs/cgroup is cgroup2.
//!
//! As root they go under the hierarchy roots. Rootless (kiln in a user namespace), a cgroup
//! may be made only where the host delegated a subtree to the user (a systemd user service or
//! scope with `Delegate=yes`, or a directory root chowned to the user): kiln looks for the
//! highest ancestor of its own cgroup that the user may write and puts `kiln/<id>` there.
//! Without one, the container runs without cgroups: limits cannot apply (one warning says so,
//! and the container still starts), `stats` reads the container's processes from /proc, and
//! `pause` says there is no freezer. Where each directory went is recorded in the container's
//! directory (`cgroups`, one path a line) for `stats`, `top`, `pause` and `rm`.
//!
//! The supervisor moves itself in before it clones the container and back out right after,
//! so the container's first process starts inside (nothing it forks can escape the limits)
//! and the supervisor is not counted. The directories are removed once the container is
//! reaped. (The device cgroup is the runtime's own: kiln-runtime/src/devices.rs.)

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::cgroup_host::{ROOT, is_v2};
use super::config::HostConfig;

const V1: &[&str] = &[
    "memory", "cpu", "cpuacct", "pids", "freezer", "blkio", "cpuset",
];
/// The file in the container's directory that lists its cgroup directories.
const RECORD: &str = "cgroups";

/// The cgroup directories of one container.
#[derive(Debug)]
pub struct Cgroups {
    /// (directory, the cgroup the supervisor came from in that hierarchy).
    dirs: Vec<(PathBuf, PathBuf)>,
    /// What could not apply (rootless without a delegated subtree): the warning to print.
    warning: Option<String>,
}

/// Whether this process runs in a user namespace other than the host's (rootless kiln, whose
/// uid 0 is an ordinary user's, or root in a container with a user namespace).
fn in_user_namespace() -> bool {
    kiln_runtime::userns::in_user_namespace()
}

/// This process's cgroup path in the v1 hierarchy of `controller` (or in v2, for "").
fn own_cgroup(controller: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = if controller.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        hit.then(|| path.to_string())
    })
}

/// The hierarchies kiln uses: ("", /sys/fs/cgroup) on v2, else each mounted v1 controller.
fn hierarchies() -> Vec<(&'static str, PathBuf)> {
    if is_v2() {
        vec![("", Path::new(ROOT).to_path_buf())]
    } else {
        V1.iter()
            .map(|c| (*c, Path::new(ROOT).join(c)))
            .filter(|(_, p)| p.join("cgroup.procs").exists())
            .collect()
    }
}

fn writable(p: &Path) -> bool {
    rustix::fs::access(p, rustix::fs::Access::WRITE_OK).is_ok()
}

/// Where `kiln/<id>` goes in hierarchy `mount` (controller `ctrl`): the hierarchy's root as
/// root; rootless, the highest ancestor of this process's own cgroup whose directory and
/// `cgroup.procs` the user may write (the delegated subtree), never the hierarchy's root.
fn base(ctrl: &str, mount: &Path, rootless: bool) -> Option<PathBuf> {
    if !rootless {
        return Some(mount.to_path_buf());
    }
    let own = own_cgroup(ctrl)?;
    let mut p = mount.join(own.trim_start_matches('/'));
    let mut best = None;
    while p.starts_with(mount) && p != mount {
        if !(writable(&p) && writable(&p.join("cgroup.procs"))) {
            break;
        }
        best = Some(p.clone());
        if !p.pop() {
            break;
        }
    }
    best
}

/// The directories of the container whose directory is `container_dir` (whether or not they
/// exist): those its supervisor recorded, else where root's kiln puts them.
pub fn dirs_of(container_dir: &Path, id: &str) -> Vec<PathBuf> {
    if let Ok(text) = std::fs::read_to_string(container_dir.join(RECORD)) {
        return text
            .lines()
            .filter(|l| !l.is_empty())
            .map(PathBuf::from)
            .collect();
    }
    if in_user_namespace() {
        return Vec::new();
    }
    if is_v2() {
        vec![Path::new(ROOT).join("kiln").join(id)]
    } else {
        V1.iter()
            .map(|c| Path::new(ROOT).join(c).join("kiln").join(id))
            .collect()
    }
}

/// The container's directory in hierarchy `ctrl` ("" for v2).
pub(super) fn dir_for(dirs: &[PathBuf], ctrl: &str) -> Option<PathBuf> {
    dirs.iter()
        .find(|d| {
            if ctrl.is_empty() {
                true
            } else {
                d.strip_prefix(ROOT)
                    .ok()
                    .and_then(|r| r.components().next())
                    .is_some_and(|c| c.as_os_str() == ctrl)
            }
        })
        .cloned()
}

fn write(dir: &Path, file: &str, value: &str) -> anyhow::Result<()> {
    let p = dir.join(file);
    std::fs::write(&p, value).with_context(|| format!("writing {value:?} to {}", p.display()))
}

/// v1 memory: the limit first (memsw may not be below it), then memory+swap, the soft limit.
fn write_memory_v1(dir: &Path, host: &HostConfig) -> anyhow::Result<()> {
    if host.memory > 0 {
        write(dir, "memory.limit_in_bytes", &host.memory.to_string())?;
    }
    if host.memory_swap != 0 {
        write(
            dir,
            "memory.memsw.limit_in_bytes",
            &host.memory_swap.to_string(),
        )?;
    }
    if host.memory_reservation > 0 {
        write(
            dir,
            "memory.soft_limit_in_bytes",
            &host.memory_reservation.to_string(),
        )?;
    }
    Ok(())
}

/// v2 memory: `memory.swap.max` holds the swap alone (runc's conversion), `memory.low` the
/// reservation.
fn write_memory_v2(dir: &Path, host: &HostConfig) -> anyhow::Result<()> {
    if host.memory > 0 {
        write(dir, "memory.max", &host.memory.to_string())?;
    }
    match host.memory_swap {
        0 => {}
        -1 => write(dir, "memory.swap.max", "max")?,
        s => write(
            dir,
            "memory.swap.max",
            &(s - host.memory).max(0).to_string(),
        )?,
    }
    if host.memory_reservation > 0 {
        write(dir, "memory.low", &host.memory_reservation.to_string())?;
    }
    Ok(())
}

/// runc's `ConvertCPUSharesToCgroupV2Value`: shares 2..262144 onto weight 1..10000.
fn shares_to_weight(shares: i64) -> i64 {
    1 + ((shares - 2) * 9999) / 262142
}

impl Cgroups {
    /// Makes the cgroups of container `id` with `host`'s limits, and records where they are in
    /// `container_dir`. Rootless without a delegated subtree, the cgroups that cannot be made
    /// are left out and [`Cgroups::warning`] says which limits do not apply.
    pub fn create(container_dir: &Path, id: &str, host: &HostConfig) -> anyhow::Result<Cgroups> {
        let rootless = in_user_namespace();
        let v2 = is_v2();
        let mut cg = Cgroups {
            dirs: Vec::new(),
            warning: None,
        };
        for (ctrl, mount) in hierarchies() {
            // A v1 cpuset cgroup takes no task until its cpus and mems are set: only when asked.
            if ctrl == "cpuset" && host.cpuset_cpus.is_empty() {
                continue;
            }
            let Some(base) = base(ctrl, &mount, rootless) else {
                continue;
            };
            let parent = base.join("kiln");
            if v2 && !parent.exists() {
                let made = std::fs::create_dir_all(&parent)
                    .with_context(|| format!("creating cgroup {}", parent.display()));
                match made {
                    Ok(()) => {}
                    Err(_) if rootless => continue,
                    Err(e) => return Err(e),
                }
                // Let the children use the controllers (best effort: some may be taken by v1,
                // or not delegated).
                for c in ["memory", "cpu", "pids", "io", "cpuset"] {
                    let _ = std::fs::write(base.join("cgroup.subtree_control"), format!("+{c}"));
                    let _ = std::fs::write(parent.join("cgroup.subtree_control"), format!("+{c}"));
                }
            }
            let dir = parent.join(id);
            match std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating cgroup {}", dir.display()))
            {
                Ok(()) => {}
                Err(_) if rootless => continue,
                Err(e) => return Err(e),
            }
            if ctrl == "cpuset" {
                // v1 cpuset: a new cgroup starts with empty cpus and mems; inherit them.
                for d in [&parent, &dir] {
                    for f in ["cpuset.cpus", "cpuset.mems"] {
                        let up = d.parent().map(|p| p.join(f));
                        let empty =
                            std::fs::read_to_string(d.join(f)).is_ok_and(|v| v.trim().is_empty());
                        if let (true, Some(up)) = (empty, up) {
                            let v = std::fs::read_to_string(&up).unwrap_or_default();
                            write(d, f, v.trim())?;
                        }
                    }
                }
            }
            let from = mount.join(own_cgroup(ctrl).unwrap_or_default().trim_start_matches('/'));
            cg.dirs.push((dir.clone(), from));
        }
        cg.record(container_dir)?;
        // (flag, is it asked, the v1 controller, the v2 file)
        let wanted = [
            ("--memory", host.memory > 0, "memory", "memory.max"),
            (
                "--memory-reservation",
                host.memory_reservation > 0 && host.memory == 0,
                "memory",
                "memory.low",
            ),
            ("--cpus", host.nano_cpus > 0, "cpu", "cpu.max"),
            (
                "--cpu-shares",
                host.cpu_shares > 0 && host.nano_cpus == 0,
                "cpu",
                "cpu.weight",
            ),
            (
                "--cpuset-cpus",
                !host.cpuset_cpus.is_empty(),
                "cpuset",
                "cpuset.cpus",
            ),
            ("--pids-limit", host.pids_limit > 0, "pids", "pids.max"),
        ];
        let made: Vec<PathBuf> = cg.dirs.iter().map(|(d, _)| d.clone()).collect();
        let mut missing = Vec::new();
        for (flag, on, ctrl, v2_file) in wanted {
            if !on {
                continue;
            }
            let dir = if v2 {
                dir_for(&made, "").filter(|d| d.join(v2_file).exists())
            } else {
                dir_for(&made, ctrl)
            };
            let Some(dir) = dir else {
                if rootless {
                    missing.push(flag);
                    continue;
                }
                if v2 {
                    anyhow::bail!(
                        "{flag}: the {ctrl} controller is not available in {}",
                        Path::new(ROOT).join("kiln").join(id).display()
                    );
                }
                anyhow::bail!("{flag}: no {ctrl} cgroup controller is mounted on this host");
            };
            match (v2, ctrl) {
                (true, "memory") => write_memory_v2(&dir, host)?,
                (true, "cpu") => {
                    if host.nano_cpus > 0 {
                        write(
                            &dir,
                            "cpu.max",
                            &format!("{} 100000", (host.nano_cpus / 10_000).max(1000)),
                        )?;
                    }
                    if host.cpu_shares > 0 {
                        write(
                            &dir,
                            "cpu.weight",
                            &shares_to_weight(host.cpu_shares).to_string(),
                        )?;
                    }
                }
                (true, "cpuset") | (false, "cpuset") => {
                    write(&dir, "cpuset.cpus", &host.cpuset_cpus)?
                }
                (true, _) => write(&dir, "pids.max", &host.pids_limit.to_string())?,
                (false, "memory") => write_memory_v1(&dir, host)?,
                (false, "cpu") => {
                    if host.nano_cpus > 0 {
                        write(&dir, "cpu.cfs_period_us", "100000")?;
                        write(
                            &dir,
                            "cpu.cfs_quota_us",
                            &(host.nano_cpus / 10_000).max(1000).to_string(),
                        )?;
                    }
                    if host.cpu_shares > 0 {
                        write(&dir, "cpu.shares", &host.cpu_shares.to_string())?;
                    }
                }
                (false, _) => write(&dir, "pids.max", &host.pids_limit.to_string())?,
            }
        }
        if !missing.is_empty() {
            let how = if v2 {
                "no delegated cgroup v2 subtree is writable by this user; run kiln inside one \
                 for limits (systemd: `systemd-run --user --scope -p Delegate=yes kiln run ...`)"
            } else {
                "this host has cgroup v1 and no cgroup directory is writable by this user (on v1 \
                 an administrator must create and chown one per controller)"
            };
            cg.warning = Some(format!(
                "cgroup limits cannot apply ({}): kiln runs rootless and {how}; the container \
                 runs without them",
                missing.join(", ")
            ));
        }
        Ok(cg)
    }

    /// Why limits asked for do not apply (rootless without a delegated cgroup subtree).
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// Writes the list of directories into the container's directory (an empty list when
    /// rootless kiln could make none).
    fn record(&self, container_dir: &Path) -> anyhow::Result<()> {
        let mut text = String::new();
        for (d, _) in &self.dirs {
            text.push_str(&d.to_string_lossy());
            text.push('\n');
        }
        let p = container_dir.join(RECORD);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    }

    /// Move this process (all its threads) into the container's cgroups.
    pub fn enter(&self) -> anyhow::Result<()> {
        let me = std::process::id().to_string();
        for (dir, _) in &self.dirs {
            write(dir, "cgroup.procs", &me)?;
        }
        Ok(())
    }

    /// Move this process back where it came from (the container stays inside).
    pub fn leave(&self) {
        let me = std::process::id().to_string();
        for (_, from) in &self.dirs {
            let _ = std::fs::write(from.join("cgroup.procs"), &me);
        }
    }

    /// How many times the kernel's OOM killer killed a process of the container's memory
    /// cgroup (v2 `memory.events`, v1 `memory.oom_control`: `oom_kill N`); 0 without one.
    pub fn oom_kills(&self) -> u64 {
        let dirs: Vec<PathBuf> = self.dirs.iter().map(|(d, _)| d.clone()).collect();
        let (dir, file) = if is_v2() {
            (dir_for(&dirs, ""), "memory.events")
        } else {
            (dir_for(&dirs, "memory"), "memory.oom_control")
        };
        dir.and_then(|d| std::fs::read_to_string(d.join(file)).ok())
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Removes the directories (retrying while the kernel still counts dying tasks), as
    /// dropping does.
    pub fn remove(self) {
        drop(self);
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        remove_dirs(self.dirs.drain(..).map(|(d, _)| d).collect());
    }
}

/// Keeps the kernel's cgroup migration lock warm while a container is being set up.
///
/// Moving a process between cgroups takes a lock whose writer first waits for an RCU grace
/// period (5-15 ms here, longer under load), unless another migration released it moments
/// earlier. The container's first migration ([`Cgroups::enter`]) would wait for it on the start
/// path. So this thread moves the process into the cgroup it is already in (a migration that
/// changes nothing) at once and then every few milliseconds: the grace period passes while the
/// rest of the setup runs, and the real migration then takes well under a millisecond. Drop it
/// before [`Cgroups::enter`]: a write after the enter would move the process back out.
pub struct MigrationWarmUp {
    /// Held around each write; `true` once stopped (no write after that).
    stopped: std::sync::Arc<std::sync::Mutex<bool>>,
}

impl MigrationWarmUp {
    /// Starts the thread; `None` where this process cannot write its own cgroup (rootless
    /// without delegation), when nothing is to be gained.
    pub fn start() -> Option<MigrationWarmUp> {
        let procs = own_procs_file()?;
        let stopped = std::sync::Arc::new(std::sync::Mutex::new(false));
        let stopped2 = stopped.clone();
        std::thread::Builder::new()
            .name("kiln-cgroup-warm".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let me = std::process::id().to_string();
                let t0 = std::time::Instant::now();
                // Bounded: a setup that takes longer than this pays one grace period.
                while t0.elapsed() < std::time::Duration::from_secs(2) {
                    {
                        let stopped = stopped2.lock().unwrap_or_else(|p| p.into_inner());
                        if *stopped || std::fs::write(&procs, &me).is_err() {
                            return;
                        }
                    }
                    std::thread::sleep(std::time::Duration::from_millis(4));
                }
            })
            .ok()?;
        Some(MigrationWarmUp { stopped })
    }
}

impl Drop for MigrationWarmUp {
    /// Waits for a write in progress, not for the thread (it ends at its next look).
    fn drop(&mut self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }
}

/// The `cgroup.procs` of the cgroup this process is in, in the first hierarchy kiln uses.
fn own_procs_file() -> Option<PathBuf> {
    let (ctrl, mount) = hierarchies().into_iter().next()?;
    let own = own_cgroup(ctrl)?;
    let p = mount.join(own.trim_start_matches('/')).join("cgroup.procs");
    writable(&p).then_some(p)
}

/// Removes cgroup directories, waiting up to 2 s for them to empty.
pub fn remove_dirs(dirs: Vec<PathBuf>) {
    for d in dirs {
        for _ in 0..200 {
            match std::fs::remove_dir(&d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }
}

/// Freezes (`pause`) or thaws (`unpause`) every process of the container whose directory is
/// `container_dir` and waits until the kernel reports it done: the v1 freezer's
/// `freezer.state`, or v2's `cgroup.freeze`.
pub fn freeze(container_dir: &Path, id: &str, frozen: bool) -> anyhow::Result<()> {
    let v2 = is_v2();
    let dirs = dirs_of(container_dir, id);
    let verb = if frozen { "pause" } else { "unpause" };
    // (directory, file written, value, file read back, what it reads when done)
    let (dir, file, value, status, want) = if v2 {
        (
            dir_for(&dirs, ""),
            "cgroup.freeze",
            if frozen { "1" } else { "0" },
            "cgroup.events",
            if frozen { "frozen 1" } else { "frozen 0" },
        )
    } else {
        let state = if frozen { "FROZEN" } else { "THAWED" };
        (
            dir_for(&dirs, "freezer"),
            "freezer.state",
            state,
            "freezer.state",
            state,
        )
    };
    let Some(dir) = dir.filter(|d| d.join(file).exists()) else {
        if in_user_namespace() {
            anyhow::bail!(
                "cannot {verb} the container: it has no freezer cgroup (kiln runs rootless and \
                 no delegated cgroup subtree was writable when it started)"
            );
        }
        anyhow::bail!(
            "cannot {verb} the container: no freezer cgroup at {} (this host has no cgroup freezer)",
            if v2 {
                Path::new(ROOT).join("kiln").join(id)
            } else {
                Path::new(ROOT).join("freezer").join("kiln").join(id)
            }
            .display()
        );
    };
    write(&dir, file, value)?;
    for _ in 0..500 {
        if std::fs::read_to_string(dir.join(status))
            .is_ok_and(|t| t.lines().any(|l| l.trim() == want))
        {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    anyhow::bail!(
        "the container's processes did not {} within 5 s ({})",
        if frozen { "freeze" } else { "thaw" },
        dir.join(status).display()
    )
}

/// Resource usage for `stats`: (memory bytes, memory limit, cpu ns, pids), from the cgroups of
/// the container whose directory is `container_dir`; without cgroups (rootless, none
/// delegated), from /proc: the resident memory, CPU time and number of the processes of its
/// first process `pid`'s PID namespace, no limit.
pub fn usage(container_dir: &Path, id: &str, pid: u32) -> (u64, u64, u64, u64) {
    let dirs = dirs_of(container_dir, id);
    if dirs.is_empty() || !dirs.iter().any(|d| d.exists()) {
        return proc_usage(pid);
    }
    let read = |p: PathBuf| -> Option<u64> {
        std::fs::read_to_string(p)
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    if is_v2() {
        let d = dir_for(&dirs, "").unwrap_or_default();
        let cpu = std::fs::read_to_string(d.join("cpu.stat"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1000;
        return (
            read(d.join("memory.current")).unwrap_or(0),
            read(d.join("memory.max")).unwrap_or(u64::MAX),
            cpu,
            read(d.join("pids.current")).unwrap_or(0),
        );
    }
    let d = |c: &str| dir_for(&dirs, c).unwrap_or_default();
    // docker's usage excludes the page cache (`total_inactive_file`).
    let inactive = std::fs::read_to_string(d("memory").join("memory.stat"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("total_inactive_file ")?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        })
        .unwrap_or(0);
    (
        read(d("memory").join("memory.usage_in_bytes"))
            .unwrap_or(0)
            .saturating_sub(inactive),
        read(d("memory").join("memory.limit_in_bytes")).unwrap_or(u64::MAX),
        read(d("cpuacct").join("cpuacct.usage")).unwrap_or(0),
        read(d("pids").join("pids.current")).unwrap_or(0),
    )
}

/// [`usage`] from /proc, for a container without cgroups: its first process `pid` and that
/// process's descendants count (found by parent pid: rootless kiln runs each command in a user
/// namespace of its own, which may not read the container's namespace links).
fn proc_usage(pid: u32) -> (u64, u64, u64, u64) {
    if pid == 0 {
        return (0, u64::MAX, 0, 0);
    }
    // (pid, parent pid, utime + stime in ticks) of every process: utime and stime are fields
    // 14 and 15, the parent 4, counted after the ")" that ends the name.
    let mut all: Vec<(u32, u32, u64)> = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        all.push((p, num(1) as u32, num(11) + num(12)));
    }
    let members = tree(
        pid,
        &all.iter().map(|(p, pp, _)| (*p, *pp)).collect::<Vec<_>>(),
    );
    // SAFETY: sysconf has no preconditions.
    let (page, tick) = unsafe {
        (
            libc::sysconf(libc::_SC_PAGESIZE).max(1) as u64,
            libc::sysconf(libc::_SC_CLK_TCK).max(1) as u64,
        )
    };
    let (mut mem, mut cpu, mut n) = (0u64, 0u64, 0u64);
    for m in &members {
        let Some((_, _, ticks)) = all.iter().find(|(p, _, _)| p == m) else {
            continue;
        };
        n += 1;
        cpu += ticks * 1_000_000_000 / tick;
        if let Ok(statm) = std::fs::read_to_string(format!("/proc/{m}/statm")) {
            mem += statm
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * page;
        }
    }
    (mem, u64::MAX, cpu, n)
}

/// `pid` and its descendants, from (pid, parent pid) pairs.
fn tree(pid: u32, all: &[(u32, u32)]) -> Vec<u32> {
    let mut members = vec![pid];
    let mut i = 0;
    while i < members.len() {
        let parent = members[i];
        members.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    members
}

/// The processes of the container whose first process is `pid`: those in its cgroup when it
/// has one, else `pid` and its descendants (from /proc's parent pids).
pub fn processes(container_dir: &Path, id: &str, pid: u32) -> Vec<u32> {
    let in_cgroup: Vec<u32> = dirs_of(container_dir, id)
        .iter()
        .find_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .map(|t| {
            t.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if !in_cgroup.is_empty() || pid == 0 {
        return in_cgroup;
    }
    let mut all = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
            .unwrap_or(0);
        all.push((p, parent));
    }
    tree(pid, &all)
}
