//! Build checks: a lint pass over the parsed Dockerfile, separate from parsing (a subset of
//! BuildKit's rules, same names and messages). `# check=skip=A,B|all` is honoured.

use serde::Serialize;

use crate::ast::{Command, CommandLine, Dockerfile, Instruction, Stage};
use crate::error::{SourceLines, render_diagnostic, render_diagnostic_line};
use crate::span::Span;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// BuildKit rule name (`StageNameCasing`).
    pub rule: &'static str,
    pub message: String,
    pub span: Span,
}

impl Warning {
    /// `https://docs.docker.com/go/dockerfile/rule/<kebab-name>/`
    pub fn url(&self) -> String {
        let mut kebab = String::new();
        for (i, c) in self.rule.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                kebab.push('-');
            }
            kebab.push(c.to_ascii_lowercase());
        }
        format!("https://docs.docker.com/go/dockerfile/rule/{kebab}/")
    }

    /// [`Warning::render`] with the lines indexed once, for rendering many warnings.
    pub fn render_in(&self, file: &str, lines: &SourceLines<'_>) -> String {
        render_diagnostic_line(
            &format!("warning[{}]", self.rule),
            file,
            self.span,
            &self.message,
            Some(&self.url()),
            lines.get(self.span.line),
        )
    }

    pub fn render(&self, file: &str, source: &str) -> String {
        render_diagnostic(
            &format!("warning[{}]", self.rule),
            file,
            self.span,
            &self.message,
            Some(&self.url()),
            source,
        )
    }
}

