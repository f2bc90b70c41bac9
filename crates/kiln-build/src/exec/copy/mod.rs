//! COPY and ADD with Docker's (BuildKit's) semantics, into a build container's root.
//!
//! Sources are expanded by [`crate::inputs::context::SourceTree`] (wildcards, `--parents`,
//! `--exclude`, `.dockerignore`); each selected source is written with fsutil's rules:
//! a directory copies its contents, a file lands inside an existing directory or under the
//! destination's name, symlinks inside directories stay symlinks, hard links stay linked,
//! modes and mtimes are kept, owners are `--chown` or the source's (0:0 from the context).
//! Destinations are resolved inside `dest_root` (see [`crate::rootfs::path`]).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use kiln_dockerfile::dockerignore::PatternSet;

pub mod apply;
pub mod chmod;

/// USER / `--chown` name lookup, re-exported where callers have always found it.
pub use crate::rootfs::passwd;

use crate::inputs::context::{
    BuildContext, ContextError, SelectOptions, Selected, SourceTree, WalkFilter,
};
use crate::inputs::git;
pub use crate::inputs::http::{self, HttpError};
use crate::rootfs::path::{self as rootpath, Owner, Root};
pub use chmod::{Chmod, ChmodError};
pub use passwd::PasswdError;

/// Where COPY/ADD reads from.
#[derive(Debug)]
pub enum CopySource<'a> {
    /// The build context.
    Context(&'a BuildContext),
    /// Another stage's (or image's) root filesystem; paths resolve inside it.
    Dir(PathBuf),
    /// Heredoc files `(name, content)`: mode 0644 unless `--chmod`, owned 0:0.
    Inline(Vec<(String, Vec<u8>)>),
}

/// One COPY or ADD instruction, its words already expanded.
#[derive(Debug)]
pub struct CopyRequest<'a> {
    pub source: CopySource<'a>,
    /// Source paths or patterns (URLs for ADD); empty for inline sources.
    pub patterns: Vec<String>,
    pub dest: String,
    /// The stage's WORKDIR, for a relative `dest`.
    pub workdir: String,
    /// `--chown=user[:group]`, names resolved in `dest_root`'s `/etc/passwd` and `/etc/group`.
    pub chown: Option<String>,
    /// `--chmod` (octal or symbolic).
    pub chmod: Option<String>,
    pub parents: bool,
    pub exclude: Vec<String>,
    pub is_add: bool,
    /// `--link`: the caller passes an empty root to copy into (the layer stays independent
    /// of what is below); nothing else differs here.
    pub link: bool,
    /// ADD `--checksum=sha256:...` for a URL source.
    pub checksum: Option<String>,
    /// ADD `--unpack`: `None` = extract local archives only.
    pub unpack: Option<bool>,
    /// URL sources already downloaded (while computing the step's cache key), by URL.
    pub prefetched: BTreeMap<String, http::Fetched>,
    /// Git sources already resolved to a commit (for the cache key), by URL.
    pub git_commits: BTreeMap<String, String>,
    /// ADD `--keep-git-dir`.
    pub keep_git_dir: bool,
}

impl<'a> CopyRequest<'a> {
    /// A plain `COPY patterns dest` from `source` with WORKDIR `/` and no flags; set the
    /// other fields with struct update syntax.
    pub fn new(source: CopySource<'a>, patterns: &[&str], dest: &str) -> Self {
        CopyRequest {
            source,
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            dest: dest.to_string(),
            workdir: "/".into(),
            chown: None,
            chmod: None,
            parents: false,
            exclude: Vec::new(),
            is_add: false,
            link: false,
            checksum: None,
            unpack: None,
            prefetched: BTreeMap::new(),
            git_commits: BTreeMap::new(),
            keep_git_dir: false,
        }
    }
}

