//! The text form of a report.

use std::fmt::Write;

use crate::report::{Report, lost_words};
use crate::tree::DirSize;
use crate::units::human;

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn dirs(out: &mut String, d: &[DirSize], indent: usize) {
    for e in d {
        let from = if e.origins.is_empty() {
            String::new()
        } else {
            format!("  ← {}", crate::origin::summary(&e.origins))
        };
        let _ = writeln!(
            out,
            "  {:>8}  {:>7} files  {}{}{from}",
            human(e.size),
            e.files,
            "  ".repeat(indent),
            e.path
        );
        dirs(out, &e.children, indent + 1);
    }
}

/// Renders `r` for a terminal.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let i = &r.image;
    let _ = writeln!(o, "Image: {} ({})", i.name, &i.id);
    let _ = writeln!(
        o,
        "Size: {} ({} bytes) in {} layers; {} files, {} ({} bytes) in the final filesystem",
        human(i.size),
        i.size,
        i.layers,
        i.files,
        human(i.content_size),
        i.content_size
    );

    if let Some(b) = &r.build {
        let _ = writeln!(o, "\nBuild stages (built here, {} ms):", b.duration_ms);
        let _ = writeln!(
            o,
            "  {:<20} {:>9} {:>9} {:>8}  BASE",
            "STAGE", "SIZE", "TIME", "CACHED"
        );
        for s in &b.stages {
            let _ = writeln!(
                o,
                "  {:<20} {:>9} {:>7}ms {:>8}  {}{}",
                truncate(&s.name, 20),
                human(s.size),
                s.duration_ms,
                format!("{}/{}", s.cached_steps, s.steps),
                s.base,
                if s.is_final { "  (final)" } else { "" }
            );
        }
        if let Some(sentence) = &b.ship_thin {
            let _ = writeln!(o, "  build fat, ship thin: {sentence}");
        }
    }

    let _ = writeln!(o, "\nLayers:");
    let _ = writeln!(
        o,
        "  {:>3} {:>9}  {:>7}  CREATED BY",
        "#", "SIZE", "ENTRIES"
    );
    for l in &r.layers {
        let _ = writeln!(
            o,
            "  {:>3} {:>9}  {:>7}  {}",
            l.index,
            human(l.size),
            l.entries,
            truncate(l.created_by.as_deref().unwrap_or("(no history)"), 100)
        );
    }

    if !r.shipped_from.is_empty() {
        let _ = writeln!(o, "\nShipped from:");
        for f in &r.shipped_from {
            let _ = writeln!(
                o,
                "  {:>8}  {:>7} files  {}",
                human(f.bytes),
                f.files,
                f.origin
            );
        }
    }

    let _ = writeln!(o, "\nLargest directories:");
    dirs(&mut o, &r.directories, 0);
    let _ = writeln!(o, "\nLargest files:");
    for f in &r.files {
        match &f.origin {
            Some(from) => {
                let _ = writeln!(
                    o,
                    "  {:>8}  {}  (layer {}, {from})",
                    human(f.size),
                    f.path,
                    f.layer
                );
            }
            None => {
                let _ = writeln!(o, "  {:>8}  {}  (layer {})", human(f.size), f.path, f.layer);
            }
        }
    }

    let _ = writeln!(o, "\nLikely build leftovers:");
    if r.leftovers.is_empty() {
        let _ = writeln!(o, "  none found");
    }
    for l in &r.leftovers {
        let _ = writeln!(
            o,
            "  {:>8}  {:<13} {}  ({} files; {})",
            human(l.size),
            l.kind.word(),
            l.path,
            l.files,
            l.note
        );
    }

    let w = &r.wasted;
    let _ = writeln!(
        o,
        "\nWasted: {} ({} bytes) of {} overwritten or deleted by later layers; efficiency {:.1}%",
        human(w.bytes),
        w.bytes,
        human(w.total),
        w.efficiency
    );
    for l in &w.files {
        let _ = writeln!(o, "  {:>8}  {}  ({})", human(l.size), l.path, lost_words(l));
    }
    if w.count > w.files.len() {
        let _ = writeln!(o, "  ... and {} more", w.count - w.files.len());
    }

    let d = &r.duplicates;
    let _ = writeln!(
        o,
        "\nDuplicated: {} ({} bytes) in {} groups of identical files",
        human(d.bytes),
        d.bytes,
        d.count
    );
    for g in &d.groups {
        let _ = writeln!(
            o,
            "  {:>8}  {} copies of {}: {}",
            human(g.size),
            g.paths.len(),
            &g.digest[..19],
            g.paths.join(", ")
        );
    }

    if let Some(c) = &r.compare {
        let _ = writeln!(o, "\nCompared with {} ({}):", c.other.name, c.other.id);
        let _ = writeln!(o, "  {:<28} {:>10} {:>10}", "", "THIS", "OTHER");
        let _ = writeln!(
            o,
            "  {:<28} {:>10} {:>10}",
            "image size",
            human(i.size),
            human(c.other.size)
        );
        for t in &c.top_dirs {
            let _ = writeln!(
                o,
                "  {:<28} {:>10} {:>10}",
                truncate(&t.path, 28),
                human(t.this),
                human(t.other)
            );
        }
        let _ = writeln!(o, "  {}", c.sentence);
        if !c.differences.is_empty() {
            let _ = writeln!(o, "  where the difference is:");
        }
        for d in &c.differences {
            let sign = if d.other >= d.this { "-" } else { "+" };
            let _ = writeln!(
                o,
                "    {sign}{:>8}  {}{}",
                human(d.this.abs_diff(d.other)),
                d.path,
                d.label
                    .as_ref()
                    .map(|l| format!("  ({l})"))
                    .unwrap_or_default()
            );
        }
    }
    o
}
