//! The stage graph of a build as an inline SVG (for the HTML report): one box per stage with
//! its size and whether it ran or came from the cache, an arrow from each stage to the stages
//! built on it (`FROM stage`, solid) and to those that read its files (`COPY --from`,
//! `RUN --mount from=`, dashed). Columns are depths (a stage sits right of everything it
//! needs), rows the Dockerfile order within a column.

use std::fmt::Write;

use crate::markup::esc;
use crate::report::StageSummary;
use crate::units::human;

const W: usize = 190;
const H: usize = 50;
const GAP_X: usize = 70;
const GAP_Y: usize = 20;

/// One edge: from stage, to stage (positions in `stages`), and whether it is a FROM.
fn edges(stages: &[StageSummary]) -> Vec<(usize, usize, bool)> {
    let pos = |index: u32| stages.iter().position(|s| s.index == index);
    let mut out = Vec::new();
    for (to, s) in stages.iter().enumerate() {
        if let Some(from) = s.base_stage.and_then(pos) {
            out.push((from, to, true));
        }
        for u in &s.uses {
            if let Some(from) = pos(*u)
                && from != to
            {
                out.push((from, to, false));
            }
        }
    }
    out
}

/// The SVG, `<svg id="stage-graph">…</svg>`.
pub fn svg(stages: &[StageSummary]) -> String {
    let edges = edges(stages);
    // Depth: longest path from a stage that needs no other (records are in Dockerfile order,
    // and a stage only needs earlier ones, but do not rely on it: iterate to a fixed point,
    // at most n rounds).
    let mut depth = vec![0usize; stages.len()];
    for _ in 0..stages.len() {
        let mut changed = false;
        for &(f, t, _) in &edges {
            if depth[t] < depth[f] + 1 && depth[f] < stages.len() {
                depth[t] = depth[f] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut row = vec![0usize; stages.len()];
    let mut per_col: Vec<usize> = Vec::new();
    for (k, d) in depth.iter().enumerate() {
        if per_col.len() <= *d {
            per_col.resize(d + 1, 0);
        }
        row[k] = per_col[*d];
        per_col[*d] += 1;
    }
    let cols = per_col.len().max(1);
    let rows = per_col.iter().copied().max().unwrap_or(1).max(1);
    let width = cols * W + (cols - 1) * GAP_X + 20;
    let height = rows * H + (rows - 1) * GAP_Y + 20;
    let at = |k: usize| (10 + depth[k] * (W + GAP_X), 10 + row[k] * (H + GAP_Y));

    let mut o = String::new();
    let _ = write!(
        o,
        r##"<svg id="stage-graph" width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="stage graph"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker></defs>"##
    );
    for &(f, t, is_from) in &edges {
        let ((fx, fy), (tx, ty)) = (at(f), at(t));
        let (x1, y1) = (fx + W, fy + H / 2);
        let (x2, y2) = (tx, ty + H / 2);
        let kind = if is_from { "from" } else { "copy" };
        let dash = if is_from {
            ""
        } else {
            r#" stroke-dasharray="6 4""#
        };
        // Two stages in one column (cannot happen with depths, but a record could be odd):
        // a curve around, not a line through the boxes.
        let d = if x2 > x1 {
            let mid = (x1 + x2) / 2;
            format!("M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}")
        } else {
            format!("M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}", x1 + 40, x2 - 40)
        };
        let _ = write!(
            o,
            r##"<path class="edge {kind}" data-from="{}" data-to="{}" d="{d}" fill="none" stroke="#57606a" stroke-width="1.5"{dash} marker-end="url(#arrow)"><title>{} → {} ({})</title></path>"##,
            esc(&stages[f].name),
            esc(&stages[t].name),
            esc(&stages[f].name),
            esc(&stages[t].name),
            if is_from { "FROM" } else { "COPY --from" }
        );
    }
    for (k, s) in stages.iter().enumerate() {
        let (x, y) = at(k);
        let cached = s.steps > 0 && s.cached_steps == s.steps;
        let state = if cached {
            "cached".to_string()
        } else {
            format!("{}/{} cached", s.cached_steps, s.steps)
        };
        let fill = if s.is_final { "#e3f1df" } else { "#fdebd7" };
        let stroke = if s.is_final { "#59a14f" } else { "#f28e2b" };
        let _ = write!(
            o,
            r##"<g class="stage" data-stage="{}"><rect x="{x}" y="{y}" width="{W}" height="{H}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="{}"/><text x="{}" y="{}" font-size="13" font-weight="600">{}{}</text><text x="{}" y="{}" font-size="12" fill="#57606a">{} · {state}</text></g>"##,
            esc(&s.name),
            if s.is_final { 2 } else { 1 },
            x + 8,
            y + 20,
            esc(&truncate(&s.name, 20)),
            if s.is_final { " (final)" } else { "" },
            x + 8,
            y + 38,
            human(s.size),
        );
    }
    o.push_str("</svg>");
    o
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(index: u32, name: &str, base_stage: Option<u32>, uses: Vec<u32>) -> StageSummary {
        StageSummary {
            index,
            name: name.into(),
            base: String::new(),
            size: 1000,
            duration_ms: 0,
            steps: 2,
            cached_steps: 2,
            is_final: false,
            base_stage,
            uses,
        }
    }

    #[test]
    fn edges_for_from_and_copy_from_and_columns_by_depth() {
        let stages = vec![
            stage(0, "installer", None, vec![]),
            stage(1, "tester", Some(0), vec![]),
            stage(2, "deployer", None, vec![1]),
        ];
        assert_eq!(edges(&stages), [(0, 1, true), (1, 2, false)]);
        let s = svg(&stages);
        assert!(s.contains(r#"<path class="edge from" data-from="installer" data-to="tester""#));
        assert!(s.contains(r#"<path class="edge copy" data-from="tester" data-to="deployer""#));
        // Three columns: deployer right of tester right of installer.
        assert!(
            s.contains(r#"<g class="stage" data-stage="deployer"><rect x="530""#),
            "{s}"
        );
        assert_eq!(s.matches("<g class=\"stage\"").count(), 3);
        assert!(s.contains("1kB · cached"));
    }
}
