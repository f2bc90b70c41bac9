//! Safe extraction of layer tars: into an overlay-form diff directory ([`extract_layer`]) or
//! onto a merged root file system ([`apply_layer`]).
//!
//! Never `tar::Archive::unpack`: entries are read with the `tar` crate and written here, with
//! every path resolved inside the destination (see `root.rs`). On error the destination is
//! left half-written: extract into a temporary directory and discard it on failure (the
//! [`Snapshotter`](crate::Snapshotter) does).

mod check;
mod meta;
mod path;
mod root;
mod whiteout;
mod write;

use crate::compression::decompress;
use crate::digest::HashReader;
use crate::error::{EntryError, Error, Result};
use kiln_image::{Compression, Digest};
use meta::Meta;
use path::EntryPath;
use root::{Root, Target};
use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use check::{CheckStats, check_layer_tar};

/// Choices for extraction. The default suits the current user: owners and device nodes are
/// kept only when running as root.
#[derive(Clone, Debug)]
pub struct ExtractOptions {
    /// chown entries to the uid/gid in the tar (needs root).
    pub same_owner: bool,
    /// Create block and character devices (needs root); when false they are refused with an
    /// error naming the entry.
    pub allow_devices: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        let root = rustix::process::geteuid().is_root();
        ExtractOptions {
            same_owner: root,
            allow_devices: root,
        }
    }
}

/// What an extraction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractStats {
    /// The compression detected on the input.
    pub compression: Compression,
    /// sha256 of the uncompressed tar stream: the layer's diff-id.
    pub diff_id: Digest,
    /// Length of the uncompressed tar stream.
    pub tar_size: u64,
    /// Tar entries read (PAX/GNU extension headers excluded).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Bytes of regular file content written.
    pub file_bytes: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Hard links.
    pub hardlinks: u64,
    /// `.wh.NAME` entries.
    pub whiteouts: u64,
    /// `.wh..wh..opq` entries.
    pub opaque_dirs: u64,
    /// Block and character devices not created because this process is in a user namespace
    /// (rootless), where the kernel refuses `mknod` of devices: left out of the snapshot, as
    /// Docker and buildah do rootless. The layer's blob keeps them.
    pub devices_skipped: u64,
    /// `trusted.*` xattrs not set because this process is in a user namespace.
    pub xattrs_skipped: u64,
}

