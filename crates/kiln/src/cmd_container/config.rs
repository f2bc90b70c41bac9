//! A container's configuration: `run`/`create` flags merged with the image's config, as docker
//! merges them, kept as JSON in the container's row so `start` runs it again the same way.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::str::FromStr;

use kiln_runtime::oci_spec::runtime::Capability;

use super::CreateArgs;
use super::net::{self, PortMapping};

/// docker's `Config` and `HostConfig` of a container, the parts kiln uses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub hostname: String,
    pub domainname: String,
    /// `-u` or the image's `User` ("" = root).
    pub user: String,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub working_dir: String,
    pub stop_signal: String,
    pub stop_timeout: Option<i64>,
    /// `80/tcp`, from the image and `--expose`-like sources.
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub open_stdin: bool,
    /// `-t`: the process's stdio is a pseudo-terminal the supervisor holds.
    #[serde(default)]
    pub tty: bool,
    /// Close the process's stdin when the attached client's ends (foreground `run -i`).
    #[serde(default)]
    pub stdin_once: bool,
    /// The image's HEALTHCHECK with the `--health-*` flags applied.
    #[serde(default)]
    pub healthcheck: Option<super::health::HealthConfig>,
    pub host: HostConfig,
}

/// docker's `RestartPolicy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RestartPolicy {
    /// `no` (also ""), `always`, `unless-stopped`, `on-failure`.
    pub name: String,
    /// on-failure's N (0: no limit).
    pub maximum_retry_count: i64,
}

impl RestartPolicy {
    /// `no`, `always`, `unless-stopped`, `on-failure[:N]`, as docker parses `--restart`.
    pub fn parse(s: &str) -> anyhow::Result<RestartPolicy> {
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let max = match count {
            None => 0,
            Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                anyhow::anyhow!(
                    "invalid restart policy format: maximum retry count must be an integer"
                )
            })?,
        };
        match name {
            "" | "no" if count.is_none() => Ok(RestartPolicy {
                name: "no".into(),
                maximum_retry_count: 0,
            }),
            "always" | "unless-stopped" if count.is_none() => Ok(RestartPolicy {
                name: name.into(),
                maximum_retry_count: 0,
            }),
            "no" | "always" | "unless-stopped" => {
                bail!("maximum retry count cannot be used with restart policy '{name}'")
            }
            "on-failure" => Ok(RestartPolicy {
                name: name.into(),
                maximum_retry_count: max,
            }),
            _ => bail!("invalid restart policy '{name}'"),
        }
    }

    pub fn is_none(&self) -> bool {
        self.name.is_empty() || self.name == "no"
    }

    /// Whether a process that ended with `code` after `restarts` restarts is started again;
    /// `manual`: the user stopped or killed it.
    pub fn restarts(&self, code: i32, restarts: i64, manual: bool) -> bool {
        if manual {
            return false;
        }
        match self.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                code != 0 && (self.maximum_retry_count == 0 || restarts < self.maximum_retry_count)
            }
            _ => false,
        }
    }
}

