//! `kiln build`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use kiln_build::options::{
    ArchiveOutput, BuildOptions, CompressionSpec, LayerCompression, Output, SecretSource,
};

mod flags;

use crate::GlobalArgs;
use crate::progress::{self, ProgressMode};
use flags::{FlagError, docker_flags};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build an image from a Dockerfile.
    Build(Box<BuildArgs>),
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Build context: a directory, `-` (a tar archive or a bare Dockerfile on standard input),
    /// a tar archive file, an http(s) URL of an archive or a Dockerfile, or a git URL
    /// (`https://host/repo.git#ref:subdir`, `git@host:repo.git`, `git://…`).
    #[arg(value_name = "PATH | URL | -", default_value = ".")]
    pub context: String,
    /// Name of the Dockerfile (default: "PATH/Dockerfile"); `-` reads it from standard input.
    /// With a URL or archive context, a path inside the context.
    #[arg(short = 'f', long = "file", value_name = "string")]
    pub file: Option<PathBuf>,
    /// Name and optionally a tag in the "name:tag" format; may be repeated.
    #[arg(short = 't', long = "tag", value_name = "list")]
    pub tags: Vec<String>,
    /// Set the target build stage to build (default: the last stage). Repeated as
    /// NAME[=TAG], builds several targets in one graph, each stored as its own image (tagged
    /// TAG, or untagged).
    #[arg(long, value_name = "string")]
    pub target: Vec<String>,
    /// Squash the layers the final stage adds above its base into one new layer (history
    /// kept, as docker's experimental --squash).
    #[arg(long)]
    pub squash: bool,
    /// Set build-time variables (KEY=VALUE, or KEY to take it from the environment).
    #[arg(long = "build-arg", value_name = "list")]
    pub build_args: Vec<String>,
    /// Set metadata for an image (KEY=VALUE).
    #[arg(long = "label", value_name = "list")]
    pub labels: Vec<String>,
    /// Do not use cache when building the image.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not cache specified stages.
    #[arg(long = "no-cache-filter", value_name = "stringArray")]
    pub no_cache_filter: Vec<String>,
    /// Maximum steps run at the same time (default: number of cores).
    #[arg(long, short = 'j', value_name = "int")]
    pub jobs: Option<usize>,
    /// Set the networking mode for the RUN instructions during build: default, host (both
    /// the host's network: RUN shares it), none.
    #[arg(long, value_name = "default|host|none", default_value = "default")]
    pub network: String,
    /// Add a custom host-to-IP mapping ("host:ip" or "host=ip") to /etc/hosts of RUN steps;
    /// "host-gateway" is 127.0.0.1 (RUN shares the host's network).
    #[arg(long = "add-host", value_name = "list")]
    pub add_hosts: Vec<String>,
    /// Size of /dev/shm in RUN steps (default 64m): bytes, or a number with a unit (k, m, g).
    #[arg(long = "shm-size", value_name = "bytes")]
    pub shm_size: Option<String>,
    /// Ulimit options for RUN steps: name=soft[:hard], e.g. nofile=1024:2048.
    #[arg(long = "ulimit", value_name = "ulimit")]
    pub ulimits: Vec<String>,
    /// Always attempt to pull all referenced images (--pull, =true, =always); =false or
    /// =missing (the default): only the images the store lacks; =never: none.
    #[arg(long, value_name = "true|false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub pull: Option<String>,
    /// Shorthand for --output=type=registry: push every -t tag after the build.
    #[arg(long)]
    pub push: bool,
    /// External cache sources (e.g. "user/app:cache", "type=local,src=path/to/dir"),
    /// read when the store's own cache misses.
    #[arg(long = "cache-from", value_name = "stringArray")]
    pub cache_from: Vec<String>,
    /// Cache export destinations (e.g. "type=registry,ref=user/app:cache,mode=max",
    /// "type=local,dest=path/to/dir", "type=inline"; kiln's "cache-mounts=true" adds the
    /// contents of the build's cache mounts).
    #[arg(long = "cache-to", value_name = "stringArray")]
    pub cache_to: Vec<String>,
    /// Grant an entitlement: security.insecure lets `RUN --security=insecure` run privileged.
    #[arg(long = "allow", value_name = "stringArray", value_delimiter = ',')]
    pub allow: Vec<String>,
    /// Set type of progress output: auto, plain, tty, quiet, rawjson (default: $BUILDKIT_PROGRESS, else auto).
    #[arg(long, value_name = "string", default_value = "auto")]
    pub progress: String,
    /// Suppress the build output and print image ID on success.
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to the file.
    #[arg(long, value_name = "string")]
    pub iidfile: Option<PathBuf>,
    /// Write build result metadata (image and config digests, names) to the file, as JSON.
    #[arg(long = "metadata-file", value_name = "string")]
    pub metadata_file: Option<PathBuf>,
    /// Output destination: type=image|registry|docker,dest=F|oci,dest=F|local,dest=DIR|tar,dest=F
    /// (or a directory); image, registry, docker and oci take name=, compression=uncompressed|
    /// gzip|zstd, compression-level=N, force-compression=true|false, oci-mediatypes=true|false;
    /// image takes push=true (registry is image,push=true).
    #[arg(short = 'o', long = "output", value_name = "stringArray")]
    pub outputs: Vec<String>,
    /// Secret to expose to the build: id=ID,src=PATH or id=ID,env=VAR.
    #[arg(long = "secret", value_name = "stringArray")]
    pub secrets: Vec<String>,
    /// SSH agent socket to expose to the build: default (uses $SSH_AUTH_SOCK) or ID=SOCKET.
    #[arg(long = "ssh", value_name = "stringArray")]
    pub ssh: Vec<String>,
    /// Layer compression: uncompressed (default), gzip, zstd; of the image recorded in the
    /// store and of every type=docker/oci output that sets no compression= of its own.
    #[arg(long, value_name = "string")]
    pub compression: Option<String>,
    /// OCI runtime for RUN: the embedded executor (default), or runc, crun, or a path.
    #[arg(long, value_name = "string")]
    pub runtime: Option<String>,
    /// Additional build context: name=DIR|docker-archive:PATH|oci-layout:PATH.
    #[arg(long = "build-context", value_name = "stringArray")]
    pub build_contexts: Vec<String>,
    /// Set target platform for build: one (`linux/arm64`) or several, comma-separated
    /// (`linux/amd64,linux/arm64`: one image per platform and an index). Foreign RUN steps
    /// run under QEMU (binfmt_misc).
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Explain, for every step, why it was or was not taken from the cache.
    #[arg(long)]
    pub explain: bool,
    /// Only check the Dockerfile (BuildKit's build checks and kiln's rules, as `kiln check`
    /// does), build nothing; exit 1 when anything is found.
    #[arg(long)]
    pub check: bool,
    /// After a successful build, print `kiln report` of the image (text, json or html) to
    /// standard output, or to standard error when standard output carries -q's ID or an
    /// archive.
    #[arg(long, value_name = "FORMAT", num_args = 0..=1, require_equals = true, default_missing_value = "text")]
    pub report: Option<crate::cmd_report::ReportFormat>,
    #[command(flatten)]
    pub noop: NoopArgs,
}

