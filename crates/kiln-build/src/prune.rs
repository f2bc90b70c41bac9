//! `kiln builder prune` and the automatic bound on the build cache.

use std::path::Path;
use std::time::Duration;

use kiln_store::{CachePrune, Store};

use crate::error::Result;
use crate::state::store_err;

/// The build cache is trimmed to this after a build when it grows past it
/// (`KILN_BUILD_CACHE_MAX`, bytes; default 20 GB).
pub fn default_cache_limit() -> u64 {
    std::env::var("KILN_BUILD_CACHE_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000_000_000)
}

/// Remove build cache: everything (`all`), what was unused for `until`, then the least
/// recently used records until at most `keep_storage` bytes remain. Returns the bytes freed.
/// With no limit given it removes every record, as `docker builder prune` removes all
/// unused build cache. `on_wait` is called first if running builds make it wait.
pub fn prune_cache(
    root: &Path,
    all: bool,
    keep_storage: Option<u64>,
    until: Option<Duration>,
    on_wait: &dyn Fn(),
) -> Result<u64> {
    let store = Store::open(root).map_err(store_err)?;
    if store.builds_running() {
        on_wait();
    }
    let limits = CachePrune {
        unused_for: until.map(|d| d.as_secs() as i64),
        keep_bytes: keep_storage,
        all: all || (keep_storage.is_none() && until.is_none()),
    };
    let (_, freed) = store.cache_prune(limits).map_err(store_err)?;
    Ok(freed)
}

/// Trim the cache to the default limit when it is above it. Skipped while another build
/// runs: the last build to finish trims.
pub(crate) fn auto_trim(store: &Store) {
    let limit = default_cache_limit();
    if let Ok(u) = store.cache_usage()
        && u.bytes > limit
    {
        let _ = store.cache_prune_if_idle(CachePrune {
            keep_bytes: Some(limit),
            ..Default::default()
        });
    }
}
