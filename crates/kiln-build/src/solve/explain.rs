//! `--explain`: why a step missed the cache. Each build remembers, per step position (context
//! directory, Dockerfile, stage, instruction index), the parts of the key it computed; the next
//! build compares its parts with them and names what changed.

use crate::encoder::KeyBuilder;
use crate::key::StepKey;
use crate::plan::StepIndex;
use crate::state::Build;

/// The absolute context and Dockerfile paths that scope the explain records of a build
/// (computed once per build).
pub fn scope(opts: &crate::options::BuildOptions) -> (String, String) {
    let ctx = std::fs::canonicalize(&opts.context).unwrap_or_else(|_| opts.context.clone());
    let df = std::fs::canonicalize(&opts.dockerfile_path)
        .unwrap_or_else(|_| opts.dockerfile_path.clone());
    (
        ctx.to_string_lossy().into_owned(),
        df.to_string_lossy().into_owned(),
    )
}

/// Where this step's previous key is remembered.
pub fn explain_key(b: &Build<'_>, i: StepIndex) -> String {
    let step = &b.plan.steps[i];
    let (ctx, df) = &b.explain_scope;
    let stage = &b.plan.graph.stages[step.stage].display;
    let planned = b.plan.stage_of(i);
    let pos = i - planned.map(|s| s.first_step).unwrap_or(0);
    let mut k = KeyBuilder::new("explain");
    k.field("context", ctx)
        .field("dockerfile", df)
        .field("stage", stage)
        .field("pos", &pos.to_string());
    // Each platform's steps are remembered apart (the host's as before platforms existed).
    if let Some(p) = planned.map(|s| &s.platform)
        && *p != kiln_image::Platform::host()
    {
        k.field("platform", &p.to_string());
    }
    let k = k.finish();
    format!("explain:{k}")
}

/// What this step's position remembers (its key the last time), read apart from a cache
/// lookup (with `--no-cache`; a lookup reads it in its own transaction).
pub fn previous(b: &Build<'_>, ekey: &str) -> Option<Vec<u8>> {
    b.store.cache_peek(ekey).ok().flatten()
}

/// Remember `key` as the last one computed at this step's position, unless `prev` (what
/// [`previous`] read) already is it: a cache hit usually finds the same key, and writes
/// nothing.
pub fn record(b: &Build<'_>, ekey: &str, prev: Option<&[u8]>, key: &StepKey) {
    let Ok(v) = serde_json::to_vec(key) else {
        return;
    };
    if prev == Some(v.as_slice()) {
        return;
    }
    let _ = b.store.cache_put(ekey, &v, &[]);
}

/// A sentence naming what changed since the last build of this step (`prev`), if one is
/// known.
pub fn why_missed(prev: Option<&[u8]>, now: &StepKey) -> Option<String> {
    let prev: StepKey = serde_json::from_slice(prev?).ok()?;
    Some(diff(&prev, now))
}

pub fn diff(prev: &StepKey, now: &StepKey) -> String {
    if prev.key == now.key {
        return "the result was removed from the cache (pruned)".into();
    }
    let mut why = Vec::new();
    if prev.text != now.text {
        why.push(format!(
            "the instruction changed (was `{}`)",
            crate::event::clip(&prev.text)
        ));
    }
    for (a, v) in &now.args {
        match prev.args.get(a) {
            Some(p) if p != v => why.push(format!("build arg {a} changed ({p:?} → {v:?})")),
            None => why.push(format!("build arg {a} is new")),
            _ => {}
        }
    }
    for a in prev.args.keys().filter(|a| !now.args.contains_key(*a)) {
        why.push(format!("build arg {a} is no longer used"));
    }
    let named = changed_files(prev, now);
    for (label, d) in &now.inputs {
        match prev.inputs.get(label) {
            Some(p) if p != d => {
                if label.starts_with("context:") && !named.is_empty() {
                    continue;
                }
                why.push(describe_input(label, "changed"))
            }
            None => why.push(describe_input(label, "is new")),
            _ => {}
        }
    }
    if !named.is_empty() {
        why.insert(0, named);
    }
    if why.is_empty() && prev.parent != now.parent {
        why.push("an earlier step changed (the base image or a previous instruction)".into());
    }
    if why.is_empty() {
        why.push("the step's options changed".into());
    }
    why.join("; ")
}