/// Extract a (gzip/zstd/plain, detected) layer tar into `dest` as an overlay-form diff:
/// `.wh.NAME` becomes a 0:0 character device `NAME`, `.wh..wh..opq` sets
/// `trusted.overlay.opaque=y` on its directory, so `dest` can serve as an overlay lowerdir.
///
/// `dest` must exist; normally it is a fresh, empty directory (mode 0755).
pub fn extract_layer(
    reader: impl Read,
    dest: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractStats> {
    run(reader, dest, opts, Target::Diff)
}

/// Extract an uncompressed layer tar into `dest` as [`extract_layer`] does, with the same
/// rules and errors, but without sniffing a compression: the caller decompressed it (a pull
/// inflates a layer while it downloads and feeds the tar here). Sniffing a tar would take one
/// whose first bytes look like gzip for a second compression layer and extract something else
/// than the tar the caller hashed. `compression` in the result is `None`; `diff_id` is the
/// tar's sha256.
pub fn extract_layer_tar(
    tar: impl Read,
    dest: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractStats> {
    extract(Compression::None, Box::new(tar), dest, opts, Target::Diff)
}

/// Apply a layer tar onto a merged root file system at `dest` (for `--output type=local` and
/// flattening): whiteouts delete what lower layers left, opaque markers empty the directory
/// of everything this layer did not itself write.
pub fn apply_layer(reader: impl Read, dest: &Path, opts: &ExtractOptions) -> Result<ExtractStats> {
    run(reader, dest, opts, Target::Apply)
}

/// Runs `f` on every entry of a tar, in order. A tar that does not parse is an
/// [`Error::Archive`] naming the last good entry; `f`'s refusal an [`Error::Entry`] naming its.
pub(crate) fn for_each_entry<'a, R: Read + 'a>(
    entries: io::Result<tar::Entries<'a, R>>,
    mut f: impl FnMut(&mut tar::Entry<'a, R>) -> std::result::Result<(), EntryError>,
) -> Result<()> {
    let mut last: Option<String> = None;
    let entries = entries.map_err(|source| Error::Archive {
        after: None,
        source,
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| Error::Archive {
            after: last.clone(),
            source,
        })?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        f(&mut entry).map_err(|kind| Error::Entry {
            entry: name.clone(),
            kind,
        })?;
        last = Some(name);
    }
    Ok(())
}

fn run(
    reader: impl Read,
    dest: &Path,
    opts: &ExtractOptions,
    target: Target,
) -> Result<ExtractStats> {
    let (compression, decoded) = decompress(reader)?;
    extract(compression, decoded, dest, opts, target)
}

fn extract(
    compression: Compression,
    decoded: Box<dyn Read + '_>,
    dest: &Path,
    opts: &ExtractOptions,
    target: Target,
) -> Result<ExtractStats> {
    let mut hashed = HashReader::new(decoded);
    let mut ex = Extractor {
        root: Root::open(dest, target)?,
        opts: opts.clone(),
        stats: Counts::default(),
        deferred: Vec::new(),
        whiteouts: HashSet::new(),
    };
    {
        let mut archive = tar::Archive::new(&mut hashed);
        for_each_entry(archive.entries(), |e| ex.entry(e))?;
    }
    ex.finish()?;
    // The diff-id covers the whole stream, including the end-of-archive blocks and any
    // padding after them.
    io::copy(&mut hashed, &mut io::sink()).map_err(|source| Error::Archive {
        after: Some("end of archive".into()),
        source,
    })?;
    let (diff_id, tar_size) = hashed.finish();
    let c = ex.stats;
    Ok(ExtractStats {
        compression,
        diff_id,
        tar_size,
        entries: c.entries,
        files: c.files,
        file_bytes: c.file_bytes,
        dirs: c.dirs,
        symlinks: c.symlinks,
        hardlinks: c.hardlinks,
        whiteouts: c.whiteouts,
        opaque_dirs: c.opaque_dirs,
        devices_skipped: c.devices_skipped,
        xattrs_skipped: c.xattrs_skipped,
    })
}

#[derive(Default)]
struct Counts {
    entries: u64,
    files: u64,
    file_bytes: u64,
    dirs: u64,
    symlinks: u64,
    hardlinks: u64,
    whiteouts: u64,
    opaque_dirs: u64,
    devices_skipped: u64,
    xattrs_skipped: u64,
}

/// A directory whose metadata is set after all entries, so that writing its contents
/// neither changes its mtime nor is blocked by its mode.
struct DeferredDir {
    path: EntryPath,
    meta: Meta,
}

struct Extractor {
    root: Root,
    opts: ExtractOptions,
    stats: Counts,
    deferred: Vec<DeferredDir>,
    /// Diff mode: paths this layer turned into whiteouts (a directory later written at such a
    /// path must be opaque to keep hiding the lower one).
    whiteouts: HashSet<PathBuf>,
}

impl Extractor {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), EntryError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        self.stats.entries += 1;
        let path = EntryPath::parse(&entry.path_bytes())?;
        let meta = Meta::read(entry)?;
        self.stats.xattrs_skipped += meta.dropped_xattrs;
        if let Some(name) = path.name()
            && let Some(rest) = name.as_encoded_bytes().strip_prefix(whiteout::PREFIX)
        {
            let rest = rest.to_vec();
            return self.whiteout(&path, &rest, &meta);
        }
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous | T::GNUSparse => self.file(&path, entry, &meta),
            T::Directory => self.dir(&path, meta),
            T::Symlink => self.symlink(&path, entry, &meta),
            T::Link => self.hardlink(&path, entry),
            T::Char | T::Block => self.device(&path, kind, entry, &meta),
            T::Fifo => self.fifo(&path, &meta),
            other => Err(EntryError::UnsupportedType(other.as_byte() as char)),
        }
    }

    fn finish(&mut self) -> Result<()> {
        for d in std::mem::take(&mut self.deferred) {
            let entry = || d.path.key().to_string_lossy().into_owned();
            let fd = self
                .root
                .open_existing_dir(d.path.comps())
                .map_err(|kind| Error::Entry {
                    entry: entry(),
                    kind,
                })?;
            // Gone or replaced by a later entry of the same layer: nothing to set.
            if let Some(fd) = fd {
                d.meta
                    .apply_fd(std::os::fd::AsFd::as_fd(&fd), self.opts.same_owner)
                    .map_err(|kind| Error::Entry {
                        entry: entry(),
                        kind,
                    })?;
            }
        }
        Ok(())
    }
}
