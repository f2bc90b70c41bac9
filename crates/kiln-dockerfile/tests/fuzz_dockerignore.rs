//! Bounded fuzzing of the `.dockerignore` matcher: kiln's matcher (plain-string fast paths,
//! required literals, one-pass parent regexes) is compared with a small reference written
//! from moby/patternmatcher's rules, on generated patterns and paths; arbitrary pattern text
//! never panics; and a directory the walker may skip never hides a path that is not excluded.
//! `KILN_FUZZ_CASES=100000 cargo test --release -p kiln-dockerfile --test fuzz_dockerignore`.

use kiln_dockerfile::dockerignore::{DirMatches, PatternSet};
use kiln_test::fuzz::{self, Rng};

/// patternmatcher's compiled forms of one (cleaned) pattern.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `*`: anything but `/`.
    Star,
    /// `?`: one character but `/`.
    Quest,
    /// `**` (and a `/` right after it) before more pattern: `(.*/)?`.
    AnyDirs,
    /// `**` at the end: `.*`.
    AnyTail,
}

/// How patternmatcher decides to match (its `matchType`).
#[derive(Debug)]
enum Reference {
    Exact(String),
    /// `prefix**`: the path starts with the prefix.
    Prefix(String),
    /// `**suffix` (suffix without wildcards): the path ends with it, or `**/x` and path `x`.
    Suffix(String),
    Glob(Vec<Tok>),
}

/// patternmatcher's `compile`, for patterns of literals, `*`, `?` and `/`.
fn compile(pattern: &str) -> Reference {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut kind = Kind::Exact;
    let mut i = 0;
    let mut index = 0; // patternmatcher's loop counter: tokens, not characters
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        toks.push(Tok::AnyTail);
                        kind = Kind::Regex;
                    }
                } else {
                    toks.push(Tok::AnyDirs);
                    kind = Kind::Regex;
                }
                if index == 0 {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                toks.push(Tok::Star);
                kind = Kind::Regex;
            }
            '?' => {
                toks.push(Tok::Quest);
                kind = Kind::Regex;
            }
            c => toks.push(Tok::Lit(c)),
        }
        index += 1;
    }
    match kind {
        Kind::Exact => Reference::Exact(pattern.to_string()),
        Kind::Prefix => Reference::Prefix(pattern[..pattern.len() - 2].to_string()),
        Kind::Suffix => Reference::Suffix(pattern[2..].to_string()),
        Kind::Regex => Reference::Glob(toks),
    }
}

/// Backtracking match of the whole path against the tokens.
fn glob(toks: &[Tok], path: &[char]) -> bool {
    match toks.split_first() {
        None => path.is_empty(),
        Some((Tok::Lit(c), rest)) => path.first() == Some(c) && glob(rest, &path[1..]),
        Some((Tok::Quest, rest)) => {
            path.first().is_some_and(|&c| c != '/') && glob(rest, &path[1..])
        }
        Some((Tok::Star, rest)) => (0..=path.len())
            .take_while(|&n| n == 0 || path[n - 1] != '/')
            .any(|n| glob(rest, &path[n..])),
        Some((Tok::AnyDirs, rest)) => {
            glob(rest, path)
                || (1..=path.len()).any(|n| path[n - 1] == '/' && glob(rest, &path[n..]))
        }
        Some((Tok::AnyTail, rest)) => (0..=path.len()).any(|n| glob(rest, &path[n..])),
    }
}

fn reference_match(r: &Reference, path: &str) -> bool {
    match r {
        Reference::Exact(p) => path == p,
        Reference::Prefix(p) => path.starts_with(p.as_str()),
        Reference::Suffix(s) => {
            path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|bare| path == bare)
        }
        Reference::Glob(toks) => glob(toks, &path.chars().collect::<Vec<_>>()),
    }
}

/// patternmatcher's `MatchesOrParentMatches`: the last pattern that matches the path or one
/// of its parent directories decides.
fn reference_excluded(patterns: &[(bool, Reference)], path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let mut excluded = false;
    for (exception, r) in patterns {
        let hit = (1..=parts.len()).any(|n| reference_match(r, &parts[..n].join("/")));
        if hit {
            excluded = !exception;
        }
    }
    excluded
}

