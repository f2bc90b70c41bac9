//! Build errors. Dockerfile errors keep their location so the CLI can render the line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Dockerfile(#[from] kiln_dockerfile::Error),
    #[error("{message}")]
    Plan { message: String },
    #[error("base image {reference:?} is not in the store: {hint}")]
    MissingImage { reference: String, hint: String },
    /// The store has the image only for other platforms than the stage's (`message`: which),
    /// and it was not (or could not be) pulled for this one.
    #[error("{reference}: {message}: {hint}")]
    NoPlatform {
        reference: String,
        message: String,
        hint: String,
    },
    /// Pulling an image the build names failed (the registry's message, docker's words).
    #[error("{reference}: {message}")]
    PullFailed { reference: String, message: String },
    /// A step failed. `line` is the Dockerfile line; `output` the last lines it printed.
    #[error("{step}: {message}")]
    Step {
        step: String,
        line: usize,
        message: String,
        output: String,
    },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] kiln_store::Error),
    /// Reading or writing a `--cache-from`/`--cache-to` cache.
    #[error(transparent)]
    Cache(#[from] crate::cache_artifact::CacheError),
    /// A layer or cache mount of a `--cache-from` cache could not be fetched (shared by the
    /// steps that waited for it).
    #[error("importing cache: {0}")]
    CacheImport(std::sync::Arc<crate::cache_artifact::CacheError>),
    /// A `--cache-to` failed (the image is in the store already).
    #[error("exporting cache to {dest}: {source}")]
    CacheExport {
        dest: String,
        source: Box<BuildError>,
    },
    #[error("build cancelled")]
    Cancelled,
    /// A stage runs RUN steps for a platform this machine cannot run (checked before the
    /// build starts; the message says what to install).
    #[error("{stage}: {message}")]
    NoEmulator { stage: String, message: String },
    /// Reading a build context or a stage's files.
    #[error(transparent)]
    Context(#[from] crate::inputs::context::ContextError),
    /// A user or group name that the image does not define.
    #[error(transparent)]
    Passwd(#[from] crate::rootfs::passwd::PasswdError),
    #[error(transparent)]
    Git(#[from] crate::inputs::git::GitError),
    #[error(transparent)]
    Http(#[from] crate::inputs::http::HttpError),
    #[error(transparent)]
    Runtime(#[from] kiln_runtime::RuntimeError),
    /// Encoding kiln's own records or image config (JSON).
    #[error("encoding {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    /// Mounting a step's root file system (or a view of another stage or image).
    #[error("mounting the rootfs: {0}")]
    Mount(#[from] kiln_snapshot::Error),
    /// Mounting a `RUN --mount=type=bind` source (`rw`: its throwaway writable layer).
    #[error("{}bind mount {target}: {source}", if *.rw { "rw " } else { "" })]
    BindMount {
        target: String,
        rw: bool,
        source: Box<kiln_snapshot::Error>,
    },
    /// WORKDIR does not resolve inside the rootfs.
    #[error("WORKDIR {path}: {source}")]
    WorkdirPath {
        path: String,
        source: crate::rootfs::path::ResolveError,
    },
    /// WORKDIR could not be created in the rootfs.
    #[error("WORKDIR {path}: {source}")]
    Workdir {
        path: String,
        source: std::io::Error,
    },
    /// The `.dockerignore` view of a context directory bind-mounted into a RUN.
    #[error("mount {target}: {source}")]
    MountView {
        target: String,
        source: crate::inputs::context::ContextError,
    },
    /// The pipe a RUN's output is read through.
    #[error("pipe: {0}")]
    Pipe(std::io::Error),
    /// An image ID that is not a digest.
    #[error("image id {id}: {source:?}")]
    ImageId {
        id: String,
        source: kiln_image::DigestError,
    },
    /// A layer blob of a base image that does not extract.
    #[error("unpacking layer {blob} of image {image}: {source}")]
    Unpack {
        blob: String,
        image: String,
        source: Box<kiln_snapshot::Error>,
    },
    /// A step reads an image the plan did not resolve (a bug, reported rather than a panic).
    #[error("image {id} was not resolved when the build was planned")]
    ImageNotResolved { id: String },
    /// A step reads a local directory that was not opened (a bug, reported likewise).
    #[error("build context {dir} is not open")]
    ContextNotOpen { dir: String },
    /// A `.dockerignore` (or `Dockerfile.dockerignore`) pattern that does not parse.
    #[error("{}:{line}: {message}", path.display())]
    IgnorePattern {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A `Dockerfile.dockerignore` that cannot be read (too large).
    #[error("{}: {source}", path.display())]
    IgnoreFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A `--build-context NAME=DIR` directory that cannot be opened.
    #[error("--build-context {name}={}: {source}", dir.display())]
    NamedContextDir {
        name: String,
        dir: PathBuf,
        source: crate::inputs::context::ContextError,
    },
    /// A `--build-context NAME=VALUE` that kiln cannot use.
    #[error("--build-context {name}={value}: {message}")]
    NamedContext {
        name: String,
        value: String,
        message: String,
    },
    /// A stored image whose config does not parse.
    #[error("image {reference}: invalid config: {source}")]
    ImageConfig {
        reference: String,
        source: serde_json::Error,
    },
    /// The target stage is not in the plan (a bug, reported rather than a panic).
    #[error("target stage was not planned")]
    TargetNotPlanned,
    /// A layer whose media type names no compression kiln knows.
    #[error("layer {blob}: {source}")]
    LayerMediaType {
        blob: String,
        source: kiln_image::compression::UnknownMediaType,
    },
    /// Tarring (and compressing) a step's snapshot into a layer blob.
    #[error("exporting layer {}: {source}", dir.display())]
    ExportLayer {
        dir: PathBuf,
        source: Box<kiln_snapshot::Error>,
    },
    /// `--squash`: applying a layer onto the squashed layer.
    #[error("squashing layer {}: {source}", dir.display())]
    Squash {
        dir: PathBuf,
        source: Box<kiln_snapshot::Error>,
    },
    /// Recompressing a base-image layer for an output's compression.
    #[error("transcoding layer {blob} to {to}: {source}")]
    Transcode {
        blob: String,
        to: &'static str,
        source: std::io::Error,
    },
    /// A transcoded base-image layer whose tar is not the diff ID the image names.
    #[error(
        "transcoding layer {blob} to {to}: its content is {got} but the image names diff ID {want}"
    )]
    TranscodeDiffId {
        blob: String,
        to: &'static str,
        got: String,
        want: String,
    },
    /// A layer made for an output's compression whose diff ID is not the stored image's.
    #[error(
        "layer {blob} made for {compression} compression has diff ID {got}, the image's is {want}"
    )]
    OutputDiffId {
        blob: String,
        compression: &'static str,
        got: String,
        want: String,
    },
    /// A `-t` tag or an output's `name=` that is not an image reference.
    #[error("invalid {what} {name:?}: {source}")]
    InvalidName {
        what: &'static str,
        name: String,
        source: kiln_image::ReferenceError,
    },
    /// Writing an image archive (`--output type=docker|oci`).
    #[error("writing {}: {source}", dest.display())]
    WriteArchive {
        dest: PathBuf,
        source: Box<kiln_image::archive::ArchiveError>,
    },
    /// Writing the image's files (`--output type=local|tar`).
    #[error("writing {}: {source}", dest.display())]
    WriteFiles {
        dest: PathBuf,
        source: Box<kiln_snapshot::Error>,
    },
}

impl BuildError {
    pub fn plan(message: impl Into<String>) -> Self {
        BuildError::Plan {
            message: message.into(),
        }
    }

    /// This error as the failure of step `name` at Dockerfile `line`, so that it is shown
    /// with the step and its line (a COPY whose source is missing, a file that cannot be
    /// read). Errors that are not about the step (the store, a cancel) stay as they are.
    pub fn at_step(self, name: &str, line: usize) -> Self {
        let message = match self {
            e @ (BuildError::Io { .. }
            | BuildError::Context(_)
            | BuildError::Passwd(_)
            | BuildError::Git(_)
            | BuildError::Http(_)
            | BuildError::Runtime(_)
            | BuildError::Mount(_)
            | BuildError::BindMount { .. }
            | BuildError::WorkdirPath { .. }
            | BuildError::Workdir { .. }
            | BuildError::MountView { .. }
            | BuildError::Pipe(_)
            | BuildError::ImageId { .. }
            | BuildError::Unpack { .. }
            | BuildError::ImageNotResolved { .. }
            | BuildError::ContextNotOpen { .. }
            | BuildError::IgnorePattern { .. }
            | BuildError::IgnoreFile { .. }
            | BuildError::NamedContextDir { .. }
            | BuildError::NamedContext { .. }
            | BuildError::ImageConfig { .. }) => e.to_string(),
            e => return e,
        };
        BuildError::Step {
            step: name.to_string(),
            line,
            message,
            output: String::new(),
        }
    }

    /// The message without the step's name (which the progress view shows beside it).
    pub fn step_message(&self) -> String {
        match self {
            BuildError::Step { message, .. } => message.clone(),
            e => e.to_string(),
        }
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BuildError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, BuildError>;
