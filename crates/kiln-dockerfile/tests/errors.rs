//! Error messages are part of the contract: message, line and column for each error path.

use kiln_dockerfile::*;

fn first_error(src: &str) -> Error {
    match parse(src) {
        Err(e) => e,
        Ok(df) => match analyze(&df, EvalOptions::default(), None) {
            Err(e) => e,
            Ok(_) => panic!("no error for {src:?}"),
        },
    }
}

#[test]
fn error_table() {
    let table: &[(&str, &str, usize, usize)] = &[
        ("FROM a\nRUNN x", "unknown instruction: RUNN", 2, 1),
        ("FROM a\n  ADDD a b", "unknown instruction: ADDD", 2, 3),
        ("FROM a\nCOPY --frm=x a b", "unknown flag: --frm", 2, 6),
        (
            "FROM a\nCOPY --from a b",
            "missing a value on flag: --from",
            2,
            6,
        ),
        (
            "FROM a\nCOPY --from=x --from=y a b",
            "duplicate flag specified: --from",
            2,
            15,
        ),
        (
            "FROM a\nCOPY --link=yes a b",
            "expecting boolean value for flag --link, not: yes",
            2,
            6,
        ),
        (
            "FROM a\nCMD [\"a\", 1]",
            "when using JSON array syntax, arrays must be comprised of strings only",
            2,
            5,
        ),
        (
            "FROM a\nSHELL sh -c",
            "SHELL requires the arguments to be in JSON form",
            2,
            7,
        ),
        (
            "FROM a\nCOPY x",
            "COPY requires at least two arguments, but only one was provided. Destination could not be determined",
            2,
            1,
        ),
        (
            "FROM a\nADD x",
            "ADD requires at least two arguments, but only one was provided. Destination could not be determined",
            2,
            1,
        ),
        ("FROM a\nUSER", "USER requires exactly one argument", 2, 1),
        ("FROM a\nENV X", "ENV must have two arguments", 2, 5),
        (
            "FROM a\nLABEL a=1 b",
            "Syntax error - can't find = in \"b\". Must be of the form: name=value",
            2,
            11,
        ),
        (
            "FROM a\nONBUILD ONBUILD RUN x",
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            2,
            9,
        ),
        (
            "FROM a\nONBUILD FROM b",
            "FROM isn't allowed as an ONBUILD trigger",
            2,
            9,
        ),
        (
            "FROM a\nHEALTHCHECK CMD",
            "Missing command after HEALTHCHECK CMD",
            2,
            13,
        ),
        ("FROM a\nRUN <<EOF\nx\n", "unterminated heredoc", 2, 1),
        (
            "# escape=x\nFROM a",
            "invalid escape token 'x' does not match ` or \\",
            1,
            1,
        ),
        (
            "FROM a AS b\nFROM c AS b",
            "duplicate stage name \"b\"",
            2,
            11,
        ),
        (
            "FROM a AS b\nCOPY --from=b /x /x",
            "circular dependency detected on stage: b",
            2,
            6,
        ),
        ("FROM a\nCOPY --from=3 /x /x", "invalid stage index 3", 2, 6),
        (
            "FROM a\nCOPY --from=${X} /x /x",
            "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
            2,
            6,
        ),
        (
            "FROM a\nRUN --mount=type=bind,from=$X,target=/x y",
            "'from' doesn't support variable expansion, define alias stage instead",
            2,
            5,
        ),
        (
            "FROM a\nRUN --mount=type=cache x",
            "mount type cache requires a target (target=/path)",
            2,
            5,
        ),
        ("FROM a\nARG V\nUSER ${V:?needs V}", "V: needs V", 3, 6),
        (
            "ARG IMG\nFROM $IMG",
            "base name ($IMG) should not be blank",
            2,
            1,
        ),
        (
            "FROM a\nEXPOSE 80/xyz",
            "invalid proto: xyz (in EXPOSE 80/xyz)",
            2,
            1,
        ),
        (
            "RUN x",
            "no build stage in current context: RUN before the first FROM",
            1,
            1,
        ),
    ];
    for (src, msg, line, col) in table {
        let e = first_error(src);
        assert_eq!(
            (e.message.as_str(), e.span.line, e.span.col),
            (*msg, *line, *col),
            "for {src:?}"
        );
        // Every error renders with its location and never panics.
        let r = e.render(src);
        assert!(
            r.starts_with(&format!("error: {msg}\n --> Dockerfile:{line}:{col}\n")),
            "{r}"
        );
    }
}

#[test]
fn onbuild_triggers_from_an_image_config() {
    let ins = parse_onbuild_triggers(&["COPY . /app".into(), "RUN make".into()]).unwrap();
    assert_eq!(
        ins.iter().map(|i| i.name()).collect::<Vec<_>>(),
        ["COPY", "RUN"]
    );
    assert!(parse_onbuild_triggers(&["FROM x".into()]).is_err());
    assert_eq!(
        parse_onbuild_triggers(&["RUNN x".into()]).unwrap_err().file,
        "ONBUILD"
    );
}
