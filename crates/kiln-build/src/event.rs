//! Progress events: the build engine reports, the CLI renders. Nothing here prints.

use std::sync::mpsc;
use std::time::Duration;

/// Identifies a step in the build graph.
pub type StepIndex = usize;

#[derive(Debug, Clone)]
pub enum Event {
    /// The plan is ready: every step that will be considered, in graph order.
    Planned {
        steps: Vec<StepInfo>,
    },
    /// A stage was left out because the target does not need it.
    StageSkipped {
        stage: String,
    },
    StepStarted {
        step: StepIndex,
    },
    /// The step's result came from the cache; nothing ran.
    StepCached {
        step: StepIndex,
    },
    /// Why the cache missed (only when an earlier build of this step is known).
    CacheMiss {
        step: StepIndex,
        reason: String,
    },
    /// A chunk of a RUN step's stdout/stderr.
    StepOutput {
        step: StepIndex,
        data: Vec<u8>,
    },
    StepDone {
        step: StepIndex,
        elapsed: Duration,
    },
    /// The step failed (it may not have started: a COPY whose source is missing fails while
    /// its cache key is computed). `message` is the error without the step's name.
    StepFailed {
        step: StepIndex,
        message: String,
    },
    /// The build succeeded: its image is committed (sent last, and only on success).
    Finished,
    /// Work outside the steps that BuildKit shows as a vertex of its own:
    /// `[internal] load metadata for docker.io/library/x:1` while a base image is pulled
    /// (planning waits for it, so these come before `Planned`). With `status`, one of the
    /// vertex's sub-steps (a layer's download) opens, or ends when `done`; without, the
    /// vertex starts, or ends when `done` (failed when `error` is set).
    Internal {
        vertex: String,
        status: Option<String>,
        done: bool,
        error: Option<String>,
    },
    /// Export phase messages (`exporting layers`, `writing image sha256:...`, `naming to ...`):
    /// the sub-steps of BuildKit's "exporting to image". `elapsed` is None when a phase starts
    /// (or is instant, as naming is).
    Export {
        message: String,
        elapsed: Option<Duration>,
    },
}

#[derive(Debug, Clone)]
pub struct StepInfo {
    /// `[deployer 3/5] COPY --from=installer /app/dist /usr/share/nginx/html`, numbered and
    /// expanded as BuildKit shows it (see `stepname`).
    pub name: String,
    pub stage: String,
    /// 1-based Dockerfile line of the instruction (0 for implicit steps).
    pub line: usize,
    /// `sha256:…` naming the vertex this step is on screen. Steps with the same digest are one
    /// vertex (the FROM of one image in several stages), as in BuildKit.
    pub digest: String,
    /// False for steps that report nothing (`FROM scratch`, `FROM <stage>`): they are not
    /// counted in the progress total.
    pub reported: bool,
}

/// Where the engine sends events. Cloneable across worker threads; a dropped receiver is fine.
#[derive(Clone)]
pub struct EventSink {
    tx: Option<mpsc::Sender<Event>>,
}

impl EventSink {
    pub fn new(tx: mpsc::Sender<Event>) -> Self {
        EventSink { tx: Some(tx) }
    }

    /// A sink that drops everything (tests, `-q`).
    pub fn discard() -> Self {
        EventSink { tx: None }
    }

    pub fn send(&self, ev: Event) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(ev);
        }
    }
}

/// Most bytes of a command or instruction echoed in a progress line or an error message.
pub const ECHO_LIMIT: usize = 1024;

/// `text` as echoed to the user: whole when short, else its first [`ECHO_LIMIT`] bytes (cut
/// at a character boundary) and a marker with the full size. A RUN of megabytes must not
/// make megabytes of progress and error output.
pub fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= ECHO_LIMIT {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(clip_head(text, text.len()))
}

/// [`clip`]'s long form for a text of `total` bytes of which only `head` is at hand (its
/// first [`ECHO_LIMIT`] bytes or more): what was kept of a line too long to hold.
pub fn clip_head(head: &str, total: usize) -> String {
    let mut end = ECHO_LIMIT.min(head.len());
    while !head.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({total} bytes)", &head[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_short_text_and_cuts_long_text_at_a_char_boundary() {
        assert_eq!(clip("RUN echo hi"), "RUN echo hi");
        let long = "é".repeat(ECHO_LIMIT);
        let c = clip(&long);
        assert!(c.len() < ECHO_LIMIT + 32, "{}", c.len());
        assert!(c.ends_with(&format!("… ({} bytes)", long.len())), "{c}");
    }
}
