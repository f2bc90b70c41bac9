//! docker's json-file log: one JSON object per line,
//! `{"log":"hello\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Longest `log` value: a longer line is split, as docker splits at its 16 KiB buffer.
const MAX_CHUNK: usize = 16 * 1024;

#[derive(Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Go's `RFC3339Nano` (trailing zeros of the fraction trimmed).
pub fn rfc3339_nano(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let base = kiln_store::timestamp::format_rfc3339(secs);
    let base = base.trim_end_matches('Z');
    if frac == 0 {
        return format!("{base}Z");
    }
    let f = format!("{frac:09}");
    format!("{base}.{}Z", f.trim_end_matches('0'))
}

/// docker's fixed-width variant (`logs -t`): always nine digits.
pub fn rfc3339_nano_fixed(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let base = kiln_store::timestamp::format_rfc3339(secs);
    format!("{}.{frac:09}Z", base.trim_end_matches('Z'))
}

/// Parses an RFC 3339 time with an optional fraction, to unix nanoseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let (head, frac, tail) = match s.find('.') {
        Some(dot) => {
            let rest = &s[dot + 1..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            (&s[..dot], &rest[..end], &rest[end..])
        }
        None => (s, "", ""),
    };
    let secs = kiln_store::timestamp::parse_rfc3339(&format!("{head}{tail}"))?;
    let mut f = frac.to_string();
    f.truncate(9);
    while f.len() < 9 {
        f.push('0');
    }
    Some(secs * 1_000_000_000 + f.parse::<i64>().unwrap_or(0))
}

/// A log file shared by the stdout and stderr pumps.
pub type Sink = Arc<Mutex<std::fs::File>>;

pub fn open_sink(path: &Path) -> std::io::Result<Sink> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok(Arc::new(Mutex::new(f)))
}

/// Copies `from` into `sink` as `stream`, one entry per line, and passes what it reads on to
/// `tee` at once (a prompt without a newline reaches an attached terminal). Returns at EOF
/// (or EIO: a pty whose last slave closed). A failed log write (a full disk) is counted, not
/// fatal: the container keeps running and its output still reaches `tee`.
pub fn pump(
    mut from: impl Read,
    stream: &str,
    sink: Sink,
    mut tee: Option<Box<dyn Write + Send>>,
) -> u64 {
    let mut failures = 0;
    let mut chunk = vec![0u8; MAX_CHUNK];
    let mut line: Vec<u8> = Vec::new();
    let mut emit = |bytes: &[u8]| {
        let entry = Entry {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream: stream.to_string(),
            time: rfc3339_nano(now_nanos()),
        };
        let mut text = serde_json::to_vec(&entry).unwrap_or_default();
        text.push(b'\n');
        let ok = sink
            .lock()
            .map(|mut f| f.write_all(&text).is_ok())
            .unwrap_or(false);
        if !ok {
            failures += 1;
        }
    };
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if let Some(t) = tee.as_mut()
            && (t.write_all(&chunk[..n]).is_err() || t.flush().is_err())
        {
            tee = None;
        }
        line.extend_from_slice(&chunk[..n]);
        while let Some(pos) = line.iter().position(|&b| b == b'\n') {
            let rest = line.split_off(pos + 1);
            emit(&line);
            line = rest;
        }
        while line.len() >= MAX_CHUNK {
            let rest = line.split_off(MAX_CHUNK);
            emit(&line);
            line = rest;
        }
    }
    if !line.is_empty() {
        emit(&line);
    }
    failures
}
