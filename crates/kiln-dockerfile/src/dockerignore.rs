//! `.dockerignore` patterns with Docker's rules (moby/patternmatcher and its `ignorefile`
//! reader, plus the directory-skipping rule of the fsutil walker BuildKit sends contexts with).
//!
//! Matching is Docker's, not gitignore's: a pattern is anchored at the context root (`*.log`
//! matches `app.log`, never `logs/app.log`), `*` and `?` never cross `/`, `**` spans any
//! number of directories, a pattern that matches a directory matches everything below it, and
//! the last matching line wins (`!` lines re-include). Patterns compile the way patternmatcher
//! compiles them (plain string tests where it uses them, otherwise its regular expression), so
//! bracket classes follow Go's regexp rules: `[^a]` negates, `[!a]` is `!` or `a`.

use regex::Regex;

/// A pattern Docker would reject, with the 1-based line (`.dockerignore`) or list position
/// (`PatternSet::new`) it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PatternError {
    pub line: usize,
    pub message: String,
}

/// A compiled, ordered list of patterns (`!` exceptions included); the last match wins.
#[derive(Debug, Clone, Default)]
pub struct PatternSet {
    patterns: Vec<Pattern>,
    has_exceptions: bool,
}

/// Which patterns matched a directory or one of its parents: the state a walker hands from a
/// directory to its entries (patternmatcher's `MatchInfo`). The default value means "no
/// information" and is right for entries at the context root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirMatches {
    matched: Vec<bool>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern, without its `!`.
    text: String,
    exception: bool,
    matcher: Matcher,
    /// For regex patterns: the longest literal run of the pattern, which every path that it
    /// (or one of whose parents) matches contains. Checked first: most paths fail it.
    required: Option<String>,
}

#[derive(Debug, Clone)]
enum Matcher {
    /// No wildcard: the path equals the pattern.
    Exact,
    /// `dir/**`-like: the path starts with the pattern minus its trailing `**`.
    Prefix,
    /// `**/name`-like: the path ends with the pattern minus its leading `**`.
    Suffix,
    Regex {
        /// Matches the path itself.
        whole: Regex,
        /// Matches the path or one of its parent directories, in one pass.
        or_parent: Regex,
    },
}

impl PatternSet {
    /// Parse `.dockerignore` text (comments, blank lines, `!`, cleaning of `/` and `./`).
    pub fn parse_dockerignore(text: &str) -> Result<Self, PatternError> {
        let mut lines = Vec::new();
        for (index, raw) in text.split('\n').enumerate() {
            let mut line = raw.strip_suffix('\r').unwrap_or(raw);
            if index == 0 {
                line = line.strip_prefix('\u{FEFF}').unwrap_or(line);
            }
            // A comment is a `#` in the first column; ` # x` is a pattern.
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (exception, rest) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let mut pattern = String::new();
            if exception {
                pattern.push('!');
            }
            if !rest.is_empty() {
                let cleaned = clean(rest);
                // `/foo` means `foo`: patterns are relative to the context root.
                match cleaned.strip_prefix('/') {
                    Some(relative) if cleaned.len() > 1 => pattern.push_str(relative),
                    _ => pattern.push_str(&cleaned),
                }
            }
            lines.push((index + 1, pattern));
        }
        Self::compile(lines)
    }

