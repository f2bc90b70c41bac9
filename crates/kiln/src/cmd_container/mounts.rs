//! A container's mounts as flags give them: `-v` (`HOST:CTR`, `NAME:CTR`, `CTR`) and
//! `--mount`, parsed with docker's grammar and words into [`MountPoint`]s (volume.rs makes the
//! volumes and resolves them at create time).

use std::path::Path;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// A container's mount, resolved (docker's `MountPoint`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountPoint {
    /// `bind`, `volume` or `tmpfs`.
    pub typ: String,
    /// The volume's name.
    pub name: String,
    /// Host path: a bind's source, a volume's `_data`.
    pub source: String,
    pub destination: String,
    pub rw: bool,
    /// As docker shows it: `ro`, `z`, "".
    pub mode: String,
    /// Do not seed an empty volume from the image (`volume-nocopy`, `-v name:/d:nocopy`).
    pub nocopy: bool,
    /// Made for this container (anonymous): `rm -v` and `--rm` remove it.
    pub anonymous: bool,
    /// tmpfs options (`size=`, `mode=`).
    pub options: Vec<String>,
}

pub fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let ok = name.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        bail!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        );
    }
    Ok(())
}

/// `--mount type=bind|volume|tmpfs,source=...,target=...,readonly,...` as docker parses it.
pub fn parse_mount(spec: &str) -> anyhow::Result<MountPoint> {
    let bad =
        |why: &str| anyhow::anyhow!("invalid argument \"{spec}\" for \"--mount\" flag: {why}");
    let mut m = MountPoint {
        typ: "volume".into(),
        rw: true,
        ..Default::default()
    };
    let mut source = String::new();
    for field in spec.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let flag = |v: Option<&str>| -> anyhow::Result<bool> {
            match v {
                None | Some("1") | Some("true") => Ok(true),
                Some("0") | Some("false") => Ok(false),
                Some(o) => Err(bad(&format!("invalid value for {k}: {o}"))),
            }
        };
        match k.as_str() {
            "type" => m.typ = v.unwrap_or_default().to_string(),
            "source" | "src" => source = v.unwrap_or_default().to_string(),
            "target" | "destination" | "dst" => m.destination = v.unwrap_or_default().to_string(),
            "readonly" | "ro" => m.rw = !flag(v)?,
            "volume-nocopy" => m.nocopy = flag(v)?,
            "bind-propagation" if v == Some("rprivate") => {}
            "tmpfs-size" => m.options.push(format!("size={}", v.unwrap_or_default())),
            "tmpfs-mode" => m.options.push(format!("mode={}", v.unwrap_or_default())),
            other => bail!(bad(&format!(
                "unexpected key '{other}' (kiln supports type, source, target, readonly, volume-nocopy, tmpfs-size, tmpfs-mode)"
            ))),
        }
    }
    if m.destination.is_empty() {
        bail!(bad("target is required"));
    }
    if !m.destination.starts_with('/') {
        bail!(bad(&format!(
            "invalid mount path: '{}' mount path must be absolute",
            m.destination
        )));
    }
    match m.typ.as_str() {
        "bind" => {
            if source.is_empty() {
                bail!(bad("source is required when specifying bind mounts"));
            }
            let p = Path::new(&source);
            if !p.is_absolute() {
                bail!(bad(&format!(
                    "invalid mount config for type \"bind\": invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            if !p.exists() {
                // docker's --mount does not create a missing bind source (unlike -v).
                bail!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {source}"
                );
            }
            m.source = source;
        }
        "volume" => {
            if source.is_empty() {
                m.anonymous = true;
            } else {
                check_name(&source)?;
                m.name = source;
            }
        }
        "tmpfs" => {
            if !source.is_empty() {
                bail!(bad("source is not supported for tmpfs mounts"));
            }
        }
        other => bail!(bad(&format!(
            "invalid mount type {other:?} (kiln supports bind, volume and tmpfs)"
        ))),
    }
    Ok(m)
}

/// `-v`: `HOST:CTR[:opts]` (bind), `NAME:CTR[:opts]` (named volume), `CTR` (anonymous).
pub fn parse_volume_flag(spec: &str) -> anyhow::Result<MountPoint> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dest, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => bail!("invalid volume specification: '{spec}'"),
    };
    if !dest.starts_with('/') {
        bail!(
            "invalid volume specification: '{spec}': invalid mount config for type \"{}\": invalid mount path: '{dest}' mount path must be absolute",
            if src.starts_with('/') {
                "bind"
            } else {
                "volume"
            }
        );
    }
    let mut m = MountPoint {
        destination: dest.to_string(),
        rw: true,
        ..Default::default()
    };
    for o in mode.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => m.rw = false,
            "rw" => m.rw = true,
            "nocopy" => m.nocopy = true,
            "z" | "Z" | "rprivate" => {}
            other => bail!("invalid mode: {other} (kiln supports ro, rw, nocopy)"),
        }
    }
    if src.is_empty() {
        m.typ = "volume".into();
        m.anonymous = true;
    } else if src.starts_with('/') {
        m.typ = "bind".into();
        m.source = src.to_string();
        m.mode = mode.to_string();
    } else {
        check_name(src)?;
        m.typ = "volume".into();
        m.name = src.to_string();
        m.mode = if mode.is_empty() {
            "z".into()
        } else {
            mode.to_string()
        };
    }
    Ok(m)
}

