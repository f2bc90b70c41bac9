//! What a build is asked to do: the typed form of `kiln build`'s flags.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

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

impl LayerCompression {
    /// BuildKit's names (`compression=` and `--compression`).
    pub fn parse(s: &str) -> Result<LayerCompression, String> {
        match s {
            "uncompressed" => Ok(LayerCompression::Uncompressed),
            "gzip" => Ok(LayerCompression::Gzip),
            "zstd" => Ok(LayerCompression::Zstd),
            "estargz" | "zstd:chunked" | "nydus" => Err(format!(
                "compression type {s} is not supported by kiln: use uncompressed, gzip or zstd"
            )),
            _ => Err(format!(
                "unsupported compression type {s}: use uncompressed, gzip or zstd"
            )),
        }
    }

    /// The levels BuildKit's documentation gives: gzip 0-9, zstd 0-22 (0 is zstd's default,
    /// level 3). An uncompressed layer has no level.
    pub fn check_level(self, level: i32) -> Result<(), String> {
        let (name, max) = match self {
            LayerCompression::Uncompressed => {
                return Err("compression-level needs compression=gzip or zstd".into());
            }
            LayerCompression::Gzip => ("gzip", 9),
            LayerCompression::Zstd => ("zstd", 22),
        };
        if !(0..=max).contains(&level) {
            return Err(format!(
                "compression-level {level} is out of range for {name}: use 0-{max}"
            ));
        }
        Ok(())
    }

    pub fn name(self) -> &'static str {
        match self {
            LayerCompression::Uncompressed => "uncompressed",
            LayerCompression::Gzip => "gzip",
            LayerCompression::Zstd => "zstd",
        }
    }
}

/// How an image output's layer blobs are compressed: BuildKit's `compression=`,
/// `compression-level=` and `force-compression=`.
///
/// Layers this build made get `kind` at `level` (each way remembered on its snapshot, so a
/// rebuild with another compression gets it too). A base-image layer whose blob is
/// uncompressed gets it as well; one already compressed in another format is kept as it is
/// unless `force` (BuildKit's rule), and one compressed the same way is kept even at another
/// level (BuildKit too converts only between formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompressionSpec {
    pub kind: LayerCompression,
    /// None: the format's default (gzip 6, zstd 3).
    pub level: Option<i32>,
    pub force: bool,
}

/// An image written as an archive (`type=docker` or `type=oci`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveOutput {
    /// `dest=`: a file, or `-` for standard output.
    pub dest: PathBuf,
    /// `compression=` and friends; None: `--compression`'s, else kiln's default (the layers
    /// uncompressed: for `type=docker` all of them, as `docker save` writes them; for
    /// `type=oci` the blobs as stored).
    pub compression: Option<CompressionSpec>,
    /// `oci-mediatypes=`; None: BuildKit's default (OCI for `type=oci`, docker's for
    /// `type=docker`).
    pub oci_media_types: Option<bool>,
    /// `name=`: names written into the archive besides the `-t` tags.
    pub names: Vec<String>,
}

/// `--output` destinations besides the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Into the store only (the default, `type=image`; its `compression=` keys go to
    /// [`BuildOptions::compression`], its `name=`s to the tags).
    Image,
    /// `type=docker,dest=F`: a docker-archive tar.
    Docker(ArchiveOutput),
    /// `type=oci,dest=F`: an OCI archive tar.
    Oci(ArchiveOutput),
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
    /// `--compression` or `type=image`'s `compression=` keys: the layers of the image recorded
    /// in the store (None: uncompressed), and the default of the archive outputs. An image
    /// already in the store keeps the manifest it has.
    pub compression: Option<CompressionSpec>,
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
    /// Asked about every image the build names (FROM, `COPY --from`, `RUN --mount=from=`)
    /// before the store is read: `kiln build` pulls there (`--pull`), so kiln-build has no
    /// network code. None: the store's images only.
    pub image_fetcher: Option<Arc<dyn ImageFetcher>>,
    /// `--cache-from`: caches read when the store's own cache misses.
    pub cache_from: Vec<crate::cache_options::CacheImport>,
    /// `--cache-to`: where the build's cache records are written after the image.
    pub cache_to: Vec<crate::cache_options::CacheExport>,
    /// `--squash`: each exported image's layers above its final stage's base become one
    /// layer (docker's experimental `--squash`).
    pub squash: bool,
    /// `--platform`: the platforms to build for, normalized (empty: the host's). With two or
    /// more, one image per platform and an index tagged with `tags`.
    pub platforms: Vec<kiln_image::Platform>,
    /// `--target NAME[=TAG]` given for two or more stages: all are built in one graph and each
    /// is stored as its own image, tagged with its TAGs. `target` and `tags` are unused then.
    pub targets: Vec<TargetSpec>,
}

/// Brings an image the build names into the store, or says why it will not be there.
pub trait ImageFetcher: Send + Sync + std::fmt::Debug {
    /// `reference` is what the Dockerfile names (ARGs expanded) or a `--build-context`
    /// alias's value; `in_store` says whether `store` resolves it now for `platform` (the
    /// stage's: the one to pull). Ok: read the store (the image is there, or the usual "not
    /// in the store" error follows).
    fn fetch(
        &self,
        store: &kiln_store::Store,
        reference: &str,
        in_store: bool,
        platform: &kiln_image::Platform,
    ) -> Result<(), FetchError>;
}

/// Why an image the build names is not in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// Not pulled on purpose (`--pull=never`): the hint says so.
    NotPulled { hint: String },
    /// The pull failed: the registry's message, in docker's words.
    Failed { message: String },
}

/// One of several `--target NAME[=TAG]`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// The stage's name (or index).
    pub name: String,
    /// Tags its image gets (none: untagged, known by its ID).
    pub tags: Vec<String>,
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
            compression: None,
            source_date_epoch: None,
            runtime: None,
            named_contexts: BTreeMap::new(),
            extra_hosts: Vec::new(),
            shm_size: None,
            ulimits: Vec::new(),
            image_fetcher: None,
            cache_from: Vec::new(),
            cache_to: Vec::new(),
            squash: false,
            targets: Vec::new(),
            platforms: Vec::new(),
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
    fn compression_names_and_levels_are_buildkits() {
        assert_eq!(LayerCompression::parse("zstd"), Ok(LayerCompression::Zstd));
        assert!(
            LayerCompression::parse("lz4")
                .unwrap_err()
                .contains("unsupported")
        );
        assert!(
            LayerCompression::parse("estargz")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(LayerCompression::Gzip.check_level(0).is_ok());
        assert!(LayerCompression::Gzip.check_level(9).is_ok());
        assert!(
            LayerCompression::Gzip
                .check_level(10)
                .unwrap_err()
                .contains("0-9")
        );
        assert!(LayerCompression::Zstd.check_level(22).is_ok());
        assert!(
            LayerCompression::Zstd
                .check_level(23)
                .unwrap_err()
                .contains("0-22")
        );
        assert!(LayerCompression::Zstd.check_level(-1).is_err());
        assert!(LayerCompression::Uncompressed.check_level(1).is_err());
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