    /// Compile a list of patterns (e.g. `COPY --exclude` values).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        Self::compile(
            patterns
                .iter()
                .enumerate()
                .map(|(i, p)| (i + 1, p.as_ref().to_owned())),
        )
    }

    fn compile(lines: impl IntoIterator<Item = (usize, String)>) -> Result<Self, PatternError> {
        let mut set = PatternSet::default();
        for (line, raw) in lines {
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let cleaned = clean(trimmed);
            let (exception, text) = match cleaned.strip_prefix('!') {
                Some("") => {
                    return Err(PatternError {
                        line,
                        message: "illegal exclusion pattern: \"!\"".to_owned(),
                    });
                }
                Some(rest) => (true, rest),
                None => (false, cleaned.as_str()),
            };
            let bad = || PatternError {
                line,
                message: format!("invalid pattern {text:?}: syntax error in pattern"),
            };
            if !glob_syntax_ok(text) {
                return Err(bad());
            }
            let matcher = compile_matcher(text).ok_or_else(bad)?;
            if exception {
                set.has_exceptions = true;
            }
            let required = match matcher {
                Matcher::Regex { .. } => required_literal(text).map(str::to_owned),
                _ => None,
            };
            set.patterns.push(Pattern {
                text: text.to_owned(),
                exception,
                matcher,
                required,
            });
        }
        Ok(set)
    }

    /// Is `path` (relative to the context root, `/`-separated, no leading `./`) excluded?
    pub fn is_excluded(&self, path: &str) -> bool {
        // The last pattern matching the path or a parent decides (patternmatcher's
        // MatchesOrParentMatches, whose skipping of patterns that cannot change the result
        // amounts to exactly this).
        self.patterns
            .iter()
            .rev()
            .find(|p| p.matches_or_parent(path))
            .is_some_and(|p| !p.exception)
    }

    /// Can a walker skip the directory `path` entirely (it is excluded and no `!` exception can
    /// re-include anything below it)?
    pub fn can_skip_dir(&self, path: &str) -> bool {
        self.is_excluded(path) && !self.may_reinclude_below(path)
    }

    /// Could an exception re-include something below the excluded directory `dir`? As the
    /// context walker of dockerd 20.10 (fsutil) decides: only when an exception, as written,
    /// starts with `dir/` — a literal prefix test, so `!*/sub*` or `!**/keep` never reach into
    /// an excluded directory while `!dir/sub*` does.
    pub fn may_reinclude_below(&self, dir: &str) -> bool {
        self.has_exceptions
            && self.patterns.iter().filter(|p| p.exception).any(|p| {
                p.text.starts_with(dir)
                    && (p.text.len() == dir.len() || p.text.as_bytes()[dir.len()] == b'/')
            })
    }

    /// Walker form of [`PatternSet::is_excluded`], exactly as BuildKit's context walker does it
    /// (patternmatcher's `MatchesUsingParentResults`): `parent` is what this returned for the
    /// containing directory (`DirMatches::default()` at the root). Returns whether `path` is
    /// excluded and the state to hand to its entries when it is a directory.
    pub fn dir_matches(&self, path: &str, parent: &DirMatches) -> (bool, DirMatches) {
        let mut record = vec![false; self.patterns.len()];
        let excluded = self.using_parent(path, parent, Some(record.as_mut_slice()));
        (excluded, DirMatches { matched: record })
    }

    /// [`PatternSet::dir_matches`] for a non-directory: no state to hand on, no allocation.
    pub fn is_excluded_in(&self, path: &str, parent: &DirMatches) -> bool {
        self.using_parent(path, parent, None)
    }

    fn using_parent(
        &self,
        path: &str,
        parent: &DirMatches,
        mut record: Option<&mut [bool]>,
    ) -> bool {
        // State from a different set is no information.
        let parent = if parent.matched.len() == self.patterns.len() {
            parent.matched.as_slice()
        } else {
            &[]
        };
        let mut excluded = false;
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut matched = parent.get(i).copied().unwrap_or(false);
            if !matched {
                // A pattern that cannot change the result is not evaluated, and so is not
                // recorded as matching for the entries below (BuildKit behaves the same).
                if pattern.exception != excluded {
                    continue;
                }
                matched = if parent.is_empty() {
                    pattern.matches_or_parent(path)
                } else {
                    pattern.matches(path)
                };
            }
            if let Some(record) = record.as_deref_mut() {
                record[i] = matched;
            }
            if matched {
                excluded = !pattern.exception;
            }
        }
        excluded
    }

    /// The cleaned patterns in order, each with whether it is a `!` exception.
    pub fn patterns(&self) -> impl Iterator<Item = (&str, bool)> + '_ {
        self.patterns.iter().map(|p| (p.text.as_str(), p.exception))
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn has_exceptions(&self) -> bool {
        self.has_exceptions
    }
}

