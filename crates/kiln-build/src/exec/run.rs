//! RUN: a container on the step's merged rootfs, with BuildKit's defaults (Docker's
//! capabilities, /proc, /dev, read-only /sys, the host's /etc/hosts and /etc/resolv.conf
//! provided but never committed) and the step's `--mount`s.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kiln_dockerfile::{MountType, Sharing};
use kiln_runtime::oci_spec::runtime::{Mount, PosixRlimitBuilder, Spec};
use kiln_runtime::{
    Executor, MountStubs, Network, Stdio, bind_mount, docker_default_spec, set_network, tmpfs_mount,
};

use crate::error::{BuildError, Result};
use crate::event::{ECHO_LIMIT, Event, EventSink};
use crate::exec::ExecCtx;
use crate::options::SecretSource;
use crate::plan::{LocalDir, MountSource, RunOp, StepIndex};
use crate::rootfs::Scratch;

const OUTPUT_TAIL_LINES: usize = 20;

/// Most bytes of one step's output streamed to the progress display; then one line says the
/// log was clipped and the rest is not shown (BuildKit's default limit and message). The
/// error of a failing step still gets the last lines.
pub(crate) const LOG_LIMIT: usize = 2 << 20;
pub(crate) const LOG_CLIPPED: &str = "[output clipped, log limit 2MiB reached]\n";

/// The last [`OUTPUT_TAIL_LINES`] lines a step printed, each cut to [`ECHO_LIMIT`] bytes
/// with its size (a failing step's error repeats them: a 10 MB line must not come twice).
#[derive(Debug, Default)]
struct OutputTail {
    lines: VecDeque<String>,
    /// The first bytes of the line being read, and its length so far.
    head: Vec<u8>,
    len: usize,
}

impl OutputTail {
    /// More of the current line (no newline in `bytes`).
    fn push(&mut self, bytes: &[u8]) {
        // A few bytes over the limit, so that a character across it is whole.
        let keep = (ECHO_LIMIT + 4)
            .saturating_sub(self.head.len())
            .min(bytes.len());
        self.head.extend_from_slice(&bytes[..keep]);
        self.len += bytes.len();
    }

    fn end_line(&mut self) {
        let text = String::from_utf8_lossy(&self.head);
        let line = if self.len <= ECHO_LIMIT {
            text.trim_end().to_string()
        } else {
            crate::event::clip_head(&text, self.len)
        };
        if self.lines.len() == OUTPUT_TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
        self.head.clear();
        self.len = 0;
    }

    /// The lines, the last one even without a newline.
    fn finish(mut self) -> String {
        if self.len > 0 {
            self.end_line();
        }
        Vec::from(self.lines).join("\n")
    }
}

/// Read a step's output to the end: stream it as [`Event::StepOutput`] (whole lines, up to
/// [`LOG_LIMIT`] bytes, then [`LOG_CLIPPED`] and nothing more) and keep its last lines.
/// Memory stays bounded whatever the step prints, with or without newlines.
fn pump_output(r: impl Read, step: StepIndex, events: &EventSink) -> OutputTail {
    let mut r = BufReader::with_capacity(64 << 10, r);
    let mut tail = OutputTail::default();
    // The current line's bytes not sent yet (at most what is left of the limit).
    let mut pending: Vec<u8> = Vec::new();
    let mut sent = 0usize;
    let mut clipped = false;
    loop {
        let buf = match r.fill_buf() {
            Ok([]) => break,
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let newline = buf.iter().position(|&c| c == b'\n');
        let chunk = match newline {
            Some(p) => &buf[..=p],
            None => buf,
        };
        let n = chunk.len();
        tail.push(&chunk[..n - usize::from(newline.is_some())]);
        if newline.is_some() {
            tail.end_line();
        }
        if !clipped {
            let room = LOG_LIMIT - sent - pending.len();
            if n <= room {
                pending.extend_from_slice(chunk);
                if newline.is_some() {
                    sent += pending.len();
                    events.send(Event::StepOutput {
                        step,
                        data: std::mem::take(&mut pending),
                    });
                }
            } else {
                pending.extend_from_slice(&chunk[..room]);
                if !pending.is_empty() {
                    events.send(Event::StepOutput {
                        step,
                        data: std::mem::take(&mut pending),
                    });
                }
                events.send(Event::StepOutput {
                    step,
                    data: LOG_CLIPPED.as_bytes().to_vec(),
                });
                clipped = true;
            }
        }
        r.consume(n);
    }
    if !pending.is_empty() {
        events.send(Event::StepOutput {
            step,
            data: pending,
        });
    }
    tail
}

pub fn run(
    b: &ExecCtx<'_>,
    i: StepIndex,
    r: &RunOp,
    merged: &Path,
    scratch: &mut Scratch,
) -> Result<()> {
    let mut spec = process_spec(b, i, r, merged)?;
    let mut ms = RunMounts {
        list: spec.mounts().clone().unwrap_or_default(),
        ..RunMounts::default()
    };
    if let Some(size) = b.opts.shm_size {
        set_shm_size(&mut ms.list, size);
    }
    ms.network_files(b, scratch)?;
    let mut image_root = None;
    for m in &r.mounts {
        let target = mount_target(b, i, r, m, merged, &mut image_root)?;
        ms.targets.push(target.clone());
        let mm = &m.mount;
        match mm.kind {
            MountType::Cache => ms.cache(b, i, m, &target, scratch)?,
            MountType::Tmpfs => {
                let mut opts = vec!["nosuid".to_string(), "nodev".to_string()];
                // `ro` on a tmpfs is honoured, as on any other mount.
                if mm.readonly {
                    opts.push("ro".to_string());
                }
                if let Some(s) = mm.size {
                    opts.push(format!("size={s}"));
                }
                let o: Vec<&str> = opts.iter().map(String::as_str).collect();
                ms.list.push(tmpfs_mount(&target, &o));
            }
            MountType::Bind => {
                let host = bind_source(b, i, m, scratch, &mut ms.guards)?;
                ms.list.push(bind_mount(host, &target, mm.readonly));
            }
            MountType::Secret => ms.secret(b, i, mm, &target, scratch)?,
            MountType::Ssh => ms.ssh(b, i, mm, &target, scratch)?,
        }
    }
    if !r.scripts.is_empty() {
        let dir = scratch.dir(b.store)?;
        for (name, content) in &r.scripts {
            let p = dir.join(name);
            std::fs::write(&p, content).map_err(|e| BuildError::io("writing script", &p, e))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| BuildError::io("chmod", &p, e))?;
        }
        ms.list.push(bind_mount(dir, "/dev/pipes", true));
    }
    if !ms.secret_env.is_empty() {
        let process = spec.process_mut().as_mut().expect("process");
        let mut env = process.env().clone().unwrap_or_default();
        env.extend(std::mem::take(&mut ms.secret_env));
        process.set_env(Some(env));
    }
    absolute_bind_sources(&mut ms.list)?;
    spec.set_mounts(Some(std::mem::take(&mut ms.list)));

    let stubs = MountStubs::scan(merged, &ms.stub_targets);
    let network_stubs = MountStubs::scan_targets_only(merged, &ms.network_file_targets);
    let result = run_container(b, i, &spec, &ms.targets);
    stubs.remove();
    network_stubs.remove();
    drop(ms);
    result
}

