//! Build records: what a build did per stage (size, time, cached steps), kept for the image it
//! made so that `kiln report` can show "build fat, ship thin" figures: how big each build stage
//! was against the final image.
//!
//! A record belongs to its image (`ON DELETE CASCADE`): removing the image removes its
//! records. Rebuilding the same image adds a record; only the newest [`KEEP_PER_IMAGE`] of an
//! image are kept.

use rusqlite::{OptionalExtension, params};

use crate::Digest;
use crate::Store;
use crate::db;
use crate::error::{Error, Result};
use crate::image::parse_digest;

/// How many records of one image are kept (the newest).
pub const KEEP_PER_IMAGE: i64 = 10;

/// One build of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRecord {
    /// The image the build made (its config digest); it must be in the store.
    pub image_id: Digest,
    /// The `--target` stage, `None` when the build made the last stage.
    pub target: Option<String>,
    /// When the build started, unix milliseconds.
    pub started_ms: i64,
    /// How long the whole build took.
    pub duration_ms: u64,
    /// The stages the build ran, in Dockerfile order.
    pub stages: Vec<StageRecord>,
    /// Where each layer of the image came from, base first (empty when unknown).
    pub layers: Vec<LayerOrigin>,
}

/// Where one layer of a built image came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOrigin {
    /// How it was made.
    pub kind: OriginKind,
    /// The base image's reference (`Base`), the stage or image copied from (`CopyFrom`,
    /// `CopyFromImage`), the named context (`Context`; empty for the build context), or the
    /// stage whose instruction made it (`Stage`, `Squash`).
    pub source: String,
}

/// How a layer of a built image was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginKind {
    /// A layer of the base image the final stage (or a stage it is built on) starts from.
    Base,
    /// `COPY --from=` the stage `source`.
    CopyFrom,
    /// `COPY --from=` the image `source`.
    CopyFromImage,
    /// `COPY`/`ADD` from the build context (`source` empty) or the named context `source`.
    Context,
    /// Another instruction (`RUN`, `WORKDIR`, `ADD URL`...) of stage `source`.
    Stage,
    /// The layers of stage `source` squashed into one (`--squash`).
    Squash,
}

impl OriginKind {
    /// The word stored.
    pub fn word(self) -> &'static str {
        // Stored in `build_record_layers.kind`: never change a word, add new ones.
        match self {
            OriginKind::Base => "base",
            OriginKind::CopyFrom => "copy-from",
            OriginKind::CopyFromImage => "copy-from-image",
            OriginKind::Context => "context",
            OriginKind::Stage => "stage",
            OriginKind::Squash => "squash",
        }
    }

    fn parse(s: &str) -> Option<OriginKind> {
        [
            OriginKind::Base,
            OriginKind::CopyFrom,
            OriginKind::CopyFromImage,
            OriginKind::Context,
            OriginKind::Stage,
            OriginKind::Squash,
        ]
        .into_iter()
        .find(|k| k.word() == s)
    }
}

/// One stage of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRecord {
    /// The stage's index in the Dockerfile (0-based).
    pub index: u32,
    /// `AS name`, if it has one.
    pub name: Option<String>,
    /// Its base: an image reference, another stage's name, or `scratch`.
    pub base: String,
    /// Bytes of the stage's filesystem: docker's size of all its layers, the base's included.
    pub size: u64,
    /// Wall time the stage's steps took in this build.
    pub duration_ms: u64,
    /// Steps the stage has.
    pub steps: u32,
    /// Of those, how many were cache hits.
    pub cached_steps: u32,
    /// Whether the image was made from this stage.
    pub is_final: bool,
    /// The stage it is built on (`FROM stage`), by index.
    pub base_stage: Option<u32>,
    /// The stages it reads files from (`COPY --from`, `RUN --mount from=`), by index, sorted.
    pub uses: Vec<u32>,
}

impl StageRecord {
    /// Every step was a cache hit.
    pub fn cached(&self) -> bool {
        self.steps > 0 && self.cached_steps == self.steps
    }

    /// `name`, else `stage-N` as BuildKit names an unnamed stage.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", self.index))
    }
}

