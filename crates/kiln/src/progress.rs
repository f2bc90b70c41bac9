//! Rendering build events: BuildKit-like plain output (`#3 [stage 2/4] RUN ...`), a live tty
//! view, or nothing. Also small formatting helpers shared by build commands.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use kiln_build::event::{Event, StepInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Plain,
    Tty,
    Quiet,
}

impl ProgressMode {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "plain" | "rawjson" => ProgressMode::Plain,
            "tty" => ProgressMode::Tty,
            "quiet" => ProgressMode::Quiet,
            "auto" => {
                if std::io::stderr().is_terminal() {
                    ProgressMode::Tty
                } else {
                    ProgressMode::Plain
                }
            }
            p => anyhow::bail!("unsupported --progress {p:?}: use auto, plain, tty or quiet"),
        })
    }
}

#[derive(Clone, PartialEq)]
enum State {
    Waiting,
    Running(Instant),
    Cached,
    Done(Duration),
    Failed,
}

/// Consumes events until the sender side is dropped.
pub fn render(rx: Receiver<Event>, mode: ProgressMode, explain: bool) {
    match mode {
        ProgressMode::Quiet => for _ in rx {},
        ProgressMode::Plain => render_plain(rx, explain),
        ProgressMode::Tty => render_tty(rx, explain),
    }
}

fn render_plain(rx: Receiver<Event>, explain: bool) {
    let err = std::io::stderr();
    let mut w = err.lock();
    let start = Instant::now();
    let mut steps: Vec<StepInfo> = Vec::new();
    // BuildKit numbers vertices in the order they start.
    let mut numbers: BTreeMap<usize, usize> = BTreeMap::new();
    let mut started: BTreeMap<usize, Instant> = BTreeMap::new();
    let num = |i: usize, numbers: &mut BTreeMap<usize, usize>| {
        let n = numbers.len() + 1;
        *numbers.entry(i).or_insert(n)
    };
    for ev in rx {
        let _ = match ev {
            Event::Planned { steps: s } => {
                steps = s;
                Ok(())
            }
            Event::StageSkipped { stage } => {
                writeln!(w, "#0 skipping stage {stage}: not needed for the target")
            }
            Event::StepStarted { step } => {
                let n = num(step, &mut numbers);
                started.insert(step, Instant::now());
                writeln!(w, "#{n} {}", name(&steps, step))
            }
            Event::StepCached { step } => {
                let n = num(step, &mut numbers);
                writeln!(w, "#{n} {}\n#{n} CACHED", name(&steps, step))
            }
            Event::CacheMiss { step, reason } => {
                if explain {
                    let n = num(step, &mut numbers);
                    writeln!(w, "#{n} cache miss: {reason}")
                } else {
                    Ok(())
                }
            }
            Event::StepOutput { step, data } => {
                let n = num(step, &mut numbers);
                let t = started
                    .get(&step)
                    .map(|s| s.elapsed().as_secs_f64())
                    .unwrap_or(0.0);
                let text = String::from_utf8_lossy(&data);
                let mut r = Ok(());
                for line in text.lines() {
                    r = writeln!(w, "#{n} {t:.3} {line}");
                }
                r
            }
            Event::StepDone { step, elapsed } => {
                let n = num(step, &mut numbers);
                writeln!(w, "#{n} DONE {:.1}s", elapsed.as_secs_f64())
            }
            Event::StepFailed { step, message } => {
                let n = num(step, &mut numbers);
                writeln!(w, "#{n} ERROR: {message}")
            }
            Event::Export { message, elapsed } => match elapsed {
                Some(e) => writeln!(
                    w,
                    "#{} {message} {:.1}s done",
                    numbers.len() + 1,
                    e.as_secs_f64()
                ),
                None => writeln!(w, "#{} {message}", numbers.len() + 1),
            },
            // Sent only once the image is committed: a build that fails never says "built".
            Event::Finished => writeln!(
                w,
                "#{} built in {:.2}s",
                numbers.len() + 1,
                start.elapsed().as_secs_f64()
            ),
        };
    }
}

fn name(steps: &[StepInfo], i: usize) -> String {
    steps
        .get(i)
        .map(|s| s.name.clone())
        .unwrap_or_else(|| format!("step {i}"))
}

