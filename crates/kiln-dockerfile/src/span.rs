//! Source locations: 1-based line and column (in characters), and a length in characters.

use serde::Serialize;

/// Where something is in the Dockerfile. `line`/`col` are 1-based; `col` and `len` count
/// characters (not bytes) so a caret lines up under the text in a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    pub line: usize,
    pub col: usize,
    pub len: usize,
}

impl Span {
    pub fn new(line: usize, col: usize, len: usize) -> Self {
        Span { line, col, len }
    }

    /// A span covering the whole of `line` starting at its first column, for errors that
    /// belong to a line rather than a token.
    pub fn line(line: usize) -> Self {
        Span {
            line,
            col: 1,
            len: 0,
        }
    }
}

/// Maps byte offsets of an assembled logical line (continuations joined, comments dropped)
/// back to physical source positions.
#[derive(Debug, Clone, Default)]
pub(crate) struct LineMap {
    /// (offset in the logical line, physical line, 1-based char column of that offset)
    segments: Vec<(usize, usize, usize)>,
}

impl LineMap {
    pub(crate) fn push(&mut self, logical_offset: usize, line: usize, col: usize) {
        self.segments.push((logical_offset, line, col));
    }

    /// The span of `logical[start..end]`; a token that crosses a continuation is cut at the
    /// end of its first physical line.
    pub(crate) fn span(&self, logical: &str, start: usize, end: usize) -> Span {
        let start = start.min(logical.len());
        let end = end.clamp(start, logical.len());
        let idx = match self.segments.iter().rposition(|s| s.0 <= start) {
            Some(i) => i,
            None => return Span::default(),
        };
        let (seg_off, line, col) = self.segments[idx];
        let seg_end = self
            .segments
            .get(idx + 1)
            .map(|s| s.0)
            .unwrap_or(logical.len())
            .max(start);
        let col = col + char_count(logical, seg_off, start);
        let len = char_count(logical, start, end.min(seg_end));
        Span { line, col, len }
    }
}

fn char_count(s: &str, from: usize, to: usize) -> usize {
    s.get(from..to)
        .map(|t| t.chars().count())
        .unwrap_or(to.saturating_sub(from))
}
