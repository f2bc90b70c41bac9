//! Build contexts that are not a local directory, told apart as docker's CLI does: `-`
//! (standard input), a git repository URL, an http(s) URL, and (kiln's addition) a tar
//! archive file. Each ends as a local directory the build reads like any other context.
//!
//! Git contexts go through ADD's git code ([`crate::inputs::git`]), so the same transports are
//! allowed (http, https, git, ssh) and the same `#ref:subdir` fragment is understood. An URL's
//! body is an archive (plain, gzip, bzip2, xz or zstd tar) or, when it is none, a Dockerfile
//! with an empty context, as docker detects it.

use std::path::{Path, PathBuf};

use crate::inputs::git::{self, GitError};
use crate::inputs::http::{self, HttpError};
use crate::rootfs::archive::{self, CopyStats};

use crate::rootfs::path::{self as rootpath, Root};

/// What the CONTEXT argument of `kiln build` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextSource {
    /// `-`: a tar archive or a Dockerfile on standard input.
    Stdin,
    /// A directory (or a path that does not exist: the caller reports it).
    Dir(PathBuf),
    /// A tar archive file, possibly compressed.
    Archive(PathBuf),
    /// A git repository: `https://host/repo.git#ref:subdir`, `git@host:repo.git`, `git://…`,
    /// `ssh://…`, `github.com/owner/repo`.
    Git(String),
    /// An http(s) URL whose body is an archive or a Dockerfile.
    Url(String),
}

impl ContextSource {
    /// In docker's order: `-`, an existing directory, a git URL, an URL; then a file.
    pub fn classify(arg: &str) -> ContextSource {
        let path = Path::new(arg);
        if arg == "-" {
            ContextSource::Stdin
        } else if path.is_dir() {
            ContextSource::Dir(path.to_path_buf())
        } else if http::is_git(arg) || arg.starts_with("github.com/") {
            ContextSource::Git(arg.to_string())
        } else if http::is_url(arg) {
            ContextSource::Url(arg.to_string())
        } else if path.is_file() {
            ContextSource::Archive(path.to_path_buf())
        } else {
            ContextSource::Dir(path.to_path_buf())
        }
    }

    /// Is the context fetched or unpacked (so `-f` names a file inside it, as docker reads it)?
    pub fn is_remote(&self) -> bool {
        !matches!(self, ContextSource::Dir(_))
    }
}

/// What an archive-or-Dockerfile input held.
#[derive(Debug)]
pub enum ContextInput {
    /// A tar archive, now extracted into the directory given.
    Context,
    /// A Dockerfile (the context is the empty directory given).
    Dockerfile(String),
}

/// Errors preparing a context that is not a local directory.
#[derive(Debug, thiserror::Error)]
pub enum RemoteContextError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Archive { what: String, message: String },
    #[error("{what} is neither a tar archive nor a UTF-8 Dockerfile")]
    NotText { what: String },
    #[error("{what}: {message}")]
    TooLarge { what: String, message: String },
    #[error(
        "{what} is not a tar archive (a context file must be a tar, tar.gz, tar.bz2, tar.xz or tar.zst archive)"
    )]
    NotArchive { what: String },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("git {url}: subdirectory {subdir:?} not found in the repository")]
    NoSubdir { url: String, subdir: String },
}

type Result<T> = std::result::Result<T, RemoteContextError>;

