//! Healthchecks, as docker runs them: the image's `HEALTHCHECK` or the `--health-*` flags; the
//! supervisor runs the probe every interval inside the container (`kiln exec`, so it joins
//! the container's namespaces and cgroups as any exec does), kills it after the timeout, and
//! keeps docker's `State.Health` (status, failing streak, the last five probes) in
//! `containers/<id>/health.json`, which `ps` and `inspect` read.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::CreateArgs;

const FILE: &str = "health.json";
/// docker keeps the last five probes and 4 KiB of each one's output.
const KEEP: usize = 5;
const MAX_OUTPUT: usize = 4096;
const SECOND: i64 = 1_000_000_000;

/// docker's `Config.Healthcheck` (durations in nanoseconds; 0: the default).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: i64,
    #[serde(default)]
    pub timeout: i64,
    #[serde(default)]
    pub start_period: i64,
    #[serde(default)]
    pub retries: i64,
}

impl HealthConfig {
    /// The probe's argv: `CMD args...` or `CMD-SHELL text` (through /bin/sh -c); None for
    /// `NONE` or an empty test.
    pub fn argv(&self) -> Option<Vec<String>> {
        match self.test.split_first() {
            Some((k, rest)) if k == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
            Some((k, rest)) if k == "CMD-SHELL" && !rest.is_empty() => {
                Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
            }
            _ => None,
        }
    }
    fn interval(&self) -> Duration {
        Duration::from_nanos(if self.interval > 0 {
            self.interval
        } else {
            30 * SECOND
        } as u64)
    }
    fn timeout(&self) -> Duration {
        Duration::from_nanos(if self.timeout > 0 {
            self.timeout
        } else {
            30 * SECOND
        } as u64)
    }
    fn retries(&self) -> i64 {
        if self.retries > 0 { self.retries } else { 3 }
    }
}

fn duration_flag(name: &str, v: &Option<String>) -> anyhow::Result<Option<i64>> {
    let Some(s) = v else { return Ok(None) };
    let ns = kiln_dockerfile::parse_go_duration(s).ok_or_else(|| {
        anyhow::anyhow!(
            "invalid argument \"{s}\" for \"--{name}\" flag: time: invalid duration \"{s}\""
        )
    })?;
    if ns < 0 {
        bail!("--{name} cannot be negative");
    }
    Ok(Some(ns))
}

/// The image's healthcheck with the flags applied, as docker merges them (a flag replaces
/// that field; `--no-healthcheck` disables it). None: no healthcheck.
pub fn resolve(a: &CreateArgs, image_config: &Value) -> anyhow::Result<Option<HealthConfig>> {
    let interval = duration_flag("health-interval", &a.health_interval)?;
    let timeout = duration_flag("health-timeout", &a.health_timeout)?;
    let start_period = duration_flag("health-start-period", &a.health_start_period)?;
    if a.health_retries.is_some_and(|r| r < 0) {
        bail!("--health-retries cannot be negative");
    }
    let any_flag = a.health_cmd.is_some()
        || interval.is_some()
        || timeout.is_some()
        || start_period.is_some()
        || a.health_retries.is_some();
    if a.no_healthcheck {
        if any_flag {
            bail!("--no-healthcheck conflicts with --health-* options");
        }
        return Ok(None);
    }
    let mut h: HealthConfig = image_config["config"]
        .get("Healthcheck")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    if let Some(cmd) = &a.health_cmd {
        h.test = vec!["CMD-SHELL".into(), cmd.clone()];
    }
    if let Some(v) = interval {
        h.interval = v;
    }
    if let Some(v) = timeout {
        h.timeout = v;
    }
    if let Some(v) = start_period {
        h.start_period = v;
    }
    if let Some(v) = a.health_retries {
        h.retries = v;
    }
    Ok(h.argv().is_some().then_some(h))
}

/// One probe, as docker's `State.Health.Log` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// docker's `State.Health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<Probe>,
}

/// The recorded health of the container whose directory is `dir`.
pub fn read(dir: &Path) -> Option<Health> {
    serde_json::from_slice(&std::fs::read(dir.join(FILE)).ok()?).ok()
}

fn write(dir: &Path, h: &Health) {
    let tmp = dir.join(format!("{FILE}.tmp"));
    if let Ok(bytes) = serde_json::to_vec(h)
        && std::fs::write(&tmp, bytes).is_ok()
    {
        let _ = std::fs::rename(&tmp, dir.join(FILE));
    }
}

