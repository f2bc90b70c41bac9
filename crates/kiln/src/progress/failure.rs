//! A failed build's last words, after the progress view: for a failing step, the Dockerfile
//! lines around its instruction and the error, as BuildKit prints them (the step's header and
//! its last output are in the progress view's error box just above).
//!
//! ```text
//! Dockerfile:3
//! --------------------
//!    1 |     FROM busybox
//!    2 |     RUN echo ok
//!    3 | >>> RUN exit 3
//!    4 |
//! --------------------
//! ERROR: failed to solve: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3
//! ```

use std::path::Path;

/// A failed build, with the Dockerfile excerpt for step failures.
pub fn render_error(e: &kiln_build::BuildError, dockerfile: &Path, text: &str) -> String {
    match e {
        kiln_build::BuildError::Step { line, message, .. } => {
            let mut s = String::new();
            if *line > 0 {
                let name = dockerfile
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                s.push_str(&excerpt(&name, text, *line));
            }
            s.push_str(&format!("ERROR: failed to solve: {message}"));
            s
        }
        other => format!("ERROR: {other}"),
    }
}

/// BuildKit's source excerpt: the line with two lines of context either side (more below
/// when the line is near the top), `>>>` marking it.
fn excerpt(file: &str, text: &str, line: usize) -> String {
    // As BuildKit splits the file: a final newline gives a last, empty line.
    let lines: Vec<&str> = text.split('\n').collect();
    if line > lines.len() {
        return String::new();
    }
    let (mut start, mut end) = (line, line);
    let mut p = 0;
    while p < 4 {
        if start > 1 {
            start -= 1;
            p += 1;
        }
        if end != lines.len() {
            end += 1;
            p += 1;
        }
        p += 1;
    }
    let mut s = format!("{file}:{line}\n--------------------\n");
    for n in start..=end {
        let marker = if n == line { ">>>" } else { "   " };
        let l = kiln_build::event::clip(lines[n - 1].trim_end_matches('\r'));
        s.push_str(&format!(" {n:>3} | {marker} {l}\n"));
    }
    s.push_str("--------------------\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_buildkits() {
        let text = "FROM a\nRUN b\nRUN c\nRUN d\n";
        assert_eq!(
            excerpt("Dockerfile", text, 3),
            "Dockerfile:3\n--------------------\n   1 |     FROM a\n   2 |     RUN b\n   3 | >>> RUN c\n   4 |     RUN d\n   5 |     \n--------------------\n"
        );
        // At the top, the context is all below.
        assert!(excerpt("Dockerfile", text, 1).contains("   3 |     RUN c\n---"));
    }
}
