//! A step's text as BuildKit shows it: the instruction with build args and ENV expanded
//! (`RUN echo $V` → `RUN echo 1`) and its keyword upper-cased. Pure text: the planner names
//! steps with it, `stepname.rs` numbers them.

use std::collections::HashMap;

/// How an instruction's text is expanded for display. BuildKit keeps the quotes of a RUN and
/// leaves unset variables as written (`RawQuotes`, `SkipUnsetEnv`); COPY, ADD and WORKDIR
/// are shown as their words expand (quotes removed, unset variables empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Echo {
    Run,
    File,
}

/// `original` (the instruction as written, continuation lines joined) as BuildKit shows it:
/// expanded with the stage's environment (ENV and ARGs) and the keyword upper-cased. A text
/// that does not expand (a syntax error the instruction itself already passed) is shown as
/// written.
pub(crate) fn display_command(
    original: &str,
    env: &[(String, String)],
    escape: char,
    echo: Echo,
) -> String {
    let original = original.trim();
    // The shell expands a RUN, not kiln: its text was never charged against the expansion
    // limits. A text that could expand past what is shown anyway is shown as written.
    let longest = env.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let refs = original.matches('$').count();
    if original.len().saturating_add(refs.saturating_mul(longest)) > MAX_EXPANDED {
        return upper_keyword(original.to_string());
    }
    let vars: HashMap<String, String> = if refs > 0 {
        env.iter().cloned().collect()
    } else {
        HashMap::new()
    };
    let opts = kiln_dockerfile::expand::LexOptions {
        raw_quotes: echo == Echo::Run,
        skip_unset_env: echo == Echo::Run,
        ..Default::default()
    };
    let text = kiln_dockerfile::expand::Lexer::new(escape)
        .process_word_with(original, &vars, &opts)
        .map(|e| e.value)
        .unwrap_or_else(|_| original.to_string());
    upper_keyword(text)
}

/// Bytes an expanded display name may reach (it is clipped to [`crate::event::ECHO_LIMIT`]
/// when shown).
const MAX_EXPANDED: usize = 64 * 1024;

fn upper_keyword(text: String) -> String {
    match text.split_once(' ') {
        Some((keyword, rest)) => format!("{} {rest}", keyword.to_uppercase()),
        None => text.to_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn run_keeps_quotes_and_unset_variables_as_buildkit_shows_them() {
        let e = env(&[("D", "/dst"), ("E", "envval")]);
        assert_eq!(
            display_command(
                r#"run echo "$D" '$D' $E $UNSET ${UNSET:-def}"#,
                &e,
                '\\',
                Echo::Run
            ),
            r#"RUN echo "/dst" '$D' envval $UNSET ${UNSET:-def}"#
        );
        assert_eq!(
            display_command(r#"RUN ["echo", "$D", "x"]"#, &e, '\\', Echo::Run),
            r#"RUN ["echo", "/dst", "x"]"#
        );
    }

    #[test]
    fn copy_and_workdir_expand_as_words() {
        let e = env(&[("D", "/dst"), ("E", "envval")]);
        assert_eq!(
            display_command("copy a.txt $D/", &e, '\\', Echo::File),
            "COPY a.txt /dst/"
        );
        assert_eq!(
            display_command("COPY a.txt ${D}/$E/", &e, '\\', Echo::File),
            "COPY a.txt /dst/envval/"
        );
        assert_eq!(
            display_command("WORKDIR /w/$D", &e, '\\', Echo::File),
            "WORKDIR /w//dst"
        );
    }

    #[test]
    fn a_text_that_would_expand_to_megabytes_is_shown_as_written() {
        let e = env(&[("B", &"x".repeat(1 << 20))]);
        let run = format!("RUN echo {}", "$B".repeat(1000));
        assert_eq!(display_command(&run, &e, '\\', Echo::Run), run);
    }

    #[test]
    fn a_text_that_does_not_expand_is_shown_as_written() {
        assert_eq!(
            display_command("RUN echo ${", &[], '\\', Echo::Run),
            "RUN echo ${"
        );
    }
}
