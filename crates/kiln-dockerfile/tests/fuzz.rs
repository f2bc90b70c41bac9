//! Bounded fuzzing of the whole front end on stable Rust: parse, error rendering, checks,
//! evaluation (ARG/ENV scoping, word expansion, mounts), the stage graph and its renderings.
//! No input may panic. Inputs are mutations of real Dockerfiles (the corpus, the examples and
//! the conformance cases) and sequences of Dockerfile tokens; the word lexer is fuzzed alone.
//! `KILN_FUZZ_CASES=100000 cargo test --release -p kiln-dockerfile --test fuzz` runs longer.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::manifest_dir;
use kiln_dockerfile::expand::{LexOptions, Lexer};
use kiln_dockerfile::{
    EvalOptions, Evaluator, StageGraph, analyze, check, dump, parse, parse_onbuild_triggers,
    render_dot, render_json, render_mermaid,
};
use kiln_test::fuzz::{self, Rng};

/// Every Dockerfile the repository and the shared conformance suite hold.
fn corpus() -> Vec<Vec<u8>> {
    let root = manifest_dir().join("../..");
    let shared = std::env::var_os("SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared"));
    let mut files = Vec::new();
    let mut walk = vec![
        manifest_dir().join("tests/fixtures"),
        root.join("examples"),
        root.join("tests/conformance"),
        shared.join("conformance/cases"),
    ];
    while let Some(dir) = walk.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue; // the shared cases are required by golden.rs, not here
        };
        for e in entries {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                walk.push(p);
            } else if name == "Dockerfile" || name.ends_with(".Dockerfile") {
                files.push(std::fs::read(&p).unwrap());
            }
        }
    }
    files.sort();
    assert!(files.len() >= 40, "only {} Dockerfiles found", files.len());
    files
}

/// Tokens that steer mutations into the grammar's corners.
const DICT: &[&[u8]] = &[
    b"\nFROM ",
    b"\nRUN ",
    b"\nCOPY ",
    b"\nADD ",
    b"\nARG ",
    b"\nENV ",
    b"\nONBUILD ",
    b"\nHEALTHCHECK ",
    b"\nSHELL ",
    b"\nCMD ",
    b"\nENTRYPOINT ",
    b"\nUSER ",
    b"\nWORKDIR ",
    b"\nEXPOSE ",
    b"\nVOLUME ",
    b"\nLABEL ",
    b"\nSTOPSIGNAL ",
    b"\nMAINTAINER ",
    b" AS ",
    b"${",
    b"}",
    b"$",
    b":-",
    b":+",
    b"#",
    b"%%",
    b"//",
    b"\\\n",
    b"`\n",
    b"<<EOF\n",
    b"\nEOF\n",
    b"<<-'X'\n",
    b"\nX\n",
    b"[\"",
    b"\"]",
    b"\", \"",
    b"--mount=",
    b"type=cache,",
    b"target=",
    b"from=",
    b"--from=",
    b"--chown=",
    b"--chmod=",
    b"--link",
    b"--platform=",
    b"--network=",
    b"--security=",
    b"--parents",
    b"--exclude=",
    b"--checksum=",
    b"--keep-git-dir",
    b"# syntax=docker/dockerfile:1\n",
    b"# escape=`\n",
    b"# check=skip=all\n",
    b"=",
    b"\"",
    b"'",
    b"\t",
    b"\r\n",
    b"\xef\xbb\xbf",
    b"0",
    b"-1",
    b"99999999999999999999",
    b"$BUILDPLATFORM",
    b"${TARGETARCH}",
    b"--interval=",
    b"1h2m3s",
    b"NONE",
];

/// Runs everything the front end does with a Dockerfile; panics only if kiln does.
fn front_end(src: &str) {
    let df = match parse(src) {
        Ok(df) => df,
        Err(e) => {
            assert!(!e.render(src).is_empty(), "an error renders as nothing");
            return;
        }
    };
    // Parsing is a function of the text.
    assert_eq!(dump(&df), dump(&parse(src).unwrap()));
    for w in check::check(&df) {
        let _ = w.render("Dockerfile", src);
    }
    let mut args = BTreeMap::new();
    args.insert("A".to_string(), "x${B}y".to_string());
    args.insert("TARGETARCH".to_string(), "arm64".to_string());
    for opts in [
        EvalOptions::default(),
        EvalOptions {
            build_args: args,
            ..EvalOptions::default()
        },
    ] {
        if let Err(e) = analyze(&df, opts.clone(), None) {
            let _ = e.render(src);
        }
        let Ok(ev) = Evaluator::new(&df, opts) else {
            continue;
        };
        for st in &df.stages {
            let _ = ev.resolve_from(st);
            let mut se = ev.stage(&[]);
            for ins in &st.instructions {
                if let Err(e) = se.expand_instruction(ins) {
                    let _ = e.render(src);
                }
            }
            let _ = (se.args(), se.run_env());
        }
        let target = df.stages.first().and_then(|s| s.name.clone());
        for t in [None, target.as_deref(), Some("nosuch")] {
            if let Ok(g) = StageGraph::build(&df, &ev, t) {
                let _ = (render_mermaid(&g), render_dot(&g), render_json(&g));
            }
        }
    }
    // Lines of the file, read back as ONBUILD triggers (as a base image's config stores them).
    let lines: Vec<String> = src.lines().take(8).map(str::to_string).collect();
    if let Err(e) = parse_onbuild_triggers(&lines) {
        let _ = e.render(src);
    }
}

