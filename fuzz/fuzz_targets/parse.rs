//! Parse arbitrary text; whatever the input, parsing, rendering errors, checks, evaluation and
//! the stage graph must not panic.
#![no_main]

use kiln_dockerfile::{
    EvalOptions, Evaluator, StageGraph, check, parse, render_dot, render_json, render_mermaid,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match parse(src) {
        Err(e) => {
            let _ = e.render(src);
        }
        Ok(df) => {
            for w in check::check(&df) {
                let _ = w.render("Dockerfile", src);
            }
            let Ok(ev) = Evaluator::new(&df, EvalOptions::default()) else {
                return;
            };
            for st in &df.stages {
                let mut se = ev.stage(&[]);
                for ins in &st.instructions {
                    if let Err(e) = se.expand_instruction(ins) {
                        let _ = e.render(src);
                    }
                }
            }
            if let Ok(g) = StageGraph::build(&df, &ev, None) {
                let _ = (render_mermaid(&g), render_dot(&g), render_json(&g));
            }
        }
    }
});