/// `file src/App.jsx changed; file b.txt added` from the per-file digests of both builds.
fn changed_files(prev: &StepKey, now: &StepKey) -> String {
    if prev.files.is_empty() || now.files.is_empty() {
        return String::new();
    }
    let mut parts = Vec::new();
    for (name, d) in &now.files {
        match prev.files.get(name) {
            Some(p) if p != d => parts.push(format!("file {name} changed")),
            None => parts.push(format!("file {name} added")),
            _ => {}
        }
    }
    for name in prev.files.keys().filter(|n| !now.files.contains_key(*n)) {
        parts.push(format!("file {name} removed"));
    }
    let n = parts.len();
    if n > 5 {
        parts.truncate(5);
        parts.push(format!("and {} more", n - 5));
    }
    parts.join("; ")
}

fn describe_input(label: &str, what: &str) -> String {
    match label.split_once(':') {
        Some(("context", p)) => format!("files matching `{p}` in the context {what}"),
        Some((c, p)) if c.starts_with("context@") => {
            format!(
                "files matching `{p}` in build context {} {what}",
                &c["context@".len()..]
            )
        }
        Some(("stage", s)) => format!("stage {s} {what}"),
        Some(("image", r)) => format!("image {r} {what}"),
        Some(("url", u)) => format!("the content at {u} {what}"),
        Some(("git", u)) => format!("the commit of {u} {what}"),
        _ => format!("{label} {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn key(text: &str, parent: &str, args: &[(&str, &str)], inputs: &[(&str, &str)]) -> StepKey {
        StepKey {
            key: format!("{text}{parent}{args:?}{inputs:?}"),
            text: text.into(),
            parent: parent.into(),
            args: args
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<BTreeMap<_, _>>(),
            inputs: inputs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            files: Default::default(),
        }
    }

    #[test]
    fn names_what_changed() {
        let a = key("COPY src ./src", "p", &[], &[("context:src", "d1")]);
        let b = key("COPY src ./src", "p", &[], &[("context:src", "d2")]);
        assert_eq!(diff(&a, &b), "files matching `src` in the context changed");
        let c = key("RUN make", "p", &[("V", "1")], &[]);
        let d = key("RUN make", "p", &[("V", "2")], &[]);
        assert_eq!(diff(&c, &d), "build arg V changed (\"1\" → \"2\")");
        let mut g = key("COPY . .", "p", &[], &[("context:.", "d1")]);
        g.files.insert("src/App.jsx".into(), "aa".into());
        g.files.insert("package.json".into(), "bb".into());
        let mut h = key("COPY . .", "p", &[], &[("context:.", "d2")]);
        h.files.insert("src/App.jsx".into(), "cc".into());
        h.files.insert("package.json".into(), "bb".into());
        h.files.insert("new.txt".into(), "dd".into());
        assert_eq!(diff(&g, &h), "file new.txt added; file src/App.jsx changed");
        let e = key("RUN make", "q", &[("V", "1")], &[]);
        assert!(diff(&c, &e).contains("earlier step"));
        let f = key("RUN make all", "p", &[("V", "1")], &[]);
        assert!(diff(&c, &f).contains("instruction changed"));
        // A huge earlier instruction is named by its first KiB only.
        let big = key(
            &format!("RUN echo {}", "x".repeat(1 << 20)),
            "p",
            &[("V", "1")],
            &[],
        );
        let why = diff(&big, &c);
        assert!(why.len() < 1200 && why.contains("bytes)"), "{}", why.len());
    }
}
