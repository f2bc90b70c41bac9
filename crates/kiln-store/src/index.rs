//! `index.json`: the store root is also an OCI image layout listing every tagged image,
//! so OCI tools (`skopeo inspect oci:ROOT:REF`, `umoci`) can read it; a tag that names an image
//! index lists the index. The database is the
//! source of truth; the file is regenerated after each tag change under an exclusive file
//! lock, reading the database after taking it, so the last writer always writes the newest
//! state. A crash before regeneration leaves it stale until the next tag change or
//! `system check --repair`.

use std::fs::OpenOptions;

use serde_json::json;

use crate::Store;
use crate::error::{IoContext, Result};
use crate::layout::write_atomic;

impl Store {
    /// The `index.json` the store's tags call for.
    pub(crate) fn render_index(&self) -> Result<Vec<u8>> {
        let rows: Vec<(String, String, String)> = self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT t.reference, COALESCE(x.digest, i.manifest_digest),
                        COALESCE(x.media_type, i.manifest_media_type)
                 FROM tags t JOIN images i ON i.id = t.image_id
                 LEFT JOIN image_indexes x ON x.digest = t.index_digest
                 ORDER BY t.reference",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?;
        let mut manifests = Vec::new();
        for (reference, digest, media_type) in rows {
            let size = crate::Digest::parse(&digest)
                .ok()
                .and_then(|d| self.blob_size(&d).ok())
                .unwrap_or(0);
            manifests.push(json!({
                "mediaType": media_type,
                "digest": digest,
                "size": size,
                "annotations": {
                    "io.containerd.image.name": reference,
                    "org.opencontainers.image.ref.name": reference,
                }
            }));
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        let mut out = serde_json::to_vec_pretty(&index).map_err(|e| crate::Error::Json {
            what: "index.json".into(),
            source: e,
        })?;
        out.push(b'\n');
        Ok(out)
    }

    /// Rewrites `index.json` from the database.
    pub(crate) fn sync_index(&self) -> Result<()> {
        let lock_path = self.layout().index_lock_path();
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .ctx("opening", &lock_path)?;
        lock.lock().ctx("locking", &lock_path)?;
        let bytes = self.render_index()?;
        // Unchanged (a rebuild that re-tagged the same image): no rewrite, no fsyncs.
        if std::fs::read(self.layout().index_path()).is_ok_and(|cur| cur == bytes) {
            return Ok(());
        }
        write_atomic(
            &self.layout().tmp_dir(),
            &self.layout().index_path(),
            &bytes,
        )
    }
}
