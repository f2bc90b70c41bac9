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
    StepFailed {
        step: StepIndex,
        message: String,
    },
    /// The build succeeded: its image is committed (sent last, and only on success).
    Finished,
    /// Export phase messages (`exporting layers`, `writing image sha256:...`, `naming to ...`).
    Export {
        message: String,
        elapsed: Option<Duration>,
    },
}

#[derive(Debug, Clone)]
pub struct StepInfo {
    /// `[deployer 3/5] COPY --from=installer /app/dist /usr/share/nginx/html`
    pub name: String,
    pub stage: String,
    /// 1-based Dockerfile line of the instruction (0 for implicit steps).
    pub line: usize,
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
