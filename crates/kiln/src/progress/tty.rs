//! `--progress=tty`: BuildKit's live view, redrawn in place.
//!
//! ```text
//! [+] Building 2.1s (6/6) FINISHED
//!  => [1/4] FROM localhost/busybox                                   0.0s
//!  => CACHED [2/4] RUN echo one                                      0.0s
//!  => [3/4] RUN make                                                 1.9s
//!  => => # compiling...
//!  => exporting to image                                             0.1s
//!  => => exporting layers                                            0.1s
//!  => => naming to docker.io/library/app                             0.0s
//! ```
//!
//! Lines fill the terminal's width (80 when it cannot be read). Finished steps are blue,
//! failed ones red, cached ones dim, the running step's last lines faint — no colour when
//! `NO_COLOR` is set. The counter counts finished vertexes; FINISHED is said only when the
//! build succeeded and every vertex finished. At the end everything is drawn once more,
//! the failing step included, then the error box with its last lines.

use std::io::Write;
use std::time::{Duration, SystemTime};

use super::View;
use super::plain::timestamp;
use super::trace::{Trace, Update};

const BLUE: &str = "\x1b[34m";
const RED: &str = "\x1b[31m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";
/// Lines of a running step's output shown under it (BuildKit's default).
const TERM_HEIGHT: usize = 6;
/// Columns a running step's output gives up to the ` => => # ` prefix and margin.
const TERM_PAD: usize = 10;

pub struct Tty<W: Write> {
    w: W,
    start: SystemTime,
    color: bool,
    /// Lines drawn last time (header included), to move back up over them.
    drawn: usize,
    size: Box<dyn Fn() -> (usize, usize) + Send>,
    notes: Vec<String>,
}

struct Job {
    name: String,
    /// Seconds to show.
    secs: f64,
    style: Option<&'static str>,
    /// The running step's last lines.
    term: Vec<String>,
}

impl<W: Write> Tty<W> {
    /// `size` gives the terminal's (width, height) at each redraw.
    pub fn new(w: W, color: bool, size: Box<dyn Fn() -> (usize, usize) + Send>) -> Self {
        Tty {
            w,
            start: SystemTime::now(),
            color,
            drawn: 0,
            size,
            notes: Vec::new(),
        }
    }

    /// Draw the view; `last` draws every step (not only what fits) and may say FINISHED.
    pub fn draw(&mut self, t: &Trace, last: bool) {
        // Nothing planned (a Dockerfile error): no view at all, as in plain mode.
        if t.total() == 0 && self.drawn == 0 {
            return;
        }
        let (width, height) = (self.size)();
        let width = width.max(20);
        let now = SystemTime::now();
        let mut jobs = jobs(t, now, width);
        // Only a running step with room beside the others shows its output.
        let running = jobs.iter().filter(|j| !j.term.is_empty()).count();
        if height.saturating_sub(2 + jobs.len() + running * (TERM_HEIGHT + 3)) == 0 && !last {
            jobs.iter_mut().for_each(|j| j.term.clear());
        }
        if !last {
            let room = height.saturating_sub(2).max(1);
            let lines: usize = jobs.iter().map(|j| 1 + j.term.len()).sum();
            if lines > room {
                let mut skip = lines - room;
                while skip > 0 && !jobs.is_empty() {
                    skip = skip.saturating_sub(1 + jobs[0].term.len());
                    jobs.remove(0);
                }
            }
        }
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        out.push('\r');
        out.push_str("\x1b[?25l");
        let finished = last && t.succeeded && t.total() > 0 && t.completed() == t.total();
        let header = format!(
            "[+] Building {:.1}s ({}/{}) {}",
            now.duration_since(self.start)
                .unwrap_or_default()
                .as_secs_f64(),
            t.completed(),
            t.total(),
            if finished { "FINISHED" } else { "" }
        );
        out.push_str(&pad(&header, width + 1));
        out.push('\n');
        let mut lines = 1;
        for j in &jobs {
            let timer = format!(" {:3.1}s", j.secs);
            let left = width.saturating_sub(4 + timer.len() + 2);
            let name: String = j.name.chars().take(left).collect();
            let line = format!(
                "{} {timer}",
                pad(&format!(" => {name}"), width - timer.len() - 1)
            );
            out.push_str(&self.paint(&line, j.style));
            out.push('\n');
            lines += 1;
            for l in &j.term {
                let l: String = l.chars().take(width.saturating_sub(TERM_PAD)).collect();
                out.push_str(&self.paint(&format!(" => => # {l}"), Some(DIM)));
                out.push('\n');
                lines += 1;
            }
        }
        // Blank what the last drawing had below.
        if self.drawn > lines {
            let extra = self.drawn - lines;
            for _ in 0..extra {
                out.push_str(&" ".repeat(width.saturating_sub(1)));
                out.push('\n');
            }
            out.push_str(&format!("\x1b[{extra}A"));
        }
        out.push_str("\x1b[?25h");
        self.drawn = lines;
        let _ = self.w.write_all(out.as_bytes());
        let _ = self.w.flush();
    }

