//! Build checks: a lint pass over the parsed Dockerfile, separate from parsing.
//!
//! Two rule sets: BuildKit's build checks (`buildkit`, same names, messages and URLs as
//! `docker build --check`) and kiln's own "build fat, ship thin" rules (`kiln`: pinned bases,
//! cache-friendly COPY order, non-root final stage, package-cache cleanup, thin final stage,
//! `.dockerignore`, secret files). Control as in BuildKit: the `# check=skip=A,B|all;
//! error=true;experimental=A|all` directive, or the `BUILDKIT_DOCKERFILE_CHECK` build arg
//! (which replaces the directive). `fix` rewrites the mechanical findings, `sarif` renders
//! SARIF 2.1.0. No I/O here: what a rule needs from the build context comes in a
//! [`ContextInfo`] the caller fills.

mod buildkit;
pub mod fix;
mod kiln;
pub mod sarif;
mod shell;

use serde::Serialize;

use crate::ast::Dockerfile;
use crate::dockerignore::PatternSet;
use crate::error::{SourceLines, render_diagnostic, render_diagnostic_line};
use crate::span::Span;

/// How serious a finding is. BuildKit's rules are warnings; `error=true` makes every
/// finding an error (and `kiln check` exit 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// Whose rule it is: BuildKit's (documented at docs.docker.com) or kiln's (docs/check.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Buildkit,
    Kiln,
}

/// A rule: its name, what it checks, and how to fix what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub name: &'static str,
    pub description: &'static str,
    pub origin: Origin,
    /// Runs only when `experimental=NAME|all` asks for it (BuildKit's experimental rules).
    pub experimental: bool,
    /// One line on how to fix a finding.
    pub hint: &'static str,
}

impl Rule {
    /// BuildKit's rules: `https://docs.docker.com/go/dockerfile/rule/<kebab-name>/`; kiln's:
    /// the section of docs/check.md (a path relative to kiln's repository).
    pub fn url(&self) -> String {
        match self.origin {
            Origin::Buildkit => {
                format!(
                    "https://docs.docker.com/go/dockerfile/rule/{}/",
                    kebab(self.name)
                )
            }
            Origin::Kiln => format!("docs/check.md#{}", self.name.to_lowercase()),
        }
    }
}