/// docker's `HostConfig`, the parts kiln uses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostConfig {
    /// `-v HOST:CTR[:ro]`, as given.
    pub binds: Vec<String>,
    /// `private` (docker's `default`/`bridge`), `host` or `none`.
    pub network_mode: String,
    pub port_bindings: Vec<PortMapping>,
    pub publish_all: bool,
    pub auto_remove: bool,
    pub read_only: bool,
    /// `--tmpfs PATH[:OPTIONS]`: (path, options).
    pub tmpfs: Vec<(String, String)>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub privileged: bool,
    /// Bytes (0: no limit).
    pub memory: i64,
    /// CPUs × 10⁹ (0: no limit).
    pub nano_cpus: i64,
    /// 0: no limit.
    pub pids_limit: i64,
    /// `--memory-swap`: memory plus swap in bytes (-1: unlimited swap; 0: none given).
    #[serde(default)]
    pub memory_swap: i64,
    /// `--memory-reservation`: the soft limit in bytes (0: none).
    #[serde(default)]
    pub memory_reservation: i64,
    /// `--cpu-shares` (0: the default, 1024).
    #[serde(default)]
    pub cpu_shares: i64,
    /// `--cpuset-cpus` as given ("": all).
    #[serde(default)]
    pub cpuset_cpus: String,
    /// `--dns`, `--dns-search`, `--dns-option`: what the container's resolv.conf says instead
    /// of the host's.
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub dns_search: Vec<String>,
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// `--ulimit`: (name, soft, hard).
    #[serde(default)]
    pub ulimits: Vec<super::run_flags::Ulimit>,
    /// `--shm-size` in bytes (0: docker's 64MiB).
    #[serde(default)]
    pub shm_size: i64,
    /// `--group-add`, as given (names resolve in the container's /etc/group).
    #[serde(default)]
    pub group_add: Vec<String>,
    /// `--device`.
    #[serde(default)]
    pub devices: Vec<super::run_flags::DeviceMapping>,
    /// `--cidfile`, as inspect's `ContainerIDFile` shows it.
    #[serde(default)]
    pub container_id_file: String,
    /// `--add-host NAME:IP`.
    pub extra_hosts: Vec<String>,
    /// `--init`: tini as PID 1 (bind-mounted at /sbin/docker-init, as docker does).
    #[serde(default)]
    pub init: bool,
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// `-t`: the client's terminal size at create time (rows, cols), docker's ConsoleSize.
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
    /// Every mount of `-v`, `--mount` and the image's VOLUME, resolved at create time.
    #[serde(default)]
    pub mount_points: Vec<super::mounts::MountPoint>,
    /// `--volumes-from CONTAINER[:ro|:rw]`, as given (its mounts are in `mount_points`).
    #[serde(default)]
    pub volumes_from: Vec<String>,
}

impl ContainerConfig {
    /// The process to run: entrypoint then cmd.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint
            .iter()
            .chain(self.cmd.iter())
            .cloned()
            .collect()
    }

    /// `--security-opt no-new-privileges[=true]` (the last one given wins, as docker's).
    pub fn no_new_privileges(&self) -> bool {
        self.host
            .security_opt
            .iter()
            .filter_map(|o| match o.as_str() {
                "no-new-privileges" => Some(true),
                _ => o
                    .strip_prefix("no-new-privileges")
                    .and_then(|v| v.strip_prefix(['=', ':']))
                    .and_then(parse_bool),
            })
            .next_back()
            .unwrap_or(false)
    }

    /// The seccomp profile the container runs under: none when privileged or with
    /// `seccomp=unconfined`, the profile `seccomp=FILE` stored (as JSON), else docker's default.
    pub fn seccomp_profile(&self) -> anyhow::Result<Option<kiln_runtime::seccomp::Profile>> {
        if self.host.privileged {
            return Ok(None);
        }
        let opt = self
            .host
            .security_opt
            .iter()
            .filter_map(|o| {
                o.strip_prefix("seccomp=")
                    .or_else(|| o.strip_prefix("seccomp:"))
            })
            .next_back();
        match opt {
            Some("unconfined") => Ok(None),
            Some(json) => kiln_runtime::seccomp::Profile::from_json(json)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("{e}")),
            None => Ok(Some(kiln_runtime::seccomp::default_profile())),
        }
    }

    /// `--security-opt systempaths=unconfined`: no masked or read-only /proc and /sys paths
    /// (what a rootless builder nested in the container needs to mount its own /proc).
    pub fn systempaths_unconfined(&self) -> bool {
        self.host
            .security_opt
            .iter()
            .any(|o| o == "systempaths=unconfined")
    }

    /// Published ports with `-P`: every exposed port on an ephemeral host port.
    pub fn wanted_ports(&self) -> Vec<PortMapping> {
        let mut maps = self.host.port_bindings.clone();
        if self.host.publish_all {
            for p in &self.exposed_ports {
                let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                if let Ok(port) = port.parse::<u16>()
                    && !maps.iter().any(|m| m.container_port == port)
                {
                    maps.push(PortMapping {
                        host_ip: std::net::IpAddr::from([0, 0, 0, 0]),
                        host_port: 0,
                        container_port: port,
                        proto: if proto == "udp" {
                            net::Proto::Udp
                        } else {
                            net::Proto::Tcp
                        },
                    });
                }
            }
        }
        maps
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Set `KEY=VALUE` in `env`, replacing an earlier `KEY`.
fn set_env(env: &mut Vec<String>, kv: String) {
    let key = kv.split('=').next().unwrap_or("").to_string();
    env.retain(|e| e.split('=').next() != Some(key.as_str()));
    env.push(kv);
}

/// `-e KEY` takes KEY from this process's environment (and is dropped when unset).
fn env_entry(s: &str) -> Option<String> {
    if s.contains('=') {
        return Some(s.to_string());
    }
    std::env::var(s).ok().map(|v| format!("{s}={v}"))
}

/// `true`/`false` as Go's strconv.ParseBool reads them.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// `--security-opt` values checked and kept as docker's client leaves them: `seccomp=FILE`
/// becomes `seccomp=` and the file's JSON, compacted (what `inspect` shows and the container's
/// spec reads, so a later start does not depend on the file). `apparmor=unconfined` names what
/// kiln does anyway (it applies no AppArmor profile).
fn security_opts(opts: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for o in opts {
        // docker's client: KEY=VALUE, or the older KEY:VALUE.
        let (key, value) = match o.split_once('=') {
            Some(kv) => kv,
            None => o.split_once(':').unwrap_or((o.as_str(), "")),
        };
        match (key, value) {
            ("no-new-privileges", "") => {}
            ("no-new-privileges", v) if parse_bool(v).is_some() => {}
            ("systempaths", "unconfined")
            | ("seccomp", "unconfined")
            | ("apparmor", "unconfined") => {}
            ("seccomp", path) if !path.is_empty() => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("opening seccomp profile ({path}) failed: {e}"))?;
                kiln_runtime::seccomp::Profile::from_json(&text)
                    .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
                out.push(format!("seccomp={}", compact_json(&text)));
                continue;
            }
            _ => bail!(
                "invalid --security-opt {o:?}: kiln supports no-new-privileges[=true|false], seccomp=unconfined, seccomp=PROFILE.json and systempaths=unconfined (apparmor=unconfined is accepted: kiln applies no AppArmor profile)"
            ),
        }
        out.push(o.clone());
    }
    Ok(out)
}

