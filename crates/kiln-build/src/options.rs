//! What a build is asked to do: the typed form of `kiln build`'s flags.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerCompression {
    /// Layers stay uncompressed in the store (as Docker's store keeps them); archives and
    /// pushes compress on the way out.
    #[default]
    Uncompressed,
    Gzip,
    Zstd,
}

/// `--output` destinations besides the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Into the store only (the default, `type=image`).
    Image,
    /// `type=docker,dest=F`: a docker-archive tar.
    Docker(PathBuf),
    /// `type=oci,dest=F`: an OCI archive tar.
    Oci(PathBuf),
    /// `type=local,dest=DIR`: the final filesystem.
    Local(PathBuf),
    /// `type=tar,dest=F`: the final filesystem as one tar.
    Tar(PathBuf),
}

/// Where a `--secret` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub context: PathBuf,
    /// The Dockerfile's path (for messages and `Dockerfile.dockerignore`).
    pub dockerfile_path: PathBuf,
    pub dockerfile_text: String,
    pub tags: Vec<String>,
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    /// Stages whose steps must not come from the cache.
    pub no_cache_filter: Vec<String>,
    pub jobs: usize,
    pub network_none: bool,
    /// `--allow security.insecure`: `RUN --security=insecure` runs privileged (refused
    /// otherwise, as BuildKit refuses it without the entitlement).
    pub allow_insecure: bool,
    pub outputs: Vec<Output>,
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--ssh ID=SOCKET`: SSH agent sockets for `RUN --mount=type=ssh`, by id.
    pub ssh: BTreeMap<String, PathBuf>,
    pub compression: LayerCompression,
    /// `SOURCE_DATE_EPOCH`: clamps timestamps and fixes `created` for reproducible digests.
    pub source_date_epoch: Option<i64>,
    /// `--runtime`: None = the embedded executor.
    pub runtime: Option<PathBuf>,
    /// `--build-context name=...`: extra named contexts.
    pub named_contexts: BTreeMap<String, String>,
}

impl BuildOptions {
    pub fn new(context: PathBuf, dockerfile_path: PathBuf, dockerfile_text: String) -> Self {
        BuildOptions {
            context,
            dockerfile_path,
            dockerfile_text,
            tags: Vec::new(),
            target: None,
            build_args: BTreeMap::new(),
            labels: BTreeMap::new(),
            no_cache: false,
            no_cache_filter: Vec::new(),
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            network_none: false,
            allow_insecure: false,
            outputs: Vec::new(),
            secrets: BTreeMap::new(),
            ssh: BTreeMap::new(),
            compression: LayerCompression::default(),
            source_date_epoch: None,
            runtime: None,
            named_contexts: BTreeMap::new(),
        }
    }
}