impl Pattern {
    /// patternmatcher's `Pattern.match`: the path itself only.
    fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact => path == self.text,
            Matcher::Prefix => path.starts_with(&self.text[..self.text.len() - 2]),
            Matcher::Suffix => suffix_matches(&self.text[2..], path),
            Matcher::Regex { whole, .. } => self.has_required(path) && whole.is_match(path),
        }
    }

    /// The path or one of its parent directories matches.
    fn matches_or_parent(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact => ends_at_component(path, &self.text),
            // A parent is a prefix of the path: if it starts with the prefix, so does the path.
            Matcher::Prefix => self.matches(path),
            Matcher::Suffix => suffix_matches_or_parent(&self.text[2..], path),
            Matcher::Regex { or_parent, .. } => self.has_required(path) && or_parent.is_match(path),
        }
    }

    fn has_required(&self, path: &str) -> bool {
        self.required
            .as_deref()
            .is_none_or(|literal| path.contains(literal))
    }
}

/// `path` is `prefix` or lies below it.
fn ends_at_component(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix)
        && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
}

/// The path or a parent ends with `suffix` (or is `suffix` without its leading `/`): some
/// occurrence of `suffix` in the path ends where a path component ends.
fn suffix_matches_or_parent(suffix: &str, path: &str) -> bool {
    let Some(first) = suffix.chars().next() else {
        return true;
    };
    if suffix
        .strip_prefix('/')
        .is_some_and(|bare| ends_at_component(path, bare))
    {
        return true;
    }
    let mut from = 0;
    while let Some(i) = path[from..].find(suffix) {
        let end = from + i + suffix.len();
        if end == path.len() || path.as_bytes()[end] == b'/' {
            return true;
        }
        // Occurrences may overlap: step one character, not the whole suffix.
        from += i + first.len_utf8();
    }
    false
}

/// `**/foo` matches `x/foo` and also `foo` itself.
fn suffix_matches(suffix: &str, path: &str) -> bool {
    path.ends_with(suffix) || suffix.strip_prefix('/') == Some(path)
}

/// Go's `filepath.Clean` for `/`-separated paths: no empty or `.` elements, `..` resolved
/// where it can be, no trailing `/`; `.` for an empty result.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

/// The syntax check Docker applies to each pattern (Go's `filepath.Match` rejecting it with
/// `ErrBadPattern`): a `\` must escape something, and a `[` class needs at least one range,
/// may not start a range with `-` or `]`, and must be closed.
fn glob_syntax_ok(pattern: &str) -> bool {
    let mut s = pattern;
    while let Some(c) = s.chars().next() {
        s = &s[c.len_utf8()..];
        match c {
            '\\' => match s.chars().next() {
                Some(escaped) => s = &s[escaped.len_utf8()..],
                None => return false,
            },
            '[' => match skip_class(s) {
                Some(rest) => s = rest,
                None => return false,
            },
            _ => {}
        }
    }
    true
}

/// Go's `filepath.Match` reading of a class, `s` starting right after its `[`: the text after
/// the closing `]`, or `None` when the class is malformed.
fn skip_class(s: &str) -> Option<&str> {
    /// One possibly escaped class character; something must follow it.
    fn class_char(s: &str) -> Option<&str> {
        let s = match s.chars().next()? {
            '-' | ']' => return None,
            '\\' => &s[1..],
            _ => s,
        };
        let c = s.chars().next()?;
        let rest = &s[c.len_utf8()..];
        (!rest.is_empty()).then_some(rest)
    }

    let mut s = s.strip_prefix('^').unwrap_or(s);
    let mut ranges = 0;
    loop {
        if ranges > 0
            && let Some(rest) = s.strip_prefix(']')
        {
            return Some(rest);
        }
        s = class_char(s)?;
        if let Some(rest) = s.strip_prefix('-') {
            s = class_char(rest)?;
        }
        ranges += 1;
    }
}

