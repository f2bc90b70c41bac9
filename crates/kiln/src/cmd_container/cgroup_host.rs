//! What the host's cgroup file system offers (its version, swap accounting): read by the
//! cgroup setup, the flags' parsing and the stats, and depending on none of them.

use std::path::Path;

pub(super) const ROOT: &str = "/sys/fs/cgroup";

/// Whether the host runs the unified hierarchy (cgroup v2).
pub(super) fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// Whether the kernel accounts swap: docker sets a default swap limit only then.
pub(super) fn swap_accounting() -> bool {
    if is_v2() {
        // cgroup2 has memory.swap.max in every non-root cgroup when CONFIG_MEMCG_SWAP is on.
        std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("0::").map(str::to_string))
            })
            .is_some_and(|p| {
                let own = Path::new(ROOT).join(p.trim_start_matches('/'));
                own.join("memory.swap.max").exists() || own.join("memory.swap.current").exists()
            })
    } else {
        Path::new(ROOT)
            .join("memory/memory.memsw.limit_in_bytes")
            .exists()
    }
}