fn kebab(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        // `JSONArgs` → `json-args`: a capital starts a word after a lower-case letter, or
        // before one (the last capital of an acronym).
        let boundary = i > 0
            && c.is_ascii_uppercase()
            && (chars[i - 1].is_ascii_lowercase()
                || chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase()));
        if boundary {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Every rule kiln knows, BuildKit's first (in `ruleset.go` order), then kiln's.
pub static RULES: &[Rule] = &[
    bk(
        "StageNameCasing",
        "Stage names should be lowercase",
        "write the stage name in lower case (`FROM x AS build`)",
    ),
    bk(
        "FromAsCasing",
        "The 'as' keyword should match the case of the 'from' keyword",
        "write `AS` in the same case as `FROM` (`kiln check --fix` does it)",
    ),
    bk(
        "NoEmptyContinuation",
        "Empty continuation lines will become errors in a future release",
        "remove the empty line inside the continued instruction, or put a comment on it",
    ),
    bk(
        "ConsistentInstructionCasing",
        "All commands within the Dockerfile should use the same casing (either upper or lower)",
        "write every instruction in the same case (`kiln check --fix` does it)",
    ),
    bk(
        "DuplicateStageName",
        "Stage names should be unique",
        "give each stage its own name",
    ),
    bk(
        "ReservedStageName",
        "Reserved words should not be used as stage names",
        "rename the stage: `scratch` and `context` mean something else in FROM and COPY --from",
    ),
    bk(
        "JSONArgsRecommended",
        "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals",
        "use the exec form, `CMD [\"node\", \"app.js\"]`, so the process gets SIGTERM (`kiln check --fix` converts simple commands)",
    ),
    bk(
        "MaintainerDeprecated",
        "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
        "use `LABEL org.opencontainers.image.authors=\"…\"` (`kiln check --fix` does it)",
    ),
    bk(
        "UndefinedArgInFrom",
        "FROM command must use declared ARGs",
        "declare the ARG before the first FROM (`ARG BASE=alpine:3.20`)",
    ),
    bk(
        "WorkdirRelativePath",
        "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes",
        "use an absolute path (`WORKDIR /app`), or set an absolute WORKDIR first",
    ),
    bk(
        "UndefinedVar",
        "Variables should be defined before their use",
        "declare it with ARG or ENV before this instruction (or fix the typo)",
    ),
    bk(
        "MultipleInstructionsDisallowed",
        "Multiple instructions of the same type should not be used in the same stage",
        "keep only the last CMD / ENTRYPOINT / HEALTHCHECK of the stage",
    ),
    bk(
        "LegacyKeyValueFormat",
        "Legacy key/value format with whitespace separator should not be used",
        "write `KEY=value` (`kiln check --fix` does it)",
    ),
    bk(
        "InvalidBaseImagePlatform",
        "Base image platform does not match expected target platform",
        "use a base image built for the target platform",
    ),
    bk(
        "RedundantTargetPlatform",
        "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
        "drop `--platform=$TARGETPLATFORM`",
    ),
    bk(
        "SecretsUsedInArgOrEnv",
        "Sensitive data should not be used in the ARG or ENV commands",
        "pass secrets with `RUN --mount=type=secret` (and `kiln build --secret`): ARG and ENV values stay in the image",
    ),
    bk(
        "InvalidDefaultArgInFrom",
        "Default value for global ARG results in an empty or invalid base image name",
        "give the global ARG a default that makes a valid image name",
    ),
    bk(
        "FromPlatformFlagConstDisallowed",
        "FROM --platform flag should not use a constant value",
        "use `--platform=$BUILDPLATFORM` (or name the stage after the platform)",
    ),
    Rule {
        experimental: true,
        ..bk(
            "CopyIgnoredFile",
            "Attempting to Copy file that is excluded by .dockerignore",
            "remove the path from .dockerignore, or stop copying it",
        )
    },
    Rule {
        experimental: true,
        ..bk(
            "InvalidDefinitionDescription",
            "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.",
            "start the comment with the stage or ARG name, or put an empty line between",
        )
    },
    bk(
        "ExposeProtoCasing",
        "Protocol in EXPOSE instruction should be lowercase",
        "write the protocol in lower case (`EXPOSE 53/udp`)",
    ),
    bk(
        "ExposeInvalidFormat",
        "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release",
        "EXPOSE only the container port (`EXPOSE 80`); map host ports at run time",
    ),
    kn(
        "UnpinnedBaseImage",
        "Base images should be pinned to a version (better: a digest)",
        "pin a version tag (`node:20.11-bookworm-slim`), better a digest (`node:20@sha256:…`)",
    ),
    kn(
        "SourceCopiedBeforeDependencyInstall",
        "Copy the dependency manifest, install, then copy the sources",
        "`COPY package*.json ./`, `RUN npm ci`, then `COPY . .`: a source edit then keeps the install cached",
    ),
    kn(
        "FinalStageRunsAsRoot",
        "The final stage should run as a non-root USER",
        "add `USER <name or uid>` to the final stage (create the user first if the base has none)",
    ),
    kn(
        "AptInstallWithoutCleanup",
        "apt-get install should use --no-install-recommends and remove /var/lib/apt/lists in the same RUN",
        "`RUN apt-get update && apt-get install -y --no-install-recommends PKG && rm -rf /var/lib/apt/lists/*`",
    ),
    kn(
        "ApkAddWithoutNoCache",
        "apk add should use --no-cache",
        "`RUN apk add --no-cache PKG`",
    ),
    kn(
        "AddInsteadOfCopy",
        "Use COPY for local files; ADD is for URLs, git repositories and archives to unpack",
        "replace ADD with COPY",
    ),
    kn(
        "MissingDockerignore",
        "The context holds dependencies, VCS data or build output that no .dockerignore excludes",
        "add a .dockerignore listing them (`node_modules`, `.git`, build output)",
    ),
    kn(
        "FatFinalStage",
        "The final stage should not ship the toolchain, dependencies or sources of the build",
        "build in an earlier stage on the toolchain image, and `COPY --from` only the output into a small runtime base",
    ),
    kn(
        "SecretFileCopied",
        "Secret files (.env, private keys, credentials) should not be copied into the image",
        "exclude the file in .dockerignore and pass it with `RUN --mount=type=secret` instead",
    ),
];

const fn bk(name: &'static str, description: &'static str, hint: &'static str) -> Rule {
    Rule {
        name,
        description,
        origin: Origin::Buildkit,
        experimental: false,
        hint,
    }
}

const fn kn(name: &'static str, description: &'static str, hint: &'static str) -> Rule {
    Rule {
        name,
        description,
        origin: Origin::Kiln,
        experimental: false,
        hint,
    }
}

/// The rule named `name`.
pub fn rule(name: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.name == name)
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Rule name (`StageNameCasing`).
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
    pub span: Span,
}

