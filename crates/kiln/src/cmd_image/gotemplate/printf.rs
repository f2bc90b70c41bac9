//! Go's `fmt.Sprintf` for template values: verbs `v s q d x X o b c t f F e E g G T %`,
//! flags `- + # 0 space`, width and precision, and Go's `%!d(string=x)`, `%!d(MISSING)`,
//! `%!(EXTRA ...)` for mismatches.

use kiln_build::plan::go_quote;
use serde_json::Value;

use super::{V, go_type, print_value};

struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `fmt.Sprintf(format, args...)`.
pub fn sprintf(format: &str, args: &[V]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut s = Spec {
            minus: false,
            plus: false,
            zero: false,
            space: false,
            sharp: false,
            width: None,
            prec: None,
        };
        while let Some(&f) = chars.peek() {
            match f {
                '-' => s.minus = true,
                '+' => s.plus = true,
                '0' => s.zero = true,
                ' ' => s.space = true,
                '#' => s.sharp = true,
                _ => break,
            }
            chars.next();
        }
        s.width = number(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            s.prec = Some(number(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        out.push_str(&pad(&s, &one(&s, verb, arg), verb));
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| match a {
                None => "<nil>".into(),
                Some(v) => format!("{}={}", go_type(v), print_value(v)),
            })
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

fn number(chars: &mut std::iter::Peekable<std::str::Chars>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        n = Some(n.unwrap_or(0) * 10 + d as usize);
        chars.next();
    }
    n
}

fn pad(s: &Spec, body: &str, verb: char) -> String {
    let Some(w) = s.width else {
        return body.to_string();
    };
    let n = body.chars().count();
    if n >= w {
        return body.to_string();
    }
    let fill = w - n;
    if s.minus {
        format!("{body}{}", " ".repeat(fill))
    } else if s.zero && "dxXobeEfFgG".contains(verb) {
        let (sign, digits) = match body.strip_prefix(['-', '+']) {
            Some(d) => (&body[..1], d),
            None => ("", body),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{body}", " ".repeat(fill))
    }
}

fn bad(verb: char, v: &Value) -> String {
    format!("%!{verb}({}={})", go_type(v), print_value(v))
}

fn one(s: &Spec, verb: char, arg: &V) -> String {
    let Some(v) = arg else {
        return if verb == 'T' || verb == 'v' || verb == 's' {
            "<nil>".into()
        } else {
            format!("%!{verb}(<nil>)")
        };
    };
    let int = v.as_i64();
    let float = v.as_f64().filter(|_| int.is_none());
    match verb {
        'v' => match (float, s.prec) {
            (Some(f), Some(p)) => go_g(f, Some(p)),
            _ => print_value(v),
        },
        's' => match v {
            Value::String(x) => s.prec.map_or(x.clone(), |p| x.chars().take(p).collect()),
            Value::Array(a) if a.iter().all(Value::is_string) => print_value(v),
            Value::Object(_) | Value::Array(_) => print_value(v),
            _ => bad(verb, v),
        },
        'q' => match v {
            Value::String(x) => go_quote(x),
            Value::Array(a) if a.iter().all(Value::is_string) => {
                format!(
                    "[{}]",
                    a.iter()
                        .map(|x| go_quote(x.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            }
            _ => match int.and_then(|i| char::from_u32(i as u32)) {
                Some(c) => format!("'{c}'"),
                None => bad(verb, v),
            },
        },
        'd' => match int {
            Some(i) => signed(s, i.to_string(), i < 0),
            None => bad(verb, v),
        },
        'x' | 'X' | 'o' | 'b' => match (int, v) {
            (Some(i), _) => {
                let mag = i.unsigned_abs();
                let body = match verb {
                    'x' => format!("{}{mag:x}", if s.sharp { "0x" } else { "" }),
                    'X' => format!("{}{mag:X}", if s.sharp { "0X" } else { "" }),
                    'o' => format!("{}{mag:o}", if s.sharp { "0" } else { "" }),
                    _ => format!("{mag:b}"),
                };
                signed(s, if i < 0 { format!("-{body}") } else { body }, i < 0)
            }
            (None, Value::String(x)) if verb == 'x' || verb == 'X' => {
                let h: String = x.bytes().map(|b| format!("{b:02x}")).collect();
                if verb == 'X' { h.to_uppercase() } else { h }
            }
            _ => bad(verb, v),
        },
        'c' => match int.and_then(|i| char::from_u32(i as u32)) {
            Some(c) => c.to_string(),
            None => bad(verb, v),
        },
        't' => match v {
            Value::Bool(b) => b.to_string(),
            _ => bad(verb, v),
        },
        'f' | 'F' | 'e' | 'E' | 'g' | 'G' => match float.or(int.map(|_| f64::NAN)) {
            Some(f) if !f.is_nan() => {
                let p = s.prec;
                let body = match verb {
                    'f' | 'F' => format!("{f:.*}", p.unwrap_or(6)),
                    'e' | 'E' => {
                        let e = go_e(f, p.unwrap_or(6));
                        if verb == 'E' { e.to_uppercase() } else { e }
                    }
                    _ => {
                        let g = go_g(f, p);
                        if verb == 'G' { g.to_uppercase() } else { g }
                    }
                };
                signed(s, body, f < 0.0)
            }
            _ => bad(verb, v),
        },
        'T' => go_type(v),
        _ => format!("%!{verb}({}={})", go_type(v), print_value(v)),
    }
}

fn signed(s: &Spec, body: String, neg: bool) -> String {
    if neg {
        body
    } else if s.plus {
        format!("+{body}")
    } else if s.space {
        format!(" {body}")
    } else {
        body
    }
}

/// `%e` with `prec` digits: a two-digit exponent at least, as Go writes it.
fn go_e(f: f64, prec: usize) -> String {
    let s = format!("{f:.prec$e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

/// `%g` (shortest when `prec` is `None`, Go's exponent threshold 6 then, else `prec`).
fn go_g(f: f64, prec: Option<usize>) -> String {
    if f == 0.0 {
        return "0".into();
    }
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let sci = match prec {
        None => format!("{f:e}"),
        Some(p) => format!("{f:.*e}", p.max(1) - 1),
    };
    let (m, e) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = e.parse().unwrap_or(0);
    // Significant digits, trailing zeros dropped (strconv's decimal does).
    let m = if m.contains('.') {
        m.trim_end_matches('0').trim_end_matches('.')
    } else {
        m
    };
    let nd = m.trim_start_matches('-').replace('.', "").len() as i32;
    let eprec = match prec {
        None => 6,
        Some(p) => p.max(1) as i32,
    };
    if exp < -4 || exp >= eprec {
        format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        let decimals = (nd - 1 - exp).max(0) as usize;
        format!("{f:.decimals$}")
    }
}

/// A float as `%v` prints it.
pub fn go_float_v(f: f64) -> String {
    go_g(f, None)
}
