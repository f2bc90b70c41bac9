//! The store's error type: every variant says what failed and where.

use std::path::PathBuf;

/// Errors from [`crate::Store`] operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("creating", "renaming", ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The metadata database failed.
    #[error("metadata database {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// A query failed; [`crate::Store`] rewrites this into [`Error::Db`] with the path.
    #[error("metadata database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The database was written by a newer kiln.
    #[error(
        "metadata database {path} has schema version {found}, this kiln understands up to {supported}; use a newer kiln or another --root"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// A digest string is malformed or uses an algorithm the store does not keep.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The offending text.
        digest: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Written bytes do not hash to the digest they were announced with.
    #[error("digest mismatch for {what}: expected {expected}, content hashes to {actual}")]
    DigestMismatch {
        /// What was being written (a blob name, an archive path).
        what: String,
        /// The announced digest.
        expected: String,
        /// The digest of the bytes actually received.
        actual: String,
    },
    /// Written bytes have a different length than announced.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob's digest.
        digest: String,
        /// The announced size.
        expected: u64,
        /// The number of bytes received.
        actual: u64,
    },
    /// A blob is not in the store.
    #[error("blob {digest} is not in the store")]
    BlobNotFound {
        /// The missing blob.
        digest: String,
    },
    /// No image matches a name or ID.
    #[error("No such image: {0}")]
    ImageNotFound(String),
    /// A tag was asked for a reference that names a digest (`name@sha256:…`): a tag must not
    /// claim a content digest the image does not have.
    #[error("{}", crate::DIGEST_TAG_REFUSED)]
    DigestTag(String),
    /// An image index has no image for the platform asked for (docker's words).
    #[error(
        "no matching manifest for {wanted} in the manifest list entries (it has: {})",
        crate::error::platform_list(available)
    )]
    NoMatchingManifest {
        /// The platform asked for.
        wanted: kiln_image::Platform,
        /// The platforms the index has.
        available: Vec<kiln_image::Platform>,
    },
    /// A single-platform image is not for the platform asked for (docker 24's words).
    #[error(
        "image with reference {reference} was found but does not match the specified platform: wanted {wanted}, actual: {actual}"
    )]
    PlatformMismatch {
        /// The name given.
        reference: String,
        /// The platform asked for.
        wanted: kiln_image::Platform,
        /// The image's platform.
        actual: kiln_image::Platform,
    },
    /// A short ID prefix matches several images.
    #[error("image ID prefix {prefix:?} is ambiguous: it matches {count} images")]
    AmbiguousImage {
        /// The prefix given.
        prefix: String,
        /// How many images it matched.
        count: usize,
    },
    /// A reference could not be parsed.
    #[error("invalid reference format: {reference:?}: {reason}")]
    InvalidReference {
        /// The text given.
        reference: String,
        /// The parser's explanation.
        reason: String,
    },
    /// An image cannot be removed in its current state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// No container matches a name or ID.
    #[error("No such container: {0}")]
    ContainerNotFound(String),
    /// A container name is taken, or an ID prefix is ambiguous (docker's whole message).
    #[error("{0}")]
    ContainerConflict(String),
    /// A JSON document in the store or an archive could not be parsed.
    #[error("{what}: invalid JSON: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The parser error.
        #[source]
        source: serde_json::Error,
    },
    /// An image document is valid JSON but not a usable image.
    #[error("{what}: {reason}")]
    InvalidImage {
        /// Which document.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing an archive failed.
    #[error("{0}")]
    Archive(#[from] kiln_image::ArchiveError),
    /// A snapshot key is already committed by another writer.
    #[error("snapshot {key:?} does not exist")]
    SnapshotNotFound {
        /// The key looked up.
        key: String,
    },
    /// A snapshot's parent is not committed.
    #[error("snapshot parent {parent:?} of {key:?} does not exist")]
    SnapshotParentMissing {
        /// The snapshot being committed.
        key: String,
        /// Its missing parent.
        parent: String,
    },
    /// A temporary directory passed to the store is not one it handed out.
    #[error("{path} is not a temporary directory of this store (expected one under {tmp})")]
    NotStoreTemp {
        /// The path given.
        path: PathBuf,
        /// The store's temp directory.
        tmp: PathBuf,
    },
}

pub(crate) fn platform_list(p: &[kiln_image::Platform]) -> String {
    p.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `Result` with the store's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Adds path context to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