/// `text` (valid JSON) without the whitespace between tokens, keys in their order (Go's
/// json.Compact, which docker's client applies to a seccomp profile).
fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Merges the flags of `run`/`create` with the image config (`image_config`, the OCI config
/// JSON) into the container's config. `command` is what followed the image name.
pub fn resolve(
    a: &CreateArgs,
    image_config: &Value,
    command: &[String],
) -> anyhow::Result<ContainerConfig> {
    refuse_unsupported(a)?;
    let ic = &image_config["config"];
    let mut env = strings(&ic["Env"]);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={}", kiln_runtime::DEFAULT_PATH));
    }
    for file in &a.env_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("open {}: cannot read the env file", file.display()))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(kv) = env_entry(line) {
                set_env(&mut env, kv);
            }
        }
    }
    for e in &a.env {
        if let Some(kv) = env_entry(e) {
            set_env(&mut env, kv);
        }
    }
    let mut entrypoint = strings(&ic["Entrypoint"]);
    let mut cmd = strings(&ic["Cmd"]);
    if let Some(ep) = &a.entrypoint {
        // docker: a new entrypoint also drops the image's Cmd.
        entrypoint = if ep.is_empty() {
            Vec::new()
        } else {
            vec![ep.clone()]
        };
        cmd = Vec::new();
    }
    if !command.is_empty() {
        cmd = command.to_vec();
    }
    if entrypoint.is_empty() && cmd.is_empty() {
        bail!("No command specified");
    }
    let network_mode = match a.network.as_str() {
        "" | "default" | "bridge" | "private" => "private",
        "host" => "host",
        "none" => "none",
        other => bail!(
            "network {other} not found (kiln has no named networks: use private, host or none)"
        ),
    }
    .to_string();
    let mut port_bindings = Vec::new();
    for p in &a.publish {
        port_bindings.extend(net::parse_publish(p).map_err(anyhow::Error::msg)?);
    }
    let mut exposed_ports: Vec<String> = ic["ExposedPorts"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for p in &port_bindings {
        let key = format!("{}/{}", p.container_port, p.proto.as_str());
        if !exposed_ports.contains(&key) {
            exposed_ports.push(key);
        }
    }
    let mut publish_all = a.publish_all;
    if network_mode != "private" && (!port_bindings.is_empty() || publish_all) {
        // docker 20.10 runs the container without them: on host with this warning, on none
        // silently; kiln says so in both cases (the ports stay exposed, as docker keeps them).
        eprintln!("WARNING: Published ports are discarded when using {network_mode} network mode");
        port_bindings.clear();
        publish_all = false;
    }
    for b in &a.volume {
        super::mounts::parse_volume_flag(b)?;
    }
    for m in &a.mount {
        super::mounts::parse_mount(m)?;
    }
    for v in &a.volumes_from {
        super::mounts::parse_volumes_from(v)
            .map_err(|e| anyhow::anyhow!("Error response from daemon: {e}"))?;
    }
    let mut tmpfs = Vec::new();
    for t in &a.tmpfs {
        let (path, opts) = t.split_once(':').unwrap_or((t, ""));
        if !path.starts_with('/') {
            bail!(
                "invalid mount config for type \"tmpfs\": invalid mount path: '{path}' mount path must be absolute"
            );
        }
        tmpfs.push((path.to_string(), opts.to_string()));
    }
    let security_opt = security_opts(&a.security_opt)?;
    for c in a.cap_add.iter().chain(a.cap_drop.iter()) {
        capability(c)?;
    }
    for h in &a.add_host {
        let Some((name, ip)) = h.split_once(':').or_else(|| h.split_once('=')) else {
            bail!(
                "invalid argument \"{h}\" for \"--add-host\" flag: bad format for add-host: \"{h}\""
            );
        };
        if name.is_empty() || (ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err()) {
            bail!(
                "invalid argument \"{h}\" for \"--add-host\" flag: invalid IP address in add-host: \"{ip}\""
            );
        }
        if ip == "host-gateway" {
            bail!("--add-host {h}: kiln has no host gateway address (no bridge network)");
        }
    }
    let memory = match &a.memory {
        Some(m) => {
            let b = kiln_build::options::parse_ram_size(m).map_err(|e| {
                anyhow::anyhow!("invalid argument \"{m}\" for \"-m, --memory\" flag: {e}")
            })?;
            // 0 is docker's "no limit", as not giving the flag.
            if b != 0 && b < 6 * 1024 * 1024 {
                bail!("Minimum memory limit allowed is 6MB");
            }
            b as i64
        }
        None => 0,
    };
    let res = super::resources::parse(a, memory)?;
    let nano_cpus = match &a.cpus {
        Some(c) => {
            let f: f64 = c
                .parse()
                .ok()
                .filter(|f: &f64| f.is_finite() && *f >= 0.0)
                .ok_or_else(|| anyhow::anyhow!("invalid argument \"{c}\" for \"--cpus\" flag: failed to parse {c} as a rational number"))?;
            let n = (f * 1e9) as i64;
            let max = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
            if n > max * 1_000_000_000 {
                bail!(
                    "Range of CPUs is from 0.01 to {max}.00, as there are only {max} CPUs available"
                );
            }
            n
        }
        None => 0,
    };
    let stop_signal = a
        .stop_signal
        .clone()
        .or_else(|| ic["StopSignal"].as_str().map(String::from))
        .unwrap_or_default();
    if !stop_signal.is_empty() {
        super::signal::parse(&stop_signal)?;
    }
    let restart_policy = RestartPolicy::parse(&a.restart)?;
    if a.rm && !restart_policy.is_none() {
        bail!("Conflicting options: --restart and --rm");
    }
    if a.init && init_binary().is_none() {
        bail!(
            "--init: no init binary found (kiln uses tini: install Debian's tini package for {})",
            INIT_CANDIDATES[0]
        );
    }
    let mut labels: BTreeMap<String, String> = ic["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    // `--label-file` lines, then `-l KEY=VALUE` (or `KEY`: an empty value), over the
    // image's, as docker.
    let mut from_files = Vec::new();
    for file in &a.label_file {
        from_files.extend(label_file_lines(file)?);
    }
    for l in from_files.iter().chain(&a.label) {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(ContainerConfig {
        hostname: a.hostname.clone().unwrap_or_default(),
        domainname: String::new(),
        user: a
            .user
            .clone()
            .or_else(|| ic["User"].as_str().map(String::from))
            .unwrap_or_default(),
        env,
        cmd,
        entrypoint,
        working_dir: a
            .workdir
            .clone()
            .or_else(|| ic["WorkingDir"].as_str().map(String::from))
            .unwrap_or_default(),
        stop_signal,
        stop_timeout: a.stop_timeout,
        exposed_ports,
        labels,
        open_stdin: a.interactive,
        tty: a.tty,
        stdin_once: false,
        healthcheck: super::health::resolve(a, image_config)?,
        host: HostConfig {
            binds: a.volume.clone(),
            network_mode,
            port_bindings,
            publish_all,
            auto_remove: a.rm,
            read_only: a.read_only,
            tmpfs,
            cap_add: a.cap_add.clone(),
            cap_drop: a.cap_drop.clone(),
            security_opt,
            privileged: a.privileged,
            memory,
            nano_cpus,
            pids_limit: a.pids_limit.unwrap_or(0),
            memory_swap: res.memory_swap,
            memory_reservation: res.memory_reservation,
            cpu_shares: res.cpu_shares,
            cpuset_cpus: res.cpuset_cpus,
            dns: super::run_flags::dns_servers(&a.dns)?,
            dns_search: super::run_flags::dns_search(&a.dns_search)?,
            dns_options: super::run_flags::dns_options(&a.dns_option)?,
            ulimits: a
                .ulimit
                .iter()
                .map(|u| super::run_flags::parse_ulimit(u))
                .collect::<anyhow::Result<_>>()?,
            shm_size: super::run_flags::shm_size(a.shm_size.as_deref())?,
            group_add: a.group_add.clone(),
            devices: a
                .device
                .iter()
                .map(|d| super::run_flags::parse_device(d))
                .collect::<anyhow::Result<_>>()?,
            container_id_file: a
                .cidfile
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            extra_hosts: a.add_host.clone(),
            init: a.init,
            restart_policy,
            console_size: None,
            mount_points: Vec::new(),
            volumes_from: a.volumes_from.clone(),
        },
    })
}

/// `--label-file`'s `KEY=VALUE` lines as docker's `ReadKVStrings` reads them: leading
/// whitespace trimmed, blank and `#` lines skipped, a line without `=` dropped, the value kept
/// as written; a key with whitespace is an error. Bounded like docker's line scanner (64 KiB a
/// line), and to 16 MiB a file, so `/dev/zero` is an error, not all of memory.
fn label_file_lines(file: &std::path::Path) -> anyhow::Result<Vec<String>> {
    use std::io::Read;
    const MAX_LINE: usize = 64 * 1024;
    const MAX_FILE: u64 = 16 << 20;
    let f = std::fs::File::open(file)
        .map_err(|e| anyhow::anyhow!("open {}: {}", file.display(), io_text(&e)))?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow::anyhow!("read {}: {}", file.display(), io_text(&e)))?;
    if bytes.len() as u64 > MAX_FILE {
        bail!("{}: a label file is at most 16 MiB", file.display());
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.len() > MAX_LINE {
            bail!("{}: bufio.Scanner: token too long", file.display());
        }
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.chars().any(char::is_whitespace) {
            bail!("variable '{key}' contains whitespaces");
        }
        out.push(format!("{key}={value}"));
    }
    Ok(out)
}

/// Where `--init` finds its init: a static tini (Debian's `tini` package), or docker's copy.
pub const INIT_CANDIDATES: &[&str] = &[
    "/usr/bin/tini-static",
    "/usr/libexec/docker/docker-init",
    "/usr/bin/docker-init",
];

/// The init binary `--init` mounts at /sbin/docker-init.
pub fn init_binary() -> Option<std::path::PathBuf> {
    INIT_CANDIDATES
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
}

/// A parsed `-v`: host path, container path, read-only.
pub struct Bind {
    pub source: std::path::PathBuf,
    pub dest: String,
    pub readonly: bool,
}

/// Go's text of an I/O error (`no such file or directory`).
fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s);
    let mut c = s.chars();
    c.next()
        .map_or(String::new(), |f| f.to_lowercase().chain(c).collect())
}

