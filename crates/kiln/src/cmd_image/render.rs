//! Docker's output conventions: sizes (`units.HumanSizeWithPrecision`), ages
//! (`units.HumanDuration`), `text/tabwriter` alignment, `--format` handling, and JSON as Go's
//! encoder writes it.

use serde_json::Value;

use crate::cmd_image::gotemplate::{Missing, Mode, Template, TemplateError};

/// `units.HumanSizeWithPrecision(size, precision)`: decimal units, Go's `%.*g`.
pub fn human_size_prec(size: f64, precision: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1000.0 && i < UNITS.len() - 1 {
        s /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(s, precision), UNITS[i])
}

/// The SIZE column: 3 significant digits ("7.05MB").
pub fn human_size(size: u64) -> String {
    human_size_prec(size as f64, 3)
}

/// Go's `strconv.FormatFloat(x, 'g', p, 64)`.
fn go_g(x: f64, p: usize) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let sci = format!("{:.*e}", p.saturating_sub(1), x);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let mant = trim_zeros(mant);
        format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// `units.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let seconds = secs;
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = ((seconds as f64) / 3600.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", seconds / 3600 / 24 / 365)
}

/// "2 hours ago" for a unix time.
pub fn since(created: i64) -> String {
    format!("{} ago", human_duration(now() - created))
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// docker's `TruncateID`: drop the algorithm, keep 12 characters.
pub fn truncate_id(id: &str) -> String {
    let bare = id.split_once(':').map(|(_, h)| h).unwrap_or(id);
    bare.chars().take(12).collect()
}

/// docker's `formatter.Ellipsis` for ASCII-width text.
pub fn ellipsis(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_string();
    }
    if max <= 1 {
        return chars.iter().take(max).collect();
    }
    let mut out: String = chars[..max - 1].iter().collect();
    out.push('…');
    out
}

/// Go's `text/tabwriter` with docker's settings (minwidth 10, tabwidth 1, padding 3,
/// padchar ' ', no flags): tab-terminated cells are aligned per column block; text after a
/// line's last tab is not a cell.
pub fn tabwrite(text: &str) -> String {
    tabwrite_min(text, 10)
}

