//! `--progress=plain`: BuildKit's text log. One vertex is open on screen at a time; switching
//! to another prints a blank line and its header (`#5 [2/4] RUN ...`, then its digest, as
//! docker 20.10 does); its lines follow (`#5 0.184 hello`), and it ends with `#5 DONE 0.3s`,
//! `#5 CACHED` or `#5 ERROR: ...`. A vertex left open for another prints `#5 ...`; lines of
//! vertexes not on screen wait until they are.

use std::io::Write;
use std::time::{Duration, SystemTime};

use super::View;
use super::trace::{Trace, Update, Vertex};

/// A status still open after this long has its start printed too (`#9 exporting layers`),
/// as BuildKit's display rate makes it do; quicker ones print only their end.
const STATUS_START_AFTER: Duration = Duration::from_millis(100);

pub struct Plain<W: Write> {
    w: W,
    current: Option<usize>,
    not_first: bool,
    /// Lines of vertexes that are not on screen, per vertex.
    pending: Vec<Vec<String>>,
    /// Statuses whose start line is printed (vertex, status).
    announced: Vec<(usize, usize)>,
}

impl<W: Write> Plain<W> {
    pub fn new(w: W) -> Self {
        Plain {
            w,
            current: None,
            not_first: false,
            pending: Vec::new(),
            announced: Vec::new(),
        }
    }

    fn update_view(&mut self, t: &Trace, u: &Update) {
        if self.pending.len() < t.vertexes.len() {
            self.pending.resize(t.vertexes.len(), Vec::new());
        }
        match u {
            Update::Planned | Update::Bytes(..) => {}
            Update::Vertex(vi) => {
                let v = &t.vertexes[*vi];
                if v.completed.is_some() {
                    self.show(t, *vi);
                    let n = v.number;
                    let end = match (&v.error, v.cached) {
                        (Some(e), _) => format!("#{n} ERROR: {e}"),
                        (None, true) => format!("#{n} CACHED"),
                        (None, false) => {
                            format!(
                                "#{n} DONE {:.1}s",
                                v.duration(SystemTime::now()).as_secs_f64()
                            )
                        }
                    };
                    self.line(end);
                    self.current = None;
                    // Make a vertex still running the one on screen.
                    if let Some(open) = t
                        .vertexes
                        .iter()
                        .position(|v| v.started.is_some() && v.completed.is_none())
                    {
                        self.show(t, open);
                    }
                } else if v.started.is_some() && self.current.is_none() {
                    self.show(t, *vi);
                }
            }
            Update::Log(vi, lines, at) => {
                let v = &t.vertexes[*vi];
                let ts = timestamp(v, *at);
                let lines = lines
                    .iter()
                    .map(|l| format!("#{} {ts} {l}", v.number))
                    .collect();
                self.route(t, *vi, lines);
            }
            Update::Note(vi, note) => {
                let line = format!("#{} {note}", t.vertexes[*vi].number);
                self.route(t, *vi, vec![line]);
            }
            Update::Status(vi, si) => {
                let v = &t.vertexes[*vi];
                let s = &v.statuses[*si];
                let Some(end) = s.completed else { return };
                let secs = end
                    .duration_since(s.started)
                    .unwrap_or_default()
                    .as_secs_f64();
                let tm = if secs > 0.01 {
                    format!(" {secs:.1}s")
                } else {
                    String::new()
                };
                let line = format!("#{} {}{tm} done", v.number, s.id);
                self.route(t, *vi, vec![line]);
            }
        }
    }

    /// Time passes: announce statuses that have been open a while.
    fn announce(&mut self, t: &Trace) {
        let now = SystemTime::now();
        for (vi, v) in t.vertexes.iter().enumerate() {
            for (si, s) in v.statuses.iter().enumerate() {
                let long = now.duration_since(s.started).unwrap_or_default() >= STATUS_START_AFTER;
                if s.completed.is_none() && long && !self.announced.contains(&(vi, si)) {
                    self.announced.push((vi, si));
                    let line = format!("#{} {}", v.number, s.id);
                    self.route(t, vi, vec![line]);
                }
            }
        }
    }

    /// After the last event: the error box BuildKit prints for each failed vertex.
    fn error_boxes(&mut self, t: &Trace) {
        for v in &t.vertexes {
            if v.error.is_some() {
                let _ = writeln!(self.w, "------\n > {}:\n------", v.name);
            }
        }
        let _ = self.w.flush();
    }

    fn route(&mut self, t: &Trace, vi: usize, lines: Vec<String>) {
        if self.current.is_none() || self.current == Some(vi) {
            self.show(t, vi);
            for l in lines {
                self.line(l);
            }
        } else {
            self.pending[vi].extend(lines);
        }
    }

    /// Put vertex `vi` on screen (its header, then what it printed meanwhile).
    fn show(&mut self, t: &Trace, vi: usize) {
        if self.current == Some(vi) {
            return;
        }
        if let Some(c) = self.current {
            let old = &t.vertexes[c];
            if old.completed.is_none() {
                self.line(format!("#{} ...", old.number));
            }
        }
        if self.not_first {
            self.line(String::new());
        }
        self.not_first = true;
        let v = &t.vertexes[vi];
        self.line(format!("#{} {}", v.number, v.name));
        self.line(format!("#{} {}", v.number, v.digest));
        self.current = Some(vi);
        for l in std::mem::take(&mut self.pending[vi]) {
            self.line(l);
        }
    }

    fn line(&mut self, l: String) {
        let _ = writeln!(self.w, "{l}");
    }
}

/// Seconds since the vertex started, as BuildKit prints them before a log line: three
/// decimals under 10s, two under 100s, then one.
pub fn timestamp(v: &Vertex, at: SystemTime) -> String {
    let secs = v
        .started
        .and_then(|s| at.duration_since(s).ok())
        .unwrap_or_default()
        .as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.3}")
    } else if secs < 100.0 {
        format!("{secs:.2}")
    } else {
        format!("{secs:.1}")
    }
}

impl<W: Write> View for Plain<W> {
    fn update(&mut self, t: &Trace, u: &Update) {
        self.update_view(t, u);
    }

    fn tick(&mut self, t: &Trace) {
        self.announce(t);
    }

    fn finish(&mut self, t: &Trace) {
        self.error_boxes(t);
    }
}
