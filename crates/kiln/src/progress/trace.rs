//! The build as BuildKit's progress displays see it: vertexes (one per step that reports, plus
//! "exporting to image"), each with a start, an end, a cached or error mark, its log lines and
//! its sub-steps ("statuses"). The engine's events are folded in here; the plain, tty and
//! rawjson views render what changed.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use kiln_build::event::{Event, StepInfo};

/// BuildKit's exporter vertex: its digest is the sha256 of its name.
pub const EXPORT_NAME: &str = "exporting to image";
pub const EXPORT_DIGEST: &str =
    "sha256:e8c613e07b0b7ff33893b694f7759a10d42e180f2b4dc349fb57dc6b71dcab00";

#[derive(Debug, Clone)]
pub struct Vertex {
    pub digest: String,
    pub name: String,
    /// BuildKit's `#N`: vertexes are numbered in plan order.
    pub number: usize,
    pub started: Option<SystemTime>,
    pub completed: Option<SystemTime>,
    /// How long the step took as the engine measured it (the DONE time).
    pub elapsed: Option<Duration>,
    pub cached: bool,
    pub error: Option<String>,
    /// The last lines the step printed and when, for the error box (BuildKit keeps ten).
    pub tail: Vec<(SystemTime, String)>,
    pub statuses: Vec<Status>,
}

impl Vertex {
    pub fn duration(&self, now: SystemTime) -> Duration {
        match (self.started, self.completed, self.elapsed) {
            (_, Some(_), Some(e)) => e,
            (Some(s), end, _) => end.unwrap_or(now).duration_since(s).unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }
}

/// A sub-step of a vertex (`exporting layers`, `naming to docker.io/library/app`).
#[derive(Debug, Clone)]
pub struct Status {
    pub id: String,
    pub started: SystemTime,
    pub completed: Option<SystemTime>,
}

/// What changed, for the views.
#[derive(Debug, Clone)]
pub enum Update {
    /// The plan is known: every vertex, none started.
    Planned,
    /// Vertex `.0` started, completed, was cached or failed.
    Vertex(usize),
    /// Status `.1` of vertex `.0` started or completed.
    Status(usize, usize),
    /// Complete lines vertex `.0` printed, at `.2`.
    Log(usize, Vec<String>, SystemTime),
    /// Raw bytes vertex `.0` printed (rawjson sends them as they came).
    Bytes(usize, Vec<u8>, SystemTime),
    /// An `--explain` note about vertex `.0`.
    Note(usize, String),
}

const TAIL_LINES: usize = 10;

#[derive(Default)]
pub struct Trace {
    pub vertexes: Vec<Vertex>,
    /// Step index → vertex index (None for steps that report nothing).
    step_vertex: Vec<Option<usize>>,
    /// The step whose events drive each vertex: the first to report.
    owner: HashMap<usize, usize>,
    /// A step's unfinished last line, completed by its next output.
    partial: HashMap<usize, String>,
    export: Option<usize>,
    /// `[internal]` vertexes by name.
    internal: HashMap<String, usize>,
    /// The engine said the image is committed.
    pub succeeded: bool,
}

impl Trace {
    /// Vertexes the counter counts so far (BuildKit's total grows when the exporter appears).
    pub fn total(&self) -> usize {
        self.vertexes.len()
    }

    pub fn completed(&self) -> usize {
        self.vertexes
            .iter()
            .filter(|v| v.completed.is_some())
            .count()
    }

    /// Fold `ev` in; returns what changed.
    pub fn apply(&mut self, ev: Event) -> Vec<Update> {
        let now = SystemTime::now();
        match ev {
            Event::Planned { steps } => {
                self.plan(&steps);
                vec![Update::Planned]
            }
            // BuildKit says nothing about stages it leaves out.
            Event::StageSkipped { .. } => vec![],
            Event::StepStarted { step } => self.with_owner(step, |v| {
                if v.started.is_some() {
                    return false;
                }
                v.started = Some(now);
                true
            }),
            Event::StepCached { step } => self.with_owner(step, |v| {
                v.started.get_or_insert(now);
                v.completed = Some(now);
                v.elapsed = Some(Duration::ZERO);
                v.cached = true;
                true
            }),
            Event::StepDone { step, elapsed } => self.with_owner(step, |v| {
                v.started.get_or_insert(now);
                v.completed = Some(now);
                v.elapsed = Some(elapsed);
                true
            }),
            Event::StepFailed { step, message } => {
                // A failure counts whichever step of a shared vertex had it.
                let Some(vi) = self.step_vertex.get(step).copied().flatten() else {
                    return vec![];
                };
                let v = &mut self.vertexes[vi];
                v.started.get_or_insert(now);
                v.completed = Some(now);
                v.error = Some(message);
                vec![Update::Vertex(vi)]
            }
            Event::CacheMiss { step, reason } => match self.step_vertex.get(step).copied() {
                Some(Some(vi)) => vec![Update::Note(vi, format!("cache miss: {reason}"))],
                _ => vec![],
            },
            Event::StepOutput { step, data } => self.output(step, data, now),
            Event::Export { message, elapsed } => self.export(message, elapsed, now),
            Event::Internal {
                vertex,
                status,
                done,
                error,
            } => self.internal(vertex, status, done, error, now),
            Event::Finished => {
                self.succeeded = true;
                let mut out = Vec::new();
                if let Some(vi) = self.export {
                    out.extend(self.close_statuses(vi, now));
                    let v = &mut self.vertexes[vi];
                    v.completed = Some(now);
                    out.push(Update::Vertex(vi));
                }
                out
            }
        }
    }

