//! `.dockerignore` matching: moby/patternmatcher's and ignorefile's test tables, Go's
//! `filepath.Match` cases, the shared conformance case, directory skipping, and a randomized
//! sweep for panics and for the one-pass parent matching.

use kiln_dockerfile::dockerignore::{DirMatches, PatternSet, clean};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dockerignore");

/// Go's `filepath.Dir` for `/` paths.
fn go_dir(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => clean(&path[..=i]),
        None => ".".to_owned(),
    }
}

/// Walk from the root to `path` the way BuildKit's walker does, handing each directory's
/// state to the next (patternmatcher's `MatchesUsingParentResults` test helper).
fn walk_to(set: &PatternSet, path: &str) -> bool {
    let dir = go_dir(path);
    let mut state = DirMatches::default();
    if dir != "." {
        let parts: Vec<&str> = dir.split('/').collect();
        for i in 0..parts.len() {
            state = set.dir_matches(&parts[..=i].join("/"), &state).1;
        }
    }
    set.is_excluded_in(path, &state)
}

/// patternmatcher `TestMatches`: (pattern, path, excluded).
const SINGLE: &[(&str, &str, bool)] = &[
    ("**", "file", true),
    ("**", "file/", true),
    ("**/", "file", true),
    ("**/", "file/", true),
    ("**", "/", true),
    ("**/", "/", true),
    ("**", "dir/file", true),
    ("**/", "dir/file", true),
    ("**", "dir/file/", true),
    ("**/", "dir/file/", true),
    ("**/**", "dir/file", true),
    ("**/**", "dir/file/", true),
    ("dir/**", "dir/file", true),
    ("dir/**", "dir/file/", true),
    ("dir/**", "dir/dir2/file", true),
    ("dir/**", "dir/dir2/file/", true),
    ("**/dir", "dir", true),
    ("**/dir", "dir/file", true),
    ("**/dir2/*", "dir/dir2/file", true),
    ("**/dir2/*", "dir/dir2/file/", true),
    ("**/dir2/**", "dir/dir2/dir3/file", true),
    ("**/dir2/**", "dir/dir2/dir3/file/", true),
    ("**file", "file", true),
    ("**file", "dir/file", true),
    ("**/file", "dir/file", true),
    ("**file", "dir/dir/file", true),
    ("**/file", "dir/dir/file", true),
    ("**/file*", "dir/dir/file", true),
    ("**/file*", "dir/dir/file.txt", true),
    ("**/file*txt", "dir/dir/file.txt", true),
    ("**/file*.txt", "dir/dir/file.txt", true),
    ("**/file*.txt*", "dir/dir/file.txt", true),
    ("**/**/*.txt", "dir/dir/file.txt", true),
    ("**/**/*.txt2", "dir/dir/file.txt", false),
    ("**/*.txt", "file.txt", true),
    ("**/**/*.txt", "file.txt", true),
    ("a**/*.txt", "a/file.txt", true),
    ("a**/*.txt", "a/dir/file.txt", true),
    ("a**/*.txt", "a/dir/dir/file.txt", true),
    ("a/*.txt", "a/dir/file.txt", false),
    ("a/*.txt", "a/file.txt", true),
    ("a/*.txt**", "a/file.txt", true),
    ("a[b-d]e", "ae", false),
    ("a[b-d]e", "ace", true),
    ("a[b-d]e", "aae", false),
    ("a[^b-d]e", "aze", true),
    (".*", ".foo", true),
    (".*", "foo", false),
    ("abc.def", "abcdef", false),
    ("abc.def", "abc.def", true),
    ("abc.def", "abcZdef", false),
    ("abc?def", "abcZdef", true),
    ("abc?def", "abcdef", false),
    ("a\\\\", "a\\", true),
    ("**/foo/bar", "foo/bar", true),
    ("**/foo/bar", "dir/foo/bar", true),
    ("**/foo/bar", "dir/dir2/foo/bar", true),
    ("abc/**", "abc", false),
    ("abc/**", "abc/def", true),
    ("abc/**", "abc/def/ghi", true),
    ("**/.foo", ".foo", true),
    ("**/.foo", "bar.foo", false),
    ("a(b)c/def", "a(b)c/def", true),
    ("a(b)c/def", "a(b)c/xyz", false),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        true,
    ),
    (
        "dist/*.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        true,
    ),
    ("a\\*b", "a*b", true),
];