/// docker's flags that mean nothing for kiln: accepted (values checked as docker checks them)
/// with one warning line each.
#[derive(Args, Debug)]
pub struct NoopArgs {
    /// No effect (kiln runs no intermediate containers to remove).
    #[arg(long, value_name = "true|false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub rm: Option<String>,
    /// No effect (kiln runs no intermediate containers to remove).
    #[arg(long = "force-rm", value_name = "true|false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub force_rm: Option<String>,
    /// No effect (kiln sends the context to no daemon; see --compression for layers).
    #[arg(long, value_name = "true|false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub compress: Option<String>,
    /// No effect (kiln verifies no image signatures); =false is refused.
    #[arg(long = "disable-content-trust", value_name = "true|false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub disable_content_trust: Option<String>,
    /// Container isolation technology: only "default" (Linux namespaces) exists; no effect.
    #[arg(long, value_name = "string")]
    pub isolation: Option<String>,
    /// Memory limit: no effect (kiln sets no cgroup limits on RUN steps).
    #[arg(short = 'm', long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Swap limit: no effect (kiln sets no cgroup limits on RUN steps).
    #[arg(
        long = "memory-swap",
        value_name = "bytes",
        allow_negative_numbers = true
    )]
    pub memory_swap: Option<String>,
    /// CPU shares (relative weight): no effect (kiln sets no cgroup limits on RUN steps).
    #[arg(
        short = 'c',
        long = "cpu-shares",
        value_name = "int",
        allow_negative_numbers = true
    )]
    pub cpu_shares: Option<String>,
    /// CPU CFS period: no effect (kiln sets no cgroup limits on RUN steps).
    #[arg(long = "cpu-period", value_name = "int", allow_negative_numbers = true)]
    pub cpu_period: Option<String>,
    /// CPU CFS quota: no effect (kiln sets no cgroup limits on RUN steps).
    #[arg(long = "cpu-quota", value_name = "int", allow_negative_numbers = true)]
    pub cpu_quota: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1): no effect (no cgroup limits).
    #[arg(long = "cpuset-cpus", value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1): no effect (no cgroup limits).
    #[arg(long = "cpuset-mems", value_name = "string")]
    pub cpuset_mems: Option<String>,
}

pub fn run(cmd: Command, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Build(args) => build(*args, global),
    }
}

fn key_value(s: &str, what: &str) -> anyhow::Result<(String, Option<String>)> {
    if s.is_empty() {
        bail!("invalid {what} {s:?}: expected KEY=VALUE");
    }
    Ok(match s.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (s.to_string(), None),
    })
}

/// buildx's CSV fields: separated by commas; a field in double quotes may hold commas
/// (`"name=a,b"`), and `""` inside quotes is one quote.
fn csv_fields(spec: &str) -> anyhow::Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = spec.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if cur.is_empty() => quoted = true,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        bail!("invalid --output {spec:?}: unterminated quote");
    }
    fields.push(cur);
    Ok(fields)
}

/// Go's `strconv.ParseBool`, with BuildKit's empty value meaning true.
fn output_bool(key: &str, v: &str) -> anyhow::Result<bool> {
    match v {
        "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => bail!("invalid --output value {key}={v:?}: expected true or false"),
    }
}

/// The keys each output type takes (the others are refused, naming the key).
fn output_keys(kind: &str) -> &'static [&'static str] {
    const IMAGE: &[&str] = &[
        "type",
        "name",
        "push",
        "compression",
        "compression-level",
        "force-compression",
        "oci-mediatypes",
    ];
    const ARCHIVE: &[&str] = &[
        "type",
        "dest",
        "name",
        "compression",
        "compression-level",
        "force-compression",
        "oci-mediatypes",
    ];
    match kind {
        "image" => IMAGE,
        "docker" | "oci" => ARCHIVE,
        _ => &["type", "dest"],
    }
}

/// What the outputs ask to push after the build.
#[derive(Debug, Default, PartialEq, Eq)]
struct PushRequest {
    /// `name=`s of `type=image,push=true` outputs (tagged in the store too).
    names: Vec<String>,
    /// `name=`s of `type=registry` outputs: pushed only, as buildx's registry exporter
    /// pushes without loading the image into the local image list.
    registry_names: Vec<String>,
    /// A pushing output without `name=`: it pushes every `-t` tag (buildx's rule).
    all_tags: bool,
}

/// One `--output`, as buildx reads it: a bare path is `type=local`, `-` a tar on stdout;
/// otherwise CSV fields, `type=` required. `type=image` gives its `name=`s to `tags` and its
/// compression to `image_compression`. Every key is honoured or refused, never ignored.
/// docker's refusal of a name that carries a digest: a tag never claims a content digest.
const DIGEST_TAG: &str = kiln_store::DIGEST_TAG_REFUSED;