impl Store {
    /// Records a build of `record.image_id` (which must be in the store) and drops that image's
    /// records beyond the newest [`KEEP_PER_IMAGE`]. Returns the record's id.
    pub fn record_build(&self, record: &BuildRecord) -> Result<i64> {
        let image = record.image_id.to_string();
        self.write(|tx| {
            let exists = db::query_row(tx, "SELECT 1 FROM images WHERE id = ?1", [&image], |_| {
                Ok(())
            })
            .optional()?
            .is_some();
            if !exists {
                return Err(Error::ImageNotFound(image.clone()));
            }
            db::exec(
                tx,
                "INSERT INTO build_records (image_id, target, started, duration_ms) VALUES (?1, ?2, ?3, ?4)",
                params![image, record.target, record.started_ms, record.duration_ms as i64],
            )?;
            let id = tx.last_insert_rowid();
            for s in &record.stages {
                db::exec(
                    tx,
                    "INSERT INTO build_record_stages (build_id, position, name, base, size, duration_ms, steps, cached_steps, is_final, base_stage, uses)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        id,
                        s.index,
                        s.name,
                        s.base,
                        s.size as i64,
                        s.duration_ms as i64,
                        s.steps,
                        s.cached_steps,
                        s.is_final,
                        s.base_stage,
                        s.uses
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                    ],
                )?;
            }
            for (i, l) in record.layers.iter().enumerate() {
                db::exec(
                    tx,
                    "INSERT INTO build_record_layers (build_id, position, kind, source)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![id, i as i64, l.kind.word(), l.source],
                )?;
            }
            db::exec(
                tx,
                "DELETE FROM build_records WHERE image_id = ?1 AND id NOT IN
                 (SELECT id FROM build_records WHERE image_id = ?1 ORDER BY id DESC LIMIT ?2)",
                params![image, KEEP_PER_IMAGE],
            )?;
            Ok(id)
        })
    }

    /// The newest build record of an image, if it was built here.
    pub fn latest_build_record(&self, image_id: &Digest) -> Result<Option<BuildRecord>> {
        Ok(self.build_records(image_id)?.into_iter().next())
    }

    /// Every kept build record of an image, newest first.
    pub fn build_records(&self, image_id: &Digest) -> Result<Vec<BuildRecord>> {
        let image = image_id.to_string();
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT id, image_id, target, started, duration_ms FROM build_records
                 WHERE image_id = ?1 ORDER BY id DESC",
            )?;
            let heads = stmt
                .query_map([&image], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        BuildRecord {
                            image_id: parse_digest(&r.get::<_, String>(1)?)?,
                            target: r.get(2)?,
                            started_ms: r.get(3)?,
                            duration_ms: r.get::<_, i64>(4)? as u64,
                            stages: Vec::new(),
                            layers: Vec::new(),
                        },
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut stages = tx.prepare_cached(
                "SELECT position, name, base, size, duration_ms, steps, cached_steps, is_final, base_stage, uses
                 FROM build_record_stages WHERE build_id = ?1 ORDER BY position",
            )?;
            let mut layers = tx.prepare_cached(
                "SELECT kind, source FROM build_record_layers WHERE build_id = ?1 ORDER BY position",
            )?;
            let mut out = Vec::with_capacity(heads.len());
            for (id, mut rec) in heads {
                rec.stages = stages
                    .query_map([id], |r| {
                        Ok(StageRecord {
                            index: r.get(0)?,
                            name: r.get(1)?,
                            base: r.get(2)?,
                            size: r.get::<_, i64>(3)? as u64,
                            duration_ms: r.get::<_, i64>(4)? as u64,
                            steps: r.get(5)?,
                            cached_steps: r.get(6)?,
                            is_final: r.get(7)?,
                            base_stage: r.get(8)?,
                            // An entry this kiln cannot read is left out (no edge drawn).
                            uses: r
                                .get::<_, String>(9)?
                                .split(',')
                                .filter_map(|u| u.parse().ok())
                                .collect(),
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let rows = layers
                    .query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                // A kind this kiln does not know (a newer one wrote it): no attribution.
                rec.layers = rows
                    .into_iter()
                    .map(|(k, source)| OriginKind::parse(&k).map(|kind| LayerOrigin { kind, source }))
                    .collect::<Option<Vec<_>>>()
                    .unwrap_or_default();
                out.push(rec);
            }
            Ok(out)
        })
    }
}