/// The container's spec without mounts: docker's defaults, the rootfs, hostname, network,
/// the process (command, environment, working directory, user) and `--ulimit`s.
fn process_spec(b: &ExecCtx<'_>, i: StepIndex, r: &RunOp, merged: &Path) -> Result<Spec> {
    let mut spec = docker_default_spec();
    spec.root_mut()
        .as_mut()
        .expect("default spec has a root")
        .set_path(merged.to_path_buf());
    spec.set_hostname(Some("buildkitsandbox".into()));
    if r.insecure {
        kiln_runtime::set_insecure(&mut spec);
    }
    set_network(
        &mut spec,
        if r.network == kiln_dockerfile::ast::NetworkMode::None {
            Network::None
        } else {
            Network::Host
        },
    );
    let ident = if r.user.is_empty() {
        crate::rootfs::passwd::Identity {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
        }
    } else {
        crate::rootfs::passwd::resolve_user(merged, &r.user)
            .map_err(|e| step_err(b, i, e.to_string(), String::new()))?
    };
    let process = spec
        .process_mut()
        .as_mut()
        .expect("default spec has a process");
    process.set_args(Some(r.args.clone()));
    process.set_env(Some(
        r.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    ));
    process.set_cwd(PathBuf::from(&r.cwd));
    let mut user = kiln_runtime::oci_spec::runtime::User::default();
    user.set_uid(ident.uid);
    user.set_gid(ident.gid);
    if !ident.additional_gids.is_empty() {
        user.set_additional_gids(Some(ident.additional_gids.clone()));
    }
    process.set_user(user);
    apply_ulimits(&mut spec, &b.opts.ulimits);
    Ok(spec)
}

/// A `--mount`'s target, absolute (a relative one is below the working directory, as in
/// BuildKit; none, a secret or ssh mount's default path, stays empty), refused where it
/// would hide what the container must keep, as written or as it resolves in the image.
fn mount_target(
    b: &ExecCtx<'_>,
    i: StepIndex,
    r: &RunOp,
    m: &crate::plan::RunMount,
    merged: &Path,
    image_root: &mut Option<crate::rootfs::path::Root>,
) -> Result<String> {
    let target = match &m.mount.target {
        Some(t) if !t.starts_with('/') => format!(
            "/{}",
            crate::rootfs::path::clean_rel(&format!("{}/{t}", r.cwd))
        ),
        Some(t) => t.clone(),
        None => return Ok(String::new()),
    };
    if let Some(why) = refused_target(&target) {
        return Err(step_err(b, i, why, String::new()));
    }
    if image_root.is_none() {
        *image_root = Some(
            crate::rootfs::path::Root::open(merged)
                .map_err(|e| BuildError::io("opening the rootfs", merged, e))?,
        );
    }
    if let Some(root) = image_root
        && let Some(why) = refused_in_image(root, &target)
    {
        return Err(step_err(b, i, why, String::new()));
    }
    Ok(target)
}

