//! Every build-check rule: one Dockerfile that triggers it and one that must not, plus the
//! check directive, the build-arg override, error level and `--fix` round trips.

use kiln_dockerfile::check::{self, CheckConfig, ContextInfo, Input, RULES, Severity, fix};
use kiln_dockerfile::dockerignore::PatternSet;
use kiln_dockerfile::{EvalOptions, analyze, parse};

fn ctx(entries: &[&str], ignore: Option<&str>) -> ContextInfo {
    ContextInfo {
        dockerignore: ignore.map(|t| PatternSet::parse_dockerignore(t).unwrap()),
        entries: entries.iter().map(|s| s.to_string()).collect(),
    }
}

fn findings_with(
    src: &str,
    context: Option<&ContextInfo>,
    cfg: &CheckConfig,
) -> Vec<check::Warning> {
    let df = parse(src).unwrap_or_else(|e| panic!("{}", e.render(src)));
    check::run(
        &Input {
            df: &df,
            source: src,
            context,
            target: None,
        },
        cfg,
    )
}

fn rules_in(src: &str, context: Option<&ContextInfo>, cfg: &CheckConfig) -> Vec<&'static str> {
    findings_with(src, context, cfg)
        .into_iter()
        .map(|w| w.rule)
        .collect()
}

struct Case {
    rule: &'static str,
    fires: &'static str,
    quiet: &'static str,
    context: Option<(&'static [&'static str], Option<&'static str>)>,
    experimental: bool,
}

const fn case(rule: &'static str, fires: &'static str, quiet: &'static str) -> Case {
    Case {
        rule,
        fires,
        quiet,
        context: None,
        experimental: false,
    }
}

