//! Word expansion as BuildKit's shell lexer does it (`$v`, `${v:-w}`, quotes, escapes).
//!
//! The behaviour follows `frontend/dockerfile/shell/lex.go` in moby/buildkit, quirks included,
//! because a Dockerfile must expand the same way under kiln as under `docker build`:
//! - `$` followed by a character that cannot start a name stays a literal `$`;
//! - `${v:X...}` with any `X` other than `-`, `+`, `?` is an "unsupported modifier" error;
//! - `#`, `%` and `/` patterns know `*`, `?` and `\` escapes only; `[` is literal there;
//! - field splitting (`process_words`) drops empty quoted strings (`""` is no field);
//! - `<<` followed by blanks stays glued to the next word (BuildKit's heredoc hint).
//!
//! Where BuildKit's message would be unhelpful (`${v` at the end of the word reports
//! "unsupported modifier (\u{FFFD})") kiln says "syntax error: missing '}'" instead.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;

use regex::Regex;

use crate::limits::{MAX_WORD_GROWTH, human};

/// Where variable values come from during expansion.
pub trait Lookup {
    /// The value of `name`, or `None` when the variable is not set (unset ≠ empty).
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl<S: BuildHasher> Lookup for HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Lookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// `KEY`/`VALUE` pairs in definition order; a later pair overrides an earlier one, as
/// BuildKit's `EnvsFromSlice` does.
impl Lookup for [(&str, &str)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

impl<T: Lookup + ?Sized> Lookup for &T {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }
}

/// An expansion failure: `${v:?msg}`, a bad modifier, an unterminated `${` or quote.
///
/// Displays as BuildKit does: `failed to process "WORD": MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {word:?}: {message}")]
pub struct ExpandError {
    /// What went wrong, in BuildKit's words (e.g. `syntax error: bad substitution`).
    pub message: String,
    /// Byte offset inside the word where the problem starts (the `$` of a substitution, the
    /// opening quote of an unterminated string).
    pub offset: usize,
    /// The whole word that was being expanded.
    pub word: String,
}

/// Result of expanding one word, with the names of the variables it read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expanded<T> {
    pub value: T,
    /// Every variable name the word looked up, set or not (for cache keys and checks).
    pub used: BTreeSet<String>,
    /// The subset of `used` that was not set (for the UndefinedVar check).
    pub unset: BTreeSet<String>,
}

