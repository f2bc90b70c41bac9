//! kiln's build cache as an OCI artifact, the format `--cache-to` writes and `--cache-from`
//! reads (docs/cache-sharing.md): an OCI image manifest whose config
//! ([`CONFIG_MEDIA_TYPE`]) lists cache records (cache key → the layer the step made, and
//! when it ran), the digests of other stages' files that `COPY --from` keys read, and,
//! with `cache-mounts=true`, the `RUN --mount=type=cache` directories; its layers are the
//! blobs the records name. [`location`] reads and writes it in a registry or an OCI layout
//! directory.
//!
//! A leaf of the pipeline: it knows the format and where it lives, not the build.

pub(crate) mod location;

use serde::{Deserialize, Serialize};

/// The manifest's `artifactType`.
pub const ARTIFACT_TYPE: &str = "application/vnd.kiln.cache.v1";
/// The config blob's media type: a [`CacheConfig`] as JSON.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.kiln.cache.config.v1+json";
/// The manifest's media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The largest cache config kiln reads (a record is ~300 bytes: this is ~100k steps).
pub const CONFIG_LIMIT: u64 = 32 << 20;
/// The format version this kiln writes and reads.
pub const VERSION: u32 = 1;
/// The key of the inline records in an image config (`--cache-to type=inline`).
pub const INLINE_KEY: &str = "kiln.cache.v1";

/// A content descriptor (OCI's).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: kiln_image::Digest,
    pub size: u64,
}

/// The artifact's manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheManifest {
    pub schema_version: u32,
    pub media_type: String,
    #[serde(default)]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// The cache config: what the records say.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheConfig {
    pub version: u32,
    /// `min` or `max`, as exported.
    pub mode: String,
    pub records: Vec<Record>,
    #[serde(default)]
    pub stage_files: Vec<StageFiles>,
    #[serde(default)]
    pub cache_mounts: Vec<CacheMount>,
}

/// One step's cache record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The step's cache key (`sha256:…`, kiln's key encoding).
    pub key: String,
    /// When the step first ran (unix seconds): the image's `created` and history times.
    pub created: i64,
    /// The layer the step made, or None when it changed no file.
    pub layer: Option<LayerEntry>,
}

/// A layer a record names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LayerEntry {
    /// Index into the manifest's layers (for inline records: the image's layers).
    pub blob: usize,
    /// The uncompressed tar's digest.
    pub diff_id: kiln_image::Digest,
    pub uncompressed_size: u64,
    /// How the tar was written (kiln's tar format and `SOURCE_DATE_EPOCH`): an importer
    /// whose build writes tars the same way reuses the tar as its own layer blob.
    pub tar: String,
}

/// The digest of what a `COPY --from`/`RUN --mount=from=` selects in a stage's result,
/// under its record name (`stage-files:…`): an importer computes keys without the stage's files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StageFiles {
    pub record: String,
    pub digest: String,
}

/// A `RUN --mount=type=cache` directory's contents (kiln's `cache-mounts=true`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CacheMount {
    /// The mount's `id=` (its target when none was given).
    pub id: String,
    /// Its directory name in the store (from the id and its `from=` seed).
    pub dir: String,
    /// Index into the manifest's layers: a tar of the directory's contents.
    pub blob: usize,
    /// The directory's own mode (permission bits), owner and group: a tar of its contents
    /// does not hold them, and `RUN --mount=type=cache,uid=,gid=,mode=` sets them.
    #[serde(default)]
    pub mode: Option<u32>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
}

/// Why a cache could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The registry's error (the caller names the cache: the error names the URL).
    #[error("{source}")]
    Registry {
        reference: String,
        source: Box<kiln_registry::Error>,
    },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A blob whose bytes are not its digest: refused, nothing of it kept.
    #[error("{from}: blob {digest} does not match its digest (got {got}): refused")]
    Digest {
        from: String,
        digest: String,
        got: String,
    },
    /// A cache layer whose tar is not the diff ID its record gives.
    #[error("{from}: layer {digest} is not diff ID {want} (got {got}): refused")]
    DiffId {
        from: String,
        digest: String,
        want: String,
        got: String,
    },
    #[error("{from}: {reason}")]
    Invalid { from: String, reason: String },
    #[error("store: {0}")]
    Store(#[from] kiln_store::Error),
}

impl CacheError {
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        CacheError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How kiln writes an uncompressed layer tar with `SOURCE_DATE_EPOCH` = `epoch`: the variant
/// under which the store remembers a snapshot's uncompressed blob (`export::image`'s
/// `blob_variant` for an uncompressed layer; a test there checks they agree).
pub fn tar_variant(epoch: Option<i64>) -> String {
    match epoch {
        Some(e) => format!("tar1;none;epoch={e}"),
        None => "tar1;none".into(),
    }
}

/// Parses a cache config, checking its version.
pub fn parse_config(from: &str, bytes: &[u8]) -> Result<CacheConfig, CacheError> {
    let c: CacheConfig = serde_json::from_slice(bytes).map_err(|e| CacheError::Invalid {
        from: from.to_string(),
        reason: format!("cache config: {e}"),
    })?;
    if c.version != VERSION {
        return Err(CacheError::Invalid {
            from: from.to_string(),
            reason: format!(
                "cache format version {} (this kiln reads version {VERSION})",
                c.version
            ),
        });
    }
    Ok(c)
}
