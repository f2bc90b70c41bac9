//! Linux capability numbers and masks, and Docker's default set.

use oci_spec::runtime::{Capabilities, Capability};

/// Kernel capability names (without `CAP_`) in kernel number order (linux/capability.h).
const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Every capability name the kernel headers list (without `CAP_`), in number order: what
/// `--cap-add ALL` names.
pub fn names() -> &'static [&'static str] {
    &NAMES
}

/// The kernel number of a capability (`CAP_CHOWN` is 0).
pub fn number(cap: Capability) -> Option<u32> {
    // oci-spec's Display is the kernel name without the CAP_ prefix.
    let name = cap.to_string();
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// A set of capabilities as the kernel's 64-bit mask.
pub fn mask(caps: &Capabilities) -> u64 {
    caps.iter()
        .filter_map(|c| number(*c))
        .fold(0, |m, n| m | (1u64 << n))
}

/// Docker's default capabilities (moby `caps.DefaultCapabilities`), which BuildKit's RUN gets too.
pub fn default_capabilities() -> Capabilities {
    [
        Capability::Chown,
        Capability::DacOverride,
        Capability::Fsetid,
        Capability::Fowner,
        Capability::Mknod,
        Capability::NetRaw,
        Capability::Setgid,
        Capability::Setuid,
        Capability::Setfcap,
        Capability::Setpcap,
        Capability::NetBindService,
        Capability::SysChroot,
        Capability::Kill,
        Capability::AuditWrite,
    ]
    .into_iter()
    .collect()
}

/// The capabilities of a container from a base set and `--cap-add`/`--cap-drop` (names
/// without `CAP_`, upper case, or `ALL`), as moby's `caps.TweakCapabilities`: an added `ALL`
/// is `all` less the drops; a dropped `ALL` leaves only the adds; else the base less the
/// drops plus the adds, so an add wins over a drop of the same capability.
pub fn tweak(
    base: &Capabilities,
    all: &Capabilities,
    adds: &[Capability],
    drops: &[Capability],
    add_all: bool,
    drop_all: bool,
) -> Capabilities {
    if add_all {
        return all.iter().filter(|c| !drops.contains(c)).copied().collect();
    }
    if drop_all {
        return adds.iter().copied().collect();
    }
    base.iter()
        .filter(|c| !drops.contains(c))
        .chain(adds.iter())
        .copied()
        .collect()
}

/// Every capability this kernel knows (up to [`last_cap`]) that this process may still grant
/// (its bounding set): what a privileged container (`docker run --privileged`, BuildKit's
/// `RUN --security=insecure`) gets. Asking for one outside the bounding set would fail.
pub fn all_capabilities() -> Capabilities {
    let last = last_cap() as usize;
    let bounding = own_bounding_set().unwrap_or(u64::MAX);
    NAMES
        .iter()
        .enumerate()
        .take(last + 1)
        .filter(|(i, _)| bounding & (1u64 << i) != 0)
        .filter_map(|(_, n)| n.parse::<Capability>().ok())
        .collect()
}

/// This process's bounding set (`CapBnd` in `/proc/self/status`).
pub fn own_bounding_set() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// The highest capability number this kernel knows, from `/proc/sys/kernel/cap_last_cap`.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NAMES.len() as u32 - 1)
        .min(63)
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_capabilities_are_every_one_the_kernel_knows() {
        let want = if last_cap() == 63 {
            u64::MAX
        } else {
            (1u64 << (last_cap() + 1)) - 1
        };
        let want = want & own_bounding_set().unwrap();
        assert_eq!(mask(&all_capabilities()), want);
    }

    use super::*;

    #[test]
    fn docker_default_mask_matches_capeff_of_a_docker_container() {
        // `grep CapEff /proc/self/status` in `docker run busybox` prints this mask.
        assert_eq!(mask(&default_capabilities()), 0x0000_0000_a804_25fb);
    }

    #[test]
    fn an_add_wins_over_a_drop_and_all_is_applied_first() {
        let base = default_capabilities();
        let all = all_capabilities();
        let chown = [Capability::Chown];
        // --cap-drop ALL --cap-add CHOWN
        assert_eq!(mask(&tweak(&base, &all, &chown, &[], false, true)), 1);
        // --cap-drop CHOWN --cap-add CHOWN
        assert_eq!(
            mask(&tweak(&base, &all, &chown, &chown, false, false)),
            mask(&base)
        );
        // --cap-add ALL --cap-drop CHOWN
        assert_eq!(
            mask(&tweak(&base, &all, &[], &chown, true, false)),
            mask(&all) & !1
        );
        // --cap-drop CHOWN
        assert_eq!(
            mask(&tweak(&base, &all, &[], &chown, false, false)),
            mask(&base) & !1
        );
    }

    #[test]
    fn numbers_follow_the_kernel() {
        assert_eq!(number(Capability::Chown), Some(0));
        assert_eq!(number(Capability::SysAdmin), Some(21));
        assert_eq!(number(Capability::CheckpointRestore), Some(40));
        assert_eq!(number(Capability::AuditRead), Some(37));
    }
}