/// Sources under a relative store root or context (`kiln build .`, `--root ./r`) made
/// absolute, once: the runtime takes only absolute bind sources.
fn absolute_bind_sources(mounts: &mut [Mount]) -> Result<()> {
    for m in mounts {
        if let Some(src) = m.source().clone()
            && src.is_relative()
            && m.typ().as_deref() == Some("bind")
        {
            let abs = std::path::absolute(&src)
                .map_err(|e| BuildError::io("resolving mount source", &src, e))?;
            m.set_source(Some(abs));
        }
    }
    Ok(())
}

/// The mounts of one RUN as they are gathered, and what they hold until the command ends.
#[derive(Default)]
struct RunMounts {
    list: Vec<Mount>,
    /// Files the build provides but must not commit; their stubs are removed afterwards.
    stub_targets: Vec<PathBuf>,
    /// The same for the network files: only the files (BuildKit leaves the `/etc` it made).
    network_file_targets: Vec<PathBuf>,
    /// Environment the command gets but the image and cache key never see.
    secret_env: Vec<String>,
    ssh_mounts: usize,
    /// The `--mount` targets, absolute, to word the runtime's refusals.
    targets: Vec<String>,
    /// Mounts, snapshots and agent proxies the mounts need while the command runs.
    guards: Vec<Box<dyn std::any::Any>>,
    /// Locks of `sharing=locked|private` cache directories.
    locks: Vec<std::fs::File>,
}

impl RunMounts {
    /// The host's `/etc/resolv.conf`, and `/etc/hosts` (or one with `--add-host`s).
    fn network_files(&mut self, b: &ExecCtx<'_>, scratch: &mut Scratch) -> Result<()> {
        if Path::new("/etc/resolv.conf").exists() {
            self.list
                .push(bind_mount("/etc/resolv.conf", "/etc/resolv.conf", true));
            self.network_file_targets
                .push(PathBuf::from("/etc/resolv.conf"));
        }
        if !b.opts.extra_hosts.is_empty() {
            let file = scratch.dir(b.store)?.join("hosts");
            std::fs::write(&file, hosts_file(&b.opts.extra_hosts))
                .map_err(|e| BuildError::io("writing", &file, e))?;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))
                .map_err(|e| BuildError::io("chmod", &file, e))?;
            self.list.push(bind_mount(file, "/etc/hosts", true));
            self.network_file_targets.push(PathBuf::from("/etc/hosts"));
        } else if Path::new("/etc/hosts").exists() {
            self.list.push(bind_mount("/etc/hosts", "/etc/hosts", true));
            self.network_file_targets.push(PathBuf::from("/etc/hosts"));
        }
        Ok(())
    }

    /// `type=cache`: a directory kept across builds under the store, seeded on first use.
    fn cache(
        &mut self,
        b: &ExecCtx<'_>,
        i: StepIndex,
        m: &crate::plan::RunMount,
        target: &str,
        scratch: &mut Scratch,
    ) -> Result<()> {
        let mm = &m.mount;
        let id = mm.id.clone().unwrap_or_else(|| target.to_string());
        // With `from=`, the seed is part of the cache's identity, as in BuildKit: the same id
        // seeded from other content is another cache.
        let seed = crate::key::seed_identity(b.keys, m)
            .map_err(|e| step_err(b, i, format!("cache mount {target}: {e}"), String::new()))?;
        let dir = cache_mount_dir(b, &id, seed.as_deref())?;
        if seed.is_some() && !dir.exists() {
            seed_cache_dir(b, i, m, &dir, scratch, &mut self.guards)?;
        }
        prepare_cache_dir(&dir, mm.uid, mm.gid, mm.mode)?;
        if matches!(mm.sharing, Some(Sharing::Locked) | Some(Sharing::Private)) {
            self.locks.push(lock_dir(&dir)?);
        }
        self.list.push(bind_mount(dir, target, mm.readonly));
        Ok(())
    }

    /// `type=secret`: a `--secret` as a file (and/or an environment variable).
    fn secret(
        &mut self,
        b: &ExecCtx<'_>,
        i: StepIndex,
        mm: &kiln_dockerfile::Mount,
        target: &str,
        scratch: &mut Scratch,
    ) -> Result<()> {
        let id = mm.id.clone().or_else(|| {
            mm.target.as_ref().and_then(|t| {
                Path::new(t)
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
            })
        });
        let Some(id) = id else {
            return Err(step_err(
                b,
                i,
                "secret mount needs id= or target=".into(),
                String::new(),
            ));
        };
        let value = match b.opts.secrets.get(&id) {
            Some(SecretSource::File(p)) => {
                Some(std::fs::read(p).map_err(|e| BuildError::io("reading secret", p, e))?)
            }
            Some(SecretSource::Env(v)) => std::env::var(v).ok().map(String::into_bytes),
            None => None,
        };
        let Some(value) = value else {
            if mm.required {
                return Err(step_err(
                    b,
                    i,
                    format!("secret {id} not found: pass it with --secret id={id},src=FILE"),
                    String::new(),
                ));
            }
            return Ok(());
        };
        if let Some(var) = &mm.env {
            self.secret_env
                .push(format!("{var}={}", String::from_utf8_lossy(&value)));
            if mm.target.is_none() {
                return Ok(());
            }
        }
        let dir = scratch.dir(b.store)?;
        let file = dir.join("secret");
        std::fs::write(&file, &value).map_err(|e| BuildError::io("writing secret", &file, e))?;
        let mode = mm.mode.unwrap_or(0o400);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
            .map_err(|e| BuildError::io("chmod", &file, e))?;
        chown(&file, Some(mm.uid.unwrap_or(0)), Some(mm.gid.unwrap_or(0)))
            .map_err(|e| BuildError::io("chown", &file, e))?;
        let tgt = if mm.target.is_some() {
            target.to_string()
        } else {
            format!("/run/secrets/{id}")
        };
        self.stub_targets.push(PathBuf::from(&tgt));
        self.list.push(bind_mount(file, &tgt, true));
        Ok(())
    }

    /// `type=ssh`: a proxy of a `--ssh` agent socket, owned as the mount asks.
    fn ssh(
        &mut self,
        b: &ExecCtx<'_>,
        i: StepIndex,
        mm: &kiln_dockerfile::Mount,
        target: &str,
        scratch: &mut Scratch,
    ) -> Result<()> {
        let id = mm.id.clone().unwrap_or_else(|| "default".into());
        let Some(agent) = b.opts.ssh.get(&id) else {
            if mm.required {
                return Err(step_err(
                    b,
                    i,
                    format!(
                        "no SSH agent socket for id {id:?}: pass --ssh {id}=SOCKET (or --ssh default with SSH_AUTH_SOCK set)"
                    ),
                    String::new(),
                ));
            }
            return Ok(());
        };
        let dir = scratch.dir(b.store)?;
        let proxy = crate::inputs::ssh::AgentProxy::start(
            agent,
            &dir,
            mm.uid.unwrap_or(0),
            mm.gid.unwrap_or(0),
            mm.mode.unwrap_or(0o600),
        )
        .map_err(|e| BuildError::io("forwarding the SSH agent", agent, e))?;
        let tgt = if mm.target.is_some() {
            target.to_string()
        } else {
            format!("/run/buildkit/ssh_agent.{}", self.ssh_mounts)
        };
        // BuildKit points SSH_AUTH_SOCK at the first ssh mount.
        if self.ssh_mounts == 0 {
            self.secret_env.push(format!("SSH_AUTH_SOCK={tgt}"));
        }
        self.ssh_mounts += 1;
        self.stub_targets.push(PathBuf::from(&tgt));
        self.list
            .push(bind_mount(proxy.path().to_path_buf(), &tgt, false));
        self.guards.push(Box::new(proxy));
        Ok(())
    }
}

