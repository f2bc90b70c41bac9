//! `--output` destinations other than the store: archives, a directory, a tar of the rootfs.

use std::path::Path;

use kiln_store::{Digest, LayerRecord, SaveFormat, Store};

use crate::engine::{Build, LayerRef, store_err};
use crate::error::{BuildError, Result};
use crate::execute::{Scratch, mount_chain};
use crate::export::Cancellable;

/// Write the stored image `image_id` as a docker-archive or oci-archive at `dest` (see
/// [`crate::outfile`]: a failed export leaves nothing half-written, a device is written to).
pub fn save_archive(
    store: &Store,
    image_id: &str,
    tags: &[String],
    format: SaveFormat,
    dest: &Path,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<()> {
    let id = Digest::parse(image_id).map_err(|e| BuildError::Other(format!("{e:?}")))?;
    let rec = store
        .image(&id)
        .map_err(store_err)?
        .ok_or_else(|| BuildError::Other(format!("image {image_id} vanished")))?;
    let names = tags
        .iter()
        .map(|t| {
            kiln_image::ImageRef::parse(t).map_err(|e| BuildError::Other(format!("tag {t}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let out = crate::outfile::OutputFile::create(dest)
        .map_err(|e| BuildError::io("creating a file for", dest, e))?;
    let mut file = out.file();
    let w = Cancellable {
        inner: &mut file,
        cancel,
    };
    store
        .save(&[(rec, names)], format, std::io::BufWriter::new(w))
        .map_err(store_err)?
        .into_inner()
        .map_err(|e| BuildError::io("writing", dest, e.into_error()))?;
    out.commit()
        .map_err(|e| BuildError::io("renaming into", dest, e))
}

/// `type=local`: the final filesystem, layers applied in order.
pub fn write_local(b: &Build<'_>, layers: &[LayerRecord], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| BuildError::io("creating", dir, e))?;
    for l in layers {
        let mut f = b.store.open_blob(&l.blob).map_err(store_err)?;
        let f = Cancellable {
            inner: &mut f,
            cancel: b.cancel,
        };
        kiln_snapshot::apply_layer(
            std::io::BufReader::new(f),
            dir,
            &kiln_snapshot::ExtractOptions::default(),
        )
        .map_err(|e| BuildError::Other(format!("writing {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// `type=tar`: the final filesystem as one tar.
pub fn write_tar(b: &Build<'_>, chain: &[LayerRef], file: &Path) -> Result<()> {
    let mut scratch = Scratch { dirs: Vec::new() };
    let (mnt, merged) = mount_chain(b, &mut scratch, chain, None)?;
    let out = crate::outfile::OutputFile::create(file)
        .map_err(|e| BuildError::io("creating a file for", file, e))?;
    let mut f = out.file();
    let r = kiln_snapshot::write_layer_tar(
        &merged,
        std::io::BufWriter::new(Cancellable {
            inner: &mut f,
            cancel: b.cancel,
        }),
        &kiln_snapshot::TarOptions::default(),
    );
    drop(mnt);
    r.map_err(|e| BuildError::Other(format!("writing {}: {e}", file.display())))?;
    out.commit()
        .map_err(|e| BuildError::io("renaming into", file, e))
}
