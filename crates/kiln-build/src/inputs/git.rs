//! ADD of a git repository (`https://host/repo.git#ref:subdir`, `git@host:repo.git`,
//! `git://...`): resolved to a commit for the cache key, checked out with the `git` command.
//!
//! As BuildKit does: the fragment names a branch, tag or commit and a subdirectory; the
//! repository's files are copied like a directory's contents; `.git` is left out (unless
//! `--keep-git-dir`); submodules are checked out. Only http(s), git and ssh transports are
//! allowed (`GIT_ALLOW_PROTOCOL`), so a Dockerfile cannot make git run local commands
//! (`ext::`) or read host paths (`file://`).

use std::path::Path;
use std::process::{Command, Stdio};

/// A parsed git source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// What `git` fetches from.
    pub remote: String,
    /// Branch, tag or commit; None = the remote's HEAD.
    pub reference: Option<String>,
    /// Path inside the repository to copy; None = all of it.
    pub subdir: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {url}: {message}")]
    Failed { url: String, message: String },
}

/// Split `URL#ref:subdir`.
pub fn parse(url: &str) -> GitSource {
    let (remote, frag) = match url.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (url, None),
    };
    let (reference, subdir) = match frag {
        Some(f) => match f.split_once(':') {
            Some((r, d)) => (r, Some(d)),
            None => (f, None),
        },
        None => ("", None),
    };
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    GitSource {
        remote: remote.to_string(),
        reference: nonempty(reference),
        subdir: subdir.and_then(|d| nonempty(d.trim_matches('/'))),
    }
}

fn is_commit(r: &str) -> bool {
    r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit())
}

fn git() -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new("git");
    c.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", "http:https:git:ssh")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null());
    // A `kill -9` of kiln must not leave git fetching into a directory the next kiln removes.
    // SAFETY: the closure runs between fork and exec and makes one async-signal-safe call.
    unsafe {
        c.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
    c
}

fn run(url: &str, cmd: &mut Command) -> Result<String, GitError> {
    let out = cmd.output().map_err(|e| GitError::Failed {
        url: url.to_string(),
        message: format!("running git: {e} (ADD of a git repository needs the git command)"),
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(GitError::Failed {
            url: url.to_string(),
            message: err.trim().lines().last().unwrap_or("failed").to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The commit `src` names now (`git ls-remote`): its cache key.
pub fn resolve(url: &str, src: &GitSource) -> Result<String, GitError> {
    if let Some(r) = &src.reference
        && is_commit(r)
    {
        return Ok(r.to_lowercase());
    }
    let want = src.reference.clone().unwrap_or_else(|| "HEAD".into());
    // The peeled entry (`v1^{}`) is listed only when asked for.
    let peeled = format!("{want}^{{}}");
    let out = run(
        url,
        git().args(["ls-remote", "--", &src.remote, &want, &peeled]),
    )?;
    let refs: Vec<(&str, &str)> = out.lines().filter_map(|l| l.split_once('\t')).collect();
    // An annotated tag's commit is its peeled entry; a branch wins over a tag of the same name.
    let candidates = [
        want.clone(),
        format!("refs/heads/{want}"),
        format!("refs/tags/{want}^{{}}"),
        format!("refs/tags/{want}"),
    ];
    for c in &candidates {
        if let Some((sha, _)) = refs.iter().find(|(_, name)| name == c) {
            return Ok(sha.to_string());
        }
    }
    Err(GitError::Failed {
        url: url.to_string(),
        message: format!("no branch or tag {want:?} in {}", src.remote),
    })
}

/// Check `commit` of `src` out into the new directory `dir`.
pub fn checkout(
    url: &str,
    src: &GitSource,
    commit: &str,
    dir: &Path,
    keep_git_dir: bool,
) -> Result<(), GitError> {
    let d = dir.to_string_lossy().to_string();
    run(url, git().args(["init", "-q", &d]))?;
    // Fetch the named ref when there is one (servers need not serve unadvertised commits).
    let what = match &src.reference {
        Some(r) if !is_commit(r) => r.clone(),
        _ => commit.to_string(),
    };
    run(
        url,
        git().args([
            "-C",
            &d,
            "fetch",
            "-q",
            "--depth",
            "1",
            "--",
            &src.remote,
            &what,
        ]),
    )?;
    let got = run(
        url,
        git().args(["-C", &d, "rev-parse", "FETCH_HEAD^{commit}"]),
    )?;
    if got.trim() != commit {
        return Err(GitError::Failed {
            url: url.to_string(),
            message: format!("{what} moved while building (now {})", got.trim()),
        });
    }
    run(
        url,
        git().args([
            "-C",
            &d,
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "-q",
            "FETCH_HEAD",
        ]),
    )?;
    if dir.join(".gitmodules").exists() {
        run(
            url,
            git().args([
                "-C",
                &d,
                "submodule",
                "update",
                "-q",
                "--init",
                "--recursive",
                "--depth",
                "1",
            ]),
        )?;
    }
    if !keep_git_dir {
        let g = dir.join(".git");
        std::fs::remove_dir_all(&g).map_err(|e| GitError::Failed {
            url: url.to_string(),
            message: format!("removing {}: {e}", g.display()),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fragments() {
        assert_eq!(
            parse("https://h/r.git#v1.2:docs/"),
            GitSource {
                remote: "https://h/r.git".into(),
                reference: Some("v1.2".into()),
                subdir: Some("docs".into()),
            }
        );
        assert_eq!(parse("git@h:o/r.git").reference, None);
        assert_eq!(parse("git://h/r.git#:sub").subdir.as_deref(), Some("sub"));
        assert_eq!(
            parse("git://h/r.git#main").reference.as_deref(),
            Some("main")
        );
    }
}
