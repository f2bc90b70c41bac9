//! Sizes and percentages as the reports print them.

/// docker's human size (decimal units, 3 significant digits): `1.23MB`, `512B`, `12.3kB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 999.5 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    let decimals = if v >= 99.95 {
        0
    } else if v >= 9.995 {
        1
    } else {
        2
    };
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    format!("{s}{}", UNITS[u])
}

/// A ratio in percent with one decimal: `77.0`.
pub fn percent(part: f64, whole: f64) -> f64 {
    if whole == 0.0 {
        0.0
    } else {
        (part / whole * 1000.0).round() / 10.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(512), "512B");
        assert_eq!(human(1234), "1.23kB");
        assert_eq!(human(12_345), "12.3kB");
        assert_eq!(human(123_456_789), "123MB");
        assert_eq!(human(1_000_000), "1MB");
        assert_eq!(percent(77.0, 100.0), 77.0);
        assert_eq!(percent(1.0, 3.0), 33.3);
    }
}
