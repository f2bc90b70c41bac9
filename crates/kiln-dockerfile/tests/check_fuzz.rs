//! Bounded fuzzing of the build checks and `--fix` on mutated real Dockerfiles (the examples,
//! the conformance cases, the tutorial's): no input may panic, and fixing a fixed file changes
//! nothing. `KILN_FUZZ_CASES=N` runs more.

use kiln_dockerfile::check::{self, CheckConfig, ContextInfo, Input, fix};
use kiln_dockerfile::dockerignore::PatternSet;
use kiln_dockerfile::parse;
use kiln_test::fuzz::{self, Rng};

fn corpus() -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    let mut walk = vec![
        root.join("examples"),
        root.join("tests/conformance"),
        root.join("../shared/conformance/cases"),
        root.join("../shared/fixtures/react-app"),
    ];
    while let Some(dir) = walk.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk.push(p);
            } else if p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("Dockerfile"))
            {
                files.push(std::fs::read(&p).unwrap());
            }
        }
    }
    assert!(
        files.len() >= 20,
        "too few Dockerfiles found: {}",
        files.len()
    );
    files
}

const DICT: &[&[u8]] = &[
    b"FROM ",
    b"from ",
    b" AS ",
    b" as ",
    b"COPY . .\n",
    b"COPY --from=0 / /\n",
    b"RUN npm ci\n",
    b"RUN npm run build\n",
    b"RUN apt-get install -y x\n",
    b"RUN apk add x\n",
    b"USER root\n",
    b"USER 0\n",
    b"CMD x y\n",
    b"ENTRYPOINT a\n",
    b"ENV A b\n",
    b"LABEL a b c\n",
    b"MAINTAINER \"x\"\n",
    b"ADD a b\n",
    b"COPY .env /\n",
    b"WORKDIR app\n",
    b"${A:-",
    b"$",
    b"}",
    b"\\\n",
    b"# check=skip=all;error=true\n",
    b"ARG A\n",
    b"EXPOSE 80:80/TCP\n",
    b"\xef\xbb\xbf",
    b"\r\n",
    b"`",
    b"\"",
    b"'",
];

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> String {
    let mut d = rng.pick(corpus).clone();
    for _ in 0..1 + rng.below(3) {
        fuzz::mutate(rng, &mut d, corpus, DICT);
    }
    String::from_utf8_lossy(&d).into_owned()
}

#[test]
fn checks_and_fix_never_panic_and_fix_is_idempotent() {
    let corpus = corpus();
    let ctx = ContextInfo {
        dockerignore: Some(
            PatternSet::parse_dockerignore("node_modules\n*.md\n!README.md\n").unwrap(),
        ),
        entries: [
            "node_modules/",
            ".git/",
            "package.json",
            ".env",
            "src/",
            "id_rsa",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    };
    let all = CheckConfig::parse("experimental=all").unwrap();
    let mut parsed = 0usize;
    fuzz::run(
        "check-and-fix",
        5000,
        |rng| mutate(rng, &corpus),
        |src| {
            let Ok(df) = parse(src) else {
                return;
            };
            parsed += 1;
            for target in [None, Some("build"), Some("nope")] {
                let input = Input {
                    df: &df,
                    source: src,
                    context: Some(&ctx),
                    target,
                };
                for w in check::run(&input, &all) {
                    let _ = w.render("Dockerfile", src);
                    let _ = w.short();
                }
            }
            let once = fix::fix(src, &df);
            if let Ok(df1) = parse(&once.text) {
                let twice = fix::fix(&once.text, &df1);
                assert_eq!(twice.text, once.text, "fix is not idempotent");
            }
            let ws = check::check(&df);
            let _ = check::sarif::render(&[("Dockerfile", &ws)]);
        },
    );
    assert!(
        parsed > fuzz::cases(5000) / 10,
        "only {parsed} mutants parsed"
    );
}
