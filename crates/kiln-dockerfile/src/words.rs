//! Splitting an instruction line into flags, words and JSON arrays, as BuildKit's line
//! parsers do. Offsets are byte offsets into the given string so callers can build spans.

/// A piece of text with its byte range in the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// Leading `--flag[=value]` words (quotes removed, backslash escapes applied), and the offset
/// where the arguments start. A lone `--` ends the flags. (BuildKit `extractBuilderFlags`.)
pub(crate) fn extract_flags(line: &str, base: usize) -> (Vec<Token>, usize) {
    let b = line.as_bytes();
    let mut flags = Vec::new();
    let mut pos = 0;
    loop {
        while pos < b.len() && (b[pos] as char).is_ascii_whitespace() {
            pos += 1;
        }
        if pos >= b.len() {
            return (flags, base + b.len());
        }
        if !(b[pos] == b'-' && pos + 1 < b.len() && b[pos + 1] == b'-') {
            return (flags, base + pos);
        }
        let start = pos;
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut chars = line[pos..].char_indices().peekable();
        let mut end = b.len();
        while let Some((i, ch)) = chars.next() {
            match quote {
                None if ch.is_whitespace() => {
                    end = pos + i;
                    break;
                }
                None if ch == '\'' || ch == '"' => quote = Some(ch),
                Some(q) if ch == q => quote = None,
                _ if ch == '\\' => {
                    if let Some((_, next)) = chars.next() {
                        word.push(next);
                    }
                }
                _ => word.push(ch),
            }
        }
        pos = end;
        if word == "--" {
            return (flags, base + pos);
        }
        flags.push(Token {
            text: word,
            start: base + start,
            end: base + end,
        });
    }
}

/// Whitespace-separated words; quotes and escapes are kept in the word (BuildKit `parseWords`,
/// used for ENV/LABEL/ARG). `escape` is the directive's escape character.
pub(crate) fn parse_words(rest: &str, base: usize, escape: char) -> Vec<Token> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut start = 0;
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut it = rest.char_indices().peekable();
    while let Some((i, ch)) = it.next() {
        if !in_word {
            if ch.is_whitespace() {
                continue;
            }
            in_word = true;
            start = i;
        }
        match quote {
            None => {
                if ch.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push(Token {
                            text: std::mem::take(&mut word),
                            start: base + start,
                            end: base + i,
                        });
                    }
                    in_word = false;
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    match it.next() {
                        // An escape at the very end is dropped.
                        None => continue,
                        Some((_, next)) => {
                            word.push(ch);
                            word.push(next);
                            continue;
                        }
                    }
                }
                word.push(ch);
            }
            Some(q) => {
                if ch == q {
                    quote = None;
                }
                if ch == escape && q != '\'' {
                    match it.next() {
                        None => {
                            quote = None;
                            continue;
                        }
                        Some((_, next)) => {
                            word.push(ch);
                            word.push(next);
                            continue;
                        }
                    }
                }
                word.push(ch);
            }
        }
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(Token {
            text: word,
            start: base + start,
            end: base + rest.len(),
        });
    }
    words
}

/// Plain whitespace split (BuildKit `parseStringsWhitespaceDelimited`).
pub(crate) fn split_whitespace(rest: &str, base: usize) -> Vec<Token> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, ch) in rest.char_indices() {
        match (ch.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push(Token {
                    text: rest[s..i].to_string(),
                    start: base + s,
                    end: base + i,
                });
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(Token {
            text: rest[s..].to_string(),
            start: base + s,
            end: base + rest.len(),
        });
    }
    out
}

/// Outcome of trying the exec (JSON) form.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Json {
    /// A JSON array of strings.
    Strings(Vec<String>),
    /// Not JSON: BuildKit silently falls back to the shell form.
    Shell,
    /// A JSON array holding something other than strings: an error.
    NonString,
}

pub(crate) fn parse_json(rest: &str) -> Json {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return Json::Shell;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(t) {
        Err(_) => Json::Shell,
        Ok(values) => {
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return Json::NonString,
                }
            }
            Json::Strings(out)
        }
    }
}

/// A heredoc operator found on an instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeredocSpec {
    pub name: String,
    pub expand: bool,
    pub chomp: bool,
    pub fd: u32,
}

