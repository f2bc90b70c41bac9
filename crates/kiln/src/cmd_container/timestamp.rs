//! docker's `GetTimestamp` (api/types/time): what `logs --since/--until` (and `events`)
//! accept: a Go duration before now (`10m`, `1h30m`, `-1h`), RFC 3339 with or without
//! fraction and zone, `2006-01-02`, `2006-01-02T15`, `2006-01-02T15:04` (in the local zone
//! unless a `Z` or offset is given), or unix seconds with a fraction.

/// Nanoseconds since the epoch for `value`, `now_ns` being the reference for durations; the
/// error is docker's text (without the `invalid value for "since": ` prefix).
pub fn get_timestamp(value: &str, now_ns: i64) -> Result<i64, String> {
    if value != "0"
        && let Some(d) = kiln_dockerfile::parse_go_duration(value.trim_start_matches('-'))
    {
        let d = if value.starts_with('-') { -d } else { d };
        return Ok(now_ns - d);
    }
    let in_location = !(value.contains(['z', 'Z', '+']) || value.matches('-').count() == 3);
    match parse_datetime(value, in_location) {
        Ok(ns) => Ok(ns),
        Err(e) if value.contains('-') => Err(e),
        Err(_) => unix(value)
            .ok_or_else(|| format!("failed to parse value as time or duration: {value:?}")),
    }
}

/// `sec[.frac]` (docker's `parseTimestamp`).
fn unix(v: &str) -> Option<i64> {
    let (s, f) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = s.parse().ok()?;
    if !f.is_empty() && !f.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut f = f.to_string();
    f.truncate(9);
    while f.len() < 9 {
        f.push('0');
    }
    Some(secs * 1_000_000_000 + f.parse::<i64>().ok()?)
}

/// The local zone's offset from UTC in seconds, now.
fn local_offset() -> i64 {
    // SAFETY: localtime_r fills the tm we own.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            0
        } else {
            tm.tm_gmtoff
        }
    }
}

/// The layout docker picks for `value` (Go's reference-time notation), for messages.
fn layout(value: &str, in_location: bool) -> &'static str {
    if value.contains('.') {
        if in_location {
            "2006-01-02T15:04:05.999999999"
        } else {
            "2006-01-02T15:04:05.999999999Z07:00"
        }
    } else if value.contains('T') {
        let mut colons = value.matches(':').count();
        if !in_location && !value.contains(['z', 'Z']) && colons > 0 {
            colons -= 1;
        }
        match (in_location, colons) {
            (true, 0) => "2006-01-02T15",
            (true, 1) => "2006-01-02T15:04",
            (true, _) => "2006-01-02T15:04:05",
            (false, 0) => "2006-01-02T15Z07:00",
            (false, 1) => "2006-01-02T15:04Z07:00",
            (false, _) => "2006-01-02T15:04:05Z07:00",
        }
    } else if in_location {
        "2006-01-02"
    } else {
        "2006-01-02Z07:00"
    }
}