/// Switches matching BuildKit's `Lex` fields, for the parser's own uses (heredoc names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LexOptions {
    /// Keep quote characters in the result (`RawQuotes`).
    pub raw_quotes: bool,
    /// Keep escape characters in the result (`RawEscapes`).
    pub raw_escapes: bool,
    /// Leave references to unset variables as written (`SkipUnsetEnv`).
    pub skip_unset_env: bool,
    /// Treat quotes as ordinary characters (`SkipProcessQuotes`).
    pub skip_process_quotes: bool,
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
    pub fn process_word(
        &self,
        word: &str,
        env: &dyn Lookup,
    ) -> Result<Expanded<String>, ExpandError> {
        self.process_word_with(word, env, &LexOptions::default())
    }

    /// Expand `word` and split it into fields on unquoted whitespace: BuildKit `ProcessWords`.
    pub fn process_words(
        &self,
        word: &str,
        env: &dyn Lookup,
    ) -> Result<Expanded<Vec<String>>, ExpandError> {
        self.process_words_with(word, env, &LexOptions::default())
    }

    /// [`Lexer::process_word`] with BuildKit's lexer switches.
    pub fn process_word_with(
        &self,
        word: &str,
        env: &dyn Lookup,
        opts: &LexOptions,
    ) -> Result<Expanded<String>, ExpandError> {
        // Most words have nothing to expand; skip the scanner for them.
        let special = |c: char| matches!(c, '$' | '\'' | '"' | '\u{FEFF}') || c == self.escape;
        if !word.contains(special) {
            return Ok(Expanded {
                value: word.to_owned(),
                ..Expanded::default()
            });
        }
        let mut out = String::with_capacity(word.len());
        let (used, unset) = self.run(word, env, opts, &mut out)?;
        Ok(Expanded {
            value: out,
            used,
            unset,
        })
    }

    /// [`Lexer::process_words`] with BuildKit's lexer switches.
    pub fn process_words_with(
        &self,
        word: &str,
        env: &dyn Lookup,
        opts: &LexOptions,
    ) -> Result<Expanded<Vec<String>>, ExpandError> {
        let mut out = Fields::default();
        let (used, unset) = self.run(word, env, opts, &mut out)?;
        Ok(Expanded {
            value: out.finish(),
            used,
            unset,
        })
    }

    fn run<S: Sink>(
        &self,
        word: &str,
        env: &dyn Lookup,
        opts: &LexOptions,
        out: &mut S,
    ) -> Result<(BTreeSet<String>, BTreeSet<String>), ExpandError> {
        let mut scan = Scan {
            src: word,
            // Go's text/scanner drops a byte-order mark at the start of its input.
            pos: if word.starts_with('\u{FEFF}') { 3 } else { 0 },
            escape: self.escape,
            opts: *opts,
            env,
            used: BTreeSet::new(),
            unset: BTreeSet::new(),
            depth: 0,
            budget: word.len().saturating_add(MAX_WORD_GROWTH),
        };
        match scan.stop_on(None, opts.raw_escapes, out) {
            Ok(()) => Ok((scan.used, scan.unset)),
            Err(fail) => Err(ExpandError {
                message: fail.message,
                offset: fail.offset,
                word: word.to_owned(),
            }),
        }
    }
}

const MISSING_BRACE: &str = "syntax error: missing '}'";

/// How deep `${...}` may nest: each level recurses, and a hostile word must not overflow
/// the stack (BuildKit has no limit; no real Dockerfile comes near this).
const MAX_NESTING: usize = 200;

/// The error when a word's expansion passes its budget (see [`MAX_WORD_GROWTH`]).
fn too_large(offset: usize) -> Fail {
    fail(
        offset,
        format!(
            "expansion too large: the word would grow by more than {} (kiln's limit, which stops exponential ARG/ENV expansion)",
            human(MAX_WORD_GROWTH as u64)
        ),
    )
}

/// An error before it learns which word it belongs to.
struct Fail {
    message: String,
    offset: usize,
}

fn fail(offset: usize, message: impl Into<String>) -> Fail {
    Fail {
        message: message.into(),
        offset,
    }
}

/// Where scanned text goes: one string, or fields split on unquoted whitespace.
trait Sink {
    /// An unquoted, unescaped character (splits fields when it is whitespace).
    fn lit(&mut self, ch: char);
    /// A character that never splits (escaped).
    fn raw_char(&mut self, ch: char);
    /// Text that never splits (quoted strings, `<<`), even when empty it starts a field.
    fn raw_str(&mut self, s: &str);
    /// The value of a substitution: splits like unquoted text.
    fn expanded(&mut self, s: &str) {
        for ch in s.chars() {
            self.lit(ch);
        }
    }
}

impl Sink for String {
    fn lit(&mut self, ch: char) {
        self.push(ch);
    }
    fn raw_char(&mut self, ch: char) {
        self.push(ch);
    }
    fn raw_str(&mut self, s: &str) {
        self.push_str(s);
    }
    fn expanded(&mut self, s: &str) {
        self.push_str(s);
    }
}

/// BuildKit's `wordsStruct`: a field ends at whitespace only if it holds something, so
/// empty quoted strings never become fields.
#[derive(Default)]
struct Fields {
    words: Vec<String>,
    buf: String,
    in_word: bool,
}

impl Fields {
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

impl Sink for Fields {
    fn lit(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.raw_char(ch);
        }
    }
    fn raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }
    fn raw_str(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
}