fn cases() -> Vec<Case> {
    vec![
        case(
            "StageNameCasing",
            "FROM a:1 AS Build\n",
            "FROM a:1 AS build\n",
        ),
        case("FromAsCasing", "FROM a:1 as build\n", "FROM a:1 AS build\n"),
        case(
            "NoEmptyContinuation",
            "FROM a:1\nRUN echo a \\\n\n b\n",
            "FROM a:1\nRUN echo a \\\n b\n",
        ),
        case(
            "ConsistentInstructionCasing",
            "FROM a:1\nrun x\nRUN y\nRUN z\n",
            "from a:1\nrun x\n",
        ),
        case(
            "ReservedStageName",
            "FROM a:1 AS context\n",
            "FROM a:1 AS ctx\n",
        ),
        case(
            "JSONArgsRecommended",
            "FROM a:1\nCMD node app.js\n",
            "FROM a:1\nCMD [\"node\", \"app.js\"]\n",
        ),
        case(
            "MaintainerDeprecated",
            "FROM a:1\nMAINTAINER me\n",
            "FROM a:1\nLABEL a=b\n",
        ),
        case(
            "UndefinedArgInFrom",
            "FROM a:$TAG\n",
            "ARG TAG=1\nFROM a:$TAG\n",
        ),
        case(
            "WorkdirRelativePath",
            "FROM a:1\nWORKDIR app\n",
            "FROM a:1\nWORKDIR /app\nWORKDIR sub\n",
        ),
        case(
            "UndefinedVar",
            "FROM a:1\nARG NAME=x\nCOPY $NAEM /x\n",
            "FROM a:1\nARG NAME=x\nENV P=$PATH:/x\nCOPY $NAME ${OPT:-y} /x\nRUN echo $UNDECLARED_IN_SHELL\n",
        ),
        case(
            "MultipleInstructionsDisallowed",
            "FROM a:1\nCMD [\"a\"]\nCMD [\"b\"]\n",
            "FROM a:1\nCMD [\"a\"]\nFROM b:1\nCMD [\"b\"]\n",
        ),
        case(
            "LegacyKeyValueFormat",
            "FROM a:1\nENV A b\n",
            "FROM a:1\nENV A=b\n",
        ),
        case(
            "RedundantTargetPlatform",
            "FROM --platform=$TARGETPLATFORM a:1\n",
            "FROM --platform=$BUILDPLATFORM a:1\n",
        ),
        case(
            "SecretsUsedInArgOrEnv",
            "FROM a:1\nARG GITHUB_TOKEN\n",
            "FROM a:1\nARG PUBLIC_KEY\nARG NODE_VERSION\n",
        ),
        case(
            "InvalidDefaultArgInFrom",
            "ARG TAG\nFROM busybox:$TAG\n",
            "ARG TAG=1.36\nFROM busybox:$TAG\n",
        ),
        case(
            "FromPlatformFlagConstDisallowed",
            "FROM --platform=linux/amd64 a:1\n",
            "FROM --platform=linux/amd64 a:1 AS build-amd64\n",
        ),
        Case {
            context: Some((&["secret.txt"], Some("secret.txt\n"))),
            experimental: true,
            ..case(
                "CopyIgnoredFile",
                "FROM a:1\nCOPY secret.txt /x\n",
                "FROM a:1\nCOPY public.txt /x\n",
            )
        },
        Case {
            experimental: true,
            ..case(
                "InvalidDefinitionDescription",
                "# the builder\nFROM a:1 AS build\n",
                "# build compiles it\nFROM a:1 AS build\n\n# unrelated\n\nARG X\n",
            )
        },
        case(
            "ExposeProtoCasing",
            "FROM a:1\nEXPOSE 80/TCP\n",
            "FROM a:1\nEXPOSE 80/tcp\n",
        ),
        case(
            "ExposeInvalidFormat",
            "FROM a:1\nEXPOSE 8080:80\n",
            "FROM a:1\nARG P\nEXPOSE 80 ${P:-81}\n",
        ),
        case(
            "UnpinnedBaseImage",
            "FROM node\n",
            "ARG T\nFROM platform-${T}\nFROM alpine:3.20\nFROM 1\nFROM node:20.11-slim\nFROM localhost/busybox:latest\nFROM node@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nFROM scratch\n",
        ),
        case(
            "SourceCopiedBeforeDependencyInstall",
            "FROM node:20\nWORKDIR /app\nCOPY . .\nRUN npm ci\n",
            "FROM node:20\nWORKDIR /app\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\nRUN npm run build\n",
        ),
        case(
            "FinalStageRunsAsRoot",
            "FROM node:20\nCMD [\"node\", \"a.js\"]\n",
            "FROM node:20\nUSER node\nCMD [\"node\", \"a.js\"]\nFROM gcr.io/distroless/static:nonroot\nCMD [\"/app\"]\nFROM busybox:1\nRUN true\n",
        ),
        case(
            "AptInstallWithoutCleanup",
            "FROM debian:12\nRUN apt-get update && apt-get install -y curl\n",
            "FROM debian:12 AS build\nRUN apt-get update && apt-get install -y gcc\nFROM debian:12\nRUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*\n",
        ),
        case(
            "ApkAddWithoutNoCache",
            "FROM alpine:3.20\nRUN apk add curl\n",
            "FROM alpine:3.20\nRUN apk add --no-cache curl\nRUN --mount=type=cache,target=/var/cache/apk apk add git\n",
        ),
        case(
            "AddInsteadOfCopy",
            "FROM a:1\nADD app.js /app/\n",
            "FROM a:1\nADD rootfs.tar.gz /\nADD https://example.com/x /x\nADD --checksum=sha256:0123 https://e.com/y /y\n",
        ),
        Case {
            context: Some((&["node_modules/", ".git/", "package.json", "src/"], None)),
            ..case(
                "MissingDockerignore",
                "FROM node:20\nCOPY . .\n",
                "FROM node:20\nCOPY package.json /app/\n",
            )
        },
        case(
            "FatFinalStage",
            "FROM node:20 AS build\nWORKDIR /app\nCOPY package.json .\nRUN npm ci\nCOPY . .\nRUN npm run build\nFROM nginx:1.27\nCOPY --from=build /app /usr/share/nginx/html\n",
            "FROM node:20 AS build\nWORKDIR /app\nCOPY package.json .\nRUN npm ci\nCOPY . .\nRUN npm run build\nFROM nginx:1.27\nCOPY --from=build /app/dist /usr/share/nginx/html\n",
        ),
        case(
            "SecretFileCopied",
            "FROM a:1\nCOPY .env /app/\n",
            "FROM a:1\nCOPY .env.example /app/\nCOPY id_ed25519.pub /k/\n",
        ),
    ]
}

