//! Diff directory → layer blob: a normalized tar, compressed, with the diff-id (sha256 of the
//! tar) and the blob digest (sha256 of the compressed bytes) computed in one streaming pass.
//! Uncompressed, the blob is the tar: it is hashed once (on a thread of its own, beside the
//! writing), and the diff-id is the digest.

mod pgzip;
mod tar_writer;

pub use tar_writer::{LayerStats, TarOptions, write_layer_tar};

use crate::digest::{HashWriter, ThreadedHashWriter};
use crate::error::{Result, io_err};
use kiln_image::{Compression, Digest};
use pgzip::ParGzWriter;
use std::io::{self, Write};
use std::path::Path;

/// How to export a layer.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Compression of the blob.
    pub compression: Compression,
    /// Compression level: gzip 0–9 (default 6, as Docker and BuildKit; 0 stores), zstd 0–22
    /// (default 3; 0 is zstd's default).
    pub level: Option<i32>,
    /// Worker threads for compression (default: the number of CPUs). Output bytes do not
    /// depend on it.
    pub threads: Option<usize>,
    /// Tar options (`SOURCE_DATE_EPOCH`).
    pub tar: TarOptions,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            compression: Compression::Gzip,
            level: None,
            threads: None,
            tar: TarOptions::default(),
        }
    }
}

/// What a layer export produced: everything a manifest and a config need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerDescriptorInfo {
    /// The blob's compression.
    pub compression: Compression,
    /// sha256 of the uncompressed tar (goes into the image config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// sha256 of the blob (goes into the manifest).
    pub digest: Digest,
    /// Length of the blob.
    pub size: u64,
    /// Length of the uncompressed tar.
    pub uncompressed_size: u64,
    /// What went into the tar.
    pub stats: LayerStats,
}

impl LayerDescriptorInfo {
    /// The OCI media type of the blob.
    pub fn media_type(&self) -> &'static str {
        self.compression.layer_media_type(true)
    }
}

enum Encoder<W: Write> {
    Gzip(ParGzWriter<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(w) => w.write(b),
            Encoder::Zstd(w) => w.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

impl<W: Write> Encoder<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(w) => w.finish(),
            Encoder::Zstd(w) => w.finish(),
        }
    }
}

/// Export the diff directory `diff_dir` as a layer blob written to `out`.
///
/// The same directory gives the same bytes every time (sorted entries, normalized headers,
/// gzip header without time or name, zstd always in multi-threaded mode whose output does not
/// depend on the worker count); with `tar.source_date_epoch` that holds across rebuilds too.
pub fn export_layer(
    diff_dir: &Path,
    opts: &ExportOptions,
    out: impl Write,
) -> Result<LayerDescriptorInfo> {
    let threads = opts
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    if opts.compression == Compression::None {
        return export_plain(diff_dir, opts, out);
    }
    let cerr = io_err("compress layer from", diff_dir);
    let encoder = encoder(opts, threads, HashWriter::new(out))
        .map_err(io_err("compress layer from", diff_dir))?;
    let mut tar = HashWriter::new(encoder);
    let stats = write_layer_tar(diff_dir, &mut tar, &opts.tar)?;
    let (encoder, diff_id, uncompressed_size) = tar.into_parts();
    let blob = encoder.finish().map_err(cerr)?;
    let (mut out, digest, size) = blob.into_parts();
    out.flush()
        .map_err(io_err("write layer blob from", diff_dir))?;
    Ok(LayerDescriptorInfo {
        compression: opts.compression,
        diff_id,
        digest,
        size,
        uncompressed_size,
        stats,
    })
}

/// The compressing writer `opts` asks for (not for `Compression::None`).
fn encoder<W: Write>(opts: &ExportOptions, threads: usize, blob: W) -> io::Result<Encoder<W>> {
    Ok(match opts.compression {
        Compression::None => unreachable!("the uncompressed blob is the tar"),
        Compression::Gzip => Encoder::Gzip(ParGzWriter::new(
            blob,
            opts.level.unwrap_or(6).clamp(0, 9) as u32,
            threads,
        )),
        Compression::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(blob, opts.level.unwrap_or(3))?;
            e.multithread(threads as u32)?;
            Encoder::Zstd(e)
        }
    })
}

/// What [`compress_tar`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompressedBlob {
    /// sha256 and length of the tar read.
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    /// sha256 and length of the blob written.
    pub digest: Digest,
    pub size: u64,
}

/// Writes the layer tar read from `tar` to `out` compressed as `opts` asks (level included;
/// `opts.tar` is not used: the tar is taken as it is), hashing both sides in the same pass.
/// This is how a stored blob is transcoded: decompress it, then feed it here.
pub fn compress_tar(
    mut tar: impl io::Read,
    opts: &ExportOptions,
    out: impl Write,
) -> io::Result<CompressedBlob> {
    let threads = opts
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let blob = HashWriter::new(out);
    let (blob, diff_id, uncompressed_size) = if opts.compression == Compression::None {
        let mut w = HashWriter::new(blob);
        io::copy(&mut tar, &mut w)?;
        w.into_parts()
    } else {
        let mut w = HashWriter::new(encoder(opts, threads, blob)?);
        io::copy(&mut tar, &mut w)?;
        let (enc, d, n) = w.into_parts();
        (enc.finish()?, d, n)
    };
    let (mut out, digest, size) = blob.into_parts();
    out.flush()?;
    Ok(CompressedBlob {
        diff_id,
        uncompressed_size,
        digest,
        size,
    })
}

/// The uncompressed case: the tar is the blob, hashed once.
fn export_plain(
    diff_dir: &Path,
    opts: &ExportOptions,
    out: impl Write,
) -> Result<LayerDescriptorInfo> {
    let mut tar = ThreadedHashWriter::new(out).map_err(io_err("start hashing for", diff_dir))?;
    let stats = write_layer_tar(diff_dir, &mut tar, &opts.tar)?;
    let (mut out, digest, size) = tar
        .finish()
        .map_err(io_err("write layer blob from", diff_dir))?;
    out.flush()
        .map_err(io_err("write layer blob from", diff_dir))?;
    Ok(LayerDescriptorInfo {
        compression: Compression::None,
        diff_id: digest,
        digest,
        size,
        uncompressed_size: size,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A transcoded blob decompresses to the tar it was given, at every level asked.
    #[test]
    fn compress_tar_round_trips_at_each_level() {
        let tar: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let diff_id = Digest::of(&tar);
        for (compression, level) in [
            (Compression::None, None),
            (Compression::Gzip, Some(0)),
            (Compression::Gzip, Some(9)),
            (Compression::Zstd, Some(1)),
            (Compression::Zstd, Some(19)),
        ] {
            let opts = ExportOptions {
                compression,
                level,
                threads: Some(2),
                ..Default::default()
            };
            let mut blob = Vec::new();
            let info = compress_tar(&tar[..], &opts, &mut blob).unwrap();
            assert_eq!(info.diff_id, diff_id);
            assert_eq!(info.uncompressed_size, tar.len() as u64);
            assert_eq!(
                (info.digest, info.size),
                (Digest::of(&blob), blob.len() as u64)
            );
            assert_eq!(Compression::detect(&blob), compression);
            let mut back = Vec::new();
            compression
                .decoder(Box::new(&blob[..]))
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == tar, "{compression} {level:?}");
            if level == Some(0) {
                assert!(blob.len() > tar.len(), "gzip level 0 stores");
            }
        }
    }
}