/// Go's `unicode.IsLetter` (approximated by the Alphabetic property).
fn is_letter(c: char) -> bool {
    c.is_alphabetic()
}

/// Go's `unicode.IsDigit` (approximated by the Numeric property).
fn is_digit(c: char) -> bool {
    c.is_numeric()
}

/// POSIX special parameters: `$@ $* $# $? $- $$ $! $0` (never set in a Dockerfile).
fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

struct Scan<'a> {
    src: &'a str,
    pos: usize,
    escape: char,
    opts: LexOptions,
    env: &'a dyn Lookup,
    used: BTreeSet<String>,
    unset: BTreeSet<String>,
    depth: usize,
    /// Bytes this word may still write into any buffer (its result and the intermediate
    /// results of nested substitutions): memory and time stay linear in the input.
    budget: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos += ch.len_utf8();
        Some(ch)
    }

    fn at_eof(&self) -> bool {
        self.pos >= self.src.len()
    }

    /// Account for `n` bytes about to be written; fails (before any allocation) when the
    /// word's budget is spent.
    fn charge(&mut self, n: usize) -> Result<(), Fail> {
        match self.budget.checked_sub(n) {
            Some(rest) => {
                self.budget = rest;
                Ok(())
            }
            None => Err(too_large(self.pos)),
        }
    }

    fn get_env(&mut self, name: &str) -> Option<&'a str> {
        let value = self.env.lookup(name);
        if !self.used.contains(name) {
            self.used.insert(name.to_owned());
        }
        if value.is_none() && !self.unset.contains(name) {
            self.unset.insert(name.to_owned());
        }
        value
    }

    /// Scan until `stop` (consumed) or the end of the word. `raw` keeps escape characters,
    /// as BuildKit does for `#`, `%` and `/` patterns so that `\*` stays a literal star.
    fn stop_on<S: Sink>(&mut self, stop: Option<char>, raw: bool, out: &mut S) -> Result<(), Fail> {
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += ch.len_utf8();
                return Ok(());
            }
            match ch {
                '$' => {
                    let value = self.dollar()?;
                    self.charge(value.len())?;
                    out.expanded(&value);
                }
                '<' => {
                    let text = self.possible_heredoc();
                    self.charge(text.len())?;
                    out.raw_str(text);
                }
                '\'' if !self.opts.skip_process_quotes => {
                    let text = self.single_quote()?;
                    self.charge(text.len())?;
                    out.raw_str(text);
                }
                '"' if !self.opts.skip_process_quotes => {
                    // Charged as `double_quote` built it; moving it here is not growth.
                    let text = self.double_quote(raw)?;
                    out.raw_str(&text);
                }
                _ => {
                    self.pos += ch.len_utf8();
                    if ch == self.escape {
                        if raw {
                            self.charge(ch.len_utf8())?;
                            out.raw_char(ch);
                        }
                        // An escape at the very end of the word is dropped.
                        match self.next() {
                            Some(escaped) => {
                                self.charge(escaped.len_utf8())?;
                                out.raw_char(escaped)
                            }
                            None => break,
                        }
                    } else {
                        self.charge(ch.len_utf8())?;
                        out.lit(ch);
                    }
                }
            }
        }
        match stop {
            Some(stop) => Err(fail(
                self.pos,
                format!("unexpected end of statement while looking for matching {stop}"),
            )),
            None => Ok(()),
        }
    }

    /// Everything between single quotes is literal; a single quote cannot be escaped.
    fn single_quote(&mut self) -> Result<&'a str, Fail> {
        let start = self.pos;
        self.pos += 1;
        match self.src[self.pos..].find('\'') {
            Some(len) => {
                let end = self.pos + len;
                self.pos = end + 1;
                Ok(if self.opts.raw_quotes {
                    &self.src[start..=end]
                } else {
                    &self.src[start + 1..end]
                })
            }
            None => {
                self.pos = self.src.len();
                Err(fail(
                    start,
                    "unexpected end of statement while looking for matching single-quote",
                ))
            }
        }
    }

    /// Double quotes expand `$` and let the escape character protect `"`, `$` and itself;
    /// any other escape stays in the text.
    fn double_quote(&mut self, raw: bool) -> Result<String, Fail> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        if self.opts.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(fail(
                        start,
                        "unexpected end of statement while looking for matching double-quote",
                    ));
                }
                Some('"') => {
                    self.pos += 1;
                    if self.opts.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    self.charge(value.len())?;
                    out.push_str(&value);
                }
                Some(mut ch) => {
                    self.pos += ch.len_utf8();
                    if ch == self.escape {
                        if raw {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == self.escape => {
                                ch = next;
                                self.pos += next.len_utf8();
                            }
                            Some(_) => {}
                        }
                    }
                    self.charge(ch.len_utf8())?;
                    out.push(ch);
                }
            }
        }
    }

    /// `<<` plus the blanks after it stay together, so `<< EOF` is one field (BuildKit's
    /// way of keeping heredoc markers recognisable).
    fn possible_heredoc(&mut self) -> &'a str {
        let start = self.pos;
        self.pos += 1;
        if self.peek() == Some('<') {
            self.pos += 1;
            while matches!(self.peek(), Some('\t' | '\r' | ' ')) {
                self.pos += 1;
            }
        }
        &self.src[start..self.pos]
    }

    /// A name: letters, digits and `_`; or a run of digits (positional parameter); or one
    /// special parameter character.
    fn name(&mut self) -> &'a str {
        let start = self.pos;
        match self.peek() {
            Some(c) if is_digit(c) => {
                while let Some(c) = self.peek().filter(|c| is_digit(*c)) {
                    self.pos += c.len_utf8();
                }
            }
            Some(c) if is_special_param(c) => self.pos += c.len_utf8(),
            _ => {
                while let Some(c) = self
                    .peek()
                    .filter(|c| is_letter(*c) || is_digit(*c) || *c == '_')
                {
                    self.pos += c.len_utf8();
                }
            }
        }
        &self.src[start..self.pos]
    }

    fn dollar(&mut self) -> Result<Cow<'a, str>, Fail> {
        let start = self.pos;
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok(Cow::Borrowed("$"));
            }
            return Ok(match self.get_env(name) {
                Some(value) => Cow::Borrowed(value),
                None if self.opts.skip_unset_env => Cow::Borrowed(&self.src[start..self.pos]),
                None => Cow::Borrowed(""),
            });
        }
        self.pos += 1;
        if self.depth >= MAX_NESTING {
            return Err(fail(start, "syntax error: substitutions nested too deeply"));
        }
        self.depth += 1;
        let result = self.braced(start);
        self.depth -= 1;
        result
    }

    /// `${...}` after its `{`; `start` is the offset of the `$`.
    fn braced(&mut self, start: usize) -> Result<Cow<'a, str>, Fail> {
        match self.peek() {
            None => return Err(fail(start, MISSING_BRACE)),
            Some('{' | '}' | ':') => return Err(fail(start, "syntax error: bad substitution")),
            Some(_) => {}
        }
        let name = self.name();
        match self.next() {
            None => Err(fail(start, MISSING_BRACE)),
            Some('}') => Ok(match self.get_env(name) {
                Some(value) => Cow::Borrowed(value),
                None if self.opts.skip_unset_env => Cow::Borrowed(&self.src[start..self.pos]),
                None => Cow::Borrowed(""),
            }),
            Some(':') => match self.next() {
                None => Err(fail(start, MISSING_BRACE)),
                Some(op) => self.modifier(start, name, op, true),
            },
            Some(op @ ('+' | '-' | '?' | '#' | '%')) => self.modifier(start, name, op, false),
            Some('/') => self.replace(start, name),
            Some(op) => Err(fail(
                start,
                format!("unsupported modifier ({op}) in substitution"),
            )),
        }
    }

    /// `${name OP word}` and `${name :OP word}`; with the colon an empty value counts as unset.
    fn modifier(
        &mut self,
        start: usize,
        name: &str,
        op: char,
        null_is_unset: bool,
    ) -> Result<Cow<'a, str>, Fail> {
        let op_text = if null_is_unset {
            format!(":{op}")
        } else {
            op.to_string()
        };
        let unsupported = || {
            fail(
                start,
                format!("unsupported modifier ({op_text}) in substitution"),
            )
        };
        let pattern_op = matches!(op, '#' | '%');
        if null_is_unset && pattern_op {
            return Err(unsupported());
        }
        let mut word = String::new();
        if let Err(err) = self.stop_on(Some('}'), pattern_op, &mut word) {
            return Err(if self.at_eof() {
                fail(start, MISSING_BRACE)
            } else {
                err
            });
        }

        let value = self.get_env(name);
        if value.is_none() && self.opts.skip_unset_env {
            return Ok(Cow::Owned(format!("${{{name}{op_text}{word}}}")));
        }
        let set = value.is_some();
        let value = value.unwrap_or("");
        let missing = !set || (null_is_unset && value.is_empty());
        match op {
            '-' if missing => Ok(Cow::Owned(word)),
            '-' => Ok(Cow::Borrowed(value)),
            '+' if missing => Ok(Cow::Borrowed("")),
            '+' => Ok(Cow::Owned(word)),
            '?' if missing => {
                let message = if !word.is_empty() {
                    word.as_str()
                } else if !set {
                    "is not allowed to be unset"
                } else {
                    "is not allowed to be empty"
                };
                Err(fail(start, format!("{name}: {message}")))
            }
            '?' => Ok(Cow::Borrowed(value)),
            '#' | '%' => {
                // `##`/`%%` remove the longest match, `#`/`%` the shortest.
                let (greedy, pattern) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let trimmed = if op == '%' {
                    pattern::trim_suffix(pattern, value, greedy)
                } else {
                    pattern::trim_prefix(pattern, value, greedy)
                };
                trimmed.map(Cow::Owned).map_err(|msg| fail(start, msg))
            }
            _ => Err(unsupported()),
        }
    }

    /// `${name/pattern/replacement}` (first match) and `${name//pattern/replacement}` (all).
    fn replace(&mut self, start: usize, name: &str) -> Result<Cow<'a, str>, Fail> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let mut pattern = String::new();
        if let Err(err) = self.stop_on(Some('/'), true, &mut pattern) {
            return Err(if self.at_eof() {
                fail(start, "syntax error: missing '/' in ${}")
            } else {
                err
            });
        }
        let mut replacement = String::new();
        if let Err(err) = self.stop_on(Some('}'), true, &mut replacement) {
            return Err(if self.at_eof() {
                fail(start, MISSING_BRACE)
            } else {
                err
            });
        }

        let value = self.get_env(name);
        if value.is_none() && self.opts.skip_unset_env {
            return Ok(Cow::Owned(format!("${{{name}/{pattern}/{replacement}}}")));
        }
        let value = value.unwrap_or("");
        // The result is charged as it is built: `${v//?/$0$0…}` multiplies a value.
        let budget = self.budget;
        let (result, used) =
            pattern::replace(&pattern, value, &replacement, all, budget).map_err(|e| match e {
                pattern::ReplaceError::TooLarge => too_large(start),
                pattern::ReplaceError::Pattern(msg) => fail(start, msg),
            })?;
        self.budget -= used;
        Ok(Cow::Owned(result))
    }
}

