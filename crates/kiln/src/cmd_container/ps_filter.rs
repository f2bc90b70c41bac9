//! `ps --filter`, with the keys and rules of docker 20.10's daemon (moby `daemon/list.go`):
//! the values of one key are ORed and different keys ANDed, except `label`, whose values must
//! all match; `name` and `id` are unanchored regular expressions; `status` implies `-a`.

use std::collections::{BTreeMap, HashSet};

use kiln_store::{ContainerRecord, ContainerState, Store};

use super::config::ContainerConfig;

/// Statuses docker knows (`container.IsValidStateString`).
const STATUSES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// A refusal docker's daemon would send: printed as it is.
fn daemon(m: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("Error response from daemon: {m}")
}

/// The parsed `--filter` values.
#[derive(Default)]
pub struct PsFilter {
    values: BTreeMap<String, Vec<String>>,
    names: Vec<regex::Regex>,
    ids: Vec<regex::Regex>,
    exited: Vec<i32>,
    /// Only containers created before this one (its creation time and ID).
    before: Option<(i64, String)>,
    /// Only containers created after this one.
    since: Option<(i64, String)>,
    publish: HashSet<String>,
    expose: HashSet<String>,
}

impl PsFilter {
    /// Parses `--filter KEY=VALUE` arguments. A bad one is docker's error.
    pub fn parse(store: &Store, filters: &[String]) -> anyhow::Result<PsFilter> {
        let mut f = PsFilter::default();
        for arg in filters {
            let Some((k, v)) = arg.split_once('=') else {
                // The CLI's own check (exit 125 with the usage hint).
                eprintln!(
                    "invalid argument \"{arg}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)\nSee 'kiln ps --help'."
                );
                return Err(super::Exit(125).into());
            };
            let k = k.to_ascii_lowercase();
            match k.as_str() {
                "name" | "id" => {
                    // docker skips a value that is not a valid expression: it matches nothing.
                    if let Ok(re) = regex::Regex::new(v) {
                        if k == "name" {
                            &mut f.names
                        } else {
                            &mut f.ids
                        }
                        .push(re);
                    }
                }
                "status" if !STATUSES.contains(&v) => {
                    return Err(daemon(format!("Invalid filter 'status={v}'")));
                }
                "health" if !["starting", "healthy", "unhealthy", "none"].contains(&v) => {
                    return Err(daemon(format!("Unrecognised filter value for health: {v}")));
                }
                "exited" => f.exited.push(v.parse().map_err(|_| {
                    daemon(format!("strconv.Atoi: parsing \"{v}\": invalid syntax"))
                })?),
                "before" | "since" => {
                    let c = store
                        .find_container(v)
                        .map_err(|_| daemon(format!("no such container {v}")))?;
                    let at = Some((c.created_ns, c.id));
                    if k == "before" {
                        f.before = at;
                    } else {
                        f.since = at;
                    }
                }
                "publish" | "expose" => {
                    let set = if k == "publish" {
                        &mut f.publish
                    } else {
                        &mut f.expose
                    };
                    port_values(&k, v, set)?;
                }
                "isolation" => {
                    return Err(daemon(
                        "filter 'isolation' is not supported by kiln: it has no isolation technologies (a Windows setting)",
                    ));
                }
                "is-task" if v != "true" && v != "false" => {
                    return Err(daemon(format!(
                        "Invalid filter 'is-task={v}': expected true or false"
                    )));
                }
                "status" | "health" | "ancestor" | "label" | "volume" | "network" | "is-task" => {}
                _ => return Err(daemon(format!("Invalid filter '{k}'"))),
            }
            f.values.entry(k).or_default().push(v.to_string());
        }
        Ok(f)
    }

    /// `status` given: stopped containers are listed without `-a`.
    pub fn implies_all(&self) -> bool {
        self.values.contains_key("status")
    }

    fn has(&self, k: &str) -> bool {
        self.values.contains_key(k)
    }

