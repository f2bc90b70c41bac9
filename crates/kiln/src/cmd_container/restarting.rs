//! A container waiting for its restart policy's next start: docker shows it as `restarting`
//! (`Restarting (1) 2 seconds ago`, `State.Restarting`). The supervisor keeps
//! `containers/<id>/restarting` (the exit code and when it exited) while it waits; the row
//! stays `running`, as docker's `State.Running` does.

use std::path::Path;

use kiln_store::{ContainerRecord, ContainerState};

const FILE: &str = "restarting";

/// Marks the wait: the process exited with `code` now.
pub fn mark(dir: &Path, code: i32) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let _ = std::fs::write(dir.join(FILE), format!("{code} {now}"));
}

pub fn clear(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(FILE));
}

/// (exit code, exit time in ns) of a running container waiting to be restarted.
pub fn read(dir: &Path, c: &ContainerRecord) -> Option<(i32, i64)> {
    if c.state != ContainerState::Running {
        return None;
    }
    let text = std::fs::read_to_string(dir.join(FILE)).ok()?;
    let (code, at) = text.split_once(' ')?;
    Some((code.parse().ok()?, at.trim().parse().ok()?))
}

/// docker's state name: `restarting` while waiting, else the row's.
pub fn state_name(dir: &Path, c: &ContainerRecord) -> &'static str {
    if read(dir, c).is_some() {
        "restarting"
    } else {
        c.state.as_str()
    }
}
