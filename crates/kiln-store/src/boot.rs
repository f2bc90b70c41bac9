//! Which boot of the machine this is: rows written without fsync (snapshots, a build's export
//! blobs) remember it, and rows of an earlier boot are checked before they are trusted.

/// This boot's id (`/proc/sys/kernel/random/boot_id`); empty when unreadable, which makes
/// every unsynced row look like it came from another boot (the safe side).
pub(crate) fn boot_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
}