#[test]
fn every_rule_has_a_trigger_and_a_quiet_case() {
    let all = cases();
    for r in RULES {
        // InvalidBaseImagePlatform needs a pulled base image, DuplicateStageName is a parse
        // error in kiln: neither can fire on a parsed Dockerfile alone.
        if matches!(r.name, "InvalidBaseImagePlatform" | "DuplicateStageName") {
            continue;
        }
        assert!(
            all.iter().any(|c| c.rule == r.name),
            "no test case for {}",
            r.name
        );
    }
    for c in &all {
        let context = c.context.map(|(e, i)| ctx(e, i));
        let cfg = if c.experimental {
            CheckConfig::parse("experimental=all").unwrap()
        } else {
            CheckConfig::default()
        };
        let got = rules_in(c.fires, context.as_ref(), &cfg);
        assert!(
            got.contains(&c.rule),
            "{} did not fire on:\n{}\ngot {got:?}",
            c.rule,
            c.fires
        );
        let got = rules_in(c.quiet, context.as_ref(), &cfg);
        assert!(
            !got.contains(&c.rule),
            "{} fired on:\n{}\ngot {got:?}",
            c.rule,
            c.quiet
        );
        if c.experimental {
            let got = rules_in(c.fires, context.as_ref(), &CheckConfig::default());
            assert!(
                !got.contains(&c.rule),
                "experimental {} ran unasked",
                c.rule
            );
        }
    }
}

#[test]
fn messages_match_buildkit() {
    let msg = |src: &str, rule: &str| {
        findings_with(src, None, &CheckConfig::default())
            .into_iter()
            .find(|w| w.rule == rule)
            .unwrap_or_else(|| panic!("{rule} not found"))
            .message
    };
    assert_eq!(
        msg("FROM a:1\nARG NAME=x\nCOPY $NAM /x\n", "UndefinedVar"),
        "Usage of undefined variable '$NAM' (did you mean $NAME?)"
    );
    assert_eq!(
        msg("ARG image=scratch\nFROM $imagee\n", "UndefinedArgInFrom"),
        "FROM argument 'imagee' is not declared (did you mean image?)"
    );
    assert_eq!(
        msg("ARG TAG\nFROM busybox:$TAG\n", "InvalidDefaultArgInFrom"),
        "Default value for ARG busybox:$TAG results in empty or invalid base image name"
    );
    assert_eq!(
        msg("FROM a:1 AS scratch\n", "ReservedStageName"),
        "Stage name should not use the same name as reserved stage \"scratch\""
    );
    assert_eq!(
        msg("FROM a:1\nCMD x\n", "JSONArgsRecommended"),
        "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals"
    );
}

#[test]
fn directive_skips_and_raises() {
    let cfg = |df: &str| CheckConfig::for_dockerfile(&parse(df).unwrap(), None).unwrap();
    let src = "# check=skip=JSONArgsRecommended,UnpinnedBaseImage,FinalStageRunsAsRoot\nFROM a\nCMD x\nMAINTAINER me\n";
    let got = rules_in(src, None, &cfg(src));
    assert_eq!(got, ["MaintainerDeprecated"]);

    let src = "# check=skip=all\nFROM a as B\nCMD x\n";
    assert!(rules_in(src, None, &cfg(src)).is_empty());

    let src = "# check=error=true\nFROM a:1\nCMD x\n";
    let w = findings_with(src, None, &cfg(src));
    assert!(w.iter().any(|w| w.rule == "JSONArgsRecommended"));
    assert!(w.iter().all(|w| w.severity == Severity::Error));

    // The build arg replaces the directive.
    let df = parse("# check=error=true\nFROM a:1\nCMD x\n").unwrap();
    let c = CheckConfig::for_dockerfile(&df, Some("skip=JSONArgsRecommended")).unwrap();
    assert!(!c.error);
    assert_eq!(c.skip, ["JSONArgsRecommended"]);
    assert!(CheckConfig::for_dockerfile(&parse("# check=bogus\nFROM a\n").unwrap(), None).is_err());
}

