//! Rendering build events as BuildKit does: `plain` (its text log), `tty` (its live view),
//! `rawjson` (its status events as JSON lines) or `quiet`. The engine's events are folded
//! into a [`trace::Trace`] of vertexes first; each view renders what changed. Also small
//! formatting helpers shared by build commands. docs/progress.md describes the output.

mod failure;
mod plain;
mod rawjson;
mod trace;
mod tty;

use std::io::IsTerminal;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use kiln_build::event::Event;

pub use failure::render_error;
use trace::{Trace, Update};

/// Overrides `--progress=auto` (the default), as in docker and buildx.
pub const BUILDKIT_PROGRESS: &str = "BUILDKIT_PROGRESS";
/// Set and not empty: the tty view has no colours (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Plain,
    Tty,
    Quiet,
    RawJson,
}

impl ProgressMode {
    /// The mode for `--progress=VALUE`. `auto` (the default) takes `$BUILDKIT_PROGRESS` when it
    /// is set, else tty on a terminal and plain otherwise; tty without a terminal is plain, as
    /// docker 20.10 has it.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let from_env = std::env::var(BUILDKIT_PROGRESS)
            .ok()
            .filter(|v| !v.is_empty() && s == "auto");
        let (value, source) = match &from_env {
            Some(v) => (v.as_str(), BUILDKIT_PROGRESS),
            None => (s, "--progress"),
        };
        let on_terminal = std::io::stderr().is_terminal();
        Ok(match value {
            "plain" => ProgressMode::Plain,
            "rawjson" => ProgressMode::RawJson,
            "quiet" => ProgressMode::Quiet,
            "tty" | "auto" if on_terminal => ProgressMode::Tty,
            "tty" | "auto" => ProgressMode::Plain,
            p => anyhow::bail!(
                "invalid value {p:?} passed to {source}, valid values are: auto, plain, tty, quiet, rawjson"
            ),
        })
    }
}

/// Consumes events until the sender side is dropped.
pub fn render(rx: Receiver<Event>, mode: ProgressMode, explain: bool) {
    let err = std::io::stderr();
    match mode {
        ProgressMode::Quiet => drive(rx, explain, &mut Quiet),
        ProgressMode::Plain => drive(rx, explain, &mut plain::Plain::new(err.lock())),
        ProgressMode::RawJson => drive(rx, explain, &mut rawjson::RawJson::new(err.lock())),
        ProgressMode::Tty => {
            let color = std::env::var_os(NO_COLOR).is_none_or(|v| v.is_empty());
            let mut view = tty::Tty::new(err.lock(), color, Box::new(terminal_size));
            drive(rx, explain, &mut view)
        }
    }
}

/// A way of showing the build.
trait View {
    /// Something changed.
    fn update(&mut self, t: &Trace, u: &Update);
    /// Called at least every 100ms while the build runs.
    fn tick(&mut self, t: &Trace);
    /// The build ended (`t.succeeded` says how).
    fn finish(&mut self, t: &Trace);
}

/// Says nothing, unless a step fails: then its last lines, which are all there is to go on.
struct Quiet;

impl View for Quiet {
    fn update(&mut self, _: &Trace, _: &Update) {}
    fn tick(&mut self, _: &Trace) {}
    fn finish(&mut self, t: &Trace) {
        tty::Tty::new(std::io::stderr().lock(), false, Box::new(|| (80, 10))).error_boxes(t);
    }
}

/// Fold events into a trace and show them with `view`.
fn drive(rx: Receiver<Event>, explain: bool, view: &mut dyn View) {
    let mut t = Trace::default();
    let mut last_tick = Instant::now();
    loop {
        let updates = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => t.apply(ev),
            Err(RecvTimeoutError::Timeout) => Vec::new(),
            Err(RecvTimeoutError::Disconnected) => break,
        };
        for u in updates {
            if explain || !matches!(u, Update::Note(..)) {
                view.update(&t, &u);
            }
        }
        if last_tick.elapsed() >= Duration::from_millis(100) {
            view.tick(&t);
            last_tick = Instant::now();
        }
    }
    for u in t.flush_partial(SystemTime::now()) {
        view.update(&t, &u);
    }
    view.finish(&t);
}

/// The terminal's (columns, rows) on stderr; 80x10 when it cannot be read (BuildKit's).
fn terminal_size() -> (usize, usize) {
    match rustix::termios::tcgetwinsize(std::io::stderr()) {
        Ok(w) if w.ws_col > 0 && w.ws_row > 0 => (w.ws_col as usize, w.ws_row as usize),
        _ => (80, 10),
    }
}