#[test]
fn mutated_dockerfiles_never_panic() {
    let corpus = corpus();
    let mut parsed = 0;
    fuzz::run(
        "dockerfile-mutations",
        20000,
        |rng| {
            let mut d = rng.pick(&corpus).clone();
            for _ in 0..1 + rng.below(3) {
                fuzz::mutate(rng, &mut d, &corpus, DICT);
            }
            String::from_utf8_lossy(&d).into_owned()
        },
        |src| {
            parsed += usize::from(parse(src).is_ok());
            front_end(src)
        },
    );
    assert!(
        parsed > fuzz::cases(20000) / 10,
        "only {parsed} mutants parsed"
    );
}

/// Lines built from instruction keywords, flags and words, so most inputs parse and reach
/// evaluation and the graph.
fn token_dockerfile(rng: &mut Rng) -> String {
    const KEYWORDS: &[&str] = &[
        "FROM",
        "RUN",
        "COPY",
        "ADD",
        "ARG",
        "ENV",
        "ONBUILD",
        "HEALTHCHECK",
        "SHELL",
        "CMD",
        "ENTRYPOINT",
        "USER",
        "WORKDIR",
        "EXPOSE",
        "VOLUME",
        "LABEL",
        "STOPSIGNAL",
        "from",
        "run",
    ];
    const WORDS: &[&str] = &[
        "a",
        "b",
        "scratch",
        "busybox",
        "AS",
        "x",
        "/",
        "/app",
        ".",
        "..",
        "*",
        "$A",
        "${A}",
        "${A:-d}",
        "${A:+s}",
        "${A#*/}",
        "${A%%.*}",
        "${A/x/y}",
        "$1",
        "\"q w\"",
        "'s $A'",
        "A=1",
        "B=$A",
        "A",
        "[\"sh\",\"-c\"]",
        "[\"x\"",
        "\\",
        "--from=0",
        "--from=b",
        "--mount=type=bind,from=a,target=/m",
        "--mount=type=cache,target=/c,id=$A",
        "--mount=type=secret,id=s",
        "--mount=type=ssh",
        "--mount=type=tmpfs,target=/t",
        "--chown=1:1",
        "--chmod=755",
        "--link",
        "--platform=$BUILDPLATFORM",
        "--network=none",
        "--interval=5s",
        "NONE",
        "80/tcp",
        "<<EOF",
        "EOF",
        "#",
        "&&",
        "echo",
        "|",
        "1:2",
    ];
    let mut s = String::new();
    if rng.one_in(4) {
        s.push_str(rng.pick::<&str>(&[
            "# escape=`\n",
            "# syntax=x\n",
            "ARG A=1\n",
            "# check=error=true\n",
        ]));
    }
    s.push_str(rng.pick::<&str>(&["FROM busybox AS a\n", "FROM scratch\n", "FROM $A AS b\n"]));
    for _ in 0..1 + rng.below(6) {
        s.push_str(rng.pick::<&str>(KEYWORDS));
        for _ in 0..1 + rng.below(4) {
            s.push(' ');
            s.push_str(rng.pick::<&str>(WORDS));
        }
        s.push_str(rng.pick::<&str>(&["\n", "\n", "\n", " \\\n", "\r\n", "\nEOF\n"]));
    }
    s
}

#[test]
fn token_dockerfiles_never_panic() {
    let mut parsed = 0;
    fuzz::run("dockerfile-tokens", 20000, token_dockerfile, |src| {
        parsed += usize::from(parse(src).is_ok());
        front_end(src)
    });
    // The generator must reach past the parser, or the test checks little.
    assert!(
        parsed > fuzz::cases(20000) / 20,
        "only {parsed} token files parsed"
    );
}

#[test]
fn word_expansion_never_panics() {
    const PIECES: &[&str] = &[
        "$",
        "{",
        "}",
        "A",
        "B",
        "_",
        "1",
        ":",
        "-",
        "+",
        "?",
        "#",
        "%",
        "/",
        "//",
        "*",
        "'",
        "\"",
        "\\",
        "`",
        " ",
        "\t",
        "\n",
        "x",
        "é",
        "\u{FEFF}",
        "${A}",
        "${A:-${B}}",
        "$@",
        "$*",
    ];
    let env: BTreeMap<String, String> = [("A", "a b"), ("B", ""), ("C", "${A}")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    fuzz::run(
        "word-expansion",
        50000,
        |rng| {
            let word = rng.string_from(PIECES, 24);
            let opts = LexOptions {
                raw_quotes: rng.one_in(2),
                raw_escapes: rng.one_in(2),
                skip_unset_env: rng.one_in(2),
                skip_process_quotes: rng.one_in(3),
            };
            (word, *rng.pick(&['\\', '`']), opts)
        },
        |(word, escape, opts)| {
            let lexer = Lexer::new(*escape);
            let one = lexer.process_word_with(word, &env, opts);
            let many = lexer.process_words_with(word, &env, opts);
            // Both lexers see the same syntax: one fails exactly when the other does.
            assert_eq!(one.is_err(), many.is_err(), "{one:?} vs {many:?}");
        },
    );
}
