//! The build context: a directory, its `.dockerignore`, COPY/ADD source expansion and
//! content checksums.
//!
//! Everything here reads the context through [`SourceTree`], which resolves every path
//! inside the context root (symlinks re-rooted, `..` clamped) and hides what `.dockerignore`
//! excludes, so nothing outside the context is ever read and ignored files act as absent.

use std::io;
use std::path::{Path, PathBuf};

use kiln_dockerfile::dockerignore::PatternSet;

/// Path resolution inside a root, re-exported where callers have always found it.
pub use crate::rootfs::path as rootpath;

pub mod cache;
pub mod checksum;
pub mod glob;
pub mod remote;
pub mod stdin;
pub mod tree;
pub mod view;

pub use cache::{CacheStats, ChecksumCache};
pub use remote::{ContextInput, ContextSource, RemoteContextError};
pub use tree::{Entry, Kind, Meta, Selected, SourceTree, Time, WalkFilter};

/// Errors reading the build context or a stage root.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read .dockerignore in {path}: {message}")]
    Dockerignore { path: PathBuf, message: String },
    #[error("failed to compute cache key: {path:?}: not found")]
    NotFound { path: String },
    #[error("{path:?} is not a directory")]
    NotADirectory { path: String },
    #[error("bad pattern {pattern:?}: {message}")]
    BadPattern { pattern: String, message: String },
    #[error(transparent)]
    Glob(#[from] glob::BadPattern),
    #[error(transparent)]
    Resolve(#[from] rootpath::ResolveError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("checksum cache {path}: {message}")]
    Cache { path: PathBuf, message: String },
}

pub use crate::plan::source::SelectOptions;

impl SelectOptions {
    /// Compile `--exclude` into a pattern set (`None` when there are none).
    pub fn exclude_set(&self) -> Result<Option<PatternSet>, ContextError> {
        if self.exclude.is_empty() {
            return Ok(None);
        }
        PatternSet::new(&self.exclude)
            .map(Some)
            .map_err(|e| ContextError::BadPattern {
                pattern: self
                    .exclude
                    .get(e.line.saturating_sub(1))
                    .cloned()
                    .unwrap_or_default(),
                message: e.message,
            })
    }
}

/// The build context directory.
#[derive(Debug)]
pub struct BuildContext {
    tree: SourceTree,
}

impl BuildContext {
    /// Open `dir` with the given `.dockerignore` patterns.
    pub fn open(dir: &Path, ignore: PatternSet) -> Result<BuildContext, ContextError> {
        Ok(BuildContext {
            tree: SourceTree::open_context(dir, ignore)?,
        })
    }

    /// Open `dir`, reading `dir/.dockerignore` when there is one.
    pub fn open_with_dockerignore(dir: &Path) -> Result<BuildContext, ContextError> {
        BuildContext::open(dir, read_dockerignore(dir)?)
    }

    pub fn path(&self) -> &Path {
        self.tree.path()
    }

    pub fn tree(&self) -> &SourceTree {
        &self.tree
    }

    /// Is `rel` (relative to the context root) invisible because of `.dockerignore`?
    pub fn is_ignored(&self, rel: &str) -> bool {
        let c = rootpath::clean_rel(rel);
        !c.is_empty() && self.tree.is_hidden(Path::new(&c))
    }

    /// Expand COPY/ADD sources in order (see [`SourceTree::expand`]).
    pub fn expand(
        &self,
        sources: &[String],
        opts: &SelectOptions,
    ) -> Result<Vec<Selected>, ContextError> {
        let ex = opts.exclude_set()?;
        let mut out = Vec::new();
        for s in sources {
            out.extend(self.tree.expand(s, opts.parents, ex.as_ref())?);
        }
        Ok(out)
    }

    /// The content key of what `COPY sources` would read: `sha256:<hex>`.
    pub fn checksum(
        &self,
        sources: &[String],
        opts: &SelectOptions,
        cache: &ChecksumCache,
    ) -> Result<String, ContextError> {
        checksum::sources_digest(&self.tree, sources, opts, cache)
    }
}

/// Read at most `limit` bytes of `path` (one of `kiln_dockerfile::limits`), for the files
/// kiln parses whole: the Dockerfile and `.dockerignore`. A longer file fails with
/// `ErrorKind::FileTooLarge` after reading `limit + 1` bytes, so `/dev/zero` or an endless
/// pipe is refused at once instead of filling memory. `what` names the file in the message.
pub fn read_capped(path: &Path, limit: u64, what: &str) -> io::Result<Vec<u8>> {
    read_capped_from(std::fs::File::open(path)?, limit, what)
}

/// [`read_capped`] of `rel` inside the directory `root`, its symlinks resolved inside `root`
/// (as BuildKit reads `.dockerignore` and a remote context's Dockerfile from the context it
/// was sent): a `.dockerignore -> /etc/shadow` in a context reads nothing of the host.
pub fn read_capped_in_root(root: &Path, rel: &Path, limit: u64, what: &str) -> io::Result<Vec<u8>> {
    let r = rootpath::Root::open(root)?;
    let res = rootpath::resolve(r.fd(), rel.as_os_str().as_encoded_bytes(), true, &|_| true)
        .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.to_string()))?;
    if !res.exists {
        return Err(io::ErrorKind::NotFound.into());
    }
    let file = std::fs::File::from(rootpath::open_file(r.fd(), &res.rel)?);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} is not a regular file"),
        ));
    }
    read_capped_from(file, limit, what)
}

fn read_capped_from(file: std::fs::File, limit: u64, what: &str) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!(
                "{what} is larger than {}, kiln's limit (BuildKit cannot receive a larger one either)",
                kiln_dockerfile::limits::human(limit)
            ),
        ));
    }
    Ok(bytes)
}

/// Read `dir/.dockerignore` (empty patterns when absent). The file itself may be ignored by
/// its own patterns: the CLI still reads it (and the Dockerfile) directly.
pub fn read_dockerignore(dir: &Path) -> Result<PatternSet, ContextError> {
    let p = dir.join(".dockerignore");
    let limit = kiln_dockerfile::limits::MAX_DOCKERIGNORE_BYTES;
    match read_capped_in_root(dir, Path::new(".dockerignore"), limit, ".dockerignore") {
        Ok(bytes) => {
            PatternSet::parse_dockerignore(&String::from_utf8_lossy(&bytes)).map_err(|e| {
                ContextError::Dockerignore {
                    path: p,
                    message: e.to_string(),
                }
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(PatternSet::default()),
        Err(e) if e.kind() == io::ErrorKind::FileTooLarge => Err(ContextError::Dockerignore {
            path: p,
            message: e.to_string(),
        }),
        Err(source) => Err(ContextError::Open { path: p, source }),
    }
}
