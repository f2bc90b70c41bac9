//! The SQLite metadata database: connection settings and the versioned schema.
//!
//! Several kiln processes share one database. WAL lets readers run beside one writer;
//! every write transaction is `BEGIN IMMEDIATE` so that it takes the write lock up front and
//! waits (busy_timeout) instead of failing half-way when another process writes.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::{Error, Result};

/// Schema version stored in `PRAGMA user_version`: 1 is [`SCHEMA`], each later version adds
/// one entry of [`MIGRATIONS`]. A change that old code could misread bumps the database file
/// name instead (`metadata-v2.db`), as the on-disk layout does.
pub(crate) const SCHEMA_VERSION: i64 = 12;

/// How long a process waits for another one's write transaction. A prune deleting many
/// files holds the lock for a while; waiting is always better than failing a load.
const BUSY_TIMEOUT: Duration = Duration::from_secs(600);

const SCHEMA: &str = r#"
CREATE TABLE images (
    id TEXT PRIMARY KEY,                 -- config digest, "sha256:<hex>"
    manifest_digest TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    created INTEGER,                     -- config "created", unix seconds; NULL if absent
    size INTEGER NOT NULL,               -- sum of uncompressed layer sizes
    architecture TEXT NOT NULL,
    os TEXT NOT NULL,
    parent TEXT,                         -- image this one was built on, when known
    added INTEGER NOT NULL               -- when it entered this store, unix seconds
);
CREATE INDEX images_manifest ON images(manifest_digest);
CREATE INDEX images_parent ON images(parent);
CREATE TABLE layers (
    blob_digest TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    media_type TEXT NOT NULL,
    compressed_size INTEGER NOT NULL,
    uncompressed_size INTEGER NOT NULL
);
CREATE TABLE image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    blob_digest TEXT NOT NULL REFERENCES layers(blob_digest),
    chain_id TEXT NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX image_layers_blob ON image_layers(blob_digest);
CREATE INDEX image_layers_chain ON image_layers(chain_id);
CREATE TABLE tags (
    reference TEXT PRIMARY KEY,          -- full normalized reference
    image_id TEXT NOT NULL REFERENCES images(id),
    updated INTEGER NOT NULL
);
CREATE INDEX tags_image ON tags(image_id);
CREATE TABLE snapshots (
    key TEXT PRIMARY KEY,                -- e.g. a chain id
    dir TEXT NOT NULL UNIQUE,            -- directory name under snapshots-v1/
    parent TEXT REFERENCES snapshots(key),
    size INTEGER NOT NULL,
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL
);
CREATE TABLE cache (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    size INTEGER NOT NULL,               -- bytes this record holds beyond shared layers
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL
);
CREATE TABLE cache_refs (
    cache_key TEXT NOT NULL REFERENCES cache(key) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('blob', 'snapshot')),
    target TEXT NOT NULL,
    PRIMARY KEY (cache_key, kind, target)
);
CREATE INDEX cache_refs_target ON cache_refs(kind, target);
CREATE TABLE containers (
    id TEXT PRIMARY KEY,
    name TEXT UNIQUE,
    image_id TEXT NOT NULL REFERENCES images(id),
    state TEXT NOT NULL CHECK (state IN ('created', 'running', 'exited')),
    created INTEGER NOT NULL
);
CREATE TABLE leases (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE lease_refs (
    lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('blob', 'snapshot')),
    target TEXT NOT NULL,
    PRIMARY KEY (lease_id, kind, target)
);
CREATE INDEX lease_refs_target ON lease_refs(kind, target);
CREATE INDEX containers_image ON containers(image_id);
CREATE INDEX snapshots_parent ON snapshots(parent);
"#;

