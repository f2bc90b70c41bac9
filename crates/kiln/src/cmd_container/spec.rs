//! The OCI runtime spec of a container: Docker's defaults (`docker_default_spec`: capabilities,
//! masked and read-only paths, a private /dev) with the container's config applied.

use std::path::Path;

use anyhow::{Context, bail};
use kiln_runtime::oci_spec::runtime::{
    Capabilities, LinuxNamespace, LinuxNamespaceType, Spec, User,
};
use kiln_runtime::{
    Network, bind_mount, docker_default_spec, set_insecure, set_network, tmpfs_mount,
};

use super::config::{ContainerConfig, capability, parse_bind};

/// Where `--init` puts the init, as docker does.
pub const INIT_PATH: &str = "/sbin/docker-init";

/// The user the container runs as, resolved in its root.
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// `-u`/`USER` resolved through the image's /etc/passwd and /etc/group (inside `rootfs`).
pub fn identity(rootfs: &Path, user: &str) -> anyhow::Result<Identity> {
    use kiln_build::copy::passwd;
    let id = passwd::resolve_user(rootfs, user).map_err(|e| {
        let e = e.to_string();
        // The passwd errors name the user already (docker's text).
        if e.starts_with("unable to find ") {
            anyhow::anyhow!("{e}")
        } else {
            anyhow::anyhow!("unable to find user {user}: {e}")
        }
    })?;
    let home = passwd::users(rootfs)
        .ok()
        .and_then(|all| all.into_iter().find(|e| e.uid == id.uid))
        .map(|e| e.home)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into());
    let mut who = Identity {
        uid: id.uid,
        gid: id.gid,
        additional_gids: vec![id.gid],
        home,
    };
    add_groups(&mut who, id.additional_gids);
    Ok(who)
}

/// Adds `gids` to `who`'s supplementary groups, each once, in order. The primary group comes
/// first, as docker's runtime lists it (`id` in a docker container: `groups=0(root),10`).
pub fn add_groups(who: &mut Identity, gids: impl IntoIterator<Item = u32>) {
    for g in gids {
        if !who.additional_gids.contains(&g) {
            who.additional_gids.push(g);
        }
    }
}

/// `--cap-add`/`--cap-drop` over `base`, with moby's rules (`kiln_runtime::tweak_capabilities`).
fn tweak_caps(
    base: &Capabilities,
    adds: &[String],
    drops: &[String],
) -> anyhow::Result<Capabilities> {
    let is_all = |n: &String| {
        let up = n.to_ascii_uppercase();
        up == "ALL" || up == "CAP_ALL"
    };
    let named = |list: &[String]| -> anyhow::Result<Vec<_>> {
        let mut out = Vec::new();
        for n in list.iter().filter(|n| !is_all(n)) {
            out.extend(capability(n)?);
        }
        Ok(out)
    };
    Ok(kiln_runtime::tweak_capabilities(
        base,
        &kiln_runtime::all_capabilities(),
        &named(adds)?,
        &named(drops)?,
        adds.iter().any(is_all),
        drops.iter().any(is_all),
    ))
}

/// The container's network namespace, as the spec gets it.
#[derive(Debug, Clone, Copy)]
pub enum NetNs<'a> {
    /// The host's.
    Host,
    /// A new one with loopback only, made as the container's process is cloned
    /// (`--network none` with nothing published: no other process needs it).
    New,
    /// One the supervisor made and holds (pasta and the port proxy work in it), by path.
    Path(&'a Path),
}

