//! `--progress=rawjson`: one JSON object per line, shaped as BuildKit's `client.SolveStatus`
//! (what `buildx build --progress=rawjson` prints): `vertexes`, `statuses` and `logs`, each
//! entry carrying its vertex digest. A vertex is sent whole each time it changes; readers
//! merge by digest. docs/progress.md describes the fields.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::View;
use super::trace::{Status, Trace, Update, Vertex};

pub struct RawJson<W: Write> {
    w: W,
}

impl<W: Write> RawJson<W> {
    pub fn new(w: W) -> Self {
        RawJson { w }
    }

    fn event(&mut self, t: &Trace, u: &Update) {
        let obj = match u {
            Update::Planned => {
                json!({ "vertexes": t.vertexes.iter().map(vertex).collect::<Vec<_>>() })
            }
            Update::Vertex(vi) => json!({ "vertexes": [vertex(&t.vertexes[*vi])] }),
            Update::Status(vi, si) => {
                let v = &t.vertexes[*vi];
                json!({ "statuses": [status(v, &v.statuses[*si])] })
            }
            Update::Bytes(vi, data, at) => json!({ "logs": [{
                "vertex": t.vertexes[*vi].digest,
                "stream": 1,
                "data": base64(data),
                "timestamp": rfc3339_nano(*at),
            }] }),
            // Lines are sent as the bytes they came in; notes are for people.
            Update::Log(..) | Update::Note(..) => return,
        };
        let _ = writeln!(self.w, "{obj}");
        let _ = self.w.flush();
    }
}

impl<W: Write> View for RawJson<W> {
    fn update(&mut self, t: &Trace, u: &Update) {
        self.event(t, u);
    }
    fn tick(&mut self, _: &Trace) {}
    fn finish(&mut self, _: &Trace) {}
}

fn vertex(v: &Vertex) -> Value {
    let mut m = Map::new();
    m.insert("digest".into(), json!(v.digest));
    m.insert("name".into(), json!(v.name));
    if let Some(s) = v.started {
        m.insert("started".into(), json!(rfc3339_nano(s)));
    }
    if let Some(c) = v.completed {
        m.insert("completed".into(), json!(rfc3339_nano(c)));
    }
    if v.cached {
        m.insert("cached".into(), json!(true));
    }
    if let Some(e) = &v.error {
        m.insert("error".into(), json!(e));
    }
    Value::Object(m)
}

fn status(v: &Vertex, s: &Status) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(s.id));
    m.insert("vertex".into(), json!(v.digest));
    m.insert("name".into(), json!(s.id));
    m.insert("current".into(), json!(0));
    m.insert(
        "timestamp".into(),
        json!(rfc3339_nano(s.completed.unwrap_or(s.started))),
    );
    m.insert("started".into(), json!(rfc3339_nano(s.started)));
    if let Some(c) = s.completed {
        m.insert("completed".into(), json!(rfc3339_nano(c)));
    }
    Value::Object(m)
}

/// Go's `time.RFC3339Nano` in UTC (`2026-12-06T22:31:05.123456789Z`, trailing zeros of the
/// fraction dropped), which is how BuildKit's JSON carries times.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, mo, da) = civil_from_days(days);
    let frac = format!("{:09}", d.subsec_nanos());
    let frac = frac.trim_end_matches('0');
    format!(
        "{y:04}-{mo:02}-{da:02}T{:02}:{:02}:{:02}{}{frac}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        if frac.is_empty() { "" } else { "." }
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Standard base64 with padding: Go's JSON encoding of a `[]byte`.
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_go_rfc3339_nano() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20Z");
        let t = UNIX_EPOCH + Duration::new(951_782_400, 120_000_000);
        assert_eq!(rfc3339_nano(t), "2000-02-29T00:00:00.12Z");
    }

    #[test]
    fn base64_as_go_encodes_bytes() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"hello\n"), "aGVsbG8K");
    }
}
