//! The `created_by` text of an image's history, as dockerd 20.10's BuildKit writes it: Go's
//! `%q`/`%v` renderings of what the instruction set (`CMD ["a" "b"]`, `EXPOSE map[80/tcp:{}]`,
//! `SHELL [/bin/sh -c]`), `k=v` pairs for ENV/LABEL/ARG, the resolved WORKDIR, COPY/ADD as
//! their sources and destination without flags. `docker history` shows these lines.

use kiln_dockerfile::ast::{self, Command, CommandLine, Instruction};

use crate::plan::config::RunConfig;

/// The history line of the expanded instruction `x` (`raw`: the same instruction before
/// expansion, for ARG defaults), with `rc` the config before it applies. None: no history
/// entry (ONBUILD, FROM).
pub(crate) fn created_by(raw: &Instruction, x: &Instruction, rc: &RunConfig) -> Option<String> {
    Some(match &x.command {
        Command::From(_) | Command::Onbuild(_) => return None,
        Command::Run(r) => format!("RUN {} # buildkit", resolve(&r.cmd, rc).join(" ")),
        Command::Copy(c) => copy_line("COPY", &c.sources, &c.dest),
        Command::Add(a) => copy_line("ADD", &a.sources, &a.dest),
        Command::Cmd(c) => format!("CMD {}", go_quoted_list(&resolve(&c.cmd, rc))),
        Command::Entrypoint(c) => format!("ENTRYPOINT {}", go_quoted_list(&resolve(&c.cmd, rc))),
        Command::Env(kv) => format!("ENV {}", pairs(kv)),
        Command::Label(kv) => format!("LABEL {}", pairs(kv)),
        Command::Arg(_) => {
            // The defaults as the Dockerfile gives them, not the --build-arg values.
            let decls = match &raw.command {
                Command::Arg(a) => &a.args,
                _ => return None,
            };
            let words: Vec<String> = decls
                .iter()
                .map(|d| match &d.default {
                    Some(v) => format!("{}={v}", d.name),
                    None => d.name.clone(),
                })
                .collect();
            format!("ARG {}", words.join(" "))
        }
        Command::Workdir(w) => {
            let cur = rc.working_dir.as_deref().unwrap_or("/");
            format!(
                "WORKDIR {}",
                crate::plan::values::join_workdir(cur, &w.path)
            )
        }
        Command::User(u) => format!("USER {}", u.user),
        Command::Expose(e) => {
            let mut ports: Vec<String> = e
                .ports
                .iter()
                .flat_map(|p| crate::plan::values::expand_port_spec(p))
                .map(|p| format!("{p}:{{}}"))
                .collect();
            // Go prints a map's keys sorted.
            ports.sort();
            ports.dedup();
            format!("EXPOSE map[{}]", ports.join(" "))
        }
        Command::Volume(v) => format!("VOLUME [{}]", v.paths.join(" ")),
        Command::Stopsignal(s) => format!("STOPSIGNAL {}", s.signal),
        Command::Shell(s) => format!("SHELL [{}]", s.shell.join(" ")),
        Command::Maintainer(m) => format!("MAINTAINER {}", m.name),
        Command::Healthcheck(h) => format!("HEALTHCHECK {}", healthcheck(h)),
    })
}

fn resolve(cmd: &CommandLine, rc: &RunConfig) -> Vec<String> {
    match cmd {
        CommandLine::Exec(v) => v.clone(),
        CommandLine::Shell(s) => {
            let mut v = rc.shell_or_default();
            v.push(s.clone());
            v
        }
    }
}

fn copy_line(kw: &str, sources: &[String], dest: &str) -> String {
    let mut s = kw.to_string();
    for src in sources {
        s.push(' ');
        s.push_str(src);
    }
    format!("{s} {dest} # buildkit")
}

