//! Where a cache artifact lives: a registry repository and tag (through kiln-registry), or an
//! OCI image layout directory (`oci-layout`, `index.json` naming the manifest by its
//! `org.opencontainers.image.ref.name` tag, `blobs/sha256/…`), as BuildKit's local cache.
//! Every blob read is checked against its digest by the reader.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use kiln_image::{Digest, ImageRef};
use kiln_registry::{Session, Settings};

use super::{CacheError, Descriptor};
use crate::cache_options::{CacheDest, CacheImport};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A cache to read.
pub(crate) struct Source {
    /// As the user named it (`--cache-from`'s ref or directory).
    pub name: String,
    kind: SourceKind,
}

enum SourceKind {
    Registry { sess: Box<Session>, repo: String },
    Local { dir: PathBuf },
}

/// A registry reference's repository, the tag or digest asked, and the familiar name.
fn registry_ref(reference: &str) -> Result<(ImageRef, String, String), CacheError> {
    let r = ImageRef::parse(reference)
        .map_err(|source| CacheError::Registry {
            reference: reference.to_string(),
            source: Box::new(source.into()),
        })?
        .docker_ref();
    let wanted = match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => kiln_image::reference::DEFAULT_TAG.to_string(),
    };
    let repo = r.path().to_string();
    Ok((r, repo, wanted))
}

impl Source {
    /// Opens `import` and reads its top manifest (an index is resolved to the host platform's
    /// entry: an image with inline cache records may be one). Returns the manifest's bytes.
    pub fn open(
        import: &CacheImport,
        settings: &Settings,
    ) -> Result<(Source, Vec<u8>), CacheError> {
        match import {
            CacheImport::Registry { reference } => {
                let (r, repo, wanted) = registry_ref(reference)?;
                let reg = |source| CacheError::Registry {
                    reference: reference.clone(),
                    source: Box::new(source),
                };
                let sess = Session::open(
                    settings,
                    r.domain(),
                    &[kiln_registry::blobs::scope(&repo, false)],
                )
                .map_err(reg)?;
                let familiar = r.familiar();
                let mut top = kiln_registry::manifest::fetch(&sess, &repo, &wanted, &familiar)
                    .map_err(reg)?;
                if let Ok(kiln_registry::manifest::Document::Index(entries)) = top.parse(&familiar)
                {
                    let d = kiln_registry::manifest::select_platform(
                        &entries,
                        &kiln_image::Platform::host(),
                    )
                    .ok_or_else(|| CacheError::Invalid {
                        from: reference.clone(),
                        reason: "an index without an entry for this platform".into(),
                    })?;
                    top = kiln_registry::manifest::fetch(
                        &sess,
                        &repo,
                        &d.digest.to_string(),
                        &familiar,
                    )
                    .map_err(reg)?;
                }
                Ok((
                    Source {
                        name: reference.clone(),
                        kind: SourceKind::Registry {
                            sess: Box::new(sess),
                            repo,
                        },
                    },
                    top.bytes,
                ))
            }
            CacheImport::Local { src, tag } => {
                let name = src.display().to_string();
                let index_path = src.join("index.json");
                let bytes = std::fs::read(&index_path)
                    .map_err(|e| CacheError::io("reading", &index_path, e))?;
                let index: Index =
                    serde_json::from_slice(&bytes).map_err(|e| CacheError::Invalid {
                        from: name.clone(),
                        reason: format!("index.json: {e}"),
                    })?;
                let entry = index
                    .manifests
                    .iter()
                    .find(|m| m.annotations.get(REF_NAME) == Some(tag))
                    .ok_or_else(|| CacheError::Invalid {
                        from: name.clone(),
                        reason: format!("no cache tagged {tag:?} in index.json"),
                    })?;
                let source = Source {
                    name,
                    kind: SourceKind::Local { dir: src.clone() },
                };
                let manifest = source.read_small(
                    &Descriptor {
                        media_type: entry.media_type.clone(),
                        digest: entry.digest,
                        size: entry.size,
                    },
                    kiln_registry::manifest::MANIFEST_LIMIT,
                )?;
                Ok((source, manifest))
            }
        }
    }

