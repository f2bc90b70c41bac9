//! Values instructions set, normalized as BuildKit normalizes them: WORKDIR paths and EXPOSE
//! ports. Shared by the planner (the config) and the history text.

/// WORKDIR semantics: absolute replaces, relative joins; the result is cleaned.
pub fn join_workdir(cur: &str, p: &str) -> String {
    let joined = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{cur}/{p}")
    };
    clean_path(&joined)
}

/// Lexical `path.Clean` for absolute paths.
pub fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// `80`, `80/udp`, `8000-8002/tcp` → `80/tcp`, ... (Docker's nat.ParsePortSpecs for EXPOSE).
pub(crate) fn expand_port_spec(p: &str) -> Vec<String> {
    let (ports, proto) = match p.split_once('/') {
        Some((a, b)) => (a, b.to_lowercase()),
        None => (p, "tcp".to_string()),
    };
    if let Some((a, b)) = ports.split_once('-')
        && let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>())
        && a <= b
        && b - a < 65536
    {
        return (a..=b).map(|n| format!("{n}/{proto}")).collect();
    }
    vec![format!("{ports}/{proto}")]
}

/// Levenshtein distance of two short names (stage names in "did you mean" hints).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
