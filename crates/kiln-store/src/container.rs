//! Container records (`kiln run`): the row of each container, its supervisor, its exit, and the
//! snapshots its root file system is made of.
//!
//! A running container is owned by one supervisor process (kiln in a hidden mode), named in its
//! row by pid, start time and boot id (`/proc/sys/kernel/random/boot_id`: after a reboot a new
//! process may have the same pid and start time). A reader that finds a `running` or `paused`
//! row whose supervisor is gone (killed, or the host rebooted) records the container as exited (137: its processes
//! died with the supervisor by their parent-death signal) with the error "supervisor died", so
//! no container stays wedged as running. `kiln system check` reports such rows it finds first.
//!
//! On disk, beside the row:
//! ```text
//! containers/<id>/
//!   upper/ work/          the container's writable layer (an overlay upper) and its workdir
//!   rootfs/               where the supervisor mounts the overlay (in its own mount namespace)
//!   <id>-json.log         stdout and stderr in docker's json-file format
//!   hosts hostname resolv.conf
//! ```

use std::path::PathBuf;

use rusqlite::{Connection, OptionalExtension, params};

use crate::Digest;
use crate::Store;
use crate::db::{self, now};
use crate::error::{Error, Result};
use crate::image::parse_digest;
use crate::layout::ProcessId;

/// A container's lifecycle state (docker's `State.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, never started (or its start failed).
    Created,
    /// Its process runs.
    Running,
    /// Its processes are frozen.
    Paused,
    /// Its process ended.
    Exited,
    /// Removal failed half-way.
    Dead,
}

impl ContainerState {
    /// docker's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "running" => ContainerState::Running,
            "created" => ContainerState::Created,
            "paused" => ContainerState::Paused,
            "dead" => ContainerState::Dead,
            _ => ContainerState::Exited,
        }
    }
    /// Running or paused: a supervisor owns it.
    pub fn is_live(self) -> bool {
        matches!(self, ContainerState::Running | ContainerState::Paused)
    }
}

/// A container record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    /// Its ID (64 hex digits).
    pub id: String,
    /// Its name, if any (without docker's leading `/`).
    pub name: Option<String>,
    /// The image it runs.
    pub image: Digest,
    /// The image as the user named it (`busybox`, `app:1`).
    pub image_ref: String,
    /// Its state.
    pub state: ContainerState,
    /// Creation time, unix seconds.
    pub created: i64,
    /// Creation time, unix nanoseconds.
    pub created_ns: i64,
    /// Its configuration (JSON chosen by the caller).
    pub config: String,
    /// Host pid of its first process while it runs (0 otherwise).
    pub pid: u32,
    /// The supervisor's pid while it runs (0 otherwise).
    pub supervisor_pid: u32,
    /// Exit code of the last run.
    pub exit_code: i32,
    /// Why the last start failed or the run ended abnormally ("" if it did not).
    pub error: String,
    /// Start of the last run, unix nanoseconds (0: never started).
    pub started_ns: i64,
    /// End of the last run, unix nanoseconds (0: not ended).
    pub finished_ns: i64,
    /// Published ports as bound (JSON chosen by the caller).
    pub ports: String,
    /// How many times it was restarted.
    pub restarts: i64,
}

/// What [`Store::create_container`] records.
#[derive(Debug, Clone)]
pub struct NewContainer<'a> {
    /// 64 hex digits.
    pub id: &'a str,
    /// Its unique name.
    pub name: &'a str,
    /// The image it runs.
    pub image: &'a Digest,
    /// The image as the user named it.
    pub image_ref: &'a str,
    /// Its configuration, as JSON.
    pub config: &'a str,
    /// The snapshots its root file system is made of: kept while the container exists.
    pub snapshots: &'a [String],
}

/// Exit code recorded for a container whose supervisor died: its processes were killed by
/// their parent-death signal (SIGKILL), which a shell reports as 128 + 9.
pub const SUPERVISOR_DIED_EXIT: i32 = 137;

const COLUMNS: &str = "id, name, image_id, image_ref, state, created, created_ns, config, pid, \
    supervisor_pid, supervisor_start, exit_code, error, started_ns, finished_ns, ports, restarts, \
    supervisor_boot";

fn unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A row, and whether its supervisor died (a live state with the owner gone).
fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(ContainerRecord, bool)> {
    let state = ContainerState::parse(&r.get::<_, String>(4)?);
    let sup = ProcessId {
        pid: r.get::<_, i64>(9)? as u32,
        start: r.get::<_, i64>(10)? as u64,
    };
    let boot: String = r.get(17)?;
    let now = crate::boot::boot_id();
    let rebooted = !boot.is_empty() && !now.is_empty() && boot != now;
    let orphaned = state.is_live() && (rebooted || !supervisor_alive(sup));
    Ok((
        ContainerRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            image: parse_digest(&r.get::<_, String>(2)?)?,
            image_ref: r.get(3)?,
            state,
            created: r.get(5)?,
            created_ns: r.get(6)?,
            config: r.get(7)?,
            pid: r.get::<_, i64>(8)? as u32,
            supervisor_pid: sup.pid,
            exit_code: r.get(11)?,
            error: r.get(12)?,
            started_ns: r.get(13)?,
            finished_ns: r.get(14)?,
            ports: r.get(15)?,
            restarts: r.get(16)?,
        },
        orphaned,
    ))
}