fn pairs(kv: &ast::KeyValues) -> String {
    kv.pairs
        .iter()
        .map(|p| format!("{}={}", p.key, p.value))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Go's `%q` of a health config: `&{["CMD-SHELL" "true"] "5s" "0s" "0s" '\x00'}`.
fn healthcheck(h: &ast::Healthcheck) -> String {
    let (test, interval, timeout, start, retries) = match h {
        ast::Healthcheck::None => (vec!["NONE".to_string()], 0, 0, 0, 0),
        ast::Healthcheck::Cmd(c) => {
            let test = match &c.cmd {
                CommandLine::Exec(v) => std::iter::once("CMD".to_string())
                    .chain(v.iter().cloned())
                    .collect(),
                CommandLine::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
            };
            (
                test,
                c.interval.unwrap_or(0),
                c.timeout.unwrap_or(0),
                c.start_period.unwrap_or(0),
                c.retries.unwrap_or(0),
            )
        }
    };
    format!(
        "&{{{} {} {} {} {}}}",
        go_quoted_list(&test),
        go_quote(&go_duration(interval)),
        go_quote(&go_duration(timeout)),
        go_quote(&go_duration(start)),
        go_quote_rune(retries)
    )
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub(crate) fn go_quoted_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", items.join(" "))
}

/// Go's `strconv.Quote` (also `%q` in kiln's `--format` templates).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.QuoteRune` of a small integer (Retries printed with `%q`).
fn go_quote_rune(n: u32) -> String {
    match char::from_u32(n) {
        Some('\'') => "'\\''".into(),
        Some('\\') => "'\\\\'".into(),
        Some(c) if (0x20..0x7f).contains(&n) => format!("'{c}'"),
        _ if n < 0x80 => {
            let q = go_quote(&char::from_u32(n).unwrap_or('\0').to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
        Some(c) if !c.is_control() => format!("'{c}'"),
        _ => format!("'\\u{n:04x}'"),
    }
}

/// Go's `time.Duration.String` of nanoseconds: `0s`, `500ms`, `1.5s`, `1m30s`, `2h0m0s`.
fn go_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let frac = |v: u64, unit: u64| -> String {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.to_string().len() - 1;
        let f = format!("{rest:0digits$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 1_000_000));
    }
    let secs = ns / 1_000_000_000;
    let sub = ns % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let s = frac(s * 1_000_000_000 + sub, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_renderings() {
        assert_eq!(
            go_quoted_list(&["/bin/sh".into(), "-c".into(), "echo \"$V\"".into()]),
            r#"["/bin/sh" "-c" "echo \"$V\""]"#
        );
        assert_eq!(go_duration(5_000_000_000), "5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(7_200_000_000_000), "2h0m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert_eq!(go_quote_rune(0), r"'\x00'");
        assert_eq!(go_quote_rune(3), r"'\x03'");
        assert_eq!(go_quote_rune(9), r"'\t'");
        assert_eq!(go_quote_rune(65), "'A'");
    }

    /// The lines dockerd 20.10's BuildKit wrote for the same Dockerfile (`docker history
    /// --no-trunc`), checked by hand once.
    #[test]
    fn lines_as_docker_writes_them() {
        let df = kiln_dockerfile::parse(
            "FROM a\nARG V=1\nARG W\nENV A=1 B=\"two words\"\nENV C 3\nLABEL k=v \"x y\"=z\n\
             WORKDIR app\nUSER 1000:1000\nEXPOSE 80 443/udp\nVOLUME /data /logs\nVOLUME [\"/j\"]\n\
             STOPSIGNAL SIGTERM\nSHELL [\"/bin/sh\", \"-ec\"]\nHEALTHCHECK --interval=5s CMD true\n\
             ONBUILD RUN echo hi\nCOPY --chown=1:1 a.txt /x/\nADD a.txt /z\n\
             ENTRYPOINT [\"/bin/echo\", \"a\"]\nCMD echo $V\n",
        )
        .unwrap();
        let ev = kiln_dockerfile::Evaluator::new(&df, Default::default()).unwrap();
        let mut sev = ev.stage(&[]);
        let mut rc = RunConfig::default();
        let mut got = Vec::new();
        for ins in &df.stages[0].instructions {
            let x = sev.expand_instruction(ins).unwrap().instruction;
            if let Some(line) = created_by(ins, &x, &rc) {
                got.push(line);
            }
            match &ins.command {
                Command::Shell(s) => rc.shell = Some(s.shell.clone()),
                Command::Workdir(w) => rc.working_dir = Some(format!("/{}", w.path)),
                _ => {}
            }
        }
        let want = [
            "ARG V=1",
            "ARG W",
            "ENV A=1 B=two words",
            "ENV C=3",
            "LABEL k=v x y=z",
            "WORKDIR /app",
            "USER 1000:1000",
            "EXPOSE map[443/udp:{} 80/tcp:{}]",
            "VOLUME [/data /logs]",
            "VOLUME [/j]",
            "STOPSIGNAL SIGTERM",
            "SHELL [/bin/sh -ec]",
            r#"HEALTHCHECK &{["CMD-SHELL" "true"] "5s" "0s" "0s" '\x00'}"#,
            "COPY a.txt /x/ # buildkit",
            "ADD a.txt /z # buildkit",
            r#"ENTRYPOINT ["/bin/echo" "a"]"#,
            r#"CMD ["/bin/sh" "-ec" "echo $V"]"#,
        ];
        assert_eq!(got, want);
    }
}