/// Words of a shell line with quotes and escapes kept (BuildKit lexes the line with RawQuotes,
/// RawEscapes and SkipUnsetEnv to find heredoc operators; `"<<EOF"` stays one quoted word).
fn raw_shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut it = line.chars();
    while let Some(ch) = it.next() {
        match quote {
            None if ch.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                in_word = true;
                word.push(ch);
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                } else if ch == '\\'
                    && let Some(n) = it.next()
                {
                    word.push(n);
                }
            }
            Some(q) => {
                word.push(ch);
                if ch == q {
                    quote = None;
                } else if ch == '\\'
                    && q == '"'
                    && let Some(n) = it.next()
                {
                    word.push(n);
                }
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Remove quotes and backslash escapes from a heredoc delimiter; `None` unless it is exactly
/// one word.
fn unquote_single_word(s: &str) -> Option<String> {
    let words = raw_shell_words(s);
    if words.len() != 1 {
        return None;
    }
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut it = words[0].chars();
    while let Some(ch) = it.next() {
        match quote {
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None if ch == '\\' => out.extend(it.next()),
            Some(q) if ch == q => quote = None,
            Some('"') if ch == '\\' => match it.next() {
                Some(n @ ('"' | '\\' | '$' | '`')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            _ => out.push(ch),
        }
    }
    Some(out)
}

/// Is `word` a heredoc operator (`<<EOF`, `<<-EOF`, `3<<"EOF"`)? (BuildKit `ParseHeredoc`.)
pub(crate) fn parse_heredoc_word(word: &str) -> Option<HeredocSpec> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start();
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let name = unquote_single_word(rest)?;
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    let expand = quotes(&name) == quotes(rest);
    let fd = if digits > 0 {
        word[..digits].parse().ok()?
    } else {
        0
    };
    Some(HeredocSpec {
        name,
        expand,
        chomp,
        fd,
    })
}

/// All heredoc operators on a line, in order.
pub(crate) fn heredocs_in_line(line: &str) -> Vec<HeredocSpec> {
    if !line.contains("<<") {
        return Vec::new();
    }
    raw_shell_words(line)
        .iter()
        .filter_map(|w| parse_heredoc_word(w))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(t: &[Token]) -> Vec<&str> {
        t.iter().map(|t| t.text.as_str()).collect()
    }

    #[test]
    fn flags_stop_at_first_argument() {
        let (f, rest) = extract_flags("--from=build --chown='a b' src dst", 0);
        assert_eq!(texts(&f), ["--from=build", "--chown=a b"]);
        assert_eq!(rest, 27);
        let (f, rest) = extract_flags("-- --notaflag x", 0);
        assert!(f.is_empty());
        assert_eq!(rest, 2);
        let (f, _) = extract_flags("--link", 0);
        assert_eq!(texts(&f), ["--link"]);
    }

    #[test]
    fn words_keep_quotes() {
        let w = parse_words(r#"a="b c" d=e\ f 'g h'"#, 0, '\\');
        assert_eq!(texts(&w), [r#"a="b c""#, r"d=e\ f", "'g h'"]);
        let w = parse_words("a=`$x b", 0, '`');
        assert_eq!(texts(&w), ["a=`$x", "b"]);
    }

    #[test]
    fn json_forms() {
        assert_eq!(
            parse_json(r#"["a", "b"]"#),
            Json::Strings(vec!["a".into(), "b".into()])
        );
        assert_eq!(parse_json("['a']"), Json::Shell);
        assert_eq!(parse_json(r#"["a", ["b"]]"#), Json::NonString);
        assert_eq!(parse_json("echo [x]"), Json::Shell);
    }

    #[test]
    fn heredoc_words() {
        let h = heredocs_in_line(r#"cat <<EOF >a && <<-"END" 3<<'X' cat "<<NO""#);
        let names: Vec<_> = h
            .iter()
            .map(|h| (h.name.as_str(), h.expand, h.chomp, h.fd))
            .collect();
        assert_eq!(
            names,
            [
                ("EOF", true, false, 0),
                ("END", false, true, 0),
                ("X", false, false, 3)
            ]
        );
        assert!(heredocs_in_line("echo a<<b<<c").is_empty());
    }
}
