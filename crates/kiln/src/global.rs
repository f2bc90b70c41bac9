//! Options every command accepts.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Store directory (default: $KILN_ROOT, else /var/lib/kiln for root, else $XDG_DATA_HOME/kiln).
    #[arg(long, global = true, env = "KILN_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
}

impl GlobalArgs {
    /// The store root this invocation uses.
    #[allow(dead_code)]
    pub fn store_root(&self) -> PathBuf {
        if let Some(r) = &self.root {
            // Absolute, so that paths derived from it (mount sources, the store's own checks
            // of its tmp/ dirs) do not depend on the working directory.
            return std::path::absolute(r).unwrap_or_else(|_| r.clone());
        }
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc_geteuid() };
        // A rootless kiln is uid 0 in its namespace but keeps the user's store.
        if euid == 0 && !kiln_runtime::userns::is_rootless() {
            return PathBuf::from("/var/lib/kiln");
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        data.join("kiln")
    }
}

/// For an ordinary user, before any thread starts: check that the store directory can be
/// used, then enter the rootless user namespace (`kiln_runtime::userns`). Root: nothing to do.
pub fn enter_rootless(global: &GlobalArgs) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } == 0 {
        return Ok(());
    }
    let root = global.store_root();
    check_store_writable(&root)?;
    for w in kiln_runtime::userns::enter().map_err(|e| e.to_string())? {
        eprintln!("WARNING: {w}");
    }
    Ok(())
}

/// The store directory exists (or is created now) and this user may write it.
fn check_store_writable(root: &std::path::Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::DirBuilderExt;
    let hint = "set --root or KILN_ROOT to a directory you own";
    // A new store is the user's alone (0700, as podman's): no other user reads its images.
    let parent = root.parent().unwrap_or(std::path::Path::new("/"));
    std::fs::create_dir_all(parent)
        .and_then(
            |()| match std::fs::DirBuilder::new().mode(0o700).create(root) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                r => r,
            },
        )
        .map_err(|e| {
            format!(
                "cannot create the store directory {}: {e}; {hint}",
                root.display()
            )
        })?;
    let c = std::ffi::CString::new(root.as_os_str().as_bytes())
        .map_err(|_| format!("the store path {} contains a NUL byte", root.display()))?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "the store directory {} is not writable by this user: {e}; {hint}",
            root.display()
        ));
    }
    Ok(())
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