    fn plan(&mut self, steps: &[StepInfo]) {
        let mut by_digest: HashMap<&str, usize> = HashMap::new();
        self.step_vertex = steps
            .iter()
            .map(|s| {
                if !s.reported {
                    return None;
                }
                Some(*by_digest.entry(&s.digest).or_insert_with(|| {
                    self.vertexes.push(Vertex {
                        digest: s.digest.clone(),
                        name: s.name.clone(),
                        number: self.vertexes.len() + 1,
                        started: None,
                        completed: None,
                        elapsed: None,
                        cached: false,
                        error: None,
                        tail: Vec::new(),
                        statuses: Vec::new(),
                    });
                    self.vertexes.len() - 1
                }))
            })
            .collect();
    }

    /// Apply `f` to the vertex of `step` if `step` drives it (the first of its steps to
    /// report; the others are the same work shown once).
    fn with_owner(&mut self, step: usize, f: impl FnOnce(&mut Vertex) -> bool) -> Vec<Update> {
        let Some(vi) = self.step_vertex.get(step).copied().flatten() else {
            return vec![];
        };
        if *self.owner.entry(vi).or_insert(step) != step {
            return vec![];
        }
        if f(&mut self.vertexes[vi]) {
            vec![Update::Vertex(vi)]
        } else {
            vec![]
        }
    }

    fn output(&mut self, step: usize, data: Vec<u8>, now: SystemTime) -> Vec<Update> {
        let Some(vi) = self.step_vertex.get(step).copied().flatten() else {
            return vec![];
        };
        let text = String::from_utf8_lossy(&data);
        let mut pending = self.partial.remove(&step).unwrap_or_default();
        pending.push_str(&text);
        let mut lines: Vec<String> = pending.split('\n').map(str::to_string).collect();
        let last = lines.pop().unwrap_or_default();
        if !last.is_empty() {
            self.partial.insert(step, last);
        }
        let v = &mut self.vertexes[vi];
        v.tail.extend(lines.iter().map(|l| (now, l.clone())));
        let excess = v.tail.len().saturating_sub(TAIL_LINES);
        v.tail.drain(..excess);
        let mut out = vec![Update::Bytes(vi, data, now)];
        if !lines.is_empty() {
            out.push(Update::Log(vi, lines, now));
        }
        out
    }

    /// Lines a step left unfinished when its output ended: shown as they are.
    pub fn flush_partial(&mut self, now: SystemTime) -> Vec<Update> {
        let mut out = Vec::new();
        for (step, line) in std::mem::take(&mut self.partial) {
            if let Some(vi) = self.step_vertex.get(step).copied().flatten() {
                self.vertexes[vi].tail.push((now, line.clone()));
                out.push(Update::Log(vi, vec![line], now));
            }
        }
        out
    }

    fn export(
        &mut self,
        message: String,
        elapsed: Option<Duration>,
        now: SystemTime,
    ) -> Vec<Update> {
        let mut out = Vec::new();
        let vi = match self.export {
            Some(vi) => vi,
            None => {
                self.vertexes.push(Vertex {
                    digest: EXPORT_DIGEST.into(),
                    name: EXPORT_NAME.into(),
                    number: self.vertexes.len() + 1,
                    started: Some(elapsed.and_then(|e| now.checked_sub(e)).unwrap_or(now)),
                    completed: None,
                    elapsed: None,
                    cached: false,
                    error: None,
                    tail: Vec::new(),
                    statuses: Vec::new(),
                });
                let vi = self.vertexes.len() - 1;
                self.export = Some(vi);
                out.push(Update::Vertex(vi));
                vi
            }
        };
        let open = self.vertexes[vi]
            .statuses
            .iter()
            .position(|s| s.id == message && s.completed.is_none());
        match (open, elapsed) {
            // The end of a phase announced when it started.
            (Some(si), Some(_)) => {
                self.vertexes[vi].statuses[si].completed = Some(now);
                out.push(Update::Status(vi, si));
            }
            (Some(_), None) => {}
            (None, _) => {
                // A new phase ends the one before it (naming has no separate end).
                out.extend(self.close_statuses(vi, now));
                let started = elapsed.and_then(|e| now.checked_sub(e)).unwrap_or(now);
                let v = &mut self.vertexes[vi];
                v.statuses.push(Status {
                    id: message,
                    started,
                    completed: elapsed.map(|_| now),
                });
                out.push(Update::Status(vi, v.statuses.len() - 1));
            }
        }
        out
    }