/// `--ulimit`: each replaces the spec's limit of the same resource (BuildKit's `nofile`
/// default included) or is added.
fn apply_ulimits(spec: &mut Spec, ulimits: &[crate::options::Ulimit]) {
    if ulimits.is_empty() {
        return;
    }
    let process = spec
        .process_mut()
        .as_mut()
        .expect("default spec has a process");
    let mut limits = process.rlimits().clone().unwrap_or_default();
    for u in ulimits {
        limits.retain(|l| l.typ() != u.resource);
        // The builder cannot fail with every field set.
        if let Ok(l) = PosixRlimitBuilder::default()
            .typ(u.resource)
            .soft(u.soft)
            .hard(u.hard)
            .build()
        {
            limits.push(l);
        }
    }
    process.set_rlimits(Some(limits));
}

/// `--shm-size`: the `size=` of the default `/dev/shm` tmpfs.
fn set_shm_size(mounts: &mut [Mount], bytes: u64) {
    for m in mounts
        .iter_mut()
        .filter(|m| m.destination() == Path::new("/dev/shm"))
    {
        let mut opts: Vec<String> = m.options().clone().unwrap_or_default();
        opts.retain(|o| !o.starts_with("size="));
        opts.push(format!("size={bytes}"));
        m.set_options(Some(opts));
    }
}

/// The `/etc/hosts` of a RUN with `--add-host`: the host's file (RUN shares the host's
/// network, so its names stay right), then the added names, as BuildKit appends them.
fn hosts_file(extra: &[crate::options::ExtraHost]) -> String {
    let mut s = std::fs::read_to_string("/etc/hosts").unwrap_or_else(|_| {
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".into()
    });
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    for h in extra {
        s.push_str(&format!("{}\t{}\n", h.ip, h.name));
    }
    s
}

