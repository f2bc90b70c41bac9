//! Limits on hostile input (see `kiln_dockerfile::limits` and "Limits" in docs/dockerfile.md):
//! each bomb fails with an error that says what and where, instead of exhausting memory.

use std::collections::HashMap;

use kiln_dockerfile::expand::Lexer;
use kiln_dockerfile::limits::{MAX_DOCKERFILE_BYTES, MAX_EXPANDED_BYTES, MAX_WORD_GROWTH};
use kiln_dockerfile::*;

/// `ARG A=xxxxxxxx`, then `ARG A1=${A}${A}` … `ARG A40=${A39}${A39}` (8 TiB), then a RUN.
fn arg_doubling_bomb() -> String {
    let mut s = String::from("FROM scratch\nARG A=xxxxxxxx\nARG A1=${A}${A}\n");
    for i in 2..=40 {
        s.push_str(&format!("ARG A{i}=${{A{}}}${{A{}}}\n", i - 1, i - 1));
    }
    s.push_str("RUN echo $A40\n");
    s
}

fn analyze_err(src: &str) -> Error {
    let df = parse(src).expect("the bomb parses; expanding it is what fails");
    analyze(&df, EvalOptions::default(), None).expect_err("expansion must hit a limit")
}

#[test]
fn exponential_arg_expansion_stops_at_the_word_limit_with_its_location() {
    let e = analyze_err(&arg_doubling_bomb());
    assert_eq!(e.kind, ErrorKind::Expansion);
    assert!(e.message.contains("expansion too large"), "{e}");
    assert!(e.message.contains("1 MiB"), "{e}");
    // A17 is 8 × 2^17 bytes = exactly 1 MiB and still fits; A18 (line 20) does not. The
    // column is that of the default value `${A17}${A17}`.
    assert_eq!((e.span.line, e.span.col), (20, 9), "{e}");
    assert!(e.to_string().starts_with("Dockerfile:20:9: "), "{e}");
}

#[test]
fn env_bomb_stops_at_the_word_limit() {
    let mut s = String::from("FROM scratch\nENV A=xxxxxxxx\n");
    for i in 1..=30 {
        let prev = if i == 1 {
            "A".to_string()
        } else {
            format!("A{}", i - 1)
        };
        s.push_str(&format!("ENV A{i}=\"${prev}${prev}\"\n"));
    }
    let e = analyze_err(&s);
    assert!(e.message.contains("expansion too large"), "{e}");
    assert_eq!(e.span.line, 20, "{e}");
}

#[test]
fn many_words_under_the_word_limit_stop_at_the_total_limit() {
    // A 1 MiB value (A17 as above), then ENV lines that each copy it: every word is within
    // its own limit, but together they pass MAX_EXPANDED_BYTES.
    let mut s = String::from("FROM scratch\nARG A=xxxxxxxx\nARG A1=${A}${A}\n");
    for i in 2..=17 {
        s.push_str(&format!("ARG A{i}=${{A{}}}${{A{}}}\n", i - 1, i - 1));
    }
    let first_env_line = 20;
    let copies = MAX_EXPANDED_BYTES / MAX_WORD_GROWTH + 10;
    for i in 0..copies {
        s.push_str(&format!("ENV E{i}=$A17\n"));
    }
    let e = analyze_err(&s);
    assert_eq!(e.kind, ErrorKind::Expansion);
    assert!(e.message.contains("add up to more than 64 MiB"), "{e}");
    // The ARGs hold 2 MiB, so the total is passed by about the 62nd copy.
    assert!(
        (first_env_line + 55..first_env_line + copies).contains(&e.span.line),
        "{e}"
    );
}

#[test]
fn pattern_replacement_cannot_multiply_a_value() {
    let env: HashMap<String, String> = [
        ("A".to_string(), "a".repeat(256 << 10)),
        ("B".to_string(), "b".repeat(8)),
        ("C".to_string(), "cc".to_string()),
    ]
    .into();
    let lexer = Lexer::new('\\');
    // Every character becomes eight: 2 MiB from 256 KiB.
    let e = lexer
        .process_word("${A//?/$B}", &env)
        .expect_err("2 MiB result");
    assert!(e.message.contains("expansion too large"), "{e}");
    assert_eq!(e.offset, 0);
    // Go's `$0` template (the match) multiplies too.
    let e = lexer.process_word("${A//?/\\$0\\$0\\$0\\$0}", &env);
    assert!(e.is_err(), "{e:?}");
    // Twice is within the limit, and correct.
    let ok = lexer.process_word("${A//?/$C}", &env).unwrap();
    assert_eq!(ok.value.len(), 512 << 10);
    let e = lexer.process_word("${A/a/${A}${A}${A}${A}}", &env);
    assert!(e.is_err(), "single replacement with a 1 MiB replacement");
}