fn parse_output(
    spec: &str,
    default_compression: Option<LayerCompression>,
    tags: &mut Vec<String>,
    image_compression: &mut Option<CompressionSpec>,
    push: &mut PushRequest,
) -> anyhow::Result<Output> {
    if !spec.contains('=') {
        return Ok(if spec == "-" {
            Output::Tar("-".into())
        } else {
            Output::Local(spec.into())
        });
    }
    let mut fields = Vec::new();
    for f in csv_fields(spec)? {
        match f.split_once('=') {
            Some((k, v)) => fields.push((k.trim().to_string(), v.to_string())),
            None => bail!("invalid --output field {f:?} in {spec:?}: expected KEY=VALUE"),
        }
    }
    // buildx lets a repeated key win silently; kiln refuses it rather than ignore a value.
    for (i, (k, _)) in fields.iter().enumerate() {
        if k != "name" && fields[..i].iter().any(|(p, _)| p == k) {
            bail!("--output: the key {k:?} is given twice in {spec:?}");
        }
    }
    let get = |key: &str| {
        fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let Some(kind) = get("type") else {
        bail!("type is required for output: {spec:?}")
    };
    // buildx: type=registry is type=image,push=true.
    let registry = kind == "registry";
    let kind = if registry { "image" } else { kind };
    if !["image", "docker", "oci", "local", "tar"].contains(&kind) {
        bail!("unsupported output type {kind:?}: use image, registry, docker, oci, local or tar");
    }
    let keys = output_keys(kind);
    for (k, _) in &fields {
        if !keys.contains(&k.as_str()) {
            bail!(
                "--output type={kind} does not take the key {k:?} (kiln supports {})",
                keys[1..].join(", ")
            );
        }
    }
    let pushes = match get("push").map(|v| output_bool("push", v)).transpose()? {
        Some(false) if registry => {
            bail!("--output type=registry always pushes: use type=image for push=false")
        }
        p => registry || p == Some(true),
    };
    let names: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "name")
        .flat_map(|(_, v)| v.split(','))
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    for n in &names {
        match kiln_image::ImageRef::parse(n) {
            Err(e) => bail!("--output name={n:?}: invalid reference: {e}"),
            Ok(r) if r.digest().is_some() => bail!("--output name={n:?}: {DIGEST_TAG}"),
            Ok(_) => {}
        }
    }
    let compression = output_compression(&get, default_compression)?;
    let oci_media_types = get("oci-mediatypes")
        .map(|v| output_bool("oci-mediatypes", v))
        .transpose()?;
    let need = |t: &str| -> anyhow::Result<PathBuf> {
        get("dest")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .with_context(|| format!("--output type={t} needs dest=PATH"))
    };
    let archive = |dest| ArchiveOutput {
        dest,
        compression,
        oci_media_types,
        names: names.clone(),
    };
    Ok(match kind {
        "image" => {
            if oci_media_types == Some(false) {
                bail!(
                    "--output type=image,oci-mediatypes=false: kiln's store records OCI manifests; docker media types are written by type=docker"
                );
            }
            if let Some(c) = compression {
                if image_compression.is_some_and(|i| i != c) {
                    bail!(
                        "two --output type=image ask different compressions: the store records one image"
                    );
                }
                *image_compression = Some(c);
            }
            if pushes {
                if compression.is_some_and(|c| c.kind == LayerCompression::Uncompressed) {
                    bail!(
                        "--output {spec:?}: kiln pushes compressed layers only: compression=gzip or zstd"
                    );
                }
                push.all_tags |= names.is_empty();
                if registry {
                    push.registry_names.extend(names);
                    return Ok(Output::Image);
                }
                push.names.extend(names.iter().cloned());
            }
            tags.extend(names);
            Output::Image
        }
        "docker" => Output::Docker(archive(need("docker")?)),
        "oci" => Output::Oci(archive(need("oci")?)),
        "local" => match need("local")? {
            d if d.as_os_str() == "-" => bail!("--output type=local needs a directory, not -"),
            d => Output::Local(d),
        },
        _ => Output::Tar(need("tar")?),
    })
}

/// `compression=`, `compression-level=`, `force-compression=` of one output (None when it
/// has none of them). The type defaults to `--compression`'s; the level is checked against it.
fn output_compression<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    default: Option<LayerCompression>,
) -> anyhow::Result<Option<CompressionSpec>> {
    let (c, l, f) = (
        get("compression"),
        get("compression-level"),
        get("force-compression"),
    );
    if c.is_none() && l.is_none() && f.is_none() {
        return Ok(None);
    }
    let kind = match c {
        Some(v) => LayerCompression::parse(v)
            .map_err(|e| anyhow::anyhow!("--output compression={v}: {e}"))?,
        None => default.unwrap_or_default(),
    };
    let level = match l {
        None => None,
        Some(v) => {
            let n: i32 = v
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("--output compression-level={v:?}: not an integer"))?;
            kind.check_level(n)
                .map_err(|e| anyhow::anyhow!("--output compression-level={v}: {e}"))?;
            Some(n)
        }
    };
    let force = f
        .map(|v| output_bool("force-compression", v))
        .transpose()?
        .unwrap_or(false);
    Ok(Some(CompressionSpec { kind, level, force }))
}

/// The names a build pushes, each with whether the store has it as a tag: every `-t` tag
/// (and output name) for `--push` and for pushing outputs without `name=`, plus the pushing
/// outputs' own names (`type=registry`'s only in the registry).
fn push_names(req: &PushRequest, tags: &[String]) -> anyhow::Result<Vec<(String, bool)>> {
    let mut names: Vec<(String, bool)> = Vec::new();
    let all = if req.all_tags { tags } else { &[] };
    for (n, tagged) in all
        .iter()
        .chain(&req.names)
        .map(|n| (n, true))
        .chain(req.registry_names.iter().map(|n| (n, tags.contains(n))))
    {
        if !names.iter().any(|(m, _)| m == n) {
            names.push((n.clone(), tagged));
        }
    }
    let asked = req.all_tags || !req.names.is_empty() || !req.registry_names.is_empty();
    if asked && names.is_empty() {
        bail!("tag is needed when pushing to registry: give -t NAME or name= in the output");
    }
    Ok(names)
}

