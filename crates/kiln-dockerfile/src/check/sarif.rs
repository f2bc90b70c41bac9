//! SARIF 2.1.0 (what GitHub code scanning uploads): one run, kiln as the tool with every
//! rule described, one result per finding with its file, line and columns.

use serde_json::{Value, json};

use super::{Origin, RULES, Warning};

/// The SARIF log of the `warnings` found in each file (paths relative to the repository
/// root, as code scanning wants them).
pub fn render(files: &[(&str, &[Warning])]) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            let mut v = json!({
                "id": r.name,
                "name": r.name,
                "shortDescription": { "text": r.description },
                "fullDescription": { "text": r.description },
                "help": { "text": r.hint },
                "defaultConfiguration": { "level": "warning", "enabled": !r.experimental },
                "properties": {
                    "origin": match r.origin { Origin::Buildkit => "buildkit", Origin::Kiln => "kiln" },
                    "docs": r.url(),
                },
            });
            if r.origin == Origin::Buildkit {
                v["helpUri"] = json!(r.url());
            }
            v
        })
        .collect();
    let results: Vec<Value> = files
        .iter()
        .flat_map(|(file, ws)| ws.iter().map(move |w| (*file, w)))
        .map(|(file, w)| {
            let mut location = json!({
                "physicalLocation": {
                    "artifactLocation": { "uri": uri_path(file) },
                }
            });
            if w.span.line > 0 {
                let mut region = json!({
                    "startLine": w.span.line,
                    "startColumn": w.span.col.max(1),
                });
                if w.span.len > 0 {
                    region["endColumn"] = json!(w.span.col.max(1) + w.span.len);
                }
                location["physicalLocation"]["region"] = region;
            }
            json!({
                "ruleId": w.rule,
                "ruleIndex": RULES.iter().position(|r| r.name == w.rule).unwrap_or(0),
                "level": w.severity.as_str(),
                "message": { "text": w.message },
                "locations": [location],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "kiln",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    })
}

/// A relative URI reference for a path: `/`-separated, with the characters a URI may not
/// hold percent-encoded.
fn uri_path(p: &str) -> String {
    let mut out = String::new();
    for b in p.trim_start_matches("./").bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_uri_references() {
        assert_eq!(super::uri_path("./a b/Dockerfile"), "a%20b/Dockerfile");
    }
}
