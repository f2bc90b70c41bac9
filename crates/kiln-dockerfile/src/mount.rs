//! `RUN --mount=...`: the CSV option list as written, and its typed, validated form.
//! Validation follows BuildKit's `parseMount`; values holding variables are checked again
//! after expansion.

use serde::Serialize;

use crate::span::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// A typed mount. Defaults are applied where BuildKit applies them at parse time (read-only
/// for bind/secret/ssh); the rest (cache id = target, secret target) are left to the builder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: MountType,
    pub target: Option<String>,
    pub source: Option<String>,
    pub from: Option<String>,
    pub readonly: bool,
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    pub required: bool,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// secret: expose as this environment variable.
    pub env: Option<String>,
}

/// One `--mount` flag as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountSpec {
    /// The flag value as written (`type=cache,target=/root/.cache`).
    pub raw: String,
    /// `key[=value]` fields, keys lowercased, values raw.
    pub fields: Vec<(String, Option<String>)>,
    pub span: Span,
    /// The typed mount, when no value needed expansion (or after expansion).
    pub resolved: Option<Mount>,
}

const ALL_KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// Split a mount value into fields with CSV rules (a field may be double-quoted, `""` is a quote).
pub(crate) fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(format!(
                            "failed to parse csv mounts: unterminated quote in {s:?}"
                        ));
                    }
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => out.push(field),
                Some(c) => {
                    return Err(format!(
                        "failed to parse csv mounts: unexpected {c:?} after quoted field in {s:?}"
                    ));
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(field);
                        return Ok(out);
                    }
                    Some(',') => break,
                    Some('"') => {
                        return Err(format!(
                            "failed to parse csv mounts: bare \" in non-quoted field in {s:?}"
                        ));
                    }
                    Some(c) => field.push(c),
                }
            }
            out.push(field);
        }
    }
}

impl MountSpec {
    /// Parse a `--mount` value. Structural problems (unknown keys, a variable in `from`) are
    /// errors now; typed values are checked now when they hold no `$`, else after expansion.
    pub(crate) fn parse(raw: &str, span: Span) -> Result<MountSpec, String> {
        let mut fields = Vec::new();
        for f in csv_fields(raw)? {
            let (k, v) = match f.split_once('=') {
                Some((k, v)) => (k.to_lowercase(), Some(v.to_string())),
                None => (f.to_lowercase(), None),
            };
            if !ALL_KEYS.contains(&k.as_str()) {
                let hint = crate::error::did_you_mean(&k, ALL_KEYS, true)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                return Err(format!("unexpected key '{k}' in '{f}'{hint}"));
            }
            if k == "from"
                && let Some(v) = &v
                && let Some(i) = v.find('$')
                && i != v.len() - 1
            {
                return Err(
                    "'from' doesn't support variable expansion, define alias stage instead".into(),
                );
            }
            fields.push((k, v));
        }
        let mut spec = MountSpec {
            raw: raw.to_string(),
            fields,
            span,
            resolved: None,
        };
        if !spec
            .fields
            .iter()
            .any(|(_, v)| v.as_deref().is_some_and(|v| v.contains('$')))
        {
            spec.resolved = Some(spec.resolve(&mut |s| Ok(s.to_string()))?);
        }
        Ok(spec)
    }

