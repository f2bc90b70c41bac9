//! Errors with a location, and their rendering with the source line and a caret.

use std::fmt::Write as _;

use serde::Serialize;

use crate::span::Span;

/// What went wrong, broadly; the message says precisely what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// A parser directive (`# escape=`, duplicates).
    Directive,
    /// Lines that don't form instructions: empty file, unterminated heredoc, instruction before FROM.
    Syntax,
    /// An instruction name that does not exist.
    UnknownInstruction,
    /// Wrong number or shape of arguments.
    Arguments,
    /// An unknown, repeated or malformed `--flag`.
    Flag,
    /// A JSON (exec form) problem.
    Json,
    /// Stage names and references: duplicates, cycles, bad index, unknown `--target`.
    Stage,
    /// Variable expansion failed (`${v:?msg}`, bad modifier).
    Expansion,
}

/// A Dockerfile error: what, where (file, line, column), and possibly how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{file}:{}:{}: {}", span.line, span.col, clip_message(.message))]
pub struct Error {
    pub kind: ErrorKind,
    pub file: String,
    pub span: Span,
    pub message: String,
    pub hint: Option<String>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, span: Span, message: impl Into<String>) -> Self {
        Error {
            kind,
            file: String::from("Dockerfile"),
            span,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    pub(crate) fn in_file(mut self, file: &str) -> Self {
        self.file = file.to_string();
        self
    }

    /// Render as a compiler-style diagnostic with the offending source line:
    ///
    /// ```text
    /// error: unknown instruction: RUNN
    ///  --> Dockerfile:3:1
    ///   |
    /// 3 | RUNN echo hi
    ///   | ^^^^
    ///   = hint: did you mean RUN?
    /// ```
    pub fn render(&self, source: &str) -> String {
        self.render_as("error", source)
    }

    /// [`Error::render`] with another level word (`ERROR`, as a failed build prints it).
    pub fn render_as(&self, level: &str, source: &str) -> String {
        render_diagnostic(
            level,
            &self.file,
            self.span,
            &self.message,
            self.hint.as_deref(),
            source,
        )
    }
}

/// The lines of a Dockerfile, indexed once, for rendering many diagnostics: finding the
/// line of each from the start of the text made 50k warnings on a 100k-line file take 30 s.
pub struct SourceLines<'a>(Vec<&'a str>);

impl<'a> SourceLines<'a> {
    pub fn new(source: &'a str) -> Self {
        SourceLines(
            source
                .strip_prefix('\u{feff}')
                .unwrap_or(source)
                .lines()
                .collect(),
        )
    }

    /// Line `line` (1-based), if there is one.
    pub fn get(&self, line: usize) -> Option<&'a str> {
        line.checked_sub(1).and_then(|i| self.0.get(i).copied())
    }
}

/// Shared by errors and check warnings.
pub(crate) fn render_diagnostic(
    level: &str,
    file: &str,
    span: Span,
    message: &str,
    hint: Option<&str>,
    source: &str,
) -> String {
    let source_line = if span.line > 0 {
        source
            .strip_prefix('\u{feff}')
            .unwrap_or(source)
            .lines()
            .nth(span.line - 1)
    } else {
        None
    };
    render_diagnostic_line(level, file, span, message, hint, source_line)
}

/// [`render_diagnostic`] with the source line already found.
pub(crate) fn render_diagnostic_line(
    level: &str,
    file: &str,
    span: Span,
    message: &str,
    hint: Option<&str>,
    source_line: Option<&str>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{level}: {}", clip_message(message));
    if span.line == 0 {
        let _ = writeln!(out, " --> {file}");
    } else {
        let _ = writeln!(out, " --> {file}:{}:{}", span.line, span.col);
    }
    let gutter = span.line.to_string().len();
    let pad = " ".repeat(gutter);
    if let Some(text) = source_line {
        let (shown, caret_at, caret_len) = excerpt(text, span);
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{} | {}", span.line, shown);
        let _ = writeln!(
            out,
            "{pad} | {}{}",
            " ".repeat(caret_at),
            "^".repeat(caret_len)
        );
    }
    if let Some(h) = hint {
        let _ = writeln!(out, "{pad} = hint: {h}");
    }
    out
}

/// Most bytes of a message shown: some quote a word of the line, which may be huge.
pub const MESSAGE_LIMIT: usize = 1024;

/// `message` whole when short, else its first [`MESSAGE_LIMIT`] bytes (at a character
/// boundary) and the full size.
pub fn clip_message(message: &str) -> std::borrow::Cow<'_, str> {
    if message.len() <= MESSAGE_LIMIT {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut end = MESSAGE_LIMIT;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}… ({} bytes)", &message[..end], message.len()))
}

/// Characters of source shown on each side of the caret (and most carets shown): a line of
/// megabytes must not make megabytes of error output.
pub const EXCERPT_CONTEXT: usize = 200;

/// The part of `text` shown for `span`: the line with tabs as spaces (a tab would misalign
/// the caret) and trailing blanks dropped, with the caret's offset and length in characters.
/// A long line is cut to [`EXCERPT_CONTEXT`] characters on each side of the caret, and a
/// long caret to [`EXCERPT_CONTEXT`] carets, with `…` where text was left out.
fn excerpt(text: &str, span: Span) -> (String, usize, usize) {
    let width = text.chars().count();
    let col = span.col.max(1) - 1;
    let len = if span.len == 0 {
        width.saturating_sub(col).max(1)
    } else {
        span.len
    };
    let caret_len = len.min(EXCERPT_CONTEXT);
    let start = col.saturating_sub(EXCERPT_CONTEXT).min(width);
    // A clipped caret ends the excerpt: what follows is more of the same token.
    let end = if caret_len < len {
        col + caret_len
    } else {
        col + caret_len + EXCERPT_CONTEXT
    };
    let untab = |c: char| if c == '\t' { ' ' } else { c };
    if start == 0 && end >= width {
        let shown: String = text.chars().map(untab).collect();
        return (shown.trim_end().to_string(), col, len);
    }
    let mut shown = String::new();
    if start > 0 {
        shown.push('…');
    }
    shown.extend(text.chars().skip(start).take(end - start).map(untab));
    if end < width {
        shown.push('…');
    } else {
        shown.truncate(shown.trim_end().len());
    }
    (shown, col - start + usize::from(start > 0), caret_len)
}

/// The closest candidate to `word` if it is a plausible misspelling (BuildKit's
/// `suggest.WrapError` uses edit distance the same way).
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    case_sensitive: bool,
) -> Option<&'a str> {
    let norm = |s: &str| {
        if case_sensitive {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    let w = norm(word);
    let limit = (w.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = levenshtein(&w, &norm(c));
        if d == 0 {
            continue;
        }
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_token() {
        let e = Error::new(
            ErrorKind::UnknownInstruction,
            Span::new(3, 1, 4),
            "unknown instruction: RUNN",
        )
        .with_hint(Some("did you mean RUN?".into()));
        let src = "FROM a\n\nRUNN echo hi\n";
        assert_eq!(
            e.render(src),
            "error: unknown instruction: RUNN\n --> Dockerfile:3:1\n  |\n3 | RUNN echo hi\n  | ^^^^\n  = hint: did you mean RUN?\n"
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("RUNN", ["RUN", "ENV"], false), Some("RUN"));
        assert_eq!(did_you_mean("xyzzy", ["RUN", "ENV"], false), None);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