#[test]
fn nested_defaults_count_their_intermediate_results() {
    // Each level copies the 400 KiB value once more: the result alone would fit, the work
    // of building it (four copies) does not.
    let env: HashMap<String, String> = [("V".to_string(), "v".repeat(400 << 10))].into();
    let lexer = Lexer::new('\\');
    assert_eq!(
        lexer.process_word("${U:-$V}", &env).unwrap().value.len(),
        400 << 10
    );
    let e = lexer
        .process_word("${U:-${U:-${U:-$V}}}", &env)
        .expect_err("four copies of 400 KiB");
    assert!(e.message.contains("expansion too large"), "{e}");
}

#[test]
fn a_large_heredoc_still_expands() {
    // The limit is on growth: a 3 MiB here-document expands (its own size is allowed).
    let body = "line $V\n".repeat((3 << 20) / 8);
    let src = format!("FROM scratch\nARG V=x\nCOPY <<EOF /big\n{body}EOF\n");
    let df = parse(&src).unwrap();
    let a = analyze(&df, EvalOptions::default(), None).unwrap();
    let Command::Copy(c) = &a.stages[0].instructions[1].instruction.command else {
        panic!("not a COPY");
    };
    assert_eq!(c.inline[0].content.len(), body.len() - body.len() / 8);
}

#[test]
fn an_oversized_dockerfile_is_refused_before_scanning() {
    let mut src = String::from("FROM scratch\n");
    src.push_str(&"#".repeat(MAX_DOCKERFILE_BYTES as usize));
    let e = parse_named(&src, "big.Dockerfile").unwrap_err();
    assert!(e.message.contains("too large"), "{e}");
    assert!(e.message.contains("16 MiB"), "{e}");
    assert_eq!(e.file, "big.Dockerfile");
}

/// A Dockerfile of 100k ENV lines parses and expands (its speed is measured by
/// `benches/parse.rs`; this only checks the result).
#[test]
fn a_hundred_thousand_env_lines_parse_and_expand() {
    let n = 100_000;
    let mut src = String::from("FROM scratch AS base\n");
    for i in 0..n {
        // W reads the V of the line before (a line sees the variables as they were before it).
        src.push_str(&format!("ENV V{i}=x{i} W=${{V{}}}\n", i.max(1) - 1));
    }
    src.push_str("FROM base\nRUN echo $W\nENV V0=again\n");
    let df = parse(&src).unwrap();
    assert_eq!(df.stages[0].instructions.len(), n);
    let a = analyze(&df, EvalOptions::default(), None).unwrap();
    let env = &a.stages[1].env;
    // V0, W, V1..V{n-1} in first-set order; W holds the last V but one; V0 replaced in place.
    assert_eq!(env.len(), n + 1);
    assert_eq!(env[0], ("V0".into(), "again".into()));
    assert_eq!(env[1], ("W".into(), format!("x{}", n - 2)));
    assert_eq!(env[n], (format!("V{}", n - 1), format!("x{}", n - 1)));
}

#[test]
fn redeclared_args_keep_the_last_value_in_its_position() {
    let df = parse("FROM scratch\nARG A=1\nARG B=2\nARG A=3\nARG C\n").unwrap();
    let ev = Evaluator::new(&df, EvalOptions::default()).unwrap();
    let mut st = ev.stage(&[]);
    for ins in &df.stages[0].instructions {
        st.expand_instruction(ins).unwrap();
    }
    assert_eq!(
        st.args(),
        [("B".to_string(), "2".to_string()), ("A".into(), "3".into())]
    );
}

#[test]
fn a_global_arg_bomb_points_at_the_value() {
    // The same doubling, before the first FROM: the caret goes under `${A17}${A17}`, not
    // under `ARG`.
    let mut s = String::from("ARG A=xxxxxxxx\nARG A1=${A}${A}\n");
    for i in 2..=24 {
        s.push_str(&format!("ARG A{i}=${{A{}}}${{A{}}}\n", i - 1, i - 1));
    }
    s.push_str("FROM scratch\nRUN echo $A24\n");
    let e = analyze_err(&s);
    assert!(e.message.contains("expansion too large"), "{e}");
    assert_eq!((e.span.line, e.span.col), (19, 9), "{e}");
    assert_eq!(e.span.len, "${A17}${A17}".len(), "{e}");
}

