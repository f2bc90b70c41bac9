//! `--output` destinations other than the store: archives, a directory, a tar of the rootfs.

use std::path::Path;
use std::sync::atomic::Ordering;

use kiln_image::ExportImage;
use kiln_store::{LayerRecord, Store};

use crate::error::{BuildError, Result};
use crate::rootfs;
use crate::rootfs::LayerRef;
use crate::state::Build;

/// How an image archive is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// An OCI image layout in a tar, blobs as the manifest names them.
    Oci,
    /// A docker-archive as BuildKit's docker exporter writes it: blobs as the manifest names
    /// them (compressed ones stay compressed), `manifest.json` naming them.
    Docker,
    /// A docker-archive as `docker save` writes it: every layer uncompressed.
    DockerSave,
}

/// Write `image` (its manifest and config; layer blobs from the store, protected by the
/// build's lease) as an archive at `dest` (see [`crate::outfile`]: a failed export leaves
/// nothing half-written, a device is written to).
pub fn write_archive(
    store: &Store,
    image: &ExportImage,
    kind: ArchiveKind,
    dest: &Path,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<()> {
    let out = crate::outfile::OutputFile::create(dest)
        .map_err(|e| BuildError::io("creating a file for", dest, e))?;
    let mut file = out.file();
    let w = std::io::BufWriter::new(Cancellable {
        inner: &mut file,
        cancel,
    });
    let images = std::slice::from_ref(image);
    let written = match kind {
        ArchiveKind::Oci => kiln_image::write_oci_archive(w, images, store),
        ArchiveKind::Docker => {
            kiln_image::archive::write_docker_archive_as_stored(w, images, store)
        }
        ArchiveKind::DockerSave => kiln_image::write_docker_archive(w, images, store),
    }
    .map_err(|e| BuildError::WriteArchive {
        dest: dest.to_path_buf(),
        source: Box::new(e),
    })?;
    written
        .into_inner()
        .map_err(|e| BuildError::io("writing", dest, e.into_error()))?;
    out.commit()
        .map_err(|e| BuildError::io("renaming into", dest, e))
}

/// `type=local`: the final filesystem, layers applied in order.
pub fn write_local(b: &Build<'_>, layers: &[LayerRecord], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| BuildError::io("creating", dir, e))?;
    for l in layers {
        let mut f = b.store.open_blob(&l.blob)?;
        let f = Cancellable {
            inner: &mut f,
            cancel: b.cancel,
        };
        kiln_snapshot::apply_layer(
            std::io::BufReader::new(f),
            dir,
            &kiln_snapshot::ExtractOptions::default(),
        )
        .map_err(|e| BuildError::WriteFiles {
            dest: dir.to_path_buf(),
            source: Box::new(e),
        })?;
    }
    Ok(())
}

/// `type=tar`: the final filesystem as one tar.
pub fn write_tar(b: &Build<'_>, chain: &[LayerRef], file: &Path) -> Result<()> {
    let root = rootfs::view(b.store, chain)?;
    let out = crate::outfile::OutputFile::create(file)
        .map_err(|e| BuildError::io("creating a file for", file, e))?;
    let mut f = out.file();
    let r = kiln_snapshot::write_layer_tar(
        root.rootfs(),
        std::io::BufWriter::new(Cancellable {
            inner: &mut f,
            cancel: b.cancel,
        }),
        &kiln_snapshot::TarOptions::default(),
    );
    drop(root);
    r.map_err(|e| BuildError::WriteFiles {
        dest: file.to_path_buf(),
        source: Box::new(e),
    })?;
    out.commit()
        .map_err(|e| BuildError::io("renaming into", file, e))
}

/// A writer (or reader) that fails once the build is cancelled (Ctrl-C during an export).
pub(crate) struct Cancellable<'a, W> {
    pub inner: &'a mut W,
    pub cancel: &'a std::sync::atomic::AtomicBool,
}

impl<R: std::io::Read> std::io::Read for Cancellable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("build cancelled"));
        }
        self.inner.read(buf)
    }
}

impl<W: std::io::Write> std::io::Write for Cancellable<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            // Not ErrorKind::Interrupted: write_all would retry that.
            return Err(std::io::Error::other("build cancelled"));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
