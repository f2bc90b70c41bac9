//! A container's resource cgroups (`--memory`, `--cpus`, `--pids-limit`, and the accounting
//! `stats` reads): `kiln/<id>` in the v1 memory, cpu, cpuacct and pids hierarchies, or in the
//! v2 hierarchy where /sys/fs/cgroup is cgroup2.
//!
//! The supervisor moves itself in before it clones the container and back out right after,
//! so the container's first process starts inside (nothing it forks can escape the limits)
//! and the supervisor is not counted. The directories are removed once the container is
//! reaped. (The device cgroup is the runtime's own: kiln-runtime/src/devices.rs.)

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::config::HostConfig;

const V1: &[&str] = &["memory", "cpu", "cpuacct", "pids", "freezer"];
const ROOT: &str = "/sys/fs/cgroup";

/// The cgroup directories of one container.
#[derive(Debug)]
pub struct Cgroups {
    /// (directory, the cgroup the supervisor came from in that hierarchy).
    dirs: Vec<(PathBuf, PathBuf)>,
}

fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
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

/// The directories of container `id` (whether or not they exist).
pub fn dirs_of(id: &str) -> Vec<PathBuf> {
    if is_v2() {
        vec![Path::new(ROOT).join("kiln").join(id)]
    } else {
        V1.iter()
            .map(|c| Path::new(ROOT).join(c).join("kiln").join(id))
            .collect()
    }
}

fn write(dir: &Path, file: &str, value: &str) -> anyhow::Result<()> {
    let p = dir.join(file);
    std::fs::write(&p, value).with_context(|| format!("writing {value:?} to {}", p.display()))
}

impl Cgroups {
    /// Makes the cgroups of container `id` with `host`'s limits.
    pub fn create(id: &str, host: &HostConfig) -> anyhow::Result<Cgroups> {
        let v2 = is_v2();
        let mut cg = Cgroups { dirs: Vec::new() };
        let list: Vec<(&str, PathBuf)> = if v2 {
            vec![("", Path::new(ROOT).to_path_buf())]
        } else {
            V1.iter()
                .map(|c| (*c, Path::new(ROOT).join(c)))
                .filter(|(_, p)| p.join("cgroup.procs").exists())
                .collect()
        };
        for (ctrl, mount) in list {
            let parent = mount.join("kiln");
            if v2 && !parent.exists() {
                std::fs::create_dir_all(&parent)
                    .with_context(|| format!("creating cgroup {}", parent.display()))?;
                // Let the children use the controllers (best effort: some may be taken by v1).
                for c in ["memory", "cpu", "pids"] {
                    let _ = std::fs::write(mount.join("cgroup.subtree_control"), format!("+{c}"));
                    let _ = std::fs::write(parent.join("cgroup.subtree_control"), format!("+{c}"));
                }
            }
            let dir = parent.join(id);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating cgroup {}", dir.display()))?;
            let from = mount.join(own_cgroup(ctrl).unwrap_or_default().trim_start_matches('/'));
            cg.dirs.push((dir.clone(), from));
            let has = |f: &str| dir.join(f).exists();
            match ctrl {
                "memory" if host.memory > 0 => {
                    write(&dir, "memory.limit_in_bytes", &host.memory.to_string())?
                }
                "cpu" if host.nano_cpus > 0 => {
                    write(&dir, "cpu.cfs_period_us", "100000")?;
                    write(
                        &dir,
                        "cpu.cfs_quota_us",
                        &(host.nano_cpus / 10_000).max(1000).to_string(),
                    )?;
                }
                "pids" if host.pids_limit > 0 => {
                    write(&dir, "pids.max", &host.pids_limit.to_string())?
                }
                "" => {
                    if host.memory > 0 {
                        if !has("memory.max") {
                            anyhow::bail!(
                                "--memory: the memory controller is not available in {}",
                                dir.display()
                            );
                        }
                        write(&dir, "memory.max", &host.memory.to_string())?;
                    }
                    if host.nano_cpus > 0 {
                        if !has("cpu.max") {
                            anyhow::bail!(
                                "--cpus: the cpu controller is not available in {}",
                                dir.display()
                            );
                        }
                        write(
                            &dir,
                            "cpu.max",
                            &format!("{} 100000", (host.nano_cpus / 10_000).max(1000)),
                        )?;
                    }
                    if host.pids_limit > 0 {
                        if !has("pids.max") {
                            anyhow::bail!(
                                "--pids-limit: the pids controller is not available in {}",
                                dir.display()
                            );
                        }
                        write(&dir, "pids.max", &host.pids_limit.to_string())?;
                    }
                }
                _ => {}
            }
        }
        let wanted = [
            ("memory", host.memory > 0, "--memory"),
            ("cpu", host.nano_cpus > 0, "--cpus"),
            ("pids", host.pids_limit > 0, "--pids-limit"),
        ];
        if !v2 {
            for (ctrl, on, flag) in wanted {
                if on
                    && !cg
                        .dirs
                        .iter()
                        .any(|(d, _)| d.starts_with(Path::new(ROOT).join(ctrl)))
                {
                    anyhow::bail!("{flag}: no {ctrl} cgroup controller is mounted on this host");
                }
            }
        }
        Ok(cg)
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

    /// Removes the directories (retrying while the kernel still counts dying tasks).
    pub fn remove(self) {
        remove_dirs(self.dirs.iter().map(|(d, _)| d.clone()).collect());
    }
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

/// Freezes (`pause`) or thaws (`unpause`) every process of container `id` and waits until the
/// kernel reports it done: the v1 freezer's `freezer.state`, or v2's `cgroup.freeze`.
pub fn freeze(id: &str, frozen: bool) -> anyhow::Result<()> {
    let v2 = is_v2();
    // (directory, file written, value, file read back, what it reads when done)
    let (dir, file, value, status, want) = if v2 {
        (
            Path::new(ROOT).join("kiln").join(id),
            "cgroup.freeze",
            if frozen { "1" } else { "0" },
            "cgroup.events",
            if frozen { "frozen 1" } else { "frozen 0" },
        )
    } else {
        let state = if frozen { "FROZEN" } else { "THAWED" };
        (
            Path::new(ROOT).join("freezer").join("kiln").join(id),
            "freezer.state",
            state,
            "freezer.state",
            state,
        )
    };
    if !dir.join(file).exists() {
        anyhow::bail!(
            "cannot {} the container: no freezer cgroup at {} (this host has no cgroup freezer)",
            if frozen { "pause" } else { "unpause" },
            dir.display()
        );
    }
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

/// Resource usage of a container for `stats`: (memory bytes, memory limit, cpu ns, pids).
pub fn usage(id: &str) -> (u64, u64, u64, u64) {
    let read = |p: PathBuf| -> Option<u64> {
        std::fs::read_to_string(p)
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    if is_v2() {
        let d = Path::new(ROOT).join("kiln").join(id);
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
    let d = |c: &str| Path::new(ROOT).join(c).join("kiln").join(id);
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