/// `MIGRATIONS[n]` brings a database from version `n + 1` to `n + 2`, inside the same
/// transaction that sets the new version.
const MIGRATIONS: &[&str] = &[
    // 2: layer blobs are made from snapshots only when an image is exported; this remembers,
    // per snapshot and per way of making the blob (compression, SOURCE_DATE_EPOCH), what was
    // made, so a later export of the same snapshot reuses the blob instead of re-tarring.
    // A row is a hint: it keeps nothing alive, and its blob may have been collected since.
    r#"
CREATE TABLE snapshot_layers (
    snapshot TEXT NOT NULL REFERENCES snapshots(key) ON DELETE CASCADE,
    variant TEXT NOT NULL,               -- how the blob was made from the directory
    diff_id TEXT NOT NULL,
    blob_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,               -- of the blob
    uncompressed_size INTEGER NOT NULL,  -- of the tar
    PRIMARY KEY (snapshot, variant)
);
CREATE INDEX snapshot_layers_blob ON snapshot_layers(blob_digest);
"#,
    // 3: snapshots are written through volatile overlays and never fsynced one by one. A row
    // remembers the boot it was written in and whether a later syncfs made it durable, so
    // snapshots a crash may have torn (unsynced, from an earlier boot) are dropped, not used.
    // Rows from before were synced by their unmount.
    r#"
ALTER TABLE snapshots ADD COLUMN boot_id TEXT;
ALTER TABLE snapshots ADD COLUMN synced INTEGER NOT NULL DEFAULT 1;
"#,
    // 4: docker's size of a layer (its unpacked files, see `content_size`), computed from
    // the blob on first use; and how many builds used a cache record (docker's USAGE).
    r#"
ALTER TABLE layers ADD COLUMN content_size INTEGER;
ALTER TABLE cache ADD COLUMN uses INTEGER NOT NULL DEFAULT 0;
"#,
    // ---- build records (issue 12, `kiln report`): one self-contained entry; renumber freely
    // at merge (it only adds tables). What a build did per stage, for the image it made;
    // rows go with the image (see `build_record.rs`).
    r#"
CREATE TABLE build_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    target TEXT,                         -- the --target stage, NULL for the last one
    started INTEGER NOT NULL,            -- unix milliseconds
    duration_ms INTEGER NOT NULL
);
CREATE INDEX build_records_image ON build_records(image_id);
CREATE TABLE build_record_stages (
    build_id INTEGER NOT NULL REFERENCES build_records(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,           -- the stage's index in the Dockerfile
    name TEXT,                           -- `AS name`, NULL if unnamed
    base TEXT NOT NULL,                  -- FROM as written after expansion
    size INTEGER NOT NULL,               -- bytes of the stage's filesystem (all its layers)
    duration_ms INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    cached_steps INTEGER NOT NULL,
    is_final INTEGER NOT NULL,           -- the stage the image was made from
    PRIMARY KEY (build_id, position)
);
"#,
    // ---- end of build records
    // ---- registries (issue 10, `kiln pull`/`push`): one self-contained entry; renumber
    // freely at merge (it only adds tables). See `registry.rs`.
    r#"
CREATE TABLE repo_digests (
    reference TEXT PRIMARY KEY,          -- "docker.io/library/busybox@sha256:<hex>"
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    updated INTEGER NOT NULL
);
CREATE INDEX repo_digests_image ON repo_digests(image_id);
CREATE TABLE wire_layers (               -- a hint: keeps nothing alive
    diff_id TEXT NOT NULL,               -- the uncompressed layer
    variant TEXT NOT NULL,               -- how it was compressed for a push ("gzip", "zstd")
    blob_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (diff_id, variant)
);
CREATE TABLE blob_sources (              -- where a blob is known to be, for cross-repo mounts
    blob_digest TEXT NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    PRIMARY KEY (blob_digest, registry, repository)
);
"#,
    // ---- end of registries
    // 7: containers that run (`kiln run`): their config, the supervisor that owns them (pid +
    // start time, so a dead one is seen), exit code and times, published ports; and the
    // snapshots their root file system is made of, which the collector keeps.
    r#"
CREATE TABLE containers_v5 (
    id TEXT PRIMARY KEY,                 -- 64 hex
    name TEXT UNIQUE,
    image_id TEXT NOT NULL REFERENCES images(id),
    state TEXT NOT NULL CHECK (state IN ('created', 'running', 'paused', 'exited', 'dead')),
    created INTEGER NOT NULL,            -- unix seconds
    created_ns INTEGER NOT NULL DEFAULT 0,
    image_ref TEXT NOT NULL DEFAULT '',  -- the image as the user named it
    config TEXT NOT NULL DEFAULT '{}',   -- JSON: the container's config and host config
    pid INTEGER NOT NULL DEFAULT 0,      -- host pid of the container's first process
    supervisor_pid INTEGER NOT NULL DEFAULT 0,
    supervisor_start INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    started_ns INTEGER NOT NULL DEFAULT 0,
    finished_ns INTEGER NOT NULL DEFAULT 0,
    ports TEXT NOT NULL DEFAULT '[]',    -- JSON: published ports as bound
    restarts INTEGER NOT NULL DEFAULT 0
);
INSERT INTO containers_v5 (id, name, image_id, state, created, created_ns)
    SELECT id, name, image_id, state, created, created * 1000000000 FROM containers;
DROP TABLE containers;
ALTER TABLE containers_v5 RENAME TO containers;
CREATE INDEX containers_image ON containers(image_id);
CREATE TABLE container_snapshots (
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    PRIMARY KEY (container_id, key)
);
"#,
    // ---- 8 (issue 12, `kiln report`): one self-contained entry; renumber freely at merge
    // (it only adds tables). Which stage or base made each layer of a built image (COPY
    // --from attribution), and each layer blob's file list, so a report reads no blob twice
    // (see `build_record.rs`, `layer_files.rs`).
    r#"
CREATE TABLE build_record_layers (
    build_id INTEGER NOT NULL REFERENCES build_records(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,           -- the layer's index in the image, base first
    kind TEXT NOT NULL,                  -- base, copy-from(-image), context, stage, squash
    source TEXT NOT NULL,                -- the base or image reference, or the stage's name
    PRIMARY KEY (build_id, position)
);
CREATE TABLE layer_files (               -- a cache: rebuilt from the blob when missing
    blob_digest TEXT NOT NULL REFERENCES layers(blob_digest) ON DELETE CASCADE,
    format INTEGER NOT NULL,             -- the encoding of `data` (its reader's version)
    data BLOB NOT NULL,
    PRIMARY KEY (blob_digest, format)
);
"#,
    // ---- end of 8
    // 9 (issue 12, the report's stage graph; renumber freely at merge): which stages a
    // stage is built on and reads from, so `kiln report` draws the edges. Older rows have
    // neither (no edges drawn).
    r#"
ALTER TABLE build_record_stages ADD COLUMN base_stage INTEGER;   -- FROM another stage
ALTER TABLE build_record_stages ADD COLUMN uses TEXT NOT NULL DEFAULT ''; -- COPY --from, RUN --mount from: stage indexes, comma-separated
"#,
    // 10 (issue 11, multi-platform images): an image index is a record of its own, listing
    // one image per platform; a tag may point at one (`tags.index_digest`), its `image_id` then
    // holding the entry for the host's platform (or the first entry), so every caller that
    // resolves a tag to one image keeps working. `images.variant` is the config's `variant`
    // (NULL for rows from before, and for images without one). See `image_index.rs`.
    r#"
ALTER TABLE images ADD COLUMN variant TEXT;
CREATE TABLE image_indexes (
    digest TEXT PRIMARY KEY,             -- the index blob, "sha256:<hex>"
    media_type TEXT NOT NULL,            -- OCI image index or Docker manifest list
    size INTEGER NOT NULL,               -- of the blob
    added INTEGER NOT NULL               -- unix seconds
);
CREATE TABLE index_entries (
    index_digest TEXT NOT NULL REFERENCES image_indexes(digest) ON DELETE CASCADE,
    position INTEGER NOT NULL,           -- order of the index's manifests
    image_id TEXT NOT NULL REFERENCES images(id),
    platform TEXT NOT NULL,              -- os/arch[/variant], normalized
    PRIMARY KEY (index_digest, position)
);
CREATE INDEX index_entries_image ON index_entries(image_id);
ALTER TABLE tags ADD COLUMN index_digest TEXT REFERENCES image_indexes(digest);
CREATE INDEX tags_index ON tags(index_digest);
"#,
    // v11: the boot a running container's supervisor was recorded in, so that after a reboot
    // a process that got the same pid and start time is not taken for it ('' for rows from
    // before: checked by pid and start time only).
    r#"
ALTER TABLE containers ADD COLUMN supervisor_boot TEXT NOT NULL DEFAULT '';
"#,
    // 12: blobs the build's export writes without fsync (see `blob_sync.rs`). A row exists
    // while its blob may not be on disk: written in boot `boot_id` at `created` (unix
    // seconds), not yet covered by a syncfs. Rows of an earlier boot are re-hashed.
    r#"
CREATE TABLE unsynced_blobs (
    digest TEXT PRIMARY KEY,             -- "sha256:<hex>"
    boot_id TEXT NOT NULL,
    created INTEGER NOT NULL
);
"#,
];

pub(crate) fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| Error::Db {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens (creating if needed) the database and brings its schema to [`SCHEMA_VERSION`].
pub(crate) fn open(path: &Path) -> Result<Connection> {
    let err = db_err(path);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(&err)?;
    // journal_mode=WAL is persistent in the file; setting it again is a no-op. NORMAL
    // synchronous in WAL mode keeps the database consistent across process death and power
    // loss; a power loss may drop the last commits, which only leaves already-fsynced blobs
    // unreferenced (garbage the next collection removes). FULL cost an fsync per commit: 48
    // of them in a no-op rebuild, most of its time.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(&err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(&err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(&err)?;
    // The last connection to close would checkpoint the WAL into the database and fsync it:
    // more than half of a no-op rebuild's time (27 ms vs 12 ms for the seedlike bench case).
    // Checkpoints still happen as the WAL grows (wal_autocheckpoint), so it stays bounded.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .map_err(&err)?;
    // The next process rebuilds its WAL index by reading the whole WAL: keep it small.
    conn.pragma_update(None, "wal_autocheckpoint", 256)
        .map_err(&err)?;
    conn.set_prepared_statement_cache_capacity(64);
    migrate(conn, path)
}

fn migrate(mut conn: Connection, path: &Path) -> Result<Connection> {
    let err = db_err(path);
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(&err)?;
    if version == SCHEMA_VERSION {
        return Ok(conn);
    }
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        // Another process may have created the schema while we waited for the lock.
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(&err)?;
        if version > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            tx.execute_batch(SCHEMA).map_err(&err)?;
        }
        for m in &MIGRATIONS[(version.max(1) - 1) as usize..] {
            tx.execute_batch(m).map_err(&err)?;
        }
        if version != SCHEMA_VERSION {
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
    }
    Ok(conn)
}

/// `execute` through the connection's statement cache: the hot statements of a build are
/// parsed once per process, not once per step.
pub(crate) fn exec<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// `query_row` through the statement cache.
pub(crate) fn query_row<T, P, F>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: F,
) -> rusqlite::Result<T>
where
    P: rusqlite::Params,
    F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
{
    conn.prepare_cached(sql)?.query_row(params, f)
}

/// Current time in unix seconds.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_schema_once_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.db");
        let c = open(&p).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        drop(c);
        open(&p).unwrap();
    }

    #[test]
    fn migrates_a_version_1_database() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.db");
        {
            let c = Connection::open(&p).unwrap();
            c.execute_batch(SCHEMA).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO snapshots (key, dir, parent, size, created, last_used) VALUES ('k', 'd', NULL, 0, 0, 0)",
                [],
            )
            .unwrap();
        }
        let c = open(&p).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        c.execute(
            "INSERT INTO snapshot_layers VALUES ('k', 'v', 'sha256:a', 'sha256:b', 't', 1, 2)",
            [],
        )
        .unwrap();
        // Rows go with their snapshot.
        c.execute("DELETE FROM snapshots WHERE key = 'k'", [])
            .unwrap();
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM snapshot_layers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        drop(c);
        open(&p).unwrap();
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.db");
        let c = open(&p).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(c);
        match open(&p) {
            Err(Error::SchemaTooNew { found, .. }) => assert_eq!(found, SCHEMA_VERSION + 1),
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }
}
