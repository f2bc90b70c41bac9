//! Output normalization and a line diff for the differential suite: what differs between two
//! runs of the same tool (times, durations, the tool's own name) is masked so that only real
//! differences between docker and kiln remain.

/// What to mask besides the always-masked parts (relative times, durations, the tool name,
/// column padding).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mask {
    /// 12- and 64-hex IDs: for builds, whose image IDs differ between the tools.
    pub ids: bool,
    /// Sizes (`1.99MB`, `38B`): where the case is not about sizes.
    pub sizes: bool,
    /// `#N` step numbers of build progress: docker 20.10 numbers its `[internal]` steps too.
    pub steps: bool,
}

pub fn normalize(text: &str, tool: &str, mask: Mask) -> String {
    let text = if mask.steps {
        without_internal_steps(text)
    } else {
        text.to_string()
    };
    let mut out = String::new();
    for line in text.lines() {
        // kiln has no daemon: it prints docker's message without "response from daemon"
        // (docs/docker-compat.md).
        let line = line.replace("Error response from daemon: ", "Error: ");
        let line = tool_name(&line, tool);
        let line = ago(&line);
        let words: Vec<String> = split_keep(&line)
            .into_iter()
            .map(|w| word(&w, mask))
            .collect();
        let mut line = words.concat();
        if mask.steps {
            line = step_number(&line);
            // How long a status took shows only when it took long enough to measure.
            if let Some(head) = line.strip_suffix(" <DUR> done") {
                line = format!("{head} done");
            }
        }
        out.push_str(&pad(&line));
        out.push('\n');
    }
    if mask.steps {
        out = without_unfinished_statuses(&out);
    }
    out
}