/// The host path a `type=bind` mount attaches: a file or directory of the build context
/// (a `.dockerignore`-filtered view when it hides anything below the source), of a stage or of
/// an image; with `rw`, a throwaway copy-on-write layer over it (writes are discarded, as in
/// BuildKit).
fn bind_source(
    b: &ExecCtx<'_>,
    i: StepIndex,
    m: &crate::plan::RunMount,
    scratch: &mut Scratch,
    guards: &mut Vec<Box<dyn std::any::Any>>,
) -> Result<PathBuf> {
    let mm = &m.mount;
    let target = mm.target.clone().unwrap_or_default();
    let src_rel = mm.source.clone().unwrap_or_else(|| "/".into());
    // Holds the whiteout layer's tmpfs until the overlay over it is gone (pushed after it).
    let mut whiteouts = None;
    // Top layer first; one entry is a plain bind.
    let lowers: Vec<PathBuf> = match &m.source {
        None | Some(MountSource::Context(_)) => {
            let dir = match &m.source {
                Some(MountSource::Context(d)) => d.clone(),
                _ => LocalDir::Main,
            };
            let (lowers, w) = context_lowers(b, i, &dir, &target, &src_rel, scratch)?;
            whiteouts = w;
            lowers
        }
        Some(MountSource::Stage(_)) | Some(MountSource::Image(_)) => {
            stage_lowers(b, i, m, &target, &src_rel, guards)?
        }
    };
    let top = &lowers[0];
    let is_dir = lowers.len() > 1 || top.is_dir();
    if mm.readonly {
        if lowers.len() == 1 {
            return Ok(lowers[0].clone());
        }
        let view = crate::rootfs::snapshotter(b.store)
            .view(&lowers)
            .map_err(|e| bind_mount_err(e, &target, false))?;
        let tgt = view.rootfs().to_path_buf();
        guards.push(Box::new(view));
        guards.push(Box::new(whiteouts));
        return Ok(tgt);
    }
    // A writable bind mount writes to a throwaway copy-on-write layer.
    if !is_dir {
        let copy = scratch.dir(b.store)?.join("file");
        std::fs::copy(top, &copy).map_err(|e| BuildError::io("copying", top, e))?;
        return Ok(copy);
    }
    // Thrown away after the step (dropped with `guards`): never worth a sync.
    let active = crate::rootfs::snapshotter(b.store)
        .prepare(&lowers, &kiln_snapshot::OverlayOptions { volatile: true })
        .map_err(|e| bind_mount_err(e, &target, true))?;
    let tgt = active.rootfs().to_path_buf();
    guards.push(Box::new(active));
    guards.push(Box::new(whiteouts));
    Ok(tgt)
}

fn source_not_found(
    b: &ExecCtx<'_>,
    i: StepIndex,
    target: &str,
    src_rel: &str,
    why: &str,
) -> BuildError {
    step_err(
        b,
        i,
        format!("failed to mount {target}: source {src_rel:?} not found{why}"),
        String::new(),
    )
}

/// The layers (top first) of a bind mount of a local directory: the source as `.dockerignore`
/// leaves it, so what it hides below the source is covered by a tmpfs layer of whiteouts
/// (returned too: it must outlive the overlay over it).
fn context_lowers(
    b: &ExecCtx<'_>,
    i: StepIndex,
    dir: &LocalDir,
    target: &str,
    src_rel: &str,
    scratch: &mut Scratch,
) -> Result<(
    Vec<PathBuf>,
    Option<crate::inputs::context::view::WhiteoutLayer>,
)> {
    let open = b.local(dir)?;
    let tree = open.context.tree();
    // Resolved as COPY resolves: what `.dockerignore` hides does not exist.
    let res = tree
        .resolve(src_rel, true)
        .map_err(|e| step_err(b, i, format!("mount source {src_rel}: {e}"), String::new()))?;
    if !res.exists {
        let hidden =
            crate::rootfs::path::resolve(tree.root().fd(), src_rel.as_bytes(), true, &|_| true)
                .is_ok_and(|r| r.exists);
        return Err(source_not_found(
            b,
            i,
            target,
            src_rel,
            if hidden {
                " (excluded by .dockerignore)"
            } else {
                ""
            },
        ));
    }
    let host = tree.root().host_path(&res.rel);
    let is_dir = tree.stat(&res.rel)?.is_dir();
    let masks = if is_dir {
        tree.hidden_below(&res.rel)?
    } else {
        Vec::new()
    };
    if masks.is_empty() {
        Ok((vec![host], None))
    } else {
        let layer = scratch.dir(b.store)?;
        let tmpfs = crate::inputs::context::view::WhiteoutLayer::mount(&layer)
            .map_err(|e| BuildError::io("mounting a tmpfs on", &layer, e))?;
        crate::inputs::context::view::write_whiteouts(tree, &res.rel, &masks, tmpfs.path())
            .map_err(|source| BuildError::MountView {
                target: target.to_string(),
                source,
            })?;
        Ok((vec![layer, host], Some(tmpfs)))
    }
}

/// The layer of a bind mount `from=` a stage or image: the source inside a read-only view of
/// its chain (the view is kept in `guards`).
fn stage_lowers(
    b: &ExecCtx<'_>,
    i: StepIndex,
    m: &crate::plan::RunMount,
    target: &str,
    src_rel: &str,
    guards: &mut Vec<Box<dyn std::any::Any>>,
) -> Result<Vec<PathBuf>> {
    let chain = match &m.source {
        Some(MountSource::Stage(s)) => b.chains.stage_chain(*s)?,
        Some(MountSource::Image(idx)) => b.chains.image_chain(&b.plan.images[*idx].id)?,
        _ => unreachable!("stage_lowers is called for stage and image mounts"),
    };
    let view = crate::rootfs::view(b.store, &chain)?;
    let base = view.rootfs().to_path_buf();
    guards.push(Box::new(view));
    let root = crate::rootfs::path::Root::open(&base)
        .map_err(|e| BuildError::io("opening mount source", &base, e))?;
    let res = crate::rootfs::path::resolve(root.fd(), src_rel.as_bytes(), true, &|_| true)
        .map_err(|e| step_err(b, i, format!("mount source {src_rel}: {e}"), String::new()))?;
    if !res.exists {
        return Err(source_not_found(b, i, target, src_rel, ""));
    }
    Ok(vec![root.host_path(&res.rel)])
}