/// ps's STATUS suffix: ` (healthy)`, ` (unhealthy)`, ` (health: starting)`.
pub fn status_suffix(dir: &Path) -> String {
    match read(dir).map(|h| h.status) {
        Some(s) if s == "starting" => " (health: starting)".into(),
        Some(s) => format!(" ({s})"),
        None => String::new(),
    }
}

/// `30s`, `1m30s`, `500ms`: Go's rendering of the usual durations.
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    let frac = ms % 1000;
    let secs = if frac == 0 {
        format!("{}s", s % 60)
    } else {
        format!("{}.{}s", s % 60, format!("{frac:03}").trim_end_matches('0'))
    };
    match (s / 3600, (s / 60) % 60) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// Runs one probe through `kiln exec`: (exit code, output). A probe over the timeout is
/// killed (its process group: the exec and the program in the container) and reads as -1.
fn probe(store_root: &Path, id: &str, argv: &[String], timeout: Duration) -> (i32, String) {
    use std::os::unix::process::CommandExt;
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return (-1, "cannot find kiln's own binary".into());
    };
    let Ok((mut r, w)) = std::io::pipe() else {
        return (-1, "cannot make a pipe".into());
    };
    let Ok(w2) = w.try_clone() else {
        return (-1, "cannot make a pipe".into());
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root")
        .arg(store_root)
        .args(["exec", id])
        .args(argv)
        .stdin(std::process::Stdio::null())
        .stdout(w)
        .stderr(w2)
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (-1, format!("starting the probe: {e}")),
    };
    drop(cmd);
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut r).take(1 << 20).read_to_end(&mut buf);
        buf
    });
    let t0 = Instant::now();
    let code = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st.code().unwrap_or(-1),
            Ok(None) if t0.elapsed() >= timeout => {
                // SAFETY: kill of the process group this process just made.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                return (
                    -1,
                    format!("Health check exceeded timeout ({})", go_duration(timeout)),
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return (-1, e.to_string()),
        }
    };
    let mut out = reader.join().unwrap_or_default();
    out.truncate(MAX_OUTPUT);
    (code, String::from_utf8_lossy(&out).into_owned())
}

/// Starts the health monitor of one run of the container; it stops when `running` is false.
pub fn monitor(
    store_root: PathBuf,
    dir: PathBuf,
    id: String,
    config: HealthConfig,
    running: Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    let argv = config.argv()?;
    let mut health = Health {
        status: "starting".into(),
        failing_streak: 0,
        log: read(&dir).map(|h| h.log).unwrap_or_default(),
    };
    write(&dir, &health);
    Some(std::thread::spawn(move || {
        let started = Instant::now();
        let start_period = Duration::from_nanos(config.start_period.max(0) as u64);
        loop {
            let next = Instant::now() + config.interval();
            while Instant::now() < next {
                if !running.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let start = super::logfile::now_nanos();
            let (code, output) = probe(&store_root, &id, &argv, config.timeout());
            if !running.load(Ordering::SeqCst) {
                return;
            }
            let end = super::logfile::now_nanos();
            health.log.push(Probe {
                start: super::logfile::rfc3339_nano(start),
                end: super::logfile::rfc3339_nano(end),
                exit_code: code,
                output,
            });
            if health.log.len() > KEEP {
                let extra = health.log.len() - KEEP;
                health.log.drain(..extra);
            }
            if code == 0 {
                health.status = "healthy".into();
                health.failing_streak = 0;
            } else if started.elapsed() >= start_period || health.status != "starting" {
                // Failures in the start period do not count (docker's rule).
                health.failing_streak += 1;
                if health.failing_streak >= config.retries() {
                    health.status = "unhealthy".into();
                }
            }
            write(&dir, &health);
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_run_as_docker_builds_them() {
        let h = |t: &[&str]| HealthConfig {
            test: t.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(h(&["CMD", "true", "x"]).argv().unwrap(), ["true", "x"]);
        assert_eq!(
            h(&["CMD-SHELL", "exit 1"]).argv().unwrap(),
            ["/bin/sh", "-c", "exit 1"]
        );
        assert!(h(&["NONE"]).argv().is_none());
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
    }
}
