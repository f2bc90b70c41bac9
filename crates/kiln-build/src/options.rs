//! What a build is asked to do: the typed form of `kiln build`'s flags.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use kiln_runtime::oci_spec::runtime::PosixRlimitType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerCompression {
    /// Layers stay uncompressed in the store (as Docker's store keeps them); archives and
    /// pushes compress on the way out.
    #[default]
    Uncompressed,
    Gzip,
    Zstd,
}

/// `--output` destinations besides the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Into the store only (the default, `type=image`).
    Image,
    /// `type=docker,dest=F`: a docker-archive tar.
    Docker(PathBuf),
    /// `type=oci,dest=F`: an OCI archive tar.
    Oci(PathBuf),
    /// `type=local,dest=DIR`: the final filesystem.
    Local(PathBuf),
    /// `type=tar,dest=F`: the final filesystem as one tar.
    Tar(PathBuf),
}

/// Where a `--secret` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub context: PathBuf,
    /// The Dockerfile's path (for messages and `Dockerfile.dockerignore`).
    pub dockerfile_path: PathBuf,
    pub dockerfile_text: String,
    pub tags: Vec<String>,
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    /// Stages whose steps must not come from the cache.
    pub no_cache_filter: Vec<String>,
    pub jobs: usize,
    pub network_none: bool,
    /// `--allow security.insecure`: `RUN --security=insecure` runs privileged (refused
    /// otherwise, as BuildKit refuses it without the entitlement).
    pub allow_insecure: bool,
    pub outputs: Vec<Output>,
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--ssh ID=SOCKET`: SSH agent sockets for `RUN --mount=type=ssh`, by id.
    pub ssh: BTreeMap<String, PathBuf>,
    pub compression: LayerCompression,
    /// `SOURCE_DATE_EPOCH`: clamps timestamps and fixes `created` for reproducible digests.
    pub source_date_epoch: Option<i64>,
    /// `--runtime`: None = the embedded executor.
    pub runtime: Option<PathBuf>,
    /// `--build-context name=...`: extra named contexts.
    pub named_contexts: BTreeMap<String, String>,
    /// `--add-host`: lines added to the `/etc/hosts` of every RUN (never to the image).
    pub extra_hosts: Vec<ExtraHost>,
    /// `--shm-size`: bytes of the `/dev/shm` tmpfs of every RUN (None = Docker's 64 MiB).
    pub shm_size: Option<u64>,
    /// `--ulimit`: resource limits of every RUN process, replacing the default of the same name.
    pub ulimits: Vec<Ulimit>,
}

impl BuildOptions {
    pub fn new(context: PathBuf, dockerfile_path: PathBuf, dockerfile_text: String) -> Self {
        BuildOptions {
            context,
            dockerfile_path,
            dockerfile_text,
            tags: Vec::new(),
            target: None,
            build_args: BTreeMap::new(),
            labels: BTreeMap::new(),
            no_cache: false,
            no_cache_filter: Vec::new(),
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            network_none: false,
            allow_insecure: false,
            outputs: Vec::new(),
            secrets: BTreeMap::new(),
            ssh: BTreeMap::new(),
            compression: LayerCompression::default(),
            source_date_epoch: None,
            runtime: None,
            named_contexts: BTreeMap::new(),
            extra_hosts: Vec::new(),
            shm_size: None,
            ulimits: Vec::new(),
        }
    }
}

/// One `--add-host` mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHost {
    pub name: String,
    pub ip: IpAddr,
}

impl ExtraHost {
    /// docker's `name:ip` or (docker 23+) `name=ip`; the IP may be IPv6, bracketed or not.
    /// `host-gateway` is the host itself: RUN shares the host's network, so the host is
    /// reached on its loopback address (there is no bridge gateway to name).
    pub fn parse(s: &str) -> Result<ExtraHost, String> {
        let (name, ip) = match s.split_once('=') {
            Some(kv) => kv,
            None => s
                .split_once(':')
                .ok_or_else(|| format!("bad format for add-host: {s:?}"))?,
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("bad format for add-host: {s:?}"));
        }
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        let ip = if ip == "host-gateway" {
            IpAddr::from([127, 0, 0, 1])
        } else {
            ip.parse()
                .map_err(|_| format!("invalid IP address in add-host: {ip:?}"))?
        };
        Ok(ExtraHost {
            name: name.to_string(),
            ip,
        })
    }
}

/// One `--ulimit`: a resource limit of RUN processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub resource: PosixRlimitType,
    pub soft: u64,
    pub hard: u64,
}

impl Ulimit {
    /// docker's `name=soft[:hard]` (hard defaults to soft; `-1` is unlimited).
    pub fn parse(s: &str) -> Result<Ulimit, String> {
        let (name, values) = s
            .split_once('=')
            .ok_or_else(|| format!("invalid ulimit argument: {s}"))?;
        let resource = rlimit_type(name).ok_or_else(|| format!("invalid ulimit type: {name}"))?;
        let (soft, hard) = match values.split_once(':') {
            Some((s, h)) => (s, h),
            None => (values, values),
        };
        let limit = |v: &str| -> Result<u64, String> {
            match v.parse::<i64>() {
                Ok(-1) => Ok(u64::MAX),
                Ok(n) if n >= 0 => Ok(n as u64),
                _ => Err(format!("invalid ulimit value {v:?} in {s:?}")),
            }
        };
        let (soft, hard) = (limit(soft)?, limit(hard)?);
        if soft > hard {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
        Ok(Ulimit {
            resource,
            soft,
            hard,
        })
    }
}

/// docker's ulimit names (`go-units` `ulimitNameMapping`).
fn rlimit_type(name: &str) -> Option<PosixRlimitType> {
    use PosixRlimitType::*;
    Some(match name {
        "core" => RlimitCore,
        "cpu" => RlimitCpu,
        "data" => RlimitData,
        "fsize" => RlimitFsize,
        "locks" => RlimitLocks,
        "memlock" => RlimitMemlock,
        "msgqueue" => RlimitMsgqueue,
        "nice" => RlimitNice,
        "nofile" => RlimitNofile,
        "nproc" => RlimitNproc,
        "rss" => RlimitRss,
        "rtprio" => RlimitRtprio,
        "rttime" => RlimitRttime,
        "sigpending" => RlimitSigpending,
        "stack" => RlimitStack,
        _ => return None,
    })
}

/// docker's memory sizes (`go-units` `RAMInBytes`): a number with an optional binary unit,
/// `b`, `k`, `m`, `g`, `t`, `p` (any case, `kb`/`kib` too): `64m`, `1g`, `1048576`.
pub fn parse_ram_size(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size: '{s}'");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(format!("invalid suffix: '{}'", &t[split..])),
    };
    let bytes = num * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_host_takes_both_separators_and_ipv6() {
        let h = ExtraHost::parse("db:10.0.0.5").unwrap();
        assert_eq!(
            (h.name.as_str(), h.ip.to_string()),
            ("db", "10.0.0.5".into())
        );
        let h = ExtraHost::parse("db=10.0.0.6").unwrap();
        assert_eq!(h.ip.to_string(), "10.0.0.6");
        assert_eq!(ExtraHost::parse("v6:::1").unwrap().ip.to_string(), "::1");
        assert_eq!(
            ExtraHost::parse("v6=[fe80::1]").unwrap().ip.to_string(),
            "fe80::1"
        );
        assert_eq!(
            ExtraHost::parse("gw:host-gateway").unwrap().ip.to_string(),
            "127.0.0.1"
        );
        assert!(ExtraHost::parse("nohost").is_err());
        assert!(
            ExtraHost::parse("db:notanip")
                .unwrap_err()
                .contains("invalid IP")
        );
    }

    #[test]
    fn ulimit_reads_docker_syntax() {
        let u = Ulimit::parse("nofile=1024:2048").unwrap();
        assert_eq!(
            (u.resource, u.soft, u.hard),
            (PosixRlimitType::RlimitNofile, 1024, 2048)
        );
        let u = Ulimit::parse("nproc=77").unwrap();
        assert_eq!((u.soft, u.hard), (77, 77));
        assert_eq!(Ulimit::parse("core=-1").unwrap().hard, u64::MAX);
        assert!(
            Ulimit::parse("nofile=10:5")
                .unwrap_err()
                .contains("soft limit")
        );
        assert!(
            Ulimit::parse("bogus=1")
                .unwrap_err()
                .contains("invalid ulimit type")
        );
        assert!(Ulimit::parse("nofile").is_err());
        assert!(Ulimit::parse("nofile=x").is_err());
    }

    #[test]
    fn ram_sizes_are_binary_as_docker_reads_them() {
        assert_eq!(parse_ram_size("64m"), Ok(64 << 20));
        assert_eq!(parse_ram_size("1g"), Ok(1 << 30));
        assert_eq!(parse_ram_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_ram_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_ram_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_ram_size("1.5k"), Ok(1536));
        assert!(parse_ram_size("abc").is_err());
        assert!(parse_ram_size("10x").is_err());
        assert!(parse_ram_size("").is_err());
    }
}