/// A mount error of a bind mount's source, named by its target.
fn bind_mount_err(e: BuildError, target: &str, rw: bool) -> BuildError {
    match e {
        BuildError::Mount(source) => BuildError::BindMount {
            target: target.to_string(),
            rw,
            source: Box::new(source),
        },
        e => e,
    }
}

/// Mount targets a RUN may not use. BuildKit hands its mounts to runc, which refuses any
/// mount below `/proc` and anything but procfs on it; kiln refuses the same, `/sys` and
/// everything below `/sys`, `/dev` itself and the root: the container's masked and read-only
/// paths, its device nodes and `/dev/pts` live there, and a mount over them would silently drop
/// those protections (or, over `/proc`, break the runtime's own setup; over `/`, hide the whole
/// image). Mounts below `/dev` (`/dev/shm`) stay allowed. This checks the target as written;
/// [`refused_in_image`] checks where it resolves among the image's files (a symlink such as
/// `/d -> /dev`), and the embedded runtime where it resolves at mount time
/// ([`refused_resolution`] words that refusal).
fn refused_target(target: &str) -> Option<String> {
    let clean = crate::rootfs::path::clean_rel(target);
    let top = clean.split('/').next().unwrap_or("");
    let refused = match top {
        "" => true,
        "proc" | "sys" => true,
        "dev" => clean == "dev",
        _ => false,
    };
    refused.then(|| {
        format!("--mount target {target:?}: mounts on /{clean} are not allowed ({REFUSED_TARGETS})")
    })
}

const REFUSED_TARGETS: &str = "/, /proc, /sys and everything below /proc and /sys, and /dev \
                               itself, are the container's own";

/// The runtime's refusal of a mount whose destination resolved inside the root to a place no
/// mount may cover, worded for the `--mount` whose target it is (None for any other error, or
/// for a mount of the default spec redirected by the image's own symlinks).
fn refused_resolution(e: &kiln_runtime::RuntimeError, targets: &[String]) -> Option<String> {
    let kiln_runtime::RuntimeError::MountDestination {
        destination,
        resolved,
        ..
    } = e
    else {
        return None;
    };
    let target = targets.iter().find(|t| Path::new(t) == destination)?;
    Some(resolution_message(target, &resolved.to_string_lossy()))
}

/// The runtime's check of where a target resolves, made here as well against the image's own
/// files (symlinks followed inside the root, `..` clamped): an external runtime such as runc
/// checks only `/proc`, and this gives every executor the same refusal before anything runs.
/// Targets below an earlier `--mount` resolve through it, which only the embedded runtime sees.
fn refused_in_image(root: &crate::rootfs::path::Root, target: &str) -> Option<String> {
    let res = crate::rootfs::path::resolve(root.fd(), target.as_bytes(), true, &|_| true).ok()?;
    let resolved = format!("/{}", res.rel.to_string_lossy());
    refused_target(&resolved)?;
    Some(resolution_message(target, &resolved))
}

fn resolution_message(target: &str, resolved: &str) -> String {
    format!(
        "--mount target {target:?} resolves to {resolved} in the container (symlinks followed): \
         mounts on {resolved} are not allowed ({REFUSED_TARGETS})"
    )
}

fn step_err(b: &ExecCtx<'_>, i: StepIndex, message: String, output: String) -> BuildError {
    let s = &b.plan.steps[i];
    BuildError::Step {
        step: s.name.clone(),
        line: s.line,
        message,
        output,
    }
}

fn cache_mount_dir(b: &ExecCtx<'_>, id: &str, seed: Option<&str>) -> Result<PathBuf> {
    Ok(cache_mount_path(b.store, id, seed))
}

/// The directory of cache mount `id` (with its `from=` seed identity) in the store.
pub(crate) fn cache_mount_path(store: &kiln_store::Store, id: &str, seed: Option<&str>) -> PathBuf {
    let mut k = crate::encoder::KeyBuilder::new("cache-mount");
    k.field("id", id);
    // Only with a seed, so that every unseeded cache keeps its directory.
    if let Some(s) = seed {
        k.field("seed", s);
    }
    let k = k.finish();
    store.root().join("cache-mounts-v1").join(&k[7..39])
}

/// The `RUN --mount=type=cache` mounts of `r` as (id, directory in the store).
pub(crate) fn cache_mount_dirs(
    store: &kiln_store::Store,
    keys: &dyn crate::key::KeyInputs,
    r: &crate::plan::RunOp,
) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for m in &r.mounts {
        if m.mount.kind != MountType::Cache {
            continue;
        }
        // The target as `mount_target` resolves it (relative to the RUN's workdir).
        let target = match &m.mount.target {
            Some(t) if !t.starts_with('/') => format!(
                "/{}",
                crate::rootfs::path::clean_rel(&format!("{}/{t}", r.cwd))
            ),
            Some(t) => t.clone(),
            None => String::new(),
        };
        let id = m.mount.id.clone().unwrap_or(target);
        let seed = crate::key::seed_identity(keys, m)?;
        let dir = cache_mount_path(store, &id, seed.as_deref());
        out.push((id, dir));
    }
    Ok(out)
}

