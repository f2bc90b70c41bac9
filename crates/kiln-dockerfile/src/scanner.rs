//! Physical lines → logical instructions: BOM, parser directives, comments, leading
//! whitespace, line continuation (with comment and empty lines inside) and heredoc bodies.
//! Mirrors BuildKit's `parser.Parse` loop.

use crate::ast::{Directive, ParseWarning};
use crate::error::{Error, ErrorKind};
use crate::span::{LineMap, Span};

/// One instruction's text with continuations joined.
#[derive(Debug, Clone)]
pub(crate) struct Logical {
    pub text: String,
    pub map: LineMap,
    pub end_line: usize,
}

pub(crate) struct Scanner<'a> {
    lines: Vec<&'a str>,
    /// Index of the next physical line to read (0-based; line number = next + 1 after reading).
    next: usize,
    pub escape: char,
    pub directives: Vec<Directive>,
    directives_done: bool,
    pub warnings: Vec<ParseWarning>,
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

fn leading_ws_chars(s: &str) -> (usize, usize) {
    let trimmed = s.trim_start();
    let bytes = s.len() - trimmed.len();
    (bytes, s[..bytes].chars().count())
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        let src = src.strip_prefix('\u{feff}').unwrap_or(src);
        Scanner {
            lines: src.split_inclusive('\n').collect(),
            next: 0,
            escape: '\\',
            directives: Vec::new(),
            directives_done: false,
            warnings: Vec::new(),
        }
    }

    /// Physical lines consumed so far (the current line number).
    pub(crate) fn line_no(&self) -> usize {
        self.next
    }

    /// BuildKit checks every line as a possible directive until the first line that is not
    /// one; `# escape=` takes effect immediately.
    fn directive(&mut self, line: &str, line_no: usize) -> Result<(), Error> {
        if self.directives_done {
            return Ok(());
        }
        let Some(body) = line.strip_prefix('#') else {
            self.directives_done = true;
            return Ok(());
        };
        let body = body.trim_start();
        let key_len = body
            .char_indices()
            .take_while(|(i, c)| {
                if *i == 0 {
                    c.is_ascii_alphabetic()
                } else {
                    c.is_ascii_alphanumeric()
                }
            })
            .count();
        let (key, after) = body.split_at(key_len);
        let after = after.trim_start();
        let value = after.strip_prefix('=').map(str::trim).unwrap_or_default();
        if key.is_empty() || !after.starts_with('=') || value.is_empty() {
            self.directives_done = true;
            return Ok(());
        }
        let key = key.to_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.directives_done = true;
            return Ok(());
        }
        let span = Span::new(line_no, 1, line.trim_end().chars().count());
        if self.directives.iter().any(|d| d.name == key) {
            return Err(Error::new(
                ErrorKind::Directive,
                span,
                format!("only one {key} parser directive can be used"),
            ));
        }
        if key == "escape" {
            match value {
                "\\" => self.escape = '\\',
                "`" => self.escape = '`',
                _ => {
                    return Err(Error::new(
                        ErrorKind::Directive,
                        span,
                        format!("invalid escape token '{value}' does not match ` or \\"),
                    )
                    .with_hint(Some("use `# escape=\\` or `# escape=``".into())));
                }
            }
        }
        self.directives.push(Directive {
            name: key,
            value: value.to_string(),
            span,
        });
        Ok(())
    }

    /// Strip a trailing continuation escape (the escape char followed only by spaces/tabs, not
    /// itself escaped). Returns the text and whether the instruction continues.
    fn trim_continuation<'s>(&self, line: &'s str) -> (&'s str, bool) {
        let t = line.trim_end_matches([' ', '\t']);
        if let Some(before) = t.strip_suffix(self.escape)
            && (before.is_empty() || !before.ends_with(self.escape))
        {
            return (before, true);
        }
        (line, false)
    }

    /// The next instruction, or `None` at end of input.
    pub(crate) fn next_logical(&mut self) -> Result<Option<Logical>, Error> {
        while self.next < self.lines.len() {
            let raw = trim_newline(self.lines[self.next]);
            self.next += 1;
            let line_no = self.next;
            let (ws_bytes, ws_chars) = leading_ws_chars(raw);
            let line = &raw[ws_bytes..];
            self.directive(line, line_no)?;
            if is_comment(line) {
                continue;
            }
            let (first, mut continues) = self.trim_continuation(line);
            if !continues && first.is_empty() {
                continue;
            }
            if continues && first.trim().is_empty() && self.next >= self.lines.len() {
                continue;
            }
            let mut text = String::from(first);
            let mut map = LineMap::default();
            map.push(0, line_no, ws_chars + 1);
            let mut empty_continuation = false;
            while continues && self.next < self.lines.len() {
                let raw = trim_newline(self.lines[self.next]);
                self.next += 1;
                if is_comment(raw) {
                    continue;
                }
                if raw.trim_start().is_empty() {
                    empty_continuation = true;
                    continue;
                }
                let (part, c) = self.trim_continuation(raw);
                continues = c;
                map.push(text.len(), self.next, 1);
                text.push_str(part);
            }
            if text.trim().is_empty() {
                continue;
            }
            if empty_continuation {
                self.warnings.push(ParseWarning {
                    rule: "NoEmptyContinuation".into(),
                    message: "Empty continuation lines will become errors in a future release"
                        .into(),
                    span: Span::line(line_no),
                });
            }
            return Ok(Some(Logical {
                text,
                map,
                end_line: self.next,
            }));
        }
        Ok(None)
    }

    /// Read a heredoc body up to its terminator line. Returns (body, first body line).
    pub(crate) fn read_heredoc(
        &mut self,
        name: &str,
        chomp: bool,
        start: Span,
    ) -> Result<(String, usize), Error> {
        let body_line = self.next + 1;
        let mut body = String::new();
        while self.next < self.lines.len() {
            let raw = self.lines[self.next];
            self.next += 1;
            let mut candidate = trim_newline(raw);
            if chomp {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == name {
                return Ok((body, body_line));
            }
            body.push_str(raw);
            if !raw.ends_with('\n') {
                body.push('\n');
            }
        }
        Err(
            Error::new(ErrorKind::Syntax, start, "unterminated heredoc").with_hint(Some(format!(
                "end the here-document with a line containing only {name}"
            ))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(src: &str) -> Vec<(String, usize, usize)> {
        let mut s = Scanner::new(src);
        let mut out = Vec::new();
        while let Some(l) = s.next_logical().unwrap() {
            out.push((l.text, l.map.span("", 0, 0).line, l.end_line));
        }
        out
    }

    #[test]
    fn continuation_with_comments_and_blank_lines() {
        let src = "FROM a\nRUN echo a \\\n# comment\n\n   b \\\n  c\n  # trailing comment\nRUN x";
        assert_eq!(
            all(src),
            [
                ("FROM a".to_string(), 1, 1),
                ("RUN echo a    b   c".to_string(), 2, 6),
                ("RUN x".to_string(), 8, 8)
            ]
        );
    }

    #[test]
    fn escaped_escape_is_not_continuation() {
        assert_eq!(all("RUN a \\\\\nRUN b")[0].0, "RUN a \\\\");
    }

    #[test]
    fn directives_only_at_top() {
        let mut s = Scanner::new("# syntax=docker/dockerfile:1\n#escape=`\nFROM a\n# escape=\\\n");
        while s.next_logical().unwrap().is_some() {}
        assert_eq!(s.escape, '`');
        assert_eq!(s.directives.len(), 2);
        let mut s = Scanner::new("# escape=`\n# escape=\\\nFROM a");
        assert!(
            s.next_logical()
                .unwrap_err()
                .message
                .contains("only one escape")
        );
        let mut s = Scanner::new("# escape=x\nFROM a");
        assert!(
            s.next_logical()
                .unwrap_err()
                .message
                .contains("invalid escape token")
        );
        let mut s = Scanner::new("# hello\n# escape=`\nFROM a");
        while s.next_logical().unwrap().is_some() {}
        assert_eq!(s.escape, '\\');
    }

    #[test]
    fn bom_and_crlf() {
        assert_eq!(all("\u{feff}FROM a\r\nRUN b \\\r\n c\r\n")[1].0, "RUN b  c");
    }
}