#[test]
fn the_tutorials_two_dockerfiles() {
    let dir = std::path::Path::new("/work/shared/fixtures/react-app");
    let read = |n: &str| {
        std::fs::read_to_string(dir.join(n))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(n).display()))
    };
    let single = rules_in(&read("Dockerfile.single"), None, &CheckConfig::default());
    assert!(single.contains(&"FatFinalStage"), "{single:?}");
    assert!(single.contains(&"FinalStageRunsAsRoot"), "{single:?}");
    let multi = rules_in(&read("Dockerfile"), None, &CheckConfig::default());
    assert!(!multi.contains(&"FatFinalStage"), "{multi:?}");
}

#[test]
fn fix_is_idempotent_and_keeps_the_plan() {
    let src = "# syntax=docker/dockerfile:1\n# a comment that stays\nfrom busybox:1 as Base\nenv A 1\nENV B \"two words\"\nlabel k v\nRUN echo \\\n  $A   # odd spacing stays\n\nworkdir /app\n";
    let df = parse(src).unwrap();
    let once = fix::fix(src, &df);
    assert!(!once.fixes.is_empty());
    let df1 = parse(&once.text).unwrap();
    let twice = fix::fix(&once.text, &df1);
    assert_eq!(twice.text, once.text, "fixing twice changed the text");
    assert!(twice.fixes.is_empty(), "{:?}", twice.fixes);
    // Comments and the continued RUN are untouched.
    assert!(once.text.contains("# a comment that stays\n"));
    assert!(
        once.text
            .contains("run echo \\\n  $A   # odd spacing stays\n\n")
    );
    // No casing or legacy findings are left.
    let left = rules_in(&once.text, None, &CheckConfig::default());
    for r in [
        "ConsistentInstructionCasing",
        "FromAsCasing",
        "LegacyKeyValueFormat",
    ] {
        assert!(
            !left.contains(&r),
            "{r} left after --fix: {left:?}\n{}",
            once.text
        );
    }
    // The same build: every stage's expanded instructions are equal.
    let a = analyze(&df, EvalOptions::default(), None).unwrap();
    let b = analyze(&df1, EvalOptions::default(), None).unwrap();
    assert_eq!(a.stages.len(), b.stages.len());
    for (sa, sb) in a.stages.iter().zip(&b.stages) {
        assert_eq!(sa.from, sb.from);
        let norm = |s: &kiln_dockerfile::StageAnalysis| {
            s.instructions
                .iter()
                .map(|e| {
                    let mut c = serde_json::to_value(&e.instruction.command).unwrap();
                    strip_legacy(&mut c);
                    c
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(norm(sa), norm(sb));
    }
}

/// The `legacy` flag records how a pair was written, not what it means.
fn strip_legacy(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("legacy");
            m.values_mut().for_each(strip_legacy);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_legacy),
        _ => {}
    }
}

#[test]
fn sarif_has_the_required_structure() {
    let src = "FROM a\nCMD x\n";
    let w = findings_with(src, None, &CheckConfig::default());
    let s = check::sarif::render(&[("app/Dockerfile", &w)]);
    assert_eq!(s["version"], "2.1.0");
    let run = &s["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "kiln");
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), w.len());
    for r in results {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(run["tool"]["driver"]["rules"][idx]["id"], r["ruleId"]);
        let loc = &r["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "app/Dockerfile");
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
    }
}

#[test]
fn source_before_install_fires_only_where_the_manifest_was_not_installed_first() {
    let fires = |src: &str| {
        rules_in(src, None, &CheckConfig::default())
            .contains(&"SourceCopiedBeforeDependencyInstall")
    };
    // The manifest copied and installed first; the later `npm ci --omit=dev` prunes.
    assert!(!fires(
        "FROM node:20\nWORKDIR /app\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\nRUN npm run build\nRUN npm ci --omit=dev\n"
    ));
    // Installing the project itself needs its sources.
    assert!(!fires(
        "FROM python:3.12\nWORKDIR /app\nCOPY . .\nRUN pip install .\n"
    ));
    assert!(!fires(
        "FROM python:3.12\nWORKDIR /app\nCOPY . .\nRUN pip install --no-cache-dir -e .\n"
    ));
    // A global tool install reads no manifest: nothing to say.
    assert!(!fires(
        "FROM node:20\nCOPY . /app\nRUN npm install -g pm2\n"
    ));
    assert!(!fires(
        "FROM node:20\nCOPY . /app\nRUN npm i --global pm2 && pnpm add -g x\n"
    ));
    // Still fires where it should.
    assert!(fires(
        "FROM python:3.12\nCOPY . .\nRUN pip install -r requirements.txt\n"
    ));
    assert!(fires(
        "FROM python:3.12\nCOPY . .\nRUN pip install -r requirements.txt .\n"
    ));
    assert!(fires(
        "FROM node:20\nCOPY . /app\nRUN npm install -g pm2 && npm ci\n"
    ));
    assert!(fires(
        "FROM node:20\nWORKDIR /app\nCOPY . .\nRUN npm ci\nRUN npm ci --omit=dev\n"
    ));
    // Once per stage.
    let n = rules_in(
        "FROM node:20\nCOPY . .\nRUN npm ci\nRUN npm ci --omit=dev\n",
        None,
        &CheckConfig::default(),
    )
    .iter()
    .filter(|r| **r == "SourceCopiedBeforeDependencyInstall")
    .count();
    assert_eq!(n, 1);
}

#[test]
fn secret_file_copied_looks_inside_copied_directories_and_counts_the_rest() {
    let msg = |src: &str, c: &ContextInfo| {
        findings_with(src, Some(c), &CheckConfig::default())
            .into_iter()
            .find(|w| w.rule == "SecretFileCopied")
            .map(|w| w.message)
    };
    let c = ctx(
        &[
            "config/",
            "config/app.yaml",
            "config/.env.production",
            "src/",
            "src/.env",
        ],
        None,
    );
    assert_eq!(
        msg("FROM a:1\nCOPY config/ /app/config/\n", &c).as_deref(),
        Some(
            "COPY copies 'config/.env.production' into the image, where anyone with the image can read it"
        )
    );
    assert_eq!(
        msg("FROM a:1\nCOPY ./config /app/config\n", &c).as_deref(),
        Some(
            "COPY copies 'config/.env.production' into the image, where anyone with the image can read it"
        )
    );
    // Another directory, or one the .dockerignore covers: nothing.
    assert_eq!(msg("FROM a:1\nCOPY src/app.js /app/\n", &c), None);
    let ignored = ctx(&["config/", "config/.env.production"], Some("**/.env*\n"));
    assert_eq!(msg("FROM a:1\nCOPY config/ /app/config/\n", &ignored), None);

    // Truncated lists say how many more, with the right plural.
    let many = ctx(
        &[".env", "a/", "a/.env", "b/", "b/.env", "c/", "c/id_rsa"],
        None,
    );
    assert_eq!(
        msg("FROM a:1\nCOPY . .\n", &many).as_deref(),
        Some(
            "COPY copies '.env', 'a/.env', 'b/.env' and 1 more file into the image, where anyone with the image can read it"
        )
    );
    let more = ctx(
        &[
            ".env", "a/", "a/.env", "b/", "b/.env", "c/", "c/id_rsa", "d/", "d/.netrc",
        ],
        None,
    );
    assert!(
        msg("FROM a:1\nCOPY . .\n", &more)
            .unwrap()
            .contains("'b/.env' and 2 more files into")
    );
}
