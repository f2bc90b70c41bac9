//! Volumes, as docker's `local` driver keeps them: `volumes/<name>/_data` under the store
//! root, with `volumes/<name>/volume.json` (created time, labels, whether it is anonymous).
//! A container's mounts (`-v`, `--mount`, the image's `VOLUME`) are resolved at create time
//! into [`MountPoint`]s kept in its config; named volumes are made on first use, anonymous
//! ones get a random 64-hex name. An empty volume is seeded from the image's content at its
//! destination when the container starts (docker's copy-up), the path resolved inside the
//! container's root. Which containers use a volume is read from their configs.
//!
//! ```text
//! <store root>/volumes/
//!   mydata/volume.json    {"CreatedAt": "...", "Labels": {...}, "Anonymous": false}
//!   mydata/_data/         what the container sees at its destination
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kiln_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::config::ContainerConfig;
use super::mounts::MountPoint;
use super::mounts::{check_name, parse_mount, parse_volume_flag};
use crate::cmd_image::render::{Format, go_json_pretty_of, human_size};

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume
    Create(VolumeCreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(VolumeLsArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(VolumeRmArgs),
    /// Remove all unused local volumes
    Prune(VolumePruneArgs),
    /// Display detailed information on one or more volumes
    Inspect(VolumeInspectArgs),
}

#[derive(Args, Debug)]
pub struct VolumeCreateArgs {
    /// Specify volume driver name
    #[arg(short, long, value_name = "string", default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long, value_name = "list")]
    pub label: Vec<String>,
    /// Set driver specific options (not supported: refused)
    #[arg(short, long, value_name = "map")]
    pub opt: Vec<String>,
    /// Specify volume name
    #[arg(long = "name", value_name = "string")]
    pub name_flag: Option<String>,
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct VolumeLsArgs {
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// Provide filter values (dangling=true|false, name=...)
    #[arg(short, long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print volumes using a Go template
    #[arg(
        long,
        value_name = "string",
        default_value = "",
        hide_default_value = true
    )]
    pub format: String,
}

#[derive(Args, Debug)]
pub struct VolumeRmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct VolumePruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct VolumeInspectArgs {
    /// Format the output using the given Go template
    #[arg(
        short,
        long,
        value_name = "string",
        default_value = "",
        hide_default_value = true
    )]
    pub format: String,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Meta {
    created_at: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    anonymous: bool,
}

pub fn volumes_dir(store: &Store) -> PathBuf {
    store.root().join("volumes")
}

/// Makes volume `name` if it does not exist (docker's create is idempotent); its `_data`.
pub fn ensure(
    store: &Store,
    name: &str,
    labels: BTreeMap<String, String>,
    anonymous: bool,
) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let dir = volumes_dir(store).join(name);
    let data = dir.join("_data");
    if dir.join("volume.json").exists() {
        return Ok(data);
    }
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let meta = Meta {
        created_at: kiln_store::timestamp::format_rfc3339(crate::cmd_image::render::now()),
        labels,
        anonymous,
    };
    let tmp = dir.join("volume.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&meta)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join("volume.json"))?;
    Ok(data)
}