const PLATFORM_ARGS: [&str; 8] = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// Variable names referenced in a word (`$A`, `${B:-x}`), escapes respected.
fn var_refs(word: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = word.chars().collect();
    let mut i = 0;
    let mut in_single = false;
    while i < chars.len() {
        let c = chars[i];
        if c == escape && !in_single {
            i += 2;
            continue;
        }
        if c == '\'' {
            in_single = !in_single;
        } else if c == '$' && !in_single {
            let start = if chars.get(i + 1) == Some(&'{') {
                i + 2
            } else {
                i + 1
            };
            let mut j = start;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            if j > start {
                out.push(chars[start..j].iter().collect());
            }
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
    out
}

fn skipped_rules(df: &Dockerfile) -> Vec<String> {
    let mut skip = Vec::new();
    for d in df.directives.iter().filter(|d| d.name == "check") {
        for part in d.value.split(';') {
            if let Some(list) = part.trim().strip_prefix("skip=") {
                skip.extend(list.split(',').map(|s| s.trim().to_string()));
            }
        }
    }
    skip
}

fn is_self_consistent(s: &str) -> bool {
    s == s.to_lowercase() || s == s.to_uppercase()
}

fn all_instructions(df: &Dockerfile) -> impl Iterator<Item = &Instruction> {
    df.meta_args.iter().chain(
        df.stages
            .iter()
            .flat_map(|s| std::iter::once(&s.from).chain(s.instructions.iter())),
    )
}

/// Warnings as the checks find them.
struct Out(Vec<Warning>);

impl Out {
    fn push(&mut self, rule: &'static str, span: Span, message: String) {
        self.0.push(Warning {
            rule,
            message,
            span,
        })
    }
}

/// Run the checks; warnings are sorted by position.
pub fn check(df: &Dockerfile) -> Vec<Warning> {
    let mut out = Out(Vec::new());
    for pw in &df.parse_warnings {
        if pw.rule == "NoEmptyContinuation" {
            out.push("NoEmptyContinuation", pw.span, pw.message.clone());
        }
    }
    instruction_casing(df, &mut out);
    let global_args: Vec<&str> = df
        .meta_args
        .iter()
        .filter_map(|i| match &i.command {
            Command::Arg(a) => Some(a.args.iter().map(|d| d.name.as_str())),
            _ => None,
        })
        .flatten()
        .collect();
    for st in &df.stages {
        from_rules(df, st, &global_args, &mut out);
        stage_rules(st, &mut out);
    }
    meta_arg_rules(df, &mut out);

    let skip = skipped_rules(df);
    if skip.iter().any(|s| s == "all") {
        return Vec::new();
    }
    let mut w = out.0;
    w.retain(|x| !skip.iter().any(|s| s == x.rule));
    w.sort_by_key(|x| (x.span.line, x.span.col));
    w
}

/// ConsistentInstructionCasing: the majority wins (BuildKit counts self-consistent keywords).
fn instruction_casing(df: &Dockerfile, out: &mut Out) {
    let (mut lower, mut upper) = (0, 0);
    for ins in all_instructions(df) {
        if is_self_consistent(&ins.keyword) {
            if ins.keyword == ins.keyword.to_lowercase() {
                lower += 1;
            } else {
                upper += 1;
            }
        }
    }
    let majority_lower = lower > upper;
    for ins in all_instructions(df) {
        let wrong = if majority_lower {
            ins.keyword != ins.keyword.to_lowercase()
        } else {
            ins.keyword != ins.keyword.to_uppercase()
        };
        if wrong {
            let casing = if majority_lower {
                "lowercase"
            } else {
                "uppercase"
            };
            out.push(
                "ConsistentInstructionCasing",
                ins.span,
                format!(
                    "Command '{}' should match the case of the command majority ({casing})",
                    ins.keyword
                ),
            );
        }
    }
}

/// The rules about a stage's FROM line: its name, its arguments, its platform.
fn from_rules(df: &Dockerfile, st: &Stage, global_args: &[&str], out: &mut Out) {
    let f = st.from_cmd();
    let words: Vec<&str> = st.from.original.split_whitespace().collect();
    if f.name.is_some() {
        if let (Some(as_kw), Some(name)) = (words.get(words.len().wrapping_sub(2)), words.last()) {
            if *name != name.to_lowercase() {
                out.push(
                    "StageNameCasing",
                    st.span,
                    format!("Stage name '{name}' should be lowercase"),
                );
            }
            let from_kw = &st.from.keyword;
            let mismatch = (from_kw == &from_kw.to_uppercase() && *as_kw != as_kw.to_uppercase())
                || (from_kw == &from_kw.to_lowercase() && *as_kw != as_kw.to_lowercase());
            if mismatch {
                out.push(
                    "FromAsCasing",
                    st.span,
                    format!("'{as_kw}' and '{from_kw}' keywords' casing do not match"),
                );
            }
        }
        if let Some(n) = &f.name
            && (n == "scratch" || n == "context")
        {
            out.push(
                "ReservedStageName",
                st.span,
                format!("'{n}' is reserved and should not be used as a stage name"),
            );
        }
    }
    for var in var_refs(&f.image, df.escape)
        .into_iter()
        .chain(f.platform.iter().flat_map(|p| var_refs(p, df.escape)))
    {
        if !global_args.contains(&var.as_str()) && !PLATFORM_ARGS.contains(&var.as_str()) {
            out.push(
                "UndefinedArgInFrom",
                st.span,
                format!("FROM argument '{var}' is not declared"),
            );
        }
    }
    if let Some(p) = &f.platform {
        if p == "$TARGETPLATFORM" || p == "${TARGETPLATFORM}" {
            out.push(
                "RedundantTargetPlatform",
                st.span,
                format!(
                    "Setting platform to predefined {p} in FROM is redundant as this is the default behavior"
                ),
            );
        } else if !p.contains('$') {
            let name = f.name.clone().unwrap_or_default();
            let mentions = p
                .split('/')
                .any(|part| !part.is_empty() && name.contains(part));
            if !mentions {
                out.push(
                    "FromPlatformFlagConstDisallowed",
                    st.span,
                    format!("FROM --platform flag should not use constant value {p:?}"),
                );
            }
        }
    }
}

/// The rules about a stage's instructions.
fn stage_rules(st: &Stage, out: &mut Out) {
    let mut seen_abs_workdir = false;
    let mut counts: [(&str, Vec<Span>); 3] = [
        ("CMD", vec![]),
        ("ENTRYPOINT", vec![]),
        ("HEALTHCHECK", vec![]),
    ];
    for ins in &st.instructions {
        instruction_rules(ins, &mut seen_abs_workdir, out);
        for (name, spans) in counts.iter_mut() {
            if ins.name() == *name {
                spans.push(ins.span);
            }
        }
    }
    for (name, spans) in &counts {
        if spans.len() > 1 {
            for s in &spans[..spans.len() - 1] {
                out.push(
                    "MultipleInstructionsDisallowed",
                    *s,
                    format!(
                        "Multiple {name} instructions should not be used in the same stage because only the last one will be used"
                    ),
                );
            }
        }
    }
}

/// The rules about one instruction of a stage (`seen_abs_workdir`: whether an absolute
/// WORKDIR came before it).
fn instruction_rules(ins: &Instruction, seen_abs_workdir: &mut bool, out: &mut Out) {
    match &ins.command {
        Command::Maintainer(_) => out.push(
            "MaintainerDeprecated",
            ins.span,
            "Maintainer instruction is deprecated in favor of using label".into(),
        ),
        Command::Cmd(c) | Command::Entrypoint(c) => {
            if let CommandLine::Shell(_) = c.cmd {
                out.push(
                    "JSONArgsRecommended",
                    ins.span,
                    format!(
                        "JSON arguments recommended for {} to prevent unintended behavior related to OS signals",
                        ins.name()
                    ),
                );
            }
        }
        Command::Env(kv) | Command::Label(kv) => {
            if kv.pairs.iter().any(|p| p.legacy) {
                out.push(
                    "LegacyKeyValueFormat",
                    ins.span,
                    format!(
                        "\"{} key=value\" should be used instead of legacy \"{} key value\" format",
                        ins.name(),
                        ins.name()
                    ),
                );
            }
            if matches!(ins.command, Command::Env(_)) {
                for p in &kv.pairs {
                    if looks_secret(&p.key) {
                        out.push(
                            "SecretsUsedInArgOrEnv",
                            ins.span,
                            format!(
                                "Do not use ARG or ENV instructions for sensitive data (ENV \"{}\")",
                                p.key
                            ),
                        );
                    }
                }
            }
        }
        Command::Arg(a) => {
            for d in &a.args {
                if looks_secret(&d.name) {
                    out.push(
                        "SecretsUsedInArgOrEnv",
                        ins.span,
                        format!(
                            "Do not use ARG or ENV instructions for sensitive data (ARG \"{}\")",
                            d.name
                        ),
                    );
                }
            }
        }
        Command::Workdir(wd) => {
            let abs = wd.path.starts_with('/') || wd.path.starts_with('$');
            if !abs && !*seen_abs_workdir {
                out.push(
                    "WorkdirRelativePath",
                    ins.span,
                    format!(
                        "Relative workdir {:?} can have unexpected results if the base image changes",
                        wd.path
                    ),
                );
            }
            *seen_abs_workdir |= abs;
        }
        Command::Expose(e) => {
            for p in &e.ports {
                if let Some((_, proto)) = p.split_once('/')
                    && proto != proto.to_lowercase()
                {
                    out.push(
                        "ExposeProtoCasing",
                        ins.span,
                        format!("Defined protocol '{p}' in EXPOSE instruction should be lowercase"),
                    );
                }
                if p.contains(':') {
                    out.push(
                        "ExposeInvalidFormat",
                        ins.span,
                        format!(
                            "EXPOSE instruction should not define an IP address or host-port mapping, found '{p}'"
                        ),
                    );
                }
            }
        }
        _ => {}
    }
}

/// SecretsUsedInArgOrEnv for the ARGs before the first FROM.
fn meta_arg_rules(df: &Dockerfile, out: &mut Out) {
    for ins in &df.meta_args {
        if let Command::Arg(a) = &ins.command {
            for d in &a.args {
                if looks_secret(&d.name) {
                    out.push(
                        "SecretsUsedInArgOrEnv",
                        ins.span,
                        format!(
                            "Do not use ARG or ENV instructions for sensitive data (ARG \"{}\")",
                            d.name
                        ),
                    );
                }
            }
        }
    }
}

/// BuildKit's heuristic: a `_`-separated token names a secret, unless the name also says it
/// is public, a file or a version.
fn looks_secret(name: &str) -> bool {
    let lower = name.to_lowercase();
    let tokens: Vec<&str> = lower.split(['_', '-']).collect();
    let secret = [
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    let allow = ["public", "file", "version"];
    tokens.iter().any(|t| secret.contains(t)) && !tokens.iter().any(|t| allow.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(src: &str) -> Vec<&'static str> {
        check(&crate::parse(src).unwrap())
            .into_iter()
            .map(|w| w.rule)
            .collect()
    }

    #[test]
    fn casing_rules() {
        assert_eq!(rules("FROM a AS Builder\nRUN x\n"), ["StageNameCasing"]);
        assert_eq!(rules("FROM a as b\nRUN x\n"), ["FromAsCasing"]);
        assert_eq!(
            rules("FROM a\nrun x\nRUN y\nRUN z\n"),
            ["ConsistentInstructionCasing"]
        );
        assert!(rules("from a as b\nrun x\n").is_empty());
    }

    #[test]
    fn content_rules() {
        assert_eq!(rules("FROM a\nMAINTAINER me\n"), ["MaintainerDeprecated"]);
        assert_eq!(rules("FROM a\nCMD node app.js\n"), ["JSONArgsRecommended"]);
        assert_eq!(rules("FROM a\nENV A b\n"), ["LegacyKeyValueFormat"]);
        assert_eq!(rules("FROM $BASE\n"), ["UndefinedArgInFrom"]);
        assert!(rules("ARG BASE=a\nFROM $BASE\nFROM --platform=$BUILDPLATFORM b\n").is_empty());
        assert_eq!(
            rules("FROM a\nWORKDIR app\nWORKDIR /x\nWORKDIR y\n"),
            ["WorkdirRelativePath"]
        );
        assert_eq!(
            rules("FROM a\nCMD [\"a\"]\nCMD [\"b\"]\n"),
            ["MultipleInstructionsDisallowed"]
        );
        assert_eq!(rules("FROM a\nEXPOSE 80/TCP\n"), ["ExposeProtoCasing"]);
        assert_eq!(
            rules("FROM a\nARG API_TOKEN\nARG PUBLIC_KEY\n"),
            ["SecretsUsedInArgOrEnv"]
        );
        assert_eq!(rules("FROM a AS scratch\n"), ["ReservedStageName"]);
        assert_eq!(
            rules("FROM --platform=linux/amd64 a\n"),
            ["FromPlatformFlagConstDisallowed"]
        );
        assert!(rules("FROM --platform=linux/amd64 a AS build-amd64\n").is_empty());
        assert_eq!(
            rules("FROM --platform=$TARGETPLATFORM a\n"),
            ["RedundantTargetPlatform"]
        );
        assert_eq!(rules("FROM a\nRUN a \\\n\n b\n"), ["NoEmptyContinuation"]);
    }

    #[test]
    fn skip_directive() {
        assert!(rules("# check=skip=MaintainerDeprecated\nFROM a\nMAINTAINER me\n").is_empty());
        assert!(rules("# check=skip=all\nFROM a as B\nMAINTAINER me\n").is_empty());
    }

    #[test]
    fn url_and_render() {
        let w = &check(&crate::parse("FROM a\nMAINTAINER me\n").unwrap())[0];
        assert_eq!(
            w.url(),
            "https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/"
        );
        assert!(
            w.render("Dockerfile", "FROM a\nMAINTAINER me\n")
                .contains("2 | MAINTAINER me")
        );
    }

    #[test]
    fn render_in_indexed_lines_matches_render() {
        let src = "\u{feff}FROM a\nenv A=1\nMAINTAINER me\nENV B=2\nENV C=3\n";
        let warnings = check(&crate::parse(src).unwrap());
        assert!(warnings.len() >= 2, "{warnings:?}");
        let lines = SourceLines::new(src);
        for w in &warnings {
            assert_eq!(
                w.render_in("Dockerfile", &lines),
                w.render("Dockerfile", src)
            );
        }
        assert_eq!(lines.get(0), None);
        assert_eq!(lines.get(2), Some("env A=1"));
        assert_eq!(lines.get(6), None);
    }
}