fn parse_datetime(value: &str, in_location: bool) -> Result<i64, String> {
    let lay = layout(value, in_location);
    let mismatch =
        || format!("parsing time {value:?} as {lay:?}: cannot parse {value:?} as {lay:?}");
    let b = value.as_bytes();
    let num = |i: usize, n: usize| -> Option<i64> {
        let s = value.get(i..i + n)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (y, mo, d) = match (num(0, 4), b.get(4), num(5, 2), b.get(7), num(8, 2)) {
        (Some(y), Some(b'-'), Some(m), Some(b'-'), Some(d)) => (y, m, d),
        _ => return Err(mismatch()),
    };
    let mut i = 10;
    let (mut h, mut mi, mut s, mut ns) = (0, 0, 0, 0i64);
    let want_time = lay.contains('T');
    if want_time {
        if b.get(i) != Some(&b'T') {
            return Err(mismatch());
        }
        h = num(i + 1, 2).ok_or_else(mismatch)?;
        i += 3;
        if lay.contains("15:04") {
            if b.get(i) != Some(&b':') {
                return Err(mismatch());
            }
            mi = num(i + 1, 2).ok_or_else(mismatch)?;
            i += 3;
        }
        if lay.contains("04:05") {
            if b.get(i) != Some(&b':') {
                return Err(mismatch());
            }
            s = num(i + 1, 2).ok_or_else(mismatch)?;
            i += 3;
            if b.get(i) == Some(&b'.') {
                let digits = value[i + 1..]
                    .bytes()
                    .take_while(u8::is_ascii_digit)
                    .count();
                if digits == 0 {
                    return Err(mismatch());
                }
                let mut f = value[i + 1..i + 1 + digits].to_string();
                f.truncate(9);
                while f.len() < 9 {
                    f.push('0');
                }
                ns = f.parse().map_err(|_| mismatch())?;
                i += 1 + digits;
            }
        }
    }
    let offset = if in_location {
        if i != value.len() {
            return Err(format!(
                "parsing time {value:?}: extra text: {:?}",
                &value[i..]
            ));
        }
        local_offset()
    } else {
        match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == value.len() => 0,
            Some(sign @ (b'+' | b'-')) => {
                let (oh, om) = match (num(i + 1, 2), b.get(i + 3), num(i + 4, 2)) {
                    (Some(h), Some(b':'), Some(m)) if i + 6 == value.len() => (h, m),
                    _ => return Err(mismatch()),
                };
                let o = oh * 3600 + om * 60;
                if *sign == b'-' { -o } else { o }
            }
            _ => return Err(mismatch()),
        }
    };
    let range = |what: &str| Err(format!("parsing time {value:?}: {what} out of range"));
    if !(1..=12).contains(&mo) {
        return range("month");
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d < 1 || d > days[(mo - 1) as usize] {
        return range("day");
    }
    if h > 23 {
        return range("hour");
    }
    if mi > 59 {
        return range("minute");
    }
    if s > 59 {
        return range("second");
    }
    let days_since_epoch = days_from_civil(y, mo, d);
    let secs = days_since_epoch * 86400 + h * 3600 + mi * 60 + s - offset;
    Ok(secs * 1_000_000_000 + ns)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::get_timestamp;

    const S: i64 = 1_000_000_000;

    #[test]
    fn every_form_docker_accepts() {
        let now = 1_765_148_400 * S; // 2025-12-07T23:00:00Z
        // Zoned forms do not depend on the local zone.
        assert_eq!(get_timestamp("2025-12-07T23:00:00Z", now), Ok(now));
        assert_eq!(
            get_timestamp("2025-12-07T23:00:00.5Z", now),
            Ok(now + S / 2)
        );
        assert_eq!(
            get_timestamp("2025-12-07T23:00:00.123456789Z", now),
            Ok(now + 123_456_789)
        );
        assert_eq!(get_timestamp("2025-12-08T00:00:00+01:00", now), Ok(now));
        assert_eq!(get_timestamp("2025-12-08T00:00+01:00", now), Ok(now));
        assert_eq!(get_timestamp("2025-12-08T00+01:00", now), Ok(now));
        assert_eq!(get_timestamp("2025-12-07Z", now), Ok(now - 23 * 3600 * S));
        assert_eq!(get_timestamp("2025-12-07T22:00:00-01:00", now), Ok(now));
        // Unix seconds, with a fraction; durations before now (negative: after).
        assert_eq!(get_timestamp("1765148400", now), Ok(now));
        assert_eq!(get_timestamp("1765148400.25", now), Ok(now + S / 4));
        assert_eq!(get_timestamp("10m", now), Ok(now - 600 * S));
        assert_eq!(get_timestamp("1h30m", now), Ok(now - 5400 * S));
        assert_eq!(get_timestamp("-1h", now), Ok(now + 3600 * S));
        assert_eq!(get_timestamp("0", now), Ok(0));
        // Local-zone forms parse (the value depends on TZ).
        for v in [
            "2025-12-07",
            "2025-12-07T23",
            "2025-12-07T23:00",
            "2025-12-07T23:00:00",
            "2025-12-07T23:00:00.5",
        ] {
            assert!(get_timestamp(v, now).is_ok(), "{v}");
        }
    }

    #[test]
    fn bad_values_get_dockers_errors() {
        assert_eq!(
            get_timestamp("bad", 0).unwrap_err(),
            "failed to parse value as time or duration: \"bad\""
        );
        assert_eq!(
            get_timestamp("2026-13-07", 0).unwrap_err(),
            "parsing time \"2026-13-07\": month out of range"
        );
        assert_eq!(
            get_timestamp("2026-02-30T00:00:00Z", 0).unwrap_err(),
            "parsing time \"2026-02-30T00:00:00Z\": day out of range"
        );
        assert!(get_timestamp("2026-12-07T1", 0).is_err());
        assert!(get_timestamp("12.x", 0).is_err());
    }
}
