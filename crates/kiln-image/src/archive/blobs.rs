//! Where archive writers get blobs from.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use crate::digest::Digest;

/// Content-addressed blobs an archive writer reads from (the store implements this).
/// Writers check every blob against its digest while copying it.
pub trait BlobSource {
    fn open(&self, digest: &Digest) -> io::Result<Box<dyn Read + '_>>;
    fn size(&self, digest: &Digest) -> io::Result<u64>;
}

/// Blobs in a directory laid out as `<root>/sha256/<hex>` (an OCI layout's `blobs/`).
#[derive(Clone, Debug)]
pub struct DirBlobSource {
    pub root: PathBuf,
}

impl DirBlobSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirBlobSource { root: root.into() }
    }
    fn path(&self, d: &Digest) -> PathBuf {
        self.root.join(d.algorithm()).join(d.hex())
    }
}

impl BlobSource for DirBlobSource {
    fn open(&self, digest: &Digest) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(File::open(self.path(digest))?))
    }
    fn size(&self, digest: &Digest) -> io::Result<u64> {
        Ok(std::fs::metadata(self.path(digest))?.len())
    }
}

/// Blobs held in memory (tests, small exports).
#[derive(Clone, Debug, Default)]
pub struct MemoryBlobSource {
    blobs: HashMap<Digest, Vec<u8>>,
}

impl MemoryBlobSource {
    pub fn new() -> Self {
        Self::default()
    }
    /// Stores `data` under its digest and returns the digest.
    pub fn insert(&mut self, data: Vec<u8>) -> Digest {
        let d = Digest::of(&data);
        self.blobs.insert(d, data);
        d
    }
    /// Stores `data` under a digest of the caller's choosing (to test lying blobs).
    pub fn insert_as(&mut self, digest: Digest, data: Vec<u8>) {
        self.blobs.insert(digest, data);
    }
    fn get(&self, d: &Digest) -> io::Result<&Vec<u8>> {
        self.blobs
            .get(d)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("blob {d} not found")))
    }
}

impl BlobSource for MemoryBlobSource {
    fn open(&self, digest: &Digest) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(&self.get(digest)?[..]))
    }
    fn size(&self, digest: &Digest) -> io::Result<u64> {
        Ok(self.get(digest)?.len() as u64)
    }
}