#[test]
fn errors_after_parsing_name_the_file_given_to_parse_named() {
    let df = parse_named(&arg_doubling_bomb(), "Dockerfile.bomb").unwrap();
    let e = analyze(&df, EvalOptions::default(), None).unwrap_err();
    assert!(e.to_string().starts_with("Dockerfile.bomb:20:9: "), "{e}");
    // Global ARGs, FROM lines and the stage graph too.
    let df = parse_named("ARG A=${B:?no B}\nFROM scratch\n", "Other").unwrap();
    let e = analyze(&df, EvalOptions::default(), None).unwrap_err();
    assert_eq!(e.file, "Other", "{e}");
    let df = parse_named("FROM ${IMG:?noimage}\n", "Other").unwrap();
    let e = analyze(&df, EvalOptions::default(), None).unwrap_err();
    assert_eq!(e.file, "Other", "{e}");
    let df = parse_named("FROM scratch AS a\n", "Other").unwrap();
    let e = analyze(&df, EvalOptions::default(), Some("nope")).unwrap_err();
    assert_eq!(e.file, "Other", "{e}");
    // `parse` keeps `Dockerfile`.
    let df = parse("FROM ${IMG:?noimage}\n").unwrap();
    let e = analyze(&df, EvalOptions::default(), None).unwrap_err();
    assert_eq!(e.file, "Dockerfile", "{e}");
}

/// The rendered excerpt of a huge line is clipped around the caret; the caret stays under
/// the right character.
#[test]
fn errors_on_huge_lines_render_a_clipped_excerpt() {
    use kiln_dockerfile::error::EXCERPT_CONTEXT;
    let big = "x".repeat(10_000_000);
    // A token at the start of the line: its caret, then context, then `…`.
    let src = format!("FROM x\nRUNN {big}\n");
    let e = parse(&src).unwrap_err();
    let r = e.render(&src);
    assert!(r.len() < 1000, "{} bytes", r.len());
    assert!(
        r.contains(&format!(
            "\n2 | RUNN {}…\n",
            "x".repeat(EXCERPT_CONTEXT - 1)
        )),
        "{r}"
    );
    assert!(r.contains("\n  | ^^^^\n"), "{r}");

    // A token running to the end of a huge line: clipped carets, clipped text.
    let src = format!("FROM scratch\nENV X=\"{big}\n");
    let Err(e) = analyze(&parse(&src).unwrap(), EvalOptions::default(), None) else {
        panic!("an unterminated quote fails")
    };
    let r = e.render(&src);
    assert!(r.len() < 1000, "{} bytes", r.len());
    let lines: Vec<&str> = r.lines().collect();
    assert_eq!(
        lines[3],
        format!(
            "2 | ENV X={}…",
            "\"".to_string() + &"x".repeat(EXCERPT_CONTEXT - 1)
        )
    );
    assert_eq!(
        lines[4],
        format!("  | {}{}", " ".repeat(6), "^".repeat(EXCERPT_CONTEXT))
    );

    // An error far into a line: `…` on both sides, the caret under its character.
    let big = "x".repeat(1_000_000);
    let src = format!("FROM scratch\nENV A={big} B=${{C:?unset}} D={big}\n");
    let df = parse(&src).unwrap();
    let e = analyze(&df, EvalOptions::default(), None).unwrap_err();
    let r = e.render(&src);
    assert!(r.len() < 1500, "{} bytes", r.len());
    let lines: Vec<&str> = r.lines().collect();
    let text = lines[3].strip_prefix("2 | ").unwrap();
    let caret = lines[4].strip_prefix("  | ").unwrap();
    assert!(text.starts_with('…') && text.ends_with('…'), "{r}");
    let at = caret.find('^').unwrap();
    let under: String = text.chars().skip(at).take(caret.len() - at).collect();
    assert_eq!(under, "${C:?unset}", "{r}");
    assert_eq!(at, EXCERPT_CONTEXT + 1, "{r}");

    // A message that quotes a huge token is clipped too.
    let src = format!("FROM scratch\nENV A=1 {big}\n");
    let e = parse(&src).unwrap_err();
    assert!(e.message.len() > 1_000_000);
    let r = e.render(&src);
    assert!(r.len() < 3000, "{} bytes", r.len());
    assert!(
        r.contains(&format!("… ({} bytes)\n", e.message.len())),
        "{r}"
    );
    assert!(e.to_string().len() < 1200, "{} bytes", e.to_string().len());

    // A million nested `${a:-` (a syntax error at the first): a few hundred bytes.
    let src = format!(
        "FROM scratch\nARG a=1\nENV Y=x{}\n",
        "${a:-".repeat(1_000_000)
    );
    let df = parse(&src).unwrap();
    let e = analyze(&df, EvalOptions::default(), None).unwrap_err();
    let r = e.render(&src);
    assert!(r.len() < 1500, "{} bytes: {}", r.len(), &r[..300]);
}

#[test]
fn short_lines_render_whole() {
    let line = format!("ENV A={} B=${{C:?unset}}", "y".repeat(150));
    let src = format!("FROM scratch\n{line}\n");
    let df = parse(&src).unwrap();
    let e = analyze(&df, EvalOptions::default(), None).unwrap_err();
    let r = e.render(&src);
    assert!(r.contains(&format!("\n2 | {line}\n")), "{r}");
    assert!(
        r.contains(&format!(
            "\n  | {}{}\n",
            " ".repeat(line.len() - 11),
            "^".repeat(11)
        )),
        "{r}"
    );
}