/// [`tabwrite`] with another minimum cell width (`docker top` uses 20).
pub fn tabwrite_min(text: &str, minwidth: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<Vec<usize>> = lines
        .iter()
        .map(|l| vec![0; l.len().saturating_sub(1)])
        .collect();
    format_block(&lines, &mut widths, 0, lines.len(), 0, minwidth);
    let mut out = String::with_capacity(text.len() * 2);
    for (i, line) in lines.iter().enumerate() {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < line.len() {
                let w = widths[i][j];
                let n = cell.chars().count();
                out.extend(std::iter::repeat_n(' ', w.saturating_sub(n)));
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
    out
}

fn format_block(
    lines: &[Vec<&str>],
    widths: &mut [Vec<usize>],
    start: usize,
    end: usize,
    col: usize,
    minwidth: usize,
) {
    let mut i = start;
    while i < end {
        if lines[i].len().saturating_sub(1) <= col {
            i += 1;
            continue;
        }
        // A block: consecutive lines with a terminated cell in this column.
        let block_start = i;
        let mut width = minwidth;
        while i < end && lines[i].len().saturating_sub(1) > col {
            width = width.max(lines[i][col].chars().count() + 3);
            i += 1;
        }
        for w in widths.iter_mut().take(i).skip(block_start) {
            w[col] = width;
        }
        format_block(lines, widths, block_start, i, col + 1, minwidth);
    }
}

/// A `--format` value resolved as docker's formatter does.
pub struct Format {
    table: bool,
    template: Template,
}

impl Format {
    /// `source` as given ("" and "table" mean `default_table`; "json" means `{{json .}}`).
    pub fn new(source: &str, default_table: &str) -> anyhow::Result<Format> {
        let source = match source {
            "" | "table" => default_table,
            s => s,
        };
        let (table, body) = if let Some(rest) = source.strip_prefix("table") {
            (true, rest)
        } else if source == "json" {
            (false, "{{json .}}")
        } else {
            (false, source)
        };
        let body = body
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let template = Template::parse(&body)?;
        Ok(Format { table, template })
    }

    /// Missing fields fail as docker's typed context `type_name` (`*formatter.ContainerContext`)
    /// does, not as `inspect`'s map.
    pub fn for_type(mut self, type_name: &str) -> Format {
        self.template = self
            .template
            .with_missing(Missing::Struct(type_name.to_string()));
        self
    }

    /// Renders every row (and the header, for tables) into the text to print.
    pub fn render(&self, header: &Value, rows: &[Value]) -> anyhow::Result<String> {
        let mut body = String::new();
        for r in rows {
            body.push_str(&self.template.render(r, Mode::Data)?);
            body.push('\n');
        }
        if !self.table {
            return Ok(body);
        }
        let mut all = self.template.render(header, Mode::Header)?;
        all.push('\n');
        all.push_str(&body);
        let mut out = tabwrite(all.trim_end_matches('\n'));
        out.push('\n');
        Ok(out)
    }
}

/// JSON as docker prints `inspect` (4-space indent, `<`, `>`, `&` escaped as Go does) of a
/// serializable value, keeping its struct fields' order.
pub fn go_json_pretty_of<T: serde::Serialize>(v: &T) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser)?;
    let s = String::from_utf8(buf)?;
    Ok(s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026"))
}

/// `path.Match`-style glob (`*` and `?` do not cross `/`, `[...]` classes).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != '/')
                .any(|i| m(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && n[0] != '/' && m(&p[1..], &n[1..]),
            Some('[') => {
                let Some(close) = p.iter().position(|&c| c == ']') else {
                    return false;
                };
                let Some(&c) = n.first() else { return false };
                let class = &p[1..close];
                let (neg, class) = match class.first() {
                    Some('^') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != neg && m(&p[close + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => !n.is_empty() && n[0] == p[1] && m(&p[2..], &n[1..]),
            Some(&c) => !n.is_empty() && n[0] == c && m(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n)
}

/// A Go duration (`24h`, `1h30m`, `90s`) in whole seconds; negative durations are refused.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    kiln_dockerfile::parse_go_duration(s)
        .filter(|n| *n >= 0)
        .map(|n| n / 1_000_000_000)
}

/// `inspect --format`'s template: docker prints a template that does not parse as the
/// parser's message alone and exits 64.
pub fn inspect_format(source: &str) -> anyhow::Result<Format> {
    Format::new(source, "").map_err(|e| {
        if let Some(t @ TemplateError::Parse(_)) = e.downcast_ref::<TemplateError>() {
            eprintln!("{t}");
            return crate::cmd_image::ReportedExit(64).into();
        }
        e
    })
}

/// `inspect --format`'s rendering: a template that fails to run prints
/// `template parsing error: <Go's message>` (docker's words) and exits 1.
pub fn inspect_render(format: &Format, values: &[Value]) -> anyhow::Result<String> {
    format.render(&Value::Null, values).map_err(|e| {
        if let Some(TemplateError::Exec(m)) = e.downcast_ref::<TemplateError>() {
            eprintln!("template parsing error: {m}");
            return crate::cmd_image::Reported.into();
        }
        e
    })
}

/// A `--format` failure of a listing (`ps`, `stats`): docker's CLI prints
/// `failed to parse template: ...` or `failed to execute template: ...` and exits 1.
pub fn listing_template_error(e: anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<TemplateError>() {
        Some(TemplateError::Parse(m)) => {
            let m = m.strip_prefix("template parsing error: ").unwrap_or(m);
            eprintln!("failed to parse template: {m}");
            crate::cmd_image::Reported.into()
        }
        Some(TemplateError::Exec(m)) => {
            eprintln!("failed to execute template: {m}");
            crate::cmd_image::Reported.into()
        }
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_go_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(7_050_000), "7.05MB");
        assert_eq!(human_size(4_261_550), "4.26MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(999_900), "1e+03kB");
        assert_eq!(human_size(1_500_000_000), "1.5GB");
        assert_eq!(human_size_prec(2_140_160.0, 4), "2.14MB");
    }

    #[test]
    fn durations_match_go_units() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(3000), "50 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(7200), "2 hours");
        assert_eq!(human_duration(86400 * 3), "3 days");
        assert_eq!(human_duration(86400 * 20), "2 weeks");
        assert_eq!(human_duration(86400 * 100), "3 months");
        assert_eq!(human_duration(86400 * 365 * 56), "56 years");
    }

    #[test]
    fn tabwriter_aligns_like_docker() {
        let t = "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\nbusybox\tlatest\ta416a98b71e2\t4 weeks ago\t4.26MB";
        assert_eq!(
            tabwrite(t),
            "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\nbusybox      latest    a416a98b71e2   4 weeks ago   4.26MB"
        );
    }

    #[test]
    fn globs_and_durations() {
        assert!(glob_match("busy*", "busybox"));
        assert!(!glob_match("*", "localhost/busybox"));
        assert!(glob_match("*/busybox", "localhost/busybox"));
        assert!(glob_match("b?sy[a-z]ox", "busybox"));
        assert_eq!(parse_go_duration("1h30m"), Some(5400));
        assert_eq!(parse_go_duration("24h"), Some(86400));
        assert_eq!(parse_go_duration("x"), None);
        assert_eq!(ellipsis("abcdef", 4), "abc…");
    }
}
