//! kiln-store: the local image store.
//!
//! It owns content-addressed blobs (an OCI image layout under the root), SQLite metadata
//! (images, tags, layers, unpacked-layer snapshots, build-cache records, containers),
//! leases that keep concurrent prunes away from fresh writes, garbage collection and
//! `check` (fsck). It never runs processes and never unpacks layers itself: kiln-snapshot
//! fills the directories that [`Store::commit_snapshot`] records.
//!
//! ```text
//! ROOT/
//! ├── oci-layout, index.json   an OCI image layout of the tagged images
//! ├── blobs/sha256/<hex>       blobs, immutable, digest-verified before they appear
//! ├── metadata-v1.db           SQLite in WAL mode, shared by concurrent kiln processes
//! ├── snapshots-v1/<dir>       unpacked layers, one directory per snapshot key
//! ├── cache-mounts-v1/<dir>    `RUN --mount=type=cache` directories (see `build_cache`)
//! ├── trash/                   what a collection removes, deleted after its commit
//! └── tmp/                     in-progress writes; leftovers of dead processes are removed
//! ```
//!
//! ```no_run
//! let store = kiln_store::Store::open("/var/lib/kiln")?;
//! for image in store.images()? {
//!     println!("{} {:?}", image.id, image.tags);
//! }
//! # Ok::<(), kiln_store::Error>(())
//! ```

#![warn(missing_docs)]

mod blob;
mod blob_sync;
mod boot;
mod build_cache;
mod build_record;
mod cache;
mod check;
mod container;
pub mod content_size;
mod db;
mod error;
mod gc;
mod gclock;
mod image;
mod image_index;
mod index;
mod layer_files;
mod layout;
mod lease;
mod load;
mod reference;
mod refs;
mod registry;
mod reserve;
mod save;
mod snapshot;
pub mod timestamp;
mod trash;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// docker's words for a tag that names a digest (`docker tag x name@sha256:…`).
pub const DIGEST_TAG_REFUSED: &str = "refusing to create a tag with a digest reference";

pub use blob::{BlobInfo, BlobWriter, PendingBlob};
pub use blob_sync::RecoveredBlobs;
pub use build_cache::{BuildCachePrune, BuildCachePruneReport, CacheEntry, CacheKind};
pub use build_record::{BuildRecord, KEEP_PER_IMAGE, LayerOrigin, OriginKind, StageRecord};
pub use cache::{CacheHit, CachePrune, CacheRecord, CacheUsage};
pub use check::{CheckReport, Problem};
pub use container::{ContainerRecord, ContainerState, NewContainer, SUPERVISOR_DIED_EXIT};
pub use error::{Error, Result};
pub use gc::{PruneReport, PruneScope, RemoveEvent};
pub use gclock::BuildGuard;
pub use image::{ImageRecord, LayerRecord, NewImage, TagChange, chain_ids};
pub use image_index::{IndexEntry, IndexRecord};
pub use kiln_image::{Digest, ImageRef, Platform};
pub use lease::{Lease, RefKind};
pub use load::{Loaded, LoadedImage, LoadedIndex};
pub use registry::WireLayer;
pub use save::SaveFormat;
pub use snapshot::{Settled, SnapshotInfo, layer_snapshot_key};

use layout::Layout;

/// A handle on one store root. Cheap to clone; clones share one database connection.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    layout: Layout,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.inner.layout.root)
            .finish()
    }
}

impl Store {
    /// Opens the store at `root`, creating it if needed, and removes temp files left by
    /// processes that died.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let layout = Layout {
            root: root.as_ref().to_path_buf(),
        };
        layout.create()?;
        layout.clean_stale_tmp()?;
        let conn = db::open(&layout.db_path())?;
        let store = Store {
            inner: Arc::new(Inner {
                layout,
                conn: Mutex::new(conn),
            }),
        };
        // A collection killed mid-way: put back what its transaction still references.
        store.recover_trash()?;
        // The first open after a reboot: blobs written without fsync before a crash.
        store.recover_after_boot()?;
        store.ensure_reserve();
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.layout.root
    }

    /// The directory that holds snapshots (unpacked layers).
    pub fn snapshots_dir(&self) -> PathBuf {
        self.inner.layout.snapshots_dir()
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    fn db_error(&self, e: Error) -> Error {
        match e {
            Error::Sql(source) => Error::Db {
                path: self.inner.layout.db_path(),
                source,
            },
            other => other,
        }
    }

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE`: waits for other writers), and
    /// commits if it returns `Ok`.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.transaction("BEGIN IMMEDIATE", f)
    }

    /// Runs `f` in a read transaction (a consistent snapshot of the database).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.transaction("BEGIN DEFERRED", f)
    }

    /// `begin`, `f`, then COMMIT, or ROLLBACK when `f` fails or panics. BEGIN and COMMIT go
    /// through the statement cache: rusqlite's `Transaction` parses both again each time
    /// (`execute_batch`), two of every three statements a no-op rebuild prepared (102).
    fn transaction<T>(&self, begin: &str, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self
            .inner
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let run = || -> Result<T> {
            db::exec(&conn, begin, [])?;
            let open = OpenTransaction(&conn);
            let out = f(&conn)?;
            db::exec(&conn, "COMMIT", [])?;
            std::mem::forget(open);
            Ok(out)
        };
        run().map_err(|e| self.db_error(e))
    }
}

/// Rolls back the connection's open transaction when dropped: on an error or a panic in the
/// transaction's body, or a failed COMMIT (forgotten after a successful one).
struct OpenTransaction<'a>(&'a Connection);

impl Drop for OpenTransaction<'_> {
    fn drop(&mut self) {
        // Fails only when no transaction is open (SQLite already rolled it back).
        let _ = db::exec(self.0, "ROLLBACK", []);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_rows(store: &Store) -> i64 {
        store
            .read(|c| Ok(c.query_row("SELECT count(*) FROM cache", [], |r| r.get(0))?))
            .unwrap()
    }

    #[test]
    fn a_failed_or_panicking_transaction_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let insert = |c: &Connection, key: &str| {
            db::exec(
                c,
                "INSERT INTO cache (key, value, size, created, last_used) VALUES (?1, x'', 0, 0, 0)",
                [key],
            )
        };
        let failed: Result<()> = store.write(|c| {
            insert(c, "a")?;
            Err(Error::ImageNotFound("x".into()))
        });
        assert!(failed.is_err());
        assert_eq!(cache_rows(&store), 0, "the failed write left its row");
        let s = store.clone();
        let panicked = std::thread::spawn(move || {
            let _ = s.write(|c| -> Result<()> {
                insert(c, "b")?;
                panic!("in a transaction")
            });
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(cache_rows(&store), 0, "the panicked write left its row");
        // The connection is usable afterwards: no transaction was left open.
        store.write(|c| Ok(insert(c, "c")?)).unwrap();
        assert_eq!(cache_rows(&store), 1);
    }
}
