//! `inspect` of containers: docker's JSON document (the keys kiln has, in docker's order).

use std::collections::BTreeMap;
use std::io::Write;

use kiln_store::{ContainerRecord, Store};
use serde::Serialize;
use serde_json::{Value, json};

use super::config::ContainerConfig;
use super::logfile::rfc3339_nano;
use super::net::PortMapping;
use crate::cmd_image::render::go_json_pretty_of;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct State {
    status: String,
    running: bool,
    paused: bool,
    restarting: bool,
    #[serde(rename = "OOMKilled")]
    oom_killed: bool,
    dead: bool,
    pid: u32,
    exit_code: i32,
    error: String,
    started_at: String,
    finished_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<super::health::Health>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Config {
    hostname: String,
    domainname: String,
    user: String,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    exposed_ports: Option<BTreeMap<String, Value>>,
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    env: Vec<String>,
    cmd: Option<Vec<String>>,
    image: String,
    volumes: Option<Value>,
    working_dir: String,
    entrypoint: Option<Vec<String>>,
    on_build: Option<Value>,
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    stop_signal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<super::health::HealthConfig>,
}

/// /dev/shm's size when `--shm-size` is not given (docker's 64 MB).
const DEFAULT_SHM_SIZE: i64 = 64 * 1024 * 1024;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HostConfig {
    binds: Option<Vec<String>>,
    network_mode: String,
    port_bindings: BTreeMap<String, Vec<Value>>,
    restart_policy: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    init: Option<bool>,
    console_size: [u16; 2],
    auto_remove: bool,
    volumes_from: Option<Vec<String>>,
    cap_add: Option<Vec<String>>,
    cap_drop: Option<Vec<String>>,
    extra_hosts: Option<Vec<String>>,
    privileged: bool,
    publish_all_ports: bool,
    readonly_rootfs: bool,
    security_opt: Option<Vec<String>>,
    tmpfs: Option<BTreeMap<String, String>>,
    cpu_shares: i64,
    memory: i64,
    nano_cpus: i64,
    cpuset_cpus: String,
    memory_reservation: i64,
    memory_swap: i64,
    pids_limit: Option<i64>,
    #[serde(rename = "ContainerIDFile")]
    container_id_file: String,
    log_config: Value,
    ipc_mode: &'static str,
    dns: Vec<String>,
    dns_options: Vec<String>,
    dns_search: Vec<String>,
    group_add: Option<Vec<String>>,
    shm_size: i64,
    devices: Vec<super::run_flags::DeviceMapping>,
    ulimits: Option<Vec<super::run_flags::Ulimit>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkSettings {
    ports: BTreeMap<String, Option<Vec<Value>>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Doc {
    id: String,
    created: String,
    path: String,
    args: Vec<String>,
    state: State,
    image: String,
    resolv_conf_path: String,
    hostname_path: String,
    hosts_path: String,
    log_path: String,
    name: String,
    restart_count: i64,
    driver: String,
    platform: String,
    mounts: Vec<Value>,
    config: Config,
    host_config: HostConfig,
    network_settings: NetworkSettings,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_rw: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_root_fs: Option<u64>,
}

fn time_or_zero(ns: i64) -> String {
    if ns == 0 {
        "0001-01-01T00:00:00Z".into()
    } else {
        rfc3339_nano(ns)
    }
}

fn none_if_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// docker's port map: `"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "3000"}]`.
fn port_map(maps: &[PortMapping]) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for m in maps {
        out.entry(format!("{}/{}", m.container_port, m.proto.as_str()))
            .or_default()
            .push(json!({"HostIp": m.host_ip.to_string(), "HostPort": if m.host_port == 0 { String::new() } else { m.host_port.to_string() }}));
    }
    out
}

fn doc(store: &Store, c: &ContainerRecord, size: bool) -> Doc {
    let cfg: ContainerConfig = serde_json::from_str(&c.config).unwrap_or_default();
    let argv = cfg.argv();
    let dir = store.container_dir(&c.id);
    let bound: Vec<PortMapping> = serde_json::from_str(&c.ports).unwrap_or_default();
    let mut ports: BTreeMap<String, Option<Vec<Value>>> = cfg
        .exposed_ports
        .iter()
        .map(|p| (p.clone(), None))
        .collect();
    for (k, v) in port_map(&bound) {
        ports.insert(k, Some(v));
    }
    let legacy: Vec<super::mounts::MountPoint> = if cfg.host.mount_points.is_empty() {
        cfg.host
            .binds
            .iter()
            .filter_map(|b| super::config::parse_bind(b).ok())
            .map(|b| super::mounts::MountPoint {
                typ: "bind".into(),
                source: b.source.display().to_string(),
                destination: b.dest,
                rw: !b.readonly,
                mode: if b.readonly {
                    "ro".into()
                } else {
                    String::new()
                },
                ..Default::default()
            })
            .collect()
    } else {
        Vec::new()
    };
    let mounts = cfg
        .host
        .mount_points
        .iter()
        .chain(legacy.iter())
        .map(|m| match m.typ.as_str() {
            "volume" => json!({"Type": "volume", "Name": m.name, "Source": m.source, "Destination": m.destination, "Driver": "local", "Mode": m.mode, "RW": m.rw, "Propagation": ""}),
            "tmpfs" => json!({"Type": "tmpfs", "Source": "", "Destination": m.destination, "Mode": "", "RW": m.rw, "Propagation": ""}),
            _ => json!({"Type": "bind", "Source": m.source, "Destination": m.destination, "Mode": m.mode, "RW": m.rw, "Propagation": "rprivate"}),
        })
        .chain(cfg.host.tmpfs.iter().map(|(p, _)| {
            json!({"Type": "tmpfs", "Source": "", "Destination": p, "Mode": "", "RW": true, "Propagation": ""})
        }))
        .collect();
    let restarting = super::restarting::read(&dir, c);
    let status = super::restarting::state_name(&dir, c).to_string();
    let hostname = if cfg.hostname.is_empty() {
        crate::cmd_image::render::truncate_id(&c.id)
    } else {
        cfg.hostname.clone()
    };
    let (size_rw, size_root_fs) = if size {
        let rw = super::rootfs::writable_size(store, &c.id);
        (Some(rw), Some(rw + store.image_size(&c.image).unwrap_or(0)))
    } else {
        (None, None)
    };
    Doc {
        id: c.id.clone(),
        created: rfc3339_nano(if c.created_ns != 0 {
            c.created_ns
        } else {
            c.created * 1_000_000_000
        }),
        path: argv.first().cloned().unwrap_or_default(),
        args: argv.iter().skip(1).cloned().collect(),
        state: State {
            running: c.state == kiln_store::ContainerState::Running,
            paused: c.state == kiln_store::ContainerState::Paused,
            restarting: restarting.is_some(),
            oom_killed: dir.join(super::supervisor::OOM_KILLED).exists(),
            dead: c.state == kiln_store::ContainerState::Dead,
            pid: c.pid,
            exit_code: restarting.map_or(c.exit_code, |(code, _)| code),
            error: c.error.clone(),
            started_at: time_or_zero(c.started_ns),
            finished_at: time_or_zero(restarting.map_or(c.finished_ns, |(_, at)| at)),
            // docker sets State.Health ("starting") when a container with a healthcheck
            // starts, before the first probe has written anything.
            health: cfg
                .healthcheck
                .as_ref()
                .and_then(|h| h.argv())
                .and_then(|_| {
                    super::health::read(&dir).or_else(|| {
                        (c.started_ns != 0).then(|| super::health::Health {
                            status: "starting".into(),
                            failing_streak: 0,
                            log: Vec::new(),
                        })
                    })
                }),
            status,
        },
        image: c.image.to_string(),
        resolv_conf_path: dir.join("resolv.conf").display().to_string(),
        hostname_path: dir.join("hostname").display().to_string(),
        hosts_path: dir.join("hosts").display().to_string(),
        log_path: super::supervisor::log_path(store, &c.id)
            .display()
            .to_string(),
        name: format!("/{}", c.name.clone().unwrap_or_default()),
        restart_count: c.restarts,
        driver: "overlay2".into(),
        platform: "linux".into(),
        mounts,
        config: Config {
            hostname,
            domainname: cfg.domainname.clone(),
            user: cfg.user.clone(),
            attach_stdin: false,
            attach_stdout: false,
            attach_stderr: false,
            exposed_ports: (!cfg.exposed_ports.is_empty()).then(|| {
                cfg.exposed_ports
                    .iter()
                    .map(|p| (p.clone(), json!({})))
                    .collect()
            }),
            tty: cfg.tty,
            open_stdin: cfg.open_stdin,
            stdin_once: cfg.stdin_once,
            env: cfg.env.clone(),
            cmd: none_if_empty(cfg.cmd.clone()),
            image: c.image_ref.clone(),
            volumes: None,
            working_dir: cfg.working_dir.clone(),
            entrypoint: none_if_empty(cfg.entrypoint.clone()),
            on_build: None,
            labels: cfg.labels.clone(),
            stop_signal: cfg.stop_signal.clone(),
            stop_timeout: cfg.stop_timeout,
            healthcheck: cfg.healthcheck.clone(),
        },
        host_config: HostConfig {
            binds: none_if_empty(cfg.host.binds.clone()),
            network_mode: match cfg.host.network_mode.as_str() {
                "private" => "default".into(),
                m => m.into(),
            },
            port_bindings: port_map(&cfg.host.port_bindings),
            restart_policy: json!({
                "Name": if cfg.host.restart_policy.name.is_empty() { "no" } else { cfg.host.restart_policy.name.as_str() },
                "MaximumRetryCount": cfg.host.restart_policy.maximum_retry_count,
            }),
            init: cfg.host.init.then_some(true),
            console_size: cfg.host.console_size.map_or([0, 0], |(r, c)| [r, c]),
            auto_remove: cfg.host.auto_remove,
            volumes_from: none_if_empty(cfg.host.volumes_from.clone()),
            cap_add: none_if_empty(cfg.host.cap_add.clone()),
            cap_drop: none_if_empty(cfg.host.cap_drop.clone()),
            extra_hosts: none_if_empty(cfg.host.extra_hosts.clone()),
            privileged: cfg.host.privileged,
            publish_all_ports: cfg.host.publish_all,
            readonly_rootfs: cfg.host.read_only,
            security_opt: none_if_empty(cfg.host.security_opt.clone()),
            tmpfs: (!cfg.host.tmpfs.is_empty()).then(|| cfg.host.tmpfs.iter().cloned().collect()),
            cpu_shares: cfg.host.cpu_shares,
            memory: cfg.host.memory,
            nano_cpus: cfg.host.nano_cpus,
            cpuset_cpus: cfg.host.cpuset_cpus.clone(),
            memory_reservation: cfg.host.memory_reservation,
            memory_swap: cfg.host.memory_swap,
            pids_limit: (cfg.host.pids_limit > 0).then_some(cfg.host.pids_limit),
            container_id_file: cfg.host.container_id_file.clone(),
            log_config: json!({"Type": "json-file", "Config": {}}),
            ipc_mode: "private",
            dns: cfg.host.dns.clone(),
            dns_options: cfg.host.dns_options.clone(),
            dns_search: cfg.host.dns_search.clone(),
            group_add: none_if_empty(cfg.host.group_add.clone()),
            shm_size: if cfg.host.shm_size > 0 {
                cfg.host.shm_size
            } else {
                DEFAULT_SHM_SIZE
            },
            devices: cfg.host.devices.clone(),
            ulimits: none_if_empty(cfg.host.ulimits.clone()),
        },
        network_settings: NetworkSettings { ports },
        size_rw,
        size_root_fs,
    }
}

/// The inspect document of the container `name`, if there is one (`kiln inspect` of a mix of
/// containers and images).
pub(crate) fn container_doc(store: &Store, name: &str, size: bool) -> Option<Doc> {
    store
        .find_container(name)
        .ok()
        .map(|c| doc(store, &c, size))
}

/// `inspect` of containers (`container inspect`, `inspect --type container`, and `inspect`
/// of names that are containers). `containers_only`: a miss says "No such container".
pub fn inspect_containers(
    store: &Store,
    format: &str,
    size: bool,
    names: &[String],
    containers_only: bool,
) -> anyhow::Result<()> {
    let mut docs = Vec::new();
    let mut failed = Vec::new();
    for n in names {
        match store.find_container(n) {
            Ok(c) => docs.push(doc(store, &c, size)),
            Err(kiln_store::Error::ContainerNotFound(_)) => failed.push(if containers_only {
                format!("No such container: {n}")
            } else {
                format!("No such object: {n}")
            }),
            Err(e) => failed.push(e.to_string()),
        }
    }
    let mut out = std::io::stdout().lock();
    if format.is_empty() || format == "json" {
        writeln!(out, "{}", go_json_pretty_of(&docs)?)?;
    } else {
        let f = crate::cmd_image::render::inspect_format(format)?;
        let values: Vec<Value> = docs
            .iter()
            .map(|d| {
                serde_json::to_value(d).map(|mut v| {
                    crate::cmd_image::gotemplate::go_typed_nils(&mut v);
                    v
                })
            })
            .collect::<Result<_, _>>()?;
        out.write_all(crate::cmd_image::render::inspect_render(&f, &values)?.as_bytes())?;
    }
    drop(out);
    for f in &failed {
        eprintln!("Error: {f}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(crate::cmd_image::Reported.into())
    }
}
