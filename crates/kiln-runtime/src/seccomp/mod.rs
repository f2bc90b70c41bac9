//! Seccomp: docker's default profile, docker-format profiles from a file, their resolution into
//! the OCI spec's `linux.seccomp` (for this machine and the container's capabilities), and the
//! BPF filter the embedded executor installs just before `execve` (child.rs).

mod bpf;
mod default_profile;
mod profile;
mod syscall_tables;

use oci_spec::runtime::Spec;

pub use bpf::{CompileError, compile, syscall_number};
pub use default_profile::default_profile;
pub use profile::{Filter, Profile, ProfileError, Rule, native_arch, native_arch_name};

/// Give `spec` the seccomp filter `profile` resolves to for the capabilities `spec` already
/// has (its bounding set, as dockerd checks), or none (`--security-opt seccomp=unconfined`).
/// Call it after the capabilities are final: docker's rules depend on them.
pub fn set_seccomp(spec: &mut Spec, profile: Option<&Profile>) -> Result<(), ProfileError> {
    let resolved = match profile {
        None => None,
        Some(p) => {
            let bounding: Vec<String> = spec
                .process()
                .as_ref()
                .and_then(|p| p.capabilities().as_ref())
                .and_then(|c| c.bounding().as_ref())
                .map(|set| set.iter().map(|c| format!("CAP_{c}")).collect())
                .unwrap_or_default();
            Some(p.resolve(&bounding)?)
        }
    };
    if let Some(linux) = spec.linux_mut() {
        linux.set_seccomp(resolved);
    }
    Ok(())
}

/// `linux.seccomp.flags` as the kernel's `SECCOMP_FILTER_FLAG_*` bits.
pub fn filter_flags(s: &oci_spec::runtime::LinuxSeccomp) -> u32 {
    use oci_spec::runtime::LinuxSeccompFilterFlag as F;
    s.flags().iter().flatten().fold(0, |bits, f| {
        bits | match f {
            F::SeccompFilterFlagTsync => 1,
            F::SeccompFilterFlagLog => 2,
            F::SeccompFilterFlagSpecAllow => 4,
            F::SeccompFilterFlagWaitKillableRecv => 32,
        }
    })
}

/// Install `filter` on the calling thread: `seccomp(SECCOMP_SET_MODE_FILTER, flags)`. Needs
/// no_new_privs or CAP_SYS_ADMIN in the caller's user namespace. Allocates nothing (the
/// container child calls it between clone and execve). Returns the syscall's result.
pub fn install(filter: &[libc::sock_filter], flags: u32) -> libc::c_long {
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `filter`, which outlives the call; the kernel copies it.
    unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            1 as libc::c_long, // SECCOMP_SET_MODE_FILTER
            flags as libc::c_long,
            &prog as *const libc::sock_fprog,
        )
    }
}

#[cfg(test)]
mod tests;
