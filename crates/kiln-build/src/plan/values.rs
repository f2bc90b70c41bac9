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