/// The longest run of plain characters in a (valid) glob: outside wildcards, escapes and
/// classes, patternmatcher's regexp matches these characters literally.
fn required_literal(glob: &str) -> Option<&str> {
    let mut best = "";
    let mut run_start = 0;
    let mut rest = glob;
    while let Some(c) = rest.chars().next() {
        let at = glob.len() - rest.len();
        let after = &rest[c.len_utf8()..];
        let next = match c {
            // `**/` compiles to `(.*/)?`: its `/` may match nothing, so it is not required.
            '*' => match after.strip_prefix('*') {
                Some(more) => more.strip_prefix('/').unwrap_or(more),
                None => after,
            },
            '?' => after,
            '\\' => after
                .chars()
                .next()
                .map_or(after, |escaped| &after[escaped.len_utf8()..]),
            '[' => skip_class(after).unwrap_or(""),
            _ => {
                rest = after;
                continue;
            }
        };
        if at - run_start > best.len() {
            best = &glob[run_start..at];
        }
        rest = next;
        run_start = glob.len() - rest.len();
    }
    if glob.len() - run_start > best.len() {
        best = &glob[run_start..];
    }
    (best.len() >= 2).then_some(best)
}

/// How patternmatcher would match `text`: a string test when it can, else its regexp (built
/// here in Go's syntax, then translated for the regex crate). `None` if the regexp is invalid.
fn compile_matcher(text: &str) -> Option<Matcher> {
    let (kind, body) = go_regex_body(text);
    match kind {
        Kind::Exact => Some(Matcher::Exact),
        Kind::Prefix => Some(Matcher::Prefix),
        Kind::Suffix => Some(Matcher::Suffix),
        Kind::Regex => {
            let body = go_class_syntax_for_rust(&body);
            let whole = Regex::new(&format!("^(?:{body})$")).ok()?;
            let or_parent = Regex::new(&format!("^(?:{body})(?:/(?s:.*))?$")).ok()?;
            Some(Matcher::Regex { whole, or_parent })
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

/// patternmatcher's `compile` for `/` separators: the kind of test and the Go regexp between
/// `^` and `$` (only meaningful for `Kind::Regex`).
fn go_regex_body(pattern: &str) -> (Kind, String) {
    let mut re = String::with_capacity(pattern.len() + 8);
    let mut kind = Kind::Exact;
    let mut chars = pattern.chars().peekable();
    let mut first = true;
    while let Some(ch) = chars.next() {
        match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is `**`.
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                kind = Kind::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => match chars.next() {
                Some(escaped) => {
                    re.push('\\');
                    re.push(escaped);
                    kind = Kind::Regex;
                }
                None => re.push('\\'),
            },
            '[' | ']' => {
                re.push(ch);
                kind = Kind::Regex;
            }
            _ => re.push(ch),
        }
        first = false;
    }
    (kind, re)
}

/// Inside a bracket class Go's regexp reads `[` as a literal (unless it opens `[:name:]`) and
/// `&`, `~` as plain characters, while the regex crate nests classes and has set operators:
/// escape them so both read the class alike.
fn go_class_syntax_for_rust(go: &str) -> String {
    let mut out = String::with_capacity(go.len() + 8);
    let mut chars = go.char_indices().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            out.push(c);
            if let Some((_, escaped)) = chars.next() {
                out.push(escaped);
            }
            class_start = false;
            continue;
        }
        if !in_class {
            out.push(c);
            if c == '[' {
                in_class = true;
                class_start = true;
                if let Some(&(_, '^')) = chars.peek() {
                    chars.next();
                    out.push('^');
                }
            }
            continue;
        }
        match c {
            // Go takes a `]` right after `[` or `[^` as a literal.
            ']' if class_start => out.push_str("\\]"),
            ']' => {
                out.push(']');
                in_class = false;
            }
            '[' => match go[i..].strip_prefix("[:").and_then(|s| s.find(":]")) {
                Some(len) => {
                    let end = i + 2 + len + 2;
                    out.push_str(&go[i..end]);
                    while chars.peek().is_some_and(|&(j, _)| j < end) {
                        chars.next();
                    }
                }
                None => out.push_str("\\["),
            },
            '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
        class_start = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// patternmatcher's `TestCompile` (slash separator).
    #[test]
    fn compiles_like_patternmatcher() {
        let cases = [
            ("*", Kind::Regex, "[^/]*"),
            ("file*", Kind::Regex, "file[^/]*"),
            ("*file", Kind::Regex, "[^/]*file"),
            ("a*/b", Kind::Regex, "a[^/]*/b"),
            ("**", Kind::Suffix, ""),
            ("**/**", Kind::Regex, "(.*/)?.*"),
            ("dir/**", Kind::Prefix, ""),
            ("**/dir", Kind::Suffix, ""),
            ("**/dir2/*", Kind::Regex, "(.*/)?dir2/[^/]*"),
            ("**/dir2/**", Kind::Regex, "(.*/)?dir2/.*"),
            ("**file", Kind::Suffix, ""),
            ("**/file*txt", Kind::Regex, "(.*/)?file[^/]*txt"),
            ("**/**/*.txt", Kind::Regex, "(.*/)?(.*/)?[^/]*\\.txt"),
            ("a[b-d]e", Kind::Regex, "a[b-d]e"),
            (".*", Kind::Regex, "\\.[^/]*"),
            ("abc.def", Kind::Exact, ""),
            ("abc?def", Kind::Regex, "abc[^/]def"),
            ("**/foo/bar", Kind::Suffix, ""),
            ("a(b)c/def", Kind::Exact, ""),
            ("a.|)$(}+{bc", Kind::Exact, ""),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                Kind::Exact,
                "",
            ),
        ];
        for (pattern, kind, body) in cases {
            let (got_kind, got_body) = go_regex_body(&clean(pattern));
            assert_eq!(got_kind, kind, "{pattern}");
            if kind == Kind::Regex {
                assert_eq!(got_body, body, "{pattern}");
            }
        }
    }

    #[test]
    fn required_literals() {
        let cases = [
            ("*.log", Some(".log")),
            ("**/*.tmp", Some(".tmp")),
            ("docs/*.md", Some("docs/")),
            ("a[bcdef]g", None),
            ("ab[^/]*cdef?x", Some("cdef")),
            ("x\\*yz", Some("yz")),
            ("x\\éab*", Some("ab")),
            ("é\\xéab*", Some("éab")),
            ("[[]]]]", Some("]]]")),
            ("*", None),
            ("**/b*b", None),
            ("**/ab*", Some("ab")),
            ("x/**/yz*", Some("x/")),
        ];
        for (glob, expected) in cases {
            assert_eq!(required_literal(glob), expected, "{glob}");
        }
    }

    #[test]
    fn suffix_or_parent() {
        assert!(suffix_matches_or_parent("/aa", "x/aaa/aa/b"));
        assert!(suffix_matches_or_parent("aa", "aaa/x"));
        assert!(suffix_matches_or_parent("/dir", "dir/x"));
        assert!(suffix_matches_or_parent("/dir", "dir"));
        assert!(!suffix_matches_or_parent("/dir", "dirt/x"));
        assert!(!suffix_matches_or_parent("/dir", "a/xdir"));
        assert!(suffix_matches_or_parent("ééa", "éééa/b"));
        assert!(suffix_matches_or_parent("", "anything"));
    }

    #[test]
    fn class_translation() {
        let cases = [
            ("a[b-d]e", "a[b-d]e"),
            ("[^/]*", "[^/]*"),
            ("[a[^/]*]", "[a\\[^/]*]"),
            ("[[:alpha:]x]", "[[:alpha:]x]"),
            ("[a&&b~~c]", "[a\\&\\&b\\~\\~c]"),
            ("[]a]", "[\\]a]"),
            ("[\\]a]", "[\\]a]"),
            ("x&&y", "x&&y"),
        ];
        for (go, rust) in cases {
            assert_eq!(go_class_syntax_for_rust(go), rust, "{go}");
        }
    }
}
