//! The HTML form of a report: one self-contained page (inline CSS and SVG, no script, no
//! network) to open in a browser.

use std::fmt::Write;

use crate::report::{Report, lost_words};
use crate::tree::DirSize;
use crate::units::human;

pub use crate::markup::esc;

/// A rectangle of the treemap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

fn worst(row: &[f64], side: f64) -> f64 {
    let s: f64 = row.iter().sum();
    let (mx, mn) = row
        .iter()
        .fold((0f64, f64::MAX), |(a, b), &v| (a.max(v), b.min(v)));
    let s2 = s * s;
    let side2 = side * side;
    (side2 * mx / s2).max(s2 / (side2 * mn))
}

/// Squarified treemap (Bruls, Huizing, van Wijk): one rectangle per value, in order, areas
/// proportional to the values, filling `r`. Values must be sorted biggest first; zeros get an
/// empty rectangle.
pub fn squarify(values: &[f64], r: Rect) -> Vec<Rect> {
    let total: f64 = values.iter().sum();
    let mut out = vec![
        Rect {
            x: r.x,
            y: r.y,
            w: 0.0,
            h: 0.0
        };
        values.len()
    ];
    if total <= 0.0 || r.w <= 0.0 || r.h <= 0.0 {
        return out;
    }
    let scale = r.w * r.h / total;
    let areas: Vec<f64> = values.iter().map(|v| v * scale).collect();
    let mut free = r;
    let mut i = 0;
    while i < areas.len() {
        if areas[i] <= 0.0 {
            i += 1;
            continue;
        }
        let side = free.w.min(free.h);
        let mut end = i + 1;
        while end < areas.len()
            && areas[end] > 0.0
            && worst(&areas[i..=end], side) <= worst(&areas[i..end], side)
        {
            end += 1;
        }
        let row_area: f64 = areas[i..end].iter().sum();
        if free.w >= free.h {
            // A column on the left.
            let cw = row_area / free.h;
            let mut y = free.y;
            for k in i..end {
                let h = areas[k] / cw;
                out[k] = Rect {
                    x: free.x,
                    y,
                    w: cw,
                    h,
                };
                y += h;
            }
            free.x += cw;
            free.w -= cw;
        } else {
            let rh = row_area / free.w;
            let mut x = free.x;
            for k in i..end {
                let w = areas[k] / rh;
                out[k] = Rect {
                    x,
                    y: free.y,
                    w,
                    h: rh,
                };
                x += w;
            }
            free.y += rh;
            free.h -= rh;
        }
        i = end;
    }
    out
}

const COLORS: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

fn treemap(dirs: &[DirSize]) -> String {
    let (w, h) = (960.0, 420.0);
    let mut s = format!(
        r##"<svg id="treemap" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="size treemap">"##
    );
    let vals: Vec<f64> = dirs.iter().map(|d| d.size as f64).collect();
    let rects = squarify(
        &vals,
        Rect {
            x: 0.0,
            y: 0.0,
            w,
            h,
        },
    );
    for (k, (d, r)) in dirs.iter().zip(&rects).enumerate() {
        if r.w < 1.0 || r.h < 1.0 {
            continue;
        }
        let color = COLORS[k % COLORS.len()];
        let _ = write!(
            s,
            r##"<g class="tm-dir"><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}" stroke="#fff" stroke-width="2"><title>{} {}</title></rect>"##,
            r.x,
            r.y,
            r.w,
            r.h,
            esc(&d.path),
            human(d.size)
        );
        // Children inside, under a header line.
        let inner = Rect {
            x: r.x + 3.0,
            y: r.y + 18.0,
            w: (r.w - 6.0).max(0.0),
            h: (r.h - 21.0).max(0.0),
        };
        let cv: Vec<f64> = d.children.iter().map(|c| c.size as f64).collect();
        for (c, cr) in d.children.iter().zip(squarify(&cv, inner)) {
            if cr.w < 2.0 || cr.h < 2.0 {
                continue;
            }
            let _ = write!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}" fill-opacity="0.55" stroke="#fff"><title>{} {}</title></rect>"##,
                cr.x,
                cr.y,
                cr.w,
                cr.h,
                esc(&c.path),
                human(c.size)
            );
            if cr.w > 70.0 && cr.h > 16.0 {
                let name = c.path.rsplit('/').next().unwrap_or("");
                let _ = write!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#111">{} {}</text>"##,
                    cr.x + 3.0,
                    cr.y + 13.0,
                    esc(name),
                    human(c.size)
                );
            }
        }
        if r.w > 50.0 && r.h > 16.0 {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="12" font-weight="bold" fill="#fff">{} {}</text>"##,
                r.x + 4.0,
                r.y + 13.0,
                esc(&d.path),
                human(d.size)
            );
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

fn bar(value: u64, max: u64, color: &str) -> String {
    let w = if max == 0 {
        0.0
    } else {
        300.0 * value as f64 / max as f64
    };
    format!(
        r#"<svg width="300" height="14" xmlns="http://www.w3.org/2000/svg"><rect width="{w:.1}" height="14" fill="{color}"/></svg>"#
    )
}

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2433;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dee4;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;background:#fff}td,th{border:1px solid #d8dee4;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f6}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font-family:ui-monospace,Menlo,monospace;font-size:12px}.muted{color:#656d76}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;border:1px solid #d8dee4;border-radius:6px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}.sentence{font-size:18px;font-weight:600;margin:8px 0}
"#;