    /// After the last drawing: the error box of each failed step, with its last lines.
    pub fn error_boxes(&mut self, t: &Trace) {
        for v in &t.vertexes {
            if v.error.is_some() {
                let _ = writeln!(self.w, "------\n > {}:", v.name);
                for (at, l) in &v.tail {
                    let l = kiln_build::event::clip(l);
                    let _ = writeln!(self.w, "#{} {} {l}", v.number, timestamp(v, *at));
                }
                let _ = writeln!(self.w, "------");
            }
        }
        let _ = self.w.flush();
    }

    fn paint(&self, s: &str, style: Option<&'static str>) -> String {
        match style {
            Some(c) if self.color => format!("{c}{s}{RESET}"),
            _ => s.to_string(),
        }
    }
}

impl<W: Write> View for Tty<W> {
    fn update(&mut self, t: &Trace, u: &Update) {
        // `--explain` notes would be redrawn over: they are printed under the final view.
        if let Update::Note(vi, note) = u {
            self.notes.push(format!("{}: {note}", t.vertexes[*vi].name));
        }
    }

    fn tick(&mut self, t: &Trace) {
        self.draw(t, false);
    }

    fn finish(&mut self, t: &Trace) {
        self.draw(t, true);
        for n in std::mem::take(&mut self.notes) {
            let _ = writeln!(self.w, "{n}");
        }
        self.error_boxes(t);
    }
}

/// The view's lines: vertexes in the order they started, each followed by its statuses.
fn jobs(t: &Trace, now: SystemTime, width: usize) -> Vec<Job> {
    let mut started: Vec<_> = t.vertexes.iter().filter(|v| v.started.is_some()).collect();
    started.sort_by_key(|v| (v.started, v.number));
    let mut out = Vec::new();
    for v in started {
        let mut name = v.name.replace('\t', " ");
        if v.error.is_some() {
            name = format!("ERROR {name}");
        }
        if v.cached {
            name = format!("CACHED {name}");
        }
        let style = match (v.completed, &v.error, v.cached) {
            (None, _, _) => None,
            (Some(_), Some(_), _) => Some(RED),
            (Some(_), None, true) => Some(DIM),
            (Some(_), None, false) => Some(BLUE),
        };
        let term = if v.completed.is_none() {
            let w = width.saturating_sub(TERM_PAD);
            let skip = v.tail.len().saturating_sub(TERM_HEIGHT);
            v.tail[skip..]
                .iter()
                .map(|(_, l)| l)
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.chars().take(w).collect())
                .collect()
        } else {
            Vec::new()
        };
        out.push(Job {
            name,
            secs: shown(v.duration(now)),
            style,
            term,
        });
        for s in &v.statuses {
            let end = s.completed.unwrap_or(now);
            out.push(Job {
                name: format!("=> {}", s.id),
                secs: shown(end.duration_since(s.started).unwrap_or_default()),
                style: s.completed.map(|_| BLUE),
                term: Vec::new(),
            });
        }
    }
    out
}

/// BuildKit shows under 0.05s as 0.0s.
fn shown(d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s < 0.05 { 0.0 } else { s }
}

fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    let target = width.saturating_sub(1);
    if n >= target {
        s.to_string()
    } else {
        format!("{s}{}", " ".repeat(target - n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_build::event::{Event, StepInfo};

    fn view(color: bool, succeed: bool) -> String {
        let mut t = Trace::default();
        t.apply(Event::Planned {
            steps: vec![
                StepInfo {
                    name: "[1/2] FROM x".into(),
                    stage: "stage-0".into(),
                    line: 1,
                    digest: "sha256:1".into(),
                    reported: true,
                },
                StepInfo {
                    name: "[2/2] RUN y".into(),
                    stage: "stage-0".into(),
                    line: 2,
                    digest: "sha256:2".into(),
                    reported: true,
                },
            ],
        });
        t.apply(Event::StepCached { step: 0 });
        t.apply(Event::StepStarted { step: 1 });
        if succeed {
            t.apply(Event::StepDone {
                step: 1,
                elapsed: Duration::from_millis(10),
            });
            t.apply(Event::Finished);
        } else {
            t.apply(Event::StepFailed {
                step: 1,
                message: "exit code: 1".into(),
            });
        }
        let mut buf = Vec::new();
        let mut tty = Tty::new(&mut buf, color, Box::new(|| (60, 20)));
        tty.finish(&t);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn finished_only_after_success_and_lines_fill_the_width() {
        let ok = view(false, true);
        assert!(ok.contains("(2/2) FINISHED"), "{ok}");
        assert!(ok.contains(" => CACHED [1/2] FROM x"), "{ok}");
        let line = ok.lines().find(|l| l.contains("RUN y")).unwrap();
        assert_eq!(line.chars().count(), 59, "{line:?}");
        let failed = view(false, false);
        assert!(!failed.contains("FINISHED"), "{failed}");
        assert!(failed.contains(" => ERROR [2/2] RUN y"), "{failed}");
        assert!(
            failed.contains("------\n > [2/2] RUN y:\n------"),
            "{failed}"
        );
    }

    #[test]
    fn colours_only_when_asked() {
        assert!(view(true, false).contains(RED));
        assert!(view(true, true).contains(BLUE));
        let plain = view(false, false);
        assert!(
            !plain.contains("\x1b[3") && !plain.contains("\x1b[0m"),
            "{plain:?}"
        );
    }
}