/// `--volumes-from CONTAINER[:MODE]` as docker's `ParseVolumesFrom`: the container and
/// whether its mounts may stay writable (`rw`, the default, keeps each mount's own mode; `ro`
/// makes them all read-only; `z`/`Z` are accepted and change nothing here). Anything else is
/// docker's `invalid mode: MODE`.
pub fn parse_volumes_from(spec: &str) -> anyhow::Result<(String, bool)> {
    if spec.is_empty() {
        bail!("volumes-from specification cannot be an empty string");
    }
    let (name, mode) = spec.split_once(':').unwrap_or((spec, "rw"));
    // An empty mode (`NAME:`) is docker's default, as its `ValidMountMode("")` says.
    let mode = if mode.is_empty() { "rw" } else { mode };
    let mut rw = true;
    let (mut seen_rw, mut seen_label) = (false, false);
    for o in mode.split(',') {
        match o {
            "ro" | "rw" if !seen_rw => {
                seen_rw = true;
                rw = o == "rw";
            }
            "z" | "Z" if !seen_label => seen_label = true,
            _ => bail!("invalid mode: {mode}"),
        }
    }
    Ok((name.to_string(), rw))
}

/// The mounts a container takes with `--volumes-from` from another's `mounts`: its volumes
/// and binds at the same destinations (tmpfs mounts are the other container's own memory, and
/// docker 20.10 fails on them with `get: no such volume`), read-write only where both the
/// mount and `rw` say so, never seeded again (docker's `CopyData: false`), `Mode` empty as
/// docker shows it. An anonymous volume stays anonymous: `rm -v` of the last container that
/// uses it removes it.
pub fn volumes_from(mounts: &[MountPoint], rw: bool) -> Vec<MountPoint> {
    mounts
        .iter()
        .filter(|m| m.typ == "volume" || m.typ == "bind")
        .map(|m| MountPoint {
            rw: m.rw && rw,
            mode: String::new(),
            nocopy: true,
            options: Vec::new(),
            ..m.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_from_modes_follow_docker() {
        assert_eq!(parse_volumes_from("a").unwrap(), ("a".into(), true));
        assert_eq!(parse_volumes_from("a:ro").unwrap(), ("a".into(), false));
        assert_eq!(parse_volumes_from("a:rw,z").unwrap(), ("a".into(), true));
        // docker 20.10: `--volumes-from v1:` runs with v1's volumes read-write.
        assert_eq!(parse_volumes_from("a:").unwrap(), ("a".into(), true));
        assert!(parse_volumes_from("a:ro,").is_err());
        assert_eq!(
            parse_volumes_from("a:xx").unwrap_err().to_string(),
            "invalid mode: xx"
        );
        assert!(parse_volumes_from("a:ro,rw").is_err());
        assert!(parse_volumes_from("").is_err());
        let src = [
            MountPoint {
                typ: "volume".into(),
                name: "v".into(),
                rw: true,
                mode: "z".into(),
                ..Default::default()
            },
            MountPoint {
                typ: "bind".into(),
                rw: false,
                mode: "ro".into(),
                ..Default::default()
            },
            MountPoint {
                typ: "tmpfs".into(),
                rw: true,
                ..Default::default()
            },
        ];
        let rw = volumes_from(&src, true);
        assert_eq!(rw.len(), 2);
        assert!(rw[0].rw && !rw[1].rw, "rw keeps each mount's own mode");
        assert!(rw.iter().all(|m| m.mode.is_empty() && m.nocopy));
        assert!(volumes_from(&src, false).iter().all(|m| !m.rw));
    }
}
