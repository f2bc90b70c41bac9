//! How steps are named and identified on screen, as BuildKit's Dockerfile frontend does it:
//! the instruction with build args and ENV expanded (`RUN echo $V` → `RUN echo 1`), numbered
//! per stage from its FROM (`[build 2/4]`, or `[2/4]` when the Dockerfile has one stage), and
//! a vertex digest per step for the progress view.

use std::collections::HashMap;

use crate::event::StepInfo;
use crate::key::KeyBuilder;
use crate::plan::{Op, Plan, RootSource, Step};

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

/// Whether a step does work of its own and so appears in the progress view. A stage that
/// starts from scratch or from another stage has nothing to show for its FROM (BuildKit
/// neither counts nor shows one).
pub fn is_reported(step: &Step) -> bool {
    !matches!(
        step.op,
        Op::Base(RootSource::Scratch) | Op::Base(RootSource::Step(_))
    )
}

/// Number the reported steps of each stage `[NAME k/n] `, as BuildKit does: the FROM of an
/// image is the first, the stage name is left out when the Dockerfile has one stage, and `k`
/// is padded to the width of `n` (`[ 1/12]`).
pub(crate) fn number_steps(plan: &mut Plan, single_stage: bool) {
    for st in &plan.stages {
        let ids: Vec<usize> = (st.first_step..=st.last_step)
            .filter(|&i| plan.steps[i].stage == st.index && is_reported(&plan.steps[i]))
            .collect();
        let n = ids.len();
        let width = n.to_string().len();
        for (k, &i) in ids.iter().enumerate() {
            let step = &mut plan.steps[i];
            step.name = if single_stage {
                format!("[{:>width$}/{n}] {}", k + 1, step.name)
            } else {
                format!("[{} {:>width$}/{n}] {}", st.display, k + 1, step.name)
            };
        }
    }
}

/// What the progress view gets to know about each step (see [`StepInfo`]).
pub fn step_infos(plan: &Plan) -> Vec<StepInfo> {
    plan.steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepInfo {
            name: s.name.clone(),
            stage: plan.graph.stages[s.stage].display.clone(),
            line: s.line,
            digest: vertex_digest(plan, i),
            reported: is_reported(s),
        })
        .collect()
}

/// A digest naming what a step is. The FROM of one image is one vertex however many stages
/// start from it (as in BuildKit, whose vertex digests are content addresses); every other
/// step is its own vertex, named by its place in the plan, so the same Dockerfile gives the
/// same digests on every build.
fn vertex_digest(plan: &Plan, i: usize) -> String {
    let s = &plan.steps[i];
    match &s.op {
        Op::Base(RootSource::Image(idx)) => KeyBuilder::new("vertex-image")
            .field("id", &plan.images[*idx].id)
            .finish(),
        _ => KeyBuilder::new("vertex-step")
            .field("index", &i.to_string())
            .field("name", &s.name)
            .finish(),
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