/// Shell patterns of `${v#p}`, `${v%p}` and `${v/p/r}`, matched with Go's regexp semantics
/// (leftmost match, `*` lazy for `#`/`%` and greedy for `##`/`%%`/`/`, `.` not matching a
/// newline) through the `regex` crate, which shares them.
mod pattern {
    use super::*;

    /// The regex for a shell pattern: `*` any string, `?` any character, `\` escapes `*`, `?`
    /// and `\`; a `\` before `}` or `/` only protected that delimiter and is dropped.
    pub(super) fn to_regex(pattern: &str, greedy: bool, anchored: bool) -> Result<Regex, String> {
        let mut out = String::with_capacity(pattern.len() + 4);
        if anchored {
            out.push('^');
        }
        let star = if greedy { ".*" } else { ".*?" };
        let mut chars = pattern.chars().peekable();
        while let Some(tok) = chars.next() {
            match tok {
                '*' => out.push_str(star),
                '?' => out.push('.'),
                '\\' => {
                    if matches!(chars.peek(), Some('}' | '/')) {
                        continue;
                    }
                    match chars.next() {
                        Some(c @ ('*' | '?' | '\\')) => {
                            out.push('\\');
                            out.push(c);
                        }
                        Some(c) => return Err(format!("invalid escape '\\{c}'")),
                        None => return Err("invalid escape '\\'".to_owned()),
                    }
                }
                '[' | ']' | '{' | '}' | '.' | '+' | '(' | ')' | '|' | '^' | '$' => {
                    out.push('\\');
                    out.push(tok);
                }
                _ => out.push(tok),
            }
        }
        Regex::new(&out).map_err(|err| err.to_string())
    }

