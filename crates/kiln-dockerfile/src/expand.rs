//! Word expansion as BuildKit's shell lexer does it (`$v`, `${v:-w}`, quotes, escapes).
//! STUB: signatures only; the implementation is being written.

use std::collections::BTreeSet;

/// Where variable values come from during expansion.
pub trait Lookup {
    /// The value of `name`, or `None` when the variable is not set (unset ≠ empty).
    fn lookup(&self, name: &str) -> Option<&str>;
}

/// An expansion failure: `${v:?msg}`, a bad modifier, an unterminated `${` or quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    pub message: String,
    /// Byte offset inside the word where the problem starts.
    pub offset: usize,
}

/// Result of expanding one word, with the names of the variables it read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expanded<T> {
    pub value: T,
    pub used: BTreeSet<String>,
}

/// BuildKit's shell lexer, parameterised by the escape character (`\` or `` ` ``).
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    pub escape: char,
}

impl Lexer {
    pub fn new(escape: char) -> Self {
        Lexer { escape }
    }

    /// Expand `word` into one string (quotes removed, no field splitting): BuildKit `ProcessWord`.
    pub fn process_word(&self, _word: &str, _env: &dyn Lookup) -> Result<Expanded<String>, ExpandError> {
        todo!("expand.rs is being written")
    }

    /// Expand `word` and split it into fields on unquoted whitespace: BuildKit `ProcessWords`.
    pub fn process_words(&self, _word: &str, _env: &dyn Lookup) -> Result<Expanded<Vec<String>>, ExpandError> {
        todo!("expand.rs is being written")
    }
}