const MULTI: &[(&[&str], &str, bool)] = &[
    (&["**", "!util/docker/web"], "util/docker/web/foo", false),
    (
        &["**", "!util/docker/web", "util/docker/web/foo"],
        "util/docker/web/foo",
        true,
    ),
    (
        &[
            "**",
            "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        ],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        false,
    ),
    (
        &["**", "!dist/*.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        false,
    ),
];

#[test]
fn patternmatcher_single_pattern_table() {
    for &(pattern, path, excluded) in SINGLE {
        let set = PatternSet::new(&[pattern]).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(
            set.is_excluded(path),
            excluded,
            "is_excluded {pattern:?} {path:?}"
        );
        assert_eq!(walk_to(&set, path), excluded, "walk {pattern:?} {path:?}");
        assert_eq!(
            set.is_excluded_in(path, &DirMatches::default()),
            excluded,
            "no context {pattern:?} {path:?}"
        );
    }
}

#[test]
fn patternmatcher_multi_pattern_table() {
    for &(patterns, path, excluded) in MULTI {
        let set = PatternSet::new(patterns).unwrap();
        assert_eq!(set.is_excluded(path), excluded, "{patterns:?} {path:?}");
        assert_eq!(walk_to(&set, path), excluded, "walk {patterns:?} {path:?}");
    }
}

/// The small tests at the top of patternmatcher_test.go.
#[test]
fn patternmatcher_basics() {
    let excluded =
        |patterns: &[&str], path: &str| PatternSet::new(patterns).unwrap().is_excluded(path);
    assert!(excluded(&["*"], "fileutils.go"));
    assert!(excluded(&["*.go"], "fileutils.go"));
    assert!(excluded(&["!fileutils.go", "*.go"], "fileutils.go"));
    assert!(!excluded(&["docs", "!docs/README.md"], "docs/README.md"));
    assert!(!excluded(&["docs/", "!docs/README.md"], "docs/README.md"));
    assert!(!excluded(&["docs/*", "!docs/README.md"], "docs/README.md"));
    assert!(!excluded(&["*.go", "!fileutils.go"], "fileutils.go"));
    assert!(!excluded(&[], "any/path/there"));
    assert!(PatternSet::new(&["!"]).is_err());
    assert!(PatternSet::new(&["["]).is_err());

    // Cleaning: empty patterns dropped, spaces trimmed around `!`.
    let set = PatternSet::new(&["docs", "config", ""]).unwrap();
    assert_eq!(set.patterns().count(), 2);
    for patterns in [
        ["docs", "!docs/README.md"],
        ["docs", "  !docs/README.md"],
        ["docs", "!docs/README.md  "],
    ] {
        let set = PatternSet::new(&patterns).unwrap();
        assert!(set.has_exceptions(), "{patterns:?}");
        assert_eq!(
            set.patterns().collect::<Vec<_>>(),
            [("docs", false), ("docs/README.md", true)]
        );
    }
}

/// Go's `filepath.Match` cases as patternmatcher's `TestMatch` runs them:
/// (pattern, path, excluded, bad pattern).
#[test]
fn go_filepath_match_table() {
    let cases: &[(&str, &str, bool, bool)] = &[
        ("abc", "abc", true, false),
        ("*", "abc", true, false),
        ("*c", "abc", true, false),
        ("a*", "a", true, false),
        ("a*", "abc", true, false),
        ("a*", "ab/c", true, false),
        ("a*/b", "abc/b", true, false),
        ("a*/b", "a/c/b", false, false),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", true, false),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true, false),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false, false),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false, false),
        ("a*b?c*x", "abxbbxdbxebxczzx", true, false),
        ("a*b?c*x", "abxbbxdbxebxczzy", false, false),
        ("ab[c]", "abc", true, false),
        ("ab[b-d]", "abc", true, false),
        ("ab[e-g]", "abc", false, false),
        ("ab[^c]", "abc", false, false),
        ("ab[^b-d]", "abc", false, false),
        ("ab[^e-g]", "abc", true, false),
        ("a\\*b", "a*b", true, false),
        ("a\\*b", "ab", false, false),
        ("a?b", "a☺b", true, false),
        ("a[^a]b", "a☺b", true, false),
        ("a???b", "a☺b", false, false),
        ("a[^a][^a][^a]b", "a☺b", false, false),
        ("[a-ζ]*", "α", true, false),
        ("*[a-ζ]", "A", false, false),
        ("a?b", "a/b", false, false),
        ("a*b", "a/b", false, false),
        ("[\\]a]", "]", true, false),
        ("[\\-]", "-", true, false),
        ("[x\\-]", "x", true, false),
        ("[x\\-]", "-", true, false),
        ("[x\\-]", "z", false, false),
        ("[\\-x]", "x", true, false),
        ("[\\-x]", "-", true, false),
        ("[\\-x]", "a", false, false),
        ("[]a]", "]", false, true),
        ("[-]", "-", false, true),
        ("[x-]", "x", false, true),
        ("[x-]", "-", false, true),
        ("[x-]", "z", false, true),
        ("[-x]", "x", false, true),
        ("[-x]", "-", false, true),
        ("[-x]", "a", false, true),
        ("\\", "a", false, true),
        ("[a-b-c]", "a", false, true),
        ("[", "a", false, true),
        ("[^", "a", false, true),
        ("[^bc", "a", false, true),
        ("a[", "a", false, true),
        ("a[", "ab", false, true),
        ("*x", "xxx", true, false),
    ];
    for &(pattern, path, excluded, bad) in cases {
        match PatternSet::new(&[pattern]) {
            Ok(set) => {
                assert!(!bad, "{pattern:?} should be rejected");
                assert_eq!(set.is_excluded(path), excluded, "{pattern:?} {path:?}");
            }
            Err(e) => {
                assert!(bad, "{pattern:?} rejected: {e}");
                assert_eq!(e.line, 1);
                assert!(e.message.contains("syntax error in pattern"), "{e}");
            }
        }
    }
}

#[test]
fn bracket_classes_follow_go_regexp() {
    let set = PatternSet::new(&["[!a]b"]).unwrap();
    // `!` is no negation in Go: the class is `!` or `a`.
    assert!(set.is_excluded("!b"));
    assert!(set.is_excluded("ab"));
    assert!(!set.is_excluded("cb"));
    let set = PatternSet::new(&["file[0-9].txt"]).unwrap();
    assert!(set.is_excluded("file7.txt"));
    assert!(!set.is_excluded("fileA.txt"));
    assert!(!set.is_excluded("sub/file7.txt"));
    // patternmatcher turns `*` inside a class into regexp text; Go then reads `[a[^/]*]` as
    // the class {a [ ^ /} repeated, then a literal `]`.
    let set = PatternSet::new(&["[a*]"]).unwrap();
    assert!(set.is_excluded("aa]"));
    assert!(set.is_excluded("]"));
    assert!(!set.is_excluded("a"));
    // A Go glob class that becomes an invalid regexp (reversed range) is rejected up front
    // (Docker fails later, at the first match: moby/moby#52203).
    let e = PatternSet::new(&["ok", "[Local-Only]/"]).unwrap_err();
    assert_eq!(e.line, 2);
}

/// ignorefile's `TestReadAll`, plus where its `!` lines fail.
#[test]
fn dockerignore_reader() {
    let text =
        "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n";
    let set = PatternSet::parse_dockerignore(text).unwrap();
    assert_eq!(
        set.patterns().collect::<Vec<_>>(),
        [
            ("test1", false),
            ("test2", false),
            ("a/file/here", false),
            ("lastfile", false),
            ("inverted/abs/path", true),
        ]
    );
    let e = PatternSet::parse_dockerignore(&format!("{text}!\n! ")).unwrap_err();
    assert_eq!(e.line, 8);
    assert_eq!(e.message, "illegal exclusion pattern: \"!\"");
    assert!(PatternSet::parse_dockerignore("").unwrap().is_empty());
}

#[test]
fn dockerignore_line_rules() {
    let text = "\u{FEFF}./a/../b/\r\n  # not a comment\n#comment\n\t\n/c//d/.\n!./e\n../f\n/\n";
    let set = PatternSet::parse_dockerignore(text).unwrap();
    assert_eq!(
        set.patterns().collect::<Vec<_>>(),
        [
            ("b", false),
            ("# not a comment", false),
            ("c/d", false),
            ("e", true),
            ("../f", false),
            ("/", false),
        ]
    );
    assert!(set.is_excluded("b/x"));
    assert!(set.is_excluded("# not a comment"));
    assert!(set.is_excluded("c/d/e"));
    assert!(!set.is_excluded("c"));
}

#[test]
fn errors_name_the_line() {
    let e = PatternSet::parse_dockerignore("a\n# c\n\nb[\n").unwrap_err();
    assert_eq!(e.line, 4);
    assert_eq!(
        e.to_string(),
        "line 4: invalid pattern \"b[\": syntax error in pattern"
    );
    let e = PatternSet::new(&["ok", "also*ok", "bad\\"]).unwrap_err();
    assert_eq!(e.line, 3);
}

#[test]
fn anchored_at_the_root_and_last_match_wins() {
    let set = PatternSet::new(&[
        "*.log",
        "!important.log",
        "build",
        "!build/keep",
        "build/keep/tmp",
    ])
    .unwrap();
    assert!(set.is_excluded("app.log"));
    assert!(!set.is_excluded("logs/app.log"));
    assert!(!set.is_excluded("important.log"));
    assert!(set.is_excluded("build"));
    assert!(set.is_excluded("build/out.o"));
    assert!(!set.is_excluded("build/keep"));
    assert!(!set.is_excluded("build/keep/a"));
    assert!(set.is_excluded("build/keep/tmp/x"));
    assert!(!set.is_excluded("builds"));
    assert!(!set.is_excluded("src/build"));
}

#[test]
fn directory_skipping() {
    let set = PatternSet::new(&["node_modules", "secret/", "logs", "!logs/keep.log"]).unwrap();
    assert!(set.can_skip_dir("node_modules"));
    assert!(set.can_skip_dir("node_modules/pkg"));
    assert!(set.can_skip_dir("secret"));
    // An exception lives below: walk it.
    assert!(!set.can_skip_dir("logs"));
    assert!(set.may_reinclude_below("logs"));
    // Not excluded: never skipped.
    assert!(!set.can_skip_dir("src"));

    // An exception naming the directory itself, or with a trailing glob.
    let set = PatternSet::new(&["docs", "!docs/api/**"]).unwrap();
    assert!(!set.can_skip_dir("docs"));
    assert!(!set.can_skip_dir("docs/api"));
    assert!(set.can_skip_dir("docs/guide"));
    assert!(!set.is_excluded("docs/api/x"));

    // An exception that does not start with the directory's path, as written, never reaches
    // into it (dockerd 20.10's walker: a literal prefix test, so `!**/LICENSE` or `!*/sub*`
    // re-include nothing under an excluded directory;
    // tests/conformance/dockerignore-exception-nested), while the matcher alone would.
    let set = PatternSet::new(&["vendor", "!**/LICENSE", "!*/sub*"]).unwrap();
    assert!(set.can_skip_dir("vendor"));
    assert!(!set.is_excluded("vendor/lib/LICENSE"));
    let set = PatternSet::new(&["vendor", "!vendor/*/LICENSE"]).unwrap();
    assert!(!set.can_skip_dir("vendor"));
    assert!(set.can_skip_dir("vendor/lib"));
    assert!(set.is_excluded("vendor/lib/code.go"));

    // No exceptions at all.
    let set = PatternSet::new(&["**/target"]).unwrap();
    assert!(set.can_skip_dir("a/b/target"));
    assert!(!set.may_reinclude_below("a/b/target"));
}

/// /work/shared/conformance/cases/dockerignore: the context and what `COPY . /ctx` keeps
/// (`*.log` only at the root, `./notes.txt` cleaned to `notes.txt`).
#[test]
fn conformance_case() {
    let text = std::fs::read_to_string(format!("{FIXTURES}/conformance.dockerignore")).unwrap();
    let set = PatternSet::parse_dockerignore(&text).unwrap();
    let tree = [
        (".dockerignore", false),
        ("Dockerfile", false),
        ("README.md", false),
        ("docs", true),
        ("docs/guide.md", false),
        ("logs", true),
        ("logs/app.log", false),
        ("logs/keep.log", false),
        ("node_modules", true),
        ("node_modules/pkg", true),
        ("node_modules/pkg/index.js", false),
        ("notes.txt", false),
        ("secret", true),
        ("secret/password", false),
        ("src", true),
        ("src/a", true),
        ("src/a/b", true),
        ("src/a/b/keep.c", false),
        ("src/a/b/x.tmp", false),
        ("src/a/y.tmp", false),
        ("src/main.c", false),
        ("top.tmp", false),
    ];
    let kept: Vec<&str> = tree
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !set.is_excluded(p))
        .collect();
    assert_eq!(
        kept,
        [
            "README.md",
            "docs",
            "logs",
            "logs/app.log",
            "logs/keep.log",
            "src",
            "src/a",
            "src/a/b",
            "src/a/b/keep.c",
            "src/main.c",
        ]
    );

    // A walker that skips directories where allowed, threading DirMatches, keeps the same.
    let mut walked = Vec::new();
    let mut stack: Vec<(&str, DirMatches)> = Vec::new();
    let mut skipped: Vec<&str> = Vec::new();
    for &(path, is_dir) in &tree {
        if skipped.iter().any(|d| path.starts_with(&format!("{d}/"))) {
            continue;
        }
        while stack
            .last()
            .is_some_and(|(d, _)| !path.starts_with(&format!("{d}/")))
        {
            stack.pop();
        }
        let parent = stack.last().map(|(_, m)| m.clone()).unwrap_or_default();
        if is_dir {
            let (excluded, state) = set.dir_matches(path, &parent);
            if excluded && !set.may_reinclude_below(path) {
                assert!(set.can_skip_dir(path));
                skipped.push(path);
                continue;
            }
            if !excluded {
                walked.push(path);
            }
            stack.push((path, state));
        } else if !set.is_excluded_in(path, &parent) {
            walked.push(path);
        }
    }
    assert_eq!(walked, kept);
    assert_eq!(skipped, ["node_modules", "secret"]);
}

#[test]
fn go_clean() {
    let cases = [
        ("", "."),
        (".", "."),
        ("./", "."),
        ("a/", "a"),
        ("/", "/"),
        ("//a//b/", "/a/b"),
        ("a/./b", "a/b"),
        ("a/../b", "b"),
        ("a/../..", ".."),
        ("../../a", "../../a"),
        ("/../a", "/a"),
        ("!./x", "!./x"),
        ("a/b/../../../c", "../c"),
    ];
    for (input, expected) in cases {
        assert_eq!(clean(input), expected, "{input:?}");
    }
}

/// Random patterns never panic; for a single pattern, the one-pass parent matching agrees with
/// walking down the parents one by one.
#[test]
fn random_patterns_never_panic_and_parent_matching_agrees() {
    const PAT: &[&str] = &[
        "a", "b", "/", "*", "**", "?", "[", "]", "^", "!", "\\", ".", "-", "é", "&", ":", "[a-b]",
        "[^a]", " ", "#", "..", "{", "(",
    ];
    const SEG: &[&str] = &["a", "b", ".", "é", "-", "*", "ab", "[", "!"];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rand = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut compiled = 0;
    for _ in 0..3000 {
        let pattern: String = (0..1 + rand(8)).map(|_| PAT[rand(PAT.len())]).collect();
        let _ = PatternSet::parse_dockerignore(&pattern);
        let Ok(set) = PatternSet::new(&[&pattern]) else {
            continue;
        };
        compiled += 1;
        for _ in 0..10 {
            let path: Vec<String> = (0..1 + rand(4))
                .map(|_| {
                    (0..1 + rand(3))
                        .map(|_| SEG[rand(SEG.len())])
                        .collect::<String>()
                })
                .filter(|seg| seg != "." && seg != "..")
                .collect();
            if path.is_empty() {
                continue;
            }
            let path = path.join("/");
            let one_pass = set.is_excluded(&path);
            if set.has_exceptions() {
                assert!(!one_pass, "{pattern:?} {path:?}");
            } else {
                assert_eq!(one_pass, walk_to(&set, &path), "{pattern:?} {path:?}");
            }
            let _ = set.can_skip_dir(&path);
        }
    }
    assert!(compiled > 500, "only {compiled} patterns compiled");
}