    /// Build the typed mount, passing every value through `expand` (the `from` value is never
    /// expanded: BuildKit rejects variables there).
    pub fn resolve(
        &self,
        expand: &mut dyn FnMut(&str) -> Result<String, String>,
    ) -> Result<Mount, String> {
        let mut m = Mount {
            kind: MountType::Bind,
            target: None,
            source: None,
            from: None,
            readonly: false,
            id: None,
            sharing: None,
            required: false,
            size: None,
            mode: None,
            uid: None,
            gid: None,
            env: None,
        };
        let mut ro_auto = true;
        for (key, value) in &self.fields {
            let key = key.as_str();
            let Some(value) = value else {
                match key {
                    "readonly" | "ro" => {
                        m.readonly = true;
                        ro_auto = false;
                    }
                    "readwrite" | "rw" => {
                        m.readonly = false;
                        ro_auto = false;
                    }
                    "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                        m.required = true
                    }
                    "required" => {
                        return Err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind.as_str()
                        ));
                    }
                    _ => return Err(format!("invalid field '{key}' must be a key=value pair")),
                }
                continue;
            };
            let value = if key == "from" {
                value.clone()
            } else {
                expand(value)?
            };
            let bad = || format!("invalid value for {key}: {value}");
            match key {
                "type" => {
                    m.kind = match value.to_lowercase().as_str() {
                        "bind" => MountType::Bind,
                        "cache" => MountType::Cache,
                        "tmpfs" => MountType::Tmpfs,
                        "secret" => MountType::Secret,
                        "ssh" => MountType::Ssh,
                        _ => {
                            let hint = crate::error::did_you_mean(
                                &value,
                                ["bind", "cache", "tmpfs", "secret", "ssh"],
                                true,
                            )
                            .map(|s| format!(" (did you mean {s}?)"))
                            .unwrap_or_default();
                            return Err(format!("unsupported mount type {value:?}{hint}"));
                        }
                    }
                }
                // BuildKit reads an empty `from=` as no `from` (the build context).
                "from" => m.from = (!value.is_empty()).then_some(value),
                "source" | "src" => m.source = Some(value),
                "target" | "dst" | "destination" => m.target = Some(value),
                "readonly" | "ro" => {
                    m.readonly = parse_bool(&value).ok_or_else(bad)?;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = !parse_bool(&value).ok_or_else(bad)?;
                    ro_auto = false;
                }
                "required" => {
                    if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                        return Err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind.as_str()
                        ));
                    }
                    m.required = parse_bool(&value).ok_or_else(bad)?;
                }
                "size" => {
                    if m.kind != MountType::Tmpfs {
                        return Err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind.as_str()
                        ));
                    }
                    m.size = Some(parse_ram_size(&value).ok_or_else(bad)?);
                }
                "id" => m.id = Some(value),
                "sharing" => {
                    m.sharing = Some(match value.to_lowercase().as_str() {
                        "shared" => Sharing::Shared,
                        "private" => Sharing::Private,
                        "locked" => Sharing::Locked,
                        _ => return Err(format!("unsupported sharing value {value:?}")),
                    })
                }
                "mode" => {
                    m.mode = Some(
                        u32::from_str_radix(&value, 8)
                            .map_err(|_| format!("invalid value {value} for mode"))?,
                    )
                }
                "uid" => {
                    m.uid = Some(
                        value
                            .parse()
                            .map_err(|_| format!("invalid value {value} for uid"))?,
                    )
                }
                "gid" => {
                    m.gid = Some(
                        value
                            .parse()
                            .map_err(|_| format!("invalid value {value} for gid"))?,
                    )
                }
                "env" => m.env = Some(value),
                _ => return Err(format!("unexpected key '{key}'")),
            }
        }
        let file_info_allowed = matches!(
            m.kind,
            MountType::Secret | MountType::Ssh | MountType::Cache
        );
        if !file_info_allowed {
            for (name, set) in [
                ("mode", m.mode.is_some()),
                ("uid", m.uid.is_some()),
                ("gid", m.gid.is_some()),
            ] {
                if set {
                    return Err(format!(
                        "{name} not allowed for {:?} type mounts",
                        m.kind.as_str()
                    ));
                }
            }
        }
        // Only a secret can become an environment variable; on another mount `env` would be
        // silently ignored.
        if m.env.is_some() && m.kind != MountType::Secret {
            return Err(format!(
                "unexpected key 'env' for mount type '{}'",
                m.kind.as_str()
            ));
        }
        if ro_auto {
            m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
        }
        if m.kind == MountType::Secret {
            if m.from.is_some() {
                return Err("secret mount should not have a from".into());
            }
            if m.sharing.is_some() {
                return Err("secret mount should not define sharing".into());
            }
            if m.source.is_none() && m.target.is_none() && m.id.is_none() {
                return Err("invalid secret mount. one of source, target required".into());
            }
            if m.source.is_some() && m.id.is_some() {
                return Err("both source and id can't be set".into());
            }
        }
        if m.sharing.is_some() && m.kind != MountType::Cache {
            return Err(format!(
                "invalid cache sharing set for {} mount",
                m.kind.as_str()
            ));
        }
        if matches!(
            m.kind,
            MountType::Bind | MountType::Cache | MountType::Tmpfs
        ) && m.target.is_none()
        {
            return Err(format!(
                "mount type {} requires a target (target=/path)",
                m.kind.as_str()
            ));
        }
        Ok(m)
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// docker/go-units `RAMInBytes`: `64m`, `1g`, `512kb`, `100` (binary multiples).
fn parse_ram_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024f64.powi(4),
        "p" | "pb" | "pib" => 1024f64.powi(5),
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Result<Mount, String> {
        MountSpec::parse(s, Span::default()).map(|s| s.resolved.expect("resolved"))
    }

    #[test]
    fn cache_mount_with_all_options() {
        let c = m(
            "type=cache,target=/root/.cache,id=pip,sharing=locked,uid=1000,gid=1000,mode=0700,ro",
        )
        .unwrap();
        assert_eq!(c.kind, MountType::Cache);
        assert_eq!(c.target.as_deref(), Some("/root/.cache"));
        assert_eq!(c.id.as_deref(), Some("pip"));
        assert_eq!(c.sharing, Some(Sharing::Locked));
        assert_eq!(
            (c.uid, c.gid, c.mode),
            (Some(1000), Some(1000), Some(0o700))
        );
        assert!(c.readonly);
    }

    #[test]
    fn bind_defaults_readonly_and_aliases() {
        let b = m("dst=/src,src=.,from=build").unwrap();
        assert_eq!(b.kind, MountType::Bind);
        assert!(b.readonly);
        assert_eq!(b.from.as_deref(), Some("build"));
        assert!(!m("type=bind,destination=/x,rw").unwrap().readonly);
        assert!(!m("type=bind,target=/x,readwrite=true").unwrap().readonly);
    }

    #[test]
    fn secret_ssh_tmpfs() {
        let s = m("type=secret,id=npmrc,target=/root/.npmrc,required,mode=0400").unwrap();
        assert!(s.required && s.readonly);
        let s = m("type=secret,id=tok,env=TOKEN").unwrap();
        assert_eq!(s.env.as_deref(), Some("TOKEN"));
        let s = m("type=ssh,required=true").unwrap();
        assert_eq!(s.kind, MountType::Ssh);
        let t = m("type=tmpfs,target=/tmp,size=64m").unwrap();
        assert_eq!(t.size, Some(64 << 20));
    }

    #[test]
    fn errors() {
        assert!(
            m("type=nfs,target=/x")
                .unwrap_err()
                .contains("unsupported mount type")
        );
        assert!(
            m("type=cache,target=/x,sharing=all")
                .unwrap_err()
                .contains("unsupported sharing")
        );
        assert!(
            m("type=bind,target=/x,mode=0700")
                .unwrap_err()
                .contains("mode not allowed")
        );
        assert!(
            m("type=cache,targt=/x")
                .unwrap_err()
                .contains("did you mean target?")
        );
        assert!(m("type=cache,target").unwrap_err().contains("key=value"));
        assert!(
            m("type=secret")
                .unwrap_err()
                .contains("one of source, target")
        );
        assert!(
            m("type=cache,target=/x,required")
                .unwrap_err()
                .contains("unexpected key")
        );
        assert!(
            m("type=tmpfs,target=/x,size=lots")
                .unwrap_err()
                .contains("invalid value")
        );
        assert!(m("type=cache").unwrap_err().contains("requires a target"));
        assert!(MountSpec::parse("type=bind,target=/x,from=$STAGE", Span::default()).is_err());
        assert!(m("type=bind,\"target=/a,b\"").unwrap().target.as_deref() == Some("/a,b"));
    }

    #[test]
    fn env_is_for_secrets_only() {
        assert!(
            m("type=cache,target=/c,env=X")
                .unwrap_err()
                .contains("unexpected key 'env' for mount type 'cache'")
        );
        assert_eq!(
            m("env=TOKEN,type=secret,id=t").unwrap().env.as_deref(),
            Some("TOKEN")
        );
    }

    #[test]
    fn deferred_when_variables() {
        let s = MountSpec::parse("type=cache,target=$DIR", Span::default()).unwrap();
        assert!(s.resolved.is_none());
        let r = s.resolve(&mut |v| Ok(v.replace("$DIR", "/d"))).unwrap();
        assert_eq!(r.target.as_deref(), Some("/d"));
    }
}
