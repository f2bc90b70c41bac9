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
    #[error("build cancelled")]
    Cancelled,
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
        source: kiln_snapshot::Error,
    },
    #[error("{0}")]
    Other(String),
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
            BuildError::Other(m) => m,
            e @ (BuildError::Io { .. }
            | BuildError::Context(_)
            | BuildError::Passwd(_)
            | BuildError::Git(_)
            | BuildError::Http(_)
            | BuildError::Runtime(_)
            | BuildError::Mount(_)
            | BuildError::BindMount { .. }) => e.to_string(),
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
