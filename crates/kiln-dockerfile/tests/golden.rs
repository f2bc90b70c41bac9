//! Golden cases: tests/fixtures/ok/<case>/Dockerfile → `expected.txt` (dump + check warnings);
//! tests/fixtures/err/<case>/Dockerfile → `expected.txt` (the rendered first error of parse,
//! evaluation or graph). KILN_BLESS=1 rewrites the expected files. Also: every corpus file and
//! every shared conformance case parses, evaluates and graphs.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_golden, manifest_dir};
use kiln_dockerfile::*;

fn cases(kind: &str) -> Vec<std::path::PathBuf> {
    let dir = manifest_dir().join("tests/fixtures").join(kind);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    v.sort();
    v
}

fn full(src: &str) -> Result<Analysis, Error> {
    let df = parse(src)?;
    analyze(&df, EvalOptions::default(), None)
}

#[test]
fn ok_cases() {
    let all = cases("ok");
    assert!(all.len() >= 5);
    for case in all {
        let src = std::fs::read_to_string(case.join("Dockerfile")).unwrap();
        let df = parse(&src).unwrap_or_else(|e| panic!("{}: {}", case.display(), e.render(&src)));
        full(&src).unwrap_or_else(|e| panic!("{}: {}", case.display(), e.render(&src)));
        let mut got = dump(&df);
        for w in check::check(&df) {
            got.push_str(&format!(
                "check {} {}:{}: {}\n",
                w.rule, w.span.line, w.span.col, w.message
            ));
        }
        assert_golden(&case.join("expected.txt"), &got);
    }
}

#[test]
fn err_cases() {
    let all = cases("err");
    assert!(all.len() >= 15);
    for case in all {
        let src = std::fs::read_to_string(case.join("Dockerfile")).unwrap();
        let e = match full(&src) {
            Ok(_) => panic!("{}: expected an error", case.display()),
            Err(e) => e,
        };
        assert_golden(&case.join("expected.txt"), &e.render(&src));
    }
}

fn parses_fully(path: &Path) {
    let src = std::fs::read_to_string(path).unwrap();
    let df = parse(&src).unwrap_or_else(|e| panic!("{}:\n{}", path.display(), e.render(&src)));
    // Platform cases (a `.platform` file) take their base image as BASE, as the scripts pass it.
    let mut opts = EvalOptions::default();
    if path.with_file_name(".platform").exists() {
        opts.build_args
            .insert("BASE".into(), "localhost/busybox-mp:latest".into());
    }
    analyze(&df, opts, None).unwrap_or_else(|e| panic!("{}:\n{}", path.display(), e.render(&src)));
    let _ = check::check(&df);
}

#[test]
fn corpus_parses() {
    let dir = manifest_dir().join("tests/fixtures/corpus");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "Dockerfile") {
            parses_fully(&p);
            n += 1;
        }
    }
    assert!(n >= 20, "corpus has {n} files");
}

#[test]
fn examples_parse() {
    for name in ["tutorial", "parallel", "platform"] {
        parses_fully(
            &manifest_dir()
                .join("../../examples")
                .join(name)
                .join("Dockerfile"),
        );
    }
}

/// The differential cases, shared (`$SHARED`, else `shared/` beside the checkout, as
/// scripts/conformance.sh finds them) and the project's own: every one parses.
#[test]
fn conformance_cases_parse() {
    let shared = std::env::var_os("SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../../../shared"));
    for dir in [
        shared.join("conformance/cases"),
        manifest_dir().join("../../tests/conformance"),
    ] {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: the conformance cases are missing (CI checks out shared/ beside the \
                 kiln checkout; elsewhere set SHARED to its path)",
                dir.display()
            )
        });
        let mut n = 0;
        for e in entries {
            let p = e.unwrap().path().join("Dockerfile");
            if p.is_file() {
                parses_fully(&p);
                n += 1;
            }
        }
        assert!(n > 0, "no case in {}", dir.display());
    }
}