pub use crate::rootfs::archive::CopyStats;
use crate::rootfs::archive::{self, ArchiveError};

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Source(#[from] ContextError),
    #[error("destination {path}: {message}")]
    Dest { path: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Chown(#[from] PasswdError),
    #[error(transparent)]
    Chmod(#[from] ChmodError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Git(#[from] git::GitError),
    #[error("{0}")]
    Invalid(String),
}

/// The absolute destination, as BuildKit's `pathRelativeToWorkingDir`: relative to WORKDIR,
/// cleaned, a trailing `/` (or `/.`) kept as "this is a directory".
pub fn normalize_dest(workdir: &str, dest: &str) -> String {
    let dir_like = dest.ends_with('/') || dest.ends_with("/.") || dest == "." || dest.is_empty();
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{workdir}/{dest}")
    };
    let clean = format!("/{}", rootpath::clean_rel(&joined));
    if dir_like && clean != "/" {
        clean + "/"
    } else {
        clean
    }
}

/// What one selected source is, with the tree it comes from.
struct Item<'t> {
    tree: &'t SourceTree,
    sel: Selected,
    /// Try to extract it as an archive (ADD of a local file).
    unpack: bool,
}

/// Run one COPY/ADD into `dest_root`.
pub fn copy_into(req: &CopyRequest<'_>, dest_root: &Path) -> Result<CopyStats, CopyError> {
    let root = Root::open(dest_root).map_err(|source| CopyError::Io {
        path: dest_root.display().to_string(),
        source,
    })?;
    let chmod = req.chmod.as_deref().map(Chmod::parse).transpose()?;
    let owner = chown_owner(req, dest_root)?;
    let urls = remote_sources(req)?;
    let opts = SelectOptions {
        parents: req.parents,
        exclude: req.exclude.clone(),
    };
    let exclude = opts.exclude_set()?;
    let scratch = tempfile::tempdir().map_err(|source| CopyError::Io {
        path: std::env::temp_dir().display().to_string(),
        source,
    })?;

    // Trees for synthetic sources (heredocs, downloads) live in the scratch directory.
    let mut own_trees: Vec<(SourceTree, Vec<String>, bool)> = Vec::new();
    let mut items: Vec<Item<'_>> = Vec::new();
    let stage_tree;
    let main_tree: Option<&SourceTree> = match &req.source {
        CopySource::Context(c) => Some(c.tree()),
        CopySource::Dir(p) => {
            stage_tree = SourceTree::open_dir(p)?;
            Some(&stage_tree)
        }
        CopySource::Inline(files) => {
            let dir = scratch.path().join("inline");
            write_inline(&dir, files)?;
            let names = files.iter().map(|(n, _)| n.clone()).collect();
            own_trees.push((
                SourceTree::open_context(&dir, PatternSet::default())?,
                names,
                false,
            ));
            None
        }
    };
    own_trees.extend(fetch_remote(req, &urls, scratch.path())?);
    if let Some(tree) = main_tree {
        for p in req
            .patterns
            .iter()
            .filter(|p| !http::is_url(p) && !http::is_git(p))
        {
            for sel in tree.expand(p, req.parents, exclude.as_ref())? {
                items.push(Item {
                    tree,
                    sel,
                    unpack: req.is_add && req.unpack != Some(false),
                });
            }
        }
    }
    for (tree, names, unpack) in &own_trees {
        for n in names {
            for sel in tree.expand(&literal(n), false, None)? {
                items.push(Item {
                    tree,
                    sel,
                    unpack: *unpack,
                });
            }
        }
    }

    let mut copier = apply::Copier {
        dest: &root,
        owner,
        chmod: chmod.as_ref(),
        stats: CopyStats::default(),
        dir_mode: 0o755,
    };
    if items.is_empty() {
        // Only wildcards that matched nothing: BuildKit copies nothing and creates nothing.
        return Ok(copier.stats);
    }
    // Several sources and a destination without a trailing `/` that is not a directory:
    // dockerd 20.10's BuildKit copies each source onto that one path (the last file wins),
    // although Docker documents an error. kiln follows the builder.
    let dest = normalize_dest(&req.workdir, &req.dest);
    // BuildKit's Copy first creates the destination directory (or the destination's parent).
    let ensure = if dest.ends_with('/') {
        dest.clone()
    } else {
        dest.rsplit_once('/')
            .map_or("/".into(), |(p, _)| format!("{p}/"))
    };
    let r = copier.resolve(&ensure)?;
    copier.mkdir_all(&r.rel)?;

    for item in &items {
        copy_item(&mut copier, &root, item, &dest, exclude.as_ref())?;
    }
    Ok(copier.stats)
}

/// The owner `--chown` gives, looked up in the destination's passwd and group files.
/// `--chown=${UNSET}` is no --chown at all, as in BuildKit.
fn chown_owner(req: &CopyRequest<'_>, dest_root: &Path) -> Result<Option<Owner>, CopyError> {
    match req.chown.as_deref().filter(|s| !s.is_empty()) {
        Some(spec) => {
            let (uid, gid) = passwd::resolve_chown(dest_root, spec)?;
            Ok(Some(Owner { uid, gid }))
        }
        None => Ok(None),
    }
}

/// Copy one selected source to `dest` (or extract it, for ADD of a local archive).
fn copy_item(
    copier: &mut apply::Copier<'_>,
    root: &Root,
    item: &Item<'_>,
    dest: &str,
    exclude: Option<&PatternSet>,
) -> Result<(), CopyError> {
    match &item.sel {
        Selected::Path {
            requested,
            resolved,
            meta,
        } => {
            if item.unpack
                && meta.kind == crate::inputs::context::Kind::File
                && let Some(reader) =
                    archive::open_archive(std::fs::File::from(item.tree.open_file(resolved)?))
            {
                let r = copier.resolve(dest)?;
                copier.mkdir_all(&r.rel)?;
                // BuildKit (dockerd 20.10's) keeps the archive's owners: `--chown` gives
                // the destination directories it creates, not the extracted entries.
                archive::extract(
                    reader,
                    root,
                    &r.rel,
                    None,
                    &requested.display().to_string(),
                    &mut copier.stats,
                )?;
                return Ok(());
            }
            let filter = WalkFilter {
                exclude,
                ..WalkFilter::default()
            };
            let name = apply::base_name(requested);
            copier.copy_tree(item.tree, resolved, &filter, dest, &name)?;
        }
        Selected::Parents {
            base,
            include,
            restrict,
            ..
        } => {
            let filter = WalkFilter {
                exclude,
                include: (!include.is_empty()).then_some(include),
                restrict,
            };
            let dir = if dest.ends_with('/') {
                dest.to_string()
            } else {
                format!("{dest}/")
            };
            copier.copy_tree(item.tree, base, &filter, &dir, OsStr::new(""))?;
        }
    }
    Ok(())
}

/// The URL and git sources of an ADD (a COPY may have none; `--checksum` needs exactly one
/// http(s) source).
fn remote_sources<'r>(req: &'r CopyRequest<'_>) -> Result<Vec<&'r String>, CopyError> {
    let urls: Vec<&String> = req
        .patterns
        .iter()
        .filter(|p| http::is_url(p) || http::is_git(p))
        .collect();
    if req.checksum.is_some() {
        if !req.is_add {
            return Err(CopyError::Invalid(
                "checksum can't be specified for COPY".into(),
            ));
        }
        if req.patterns.len() != 1 || urls.len() != 1 {
            return Err(CopyError::Invalid(
                "checksum requires exactly one HTTP(S) source".into(),
            ));
        }
    }
    if !urls.is_empty() && !req.is_add {
        return Err(CopyError::Invalid(format!(
            "source can't be a URL for COPY: {}",
            urls[0]
        )));
    }
    Ok(urls)
}

/// Check out or download each remote source into its own directory under `scratch`: a tree,
/// the names to copy from it, and whether to unpack archives.
fn fetch_remote(
    req: &CopyRequest<'_>,
    urls: &[&String],
    scratch: &Path,
) -> Result<Vec<(SourceTree, Vec<String>, bool)>, CopyError> {
    let mut own_trees = Vec::new();
    for (i, u) in urls.iter().enumerate() {
        let dir = scratch.join(format!("url{i}"));
        std::fs::create_dir(&dir).map_err(|source| CopyError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        if http::is_git(u) {
            let src = git::parse(u);
            let commit = match req.git_commits.get(u.as_str()) {
                Some(c) => c.clone(),
                None => git::resolve(u, &src)?,
            };
            git::checkout(u, &src, &commit, &dir.join("repo"), req.keep_git_dir)?;
            let name = match &src.subdir {
                Some(s) => format!("repo/{s}"),
                None => "repo".to_string(),
            };
            own_trees.push((
                SourceTree::open_context(&dir, PatternSet::default())?,
                vec![name],
                false,
            ));
            continue;
        }
        let f = match req.prefetched.get(u.as_str()) {
            Some(pre) => {
                let path = dir.join("download");
                if std::fs::hard_link(&pre.path, &path).is_err() {
                    std::fs::copy(&pre.path, &path).map_err(|source| CopyError::Io {
                        path: pre.path.display().to_string(),
                        source,
                    })?;
                }
                http::Fetched {
                    path,
                    ..pre.clone()
                }
            }
            None => http::fetch(u, req.checksum.as_deref(), &dir)?,
        };
        let named = dir.join(&f.name);
        std::fs::rename(&f.path, &named).map_err(|source| CopyError::Io {
            path: named.display().to_string(),
            source,
        })?;
        set_download_meta(&named, f.last_modified)?;
        own_trees.push((
            SourceTree::open_context(&dir, PatternSet::default())?,
            vec![f.name.clone()],
            req.unpack == Some(true),
        ));
    }
    Ok(own_trees)
}

/// Escape wildcard characters so a file name is matched literally.
fn literal(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

fn write_inline(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), CopyError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |p: &Path, source| CopyError::Io {
        path: p.display().to_string(),
        source,
    };
    std::fs::create_dir(dir).map_err(|e| io(dir, e))?;
    for (name, content) in files {
        let clean = rootpath::clean_rel(name);
        if clean.is_empty() {
            return Err(CopyError::Invalid(format!(
                "invalid heredoc file name {name:?}"
            )));
        }
        let p = dir.join(&clean);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&p, content).map_err(|e| io(&p, e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| io(&p, e))?;
    }
    Ok(())
}

fn set_download_meta(
    p: &Path,
    mtime: Option<crate::inputs::context::Time>,
) -> Result<(), CopyError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| CopyError::Io {
        path: p.display().to_string(),
        source,
    };
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    if let Some(t) = mtime {
        let ts = rustix::fs::Timespec {
            tv_sec: t.sec,
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            p,
            &rustix::fs::Timestamps {
                last_access: ts,
                last_modification: ts,
            },
            rustix::fs::AtFlags::empty(),
        )
        .map_err(|e| io(e.into()))?;
    }
    Ok(())
}