/// Refuses an output whose destination cannot be written before anything is built: outputs
/// are written after the image is committed, so a bad path found then would fail a build
/// whose image is already in the store.
fn check_output_dest(o: &Output) -> anyhow::Result<()> {
    match o {
        Output::Image => {}
        Output::Local(dir) => {
            if dir.exists() && !dir.is_dir() {
                bail!("--output type=local: {} is not a directory", dir.display());
            }
        }
        Output::Docker(ArchiveOutput { dest: f, .. })
        | Output::Oci(ArchiveOutput { dest: f, .. })
        | Output::Tar(f) => {
            if f.as_os_str() == "-" {
                return Ok(());
            }
            if f.is_dir() {
                bail!(
                    "--output: {} is a directory; dest= names a file",
                    f.display()
                );
            }
            let parent = f
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                bail!(
                    "--output: cannot write {}: directory {} does not exist",
                    f.display(),
                    parent.display()
                );
            }
        }
    }
    Ok(())
}

fn parse_secret(spec: &str) -> anyhow::Result<(String, SecretSource)> {
    let mut id = None;
    let mut src = None;
    let mut typ = None;
    for f in spec.split(',') {
        match f.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(SecretSource::File(v.into())),
            Some(("env", v)) => src = Some(SecretSource::Env(v.to_string())),
            Some(("type", t @ ("file" | "env"))) => typ = Some(t),
            _ => bail!(
                "invalid --secret field {f:?} in {spec:?}: expected id=ID,src=PATH or id=ID,env=VAR"
            ),
        }
    }
    let id = id.with_context(|| format!("--secret {spec:?} needs id=ID"))?;
    // As buildx: with type=env, src= names the variable; with type=file, a path.
    let src = match (typ, src) {
        (Some("env"), Some(SecretSource::File(p))) => {
            Some(SecretSource::Env(p.to_string_lossy().into_owned()))
        }
        (Some("file"), Some(SecretSource::Env(_))) => {
            bail!("--secret {spec:?}: type=file takes src=PATH, not env=")
        }
        (_, s) => s,
    };
    let src = src.unwrap_or_else(|| SecretSource::Env(id.clone()));
    Ok((id, src))
}

/// `--ssh default`, `--ssh ID=SOCKET[,...]`: an agent socket (key files would need an agent
/// kiln does not have: `ssh-add` them to one).
fn parse_ssh(spec: &str) -> anyhow::Result<(String, PathBuf)> {
    let (id, paths) = match spec.split_once('=') {
        Some((id, p)) => (id.to_string(), Some(p)),
        None => (spec.to_string(), None),
    };
    if paths.is_some_and(|p| p.contains(',')) {
        bail!("--ssh {spec}: kiln forwards one agent socket per id; give one path (ID=SOCKET)");
    }
    let path: PathBuf = match paths.filter(|p| !p.is_empty()) {
        Some(p) => p.into(),
        None => std::env::var_os("SSH_AUTH_SOCK")
            .map(PathBuf::from)
            .with_context(|| {
                format!("--ssh {spec}: SSH_AUTH_SOCK is not set; pass --ssh {id}=SOCKET")
            })?,
    };
    use std::os::unix::fs::FileTypeExt;
    let meta =
        std::fs::metadata(&path).with_context(|| format!("--ssh {spec}: {}", path.display()))?;
    if !meta.file_type().is_socket() {
        bail!(
            "--ssh {spec}: {} is not an agent socket (kiln forwards SSH agents, not key files: run `ssh-add {}` and pass the agent's socket)",
            path.display(),
            path.display()
        );
    }
    Ok((id, path))
}

/// `--metadata-file`: buildx's keys for an image build.
fn metadata_json(outcome: &kiln_build::BuildOutcome) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    // A multi-platform build's outcome is an index (its ID is the index digest): no one
    // config, and BuildKit leaves the key out then.
    if outcome.image_id != outcome.manifest_digest {
        m.insert(
            "containerimage.config.digest".into(),
            outcome.image_id.clone().into(),
        );
    }
    m.insert(
        "containerimage.digest".into(),
        outcome.manifest_digest.clone().into(),
    );
    if !outcome.tags.is_empty() {
        m.insert("image.name".into(), outcome.tags.join(",").into());
    }
    serde_json::Value::Object(m)
}

/// Directories a build fetched or unpacked its context into; removed when the build ends.
struct TempDirs(Vec<PathBuf>);

impl TempDirs {
    /// A new empty directory in the store's tmp/ (removed by the next kiln if this one is
    /// killed).
    fn make(&mut self, store: &kiln_store::Store) -> anyhow::Result<PathBuf> {
        let d = store.prepare_snapshot_dir()?;
        self.0.push(d.clone());
        Ok(d)
    }
}

impl Drop for TempDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Default Dockerfile: CONTEXT/Dockerfile, else CONTEXT/dockerfile.
fn find_dockerfile(context: &Path, file: Option<&Path>) -> PathBuf {
    if let Some(f) = file {
        return f.to_path_buf();
    }
    let upper = context.join("Dockerfile");
    let lower = context.join("dockerfile");
    if !upper.exists() && lower.exists() {
        lower
    } else {
        upper
    }
}

