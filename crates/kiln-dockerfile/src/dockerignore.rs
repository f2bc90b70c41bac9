//! `.dockerignore` patterns with Docker's rules (moby/patternmatcher).
//! STUB: signatures only; the implementation is being written.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub line: usize,
    pub message: String,
}

/// A compiled, ordered list of patterns (`!` exceptions included); the last match wins.
#[derive(Debug, Clone, Default)]
pub struct PatternSet {}

impl PatternSet {
    /// Parse `.dockerignore` text (comments, blank lines, `!`, cleaning of `/` and `./`).
    pub fn parse_dockerignore(_text: &str) -> Result<Self, PatternError> {
        todo!("dockerignore.rs is being written")
    }

    /// Compile a list of patterns (e.g. `COPY --exclude` values).
    pub fn new<S: AsRef<str>>(_patterns: &[S]) -> Result<Self, PatternError> {
        todo!("dockerignore.rs is being written")
    }

    /// Is `path` (relative to the context root, `/`-separated, no leading `./`) excluded?
    pub fn is_excluded(&self, _path: &str) -> bool {
        todo!("dockerignore.rs is being written")
    }

    /// Can a walker skip the directory `path` entirely (it is excluded and no `!` exception can
    /// re-include anything below it)?
    pub fn can_skip_dir(&self, _path: &str) -> bool {
        todo!("dockerignore.rs is being written")
    }
}