    /// An `[internal]` vertex (a base image's pull): made when first named, numbered before
    /// the steps planned after it.
    fn internal(
        &mut self,
        name: String,
        status: Option<String>,
        done: bool,
        error: Option<String>,
        now: SystemTime,
    ) -> Vec<Update> {
        let mut out = Vec::new();
        let vi = match self.internal.get(&name) {
            Some(&vi) => vi,
            None => {
                self.vertexes.push(Vertex {
                    digest: kiln_image::Digest::of(name.as_bytes()).to_string(),
                    name: name.clone(),
                    number: self.vertexes.len() + 1,
                    started: Some(now),
                    completed: None,
                    elapsed: None,
                    cached: false,
                    error: None,
                    tail: Vec::new(),
                    statuses: Vec::new(),
                });
                let vi = self.vertexes.len() - 1;
                self.internal.insert(name, vi);
                out.push(Update::Vertex(vi));
                vi
            }
        };
        match status {
            Some(id) => {
                let v = &mut self.vertexes[vi];
                match v.statuses.iter().position(|s| s.id == id) {
                    Some(si) if done && v.statuses[si].completed.is_none() => {
                        v.statuses[si].completed = Some(now);
                        out.push(Update::Status(vi, si));
                    }
                    Some(_) => {}
                    None => {
                        v.statuses.push(Status {
                            id,
                            started: now,
                            completed: done.then_some(now),
                        });
                        out.push(Update::Status(vi, v.statuses.len() - 1));
                    }
                }
            }
            None if done => {
                out.extend(self.close_statuses(vi, now));
                let v = &mut self.vertexes[vi];
                v.completed = Some(now);
                v.error = error;
                out.push(Update::Vertex(vi));
            }
            None => {}
        }
        out
    }

    fn close_statuses(&mut self, vi: usize, now: SystemTime) -> Vec<Update> {
        let mut out = Vec::new();
        for (si, s) in self.vertexes[vi].statuses.iter_mut().enumerate() {
            if s.completed.is_none() {
                s.completed = Some(now);
                out.push(Update::Status(vi, si));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, digest: &str, reported: bool) -> StepInfo {
        StepInfo {
            name: name.into(),
            stage: "stage-0".into(),
            line: 1,
            digest: digest.into(),
            reported,
        }
    }

    #[test]
    fn shared_vertexes_are_counted_once_and_silent_steps_not_at_all() {
        let mut t = Trace::default();
        t.apply(Event::Planned {
            steps: vec![
                info("[a 1/2] FROM x", "sha256:1", true),
                info("[a 2/2] RUN y", "sha256:2", true),
                info("[b 1/2] FROM x", "sha256:1", true),
                info("FROM a", "sha256:3", false),
            ],
        });
        assert_eq!(t.total(), 2);
        t.apply(Event::StepStarted { step: 0 });
        t.apply(Event::StepDone {
            step: 0,
            elapsed: Duration::ZERO,
        });
        // The second FROM of x is the same vertex: its own events change nothing.
        assert!(t.apply(Event::StepStarted { step: 2 }).is_empty());
        t.apply(Event::StepCached { step: 1 });
        assert_eq!((t.completed(), t.total()), (2, 2));
    }

    #[test]
    fn export_phases_become_statuses_of_one_vertex_that_finishes_with_the_build() {
        let mut t = Trace::default();
        t.apply(Event::Planned { steps: vec![] });
        let ms = Some(Duration::from_millis(1));
        for (m, e) in [
            ("exporting layers", None),
            ("exporting layers", ms),
            ("writing image sha256:ab", ms),
            ("naming to docker.io/library/a", None),
        ] {
            t.apply(Event::Export {
                message: m.into(),
                elapsed: e,
            });
        }
        let v = &t.vertexes[0];
        assert_eq!(v.name, EXPORT_NAME);
        let ids: Vec<&str> = v.statuses.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "exporting layers",
                "writing image sha256:ab",
                "naming to docker.io/library/a"
            ]
        );
        assert!(v.completed.is_none() && v.statuses[2].completed.is_none());
        t.apply(Event::Finished);
        let v = &t.vertexes[0];
        assert!(v.completed.is_some() && v.statuses.iter().all(|s| s.completed.is_some()));
        assert!(t.succeeded);
    }

    #[test]
    fn output_is_split_into_lines_keeping_an_unfinished_one() {
        let mut t = Trace::default();
        t.apply(Event::Planned {
            steps: vec![info("[1/1] RUN y", "sha256:2", true)],
        });
        let u = t.apply(Event::StepOutput {
            step: 0,
            data: b"a\nb".to_vec(),
        });
        assert!(matches!(&u[1], Update::Log(0, l, _) if l == &["a"]));
        let u = t.apply(Event::StepOutput {
            step: 0,
            data: b"c\n".to_vec(),
        });
        assert!(matches!(&u[1], Update::Log(0, l, _) if l == &["bc"]));
        let tail: Vec<&str> = t.vertexes[0].tail.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(tail, ["a", "bc"]);
    }
}
