//! Mount hygiene: a build moves itself into a private mount namespace before it starts any
//! thread, so every overlay and bind mount it makes disappears with the process, even after
//! `kill -9`; nothing ever shows in the host's mount table.

/// Enter a new mount namespace whose mounts do not propagate back to the host.
/// Call before spawning threads (unshare of the mount namespace needs an unshared fs struct).
pub fn enter_private_mount_namespace() -> std::io::Result<()> {
    // SAFETY: plain syscalls with valid, NUL-terminated arguments.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
