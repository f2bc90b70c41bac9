//! Word expansion: BuildKit's shell lexer test tables (ported as data files) plus kiln's own
//! cases for every modifier, the options, error messages/offsets and a no-panic sweep.

use std::collections::{BTreeSet, HashMap};

use kiln_dockerfile::expand::{ExpandError, Expanded, LexOptions, Lexer, Lookup};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn word<L: Lookup + ?Sized>(input: &str, env: &L) -> Result<String, ExpandError> {
    Lexer::new('\\').process_word(input, &env).map(|e| e.value)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn buildkit_env_var_table() {
    let text = std::fs::read_to_string(format!("{FIXTURES}/expand.txt")).unwrap();
    let envs = env(&[
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]);
    let mut failures = Vec::new();
    let mut cases = 0;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (input, expected) = line
            .rsplit_once('|')
            .unwrap_or_else(|| panic!("line {}: no `|`", n + 1));
        let (input, expected) = (input.trim(), expected.trim());
        cases += 1;
        let got = word(input, &envs);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(v), e) => e != "error" && v == e,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "line {}: {input:?} expected {expected:?}, got {got:?}",
                n + 1
            ));
        }
    }
    assert!(cases > 200, "only {cases} cases read");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn buildkit_words_table() {
    let text = std::fs::read_to_string(format!("{FIXTURES}/words.txt")).unwrap();
    let mut envs: Vec<(String, String)> = Vec::new();
    let mut failures = Vec::new();
    let mut cases = 0;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(def) = line.strip_prefix("ENV ") {
            let def = def.trim_start_matches(' ');
            let (k, v) = def.split_once('=').unwrap_or((def, ""));
            envs.push((k.to_owned(), v.to_owned()));
            continue;
        }
        let (input, expected) = line
            .split_once('|')
            .unwrap_or_else(|| panic!("line {}: no `|`", n + 1));
        let input = input.trim();
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        let pairs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        cases += 1;
        let got = match Lexer::new('\\').process_words(input, &pairs.as_slice()) {
            Ok(e) => e.value,
            Err(_) => vec!["error".to_owned()],
        };
        if got != expected {
            failures.push(format!(
                "line {}: {input:?} expected {expected:?}, got {got:?}",
                n + 1
            ));
        }
    }
    assert!(cases > 20, "only {cases} cases read");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// BuildKit's `TestProcessWithMatches`: value plus the names found set and unset.