/// The flags kiln has no implementation of: a clear refusal naming the flag, never accepted
/// and ignored. Values that are what kiln does anyway pass.
fn refuse_unsupported(a: &CreateArgs) -> anyhow::Result<()> {
    let no = |flag: &str, why: &str| -> anyhow::Result<()> {
        bail!("{flag} is not supported by kiln: {why}")
    };
    if !a.sysctl.is_empty() {
        no("--sysctl", "the runtime sets no sysctls")?;
    }
    if let Some(m) = a
        .ipc
        .as_deref()
        .filter(|m| *m != "private" && !m.is_empty())
    {
        no(
            &format!("--ipc {m}"),
            "a container always has its own IPC namespace (private)",
        )?;
    }
    if let Some(m) = a.pid.as_deref().filter(|m| !m.is_empty()) {
        no(
            &format!("--pid {m}"),
            "a container always has its own PID namespace",
        )?;
    }
    if let Some(m) = a.uts.as_deref().filter(|m| !m.is_empty()) {
        no(
            &format!("--uts {m}"),
            "a container always has its own UTS namespace",
        )?;
    }
    if let Some(m) = a.userns.as_deref().filter(|m| !m.is_empty()) {
        no(
            &format!("--userns {m}"),
            "containers run in the host's user namespace (rootless kiln: its own)",
        )?;
    }
    if let Some(d) = a.log_driver.as_deref().filter(|d| *d != "json-file") {
        no(&format!("--log-driver {d}"), "logs are always json-file")?;
    }
    if !a.log_opt.is_empty() {
        no("--log-opt", "the json-file log takes no options in kiln")?;
    }
    if a.oom_kill_disable {
        no("--oom-kill-disable", "the OOM killer stays on")?;
    }
    Ok(())
}