fn meta(store: &Store, name: &str) -> Option<Meta> {
    let p = volumes_dir(store).join(name).join("volume.json");
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

fn names(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(volumes_dir(store))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("volume.json").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// IDs of the containers whose mounts use volume `name`.
fn users(store: &Store, name: &str) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for c in store.containers()? {
        let cfg: ContainerConfig = serde_json::from_str(&c.config).unwrap_or_default();
        if cfg
            .host
            .mount_points
            .iter()
            .any(|m| m.typ == "volume" && m.name == name)
        {
            ids.push(c.id.clone());
        }
    }
    Ok(ids)
}

fn remove(store: &Store, name: &str) -> anyhow::Result<u64> {
    let dir = volumes_dir(store).join(name);
    let size = kiln_snapshot::dir_size(&dir.join("_data"))
        .map(|u| u.size)
        .unwrap_or(0);
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(size)
}

/// One volume as `system df` counts it: its name, how many containers use it (docker's
/// `RefCount`, any state) and the size of its `_data`.
pub struct VolumeUsage {
    pub name: String,
    pub links: usize,
    pub size: u64,
}

/// Every volume with its users and size, sorted by name.
pub fn usage(store: &Store) -> anyhow::Result<Vec<VolumeUsage>> {
    let mut out = Vec::new();
    for name in names(store) {
        let links = users(store, &name)?.len();
        let size = kiln_snapshot::dir_size(&volumes_dir(store).join(&name).join("_data"))
            .map(|u| u.size)
            .unwrap_or(0);
        out.push(VolumeUsage { name, links, size });
    }
    Ok(out)
}

/// Removes every volume no container uses (docker 20.10's `volume prune`, anonymous or
/// named): their names and the bytes freed.
pub fn prune_unused(store: &Store) -> anyhow::Result<(Vec<String>, u64)> {
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for n in names(store) {
        if users(store, &n)?.is_empty() {
            reclaimed += remove(store, &n)?;
            deleted.push(n);
        }
    }
    Ok((deleted, reclaimed))
}

/// Removes the anonymous volumes of a removed container (`rm -v`, `--rm`) that no other
/// container uses.
pub fn remove_anonymous(store: &Store, cfg: &ContainerConfig) {
    for m in &cfg.host.mount_points {
        if m.typ == "volume" && m.anonymous && users(store, &m.name).is_ok_and(|u| u.is_empty()) {
            let _ = remove(store, &m.name);
        }
    }
}

fn doc(store: &Store, name: &str, m: &Meta) -> Value {
    json!({
        "CreatedAt": m.created_at,
        "Driver": "local",
        "Labels": if m.labels.is_empty() { Value::Null } else { json!(m.labels) },
        "Mountpoint": volumes_dir(store).join(name).join("_data"),
        "Name": name,
        "Options": Value::Null,
        "Scope": "local",
    })
}

pub fn run(store: &Store, cmd: VolumeCommand) -> anyhow::Result<()> {
    match cmd {
        VolumeCommand::Create(a) => {
            if a.driver != "local" {
                bail!(
                    "volume driver {:?}: kiln has only the local driver",
                    a.driver
                );
            }
            if !a.opt.is_empty() {
                bail!("volume create -o: driver options are not supported by kiln");
            }
            let name = match (a.name_flag, a.name) {
                (Some(f), Some(n)) if f != n => bail!(
                    "conflicting options: either specify --name or provide positional arg, not both"
                ),
                (Some(n), _) | (None, Some(n)) => n,
                (None, None) => super::ids::new_id(),
            };
            let mut labels = BTreeMap::new();
            for l in &a.label {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                labels.insert(k.to_string(), v.to_string());
            }
            ensure(store, &name, labels, false)?;
            println!("{name}");
            Ok(())
        }
        VolumeCommand::Ls(a) => {
            let mut rows = Vec::new();
            for n in names(store) {
                let mut keep = true;
                for f in &a.filter {
                    let Some((k, v)) = f.split_once('=') else {
                        bail!("bad format of filter (expected name=value)");
                    };
                    keep &= match k {
                        "name" => n.contains(v),
                        "dangling" => {
                            let unused = users(store, &n)?.is_empty();
                            unused == matches!(v, "true" | "1")
                        }
                        "driver" => v == "local",
                        _ => bail!("invalid filter '{k}'"),
                    };
                }
                if keep {
                    rows.push(json!({"Driver": "local", "Name": n, "Scope": "local",
                        "Mountpoint": volumes_dir(store).join(&n).join("_data"), "Labels": ""}));
                }
            }
            let mut out = std::io::stdout().lock();
            if a.quiet {
                for r in &rows {
                    writeln!(out, "{}", r["Name"].as_str().unwrap_or_default())?;
                }
                return Ok(());
            }
            let format = if a.format.is_empty() {
                "table {{.Driver}}\t{{.Name}}"
            } else {
                a.format.as_str()
            };
            let header = json!({"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE",
                "Mountpoint": "MOUNTPOINT", "Labels": "LABELS"});
            let f = Format::new(format, "")?;
            out.write_all(f.render(&header, &rows)?.as_bytes())?;
            Ok(())
        }
        VolumeCommand::Inspect(a) => {
            let mut docs = Vec::new();
            let mut failed = false;
            for n in &a.names {
                match meta(store, n) {
                    Some(m) => docs.push(doc(store, n, &m)),
                    None => {
                        eprintln!("Error: No such volume: {n}");
                        failed = true;
                    }
                }
            }
            let mut out = std::io::stdout().lock();
            if a.format.is_empty() || a.format == "json" {
                writeln!(out, "{}", go_json_pretty_of(&docs)?)?;
            } else {
                let f = Format::new(&a.format, "")?;
                out.write_all(f.render(&Value::Null, &docs)?.as_bytes())?;
            }
            if failed {
                return Err(crate::cmd_image::Reported.into());
            }
            Ok(())
        }
        VolumeCommand::Rm(a) => {
            let mut failed = false;
            for n in &a.names {
                let r = (|| -> anyhow::Result<()> {
                    if meta(store, n).is_none() {
                        if a.force {
                            return Ok(());
                        }
                        bail!("get {n}: no such volume");
                    }
                    let used = users(store, n)?;
                    if !used.is_empty() {
                        bail!("remove {n}: volume is in use - [{}]", used.join(", "));
                    }
                    remove(store, n)?;
                    Ok(())
                })();
                match r {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!(
                            "Error response from daemon: {}",
                            crate::cmd_image::message(&e)
                        );
                        failed = true;
                    }
                }
            }
            if failed {
                return Err(crate::cmd_image::Reported.into());
            }
            Ok(())
        }
        VolumeCommand::Prune(a) => {
            if !a.force
                && !crate::cmd_image::confirm_prompt(
                    "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue?",
                )?
            {
                // docker's CLI prints the total after a "no" too.
                println!("Total reclaimed space: 0B");
                return Ok(());
            }
            let (deleted, reclaimed) = prune_unused(store)?;
            let mut out = String::new();
            if !deleted.is_empty() {
                out.push_str("Deleted Volumes:\n");
                for d in &deleted {
                    out.push_str(d);
                    out.push('\n');
                }
                out.push('\n');
            }
            println!("{out}Total reclaimed space: {}", human_size(reclaimed));
            Ok(())
        }
    }
}