    fn any(&self, k: &str, mut f: impl FnMut(&str) -> bool) -> bool {
        self.values.get(k).is_none_or(|vs| vs.iter().any(|v| f(v)))
    }

    /// Whether `c` passes every filter. `ports` is what `ps` shows: (host port or 0, container
    /// port, protocol).
    pub fn matches(
        &self,
        store: &Store,
        c: &ContainerRecord,
        cfg: &ContainerConfig,
        ports: &[(u16, u16, &str)],
    ) -> bool {
        let name = c.name.clone().unwrap_or_default();
        let slashed = format!("/{name}");
        if !self.names.is_empty()
            && !self
                .names
                .iter()
                .any(|re| re.is_match(&slashed) || re.is_match(&name))
        {
            return false;
        }
        if self.has("name") && self.names.is_empty() {
            return false;
        }
        if self.has("id") && !self.ids.iter().any(|re| re.is_match(&c.id)) {
            return false;
        }
        let dir = store.container_dir(&c.id);
        if !self.any("status", |v| super::restarting::state_name(&dir, c) == v) {
            return false;
        }
        let exited_with = |code: &i32| {
            c.state == ContainerState::Exited && c.started_ns != 0 && c.exit_code == *code
        };
        if !self.exited.is_empty() && !self.exited.iter().any(exited_with) {
            return false;
        }
        if !self.any("ancestor", |v| {
            c.image_ref == v || c.image.to_string().contains(v)
        }) {
            return false;
        }
        // Every label value must match: `KEY` (present) or `KEY=VALUE`.
        if let Some(vs) = self.values.get("label")
            && !vs.iter().all(|v| match v.split_once('=') {
                Some((k, val)) => cfg.labels.get(k).is_some_and(|x| x == val),
                None => cfg.labels.contains_key(v.as_str()),
            })
        {
            return false;
        }
        if !self.any("volume", |v| {
            cfg.host.mount_points.iter().any(|m| {
                m.destination == v
                    || (if m.name.is_empty() {
                        &m.source
                    } else {
                        &m.name
                    }) == v
            })
        }) {
            return false;
        }
        if !self.any("network", |v| {
            let mode = cfg.host.network_mode.as_str();
            v == mode || (mode == "private" && ["default", "bridge"].contains(&v))
        }) {
            return false;
        }
        if !self.any("health", |v| {
            let status = if cfg.healthcheck.is_some() {
                super::health::read(&store.container_dir(&c.id)).map(|h| h.status)
            } else {
                None
            };
            status.as_deref().unwrap_or("none") == v
        }) {
            return false;
        }
        // kiln runs no swarm tasks.
        if !self.any("is-task", |v| v == "false") {
            return false;
        }
        if (!self.publish.is_empty() || !self.expose.is_empty())
            && !ports.iter().any(|(host, ctr, proto)| {
                self.publish.contains(&format!("{host}/{proto}"))
                    || self.expose.contains(&format!("{ctr}/{proto}"))
            })
        {
            return false;
        }
        let key = |ns: i64, id: &str| (ns, id.to_string());
        if let Some(b) = &self.before
            && key(c.created_ns, &c.id) >= *b
        {
            return false;
        }
        if let Some(s) = &self.since
            && key(c.created_ns, &c.id) <= *s
        {
            return false;
        }
        true
    }
}

/// `PORT[/PROTO]` or `START-END[/PROTO]` (moby's `portOp`) into `PORT/PROTO` keys.
fn port_values(key: &str, v: &str, set: &mut HashSet<String>) -> anyhow::Result<()> {
    if v.contains(':') {
        return Err(daemon(format!(
            "filter for '{key}' should not include ':': {v}"
        )));
    }
    let (port, proto) = v.split_once('/').unwrap_or((v, "tcp"));
    let bad = || {
        daemon(format!(
            "error while looking up for {key} {v}: invalid port"
        ))
    };
    let (start, end) = match port.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = port.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if end < start {
        return Err(bad());
    }
    for p in start..=end {
        set.insert(format!("{p}/{}", proto.to_ascii_lowercase()));
    }
    Ok(())
}
