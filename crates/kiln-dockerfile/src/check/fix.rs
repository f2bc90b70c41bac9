//! `kiln check --fix`: rewrite what is mechanical, and only the first physical line of the
//! instructions concerned; comments, blank lines, continuations and everything else stay
//! byte for byte. Rewrites: instruction keywords to the majority casing
//! (ConsistentInstructionCasing), `AS` to the casing of `FROM` (FromAsCasing), legacy
//! `ENV k v` / `LABEL k v` to `k=v` (LegacyKeyValueFormat), simple shell-form CMD and
//! ENTRYPOINT to exec form (JSONArgsRecommended), MAINTAINER to the OCI authors LABEL
//! (MaintainerDeprecated). Fixing a fixed file changes nothing.

use crate::ast::{Command, CommandLine, Dockerfile, Instruction, Stage};

/// One rewrite: the rule it answers and the line it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    pub rule: &'static str,
    pub line: usize,
}

/// The fixed text and what changed.
#[derive(Debug, Clone)]
pub struct Fixed {
    pub text: String,
    pub fixes: Vec<Fix>,
}

/// Rewrite `source` (whose parse is `df`).
pub fn fix(source: &str, df: &Dockerfile) -> Fixed {
    let (bom, body) = match source.strip_prefix('\u{feff}') {
        Some(b) => ("\u{feff}", b),
        None => ("", source),
    };
    let mut lines: Vec<String> = body.split_inclusive('\n').map(String::from).collect();
    let lower = majority_lower(df);
    let no_shell = !df
        .stages
        .iter()
        .flat_map(|s| s.instructions.iter())
        .any(|i| matches!(i.command, Command::Shell(_)));
    let mut fixes = Vec::new();
    let mut visit = |ins: &Instruction, stage: Option<&Stage>| {
        let Some(line) = lines.get_mut(ins.span.line.wrapping_sub(1)) else {
            return;
        };
        let (text, ending) = split_ending(line);
        let Some(start) = char_to_byte(text, ins.span.col.saturating_sub(1)) else {
            return;
        };
        let kw_len = ins.keyword.len();
        if text.get(start..start + kw_len) != Some(ins.keyword.as_str()) {
            return;
        }
        let cased = |k: &str| {
            if lower {
                k.to_lowercase()
            } else {
                k.to_uppercase()
            }
        };
        let mut kw = cased(&ins.keyword);
        let mut rest = text[start + kw_len..].to_string();
        let single = ins.end_line == ins.span.line;
        let mut rules: Vec<&'static str> = Vec::new();
        if kw != ins.keyword {
            rules.push("ConsistentInstructionCasing");
        }
        match &ins.command {
            Command::From(f) if f.name.is_some() && single => {
                if let Some(r) = fix_as(&rest, &kw) {
                    rest = r;
                    rules.push("FromAsCasing");
                }
            }
            Command::Env(kv) | Command::Label(kv)
                if single && kv.pairs.len() == 1 && kv.pairs[0].legacy =>
            {
                if let Some(r) = fix_legacy(&rest, &kv.pairs[0].key, df.escape) {
                    rest = r;
                    rules.push("LegacyKeyValueFormat");
                }
            }
            Command::Cmd(c) | Command::Entrypoint(c) if single && no_shell => {
                let entrypoint = matches!(ins.command, Command::Entrypoint(_));
                let stage_has_cmd = stage.is_some_and(|s| {
                    s.instructions
                        .iter()
                        .any(|i| matches!(i.command, Command::Cmd(_)))
                });
                if let CommandLine::Shell(s) = &c.cmd
                    && !(entrypoint && stage_has_cmd)
                    && let Some(json) = exec_form(s)
                {
                    rest = format!(" {json}");
                    rules.push("JSONArgsRecommended");
                }
            }
            Command::Maintainer(m) if single => {
                kw = cased("LABEL");
                let v = m
                    .name
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('$', "\\$");
                rest = format!(" org.opencontainers.image.authors=\"{v}\"");
                rules.push("MaintainerDeprecated");
            }
            _ => {}
        }
        if rules.is_empty() {
            return;
        }
        *line = format!("{}{kw}{rest}{ending}", &text[..start]);
        for rule in rules {
            fixes.push(Fix {
                rule,
                line: ins.span.line,
            });
        }
    };
    for ins in &df.meta_args {
        visit(ins, None);
    }
    for st in &df.stages {
        visit(&st.from, Some(st));
        for ins in &st.instructions {
            visit(ins, Some(st));
        }
    }
    Fixed {
        text: format!("{bom}{}", lines.concat()),
        fixes,
    }
}