impl Warning {
    /// The rule's documentation: docs.docker.com for BuildKit's, docs/check.md for kiln's.
    pub fn url(&self) -> String {
        rule(self.rule).map(Rule::url).unwrap_or_default()
    }

    /// How to fix it.
    pub fn hint(&self) -> &'static str {
        rule(self.rule).map(|r| r.hint).unwrap_or("")
    }

    fn level(&self) -> String {
        format!("{}[{}]", self.severity.as_str(), self.rule)
    }

    fn hint_line(&self) -> String {
        format!("{} ({})", self.hint(), self.url())
    }

    /// [`Warning::render`] with the lines indexed once, for rendering many warnings.
    pub fn render_in(&self, file: &str, lines: &SourceLines<'_>) -> String {
        render_diagnostic_line(
            &self.level(),
            file,
            self.span,
            &self.message,
            Some(&self.hint_line()),
            lines.get(self.span.line),
        )
    }

    /// Compiler-style: `warning[Rule]: message`, `--> file:line:col`, the line, a caret and
    /// a `hint:` with the fix and the rule's page.
    pub fn render(&self, file: &str, source: &str) -> String {
        render_diagnostic(
            &self.level(),
            file,
            self.span,
            &self.message,
            Some(&self.hint_line()),
            source,
        )
    }

    /// BuildKit's one-line form after a build: `Rule: message (line N)`.
    pub fn short(&self) -> String {
        if self.span.line > 0 {
            format!("{}: {} (line {})", self.rule, self.message, self.span.line)
        } else {
            format!("{}: {}", self.rule, self.message)
        }
    }
}

/// The check options of `# check=` or `BUILDKIT_DOCKERFILE_CHECK` (BuildKit's syntax:
/// `skip=A,B|all`, `error=BOOL`, `experimental=A,B|all`, joined by `;`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    pub skip: Vec<String>,
    pub skip_all: bool,
    pub error: bool,
    pub experimental: Vec<String>,
    pub experimental_all: bool,
}