    fn invalid(pattern: &str, err: String) -> String {
        format!("invalid pattern ({pattern}) in substitution: {err}")
    }

    pub(super) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
        let re = to_regex(pattern, greedy, true).map_err(|e| invalid(pattern, e))?;
        Ok(match re.find(value) {
            Some(m) => value[m.end()..].to_owned(),
            None => value.to_owned(),
        })
    }

    /// The shortest suffix match is found as the shortest prefix match of the reversed value
    /// against the reversed pattern (regexes find leftmost matches only).
    pub(super) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
        let reversed: String = value.chars().rev().collect();
        let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, greedy)?;
        Ok(trimmed.chars().rev().collect())
    }

    /// Reverse a pattern but keep each `\x` escape pair in order: `a\*c` → `c\*a`.
    pub(super) fn reverse_pattern(pattern: &str) -> String {
        let chars: Vec<char> = pattern.chars().collect();
        let mut out = vec!['\0'; chars.len()];
        let last = chars.len().saturating_sub(1);
        let mut i = 0;
        while i < chars.len() {
            let out_idx = last - i;
            if chars[i] == '\\' && i != last {
                out[out_idx - 1] = '\\';
                out[out_idx] = chars[i + 1];
                i += 2;
            } else {
                out[out_idx] = chars[i];
                i += 1;
            }
        }
        out.into_iter().collect()
    }

    pub(super) enum ReplaceError {
        Pattern(String),
        /// The result would be longer than the budget.
        TooLarge,
    }

    /// `${v/p/r}` and `${v//p/r}`: the result, and its length, which is at most `budget`.
    pub(super) fn replace(
        pattern: &str,
        value: &str,
        replacement: &str,
        all: bool,
        budget: usize,
    ) -> Result<(String, usize), ReplaceError> {
        let re = to_regex(pattern, true, false)
            .map_err(|e| ReplaceError::Pattern(invalid(pattern, e)))?;
        let out = if all {
            replace_all(&re, value, replacement, budget)?
        } else {
            // The single replacement is inserted as is; only `//` goes through Go's template
            // expansion (BuildKit calls `ReplaceAllString` there).
            if value.len().saturating_add(replacement.len()) > budget {
                return Err(ReplaceError::TooLarge);
            }
            match re.find(value) {
                Some(m) => format!("{}{replacement}{}", &value[..m.start()], &value[m.end()..]),
                None => value.to_owned(),
            }
        };
        let len = out.len();
        if len > budget {
            return Err(ReplaceError::TooLarge);
        }
        Ok((out, len))
    }

    /// Go's `Regexp.ReplaceAllString`: successive non-overlapping matches, an empty match
    /// right after a previous match is skipped, and `$` in the replacement is a template.
    /// Stops with `TooLarge` as soon as the result passes `budget`.
    fn replace_all(
        re: &Regex,
        src: &str,
        template: &str,
        budget: usize,
    ) -> Result<String, ReplaceError> {
        let mut out = String::with_capacity(src.len().min(budget));
        let mut last_end = 0;
        let mut search = 0;
        while search <= src.len() {
            let Some(m) = re.find_at(src, search) else {
                break;
            };
            out.push_str(&src[last_end..m.start()]);
            if (m.end() > last_end || m.start() == 0)
                && !expand_template(&mut out, template, m.as_str(), budget)
            {
                return Err(ReplaceError::TooLarge);
            }
            if out.len() > budget {
                return Err(ReplaceError::TooLarge);
            }
            last_end = m.end();
            let width = src[search..].chars().next().map_or(0, char::len_utf8);
            if search + width > m.end() {
                search += width;
            } else if search + 1 > m.end() {
                search += 1;
            } else {
                search = m.end();
            }
        }
        out.push_str(&src[last_end..]);
        Ok(out)
    }

    /// Go's `Regexp.expand` for a regex without groups: `$$` is `$`, `$0`/`${0}` the match,
    /// any other `$name`/`${name}` nothing, and a `$` that starts no name is kept. Returns
    /// false, having stopped, when `dst` would pass `budget` bytes.
    fn expand_template(dst: &mut String, template: &str, matched: &str, budget: usize) -> bool {
        let mut rest = template;
        while let Some(i) = rest.find('$') {
            if dst.len() + i > budget {
                return false;
            }
            dst.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                dst.push('$');
                rest = after;
                continue;
            }
            let (braced, body) = match rest.strip_prefix('{') {
                Some(body) => (true, body),
                None => (false, rest),
            };
            let len = body
                .find(|c: char| !(is_letter(c) || is_digit(c) || c == '_'))
                .unwrap_or(body.len());
            let name = &body[..len];
            let after = &body[len..];
            let after = if braced {
                after.strip_prefix('}')
            } else {
                Some(after)
            };
            match after {
                Some(after) if !name.is_empty() => {
                    if name == "0" {
                        if dst.len() + matched.len() > budget {
                            return false;
                        }
                        dst.push_str(matched);
                    }
                    rest = after;
                }
                _ => dst.push('$'),
            }
        }
        if dst.len() + rest.len() > budget {
            return false;
        }
        dst.push_str(rest);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::pattern::*;

    #[test]
    fn shell_pattern_to_regex_matches_buildkit() {
        let cases = [
            ("*", "^.*"),
            ("?", "^."),
            ("\\*", "^\\*"),
            (
                "(()[]{\\}^$.\\*\\?|\\\\",
                "^\\(\\(\\)\\[\\]\\{\\}\\^\\$\\.\\*\\?\\|\\\\",
            ),
        ];
        for (pattern, expected) in cases {
            assert_eq!(to_regex(pattern, true, true).unwrap().as_str(), expected);
        }
        for invalid in ["\\", "\\x", "\\\\\\"] {
            assert!(to_regex(invalid, true, true).is_err(), "{invalid}");
        }
    }

    #[test]
    fn reverse_pattern_keeps_escape_pairs() {
        let cases = [
            ("a\\*c", "c\\*a"),
            ("\\\\\\ab", "b\\a\\\\"),
            ("ab\\", "\\ba"),
            ("👽\\🚀🖖", "🖖\\🚀👽"),
            ("\\\\b", "b\\\\"),
            ("", ""),
        ];
        for (pattern, expected) in cases {
            assert_eq!(reverse_pattern(pattern), expected, "{pattern}");
        }
    }
}