/// Renders `r` as a self-contained HTML page.
pub fn render(r: &Report) -> String {
    let i = &r.image;
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>kiln report: {}</title><style>{STYLE}</style></head><body>\n",
        esc(&i.name)
    );
    let _ = write!(
        o,
        r#"<h1>kiln report: {}</h1><p class="muted"><code>{}</code>{}</p>"#,
        esc(&i.name),
        esc(&i.id),
        if i.tags.is_empty() {
            String::new()
        } else {
            format!(" — {}", esc(&i.tags.join(", ")))
        }
    );
    let _ = write!(
        o,
        r#"<section id="summary"><h2>Summary</h2><div class="cards">
<div class="card">Image size<b>{}</b><span class="muted">{} bytes</span></div>
<div class="card">Layers<b>{}</b></div>
<div class="card">Files<b>{}</b></div>
<div class="card">Wasted<b>{}</b><span class="muted">efficiency {:.1}%</span></div>
<div class="card">Duplicated<b>{}</b></div>
<div class="card">Leftovers<b>{}</b><span class="muted">{} findings</span></div>
</div></section>"#,
        human(i.size),
        i.size,
        i.layers,
        i.files,
        human(r.wasted.bytes),
        r.wasted.efficiency,
        human(r.duplicates.bytes),
        human(r.leftovers.iter().map(|l| l.size).sum()),
        r.leftovers.len()
    );

    if let Some(c) = &r.compare {
        let max = i.size.max(c.other.size);
        let _ = write!(
            o,
            r#"<section id="compare"><h2>Compared with {}</h2><p class="sentence">{}</p><table>
<tr><th>image</th><th>size</th><th></th></tr>
<tr><td>{}</td><td class="n">{}</td><td>{}</td></tr>
<tr><td>{}</td><td class="n">{}</td><td>{}</td></tr></table>"#,
            esc(&c.other.name),
            esc(&c.sentence),
            esc(&i.name),
            human(i.size),
            bar(i.size, max, "#59a14f"),
            esc(&c.other.name),
            human(c.other.size),
            bar(c.other.size, max, "#e15759"),
        );
        o.push_str("<h3>Where the difference is</h3><table><tr><th>path</th><th>this</th><th>other</th><th>what</th></tr>");
        for d in &c.differences {
            let _ = write!(
                o,
                r#"<tr><td><code>{}</code></td><td class="n">{}</td><td class="n">{}</td><td>{}</td></tr>"#,
                esc(&d.path),
                human(d.this),
                human(d.other),
                esc(d.label.as_deref().unwrap_or(""))
            );
        }
        o.push_str("</table></section>");
    }

    if let Some(b) = &r.build {
        o.push_str(r#"<section id="stages"><h2>Build stages</h2>"#);
        // The graph: which stage is built on or copies from which.
        o.push_str(&crate::graph::svg(&b.stages));
        // The stages as boxes in Dockerfile order, width by size.
        let max = b.stages.iter().map(|s| s.size).max().unwrap_or(0);
        let _ = write!(
            o,
            r#"<svg width="960" height="{}" xmlns="http://www.w3.org/2000/svg">"#,
            b.stages.len() * 26 + 4
        );
        for (k, s) in b.stages.iter().enumerate() {
            let w = if max == 0 {
                0.0
            } else {
                600.0 * s.size as f64 / max as f64
            };
            let y = k * 26;
            let _ = write!(
                o,
                r#"<text x="0" y="{}" font-size="12">{}</text><rect x="170" y="{}" width="{w:.1}" height="20" fill="{}"/><text x="{:.1}" y="{}" font-size="12">{}{}</text>"#,
                y + 15,
                esc(&s.name),
                y + 2,
                if s.is_final { "#59a14f" } else { "#f28e2b" },
                175.0 + w,
                y + 15,
                human(s.size),
                if s.is_final { " (final)" } else { "" }
            );
        }
        o.push_str("</svg><table><tr><th>stage</th><th>base</th><th>size</th><th>time</th><th>cached</th></tr>");
        for s in &b.stages {
            let _ = write!(
                o,
                r#"<tr><td>{}</td><td><code>{}</code></td><td class="n">{}</td><td class="n">{} ms</td><td class="n">{}/{}</td></tr>"#,
                esc(&s.name),
                esc(&s.base),
                human(s.size),
                s.duration_ms,
                s.cached_steps,
                s.steps
            );
        }
        o.push_str("</table>");
        if let Some(sentence) = &b.ship_thin {
            let _ = write!(
                o,
                r#"<p class="sentence">Build fat, ship thin: {}.</p>"#,
                esc(sentence)
            );
        }
        o.push_str("</section>");
    }

    let _ = write!(
        o,
        r#"<section id="tree"><h2>What the image ships</h2>{}"#,
        treemap(&r.directories)
    );
    if !r.shipped_from.is_empty() {
        o.push_str(
            "<h3>Shipped from</h3><table><tr><th>origin</th><th>size</th><th>files</th></tr>",
        );
        for f in &r.shipped_from {
            let _ = write!(
                o,
                r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
                esc(&f.origin),
                human(f.bytes),
                f.files
            );
        }
        o.push_str("</table>");
    }
    o.push_str("<table><tr><th>directory</th><th>size</th><th>files</th><th>from</th></tr>");
    fn rows(o: &mut String, d: &[DirSize], depth: usize) {
        for e in d {
            let _ = write!(
                o,
                r#"<tr><td style="padding-left:{}px"><code>{}</code></td><td class="n">{}</td><td class="n">{}</td><td>{}</td></tr>"#,
                8 + 16 * depth,
                esc(&e.path),
                human(e.size),
                e.files,
                esc(&crate::origin::summary(&e.origins))
            );
            rows(o, &e.children, depth + 1);
        }
    }
    rows(&mut o, &r.directories, 0);
    o.push_str(
        "</table><h3>Largest files</h3><table><tr><th>file</th><th>size</th><th>layer</th><th>from</th></tr>",
    );
    for f in &r.files {
        let _ = write!(
            o,
            r#"<tr><td><code>{}</code></td><td class="n">{}</td><td class="n">{}</td><td>{}</td></tr>"#,
            esc(&f.path),
            human(f.size),
            f.layer,
            esc(f.origin.as_deref().unwrap_or(""))
        );
    }
    o.push_str("</table></section>");

    o.push_str(r#"<section id="layers"><h2>Layers</h2><table><tr><th>#</th><th>size</th><th>entries</th><th>created by</th></tr>"#);
    for l in &r.layers {
        let _ = write!(
            o,
            r#"<tr><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td><code>{}</code></td></tr>"#,
            l.index,
            human(l.size),
            l.entries,
            esc(l.created_by.as_deref().unwrap_or("(no history)"))
        );
    }
    o.push_str("</table></section>");

    o.push_str(r#"<section id="leftovers"><h2>Likely build leftovers</h2>"#);
    if r.leftovers.is_empty() {
        o.push_str("<p>None found.</p>");
    } else {
        o.push_str(
            "<table><tr><th>kind</th><th>path</th><th>size</th><th>files</th><th>why</th></tr>",
        );
        for l in &r.leftovers {
            let _ = write!(
                o,
                r#"<tr><td>{}</td><td><code>{}</code></td><td class="n">{}</td><td class="n">{}</td><td>{}</td></tr>"#,
                esc(l.kind.word()),
                esc(&l.path),
                human(l.size),
                l.files,
                esc(&l.note)
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</section>");

    let w = &r.wasted;
    let _ = write!(
        o,
        r#"<section id="wasted"><h2>Wasted space</h2><p>{} ({} bytes) of {} is overwritten or deleted by later layers: efficiency {:.1}%.</p>"#,
        human(w.bytes),
        w.bytes,
        human(w.total),
        w.efficiency
    );
    if !w.files.is_empty() {
        o.push_str("<table><tr><th>file</th><th>size</th><th>what happened</th></tr>");
        for l in &w.files {
            let _ = write!(
                o,
                r#"<tr><td><code>{}</code></td><td class="n">{}</td><td>{}</td></tr>"#,
                esc(&l.path),
                human(l.size),
                esc(&lost_words(l))
            );
        }
        o.push_str("</table>");
    }
    let d = &r.duplicates;
    let _ = write!(
        o,
        r#"<h3>Duplicated files</h3><p>{} ({} bytes) in {} groups of identical files.</p>"#,
        human(d.bytes),
        d.bytes,
        d.count
    );
    if !d.groups.is_empty() {
        o.push_str("<table><tr><th>copies</th><th>size</th><th>paths</th></tr>");
        for g in &d.groups {
            let _ = write!(
                o,
                r#"<tr><td class="n">{}</td><td class="n">{}</td><td><code>{}</code></td></tr>"#,
                g.paths.len(),
                human(g.size),
                esc(&g.paths.join(", "))
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</section>\n</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squarify_fills_the_rectangle_proportionally() {
        let r = Rect {
            x: 0.0,
            y: 0.0,
            w: 600.0,
            h: 400.0,
        };
        let v = [6.0, 6.0, 4.0, 3.0, 2.0, 2.0, 1.0];
        let rects = squarify(&v, r);
        let total: f64 = rects.iter().map(|r| r.w * r.h).sum();
        assert!((total - 240_000.0).abs() < 1e-6);
        for (val, rc) in v.iter().zip(&rects) {
            assert!((rc.w * rc.h - val / 24.0 * 240_000.0).abs() < 1e-6);
            assert!(rc.x >= -1e-9 && rc.y >= -1e-9);
            assert!(rc.x + rc.w <= 600.0 + 1e-6 && rc.y + rc.h <= 400.0 + 1e-6);
        }
        assert_eq!(esc("<a&\"b\">"), "&lt;a&amp;&quot;b&quot;&gt;");
    }
}