/// The mounts `--volumes-from` takes: each container's volumes and binds (`mounts::volumes_from`),
/// in the order given. An unknown container is docker's `No such container: NAME`; nothing is
/// made before every one is found.
pub fn mounts_from(store: &Store, specs: &[String]) -> anyhow::Result<Vec<MountPoint>> {
    let mut out = Vec::new();
    for spec in specs {
        let (name, rw) = super::mounts::parse_volumes_from(spec)?;
        let c = store.find_container(&name).map_err(|e| match e {
            kiln_store::Error::ContainerNotFound(_) => {
                anyhow::anyhow!("Error response from daemon: No such container: {name}")
            }
            e => anyhow::Error::from(e),
        })?;
        let cfg: ContainerConfig = serde_json::from_str(&c.config)
            .with_context(|| format!("reading the config of container {name}"))?;
        out.extend(super::mounts::volumes_from(&cfg.host.mount_points, rw));
    }
    Ok(out)
}

/// The container's mounts from `--volumes-from` (`from`, from [`mounts_from`]), `-v`,
/// `--mount`, `--tmpfs` and the image's VOLUME (anonymous volumes for destinations nothing
/// else covers); volumes are made here (create time). As in docker, a later `--volumes-from`
/// mount replaces an earlier one at the same destination, and `-v`/`--mount`/`--tmpfs` replace
/// those.
pub fn resolve_mounts(
    store: &Store,
    cfg: &ContainerConfig,
    mount_flags: &[String],
    image_volumes: &[String],
    from: Vec<MountPoint>,
) -> anyhow::Result<Vec<MountPoint>> {
    let mut list = Vec::new();
    for v in &cfg.host.binds {
        list.push(parse_volume_flag(v)?);
    }
    for m in mount_flags {
        list.push(parse_mount(m)?);
    }
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    let covered = |list: &[MountPoint], d: &str| {
        list.iter().any(|m| same(&m.destination, d))
            || cfg.host.tmpfs.iter().any(|(p, _)| same(p, d))
    };
    let mut taken: Vec<MountPoint> = Vec::new();
    for m in from {
        if covered(&list, &m.destination) {
            continue;
        }
        taken.retain(|t| !same(&t.destination, &m.destination));
        taken.push(m);
    }
    list.extend(taken);
    for d in image_volumes {
        if !covered(&list, d) {
            list.push(MountPoint {
                typ: "volume".into(),
                destination: d.clone(),
                rw: true,
                anonymous: true,
                ..Default::default()
            });
        }
    }
    // Parents before children, as docker sorts them: a mount inside another one's
    // destination lands on top of it.
    list.sort_by_key(|m| m.destination.split('/').filter(|c| !c.is_empty()).count());
    let mut seen = std::collections::BTreeSet::new();
    for m in &list {
        if !seen.insert(m.destination.trim_end_matches('/').to_string()) {
            bail!("Duplicate mount point: {}", m.destination);
        }
    }
    for m in &mut list {
        if m.typ == "volume" {
            if m.anonymous && m.name.is_empty() {
                m.name = super::ids::new_id();
            }
            m.source = ensure(store, &m.name, BTreeMap::new(), m.anonymous)?
                .display()
                .to_string();
        } else if m.typ == "bind" && !Path::new(&m.source).exists() {
            // docker makes a missing host directory of a -v bind.
            std::fs::create_dir_all(&m.source).with_context(|| {
                format!("error while creating mount source path '{}'", m.source)
            })?;
        }
    }
    Ok(list)
}

/// docker's copy-up: an empty volume gets the image's content at its destination, resolved
/// inside the container's root (`openat2` with `RESOLVE_IN_ROOT`: no symlink leads out).
pub fn seed(rootfs: &Path, mounts: &[MountPoint]) -> anyhow::Result<()> {
    use std::os::fd::{AsRawFd, OwnedFd};
    for m in mounts {
        if m.typ != "volume" || m.nocopy {
            continue;
        }
        let data = Path::new(&m.source);
        if std::fs::read_dir(data)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
        {
            continue;
        }
        let root =
            std::fs::File::open(rootfs).with_context(|| format!("opening {}", rootfs.display()))?;
        let Ok(dir) = super::rootfs::open_in_root(
            &OwnedFd::from(root),
            &m.destination,
            libc::O_RDONLY | libc::O_DIRECTORY,
        ) else {
            // Nothing (or no directory) there in the image: the volume stays empty.
            continue;
        };
        let src = format!("/proc/{}/fd/{}/.", std::process::id(), dir.as_raw_fd());
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(format!("{}/", data.display()))
            .status()
            .context("running cp -a to seed a volume")?;
        if !st.success() {
            bail!(
                "copying the image's {} into volume {}: cp -a failed",
                m.destination,
                m.name
            );
        }
    }
    Ok(())
}
