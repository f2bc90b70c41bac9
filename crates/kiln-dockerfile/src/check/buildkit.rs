//! BuildKit's build checks (`frontend/dockerfile/linter/ruleset.go`): same names, messages
//! and triggers. `InvalidBaseImagePlatform` never fires here: kiln refuses a base image
//! whose platform differs from the stage's (BuildKit builds on it and warns); `DuplicateStageName` is a parse error in
//! kiln (BuildKit fails the build on it too).

use std::collections::{BTreeMap, BTreeSet};

use super::shell::var_refs;
use super::{Input, Out};
use crate::ast::{Command, CommandLine, Dockerfile, Instruction, Stage};
use crate::error::did_you_mean;
use crate::expand::Lexer;
use crate::span::Span;

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

/// Build args every build has (BuildKit's predefined proxy args and platform args).
const PREDEFINED_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

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

pub(super) fn run(input: &Input<'_>, out: &mut Out) {
    let df = input.df;
    for pw in &df.parse_warnings {
        if pw.rule == "NoEmptyContinuation" {
            out.push("NoEmptyContinuation", pw.span, pw.message.clone());
        }
    }
    instruction_casing(df, out);
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
        from_rules(df, st, &global_args, out);
        stage_rules(st, out);
    }
    meta_arg_rules(df, out);
    invalid_default_arg_in_from(df, out);
    undefined_var(df, out);
    if let Some(ignore) = input.context.and_then(|c| c.dockerignore.as_ref()) {
        copy_ignored_file(df, ignore, out);
    }
    if !input.source.is_empty() {
        definition_description(df, input.source, out);
    }
}

/// InvalidDefaultArgInFrom: the FROM word expanded with the global ARGs' defaults only (no
/// build args) must be a valid image reference.
fn invalid_default_arg_in_from(df: &Dockerfile, out: &mut Out) {
    let lexer = Lexer::new(df.escape);
    let mut env: BTreeMap<String, String> = [
        ("TARGETPLATFORM", "linux/amd64"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "amd64"),
        ("TARGETVARIANT", ""),
        ("BUILDPLATFORM", "linux/amd64"),
        ("BUILDOS", "linux"),
        ("BUILDARCH", "amd64"),
        ("BUILDVARIANT", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut declared = BTreeSet::new();
    for ins in &df.meta_args {
        if let Command::Arg(a) = &ins.command {
            for d in &a.args {
                declared.insert(d.name.clone());
                if let Some(v) = &d.default {
                    let Ok(x) = lexer.process_word(v, &env) else {
                        return;
                    };
                    env.insert(d.name.clone(), x.value);
                }
            }
        }
    }
    for st in &df.stages {
        let image = &st.from_cmd().image;
        if !image.contains('$') {
            continue;
        }
        // An undeclared ARG is UndefinedArgInFrom's finding; this rule is about defaults.
        if var_refs(image, df.escape)
            .iter()
            .any(|r| !declared.contains(&r.name) && !PLATFORM_ARGS.contains(&r.name.as_str()))
        {
            continue;
        }
        let Ok(x) = lexer.process_word(image, &env) else {
            return;
        };
        if !valid_reference(&x.value) {
            out.push(
                "InvalidDefaultArgInFrom",
                st.span,
                format!(
                    "Default value for ARG {image} results in empty or invalid base image name"
                ),
            );
        }
    }
}

/// A docker image reference as `reference.ParseNormalizedNamed` accepts it (or a stage name).
pub(super) fn valid_reference(s: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        let comp = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
        let host = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?";
        let tag = r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?";
        let digest = r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?";
        regex::Regex::new(&format!("^{host}{comp}(?:/{comp})*{tag}{digest}$")).expect("regex")
    });
    !s.is_empty() && s.len() <= 255 + 128 + 80 && re.is_match(s)
}