/// A clean pattern (no `.`, `..`, empty segments or slashes at the ends) of literals and
/// wildcards, perhaps an exception.
fn gen_pattern(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &["a", "b", "ab", "*", "?", "**", "a*", "*b", "**b", "a**"];
    let segments: Vec<String> = (0..1 + rng.below(3))
        .map(|_| {
            let s = rng.string_from(PIECES, 2);
            if s.is_empty() { "a".to_string() } else { s }
        })
        .collect();
    let bang = if rng.one_in(4) { "!" } else { "" };
    format!("{bang}{}", segments.join("/"))
}

fn gen_path(rng: &mut Rng) -> String {
    const SEGS: &[&str] = &["a", "b", "ab", "ba", "aa", "bb", "abb", "bab"];
    (0..1 + rng.below(4))
        .map(|_| *rng.pick(SEGS))
        .collect::<Vec<_>>()
        .join("/")
}

/// Walks from the root to `path` handing each directory's state on, as BuildKit's walker.
fn walk_to(set: &PatternSet, path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let mut state = DirMatches::default();
    for n in 1..parts.len() {
        state = set.dir_matches(&parts[..n].join("/"), &state).1;
    }
    set.is_excluded_in(path, &state)
}

#[test]
fn matcher_agrees_with_the_reference() {
    fuzz::run(
        "dockerignore-reference",
        8000,
        |rng| {
            let patterns: Vec<String> = (0..1 + rng.below(4)).map(|_| gen_pattern(rng)).collect();
            let paths: Vec<String> = (0..8).map(|_| gen_path(rng)).collect();
            (patterns, paths)
        },
        |(patterns, paths)| {
            let set = PatternSet::new(patterns).expect("generated patterns are valid");
            let reference: Vec<(bool, Reference)> = patterns
                .iter()
                .map(|p| match p.strip_prefix('!') {
                    Some(rest) => (true, compile(rest)),
                    None => (false, compile(p)),
                })
                .collect();
            for path in paths {
                let want = reference_excluded(&reference, path);
                assert_eq!(
                    set.is_excluded(path),
                    want,
                    "is_excluded({path:?}) with {patterns:?}"
                );
                if !set.has_exceptions() {
                    assert_eq!(walk_to(&set, path), want, "walker, {path:?}, {patterns:?}");
                }
            }
        },
    );
}

#[test]
fn arbitrary_patterns_never_panic_and_skipped_dirs_hide_only_excluded_paths() {
    const PIECES: &[&str] = &[
        "a", "b", "/", "//", ".", "..", "*", "**", "?", "[", "]", "[a-b]", "[^a]", "[!a]", "\\",
        "\\*", "-", "^", "!", " ", "#", "\n", "\r\n", "é", "\u{FEFF}", "$", "(", ")", "|", "+",
        "{", "}",
    ];
    let mut compiled = 0;
    fuzz::run(
        "dockerignore-arbitrary",
        10000,
        |rng| {
            let text = rng.string_from(PIECES, 16);
            let paths: Vec<String> = (0..6).map(|_| gen_path(rng)).collect();
            (text, paths)
        },
        |(text, paths)| {
            let lines: Vec<&str> = text.split('\n').collect();
            let _ = PatternSet::new(&lines);
            let Ok(set) = PatternSet::parse_dockerignore(text) else {
                return;
            };
            compiled += 1;
            let _ = set.patterns().count();
            for path in paths {
                let excluded = set.is_excluded(path);
                if !set.has_exceptions() {
                    assert_eq!(excluded, walk_to(&set, path), "walker, {path:?}");
                }
                // A directory the walker skips must hold nothing that is sent.
                let parts: Vec<&str> = path.split('/').collect();
                for n in 1..parts.len() {
                    let dir = parts[..n].join("/");
                    if set.can_skip_dir(&dir) {
                        assert!(excluded, "{dir:?} is skipped but {path:?} is not excluded");
                    }
                }
            }
        },
    );
    assert!(
        compiled > fuzz::cases(10000) / 4,
        "only {compiled} pattern files compiled"
    );
}