/// `-v HOST:CTR[:ro|rw]` of a container made before volumes were resolved at create time.
pub fn parse_bind(spec: &str) -> anyhow::Result<Bind> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dest, mode) = match parts.as_slice() {
        [d] => bail!(
            "-v {d}: anonymous volumes are not supported by kiln yet (use -v HOST_DIR:{d} or --tmpfs {d})"
        ),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => bail!("invalid volume specification: '{spec}'"),
    };
    if !src.starts_with('/') {
        bail!("-v {spec}: named volumes are not supported by kiln yet; give an absolute host path");
    }
    if !dest.starts_with('/') {
        bail!(
            "invalid volume specification: '{spec}': invalid mount config for type \"bind\": invalid mount path: '{dest}' mount path must be absolute"
        );
    }
    let readonly = match mode {
        "" | "rw" => false,
        "ro" => true,
        m => bail!("invalid mode: {m} (kiln supports ro and rw)"),
    };
    Ok(Bind {
        source: src.into(),
        dest: dest.to_string(),
        readonly,
    })
}

/// `NET_ADMIN`, `CAP_NET_ADMIN`, `net_admin`; `ALL` is every capability.
pub fn capability(name: &str) -> anyhow::Result<Vec<Capability>> {
    let up = name.to_ascii_uppercase();
    let bare = up.strip_prefix("CAP_").unwrap_or(&up);
    if bare == "ALL" {
        return Ok(kiln_runtime::capability_names()
            .iter()
            .filter_map(|n| Capability::from_str(n).ok())
            .collect());
    }
    Capability::from_str(bare)
        .map(|c| vec![c])
        .map_err(|_| anyhow::anyhow!("invalid capability: {name}"))
}