/// The context directory (fetched or unpacked when CONTEXT is not a directory) and, when the
/// input was a bare Dockerfile, its text.
fn prepare_context(
    args: &BuildArgs,
    global: &GlobalArgs,
    temp: &mut TempDirs,
) -> anyhow::Result<(PathBuf, Option<String>)> {
    use kiln_build::context::remote::{self, ContextInput, ContextSource};
    let source = ContextSource::classify(&args.context);
    if let ContextSource::Dir(d) = source {
        if !d.is_dir() {
            bail!(
                "unable to prepare context: path {:?} not found",
                d.display().to_string()
            );
        }
        return Ok((d, None));
    }
    let store = kiln_store::Store::open(global.store_root())?;
    let dir = temp.make(&store)?;
    let unable = |e: kiln_build::context::RemoteContextError| {
        anyhow::anyhow!("unable to prepare context: {e}")
    };
    let input = match &source {
        ContextSource::Dir(_) => unreachable!("returned above"),
        ContextSource::Stdin => {
            if args.file.as_deref() == Some(Path::new("-")) {
                bail!("invalid argument: can't use stdin for both build context and dockerfile");
            }
            let spool = temp.make(&store)?.join("stdin");
            kiln_build::context::stdin::read_stdin_context(std::io::stdin().lock(), &spool, &dir)
                .map_err(unable)?
        }
        ContextSource::Archive(f) => {
            remote::unpack(f, &dir, &f.display().to_string(), false).map_err(unable)?
        }
        ContextSource::Url(u) => {
            let spool = temp.make(&store)?;
            remote::fetch_url(u, &spool, &dir).map_err(unable)?
        }
        ContextSource::Git(u) => {
            return Ok((remote::checkout_git(u, &dir).map_err(unable)?, None));
        }
    };
    Ok(match input {
        ContextInput::Context => (dir, None),
        ContextInput::Dockerfile(text) => (dir, Some(text)),
    })
}

/// `-f PATH` in a fetched or unpacked context: a file inside it, as docker reads it.
fn dockerfile_in(context: &Path, f: &Path) -> anyhow::Result<PathBuf> {
    let rel = kiln_build::context::rootpath::clean_rel(&f.to_string_lossy());
    let p = context.join(&rel);
    let top = context.canonicalize()?;
    match p.canonicalize() {
        Ok(real) if real.starts_with(&top) => Ok(real),
        _ => bail!(
            "unable to prepare context: no Dockerfile {:?} inside the context",
            f.display().to_string()
        ),
    }
}

/// `--target NAME[=TAG]`s, a stage named twice merged (its tags joined), in the order first
/// named. Several targets take their tags from `=TAG` only, and write no single-image file.
fn parse_targets(args: &BuildArgs) -> Result<Vec<kiln_build::options::TargetSpec>, FlagError> {
    let mut out: Vec<kiln_build::options::TargetSpec> = Vec::new();
    for t in &args.target {
        let (name, tag) = match t.split_once('=') {
            Some((n, tag)) => (n, Some(tag)),
            None => (t.as_str(), None),
        };
        if name.is_empty() {
            return Err(FlagError::invalid(
                "--target",
                t,
                "expected NAME or NAME=TAG",
            ));
        }
        if let Some(tag) = tag {
            match kiln_image::ImageRef::parse(tag) {
                Err(e) => return Err(FlagError::invalid("--target", t, e.to_string())),
                Ok(r) if r.digest().is_some() => {
                    return Err(FlagError::invalid("--target", t, DIGEST_TAG.to_string()));
                }
                Ok(_) => {}
            }
        }
        let i = match out.iter().position(|s| s.name.eq_ignore_ascii_case(name)) {
            Some(i) => i,
            None => {
                out.push(kiln_build::options::TargetSpec {
                    name: name.to_string(),
                    tags: Vec::new(),
                });
                out.len() - 1
            }
        };
        if let Some(tag) = tag
            && !out[i].tags.iter().any(|x| x == tag)
        {
            // One name, one image: a tag asked of two targets would end on whichever is
            // stored last.
            let same = |x: &str| {
                kiln_image::ImageRef::parse(x).ok().map(|r| r.to_string())
                    == kiln_image::ImageRef::parse(tag).ok().map(|r| r.to_string())
            };
            if let Some(other) = out
                .iter()
                .find(|o| o.name != out[i].name && o.tags.iter().any(|x| same(x)))
            {
                return Err(FlagError::invalid(
                    "--target",
                    t,
                    format!("tag {tag} is also given to target {}", other.name),
                ));
            }
            out[i].tags.push(tag.to_string());
        }
    }
    if out.len() > 1 {
        let refuse = |flag: &str, why: &str| {
            Err(FlagError::Unsupported(format!(
                "{flag} cannot be used with several --target: {why}"
            )))
        };
        if !args.tags.is_empty() {
            return refuse(
                "-t, --tag",
                "with several --target, give each target its tags as --target NAME=TAG",
            );
        }
        if args.iidfile.is_some() {
            return refuse(
                "--iidfile",
                "several --target make several images; -q prints their IDs, one per line",
            );
        }
        if args.report.is_some() {
            return refuse(
                "--report",
                "several --target make several images; run kiln report on each",
            );
        }
        if args.metadata_file.is_some() {
            return refuse(
                "--metadata-file",
                "several --target make several images; build them one at a time for metadata",
            );
        }
        if !args.outputs.is_empty() {
            return refuse(
                "-o, --output",
                "several --target are stored in the image store only; export each with its own build",
            );
        }
    }
    Ok(out)
}

