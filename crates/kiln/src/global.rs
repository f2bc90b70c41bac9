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
        if euid == 0 {
            return PathBuf::from("/var/lib/kiln");
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        data.join("kiln")
    }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
