//! `kiln builder prune` and the automatic bound on the build cache.

use std::path::Path;

use kiln_store::{BuildCachePrune, BuildCachePruneReport, Store};

use crate::error::Result;

/// The build cache is trimmed to this after a build when it grows past it
/// (`KILN_BUILD_CACHE_MAX`, bytes; default 20 GB).
pub fn default_cache_limit() -> u64 {
    std::env::var("KILN_BUILD_CACHE_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000_000_000)
}

/// Remove the build cache `opts` selects (records, cache mounts, content nothing
/// references) and report what went; the caller prints. `on_wait` is called first if
/// running builds make it wait.
pub fn prune_cache(
    root: &Path,
    opts: &BuildCachePrune,
    on_wait: &dyn Fn(),
) -> Result<BuildCachePruneReport> {
    let store = Store::open(root)?;
    if store.builds_running() {
        on_wait();
    }
    Ok(store.prune_build_cache(opts)?)
}

/// Trim the cache to the default limit when its records are above it; the trim then
/// removes the least recently used entries of every kind (cache mounts too). Skipped while
/// another build runs: the last build to finish trims. (Only the records' sizes, kept in the
/// database, are checked after every build: sizing cache mounts means walking them.)
pub(crate) fn auto_trim(store: &Store) {
    let limit = default_cache_limit();
    if let Ok(u) = store.cache_usage()
        && u.bytes > limit
    {
        let _ = store.prune_build_cache_if_idle(&BuildCachePrune {
            all: true,
            keep_bytes: Some(limit),
            ..Default::default()
        });
    }
}
