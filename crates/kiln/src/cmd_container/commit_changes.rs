//! `commit -c/--change`: Dockerfile instructions applied to the committed image's config, as
//! docker's `BuildFromConfig`. docker accepts CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK,
//! LABEL, ONBUILD, USER, VOLUME and WORKDIR (its documentation leaves HEALTHCHECK out, its
//! daemon takes it); anything else is `<word> is not a valid change command`. Words are
//! expanded with the config's Env as it stands when the instruction applies (so `ENV
//! PATH=$PATH:/x` works), with BuildKit's lexer.

use kiln_dockerfile::expand::Lexer;
use kiln_dockerfile::{Command, CommandLine, Healthcheck, Instruction};
use serde_json::{Map, Value, json};

const VALID: &[&str] = &[
    "cmd",
    "entrypoint",
    "env",
    "expose",
    "healthcheck",
    "label",
    "onbuild",
    "user",
    "volume",
    "workdir",
];

/// Parses the changes (docker's messages on error, without the daemon's prefix).
pub fn parse(changes: &[String]) -> Result<Vec<Instruction>, String> {
    // docker checks every instruction's keyword before parsing any of them.
    for c in changes {
        for line in c.lines() {
            let word = line.split_whitespace().next().unwrap_or("");
            if word.is_empty() || word.starts_with('#') {
                continue;
            }
            let word = word.to_ascii_lowercase();
            if !VALID.contains(&word.as_str()) {
                return Err(format!("{word} is not a valid change command"));
            }
            // Only a change's first line is an instruction (the rest continue it).
            break;
        }
    }
    kiln_dockerfile::parse_onbuild_triggers(changes).map_err(|e| e.message)
}

/// The config's Env as a map, for expansion.
fn env_map(ic: &Value) -> std::collections::HashMap<String, String> {
    ic["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn expand(ic: &Value, word: &str) -> Result<String, String> {
    Lexer::new('\\')
        .process_word(word, &env_map(ic))
        .map(|e| e.value)
        .map_err(|e| e.to_string())
}

/// CMD/ENTRYPOINT/HEALTHCHECK command: exec form as is, shell form through the config's
/// Shell (default `/bin/sh -c`).
fn argv(ic: &Value, cmd: &CommandLine) -> Vec<String> {
    match cmd {
        CommandLine::Exec(v) => v.clone(),
        CommandLine::Shell(s) => {
            let mut shell: Vec<String> = ic["Shell"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .filter(|v: &Vec<String>| !v.is_empty())
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            shell.push(s.clone());
            shell
        }
    }
}

fn map_of<'a>(ic: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !ic[key].is_object() {
        ic[key] = json!({});
    }
    ic[key].as_object_mut().expect("made an object above")
}