fn build(args: BuildArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    for t in &args.tags {
        match kiln_image::ImageRef::parse(t) {
            Err(e) => return Ok(FlagError::invalid("-t, --tag", t, e.to_string()).report()),
            Ok(r) if r.digest().is_some() => {
                return Ok(FlagError::invalid("-t, --tag", t, DIGEST_TAG.to_string()).report());
            }
            Ok(_) => {}
        }
    }
    let targets = match parse_targets(&args) {
        Ok(t) => t,
        Err(e) => return Ok(e.report()),
    };
    if args.check && args.report.is_some() {
        return Ok(FlagError::Unsupported(
            "--report cannot be used with --check: --check builds nothing to report on".into(),
        )
        .report());
    }
    // Flags first, as docker checks them: before any context is read or fetched.
    // A bad --progress or BUILDKIT_PROGRESS is an error even with -q, as in docker.
    let mode = match ProgressMode::parse(&args.progress)? {
        _ if args.quiet => ProgressMode::Quiet,
        m => m,
    };
    // docker's flag values (--shm-size, --ulimit, --add-host, --cache-to, ...) too; the
    // context and Dockerfile are filled in once they are read.
    let mut opts = BuildOptions::new(PathBuf::new(), PathBuf::new(), String::new());
    let flag_warnings = match docker_flags(&args, &mut opts) {
        Ok(w) => w,
        Err(e) => return Ok(e.report()),
    };
    let dockerfile_on_stdin = args.file.as_deref() == Some(Path::new("-"));
    let mut temp = TempDirs(Vec::new());
    let (context, bare_dockerfile) = prepare_context(&args, global, &mut temp)?;
    let remote = !Path::new(&args.context).is_dir();
    let limit = kiln_dockerfile::limits::MAX_DOCKERFILE_BYTES;
    let (dockerfile, text) = if let Some(text) = bare_dockerfile {
        if dockerfile_on_stdin {
            bail!(
                "invalid argument: the context {} is a Dockerfile itself; -f - cannot give another",
                args.context
            );
        }
        (context.join("Dockerfile"), text)
    } else if dockerfile_on_stdin {
        // `-f -`: named Dockerfile in messages, as docker names it.
        let text =
            kiln_build::context::read_capped(Path::new("/dev/stdin"), limit, "the Dockerfile")
                .and_then(|b| String::from_utf8(b).map_err(std::io::Error::other))
                .context("failed to read the Dockerfile from standard input")?;
        (context.join("Dockerfile"), text)
    } else {
        // A fetched or unpacked context is not the user's: its Dockerfile (named or the
        // default) must lie inside it, even through symlinks.
        let dockerfile = match args.file.as_deref() {
            Some(f) if remote => dockerfile_in(&context, f)?,
            None if remote => {
                let name = find_dockerfile(&context, None);
                dockerfile_in(&context, Path::new(name.file_name().unwrap_or_default()))?
            }
            f => find_dockerfile(&context, f),
        };
        let text = kiln_build::context::read_capped(&dockerfile, limit, "the Dockerfile")
            .and_then(|b| String::from_utf8(b).map_err(std::io::Error::other))
            .with_context(|| format!("failed to read dockerfile {}", dockerfile.display()))?;
        (dockerfile, text)
    };
    if let Some(p) = &args.platform {
        opts.platforms = kiln_build::plan::platform::parse_platform_list(p)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let lint_req = crate::cmd_check::BuildLint {
        check_only: args.check,
        build_args: &args.build_args,
        target: targets.first().map(|t| t.name.as_str()),
    };
    let lint =
        match crate::cmd_check::lint_before_build(&lint_req, &context, &dockerfile, &text, mode) {
            crate::cmd_check::Lint::Done(code) => return Ok(code),
            crate::cmd_check::Lint::Warnings(w) => w,
        };
    opts.context = context;
    opts.dockerfile_path = dockerfile.clone();
    opts.dockerfile_text = text.clone();
    opts.tags = args.tags.clone();
    opts.squash = args.squash;
    match targets.as_slice() {
        [] => {}
        [one] => {
            opts.target = Some(one.name.clone());
            for t in &one.tags {
                if !opts.tags.contains(t) {
                    opts.tags.push(t.clone());
                }
            }
        }
        several => opts.targets = several.to_vec(),
    }
    for a in &args.build_args {
        let (k, v) = key_value(a, "--build-arg")?;
        // docker ignores KEY without a value when the environment lacks it
        if let Some(v) = v.or_else(|| std::env::var(&k).ok()) {
            opts.build_args.insert(k, v);
        }
    }
    for l in &args.labels {
        let (k, v) = key_value(l, "--label")?;
        opts.labels.insert(k, v.unwrap_or_default());
    }
    opts.no_cache = args.no_cache;
    opts.no_cache_filter = args.no_cache_filter.clone();
    if let Some(j) = args.jobs {
        if j == 0 {
            bail!("--jobs must be at least 1");
        }
        opts.jobs = j;
    }
    opts.network_none = match args.network.as_str() {
        "default" | "host" => false,
        "none" => true,
        n => {
            return Ok(FlagError::invalid(
                "--network",
                n,
                "kiln's RUN steps use default, host (the same: the host's network) or none",
            )
            .report());
        }
    };
    for w in flag_warnings {
        eprintln!("{w}");
    }
    for e in &args.allow {
        match e.as_str() {
            "security.insecure" => opts.allow_insecure = true,
            "network.host" => bail!(
                "--allow network.host: kiln's RUN steps use the host's network already (no isolated network exists to leave), so RUN --network=host needs no entitlement; drop this flag"
            ),
            e => bail!("unknown entitlement {e:?} in --allow: kiln knows security.insecure"),
        }
    }
    let compression = match args.compression.as_deref() {
        None => None,
        // "none": what kiln's --compression took before it took BuildKit's names.
        Some("none") => Some(LayerCompression::Uncompressed),
        Some(c) => {
            Some(LayerCompression::parse(c).map_err(|e| anyhow::anyhow!("--compression: {e}"))?)
        }
    };
    let mut output_tags = Vec::new();
    let mut image_compression = None;
    let mut push_request = PushRequest {
        all_tags: args.push,
        ..Default::default()
    };
    for o in &args.outputs {
        opts.outputs.push(parse_output(
            o,
            compression,
            &mut output_tags,
            &mut image_compression,
            &mut push_request,
        )?);
    }
    opts.compression = match (compression, image_compression) {
        (Some(c), Some(i)) if c != i.kind => bail!(
            "--compression {} and --output type=image,compression={} disagree: give one",
            c.name(),
            i.kind.name()
        ),
        (_, Some(i)) => Some(i),
        (c, None) => c.map(|kind| CompressionSpec {
            kind,
            ..Default::default()
        }),
    };
    let mut dests: Vec<PathBuf> = Vec::new();
    for o in &opts.outputs {
        check_output_dest(o)?;
        // Two outputs into one file (or both to standard output) would lose one of them.
        let dest = match o {
            Output::Image => continue,
            Output::Local(d)
            | Output::Tar(d)
            | Output::Docker(ArchiveOutput { dest: d, .. })
            | Output::Oci(ArchiveOutput { dest: d, .. }) => d,
        };
        let same = |a: &Path, b: &Path| {
            let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            abs(a) == abs(b)
                || (a.exists() && std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok())
        };
        if let Some(prev) = dests.iter().find(|p| same(p, dest)) {
            bail!(
                "--output: two outputs write to {}; give each its own dest=",
                if prev.as_os_str() == "-" {
                    "standard output".to_string()
                } else {
                    prev.display().to_string()
                }
            );
        }
        dests.push(dest.clone());
    }
    let to_stdout = opts.outputs.iter().any(|o| match o {
        Output::Tar(d)
        | Output::Docker(ArchiveOutput { dest: d, .. })
        | Output::Oci(ArchiveOutput { dest: d, .. }) => d.as_os_str() == "-",
        _ => false,
    });
    if to_stdout && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to write an archive to a terminal: redirect standard output");
    }
    for t in output_tags {
        if !opts.tags.contains(&t) {
            opts.tags.push(t);
        }
    }
    let push_names = push_names(&push_request, &opts.tags)?;
    let push_compression = match opts.compression.map(|c| c.kind) {
        None | Some(LayerCompression::Gzip) => kiln_image::Compression::Gzip,
        Some(LayerCompression::Zstd) => kiln_image::Compression::Zstd,
        Some(LayerCompression::Uncompressed) if push_names.is_empty() => {
            kiln_image::Compression::Gzip
        }
        Some(LayerCompression::Uncompressed) => {
            bail!("--push: kiln pushes compressed layers only: --compression gzip or zstd")
        }
    };
    let pull_policy = match flags::pull_policy(args.pull.as_deref()) {
        Ok(p) => p,
        Err(e) => return Ok(e.report()),
    };
    for s in &args.secrets {
        let (id, src) = parse_secret(s)?;
        opts.secrets.insert(id, src);
    }
    for s in &args.ssh {
        let (id, path) = parse_ssh(s)?;
        opts.ssh.insert(id, path);
    }
    opts.source_date_epoch = match opts
        .build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
    {
        Some(v) if !v.is_empty() => Some(
            v.parse()
                .with_context(|| format!("invalid SOURCE_DATE_EPOCH {v:?}"))?,
        ),
        _ => None,
    };
    opts.runtime = args.runtime.as_ref().map(PathBuf::from);
    for c in &args.build_contexts {
        let (k, v) = key_value(c, "--build-context")?;
        let v = v.with_context(|| format!("--build-context {c:?} needs NAME=VALUE"))?;
        opts.named_contexts.insert(k, v);
    }

    // Made before the build, so a path that cannot be written fails before anything is built
    // (as a bad -o does), not after the image is committed.
    if let Some(f) = &args.iidfile {
        std::fs::write(f, b"").with_context(|| format!("writing --iidfile {}", f.display()))?;
    }
    if let Some(f) = &args.metadata_file {
        std::fs::write(f, b"")
            .with_context(|| format!("writing --metadata-file {}", f.display()))?;
    }
    let (tx, rx) = mpsc::channel();
    // Bases the store lacks are pulled while the build plans (kiln-build asks this).
    opts.image_fetcher = Some(std::sync::Arc::new(crate::cmd_registry::BuildPuller::new(
        pull_policy,
        kiln_build::event::EventSink::new(tx.clone()),
    )));
    let root = global.store_root();
    let explain = args.explain;
    let renderer = std::thread::spawn(move || progress::render(rx, mode, explain));
    let result = kiln_build::build(&root, opts, kiln_build::event::EventSink::new(tx));
    let _ = renderer.join();
    if !lint.is_empty() {
        eprint!("\n{}", crate::cmd_check::build_summary(&lint));
    }
    if result.is_err() {
        // As docker: no ID or metadata file unless the build succeeded.
        for f in [&args.iidfile, &args.metadata_file].into_iter().flatten() {
            let _ = std::fs::remove_file(f);
        }
    }
    let result = match result {
        Ok(mut outcome) if !push_names.is_empty() => {
            let store = kiln_store::Store::open(&root)?;
            let quiet = args.quiet || matches!(mode, ProgressMode::Quiet | ProgressMode::RawJson);
            match crate::cmd_registry::push_built(
                &store,
                &outcome.image_id,
                &push_names,
                push_compression,
                quiet,
            ) {
                Ok(digest) => {
                    // buildx's metadata names the manifest the registry has.
                    if let Some(d) = digest {
                        outcome.manifest_digest = d.to_string();
                    }
                    Ok(outcome)
                }
                Err(message) => {
                    for f in [&args.iidfile, &args.metadata_file].into_iter().flatten() {
                        let _ = std::fs::remove_file(f);
                    }
                    eprintln!("ERROR: {message}");
                    return Ok(ExitCode::from(1));
                }
            }
        }
        r => r,
    };
    match result {
        Ok(outcome) => {
            for w in &outcome.warnings {
                eprintln!("WARNING: {w}");
            }
            if let Some(f) = &args.iidfile {
                std::fs::write(f, &outcome.image_id)
                    .with_context(|| format!("writing --iidfile {}", f.display()))?;
            }
            if let Some(f) = &args.metadata_file {
                let json = serde_json::to_vec_pretty(&metadata_json(&outcome))?;
                std::fs::write(f, json)
                    .with_context(|| format!("writing --metadata-file {}", f.display()))?;
            }
            // Standard output may carry the archive itself.
            if !outcome.targets.is_empty() {
                for t in &outcome.targets {
                    if args.quiet {
                        println!("{}", t.image_id);
                    } else if t.tags.is_empty() {
                        eprintln!("target {}: {} (untagged)", t.target, t.image_id);
                    } else {
                        eprintln!("target {}: {} {}", t.target, t.image_id, t.tags.join(" "));
                    }
                }
            } else if args.quiet && !to_stdout {
                println!("{}", outcome.image_id);
            }
            if let Some(format) = args.report {
                let to_stderr = args.quiet || to_stdout;
                let name = args.tags.first().map(String::as_str);
                crate::cmd_report::report_built(&root, &outcome.image_id, name, format, to_stderr)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(kiln_build::BuildError::Dockerfile(e)) => {
            // `ERROR:` as every failed build says it (a CI log search finds one word).
            eprint!("{}", e.render_as("ERROR", &text));
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("{}", progress::render_error(&e, &dockerfile, &text));
            if matches!(&e, kiln_build::BuildError::Store(s) if s.suggests_damage()) {
                eprintln!("{}", crate::STORE_DAMAGE_HINT);
            }
            Ok(ExitCode::from(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_type_env_takes_the_variable_from_src() {
        let (id, src) = parse_secret("id=tok,type=env,src=GH_TOKEN").unwrap();
        assert_eq!(id, "tok");
        assert!(matches!(src, SecretSource::Env(v) if v == "GH_TOKEN"));
        let (_, src) = parse_secret("id=tok,type=file,src=/run/tok").unwrap();
        assert!(matches!(src, SecretSource::File(p) if p == Path::new("/run/tok")));
        assert!(parse_secret("id=tok,type=file,env=X").is_err());
    }

    #[test]
    fn output_fields_are_read_as_buildx_reads_csv() {
        assert_eq!(
            csv_fields(r#"type=oci,"name=a,b",dest=x"#).unwrap(),
            ["type=oci", "name=a,b", "dest=x"]
        );
        assert_eq!(csv_fields(r#""a=""q""""#).unwrap(), [r#"a="q""#]);
        assert!(csv_fields(r#""a=b"#).is_err());
    }

    #[test]
    fn output_compression_takes_its_type_from_compression_flag() {
        let parse = |spec: &str, dflt| {
            let (mut tags, mut img) = (Vec::new(), None);
            let mut push = PushRequest::default();
            parse_output(spec, dflt, &mut tags, &mut img, &mut push).map(|o| (o, tags, img))
        };
        let (o, _, _) = parse(
            "type=oci,dest=f,compression-level=9",
            Some(LayerCompression::Gzip),
        )
        .unwrap();
        let Output::Oci(a) = o else { panic!() };
        assert_eq!(
            a.compression,
            Some(CompressionSpec {
                kind: LayerCompression::Gzip,
                level: Some(9),
                force: false
            })
        );
        let (_, tags, img) = parse(
            "type=image,name=x,compression=zstd,force-compression=true",
            None,
        )
        .unwrap();
        assert_eq!(tags, ["x"]);
        assert_eq!(img.unwrap().kind, LayerCompression::Zstd);
        assert!(img.unwrap().force);
        let e = parse("type=oci,dest=f,compression-level=9", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("compression-level"), "{e}");
        assert!(parse("type=registry,name=x,push=false", None).is_err());
    }

    #[test]
    fn registry_outputs_and_push_true_push_their_names_or_the_tags() {
        let push_of = |spec: &str| {
            let (mut tags, mut img) = (Vec::new(), None);
            let mut push = PushRequest::default();
            parse_output(spec, None, &mut tags, &mut img, &mut push).unwrap();
            push
        };
        let p = push_of("type=registry,name=r/x:1");
        assert_eq!(p.registry_names, ["r/x:1"]);
        assert!(p.names.is_empty() && !p.all_tags);
        assert_eq!(push_of("type=image,name=r/x:1,push=true").names, ["r/x:1"]);
        assert!(push_of("type=image,push=true").all_tags);
        assert_eq!(push_of("type=image,name=r/x:1"), PushRequest::default());
        let tags = ["r/a:1".to_string()];
        assert_eq!(
            push_names(&push_of("type=registry"), &tags).unwrap(),
            [("r/a:1".to_string(), true)]
        );
        assert_eq!(
            push_names(&push_of("type=registry,name=r/b:1"), &tags).unwrap(),
            [("r/b:1".to_string(), false)]
        );
        assert!(push_names(&push_of("type=registry"), &[]).is_err());
        assert!(push_names(&PushRequest::default(), &[]).unwrap().is_empty());
    }

    #[test]
    fn ssh_with_several_paths_is_refused() {
        let e = parse_ssh("default=/a.sock,/b.sock")
            .unwrap_err()
            .to_string();
        assert!(e.contains("one agent socket per id"), "{e}");
    }

    #[test]
    fn metadata_has_buildx_keys_and_names_only_with_tags() {
        let mut outcome = kiln_build::BuildOutcome {
            image_id: "sha256:c".into(),
            manifest_digest: "sha256:m".into(),
            tags: vec![
                "docker.io/library/a:1".into(),
                "docker.io/library/a:2".into(),
            ],
            cached: 0,
            executed: 0,
            warnings: Vec::new(),
            targets: Vec::new(),
        };
        let m = metadata_json(&outcome);
        assert_eq!(m["containerimage.config.digest"], "sha256:c");
        assert_eq!(m["containerimage.digest"], "sha256:m");
        assert_eq!(
            m["image.name"],
            "docker.io/library/a:1,docker.io/library/a:2"
        );
        outcome.tags.clear();
        assert!(metadata_json(&outcome).get("image.name").is_none());
        // An index (a multi-platform build) has no one config digest.
        outcome.image_id = "sha256:i".into();
        outcome.manifest_digest = "sha256:i".into();
        let m = metadata_json(&outcome);
        assert!(m.get("containerimage.config.digest").is_none(), "{m}");
        assert_eq!(m["containerimage.digest"], "sha256:i");
    }
}