/// Create a new cache mount's directory as a copy of its `from=` seed (the `source` of that
/// stage, image or context, resolved inside it as a bind mount's is), with owners, modes,
/// times, xattrs and hard links kept (`cp -a`); `uid`/`gid`/`mode` given on the mount then
/// apply to its top. The copy is made beside the directory and renamed into place, so a
/// concurrent build sees either no cache or the whole seed.
fn seed_cache_dir(
    b: &ExecCtx<'_>,
    i: StepIndex,
    m: &crate::plan::RunMount,
    dir: &Path,
    scratch: &mut Scratch,
    guards: &mut Vec<Box<dyn std::any::Any>>,
) -> Result<()> {
    let mm = &m.mount;
    let target = mm.target.clone().unwrap_or_default();
    let mut ro = m.clone();
    ro.mount.readonly = true;
    let src = bind_source(b, i, &ro, scratch, guards)?;
    if !src.is_dir() {
        return Err(step_err(
            b,
            i,
            format!(
                "cache mount {target}: source {:?} is not a directory",
                mm.source.as_deref().unwrap_or("/")
            ),
            String::new(),
        ));
    }
    let parent = dir.parent().expect("cache dirs are below the store");
    std::fs::create_dir_all(parent).map_err(|e| BuildError::io("creating", parent, e))?;
    let tmp = parent.join(format!(
        ".seed-{}-{}",
        std::process::id(),
        dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg("--no-target-directory")
        .arg(&src)
        .arg(&tmp)
        .output()
        .map_err(|e| BuildError::io("running cp -a to seed the cache mount from", &src, e))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(step_err(
            b,
            i,
            format!(
                "cache mount {target}: copying the seed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            String::new(),
        ));
    }
    if let Some(mode) = mm.mode {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .map_err(|e| BuildError::io("chmod", &tmp, e))?;
    }
    if mm.uid.is_some() || mm.gid.is_some() {
        chown(&tmp, mm.uid, mm.gid).map_err(|e| BuildError::io("chown", &tmp, e))?;
    }
    if std::fs::rename(&tmp, dir).is_err() {
        // Another build made it first: its copy is the cache.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.is_dir() {
            return Err(BuildError::io(
                "creating cache mount",
                dir,
                std::io::Error::other("rename failed"),
            ));
        }
    }
    Ok(())
}

fn prepare_cache_dir(
    dir: &Path,
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
) -> Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| BuildError::io("creating cache mount", dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode.unwrap_or(0o755)))
            .map_err(|e| BuildError::io("chmod", dir, e))?;
        chown(dir, Some(uid.unwrap_or(0)), Some(gid.unwrap_or(0)))
            .map_err(|e| BuildError::io("chown", dir, e))?;
    }
    Ok(())
}

fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    let f = std::fs::File::open(dir).map_err(|e| BuildError::io("opening", dir, e))?;
    // SAFETY: flock on a valid fd we own.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
    if rc != 0 {
        return Err(BuildError::io(
            "locking cache mount",
            dir,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(f)
}

fn run_container(b: &ExecCtx<'_>, i: StepIndex, spec: &Spec, targets: &[String]) -> Result<()> {
    let (rd, wr) = std::io::pipe().map_err(BuildError::Pipe)?;
    let wr2 = wr.try_clone().map_err(BuildError::Pipe)?;
    let devnull =
        std::fs::File::open("/dev/null").map_err(|e| BuildError::io("opening", "/dev/null", e))?;
    let stdio = Stdio::new(devnull, wr, wr2);
    let executor = match &b.opts.runtime {
        None => Executor::Embedded,
        Some(p) => Executor::from_name(&p.to_string_lossy())?,
    };
    let events = b.events.clone();
    let reader = std::thread::spawn(move || pump_output(rd, i, &events));
    let container = executor.spawn(spec, stdio);
    let container = match container {
        Ok(c) => c,
        Err(e) => {
            let _ = reader.join();
            let message = refused_resolution(&e, targets)
                .unwrap_or_else(|| format!("starting the container: {e}"));
            return Err(step_err(b, i, message, String::new()));
        }
    };
    let killer = container.killer();
    let cancel: &AtomicBool = b.cancel;
    // Watch the build's cancel flag while the container runs (the container dies with the
    // build). The watcher waits on a condvar so the container's exit wakes it at once.
    let done = (Mutex::new(false), std::sync::Condvar::new());
    let status = std::thread::scope(|s| {
        s.spawn(|| {
            let (lock, cv) = &done;
            let mut finished = lock.lock().unwrap();
            while !*finished {
                if cancel.load(Ordering::SeqCst) {
                    let _ = killer.kill();
                    break;
                }
                finished = cv
                    .wait_timeout(finished, Duration::from_millis(50))
                    .unwrap()
                    .0;
            }
        });
        let status = container.wait();
        *done.0.lock().unwrap() = true;
        done.1.notify_all();
        status
    });
    let tail = reader.join().unwrap_or_default();
    let status = status.map_err(|e| step_err(b, i, e.to_string(), String::new()))?;
    if b.cancel.load(Ordering::SeqCst) {
        return Err(BuildError::Cancelled);
    }
    if !status.success() {
        let r = match &b.plan.steps[i].op {
            crate::plan::Op::Run(r) => r.args.join(" "),
            _ => String::new(),
        };
        let how = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exit code: {c}"),
            (_, Some(s)) => format!("killed by signal {s}"),
            _ => "failed".into(),
        };
        let output = tail.finish();
        return Err(step_err(
            b,
            i,
            format!(
                "process \"{}\" did not complete successfully: {how}",
                crate::event::clip(&r)
            ),
            output,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pump(input: &[u8]) -> (Vec<Vec<u8>>, String) {
        let (tx, rx) = std::sync::mpsc::channel();
        let tail = pump_output(input, 7, &EventSink::new(tx));
        let data = rx
            .try_iter()
            .map(|e| match e {
                Event::StepOutput { step: 7, data } => data,
                e => panic!("unexpected event {e:?}"),
            })
            .collect();
        (data, tail.finish())
    }

    #[test]
    fn output_is_streamed_line_by_line_and_its_tail_kept() {
        let mut input = String::new();
        for i in 1..=25 {
            input.push_str(&format!("line {i}  \n"));
        }
        input.push_str("no newline");
        let (events, output) = pump(input.as_bytes());
        assert_eq!(events.len(), 26);
        assert_eq!(events[0], b"line 1  \n");
        assert_eq!(events[25], b"no newline");
        let want: Vec<String> = (7..=25)
            .map(|i| format!("line {i}"))
            .chain(["no newline".to_string()])
            .collect();
        assert_eq!(output, want.join("\n"));
    }

    #[test]
    fn a_huge_line_is_streamed_up_to_the_log_limit_and_clipped_in_the_tail() {
        let input = vec![b'x'; 10_000_000];
        let (events, output) = pump(&input);
        let last = events.last().unwrap();
        assert_eq!(last, LOG_CLIPPED.as_bytes());
        let streamed: usize = events[..events.len() - 1].iter().map(Vec::len).sum();
        assert_eq!(streamed, LOG_LIMIT);
        assert!(output.len() < ECHO_LIMIT + 32, "{}", output.len());
        assert!(
            output.ends_with("… (10000000 bytes)"),
            "{}",
            &output[1000..]
        );
        assert!(output.starts_with(&"x".repeat(ECHO_LIMIT)));
    }

    #[test]
    fn nothing_is_streamed_after_the_log_limit_but_the_tail_goes_on() {
        let mut input = Vec::new();
        let line = format!("{}\n", "y".repeat(999));
        while input.len() < 3 * LOG_LIMIT {
            input.extend_from_slice(line.as_bytes());
        }
        input.extend_from_slice(b"the end\n");
        let (events, output) = pump(&input);
        let clipped_at = events
            .iter()
            .position(|e| e == LOG_CLIPPED.as_bytes())
            .expect("a clipped message");
        assert_eq!(clipped_at, events.len() - 1, "nothing after the message");
        let streamed: usize = events[..clipped_at].iter().map(Vec::len).sum();
        assert!(
            streamed <= LOG_LIMIT && streamed > LOG_LIMIT - 1000,
            "{streamed}"
        );
        // Whole lines up to the limit, then the part of the line that reaches it.
        assert!(
            events[..clipped_at - 1]
                .iter()
                .all(|e| e == line.as_bytes())
        );
        assert!(
            output.ends_with("\nthe end"),
            "{}",
            &output[output.len() - 100..]
        );
        assert_eq!(output.lines().count(), OUTPUT_TAIL_LINES);
    }

    #[test]
    fn long_lines_in_the_tail_are_cut_at_a_character_boundary() {
        let line = "é".repeat(3000);
        let (_, output) = pump(format!("{line}\nok\n").as_bytes());
        let mut lines = output.lines();
        let first = lines.next().unwrap();
        assert!(
            first.ends_with(&format!("… ({} bytes)", line.len())),
            "{first}"
        );
        assert!(first.len() < ECHO_LIMIT + 32);
        assert!(!first.contains('\u{fffd}'), "{first}");
        assert_eq!(lines.next(), Some("ok"));
    }

    #[test]
    fn shm_size_replaces_the_default_size_only() {
        let mut mounts = kiln_runtime::default_mounts();
        set_shm_size(&mut mounts, 128 << 20);
        let shm = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/dev/shm"))
            .unwrap();
        let opts = shm.options().clone().unwrap();
        assert!(opts.contains(&format!("size={}", 128 << 20)), "{opts:?}");
        assert_eq!(opts.iter().filter(|o| o.starts_with("size=")).count(), 1);
        assert!(opts.contains(&"mode=1777".to_string()));
    }

    #[test]
    fn added_hosts_follow_the_hosts_file() {
        let extra = [crate::options::ExtraHost::parse("db.local:10.1.2.3").unwrap()];
        let s = hosts_file(&extra);
        assert!(s.ends_with("10.1.2.3\tdb.local\n"), "{s}");
    }

    #[test]
    fn ulimits_replace_the_default_of_the_same_resource() {
        let mut spec = docker_default_spec();
        apply_ulimits(
            &mut spec,
            &[crate::options::Ulimit::parse("nofile=100:200").unwrap()],
        );
        let limits = spec.process().as_ref().unwrap().rlimits().clone().unwrap();
        assert_eq!(limits.len(), 1);
        assert_eq!((limits[0].soft(), limits[0].hard()), (100, 200));
    }
}