    /// The blob `d` as a stream (unverified).
    fn reader(&self, d: &Digest) -> Result<Box<dyn Read + Send>, CacheError> {
        match &self.kind {
            SourceKind::Registry { sess, repo } => {
                let r = kiln_registry::blobs::open_blob(sess, repo, d).map_err(|source| {
                    CacheError::Registry {
                        reference: self.name.clone(),
                        source: Box::new(source),
                    }
                })?;
                Ok(Box::new(r))
            }
            SourceKind::Local { dir } => {
                let p = dir.join("blobs").join(d.algorithm()).join(d.hex());
                let f = std::fs::File::open(&p).map_err(|e| CacheError::io("opening", &p, e))?;
                Ok(Box::new(f))
            }
        }
    }

    /// Copies blob `desc` into `out`, then checks its size and digest: a caller keeps what it
    /// wrote only on `Ok`.
    pub fn copy_blob(&self, desc: &Descriptor, out: &mut dyn Write) -> Result<(), CacheError> {
        let mut r = self.reader(&desc.digest)?;
        let mut h = kiln_image::digest::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r.read(&mut buf).map_err(|e| CacheError::Io {
                action: "reading blob",
                path: PathBuf::from(format!("{}@{}", self.name, desc.digest)),
                source: e,
            })?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            if h.len() > desc.size {
                break;
            }
            out.write_all(&buf[..n]).map_err(|e| CacheError::Io {
                action: "writing blob",
                path: PathBuf::from(desc.digest.to_string()),
                source: e,
            })?;
        }
        let got = h.finish();
        if got != desc.digest {
            return Err(CacheError::Digest {
                from: self.name.clone(),
                digest: desc.digest.to_string(),
                got: got.to_string(),
            });
        }
        Ok(())
    }

    /// A small blob (a config, a manifest) read whole, up to `limit` bytes, and verified.
    pub fn read_small(&self, desc: &Descriptor, limit: u64) -> Result<Vec<u8>, CacheError> {
        if desc.size > limit {
            return Err(CacheError::Invalid {
                from: self.name.clone(),
                reason: format!(
                    "blob {} is {} bytes, over the limit of {limit}",
                    desc.digest, desc.size
                ),
            });
        }
        let mut out = Vec::with_capacity(desc.size as usize);
        self.copy_blob(desc, &mut out)?;
        Ok(out)
    }
}

/// A cache to write.
pub(crate) struct Target {
    /// As the user named it.
    pub name: String,
    kind: TargetKind,
}

enum TargetKind {
    Registry {
        sess: Box<Session>,
        repo: String,
        tag: String,
    },
    Local {
        dir: PathBuf,
        tag: String,
    },
}

impl Target {
    /// Opens a registry or local destination (`Inline` has none: the caller handles it).
    pub fn open(dest: &CacheDest, settings: &Settings) -> Result<Target, CacheError> {
        match dest {
            CacheDest::Registry { reference } => {
                let (r, repo, tag) = registry_ref(reference)?;
                if r.digest().is_some() {
                    return Err(CacheError::Invalid {
                        from: reference.clone(),
                        reason: "a cache is written under a tag, not a digest".into(),
                    });
                }
                let sess = Session::open(
                    settings,
                    r.domain(),
                    &[kiln_registry::blobs::scope(&repo, true)],
                )
                .map_err(|source| CacheError::Registry {
                    reference: reference.clone(),
                    source: Box::new(source),
                })?;
                Ok(Target {
                    name: reference.clone(),
                    kind: TargetKind::Registry {
                        sess: Box::new(sess),
                        repo,
                        tag,
                    },
                })
            }
            CacheDest::Local { dest, tag } => {
                let blobs = dest.join("blobs").join("sha256");
                std::fs::create_dir_all(&blobs)
                    .map_err(|e| CacheError::io("creating", &blobs, e))?;
                let layout = dest.join("oci-layout");
                if !layout.exists() {
                    write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
                }
                Ok(Target {
                    name: dest.display().to_string(),
                    kind: TargetKind::Local {
                        dir: dest.clone(),
                        tag: tag.clone(),
                    },
                })
            }
            CacheDest::Inline => unreachable!("inline caches have no target"),
        }
    }