/// Variables an image usually sets in its config (`Env`), which a Dockerfile may use
/// without declaring; BuildKit knows the base image's env, a static check does not.
fn likely_image_env(name: &str) -> bool {
    const KNOWN: [&str; 14] = [
        "PATH",
        "HOME",
        "LANG",
        "LANGUAGE",
        "LC_ALL",
        "TERM",
        "HOSTNAME",
        "GOPATH",
        "GOROOT",
        "GOTOOLCHAIN",
        "GPG_KEY",
        "NGINX_VERSION",
        "DEBIAN_FRONTEND",
        "SHELL",
    ];
    KNOWN.contains(&name)
        || ["_VERSION", "_HOME", "_PATH", "_DIR", "_ROOT"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// UndefinedVar: a variable read by an instruction that expands words (not RUN, CMD,
/// ENTRYPOINT: the shell reads those) must be an ARG or ENV declared before it. References
/// with a modifier (`${A:-x}`) expect an unset variable and are left alone; so are names a
/// base image usually sets (`PATH`, `*_VERSION`), as the image's env is unknown here.
fn undefined_var(df: &Dockerfile, out: &mut Out) {
    let mut stage_env: Vec<BTreeSet<String>> = Vec::new();
    for st in &df.stages {
        let parent = df.stages[..st.index]
            .iter()
            .position(|p| p.name.as_deref() == Some(st.from_cmd().image.to_lowercase().as_str()));
        let from_scratch = st.from_cmd().image == "scratch";
        let mut defined: BTreeSet<String> =
            parent.map(|p| stage_env[p].clone()).unwrap_or_default();
        let image_env_known = from_scratch;
        let mut env_only = defined.clone();
        for ins in &st.instructions {
            let words = expanded_words(ins);
            let mut reported = BTreeSet::new();
            for w in &words {
                for r in var_refs(w, df.escape) {
                    let known = r.guarded
                        || defined.contains(&r.name)
                        || PLATFORM_ARGS.contains(&r.name.as_str())
                        || PREDEFINED_ARGS.contains(&r.name.as_str())
                        || (!image_env_known && likely_image_env(&r.name));
                    if known || !reported.insert(r.name.clone()) {
                        continue;
                    }
                    let mut msg = format!("Usage of undefined variable '${}'", r.name);
                    if let Some(s) = did_you_mean(&r.name, defined.iter().map(String::as_str), true)
                    {
                        msg.push_str(&format!(" (did you mean ${s}?)"));
                    }
                    out.push("UndefinedVar", ins.span, msg);
                }
            }
            match &ins.command {
                Command::Arg(a) => defined.extend(a.args.iter().map(|d| d.name.clone())),
                Command::Env(kv) => {
                    for p in &kv.pairs {
                        defined.insert(p.key.clone());
                        env_only.insert(p.key.clone());
                    }
                }
                _ => {}
            }
        }
        stage_env.push(env_only);
    }
}

/// The words of an instruction BuildKit expands with ARG and ENV values.
fn expanded_words(ins: &Instruction) -> Vec<&str> {
    let mut v: Vec<&str> = Vec::new();
    match &ins.command {
        Command::Env(kv) => v.extend(kv.pairs.iter().map(|p| p.value.as_str())),
        Command::Label(kv) => {
            for p in &kv.pairs {
                v.push(&p.key);
                v.push(&p.value);
            }
        }
        Command::Arg(a) => v.extend(a.args.iter().filter_map(|d| d.default.as_deref())),
        Command::Copy(c) => {
            v.extend(c.sources.iter().map(String::as_str));
            v.push(&c.dest);
            v.extend(c.chown.as_deref());
            v.extend(c.chmod.as_deref());
        }
        Command::Add(c) => {
            v.extend(c.sources.iter().map(String::as_str));
            v.push(&c.dest);
            v.extend(c.chown.as_deref());
            v.extend(c.chmod.as_deref());
        }
        Command::Expose(e) => v.extend(e.ports.iter().map(String::as_str)),
        Command::Stopsignal(s) => v.push(&s.signal),
        Command::User(u) => v.push(&u.user),
        Command::Volume(vol) => v.extend(vol.paths.iter().map(String::as_str)),
        Command::Workdir(w) => v.push(&w.path),
        _ => {}
    }
    v
}

/// CopyIgnoredFile (experimental): a context path COPY or ADD names that .dockerignore
/// excludes.
fn copy_ignored_file(df: &Dockerfile, ignore: &crate::dockerignore::PatternSet, out: &mut Out) {
    for st in &df.stages {
        for ins in &st.instructions {
            let (cmd, sources) = match &ins.command {
                Command::Copy(c) if c.from.is_none() => ("Copy", &c.sources),
                Command::Add(a) => ("Add", &a.sources),
                _ => continue,
            };
            for s in sources {
                if s.contains(['$', '*', '?', '[']) || s.contains("://") {
                    continue;
                }
                let path = crate::dockerignore::clean(s.trim_start_matches('/'));
                if path.is_empty() || path == "." {
                    continue;
                }
                if ignore.is_excluded(&path) {
                    out.push(
                        "CopyIgnoredFile",
                        ins.span,
                        format!("Attempting to {cmd} file {s:?} that is excluded by .dockerignore"),
                    );
                }
            }
        }
    }
}

/// InvalidDefinitionDescription (experimental): a comment directly above `FROM … AS name`
/// or `ARG name` must start with that name.
fn definition_description(df: &Dockerfile, source: &str, out: &mut Out) {
    let lines: Vec<&str> = source
        .strip_prefix('\u{feff}')
        .unwrap_or(source)
        .lines()
        .collect();
    let comment_above = |line: usize| -> Option<String> {
        let prev = lines.get(line.checked_sub(2)?)?.trim();
        let text = prev.strip_prefix('#')?;
        Some(text.trim_start().to_string())
    };
    let mut check = |ins: &Instruction, instruction: &str, keys: Vec<&str>| {
        if keys.is_empty() {
            return;
        }
        let Some(c) = comment_above(ins.span.line) else {
            return;
        };
        let first = c.split(' ').next().unwrap_or("");
        if keys.contains(&first) {
            return;
        }
        let example = if keys.len() > 1 { "<arg_key>" } else { keys[0] };
        out.push(
            "InvalidDefinitionDescription",
            ins.span,
            format!(
                "Comment for {instruction} should follow the format: `# {example} <description>`"
            ),
        );
    };
    // Parser directives (`# syntax=…`) look like comments but describe nothing.
    let directive_lines: Vec<usize> = df.directives.iter().map(|d| d.span.line).collect();
    for ins in all_instructions(df) {
        match &ins.command {
            _ if directive_lines.contains(&(ins.span.line.saturating_sub(1))) => {}
            Command::From(f) => {
                let k: Vec<&str> = f.name.as_deref().into_iter().collect();
                check(ins, "FROM", k)
            }
            Command::Arg(a) => check(ins, "ARG", a.args.iter().map(|d| d.name.as_str()).collect()),
            _ => {}
        }
    }
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
                format!("Stage name should not use the same name as reserved stage {n:?}"),
            );
        }
    }
    for var in var_refs(&f.image, df.escape)
        .into_iter()
        .chain(f.platform.iter().flat_map(|p| var_refs(p, df.escape)))
        .map(|r| r.name)
    {
        if !global_args.contains(&var.as_str()) && !PLATFORM_ARGS.contains(&var.as_str()) {
            let mut msg = format!("FROM argument '{var}' is not declared");
            let candidates = global_args.iter().copied().chain(PLATFORM_ARGS);
            if let Some(s) = did_you_mean(&var, candidates, true) {
                msg.push_str(&format!(" (did you mean {s}?)"));
            }
            out.push("UndefinedArgInFrom", st.span, msg);
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
            // A port with `$` is checked after expansion in BuildKit; unexpanded, its
            // `${V:-x}` would look like a mapping.
            for p in e.ports.iter().filter(|p| !p.contains('$')) {
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
    use crate::check::check;
    use crate::error::SourceLines;

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