/// The casing most instructions use (BuildKit counts only self-consistent keywords).
fn majority_lower(df: &Dockerfile) -> bool {
    let (mut lower, mut upper) = (0, 0);
    let all = df.meta_args.iter().chain(
        df.stages
            .iter()
            .flat_map(|s| std::iter::once(&s.from).chain(s.instructions.iter())),
    );
    for ins in all {
        if ins.keyword == ins.keyword.to_lowercase() {
            lower += 1;
        } else if ins.keyword == ins.keyword.to_uppercase() {
            upper += 1;
        }
    }
    lower > upper
}

fn split_ending(line: &str) -> (&str, &str) {
    let body = line.trim_end_matches(['\n', '\r']);
    (body, &line[body.len()..])
}

fn char_to_byte(s: &str, chars: usize) -> Option<usize> {
    if chars == 0 {
        return Some(0);
    }
    s.char_indices()
        .nth(chars)
        .map(|(i, _)| i)
        .or_else(|| (s.chars().count() == chars).then_some(s.len()))
}

/// ` image AS name` with `AS` in the casing of `kw`, if it differs.
fn fix_as(rest: &str, kw: &str) -> Option<String> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    if words.len() < 3 {
        return None;
    }
    let as_word = words[words.len() - 2];
    if !as_word.eq_ignore_ascii_case("as") {
        return None;
    }
    let want = if kw == kw.to_lowercase() { "as" } else { "AS" };
    if as_word == want {
        return None;
    }
    // Replace that word in place (the last "as" before the name), keeping the spacing.
    let name = words[words.len() - 1];
    let name_at = rest.rfind(name)?;
    let as_at = rest[..name_at].rfind(as_word)?;
    Some(format!(
        "{}{want}{}",
        &rest[..as_at],
        &rest[as_at + as_word.len()..]
    ))
}

/// ` KEY value` → ` KEY=value`, quoting a value with blanks; `None` when the value holds
/// quotes or escapes together with blanks (not mechanical).
fn fix_legacy(rest: &str, key: &str, escape: char) -> Option<String> {
    let trimmed = rest.trim_start();
    let lead = &rest[..rest.len() - trimmed.len()];
    let after = trimmed.strip_prefix(key)?;
    if !after.starts_with(char::is_whitespace) {
        return None;
    }
    let value = after.trim();
    let mut quote: Option<char> = None;
    let mut blank = false;
    let mut prev_escape = false;
    for c in value.chars() {
        if prev_escape {
            prev_escape = false;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == escape => prev_escape = true,
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c.is_whitespace() => blank = true,
            None => {}
        }
    }
    let value = if !blank {
        value.to_string()
    } else if value.contains(['"', '\'', escape]) {
        return None;
    } else {
        format!("\"{value}\"")
    };
    Some(format!("{lead}{key}={value}"))
}

/// `node app.js --port 80` → `["node", "app.js", "--port", "80"]` when the line uses nothing
/// a shell would interpret (variables, quotes, operators, globs, builtins).
fn exec_form(s: &str) -> Option<String> {
    const SPECIAL: &[char] = &[
        '$', '&', '|', ';', '<', '>', '(', ')', '`', '*', '?', '[', ']', '~', '{', '}', '\'', '"',
        '\\', '#', '!', '\n',
    ];
    if s.contains(SPECIAL) {
        return None;
    }
    let mut words: Vec<&str> = s.split_whitespace().collect();
    if words.first() == Some(&"exec") {
        words.remove(0);
    }
    const BUILTINS: [&str; 12] = [
        "cd", "source", ".", "export", "set", "ulimit", "umask", "eval", "trap", "wait", "read",
        "exec",
    ];
    let first = *words.first()?;
    if BUILTINS.contains(&first) || first.contains('=') {
        return None;
    }
    serde_json::to_string(&words)
        .ok()
        .map(|j| j.replace("\",\"", "\", \""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(src: &str) -> String {
        fix(src, &crate::parse(src).unwrap()).text
    }

    #[test]
    fn rewrites_the_mechanical_findings_only() {
        let src = "# keep me\nFROM a as b\nenv X y z\nMAINTAINER Jo \"J\" <j@x>\nRUN echo \\\n  hi\nCMD node app.js --port 80\nENTRYPOINT echo $HOME\n";
        let out = fixed(src);
        assert_eq!(
            out,
            "# keep me\nFROM a AS b\nENV X=\"y z\"\nLABEL org.opencontainers.image.authors=\"Jo \\\"J\\\" <j@x>\"\nRUN echo \\\n  hi\nCMD [\"node\", \"app.js\", \"--port\", \"80\"]\nENTRYPOINT echo $HOME\n"
        );
        assert_eq!(fixed(&out), out);
    }

    #[test]
    fn entrypoint_with_cmd_stays_shell_form() {
        let src = "FROM a\nENTRYPOINT run me\nCMD [\"x\"]\n";
        assert_eq!(fixed(src), src);
    }

    #[test]
    fn lower_majority() {
        let src = "from a AS b\nrun x\nRUN y\n";
        assert_eq!(fixed(src), "from a as b\nrun x\nrun y\n");
    }
}