#[test]
fn buildkit_process_with_matches_table() {
    struct Case {
        input: &'static str,
        env: &'static [(&'static str, &'static str)],
        expected: Option<&'static str>,
        matched: &'static [&'static str],
        unmatched: &'static [&'static str],
    }
    const FB: &[(&str, &str)] = &[("FOO", "xxx"), ("BAR", "")];
    let ok = |input, env, expected, matched, unmatched| Case {
        input,
        env,
        expected: Some(expected),
        matched,
        unmatched,
    };
    let err = |input, env| Case {
        input,
        env,
        expected: None,
        matched: &[],
        unmatched: &[],
    };
    let cases = [
        ok("x", &[("DUMMY", "dummy")], "x", &[], &[]),
        ok("x ${UNUSED}", &[("DUMMY", "dummy")], "x ", &[], &["UNUSED"]),
        ok("x ${FOO}", &[("FOO", "y")], "x y", &["FOO"], &[]),
        ok(
            "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
            FB,
            "xxx  ccc",
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        ok(
            "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
            FB,
            "xxx bbb ccc",
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        ok("${FOO:-}", FB, "xxx", &["FOO"], &[]),
        ok("${FOO:-}", &[], "", &[], &["FOO"]),
        ok(
            "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
            FB,
            "aaa bbb ",
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        ok(
            "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
            FB,
            "aaa  ",
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        ok("${FOO?aaa}", FB, "xxx", &["FOO"], &[]),
        ok("${BAR?bbb}", FB, "", &["BAR"], &[]),
        err("${BAZ?ccc}", FB),
        ok("${FOO:?aaa}", FB, "xxx", &["FOO"], &[]),
        err("${BAR:?bbb}", FB),
        err("${BAZ:?ccc}", FB),
        err("${BAZ:?}", FB),
        err("${FOO=aaa}", FB),
        err("${FOO=:aaa}", FB),
        err("${FOO=}", &[]),
        ok(
            "${FOO#()[]{\\}^$.\\*\\?|\\\\}",
            &[("FOO", "()[]{}^$.*?|\\x")],
            "x",
            &["FOO"],
            &[],
        ),
        ok("${FOO%%\\**}", &[("FOO", "xx**")], "xx", &["FOO"], &[]),
        ok("${FOO#*x*y}", &[("FOO", "xxyy")], "y", &["FOO"], &[]),
        ok("${FOO#*}", &[("FOO", "xxyy")], "xxyy", &["FOO"], &[]),
        ok(
            "${FOO#$BAR}",
            &[("FOO", "xxyy"), ("BAR", "x")],
            "xyy",
            &["FOO", "BAR"],
            &[],
        ),
        ok(
            "${FOO#$BAR}",
            &[("FOO", "xxyy"), ("BAR", "")],
            "xxyy",
            &["FOO", "BAR"],
            &[],
        ),
        ok("${FOO#}", &[("FOO", "xxyy")], "xxyy", &["FOO"], &[]),
        ok("${FOO##*x}", &[("FOO", "xxyy")], "yy", &["FOO"], &[]),
        ok("${FOO##}", &[("FOO", "xxyy")], "xxyy", &["FOO"], &[]),
        ok("${FOO#?\\?}", &[("FOO", "???y")], "?y", &["FOO"], &[]),
        ok(
            "${ABC:-.}${FOO%x}${ABC:-.}",
            &[("FOO", "xxyy")],
            ".xxyy.",
            &["FOO"],
            &["ABC"],
        ),
        ok("${FOO%%\\**\\*}", &[("FOO", "a***yy*")], "a", &["FOO"], &[]),
        ok("${FOO%}", &[("FOO", "xxyy")], "xxyy", &["FOO"], &[]),
        ok(
            "${FOO%%$BAR}",
            &[("FOO", "xxyy"), ("BAR", "")],
            "xxyy",
            &["FOO", "BAR"],
            &[],
        ),
        err("${FOO:#}", &[]),
        err("${FOO:##}", &[]),
        err("${FOO:%}", &[]),
        err("${FOO:%%}", &[]),
        ok(
            "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
            &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
            "/foo.*/*.txt - /foo..*.txt",
            &["FOO", "NEEDLE"],
            &[],
        ),
        ok(
            "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
            &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
            "/tmp/bar.txt - /bar.txt",
            &["FOO", "NEEDLE"],
            &[],
        ),
        ok(
            "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
            &[
                ("FOO", "/a/foo/b/c.txt"),
                ("NEEDLE", "/?/"),
                ("REPLACEMENT", "/"),
            ],
            "/foo/b/c.txt - /foo/c.txt",
            &["FOO", "NEEDLE", "REPLACEMENT"],
            &[],
        ),
        ok(
            "${FOO/$NEEDLE/$REPLACEMENT}",
            &[
                ("FOO", "http://google.de"),
                ("NEEDLE", "http://"),
                ("REPLACEMENT", "https://"),
            ],
            "https://google.de",
            &["FOO", "NEEDLE", "REPLACEMENT"],
            &[],
        ),
        ok(
            "${FOO//\\//\\/}",
            &[("FOO", "/tmp/foo.txt")],
            "\\/tmp\\/foo.txt",
            &["FOO"],
            &[],
        ),
        ok(
            "${FOO/$BAR/ww}",
            &[("FOO", "xxyy"), ("BAR", "")],
            "wwxxyy",
            &["FOO", "BAR"],
            &[],
        ),
        err("${FOO//ww}", &[("FOO", "xxyy")]),
        err("${FOO//}", &[("FOO", "xxyy")]),
        ok("${FOO///}", &[("FOO", "xxyy")], "xxyy", &["FOO"], &[]),
        ok("${FOO///}", &[], "", &[], &["FOO"]),
    ];
    for case in cases {
        let got = Lexer::new('\\').process_word(case.input, &case.env);
        match (case.expected, got) {
            (None, Err(_)) => {}
            (Some(expected), Ok(e)) => {
                assert_eq!(e.value, expected, "{}", case.input);
                let matched = set(case.matched);
                let unmatched = set(case.unmatched);
                let used: BTreeSet<String> = matched.union(&unmatched).cloned().collect();
                assert_eq!(e.used, used, "used of {}", case.input);
                assert_eq!(e.unset, unmatched, "unset of {}", case.input);
            }
            (expected, got) => panic!("{}: expected {expected:?}, got {got:?}", case.input),
        }
    }
}

#[test]
fn buildkit_mandatory_vars() {
    let set_envs: &[(&str, &str)] = &[("VAR", "plain"), ("ARG", "x")];
    let empty_envs: &[(&str, &str)] = &[("VAR", ""), ("ARG", "x")];
    let unset_envs: &[(&str, &str)] = &[("ARG", "x")];
    let no_empty = "${VAR:?message here$ARG}";
    let no_unset = "${VAR?message here$ARG}";

    assert_eq!(word(no_empty, set_envs).unwrap(), "plain");
    let e = word(no_empty, empty_envs).unwrap_err();
    assert_eq!(e.message, "VAR: message herex");
    let e = word(no_empty, unset_envs).unwrap_err();
    assert_eq!(e.message, "VAR: message herex");

    assert_eq!(word(no_unset, set_envs).unwrap(), "plain");
    assert_eq!(word(no_unset, empty_envs).unwrap(), "");
    let e = word(no_unset, unset_envs).unwrap_err();
    assert_eq!(e.message, "VAR: message herex");
    assert_eq!(
        e.to_string(),
        "failed to process \"${VAR?message here$ARG}\": VAR: message herex"
    );
}

#[test]
fn buildkit_platform_release_name() {
    let release =
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
    let base = [
        ("VERSION", "v1.2.3"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "arm"),
        ("TARGETVARIANT", "v7"),
    ];
    assert_eq!(
        word(release, &base[..]).unwrap(),
        "something-v1.2.3.linux-arm-v7.tar.gz"
    );
    let empty_variant = [
        ("VERSION", "v1.2.3"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "arm64"),
        ("TARGETVARIANT", ""),
    ];
    assert_eq!(
        word(release, &empty_variant[..]).unwrap(),
        "something-v1.2.3.linux-arm64.tar.gz"
    );
    let e = Lexer::new('\\')
        .process_word(release, &&empty_variant[..3])
        .unwrap();
    assert_eq!(e.value, "something-v1.2.3.linux-arm64.tar.gz");
    assert_eq!(e.unset, set(&["TARGETVARIANT"]));
    assert_eq!(
        e.used,
        set(&["VERSION", "TARGETOS", "TARGETARCH", "TARGETVARIANT"])
    );
}

// ---- kiln's own cases, one group per feature ----

fn check(env: &[(&str, &str)], cases: &[(&str, &str)]) {
    for (input, expected) in cases {
        assert_eq!(
            word(input, env).as_deref(),
            Ok(*expected),
            "input {input:?}"
        );
    }
}

const ENV: &[(&str, &str)] = &[
    ("SET", "value"),
    ("EMPTY", ""),
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("FILE", "archive.tar.gz"),
    ("SPACED", "a  b c"),
];

#[test]
fn plain_references() {
    check(
        ENV,
        &[
            ("$SET", "value"),
            ("${SET}", "value"),
            ("$SET.x", "value.x"),
            ("${SET}x", "valuex"),
            ("$SETx", ""),
            ("$UNSET-", "-"),
            ("$EMPTY|", "|"),
            ("$", "$"),
            ("a$", "a$"),
            ("$ x", "$ x"),
            ("$/", "$/"),
            ("$$", ""),
            ("100$", "100$"),
        ],
    );
}

#[test]
fn default_modifiers() {
    check(
        ENV,
        &[
            ("${SET:-d}", "value"),
            ("${EMPTY:-d}", "d"),
            ("${UNSET:-d}", "d"),
            ("${SET-d}", "value"),
            ("${EMPTY-d}", ""),
            ("${UNSET-d}", "d"),
            ("${UNSET:-$SET}", "value"),
            ("${UNSET:-a ${EMPTY:-b} c}", "a b c"),
            ("${UNSET:-'q}'}", "q}"),
            ("${UNSET:-\"$SET\"}", "value"),
            ("${UNSET:-x\\}y}", "x}y"),
        ],
    );
}

#[test]
fn alternative_modifiers() {
    check(
        ENV,
        &[
            ("${SET:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${UNSET:+alt}", ""),
            ("${SET+alt}", "alt"),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET+alt}", ""),
            ("${SET:+[$SET]}", "[value]"),
        ],
    );
}

#[test]
fn required_modifiers() {
    check(
        ENV,
        &[
            ("${SET:?m}", "value"),
            ("${SET?m}", "value"),
            ("${EMPTY?m}", ""),
        ],
    );
    let cases = [
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
        ("${UNSET:?}", "UNSET: is not allowed to be unset"),
        ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
        ("${UNSET?give it}", "UNSET: give it"),
        ("x${EMPTY:?need $SET}", "EMPTY: need value"),
    ];
    for (input, message) in cases {
        let e = word(input, &ENV).unwrap_err();
        assert_eq!(e.message, message, "{input}");
        assert_eq!(e.offset, input.find('$').unwrap(), "{input}");
        assert_eq!(e.word, input);
    }
}

#[test]
fn prefix_and_suffix_removal() {
    check(
        ENV,
        &[
            ("${FILE#*.}", "tar.gz"),
            ("${FILE##*.}", "gz"),
            ("${FILE%.*}", "archive.tar"),
            ("${FILE%%.*}", "archive"),
            ("${FILE#archive}", ".tar.gz"),
            ("${FILE#nomatch}", "archive.tar.gz"),
            ("${FILE%?z}", "archive.tar."),
            ("${FILE#a?c}", "hive.tar.gz"),
            ("${PATH#*:}", "/usr/bin:/bin"),
            ("${PATH##*:}", "/bin"),
            ("${PATH%:*}", "/usr/local/bin:/usr/bin"),
            ("${PATH%%:*}", "/usr/local/bin"),
            ("${UNSET#x}", ""),
            ("${EMPTY%%*}", ""),
            // `[` is literal in BuildKit patterns, not a bracket expression.
            ("${FILE#[a]}", "archive.tar.gz"),
        ],
    );
    let brackets = [("V", "[a]rest")];
    check(&brackets, &[("${V#[a]}", "rest"), ("${V%e*}", "[a]r")]);
    let e = word("${FILE#\\x}", &ENV).unwrap_err();
    assert_eq!(
        e.message,
        "invalid pattern (\\x) in substitution: invalid escape '\\x'"
    );
}

#[test]
fn replacement() {
    check(
        ENV,
        &[
            ("${PATH/:/ }", "/usr/local/bin /usr/bin:/bin"),
            ("${PATH//:/ }", "/usr/local/bin /usr/bin /bin"),
            ("${PATH//\\/usr/}", "/local/bin:/bin:/bin"),
            ("${FILE/.*/}", "archive"),
            ("${FILE/a?/X}", "Xchive.tar.gz"),
            ("${FILE//a/}", "rchive.tr.gz"),
            ("${FILE/nomatch/x}", "archive.tar.gz"),
            ("${UNSET/a/b}", ""),
            ("${UNSET//a/b}", ""),
            // `//` applies Go's template rules: `$0` is the match, `$$` a dollar.
            ("${FILE//a/'<$0>'}", "<a>rchive.t<a>r.gz"),
            ("${FILE//.gz/'$$'}", "archive.tar$"),
            ("${FILE//.gz/'${0}!'}", "archive.tar.gz!"),
            ("${FILE//.gz/'$x'}", "archive.tar"),
            ("${FILE//.gz/'$'}", "archive.tar$"),
            // A single `/` inserts the replacement as is.
            ("${FILE/.gz/'$0'}", "archive.tar$0"),
        ],
    );
    let e = word("${SET/abc}", &ENV).unwrap_err();
    assert_eq!(e.message, "syntax error: missing '/' in ${}");
    let e = word("${SET/a/b", &ENV).unwrap_err();
    assert_eq!(e.message, "syntax error: missing '}'");
}

#[test]
fn replace_all_with_empty_matches_follows_go() {
    // An empty pattern matches between every character; Go inserts the replacement at each
    // position, skipping the empty match that abuts a previous match.
    check(
        &[("V", "ab"), ("E", "")],
        &[("${V//$E/-}", "-a-b-"), ("${V/$E/-}", "-ab")],
    );
    check(&[("V", "aXbX")], &[("${V//*X/-}", "-")]);
}

#[test]
fn quotes_and_escapes() {
    check(
        ENV,
        &[
            ("'$SET'", "$SET"),
            ("\"$SET\"", "value"),
            ("\"'$SET'\"", "'value'"),
            ("'\"$SET\"'", "\"$SET\""),
            ("\\$SET", "$SET"),
            ("\"\\$SET\"", "$SET"),
            ("\\\\$SET", "\\value"),
            ("\"a\\\"b\"", "a\"b"),
            ("\"a\\nb\"", "a\\nb"),
            ("a\\nb", "anb"),
            ("\\${SET}", "${SET}"),
            ("\"\"", ""),
            ("''", ""),
            ("a\"\"b", "ab"),
        ],
    );
}

#[test]
fn backtick_escape() {
    let lexer = Lexer::new('`');
    let cases = [
        ("`$SET", "$SET"),
        ("C:\\path\\$SET", "C:\\path\\value"),
        ("\"a`\"b\"", "a\"b"),
        ("\"a\\b\"", "a\\b"),
        ("a``b", "a`b"),
        ("${FILE%%`*}", "archive.tar.gz"),
        ("${FILE%%.*}", "archive"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            lexer.process_word(input, &ENV).unwrap().value,
            expected,
            "{input}"
        );
    }
}

#[test]
fn special_and_positional_parameters_are_never_set() {
    check(
        ENV,
        &[
            ("$1", ""),
            ("$12x", "x"),
            ("${1:-one}", "one"),
            ("$@x", "x"),
            ("${#:-n}", "n"),
            ("$?$!", ""),
        ],
    );
}

#[test]
fn syntax_errors_carry_message_and_offset() {
    let cases = [
        ("ab${}", "syntax error: bad substitution", 2),
        ("${:-x}", "syntax error: bad substitution", 0),
        ("${{x}", "syntax error: bad substitution", 0),
        ("x${", "syntax error: missing '}'", 1),
        ("x${SET", "syntax error: missing '}'", 1),
        ("x${SET:-abc", "syntax error: missing '}'", 1),
        ("x${SET:", "syntax error: missing '}'", 1),
        ("${SET:=x}", "unsupported modifier (:=) in substitution", 0),
        ("${SET=x}", "unsupported modifier (=) in substitution", 0),
        ("${SET.x}", "unsupported modifier (.) in substitution", 0),
        ("${SET:#x}", "unsupported modifier (:#) in substitution", 0),
        (
            "ab'cd",
            "unexpected end of statement while looking for matching single-quote",
            2,
        ),
        (
            "a\"b$SET",
            "unexpected end of statement while looking for matching double-quote",
            1,
        ),
        ("${X:-${}}", "syntax error: bad substitution", 5),
    ];
    for (input, message, offset) in cases {
        let e = word(input, &ENV).unwrap_err();
        assert_eq!((e.message.as_str(), e.offset), (message, offset), "{input}");
    }
}

#[test]
fn used_names_include_unset_and_nested_lookups() {
    let e = Lexer::new('\\')
        .process_word("${A:-${B}}$C'$D'\"$E\"\\$F", &ENV)
        .unwrap();
    assert_eq!(e.used, set(&["A", "B", "C", "E"]));
    assert_eq!(e.unset, set(&["A", "B", "C", "E"]));
    let e = Lexer::new('\\')
        .process_word("$SET ${EMPTY:+x} literal", &ENV)
        .unwrap();
    assert_eq!(e.used, set(&["SET", "EMPTY"]));
    assert!(e.unset.is_empty());
    // Words mode reports names too.
    let e = Lexer::new('\\').process_words("$SET $NOPE", &ENV).unwrap();
    assert_eq!(e.value, ["value"]);
    assert_eq!(e.used, set(&["SET", "NOPE"]));
}

#[test]
fn field_splitting() {
    let lexer = Lexer::new('\\');
    let cases: &[(&str, &[&str])] = &[
        ("a b  c", &["a", "b", "c"]),
        ("  lead trail  ", &["lead", "trail"]),
        ("$SPACED", &["a", "b", "c"]),
        ("\"$SPACED\"", &["a  b c"]),
        ("x$SPACED", &["xa", "b", "c"]),
        ("a\\ b", &["a b"]),
        ("'a b' c", &["a b", "c"]),
        // Empty quoted strings are no fields in BuildKit.
        ("a \"\" b", &["a", "b"]),
        ("''", &[]),
        ("", &[]),
        ("a\tb\nc", &["a", "b", "c"]),
        ("cat << EOF", &["cat", "<< EOF"]),
        ("80/tcp ${UNSET:-443}", &["80/tcp", "443"]),
    ];
    for (input, expected) in cases {
        let got = lexer.process_words(input, &ENV).unwrap().value;
        assert_eq!(got, *expected, "{input:?}");
    }
}

#[test]
fn lexer_options() {
    let lexer = Lexer::new('\\');
    let raw = LexOptions {
        raw_quotes: true,
        ..LexOptions::default()
    };
    let got = lexer.process_word_with("'a'\"$SET\"", &ENV, &raw).unwrap();
    assert_eq!(got.value, "'a'\"value\"");

    let keep = LexOptions {
        skip_unset_env: true,
        ..LexOptions::default()
    };
    let got = lexer
        .process_word_with("$NOPE ${NOPE} ${NOPE:-d} ${NOPE//a/b} $SET", &ENV, &keep)
        .unwrap();
    assert_eq!(got.value, "$NOPE ${NOPE} ${NOPE:-d} ${NOPE/a/b} value");

    let escapes = LexOptions {
        raw_escapes: true,
        ..LexOptions::default()
    };
    let got = lexer
        .process_word_with("a\\ b\\$SET", &ENV, &escapes)
        .unwrap();
    assert_eq!(got.value, "a\\ b\\$SET");

    let no_quotes = LexOptions {
        skip_process_quotes: true,
        ..LexOptions::default()
    };
    let got = lexer
        .process_word_with("'$SET' \"x", &ENV, &no_quotes)
        .unwrap();
    assert_eq!(got.value, "'value' \"x");

    // Heredoc detection as the parser does it: the quoted and raw forms differ.
    let heredoc = LexOptions {
        skip_unset_env: true,
        ..LexOptions::default()
    };
    let plain = lexer.process_words_with("\"EOF\"", &ENV, &heredoc).unwrap();
    let quoted = lexer
        .process_words_with(
            "\"EOF\"",
            &ENV,
            &LexOptions {
                raw_quotes: true,
                ..heredoc
            },
        )
        .unwrap();
    assert_eq!(plain.value, ["EOF"]);
    assert_eq!(quoted.value, ["\"EOF\""]);
}

#[test]
fn lookup_impls_agree() {
    let map = env(ENV);
    let btree: std::collections::BTreeMap<String, String> = map.clone().into_iter().collect();
    let slice: &[(&str, &str)] = ENV;
    for lookup in [&map as &dyn Lookup, &btree, &slice] {
        assert_eq!(
            word("${SET}-${EMPTY:-e}-${UNSET-u}", lookup).unwrap(),
            "value-e-u"
        );
    }
    // Later pairs override earlier ones, as in `ENV` order.
    let pairs: &[(&str, &str)] = &[("A", "1"), ("A", "2")];
    assert_eq!(word("$A", pairs).unwrap(), "2");
}

#[test]
fn unicode_words_and_names() {
    check(
        &[("ÜBER", "ü"), ("名前", "値")],
        &[
            ("$ÜBER-${名前}", "ü-値"),
            ("${名前:+→}", "→"),
            ("${ÜBER/ü/u}", "u"),
            ("\u{FEFF}$ÜBER", "ü"),
        ],
    );
}

#[test]
fn plain_word_fast_path_returns_input() {
    let e: Expanded<String> = Lexer::new('\\')
        .process_word("/usr/src/app <ok>", &ENV)
        .unwrap();
    assert_eq!(e.value, "/usr/src/app <ok>");
    assert!(e.used.is_empty());
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let depth = 100_000;
    for open in ["${A:-", "\"${A:-", "${A/x/"] {
        let input = format!("{}x{}", open.repeat(depth), "}".repeat(depth));
        let e = word(&input, &ENV).unwrap_err();
        assert_eq!(e.message, "syntax error: substitutions nested too deeply");
    }
    // Reasonable nesting still works.
    let input = format!("{}x{}", "${A:-".repeat(50), "}".repeat(50));
    assert_eq!(word(&input, &ENV).unwrap(), "x");
}

/// Arbitrary strings over the lexer's special characters never panic, and an error's offset
/// always lies inside the word on a character boundary.
#[test]
fn random_words_never_panic() {
    const ALPHABET: &[&str] = &[
        "$", "{", "}", ":", "-", "+", "?", "#", "%", "/", "\\", "`", "'", "\"", "*", "[", "]", " ",
        "\t", "a", "b", "SET", "EMPTY", "PATH", "0", "1", "@", "<", "é", "名", "\u{FEFF}", "\n",
        ".", "^", "(", "|",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..20_000 {
        let len = (rand() % 24) as usize;
        let input: String = (0..len)
            .map(|_| ALPHABET[(rand() % ALPHABET.len() as u64) as usize])
            .collect();
        let escape = if round % 2 == 0 { '\\' } else { '`' };
        let lexer = Lexer::new(escape);
        for result in [
            lexer.process_word(&input, &ENV).map(|_| ()),
            lexer.process_words(&input, &ENV).map(|_| ()),
        ] {
            if let Err(e) = result {
                assert!(
                    e.offset <= input.len() && input.is_char_boundary(e.offset),
                    "{input:?}: {e:?}"
                );
                assert!(!e.message.is_empty());
            }
        }
        let opts = LexOptions {
            raw_quotes: true,
            raw_escapes: true,
            skip_unset_env: true,
            skip_process_quotes: round % 3 == 0,
        };
        let _ = lexer.process_words_with(&input, &ENV, &opts);
        let _ = lexer.process_word_with(&input, &ENV, &opts);
    }
}
