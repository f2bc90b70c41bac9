//! `run`'s resource flags beyond `--memory`/`--cpus`/`--pids-limit`: `--memory-swap`,
//! `--memory-reservation`, `--cpu-shares`, `--cpuset-cpus`, checked with docker's daemon
//! messages. What they write into the cgroups is cgroup.rs's.

use anyhow::bail;

use super::CreateArgs;

/// The checked values (docker's HostConfig units).
#[derive(Debug, Default)]
pub struct Resources {
    pub memory_swap: i64,
    pub memory_reservation: i64,
    pub cpu_shares: i64,
    pub cpuset_cpus: String,
}

fn size(flag: &str, v: &str) -> anyhow::Result<i64> {
    kiln_build::options::parse_ram_size(v)
        .map(|b| b as i64)
        .map_err(|e| anyhow::anyhow!("invalid argument \"{v}\" for \"{flag}\" flag: {e}"))
}

/// `memory`: the `--memory` bytes (0: none).
pub fn parse(a: &CreateArgs, memory: i64) -> anyhow::Result<Resources> {
    let mut r = Resources::default();
    // 0 (and an empty value) is docker's "not given": the default below.
    let swap = a
        .memory_swap
        .as_deref()
        .filter(|s| !s.is_empty() && kiln_build::options::parse_ram_size(s) != Ok(0));
    if let Some(s) = swap {
        r.memory_swap = if s == "-1" {
            -1
        } else {
            size("--memory-swap", s)?
        };
        if memory == 0 && r.memory_swap != -1 {
            bail!("You should always set the Memory limit when using Memoryswap limit, see usage");
        }
        if r.memory_swap > 0 && r.memory_swap < memory {
            bail!("Minimum memoryswap limit should be larger than memory limit, see usage");
        }
        if r.memory_swap > 0 && !super::cgroup_host::swap_accounting() {
            bail!(
                "--memory-swap: this kernel does not account swap (no memory.memsw.limit_in_bytes \
                 or memory.swap.max); boot with swapaccount=1"
            );
        }
    } else if memory > 0 && super::cgroup_host::swap_accounting() {
        // docker's daemon: swap as large as the memory limit when none is given.
        r.memory_swap = 2 * memory;
    }
    if let Some(s) = &a.memory_reservation {
        r.memory_reservation = size("--memory-reservation", s)?;
        if r.memory_reservation > 0 && r.memory_reservation < 6 * 1024 * 1024 {
            bail!("Minimum memory reservation allowed is 6MB");
        }
        if memory > 0 && r.memory_reservation > memory {
            bail!("Minimum memory limit can not be less than memory reservation limit, see usage");
        }
    }
    if let Some(n) = a.cpu_shares {
        if n != 0 && !(2..=262144).contains(&n) {
            bail!("--cpu-shares {n}: the allowed range is 2 to 262144 (the kernel's)");
        }
        r.cpu_shares = n;
    }
    if let Some(c) = a.cpuset_cpus.as_ref().filter(|c| !c.is_empty()) {
        let cpus = parse_cpuset(c)
            .map_err(|e| anyhow::anyhow!("Invalid value {c} for cpuset cpus: {e}"))?;
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
        let available = parse_cpuset(online.trim()).unwrap_or_default();
        if cpus.iter().any(|c| !available.contains(c)) {
            bail!(
                "Requested CPUs are not available - requested {c}, available: {}",
                online.trim()
            );
        }
        r.cpuset_cpus = c.clone();
    }
    Ok(r)
}

/// A cpuset list (`0-2,4`), as moby's `parsers.ParseUintList`.
pub fn parse_cpuset(s: &str) -> Result<Vec<u32>, String> {
    let bad = || format!("invalid format: {s}");
    if s.is_empty() {
        return Err(bad());
    }
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((lo, hi)) => {
                let lo: u32 = lo.parse().map_err(|_| bad())?;
                let hi: u32 = hi.parse().map_err(|_| bad())?;
                if hi < lo {
                    return Err(bad());
                }
                out.extend(lo..=hi);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_cpuset;

    #[test]
    fn cpusets_parse_as_moby() {
        assert_eq!(parse_cpuset("0-2,4").unwrap(), [0, 1, 2, 4]);
        assert_eq!(parse_cpuset("1").unwrap(), [1]);
        assert_eq!(parse_cpuset("x").unwrap_err(), "invalid format: x");
        assert!(parse_cpuset("3-1").is_err());
        assert!(parse_cpuset("").is_err());
    }
}