fn io(action: &'static str, path: &Path, source: std::io::Error) -> RemoteContextError {
    RemoteContextError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Extract the archive `file` into the existing, empty directory `dir`; when `file` is no
/// archive and `dockerfile_ok`, it is read as a Dockerfile. Entries are extracted as ADD
/// extracts them: resolved inside `dir`, never outside it. `what` names the input in messages.
pub fn unpack(file: &Path, dir: &Path, what: &str, dockerfile_ok: bool) -> Result<ContextInput> {
    let f = std::fs::File::open(file).map_err(|e| io("opening", file, e))?;
    if let Some(tar) = archive::open_archive(f) {
        let root = Root::open(dir).map_err(|e| io("opening", dir, e))?;
        archive::extract(
            tar,
            &root,
            Path::new(""),
            None,
            what,
            &mut CopyStats::default(),
        )
        .map_err(|e| RemoteContextError::Archive {
            what: what.to_string(),
            message: e.to_string(),
        })?;
        return Ok(ContextInput::Context);
    }
    if !dockerfile_ok {
        return Err(RemoteContextError::NotArchive {
            what: what.to_string(),
        });
    }
    let limit = kiln_dockerfile::limits::MAX_DOCKERFILE_BYTES;
    let text = super::read_capped(file, limit, &format!("the Dockerfile from {what}")).map_err(
        |e| match e.kind() {
            std::io::ErrorKind::FileTooLarge => RemoteContextError::TooLarge {
                what: what.to_string(),
                message: e.to_string(),
            },
            _ => io("reading", file, e),
        },
    )?;
    let text = String::from_utf8(text).map_err(|_| RemoteContextError::NotText {
        what: what.to_string(),
    })?;
    Ok(ContextInput::Dockerfile(text))
}

/// Download `url` into `spool_dir`, then unpack it into `dir` (see [`unpack`]).
pub fn fetch_url(url: &str, spool_dir: &Path, dir: &Path) -> Result<ContextInput> {
    let fetched = http::fetch(url, None, spool_dir)?;
    unpack(&fetched.path, dir, url, true)
}

/// Check the repository `url` (`#ref:subdir` as ADD reads it) out into the empty directory
/// `dir`, without `.git`; returns the context root: `dir`, or its `subdir`, which must be a
/// directory inside the checkout (a symlink leading out of it is refused).
pub fn checkout_git(url: &str, dir: &Path) -> Result<PathBuf> {
    let full = if url.starts_with("github.com/") {
        format!("https://{url}")
    } else {
        url.to_string()
    };
    let src = git::parse(&full);
    let commit = git::resolve(url, &src)?;
    git::checkout(url, &src, &commit, dir, false)?;
    let Some(subdir) = &src.subdir else {
        return Ok(dir.to_path_buf());
    };
    let missing = || RemoteContextError::NoSubdir {
        url: url.to_string(),
        subdir: subdir.clone(),
    };
    let top = dir.canonicalize().map_err(|e| io("resolving", dir, e))?;
    let sub = dir
        .join(rootpath::clean_rel(subdir))
        .canonicalize()
        .map_err(|_| missing())?;
    if !sub.starts_with(&top) || !sub.is_dir() {
        return Err(missing());
    }
    Ok(sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_apart_as_docker_does() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("ctx.tar");
        std::fs::write(&file, b"x").unwrap();
        let c = |s: &str| ContextSource::classify(s);
        assert_eq!(c("-"), ContextSource::Stdin);
        assert_eq!(
            c(t.path().to_str().unwrap()),
            ContextSource::Dir(t.path().into())
        );
        assert_eq!(
            c(file.to_str().unwrap()),
            ContextSource::Archive(file.clone())
        );
        for g in [
            "https://h/r.git#main:sub",
            "git@h:o/r.git",
            "git://h/r",
            "ssh://git@h/r",
            "github.com/o/r",
        ] {
            assert_eq!(c(g), ContextSource::Git(g.into()), "{g}");
        }
        assert_eq!(
            c("http://h/ctx.tar.gz"),
            ContextSource::Url("http://h/ctx.tar.gz".into())
        );
        assert_eq!(c("/no/such/dir"), ContextSource::Dir("/no/such/dir".into()));
    }

    #[test]
    fn a_file_that_is_no_archive_is_a_dockerfile_only_where_allowed() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("in");
        std::fs::write(&f, "FROM scratch\n").unwrap();
        let dir = t.path().join("ctx");
        std::fs::create_dir(&dir).unwrap();
        assert!(matches!(
            unpack(&f, &dir, "in", true).unwrap(),
            ContextInput::Dockerfile(s) if s == "FROM scratch\n"
        ));
        let e = unpack(&f, &dir, "in", false).unwrap_err().to_string();
        assert!(e.contains("is not a tar archive"), "{e}");
    }
}