    /// Puts the file at `path` as blob `d`, unless the destination has it.
    pub fn put_blob(&self, d: &Digest, path: &Path) -> Result<(), CacheError> {
        match &self.kind {
            TargetKind::Registry { sess, repo, .. } => {
                kiln_registry::blobs::put_blob(sess, repo, d, path).map_err(|source| {
                    CacheError::Registry {
                        reference: self.name.clone(),
                        source: Box::new(source),
                    }
                })?;
                Ok(())
            }
            TargetKind::Local { dir, .. } => {
                let dest = dir.join("blobs").join("sha256").join(d.hex());
                if dest.exists() {
                    return Ok(());
                }
                let tmp = dest.with_extension(format!("tmp-{}", std::process::id()));
                std::fs::copy(path, &tmp).map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    CacheError::io("copying a blob to", &tmp, e)
                })?;
                std::fs::rename(&tmp, &dest).map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    CacheError::io("renaming into place", &dest, e)
                })
            }
        }
    }

    /// Puts a small blob given as bytes.
    pub fn put_bytes(&self, bytes: &[u8], scratch: &Path) -> Result<Digest, CacheError> {
        let d = Digest::of(bytes);
        let tmp = scratch.join(d.hex());
        std::fs::write(&tmp, bytes).map_err(|e| CacheError::io("writing", &tmp, e))?;
        let r = self.put_blob(&d, &tmp);
        let _ = std::fs::remove_file(&tmp);
        r.map(|()| d)
    }

    /// Puts the manifest under the destination's tag (its blobs are there already).
    pub fn put_manifest(&self, bytes: &[u8], scratch: &Path) -> Result<Digest, CacheError> {
        match &self.kind {
            TargetKind::Registry { sess, repo, tag } => {
                kiln_registry::blobs::put_manifest(
                    sess,
                    repo,
                    tag,
                    super::MANIFEST_MEDIA_TYPE,
                    bytes,
                )
                .map_err(|source| CacheError::Registry {
                    reference: self.name.clone(),
                    source: Box::new(source),
                })?;
                Ok(Digest::of(bytes))
            }
            TargetKind::Local { dir, tag } => {
                let d = self.put_bytes(bytes, scratch)?;
                let index_path = dir.join("index.json");
                let mut index = match std::fs::read(&index_path) {
                    Ok(b) => {
                        serde_json::from_slice::<Index>(&b).map_err(|e| CacheError::Invalid {
                            from: self.name.clone(),
                            reason: format!("index.json: {e}"),
                        })?
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index::default(),
                    Err(e) => return Err(CacheError::io("reading", &index_path, e)),
                };
                index.schema_version = 2;
                index
                    .manifests
                    .retain(|m| m.annotations.get(REF_NAME) != Some(tag));
                index.manifests.push(IndexEntry {
                    media_type: super::MANIFEST_MEDIA_TYPE.into(),
                    digest: d,
                    size: bytes.len() as u64,
                    annotations: [(REF_NAME.to_string(), tag.clone())].into(),
                });
                let json = serde_json::to_vec(&index).expect("an index encodes");
                write_atomic(&index_path, &json)?;
                Ok(d)
            }
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| CacheError::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CacheError::io("renaming into place", path, e)
    })
}

/// An OCI layout's `index.json` (the parts kiln reads and writes).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    #[serde(default)]
    schema_version: u32,
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}
