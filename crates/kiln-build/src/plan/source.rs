//! COPY/ADD sources as the plan names them: which are remote (http(s) URLs, git
//! repositories) and how a selection of local ones is made.

/// How sources are selected (the COPY flags that change what is read).
#[derive(Debug, Clone, Default)]
pub struct SelectOptions {
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
}

/// Is `src` an http(s) URL (and not a git repository URL)?
pub fn is_url(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

/// Does `src` name a git repository, which ADD would clone?
pub fn is_git(src: &str) -> bool {
    let no_query = src.split(['?', '#']).next().unwrap_or(src);
    src.starts_with("git@")
        || src.starts_with("git://")
        || src.starts_with("ssh://")
        || (is_url(src) && no_query.ends_with(".git"))
}