/// `80`, `80/udp`, `8000-8002/tcp` → docker's `PORT/PROTO` keys.
fn ports(spec: &str) -> Result<Vec<String>, String> {
    let (range, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let bad = || format!("invalid containerPort: {range}");
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = range.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(format!(
            "invalid range specified for containerPort: {range}"
        ));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Applies the parsed changes to `ic` (the image config's `config` object).
pub fn apply(instructions: &[Instruction], ic: &mut Value) -> Result<(), String> {
    let mut cmd_set = false;
    for i in instructions {
        match &i.command {
            Command::Cmd(c) => {
                ic["Cmd"] = json!(argv(ic, &c.cmd));
                cmd_set = true;
            }
            Command::Entrypoint(c) => {
                ic["Entrypoint"] = match &c.cmd {
                    // `ENTRYPOINT []` or an empty shell form clears it.
                    CommandLine::Shell(s) if s.trim().is_empty() => Value::Null,
                    cmd => json!(argv(ic, cmd)),
                };
                // docker: an ENTRYPOINT resets the Cmd unless a CMD came before it.
                if !cmd_set {
                    ic["Cmd"] = Value::Null;
                }
            }
            Command::Env(kvs) => {
                for kv in &kvs.pairs {
                    let key = expand(ic, &kv.key)?;
                    let value = expand(ic, &kv.value)?;
                    let mut env: Vec<Value> = ic["Env"].as_array().cloned().unwrap_or_default();
                    let prefix = format!("{key}=");
                    env.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)));
                    env.push(json!(format!("{key}={value}")));
                    ic["Env"] = Value::Array(env);
                }
            }
            Command::Label(kvs) => {
                for kv in &kvs.pairs {
                    let key = expand(ic, &kv.key)?;
                    let value = expand(ic, &kv.value)?;
                    map_of(ic, "Labels").insert(key, json!(value));
                }
            }
            Command::Expose(e) => {
                for p in &e.ports {
                    for key in ports(&expand(ic, p)?)? {
                        map_of(ic, "ExposedPorts").insert(key, json!({}));
                    }
                }
            }
            Command::User(u) => ic["User"] = json!(expand(ic, &u.user)?),
            Command::Volume(v) => {
                for p in &v.paths {
                    let p = expand(ic, p)?;
                    if p.trim().is_empty() {
                        return Err("VOLUME specified can not be an empty string".into());
                    }
                    map_of(ic, "Volumes").insert(p, json!({}));
                }
            }
            Command::Workdir(w) => {
                let path = expand(ic, &w.path)?;
                let joined = if path.starts_with('/') {
                    path
                } else {
                    let base = ic["WorkingDir"].as_str().unwrap_or("").to_string();
                    format!("/{}/{path}", base.trim_matches('/'))
                };
                ic["WorkingDir"] = json!(kiln_build::plan::clean_path(&joined));
            }
            Command::Onbuild(o) => {
                let mut list: Vec<Value> = ic["OnBuild"].as_array().cloned().unwrap_or_default();
                list.push(json!(o.expression));
                ic["OnBuild"] = Value::Array(list);
            }
            Command::Healthcheck(h) => {
                ic["Healthcheck"] = match h {
                    Healthcheck::None => json!({"Test": ["NONE"]}),
                    Healthcheck::Cmd(hc) => {
                        let test = match &hc.cmd {
                            CommandLine::Exec(v) => std::iter::once("CMD".to_string())
                                .chain(v.clone())
                                .collect(),
                            CommandLine::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                        };
                        let mut doc = json!({"Test": test});
                        for (k, v) in [
                            ("Interval", hc.interval),
                            ("Timeout", hc.timeout),
                            ("StartPeriod", hc.start_period),
                        ] {
                            if let Some(ns) = v {
                                doc[k] = json!(ns);
                            }
                        }
                        if let Some(r) = hc.retries {
                            doc["Retries"] = json!(r);
                        }
                        doc
                    }
                };
            }
            other => {
                return Err(format!(
                    "{} is not a valid change command",
                    other.name().to_ascii_lowercase()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(changes: &[&str], ic: Value) -> Result<Value, String> {
        let changes: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        let mut ic = ic;
        apply(&parse(&changes)?, &mut ic)?;
        Ok(ic)
    }

    #[test]
    fn changes_apply_as_dockers_commit() {
        let ic = changed(
            &[
                "ENV PATH=$PATH:/opt/bin A=1",
                "CMD echo hi",
                "ENTRYPOINT [\"/bin/tini\"]",
                "EXPOSE 80 53/udp 8000-8001",
                "LABEL a=b \"c d\"=e",
                "USER nobody",
                "VOLUME /data",
                "WORKDIR sub/../app",
                "ONBUILD RUN echo later",
                "HEALTHCHECK --interval=5s CMD true",
            ],
            json!({"Env": ["PATH=/usr/bin"], "WorkingDir": "/srv"}),
        )
        .unwrap();
        assert_eq!(ic["Env"], json!(["PATH=/usr/bin:/opt/bin", "A=1"]));
        // A CMD given before the ENTRYPOINT stays.
        assert_eq!(ic["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(ic["Entrypoint"], json!(["/bin/tini"]));
        assert_eq!(
            ic["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
        );
        assert_eq!(ic["Labels"], json!({"a": "b", "c d": "e"}));
        assert_eq!(ic["User"], json!("nobody"));
        assert_eq!(ic["Volumes"], json!({"/data": {}}));
        assert_eq!(ic["WorkingDir"], json!("/srv/app"));
        assert_eq!(ic["OnBuild"], json!(["RUN echo later"]));
        assert_eq!(
            ic["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000u64})
        );
        let ic = changed(&["HEALTHCHECK CMD [\"/bin/check\", \"-q\"]"], json!({})).unwrap();
        assert_eq!(
            ic["Healthcheck"],
            json!({"Test": ["CMD", "/bin/check", "-q"]})
        );
        let ic = changed(&["HEALTHCHECK NONE"], json!({})).unwrap();
        assert_eq!(ic["Healthcheck"], json!({"Test": ["NONE"]}));
        let ic = changed(&["ENTRYPOINT /x"], json!({"Cmd": ["a"]})).unwrap();
        assert_eq!(ic["Cmd"], Value::Null);
        assert_eq!(ic["Entrypoint"], json!(["/bin/sh", "-c", "/x"]));
    }

    #[test]
    fn other_instructions_are_refused_with_dockers_message() {
        for (c, word) in [
            ("RUN x", "run"),
            ("FROM x", "from"),
            ("bogus x", "bogus"),
            ("STOPSIGNAL 9", "stopsignal"),
            ("SHELL [\"/bin/sh\"]", "shell"),
            ("COPY a b", "copy"),
        ] {
            assert_eq!(
                changed(&[c], json!({})).unwrap_err(),
                format!("{word} is not a valid change command")
            );
        }
        assert!(changed(&["ENV"], json!({})).is_err());
        assert!(changed(&["EXPOSE abc"], json!({})).is_err());
    }
}