/// Is the supervisor `p` still running? (A zombie is not: it is dead, just not reaped by
/// whoever inherited it.)
fn supervisor_alive(p: ProcessId) -> bool {
    if p.pid == 0 || !p.is_alive() {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", p.pid)) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next().map(String::from));
    !matches!(state.as_deref(), Some("Z") | Some("X") | None)
}

fn mark_orphan_exited(tx: &Connection, c: &mut ContainerRecord) -> rusqlite::Result<()> {
    let t = unix_nanos();
    db::exec(
        tx,
        "UPDATE containers SET state = 'exited', exit_code = ?2, error = 'supervisor died',
         finished_ns = ?3, pid = 0, supervisor_pid = 0, supervisor_start = 0
         WHERE id = ?1 AND state IN ('running', 'paused')",
        params![c.id, SUPERVISOR_DIED_EXIT, t],
    )?;
    c.state = ContainerState::Exited;
    c.exit_code = SUPERVISOR_DIED_EXIT;
    c.error = "supervisor died".into();
    c.finished_ns = t;
    c.pid = 0;
    c.supervisor_pid = 0;
    Ok(())
}

fn name_in_use(name: &str, id: &str) -> Error {
    Error::ContainerConflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}

impl Store {
    /// The directory of container `id` (`containers/<id>`).
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root().join("containers").join(id)
    }

    /// Records a new container (state `created`); a name in use is docker's conflict.
    pub fn create_container(&self, c: &NewContainer<'_>) -> Result<()> {
        self.write(|tx| {
            let owner: Option<String> = db::query_row(
                tx,
                "SELECT id FROM containers WHERE name = ?1",
                [c.name],
                |r| r.get(0),
            )
            .optional()?;
            if let Some(owner) = owner {
                return Err(name_in_use(c.name, &owner));
            }
            let t = unix_nanos();
            let n = db::exec(
                tx,
                "INSERT INTO containers (id, name, image_id, image_ref, state, created, created_ns, config)
                 SELECT ?1, ?2, ?3, ?4, 'created', ?5, ?6, ?7
                 WHERE EXISTS (SELECT 1 FROM images WHERE id = ?3)",
                params![c.id, c.name, c.image.to_string(), c.image_ref, t / 1_000_000_000, t, c.config],
            )?;
            if n == 0 {
                return Err(Error::ImageNotFound(c.image.to_string()));
            }
            for key in c.snapshots {
                db::exec(
                    tx,
                    "INSERT OR IGNORE INTO container_snapshots (container_id, key) VALUES (?1, ?2)",
                    params![c.id, key],
                )?;
            }
            Ok(())
        })
    }

    /// Records a container using image `image` (a bare record, for tests of the image rules).
    pub fn add_container(
        &self,
        id: &str,
        name: Option<&str>,
        image: &Digest,
        state: ContainerState,
    ) -> Result<()> {
        self.write(|tx| {
            let n = db::exec(
                tx,
                "INSERT INTO containers (id, name, image_id, state, created)
                 SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM images WHERE id = ?3)",
                params![id, name, image.to_string(), state.as_str(), now()],
            )?;
            if n == 0 {
                return Err(Error::ImageNotFound(image.to_string()));
            }
            Ok(())
        })
    }

    /// Changes a container's state.
    pub fn set_container_state(&self, id: &str, state: ContainerState) -> Result<()> {
        self.write(|tx| {
            db::exec(
                tx,
                "UPDATE containers SET state = ?2 WHERE id = ?1",
                params![id, state.as_str()],
            )?;
            Ok(())
        })
    }

    /// Called by the supervisor (this process) once the container's first process runs:
    /// state `running`, its pid, this process as its owner, the start time, published ports.
    pub fn container_started(&self, id: &str, pid: u32, ports: &str) -> Result<()> {
        let me = ProcessId::current();
        self.write(|tx| {
            db::exec(
                tx,
                "UPDATE containers SET state = 'running', pid = ?2, supervisor_pid = ?3,
                 supervisor_start = ?4, started_ns = ?5, finished_ns = 0, exit_code = 0,
                 error = '', ports = ?6, supervisor_boot = ?7 WHERE id = ?1",
                params![
                    id,
                    pid,
                    me.pid,
                    me.start as i64,
                    unix_nanos(),
                    ports,
                    crate::boot::boot_id()
                ],
            )?;
            Ok(())
        })
    }

    /// Records the end of a run (or a failed start, `started` false: the state stays
    /// `created`, as docker leaves a container whose entrypoint was not found).
    pub fn container_finished(
        &self,
        id: &str,
        exit_code: i32,
        error: &str,
        started: bool,
    ) -> Result<()> {
        let state = if started { "exited" } else { "created" };
        self.write(|tx| {
            db::exec(
                tx,
                "UPDATE containers SET state = CASE WHEN state = 'running' OR state = 'paused' OR ?5 = 'exited' THEN ?5 ELSE state END,
                 exit_code = ?2, error = ?3, finished_ns = ?4, pid = 0, supervisor_pid = 0,
                 supervisor_start = 0, ports = '[]' WHERE id = ?1",
                params![id, exit_code, error, unix_nanos(), state],
            )?;
            Ok(())
        })
    }

    /// Sets the restart count to 0: docker's `start` and `restart` reset it; only the restart
    /// policy's restarts count.
    pub fn container_reset_restarts(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            db::exec(tx, "UPDATE containers SET restarts = 0 WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    /// Counts a restart by the container's restart policy.
    pub fn container_restarted(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            db::exec(
                tx,
                "UPDATE containers SET restarts = restarts + 1 WHERE id = ?1",
                [id],
            )?;
            Ok(())
        })
    }

    /// Renames a container; a name in use is docker's conflict.
    pub fn rename_container(&self, id: &str, name: &str) -> Result<()> {
        self.write(|tx| {
            let owner: Option<String> = db::query_row(
                tx,
                "SELECT id FROM containers WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
            if let Some(owner) = owner {
                return Err(name_in_use(name, &owner));
            }
            db::exec(
                tx,
                "UPDATE containers SET name = ?2 WHERE id = ?1",
                params![id, name],
            )?;
            Ok(())
        })
    }

    /// Forgets a container (its snapshot references go with it; the next collection may
    /// remove what only it used).
    pub fn remove_container(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            db::exec(tx, "DELETE FROM containers WHERE id = ?1", [id])?;
            Ok(())
        })?;
        crate::layout::remove_any(&self.container_dir(id))
    }

    /// Every container, newest first. Rows whose supervisor died are recorded as exited.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>> {
        let rows = self.read(|tx| {
            let mut stmt = tx.prepare(&format!(
                "SELECT {COLUMNS} FROM containers ORDER BY created_ns DESC, created DESC, id"
            ))?;
            let rows = stmt.query_map([], row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        self.settle_orphans(rows)
    }

    /// One container by ID, unique ID prefix or name, as docker resolves them (full ID, then
    /// name, then prefix). `Error::ContainerNotFound` when none, docker's ambiguity message
    /// when a prefix matches several.
    pub fn find_container(&self, name: &str) -> Result<ContainerRecord> {
        let name = name.strip_prefix('/').unwrap_or(name);
        // A prefix is compared as text: LIKE would read `%` and `_` in a user's argument as
        // wildcards (`rm -f %1234` removed the container whose ID holds 1234) and ignore case.
        let rows = self.read(|tx| {
            let mut stmt = tx.prepare(&format!(
                "SELECT {COLUMNS} FROM containers WHERE id = ?1 OR name = ?1 OR (?1 != '' AND substr(id, 1, length(?1)) = ?1)"
            ))?;
            let rows = stmt.query_map([name], row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        let pick = if let Some(r) = rows.iter().find(|(c, _)| c.id == name) {
            r.clone()
        } else if let Some(r) = rows.iter().find(|(c, _)| c.name.as_deref() == Some(name)) {
            r.clone()
        } else if rows.len() == 1 {
            rows[0].clone()
        } else if rows.is_empty() {
            return Err(Error::ContainerNotFound(name.to_string()));
        } else {
            return Err(Error::ContainerConflict(format!(
                "multiple IDs found with provided prefix: {name}"
            )));
        };
        Ok(self.settle_orphans(vec![pick])?.remove(0))
    }

    /// Records as exited the rows (among `rows`) whose supervisor died.
    fn settle_orphans(&self, rows: Vec<(ContainerRecord, bool)>) -> Result<Vec<ContainerRecord>> {
        if !rows.iter().any(|(_, o)| *o) {
            return Ok(rows.into_iter().map(|(c, _)| c).collect());
        }
        self.write(|tx| {
            let mut out = Vec::with_capacity(rows.len());
            for (mut c, orphaned) in rows {
                if orphaned {
                    mark_orphan_exited(tx, &mut c)?;
                }
                out.push(c);
            }
            Ok(out)
        })
    }
}

/// Containers whose supervisor died, for `system check`: (id, supervisor pid). With `repair`
/// they are recorded as exited.
pub(crate) fn dead_supervisors(tx: &Connection, repair: bool) -> Result<Vec<(String, u32)>> {
    let rows = {
        let mut stmt = tx.prepare(&format!(
            "SELECT {COLUMNS} FROM containers WHERE state IN ('running', 'paused')"
        ))?;
        let rows = stmt.query_map([], row)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let mut out = Vec::new();
    for (mut c, orphaned) in rows {
        if orphaned {
            out.push((c.id.clone(), c.supervisor_pid));
            if repair {
                mark_orphan_exited(tx, &mut c)?;
            }
        }
    }
    Ok(out)
}