fn render_tty(rx: Receiver<Event>, explain: bool) {
    let err = std::io::stderr();
    let start = Instant::now();
    let mut steps: Vec<StepInfo> = Vec::new();
    let mut order: Vec<usize> = Vec::new();
    let mut state: BTreeMap<usize, State> = BTreeMap::new();
    let mut last_out: BTreeMap<usize, String> = BTreeMap::new();
    let mut notes: Vec<String> = Vec::new();
    let mut drawn = 0usize;
    let mut export: Vec<String> = Vec::new();
    let mut finished = false;
    // Whether the engine said the build succeeded (else the stream ended on an error).
    let mut succeeded = false;
    while !finished {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => match ev {
                Event::Planned { steps: s } => steps = s,
                Event::StageSkipped { .. } => {}
                Event::StepStarted { step } => {
                    order.push(step);
                    state.insert(step, State::Running(Instant::now()));
                }
                Event::StepCached { step } => {
                    order.push(step);
                    state.insert(step, State::Cached);
                }
                Event::CacheMiss { step, reason } => {
                    if explain {
                        notes.push(format!("{}: {reason}", name(&steps, step)));
                    }
                }
                Event::StepOutput { step, data } => {
                    let text = String::from_utf8_lossy(&data);
                    if let Some(l) = text.lines().rfind(|l| !l.trim().is_empty()) {
                        last_out.insert(step, l.chars().take(100).collect());
                    }
                }
                Event::StepDone { step, elapsed } => {
                    state.insert(step, State::Done(elapsed));
                    last_out.remove(&step);
                }
                Event::StepFailed { step, .. } => {
                    state.insert(step, State::Failed);
                }
                Event::Export { message, elapsed } => {
                    // A phase that was announced when it started is replaced by its result.
                    export.retain(|m| m != &message);
                    export.push(match elapsed {
                        Some(e) => format!("{message} {:.1}s", e.as_secs_f64()),
                        None => message,
                    })
                }
                Event::Finished => succeeded = true,
            },
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => finished = true,
        }
        let mut lines = vec![format!(
            "[+] Building {:.1}s ({}/{}){}",
            start.elapsed().as_secs_f64(),
            state
                .values()
                .filter(|s| matches!(s, State::Done(_) | State::Cached))
                .count(),
            steps.len(),
            if finished && succeeded {
                " FINISHED"
            } else {
                ""
            }
        )];
        for &i in &order {
            let st = state.get(&i).cloned().unwrap_or(State::Waiting);
            let right = match st {
                State::Waiting => String::new(),
                State::Running(t) => format!("{:.1}s", t.elapsed().as_secs_f64()),
                State::Cached => "CACHED".into(),
                State::Done(d) => format!("{:.1}s", d.as_secs_f64()),
                State::Failed => "ERROR".into(),
            };
            lines.push(format!(
                " => {:<70} {right}",
                truncate(&name(&steps, i), 70)
            ));
            if let (State::Running(_), Some(out)) = (&st, last_out.get(&i)) {
                lines.push(format!("    {out}"));
            }
        }
        for e in &export {
            lines.push(format!(" => {e}"));
        }
        let mut w = err.lock();
        if drawn > 0 {
            let _ = write!(w, "\x1b[{drawn}A");
        }
        for l in &lines {
            let _ = writeln!(w, "\x1b[2K{l}");
        }
        drawn = lines.len();
        if finished {
            for n in &notes {
                let _ = writeln!(w, "cache miss: {n}");
            }
        }
        let _ = w.flush();
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 3).collect();
        t.push_str("...");
        t
    }
}

/// A failed build, with the Dockerfile line for step failures.
pub fn render_error(e: &kiln_build::BuildError, dockerfile: &Path, text: &str) -> String {
    match e {
        kiln_build::BuildError::Step {
            step,
            line,
            message,
            output,
        } => {
            let mut s = String::new();
            if !output.trim().is_empty() {
                s.push_str("------\n");
                for l in output.lines() {
                    s.push_str(&format!(" > {l}\n"));
                }
                s.push_str("------\n");
            }
            if *line > 0 {
                let name = dockerfile
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                s.push_str(&format!("{name}:{line}\n"));
                let lines: Vec<&str> = text.lines().collect();
                let lo = line.saturating_sub(2).max(1);
                let hi = (*line + 2).min(lines.len());
                for n in lo..=hi {
                    let marker = if n == *line { ">>>" } else { "   " };
                    s.push_str(&format!(
                        " {n:>4} | {marker} {}\n",
                        kiln_build::event::clip(lines.get(n - 1).unwrap_or(&""))
                    ));
                }
            }
            s.push_str(&format!("error: {step}: {message}"));
            s
        }
        other => format!("error: {other}"),
    }
}

/// `2GB`, `500MB`, `1.5g`, `1024` (bytes) → bytes (decimal units, as docker's).
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size {s:?}"))?;
    let mult: f64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        _ => anyhow::bail!("invalid size {s:?}: use e.g. 500MB or 2GB"),
    };
    Ok((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("500mb").unwrap(), 500_000_000);
        assert!(parse_size("lots").is_err());
    }
}