impl CheckConfig {
    /// Parse the option string; errors name the bad part as BuildKit's do.
    pub fn parse(s: &str) -> Result<CheckConfig, String> {
        let mut cfg = CheckConfig::default();
        let s = s.trim();
        if s.is_empty() {
            return Ok(cfg);
        }
        for part in s.splitn(3, ';') {
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!("invalid check option {part:?}"));
            };
            let list = |v: &str| -> Vec<String> { v.split(',').map(|r| r.trim().into()).collect() };
            match k.trim() {
                "skip" if v.trim() == "all" => cfg.skip_all = true,
                "skip" => cfg.skip = list(v),
                "experimental" if v.trim() == "all" => cfg.experimental_all = true,
                "experimental" => cfg.experimental = list(v),
                "error" => {
                    cfg.error = parse_go_bool(v.trim()).ok_or_else(|| {
                        format!(
                            "failed to parse check option {part:?}: strconv.ParseBool: parsing {:?}: invalid syntax",
                            v.trim()
                        )
                    })?
                }
                k => return Err(format!("invalid check option {k:?}")),
            }
        }
        Ok(cfg)
    }

    /// The options in effect: the build arg when given (it replaces the directive, as in
    /// BuildKit), else the `check` directive, else none.
    pub fn for_dockerfile(df: &Dockerfile, build_arg: Option<&str>) -> Result<CheckConfig, String> {
        if let Some(v) = build_arg {
            return CheckConfig::parse(v);
        }
        match df.directives.iter().find(|d| d.name == "check") {
            Some(d) => CheckConfig::parse(&d.value),
            None => Ok(CheckConfig::default()),
        }
    }

    /// Whether `rule` runs under these options.
    pub fn enabled(&self, rule: &Rule) -> bool {
        if rule.experimental {
            self.experimental_all || self.experimental.iter().any(|r| r == rule.name)
        } else {
            !self.skip_all && !self.skip.iter().any(|r| r == rule.name)
        }
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// What the rules that look at the build context need, gathered by the caller.
#[derive(Debug, Clone, Default)]
pub struct ContextInfo {
    /// The `.dockerignore` in effect (`Dockerfile.dockerignore` or the context's), if any.
    pub dockerignore: Option<PatternSet>,
    /// Context paths (relative, `/`-separated; directories end in `/`) a few levels deep,
    /// not descending into `node_modules`, `.git` and the like.
    pub entries: Vec<String>,
}

/// What to check.
pub struct Input<'a> {
    pub df: &'a Dockerfile,
    /// The Dockerfile text (for comment-based rules).
    pub source: &'a str,
    /// The build context, when there is one to look at.
    pub context: Option<&'a ContextInfo>,
    /// The stage being built (default: the last).
    pub target: Option<&'a str>,
}

/// Findings as the rules produce them.
pub(crate) struct Out(pub(crate) Vec<Warning>);

impl Out {
    pub(crate) fn push(&mut self, rule: &'static str, span: Span, message: String) {
        self.0.push(Warning {
            rule,
            severity: Severity::Warning,
            message,
            span,
        })
    }
}

/// BuildKit's rules under the Dockerfile's own `# check=` directive (an invalid directive
/// counts as none), sorted by position: the warnings `kiln parse` and `kiln graph` print.
pub fn check(df: &Dockerfile) -> Vec<Warning> {
    let cfg = CheckConfig::for_dockerfile(df, None).unwrap_or_default();
    let input = Input {
        df,
        source: "",
        context: None,
        target: None,
    };
    let mut out = Out(Vec::new());
    buildkit::run(&input, &mut out);
    finish(out.0, &cfg)
}

/// Every rule, BuildKit's and kiln's, under `cfg`; sorted by position. With `error=true`
/// every finding is an error.
pub fn run(input: &Input<'_>, cfg: &CheckConfig) -> Vec<Warning> {
    let mut out = Out(Vec::new());
    buildkit::run(input, &mut out);
    kiln::run(input, &mut out);
    finish(out.0, cfg)
}

fn finish(mut w: Vec<Warning>, cfg: &CheckConfig) -> Vec<Warning> {
    w.retain(|x| rule(x.rule).is_some_and(|r| cfg.enabled(r)));
    if cfg.error {
        for x in &mut w {
            x.severity = Severity::Error;
        }
    }
    w.sort_by_key(|a| (a.span.line, a.span.col));
    w.dedup();
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_buildkits_kebab_names() {
        let url = |n| rule(n).unwrap().url();
        assert_eq!(
            url("JSONArgsRecommended"),
            "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
        );
        assert_eq!(
            url("FromPlatformFlagConstDisallowed"),
            "https://docs.docker.com/go/dockerfile/rule/from-platform-flag-const-disallowed/"
        );
        assert_eq!(url("FatFinalStage"), "docs/check.md#fatfinalstage");
    }

    #[test]
    fn config_parses_buildkits_syntax() {
        let c = CheckConfig::parse("skip=A, B;error=true").unwrap();
        assert_eq!(c.skip, ["A", "B"]);
        assert!(c.error);
        assert!(CheckConfig::parse("skip=all").unwrap().skip_all);
        let c = CheckConfig::parse("experimental=all").unwrap();
        assert!(c.experimental_all);
        assert!(CheckConfig::parse("error=maybe").is_err());
        assert!(CheckConfig::parse("nope=1").is_err());
        assert!(CheckConfig::parse("junk").is_err());
    }
}
