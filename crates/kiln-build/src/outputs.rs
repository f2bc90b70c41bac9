//! `--output` destinations other than the store: archives, a directory, a tar of the rootfs.

use std::path::Path;

use kiln_store::{Digest, LayerRecord, SaveFormat, Store};

use crate::engine::{Build, LayerRef, store_err};
use crate::error::{BuildError, Result};
use crate::execute::{Scratch, mount_chain};

/// Write the stored image `image_id` as a docker-archive or oci-archive at `dest` (via a
/// temporary file renamed into place, so a failed export leaves nothing half-written).
pub fn save_archive(
    store: &Store,
    image_id: &str,
    tags: &[String],
    format: SaveFormat,
    dest: &Path,
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
    let tmp = dest.with_extension("kiln-tmp");
    let f = std::fs::File::create(&tmp).map_err(|e| BuildError::io("creating", &tmp, e))?;
    let written = store
        .save(&[(rec, names)], format, std::io::BufWriter::new(f))
        .map_err(store_err)
        .and_then(|w| {
            w.into_inner()
                .map_err(|e| BuildError::io("writing", &tmp, e.into_error()))
        });
    match written {
        Ok(_) => std::fs::rename(&tmp, dest).map_err(|e| BuildError::io("renaming into", dest, e)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// `type=local`: the final filesystem, layers applied in order.
pub fn write_local(b: &Build<'_>, layers: &[LayerRecord], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| BuildError::io("creating", dir, e))?;
    for l in layers {
        let f = b.store.open_blob(&l.blob).map_err(store_err)?;
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
    let f = std::fs::File::create(file).map_err(|e| BuildError::io("creating", file, e))?;
    let r = kiln_snapshot::write_layer_tar(
        &merged,
        std::io::BufWriter::new(f),
        &kiln_snapshot::TarOptions::default(),
    );
    drop(mnt);
    r.map(|_| ())
        .map_err(|e| BuildError::Other(format!("writing {}: {e}", file.display())))
}
