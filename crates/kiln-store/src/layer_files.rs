//! Layer file lists: what each layer blob holds (paths, kinds, sizes, modes, owners, content
//! digests, whiteouts), kept beside the blob so that `kiln report` and `kiln diff` read a
//! layer once, ever, instead of once per run.
//!
//! The store keeps the list as bytes it does not interpret, under the blob's digest and the
//! reader's `format` number (kiln-report owns the encoding; a new encoding takes a new number,
//! and the old rows are simply not read). A row is a cache of the blob's content: it goes with
//! the blob's `layers` row (`ON DELETE CASCADE`), and a missing one is made again from the
//! blob.

use rusqlite::{OptionalExtension, params};

use crate::Digest;
use crate::Store;
use crate::db;
use crate::error::Result;

impl Store {
    /// The file lists of `blobs` in `format`, where kept (in one read transaction).
    pub fn layer_files(&self, blobs: &[Digest], format: u32) -> Result<Vec<Option<Vec<u8>>>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT data FROM layer_files WHERE blob_digest = ?1 AND format = ?2",
            )?;
            let mut out = Vec::with_capacity(blobs.len());
            for b in blobs {
                out.push(
                    stmt.query_row(params![b.to_string(), format], |r| r.get(0))
                        .optional()?,
                );
            }
            Ok(out)
        })
    }

    /// Keeps the file lists of layer blobs (`(blob, data)`, in `format`) in one write
    /// transaction. A blob the store no longer records as a layer is skipped.
    pub fn put_layer_files(&self, format: u32, lists: &[(Digest, Vec<u8>)]) -> Result<()> {
        if lists.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            for (blob, data) in lists {
                let blob = blob.to_string();
                let known = db::query_row(
                    tx,
                    "SELECT 1 FROM layers WHERE blob_digest = ?1",
                    [&blob],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
                if known {
                    db::exec(
                        tx,
                        "INSERT OR REPLACE INTO layer_files (blob_digest, format, data) VALUES (?1, ?2, ?3)",
                        params![blob, format, data],
                    )?;
                }
            }
            Ok(())
        })
    }
}
