//! Errors of the analyses: the store's, or a layer that could not be read.

use std::path::PathBuf;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed (an image not found, a blob missing, the database).
    #[error(transparent)]
    Store(#[from] kiln_store::Error),
    /// A layer blob could not be read as a tar.
    #[error("reading layer {path}: {source}")]
    Layer {
        /// The blob file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
