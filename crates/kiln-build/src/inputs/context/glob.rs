//! COPY/ADD source wildcards: Go's `filepath.Match` syntax, which BuildKit uses per source.
//!
//! `*` matches any run of non-`/` characters, `?` one non-`/` character, `[...]` a class
//! (`^` negates, `a-z` ranges, `\` escapes), `\c` a literal `c`. A malformed pattern is an
//! error even where matching could stop early, as in Go 1.16+.

/// A malformed wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern {pattern:?}")]
pub struct BadPattern {
    pub pattern: String,
}

/// Does the path component (or path) contain an unescaped wildcard character?
pub fn contains_wildcards(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Split clean `/`-separated components into the part before the first component with a
/// wildcard and the rest (`lib/*.js` → (`lib`, `*.js`)).
pub fn split_wildcards(components: &[String]) -> (Vec<String>, Vec<String>) {
    match components.iter().position(|c| contains_wildcards(c)) {
        Some(i) => (components[..i].to_vec(), components[i..].to_vec()),
        None => (components.to_vec(), Vec::new()),
    }
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    toks: Vec<Tok>,
}

#[derive(Debug, Clone)]
enum Tok {
    Lit(char),
    Any,
    Star,
    Class {
        negate: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Pattern {
    pub fn new(pattern: &str) -> Result<Pattern, BadPattern> {
        let bad = || BadPattern {
            pattern: pattern.to_string(),
        };
        let chars: Vec<char> = pattern.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    if !matches!(toks.last(), Some(Tok::Star)) {
                        toks.push(Tok::Star);
                    }
                    i += 1;
                }
                '?' => {
                    toks.push(Tok::Any);
                    i += 1;
                }
                '\\' => {
                    let c = *chars.get(i + 1).ok_or_else(bad)?;
                    toks.push(Tok::Lit(c));
                    i += 2;
                }
                '[' => {
                    i += 1;
                    let negate = chars.get(i) == Some(&'^');
                    if negate {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    loop {
                        match chars.get(i) {
                            None => return Err(bad()),
                            Some(']') if !ranges.is_empty() => {
                                i += 1;
                                break;
                            }
                            _ => {}
                        }
                        let (lo, n) = class_char(&chars, i).ok_or_else(bad)?;
                        i = n;
                        let mut hi = lo;
                        if chars.get(i) == Some(&'-') {
                            let (h, n) = class_char(&chars, i + 1).ok_or_else(bad)?;
                            if h < lo {
                                return Err(bad());
                            }
                            hi = h;
                            i = n;
                        }
                        ranges.push((lo, hi));
                    }
                    toks.push(Tok::Class { negate, ranges });
                }
                c => {
                    toks.push(Tok::Lit(c));
                    i += 1;
                }
            }
        }
        Ok(Pattern {
            text: pattern.to_string(),
            toks,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Does the whole of `name` match?
    pub fn matches(&self, name: &str) -> bool {
        let s: Vec<char> = name.chars().collect();
        match_from(&self.toks, &s)
    }
}

/// One character of a class: `]` and `-` end or continue the class, `\` escapes.
fn class_char(chars: &[char], i: usize) -> Option<(char, usize)> {
    match chars.get(i)? {
        '\\' => Some((*chars.get(i + 1)?, i + 2)),
        '-' | ']' => None,
        c => Some((*c, i + 1)),
    }
}

fn match_from(toks: &[Tok], s: &[char]) -> bool {
    // Iterative with one backtrack point per star (the classic wildcard algorithm);
    // a star never crosses '/'.
    let (mut t, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if t < toks.len() {
            match &toks[t] {
                Tok::Star => {
                    star = Some((t, i));
                    t += 1;
                    continue;
                }
                tok if i < s.len() && one(tok, s[i]) => {
                    t += 1;
                    i += 1;
                    continue;
                }
                _ => {}
            }
        } else if i == s.len() {
            return true;
        }
        // Mismatch: let the last star eat one more character, unless that is '/'.
        match star {
            Some((st, si)) if si < s.len() && s[si] != '/' => {
                star = Some((st, si + 1));
                t = st + 1;
                i = si + 1;
            }
            _ => return false,
        }
    }
}

fn one(tok: &Tok, c: char) -> bool {
    match tok {
        Tok::Lit(l) => *l == c,
        Tok::Any => c != '/',
        Tok::Class { negate, ranges } => {
            c != '/' && (ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negate)
        }
        Tok::Star => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Pattern::new(p).unwrap().matches(s)
    }

    #[test]
    fn go_match_table() {
        // Cases from Go's documented filepath.Match behaviour.
        assert!(m("abc", "abc"));
        assert!(m("*", "abc"));
        assert!(m("*c", "abc"));
        assert!(!m("a*", "ab/c"));
        assert!(m("a*/b", "abc/b"));
        assert!(!m("a*/b", "a/c/b"));
        assert!(m("a*b*c*d*e*/f", "axbxcxdxe/f"));
        assert!(m("a*b*c*d*e*/f", "axbxcxdxexxx/f"));
        assert!(!m("a*b*c*d*e*/f", "axbxcxdxe/xxx/f"));
        assert!(m("ab[c]", "abc"));
        assert!(m("ab[b-d]", "abc"));
        assert!(!m("ab[e-g]", "abc"));
        assert!(!m("ab[^c]", "abc"));
        assert!(m("ab[^e-g]", "abc"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "ab"));
        assert!(m("a?b", "a☺b"));
        assert!(m("a[^a]b", "a☺b"));
        assert!(!m("a???b", "a☺b"));
        assert!(m("[a-ζ]*", "α"));
        assert!(!m("*[a-ζ]", "A"));
        assert!(!m("a?b", "a/b"));
        assert!(!m("a*b", "a/b"));
        assert!(m("[\\]a]", "]"));
        assert!(m("[\\-]", "-"));
        assert!(m("[x\\-]", "x"));
        assert!(!m("[x\\-]", "z"));
        assert!(m("package*.json", "package-lock.json"));
        assert!(m("?.md", "a.md"));
        assert!(!m("?.md", "ab.md"));
        assert!(m("[ab]*.md", "ab.md"));
        assert!(m("*x", "xxx"));
        assert!(m("", ""));
        assert!(!m("", "a"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        for p in [
            "[", "[^", "[^bc", "a[", "[]a]", "[-]", "[x-]", "[a-b-c]", "\\", "[\\", "[a-\\",
        ] {
            assert!(Pattern::new(p).is_err(), "{p:?} should be malformed");
        }
        assert!(Pattern::new("[]]").is_err());
    }

    #[test]
    fn wildcard_split() {
        let c = |s: &str| s.split('/').map(String::from).collect::<Vec<_>>();
        assert_eq!(split_wildcards(&c("lib/*.js")), (c("lib"), c("*.js")));
        assert_eq!(split_wildcards(&c("a/b")), (c("a/b"), vec![]));
        assert!(!contains_wildcards("a\\*b"));
        assert!(contains_wildcards("a[b]"));
    }
}
