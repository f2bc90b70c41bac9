//! `logs`: reads the container's json-file log (`-f`, `--tail`, `-t`, `--since`, `--until`).

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use kiln_store::Store;

use super::LogsArgs;
use super::logfile::{Entry, now_nanos, parse_time, rfc3339_nano_fixed};

/// `--since`/`--until`, as docker's `GetTimestamp` reads them; a bad value prints docker's
/// message (`invalid value for "since": ...`, no `Error:`) and exits 1.
fn time_arg(s: &str, flag: &str) -> anyhow::Result<i64> {
    super::timestamp::get_timestamp(s, now_nanos()).map_err(|e| {
        eprintln!("invalid value for \"{flag}\": {e}");
        crate::cmd_image::Reported.into()
    })
}

pub fn logs(store: &Store, a: LogsArgs) -> anyhow::Result<()> {
    if a.details {
        bail!("logs --details is not supported by kiln yet (kiln keeps no log attributes)");
    }
    let c = store.find_container(&a.container)?;
    let tail: Option<usize> = match a.tail.as_str() {
        "all" | "" => None,
        n => match n.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n as usize),
            Err(_) => {
                bail!("invalid value for \"tail\": strconv.Atoi: parsing \"{n}\": invalid syntax")
            }
        },
    };
    // As docker's daemon: an empty value is no bound, and so is an `--until` of 0.
    let since = a
        .since
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| time_arg(s, "since"))
        .transpose()?;
    let until = a
        .until
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| time_arg(s, "until"))
        .transpose()?
        .filter(|&u| u != 0);
    let path = super::supervisor::log_path(store, &c.id);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if a.follow && c.state.is_live() {
                // Created a moment ago: the supervisor makes the file before the process.
                std::thread::sleep(Duration::from_millis(100));
            }
            match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(_) => return Ok(()),
            }
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut reader = std::io::BufReader::new(file);
    let mut lines: Vec<Entry> = Vec::new();
    let mut buf = String::new();
    loop {
        buf.clear();
        if reader.read_line(&mut buf)? == 0 {
            break;
        }
        if !buf.ends_with('\n') {
            // A line being written: read it again when following.
            let back = buf.len() as i64;
            reader.seek_relative(-back)?;
            break;
        }
        if let Ok(e) = serde_json::from_str::<Entry>(&buf) {
            lines.push(e);
        }
    }
    let keep = |e: &Entry| {
        let t = parse_time(&e.time).unwrap_or(0);
        since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
    };
    lines.retain(keep);
    if let Some(n) = tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let out = std::io::stdout();
    let err = std::io::stderr();
    let print = |e: &Entry| -> std::io::Result<()> {
        let mut text = String::new();
        if a.timestamps {
            text.push_str(&rfc3339_nano_fixed(parse_time(&e.time).unwrap_or(0)));
            text.push(' ');
        }
        text.push_str(&e.log);
        if e.stream == "stderr" {
            let mut w = err.lock();
            w.write_all(text.as_bytes())?;
            w.flush()
        } else {
            let mut w = out.lock();
            w.write_all(text.as_bytes())?;
            w.flush()
        }
    };
    for e in &lines {
        print(e)?;
    }
    if !a.follow {
        return Ok(());
    }
    // Follow until the container stops (and its last lines are read).
    let mut stopped_reads = 0;
    loop {
        buf.clear();
        let n = reader.read_line(&mut buf)?;
        if n > 0 && buf.ends_with('\n') {
            if let Ok(e) = serde_json::from_str::<Entry>(&buf)
                && keep(&e)
            {
                print(&e)?;
            }
            continue;
        }
        if n > 0 {
            reader.seek_relative(-(n as i64))?;
        }
        let live = match store.find_container(&c.id) {
            Ok(now) => now.state.is_live(),
            Err(_) => false,
        };
        if until.is_some_and(|u| now_nanos() > u) {
            return Ok(());
        }
        if !live {
            stopped_reads += 1;
            if stopped_reads > 2 {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