/// The spec for `config`, with `rootfs` mounted and `etc` holding the container's hosts,
/// hostname and resolv.conf files.
pub fn build(
    config: &ContainerConfig,
    rootfs: &Path,
    etc: &Path,
    hostname: &str,
    who: &Identity,
    netns: NetNs<'_>,
) -> anyhow::Result<Spec> {
    let mut spec = docker_default_spec();
    if let Some(root) = spec.root_mut().as_mut() {
        root.set_path(rootfs.to_path_buf());
        root.set_readonly(Some(config.host.read_only));
    }
    let mut argv = config.argv();
    if config.host.init {
        // docker's --init: tini at /sbin/docker-init runs the command as its child.
        argv.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let mut env = config.env.clone();
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.insert(1.min(env.len()), format!("HOSTNAME={hostname}"));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", who.home));
    }
    {
        let process = spec
            .process_mut()
            .as_mut()
            .context("default spec has a process")?;
        process.set_args(Some(argv));
        if config.tty {
            process.set_terminal(Some(true));
            if let Some((rows, cols)) = config.host.console_size {
                let size = kiln_runtime::oci_spec::runtime::BoxBuilder::default()
                    .height(u64::from(rows))
                    .width(u64::from(cols))
                    .build()?;
                process.set_console_size(Some(size));
            }
            if !env.iter().any(|e| e.starts_with("TERM=")) {
                env.push("TERM=xterm".into());
            }
        }
        process.set_env(Some(env.clone()));
        let cwd = if config.working_dir.is_empty() {
            "/"
        } else {
            &config.working_dir
        };
        process.set_cwd(cwd.into());
        let mut user = User::default();
        user.set_uid(who.uid);
        user.set_gid(who.gid);
        user.set_additional_gids(Some(who.additional_gids.clone()));
        process.set_user(user);
        process.set_no_new_privileges(Some(config.no_new_privileges()));
        if !config.host.cap_add.is_empty() || !config.host.cap_drop.is_empty() {
            let mut caps = process.capabilities().clone().unwrap_or_default();
            let base: Capabilities = caps.bounding().clone().unwrap_or_default();
            let set = tweak_caps(&base, &config.host.cap_add, &config.host.cap_drop)?;
            caps.set_bounding(Some(set.clone()));
            caps.set_effective(Some(set.clone()));
            caps.set_permitted(Some(set));
            process.set_capabilities(Some(caps));
        }
    }
    spec.set_hostname(Some(hostname.to_string()));
    // The host's network, a new namespace with loopback only, or the namespace the supervisor
    // made (joined by path).
    set_network(
        &mut spec,
        if matches!(netns, NetNs::New) {
            Network::None
        } else {
            Network::Host
        },
    );
    if let NetNs::Path(path) = netns
        && let Some(linux) = spec.linux_mut()
    {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(LinuxNamespaceType::Network);
        ns.set_path(Some(path.to_path_buf()));
        let mut list = linux.namespaces().clone().unwrap_or_default();
        list.push(ns);
        linux.set_namespaces(Some(list));
    }
    let mounts = spec.mounts_mut().get_or_insert_with(Vec::new);
    for f in ["hosts", "hostname", "resolv.conf"] {
        mounts.push(bind_mount(etc.join(f), format!("/etc/{f}"), false));
    }
    for (path, opts) in &config.host.tmpfs {
        // docker's tmpfs defaults (noexec, nosuid, nodev); the user's options after them win.
        let mut o: Vec<&str> = vec!["noexec"];
        o.extend(opts.split(',').filter(|s| !s.is_empty()));
        if !o.iter().any(|s| s.starts_with("mode=")) {
            o.push("mode=1777");
        }
        mounts.push(tmpfs_mount(path.as_str(), &o));
    }
    for m in &config.host.mount_points {
        match m.typ.as_str() {
            "tmpfs" => {
                let mut o: Vec<&str> = vec!["noexec"];
                o.extend(m.options.iter().map(String::as_str));
                if !m.rw {
                    o.push("ro");
                }
                if !o.iter().any(|s| s.starts_with("mode=")) {
                    o.push("mode=1777");
                }
                mounts.push(tmpfs_mount(m.destination.as_str(), &o));
            }
            // The runtime resolves the destination inside the root (no symlink leads out).
            _ => mounts.push(bind_mount(m.source.as_str(), m.destination.as_str(), !m.rw)),
        }
    }
    // A container made before mounts were resolved at create time: its -v binds.
    let legacy = if config.host.mount_points.is_empty() {
        config.host.binds.as_slice()
    } else {
        &[]
    };
    for b in legacy {
        let b = parse_bind(b)?;
        if !b.source.exists() {
            // docker makes a missing host directory of a -v bind.
            std::fs::create_dir_all(&b.source).with_context(|| {
                format!(
                    "error while creating mount source path '{}'",
                    b.source.display()
                )
            })?;
        }
        mounts.push(bind_mount(b.source, b.dest.as_str(), b.readonly));
    }
    if config.host.init {
        let tini = super::config::init_binary().with_context(|| {
            format!(
                "--init: no init binary found (install Debian's tini package for {})",
                super::config::INIT_CANDIDATES[0]
            )
        })?;
        mounts.push(bind_mount(tini, INIT_PATH, true));
    }
    if config.host.privileged {
        set_insecure(&mut spec);
    } else if config.systempaths_unconfined()
        && let Some(linux) = spec.linux_mut()
    {
        linux.set_masked_paths(Some(Vec::new()));
        linux.set_readonly_paths(Some(Vec::new()));
    }
    // After the capabilities are final: docker's rules depend on the bounding set.
    kiln_runtime::seccomp::set_seccomp(&mut spec, config.seccomp_profile()?.as_ref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let h = &config.host;
    super::run_flags::apply(
        &mut spec,
        &super::run_flags::SpecFlags {
            ulimits: &h.ulimits,
            shm_size: h.shm_size,
            privileged: h.privileged,
            devices: &h.devices,
        },
    )?;
    if config.argv().is_empty() {
        bail!("No command specified");
    }
    Ok(spec)
}
