//! Opening the build context for a build: which ignore file applies, and where the checksum
//! cache lives in the store.

use std::path::{Path, PathBuf};

use kiln_dockerfile::dockerignore::PatternSet;
use kiln_store::Store;

use crate::error::{BuildError, Result};
use crate::inputs::context::{BuildContext, ChecksumCache, read_dockerignore};
use crate::options::BuildOptions;

/// The context with its ignore rules and the persistent checksum cache.
pub struct OpenContext {
    pub context: BuildContext,
    pub cache: ChecksumCache,
}

impl std::fmt::Debug for OpenContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenContext")
            .field("path", &self.context.path())
            .finish()
    }
}

/// `<Dockerfile>.dockerignore` next to the Dockerfile wins over the context's `.dockerignore`.
fn ignore_patterns(opts: &BuildOptions) -> Result<PatternSet> {
    let df = &opts.dockerfile_path;
    if let Some(name) = df.file_name() {
        let beside = df.with_file_name(format!("{}.dockerignore", name.to_string_lossy()));
        let limit = kiln_dockerfile::limits::MAX_DOCKERIGNORE_BYTES;
        // Inside the context it is read as the context's files are (symlinks stay inside);
        // next to a Dockerfile outside it, as that Dockerfile was read.
        let read = match (
            opts.context.canonicalize(),
            beside.parent().map(Path::canonicalize),
        ) {
            (Ok(top), Some(Ok(dir))) if dir.starts_with(&top) => {
                let rel = dir
                    .strip_prefix(&top)
                    .unwrap_or(Path::new(""))
                    .join(beside.file_name().unwrap_or_default());
                crate::inputs::context::read_capped_in_root(&top, &rel, limit, "the ignore file")
            }
            _ => crate::inputs::context::read_capped(&beside, limit, "the ignore file"),
        };
        match read {
            Ok(bytes) => {
                return PatternSet::parse_dockerignore(&String::from_utf8_lossy(&bytes)).map_err(
                    |e| BuildError::IgnorePattern {
                        path: beside.clone(),
                        line: e.line,
                        message: e.message,
                    },
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
                return Err(BuildError::IgnoreFile {
                    path: beside.clone(),
                    source: e,
                });
            }
            // Absent (or unreadable, as before): the context's `.dockerignore` applies.
            Err(_) => {}
        }
    }
    Ok(read_dockerignore(&opts.context)?)
}

fn cache_path(store: &Store, context: &Path) -> PathBuf {
    let abs = std::fs::canonicalize(context).unwrap_or_else(|_| context.to_path_buf());
    let key = crate::encoder::KeyBuilder::new("context-cache")
        .field("path", &abs.to_string_lossy())
        .finish();
    store
        .root()
        .join("context-cache-v2")
        .join(&key["sha256:".len().."sha256:".len() + 32])
}

pub fn open_context(store: &Store, opts: &BuildOptions) -> Result<OpenContext> {
    let ignore = ignore_patterns(opts)?;
    let context = BuildContext::open(&opts.context, ignore)?;
    Ok(with_cache(store, context))
}

/// A `--build-context NAME=DIR` directory, with its own `.dockerignore` (as BuildKit reads
/// a named local context's) and checksum cache.
pub fn open_named(store: &Store, name: &str, dir: &Path) -> Result<OpenContext> {
    let bad = |source| BuildError::NamedContextDir {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        source,
    };
    let context = BuildContext::open(dir, read_dockerignore(dir).map_err(bad)?).map_err(bad)?;
    Ok(with_cache(store, context))
}

/// Pair an opened directory with its checksum cache (loading on another thread).
fn with_cache(store: &Store, context: BuildContext) -> OpenContext {
    let path = cache_path(store, context.path());
    if let Some(p) = path.parent() {
        let _ = std::fs::create_dir_all(p);
    }
    let cache = ChecksumCache::load_in_background(&path);
    OpenContext { context, cache }
}

pub fn save_context_cache(ctx: &OpenContext) {
    // A cache that cannot be saved only costs the next build some hashing.
    let _ = ctx.cache.save();
}