/// Drops a progress status printed while running when the next line is the same status done:
/// whether a tick fell inside it is a matter of timing.
fn without_unfinished_statuses(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let finished = lines
            .get(i + 1)
            .is_some_and(|next| next.strip_suffix(" done") == Some(l));
        if !(l.starts_with("#N ") && finished) {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// Build progress without docker's `[internal]` steps (its transfers of the Dockerfile,
/// `.dockerignore` and context to the daemon, and its metadata lookup): every line of those
/// steps and the blank line after each. kiln reads them in place and has no such steps.
fn without_internal_steps(text: &str) -> String {
    let step = |l: &str| -> Option<String> {
        let rest = l.strip_prefix('#')?;
        let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
        (!n.is_empty() && rest[n.len()..].starts_with(' ')).then_some(n)
    };
    let internal: std::collections::HashSet<String> = text
        .lines()
        .filter_map(|l| {
            let n = step(l)?;
            l[1 + n.len()..].starts_with(" [internal] ").then_some(n)
        })
        .collect();
    let mut out = String::new();
    let mut dropped = false;
    for l in text.lines() {
        if step(l).is_some_and(|n| internal.contains(&n)) || (dropped && l.is_empty()) {
            dropped = !l.is_empty();
            continue;
        }
        dropped = false;
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// `docker`/`kiln` as the command's name (`See 'docker images --help'`, `"docker tag" requires`,
/// `Usage:  docker tag`, `docker: 'x' is not a docker command`), not elsewhere (`docker.io/...`,
/// a history line that names a script).
fn tool_name(line: &str, tool: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(tool) {
        let done = format!("{out}{}", &rest[..i]);
        let after = rest[i + tool.len()..].chars().next();
        // At the start of a line only as `docker:` or `docker image:` (not `kiln scripts/...`,
        // a history line's CREATED BY).
        let head = &rest[i + tool.len()..];
        let line_start = done.is_empty()
            && head.find(':').is_some_and(|c| {
                let before = &head[..c];
                !before.contains('/') && before.split_whitespace().count() <= 1
            });
        let word_start = line_start
            || done.ends_with('\'')
            || done.ends_with('"')
            || done.ends_with("Usage:  ")
            || done.ends_with("Usage: ")
            || done.ends_with("not a ");
        let word_end = after.is_none_or(|c| matches!(c, ' ' | '\'' | '"' | ':'));
        out = done;
        out.push_str(if word_start && word_end { "TOOL" } else { tool });
        rest = &rest[i + tool.len()..];
    }
    out.push_str(rest);
    out
}

const UNITS: &[&str] = &[
    "second", "seconds", "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks",
    "month", "months", "year", "years",
];

/// `2 seconds ago`, `About a minute ago`, `Less than a second ago`, `56 years ago` → `<AGO>`.
fn ago(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = words.get(i..i + 3);
        if let Some([n, unit, "ago"]) = w
            && UNITS.contains(unit)
            && (n.parse::<u64>().is_ok() || *n == "a" || *n == "an")
        {
            // "About a minute ago" / "Less than a second ago": drop the words already pushed.
            match out.as_slice() {
                [.., a, b] if a == "Less" && b == "than" => {
                    out.truncate(out.len() - 2);
                }
                [.., a] if a == "About" => {
                    out.pop();
                }
                _ => {}
            }
            out.push("<AGO>".into());
            i += 3;
            continue;
        }
        out.push(words[i].to_string());
        i += 1;
    }
    out.join(" ")
}

/// Splits into words and the separators between them, both kept, so joining restores the line.
fn split_keep(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    for c in line.chars() {
        let w = c.is_ascii_alphanumeric() || c == '.' || c == '_';
        if w != in_word && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        in_word = w;
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn word(w: &str, mask: Mask) -> String {
    let hex = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    if mask.ids && (w.len() == 12 || w.len() == 64) && hex(w) {
        return "<ID>".into();
    }
    if is_duration(w) {
        return "<DUR>".into();
    }
    if mask.sizes && is_size(w) {
        return "<SIZE>".into();
    }
    // `#5 0.185 hi`: the seconds since the step started, before a RUN's output line.
    if mask.steps && is_decimal(w) {
        return "<T>".into();
    }
    w.to_string()
}

fn is_decimal(w: &str) -> bool {
    match w.split_once('.') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// `0.1s`, `12.30s`, `3s` (not `3` or `sha256`).
fn is_duration(w: &str) -> bool {
    let Some(num) = w.strip_suffix('s') else {
        return false;
    };
    is_decimal(num) || (!num.is_empty() && num.bytes().all(|c| c.is_ascii_digit()) && num.len() < 4)
}

/// `1.99MB`, `38B`, `2.1kB`, `0B`, `4.5GiB`.
fn is_size(w: &str) -> bool {
    let digits_end = w
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(w.len());
    if digits_end == 0 {
        return false;
    }
    let unit = &w[digits_end..];
    [
        "B", "kB", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB",
    ]
    .contains(&unit)
}

/// `#12 ` at the start of a progress line → `#N `.
fn step_number(line: &str) -> String {
    if let Some(rest) = line.strip_prefix('#') {
        let n = rest.bytes().take_while(u8::is_ascii_digit).count();
        if n > 0 {
            return format!("#N{}", &rest[n..]);
        }
    }
    line.to_string()
}

/// Table columns are padded to their widest cell, and masking changes widths: runs of three or
/// more spaces (docker's minimum column gap) count as one gap. A two-space gap stays visible.
fn pad(line: &str) -> String {
    let mut out = String::new();
    let mut spaces = 0;
    for c in line.chars() {
        if c == ' ' {
            spaces += 1;
            continue;
        }
        out.push_str(&" ".repeat(if spaces >= 3 { 3 } else { spaces }));
        spaces = 0;
        out.push(c);
    }
    out.trim_end().to_string()
}

/// A line of a diff: only docker printed it, or only kiln did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Docker(String),
    Kiln(String),
}

/// Lines only in `docker` or only in `kiln`, in order (a longest-common-subsequence diff:
/// outputs here are short).
pub fn diff(docker: &str, kiln: &str) -> Vec<Change> {
    let a: Vec<&str> = docker.lines().collect();
    let b: Vec<&str> = kiln.lines().collect();
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(Change::Kiln(b[j].to_string()));
            j += 1;
        } else {
            out.push(Change::Docker(a[i].to_string()));
            i += 1;
        }
    }
    out
}

#[test]
fn normalizer_masks_times_ids_and_the_tool_name() {
    let m = Mask {
        ids: true,
        sizes: true,
        steps: true,
    };
    assert_eq!(
        normalize(
            "t1  latest    9b996053f952   About a minute ago   1.99MB",
            "docker",
            m
        ),
        "t1  latest   <ID>   <AGO>   <SIZE>\n"
    );
    assert_eq!(
        normalize(
            "See 'docker images --help'. docker.io/library/x",
            "docker",
            m
        ),
        "See 'TOOL images --help'. docker.io/library/x\n"
    );
    assert_eq!(
        normalize("#12 0.185 hi\n#12 DONE 0.3s", "kiln", m),
        "#N <T> hi\n#N DONE <DUR>\n"
    );
    assert_eq!(
        normalize("x   Less than a second ago", "kiln", Mask::default()),
        "x   <AGO>\n"
    );
    assert_eq!(
        diff("a\nb\nc\n", "a\nx\nc\n"),
        vec![Change::Kiln("x".into()), Change::Docker("b".into())]
    );
}

#[test]
fn normalizer_keeps_the_tool_name_outside_command_lines() {
    let line = "<missing>   56 years ago   kiln scripts/make-busybox-image.sh";
    assert_eq!(
        normalize(line, "kiln", Mask::default()),
        "<missing>   <AGO>   kiln scripts/make-busybox-image.sh\n"
    );
    assert_eq!(
        normalize("kiln: 'x' is not a kiln command.", "kiln", Mask::default()),
        "TOOL: 'x' is not a TOOL command.\n"
    );
    assert_eq!(
        normalize(
            "kiln image: 'x' is not a kiln image command.",
            "kiln",
            Mask::default()
        ),
        "TOOL image: 'x' is not a TOOL image command.\n"
    );
    let created_by = "kiln scripts/make-busybox-image.sh (busybox-…|1.99MB|";
    assert_eq!(
        normalize(created_by, "kiln", Mask::default()),
        format!("{created_by}\n")
    );
}

#[test]
fn build_progress_loses_dockers_internal_steps() {
    let m = Mask {
        ids: true,
        sizes: true,
        steps: true,
    };
    let docker = "#1 [internal] load build definition from Dockerfile\n#1 transferring dockerfile: 38B done\n\
                  #1 DONE 0.0s\n\n#2 [1/2] FROM x\n#2 DONE 0.1s\n\n#3 [internal] load build context\n\
                  #3 DONE 0.0s\n\n#4 [2/2] RUN true\n#4 DONE 0.2s\n";
    assert_eq!(
        normalize(docker, "docker", m),
        "#N [1/2] FROM x\n#N DONE <DUR>\n\n#N [2/2] RUN true\n#N DONE <DUR>\n"
    );
    assert_eq!(
        normalize(
            "#8 exporting layers 0.1s done\n#8 writing image sha256:ab\n#8 writing image sha256:ab done\n",
            "kiln",
            m
        ),
        "#N exporting layers done\n#N writing image sha256:ab done\n"
    );
}
