//! Container records: only what `rmi`, `prune` and `system df` need until `kiln run` lands.

use rusqlite::params;

use crate::Digest;
use crate::Store;
use crate::db::{self, now};
use crate::error::{Error, Result};
use crate::image::parse_digest;

/// A container's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Its process runs.
    Running,
    /// Its process ended.
    Exited,
}

impl ContainerState {
    fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Exited => "exited",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "running" => ContainerState::Running,
            "created" => ContainerState::Created,
            _ => ContainerState::Exited,
        }
    }
}

/// A container record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    /// Its ID.
    pub id: String,
    /// Its name, if any.
    pub name: Option<String>,
    /// The image it runs.
    pub image: Digest,
    /// Its state.
    pub state: ContainerState,
    /// Creation time, unix seconds.
    pub created: i64,
}

impl Store {
    /// Records a container using image `image`.
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

    /// Forgets a container.
    pub fn remove_container(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            db::exec(tx, "DELETE FROM containers WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    /// Every container.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare("SELECT id, name, image_id, state, created FROM containers ORDER BY created DESC, id")?;
            let rows = stmt.query_map([], |r| {
                Ok(ContainerRecord {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    image: parse_digest(&r.get::<_, String>(2)?)?,
                    state: ContainerState::parse(&r.get::<_, String>(3)?),
                    created: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}
