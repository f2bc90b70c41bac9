//! `run`, `create`, `start`, `stop`, `restart`, `kill`, `rm`, `wait`, `rename`, `container prune`.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kiln_store::{ContainerRecord, NewContainer, Store};

use super::ids::{new_id, random_bytes};
use super::supervisor::{self, Mode, StartError};
use super::{
    AttachArgs, Exit, KillArgs, NamesArgs, PruneArgs, RenameArgs, RmArgs, RunArgs, StartArgs,
    StopArgs,
};
use super::{attach, config, rootfs, signal, terminal, volume};

const ADJECTIVES: &[&str] = &[
    "admiring",
    "adoring",
    "affectionate",
    "agitated",
    "amazing",
    "angry",
    "awesome",
    "blissful",
    "bold",
    "boring",
    "brave",
    "busy",
    "charming",
    "clever",
    "cool",
    "compassionate",
    "competent",
    "confident",
    "crazy",
    "dazzling",
    "determined",
    "distracted",
    "dreamy",
    "eager",
    "ecstatic",
    "elastic",
    "elated",
    "elegant",
    "eloquent",
    "epic",
    "fervent",
    "festive",
    "flamboyant",
    "focused",
    "friendly",
    "frosty",
    "gallant",
    "gifted",
    "goofy",
    "gracious",
    "happy",
    "hardcore",
    "heuristic",
    "hopeful",
    "hungry",
    "infallible",
    "inspiring",
    "jolly",
    "jovial",
    "keen",
    "kind",
    "laughing",
    "loving",
    "lucid",
    "magical",
    "modest",
    "musing",
    "mystifying",
    "naughty",
    "nervous",
    "nifty",
    "nostalgic",
    "objective",
    "optimistic",
    "peaceful",
    "pedantic",
    "pensive",
    "practical",
    "priceless",
    "quirky",
    "quizzical",
    "relaxed",
    "reverent",
    "romantic",
    "sad",
    "serene",
    "sharp",
    "silly",
    "sleepy",
    "stoic",
    "stupefied",
    "suspicious",
    "tender",
    "thirsty",
    "trusting",
    "unruffled",
    "upbeat",
    "vibrant",
    "vigilant",
    "vigorous",
    "wizardly",
    "wonderful",
    "xenodochial",
    "youthful",
    "zealous",
    "zen",
];
const NAMES: &[&str] = &[
    "albattani",
    "allen",
    "almeida",
    "archimedes",
    "ardinghelli",
    "babbage",
    "banach",
    "bardeen",
    "bartik",
    "bell",
    "bhabha",
    "blackwell",
    "bohr",
    "booth",
    "borg",
    "bose",
    "brahmagupta",
    "brattain",
    "brown",
    "carson",
    "chandrasekhar",
    "clarke",
    "colden",
    "cori",
    "curie",
    "darwin",
    "davinci",
    "dijkstra",
    "dubinsky",
    "easley",
    "einstein",
    "elion",
    "engelbart",
    "euclid",
    "euler",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gates",
    "goldberg",
    "goodall",
    "haibt",
    "hamilton",
    "hawking",
    "heisenberg",
    "hermann",
    "hodgkin",
    "hopper",
    "hypatia",
    "jackson",
    "jang",
    "jennings",
    "johnson",
    "kalam",
    "kapitsa",
    "keldysh",
    "kepler",
    "knuth",
    "kowalevski",
    "lalande",
    "lamarr",
    "lamport",
    "leakey",
    "lovelace",
    "lumiere",
    "mahavira",
    "mayer",
    "mccarthy",
    "mcclintock",
    "meitner",
    "mendel",
    "merkle",
    "mirzakhani",
    "montalcini",
    "morse",
    "napier",
    "newton",
    "nobel",
    "noether",
    "pascal",
    "pasteur",
    "payne",
    "perlman",
    "pike",
    "poincare",
    "ptolemy",
    "raman",
    "ritchie",
    "rosalind",
    "sammet",
    "shannon",
    "shaw",
    "sinoussi",
    "snyder",
    "spence",
    "stonebraker",
    "swanson",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "varahamihira",
    "villani",
    "wescoff",
    "wilbur",
    "williams",
    "wing",
    "wozniak",
    "wright",
    "yalow",
    "yonath",
];

fn random_name() -> String {
    let b = random_bytes(4);
    let a = ADJECTIVES[(b[0] as usize | (b[1] as usize) << 8) % ADJECTIVES.len()];
    let n = NAMES[(b[2] as usize | (b[3] as usize) << 8) % NAMES.len()];
    format!("{a}_{n}")
}

/// docker's valid container names.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        bail!("Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    Ok(())
}

/// Prints a `run`/`create` failure as docker does (`docker: MESSAGE.` and the help hint).
fn run_failure(what: &str, message: &str, code: u8) -> ExitCode {
    let m = message.trim_end_matches('.');
    eprintln!("kiln: {m}.\nSee 'kiln {what} --help'.");
    ExitCode::from(code)
}

/// `run` (`start` true) and `create`.
pub fn run(store: &Store, a: RunArgs, start: bool) -> ExitCode {
    let what = if start { "run" } else { "create" };
    let (image_name, command) = a
        .image_and_command
        .split_first()
        .map(|(i, c)| (i.clone(), c.to_vec()))
        .unwrap_or_default();
    let c = &a.create;
    let refuse = |m: &str| run_failure(what, m, 125);
    if start && !a.detach && c.tty && c.interactive && !terminal::is_tty(0) {
        // docker's client refuses before it creates anything.
        eprintln!("the input device is not a TTY");
        return ExitCode::from(1);
    }
    let detach_keys = match terminal::parse_detach_keys(
        a.detach_keys
            .as_deref()
            .unwrap_or(terminal::DEFAULT_DETACH_KEYS),
    ) {
        Ok(k) => k,
        Err(e) => return refuse(&e.to_string()),
    };
    if c.rm && a.detach && !start {
        return refuse("Conflicting options: --rm and -d");
    }
    if let Some(n) = &c.name
        && let Err(e) = check_name(n)
    {
        return refuse(&e.to_string());
    }
    let Some(pull) = crate::cmd_registry::PullPolicy::parse(&c.pull) else {
        return refuse(&format!(
            "invalid pull option: '{}': must be one of \"always\", \"missing\" or \"never\"",
            c.pull
        ));
    };
    let platform = match c.platform.as_deref().map(kiln_image::Platform::parse) {
        None => None,
        Some(Ok(p)) if p.os == "linux" => Some(p.normalize()),
        Some(Ok(p)) => {
            return refuse(&format!(
                "--platform {p}: kiln runs Linux containers only (operating system {:?} is not supported)",
                p.os
            ));
        }
        Some(Err(e)) => return refuse(&format!("--platform: {e}")),
    };
    let image =
        match crate::cmd_registry::image_for_container(store, &image_name, pull, platform.as_ref())
        {
            Ok(img) => img,
            Err(m) => return refuse(&m),
        };
    // A foreign image runs through a binfmt_misc handler (QEMU): without one its first
    // program would fail with "exec format error"; say what to install instead.
    if !image.architecture.is_empty()
        && let Some(m) = kiln_runtime::binfmt::unsupported_message(
            &image.platform().to_string(),
            &image.architecture,
        )
    {
        return refuse(&format!("image {image_name}: {m}"));
    }
    let image_config = match store.image_config(&image.id) {
        Ok(v) => v,
        Err(e) => return refuse(&e.to_string()),
    };
    let mut cfg = match config::resolve(c, &image_config, &command) {
        Ok(cfg) => cfg,
        Err(e) => return refuse(&crate::cmd_image::message(&e)),
    };
    if cfg.tty {
        cfg.host.console_size = terminal::own_size();
    }
    let image_volumes: Vec<String> = image_config["config"]["Volumes"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let from = match volume::mounts_from(store, &c.volumes_from) {
        Ok(m) => m,
        Err(e) => return refuse(&crate::cmd_image::message(&e)),
    };
    cfg.host.mount_points =
        match volume::resolve_mounts(store, &cfg, &c.mount, &image_volumes, from) {
            Ok(m) => m,
            Err(e) => return refuse(&crate::cmd_image::message(&e)),
        };
    // docker's StdinOnce: a foreground `run -i` closes the process's stdin with its own.
    cfg.stdin_once = start && !a.detach && c.interactive;
    let cidfile = match c.cidfile.as_deref().map(super::run_flags::check_cidfile) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => return refuse(&e.to_string()),
    };
    let id = new_id();
    let name = c.name.clone().unwrap_or_else(random_name);
    if start && !a.detach && !cfg.tty {
        // This process becomes the supervisor: from the moment the container exists, a
        // SIGTERM or ^C must reach its handling (cancel the start, remove a --rm container),
        // not end the process with a created container left behind.
        supervisor::block_forwarded_signals();
    }
    let created = (|| -> anyhow::Result<()> {
        let (lease, layers) = rootfs::image_layers(store, &image.id)?;
        let keys: Vec<String> = layers.into_iter().map(|(k, _)| k).collect();
        let json = serde_json::to_string(&cfg)?;
        store.create_container(&NewContainer {
            id: &id,
            name: &name,
            image: &image.id,
            image_ref: &image_name,
            config: &json,
            snapshots: &keys,
        })?;
        drop(lease);
        std::fs::create_dir_all(store.container_dir(&id))?;
        Ok(())
    })();
    if let Err(e) = created {
        // docker's CLI removes the ID file it made when the create fails.
        if let Some(p) = c.cidfile.as_deref().filter(|_| cidfile.is_some()) {
            let _ = std::fs::remove_file(p);
        }
        return refuse(&crate::cmd_image::message(&e));
    }
    if let Some(f) = cidfile
        && let Err(e) = super::run_flags::write_cidfile(f, &id)
    {
        return refuse(&e.to_string());
    }
    if !start {
        println!("{id}");
        return ExitCode::SUCCESS;
    }
    if a.detach {
        return match supervisor::start_detached(store, &id) {
            Ok(()) => {
                println!("{id}");
                ExitCode::SUCCESS
            }
            Err(e) => run_failure(what, &e.message, e.code.clamp(1, 255) as u8),
        };
    }
    if cfg.tty {
        // A terminal: the supervisor runs detached and this process attaches to it, so the
        // detach keys leave the container running (as docker's client does).
        return match supervisor::start_attached(store, &id) {
            Ok(sock) => ExitCode::from(
                (attached_exit(store, &id, sock, c.interactive, true, detach_keys, true) & 0xff)
                    as u8,
            ),
            Err(e) => run_failure(what, &e.message, e.code.clamp(1, 255) as u8),
        };
    }
    match supervisor::supervise(
        store,
        &id,
        Mode::Foreground {
            stdin: c.interactive,
        },
    ) {
        Ok(code) => ExitCode::from((code & 0xff) as u8),
        Err(StartError { code, message }) => run_failure(what, &message, code.clamp(1, 255) as u8),
    }
}

/// Relays an attached client until the container exits (its code) or the client detaches
/// (0). A supervisor gone without a code: the code the store recorded.
fn attached_exit(
    store: &Store,
    id: &str,
    sock: std::os::unix::net::UnixStream,
    stdin: bool,
    tty: bool,
    detach_keys: Vec<u8>,
    sig_proxy: bool,
) -> i32 {
    let outcome = attach::relay(
        sock,
        attach::ClientOpts {
            stdin,
            tty,
            detach_keys,
            sig_proxy,
        },
    );
    match outcome {
        Ok(attach::Outcome::Exited(code)) => code,
        Ok(attach::Outcome::Detached) => 0,
        Ok(attach::Outcome::Lost) | Err(_) => wait_stopped(store, id, Duration::from_secs(10))
            .ok()
            .flatten()
            .map_or(0, |c| c.exit_code),
    }
}

fn exit_of(code: i32) -> anyhow::Result<()> {
    match (code & 0xff) as u8 {
        0 => Ok(()),
        n => Err(Exit(n).into()),
    }
}

/// `attach`: this terminal to a running container's stdio, through its supervisor.
pub fn attach(store: &Store, a: AttachArgs) -> anyhow::Result<()> {
    let keys = terminal::parse_detach_keys(
        a.detach_keys
            .as_deref()
            .unwrap_or(terminal::DEFAULT_DETACH_KEYS),
    )?;
    let c = store.find_container(&a.container)?;
    match c.state {
        kiln_store::ContainerState::Paused => {
            bail!("You cannot attach to a paused container, unpause it first")
        }
        s if !s.is_live() => bail!("You cannot attach to a stopped container, start it first"),
        _ => {}
    }
    let cfg: config::ContainerConfig = serde_json::from_str(&c.config).unwrap_or_default();
    let stdin = cfg.open_stdin && !a.no_stdin;
    if stdin && cfg.tty && !terminal::is_tty(0) {
        bail!("the input device is not a TTY");
    }
    let sock = attach::connect(&store.container_dir(&c.id)).map_err(|e| {
        anyhow::anyhow!(
            "cannot attach to container {}: its supervisor is not listening: {e}",
            c.id
        )
    })?;
    let outcome = attach::relay(
        sock,
        attach::ClientOpts {
            stdin,
            tty: cfg.tty,
            detach_keys: keys,
            sig_proxy: a.sig_proxy,
        },
    );
    match outcome {
        Ok(attach::Outcome::Exited(code)) => exit_of(code),
        // docker's attach ends on the detach keys with its EscapeError, exit 1 (`run -it`
        // detaching exits 0).
        Ok(attach::Outcome::Detached) => {
            eprintln!("read escape sequence");
            Err(Exit(1).into())
        }
        Ok(attach::Outcome::Lost) | Err(_) => exit_of(
            wait_stopped(store, &c.id, Duration::from_secs(10))
                .ok()
                .flatten()
                .map_or(0, |c| c.exit_code),
        ),
    }
}

/// `pause` (`on`) and `unpause`: the cgroup freezer.
pub fn pause(store: &Store, a: NamesArgs, on: bool) -> anyhow::Result<()> {
    each_daemon(&a.containers, None, |n| {
        let c = store.find_container(n)?;
        let paused = c.state == kiln_store::ContainerState::Paused;
        if on {
            if !c.state.is_live() {
                bail!("Container {} is not running", c.id);
            }
            if paused {
                bail!("Container {} is already paused", c.id);
            }
        } else if !paused {
            bail!("Container {} is not paused", c.id);
        }
        super::cgroup::freeze(&store.container_dir(&c.id), &c.id, on)?;
        store.set_container_state(
            &c.id,
            if on {
                kiln_store::ContainerState::Paused
            } else {
                kiln_store::ContainerState::Running
            },
        )?;
        println!("{n}");
        Ok(())
    })
}

/// Marks a container as stopped by the user (no restart), and thaws a paused one so the
/// signal sent next is handled.
fn mark_manual_stop(store: &Store, c: &ContainerRecord) {
    let _ = std::fs::write(
        store.container_dir(&c.id).join(supervisor::MANUAL_STOP),
        b"",
    );
}

fn thaw_if_paused(store: &Store, c: &ContainerRecord) {
    if c.state == kiln_store::ContainerState::Paused
        && super::cgroup::freeze(&store.container_dir(&c.id), &c.id, false).is_ok()
    {
        let _ = store.set_container_state(&c.id, kiln_store::ContainerState::Running);
    }
}

/// Runs `f` for each name; failures print `Error: ...` (docker's words) and the command
/// exits 1 after trying them all.
/// [`each`] for the commands whose errors docker's CLI prints as the daemon sent them
/// (`stop`, `restart`, `kill`, `pause`, `unpause`, `wait`, `start`): `Error response from
/// daemon: ...`; with `failed_to`, docker's closing `Error: failed to start containers: a, b`.
fn each_daemon(
    names: &[String],
    failed_to: Option<&str>,
    mut f: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for n in names {
        if let Err(e) = f(n) {
            let msg = crate::cmd_image::message(&e);
            let msg = msg
                .strip_prefix("Error response from daemon: ")
                .unwrap_or(&msg);
            eprintln!("Error response from daemon: {msg}");
            failed.push(n.as_str());
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    if let Some(what) = failed_to {
        eprintln!("Error: failed to {what} containers: {}", failed.join(", "));
    }
    Err(Exit(1).into())
}

fn each(names: &[String], mut f: impl FnMut(&str) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut failed = false;
    for n in names {
        if let Err(e) = f(n) {
            eprintln!("Error: {}", crate::cmd_image::message(&e));
            failed = true;
        }
    }
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// `start --all [--filter ...]` (podman's flags): the containers that do not run and match
/// every filter key (one of its values when a key is given several times), by ID.
/// `restart-policy=no|always|unless-stopped|on-failure`; `stopped-by-user=true|false`: the
/// last `stop`, `kill` or `rm -f` left the container's `stopped-by-user` mark. What docker's
/// daemon restarts when it starts (after a reboot) is `restart-policy=always`, plus
/// `restart-policy=unless-stopped` with `stopped-by-user=false`: what
/// contrib/systemd/kiln-restart.service runs at boot.
fn start_all(store: &Store, filters: &[String]) -> anyhow::Result<()> {
    let mut wanted: Vec<(&str, Vec<&str>)> = Vec::new();
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        let ok = match k {
            "restart-policy" => matches!(v, "no" | "always" | "unless-stopped" | "on-failure"),
            "stopped-by-user" => matches!(v, "true" | "false"),
            _ => bail!(
                "Invalid filter '{k}' (start --all takes restart-policy= and stopped-by-user=)"
            ),
        };
        if !ok {
            bail!("Invalid filter '{k}={v}'");
        }
        match wanted.iter_mut().find(|(key, _)| *key == k) {
            Some((_, vs)) => vs.push(v),
            None => wanted.push((k, vec![v])),
        }
    }
    let mut ids = Vec::new();
    for c in store.containers()? {
        if c.state.is_live() {
            continue;
        }
        let cfg: config::ContainerConfig = serde_json::from_str(&c.config).unwrap_or_default();
        let policy = if cfg.host.restart_policy.is_none() {
            "no"
        } else {
            cfg.host.restart_policy.name.as_str()
        };
        let by_user = store
            .container_dir(&c.id)
            .join(supervisor::MANUAL_STOP)
            .exists();
        let by_user = if by_user { "true" } else { "false" };
        if wanted.iter().all(|(k, vs)| {
            let have = if *k == "restart-policy" {
                policy
            } else {
                by_user
            };
            vs.contains(&have)
        }) {
            ids.push(c.id);
        }
    }
    // Oldest first, as they were made.
    ids.reverse();
    each(&ids, |id| {
        let c = store.find_container(id)?;
        if !c.state.is_live() {
            store.container_reset_restarts(&c.id)?;
            supervisor::start_detached(store, &c.id)
                .map_err(|e| anyhow::anyhow!("{}: {}", c.id, e.message))?;
        }
        println!("{id}");
        Ok(())
    })
}

pub fn start(store: &Store, a: StartArgs) -> anyhow::Result<()> {
    if a.all {
        return start_all(store, &a.filter);
    }
    if !a.filter.is_empty() {
        bail!("--filter selects containers for --all: give --all, or name the containers");
    }
    if a.attach || a.interactive {
        if a.containers.len() != 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let c = store.find_container(&a.containers[0])?;
        if c.state.is_live() {
            return Ok(());
        }
        store.container_reset_restarts(&c.id)?;
        let cfg: config::ContainerConfig = serde_json::from_str(&c.config).unwrap_or_default();
        if cfg.tty {
            let keys = terminal::parse_detach_keys(
                a.detach_keys
                    .as_deref()
                    .unwrap_or(terminal::DEFAULT_DETACH_KEYS),
            )?;
            let sock = supervisor::start_attached(store, &c.id).map_err(|e| {
                eprintln!("Error: {}", e.message);
                anyhow::Error::from(Exit(1))
            })?;
            return exit_of(attached_exit(
                store,
                &c.id,
                sock,
                a.interactive && cfg.open_stdin,
                true,
                keys,
                true,
            ));
        }
        return match supervisor::supervise(
            store,
            &c.id,
            Mode::Foreground {
                stdin: a.interactive,
            },
        ) {
            Ok(code) => Err(Exit((code & 0xff) as u8).into()),
            Err(e) => {
                eprintln!("Error: {}", e.message);
                Err(Exit(1).into())
            }
        };
    }
    each_daemon(&a.containers, Some("start"), |n| {
        let c = store.find_container(n)?;
        if !c.state.is_live() {
            store.container_reset_restarts(&c.id)?;
            supervisor::start_detached(store, &c.id).map_err(|e| anyhow::anyhow!(e.message))?;
        }
        println!("{n}");
        Ok(())
    })
}

/// The container's first process, if it still runs under its supervisor: its pid (checked
/// to be the supervisor's child, so a recycled pid is never signalled).
fn live_pid(c: &ContainerRecord) -> Option<i32> {
    if !c.state.is_live() || c.pid == 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", c.pid)).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
    (ppid == c.supervisor_pid).then_some(c.pid as i32)
}

fn send(c: &ContainerRecord, sig: i32) -> anyhow::Result<bool> {
    let Some(pid) = live_pid(c) else {
        return Ok(false);
    };
    // SAFETY: kill with a pid checked above.
    if unsafe { libc::kill(pid, sig) } != 0 {
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ESRCH) => {}
            // Rootless, from a user namespace other than the supervisor's: the supervisor
            // delivers it (see `supervisor::relay_signal`).
            Some(libc::EPERM) if kiln_runtime::userns::in_user_namespace() => {
                let value = libc::sigval {
                    sival_ptr: sig as usize as *mut libc::c_void,
                };
                // SAFETY: sigqueue to the supervisor checked (by `live_pid`) to be the
                // container's parent; it blocks the relay signal from its start.
                let r = unsafe {
                    libc::sigqueue(c.supervisor_pid as i32, supervisor::relay_signal(), value)
                };
                if r != 0 {
                    let e2 = std::io::Error::last_os_error();
                    if e2.raw_os_error() != Some(libc::ESRCH) {
                        bail!(
                            "cannot kill container {}: {e}, and its supervisor (pid {}) could not be asked to: {e2}",
                            c.id,
                            c.supervisor_pid
                        );
                    }
                }
            }
            _ => bail!("cannot kill container {}: {e}", c.id),
        }
    }
    Ok(true)
}

/// Waits until the container is no longer live and its supervisor has finished (or `limit`).
fn wait_stopped(
    store: &Store,
    id: &str,
    limit: Duration,
) -> anyhow::Result<Option<ContainerRecord>> {
    let t0 = Instant::now();
    loop {
        let c = match store.find_container(id) {
            Ok(c) => c,
            Err(kiln_store::Error::ContainerNotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !c.state.is_live() {
            return Ok(Some(c));
        }
        if t0.elapsed() >= limit {
            return Ok(Some(c));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (up to 10 s) for a supervisor process to be gone.
fn wait_supervisor_gone(pid: u32) {
    if pid == 0 {
        return;
    }
    for _ in 0..1000 {
        // SAFETY: signal 0 only checks existence.
        if unsafe { libc::kill(pid as i32, 0) } != 0 {
            return;
        }
        // A zombie (our own child in tests) counts as gone.
        if std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
            .unwrap_or(true)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stop: the stop signal (the container's, else SIGTERM), SIGKILL after the timeout.
fn stop_one(store: &Store, c: &ContainerRecord, time: Option<i64>) -> anyhow::Result<()> {
    if !c.state.is_live() {
        return Ok(());
    }
    let cfg: config::ContainerConfig = serde_json::from_str(&c.config).unwrap_or_default();
    let sig = if cfg.stop_signal.is_empty() {
        libc::SIGTERM
    } else {
        signal::parse(&cfg.stop_signal)?
    };
    let timeout = time.or(cfg.stop_timeout).unwrap_or(10).max(0) as u64;
    let supervisor = c.supervisor_pid;
    mark_manual_stop(store, c);
    if sig != libc::SIGKILL {
        send(c, sig)?;
        thaw_if_paused(store, c);
        if let Some(now) = wait_stopped(store, &c.id, Duration::from_secs(timeout))?
            && now.state.is_live()
        {
            send(&now, libc::SIGKILL)?;
        }
    } else {
        send(c, libc::SIGKILL)?;
        thaw_if_paused(store, c);
    }
    wait_stopped(store, &c.id, Duration::from_secs(30))?;
    wait_supervisor_gone(supervisor);
    Ok(())
}

pub fn stop(store: &Store, a: StopArgs, restart: bool) -> anyhow::Result<()> {
    each_daemon(&a.containers, None, |n| {
        let c = store.find_container(n)?;
        // A restarted --rm container is kept through its stop, as docker keeps it.
        let restart_marker = store
            .container_dir(&c.id)
            .join(supervisor::RESTART_REQUESTED);
        if restart && c.state.is_live() {
            std::fs::write(&restart_marker, b"")
                .with_context(|| format!("writing {}", restart_marker.display()))?;
        }
        let stopped = stop_one(store, &c, a.time);
        if stopped.is_err() {
            let _ = std::fs::remove_file(&restart_marker);
        }
        stopped?;
        if restart {
            // docker's restart resets the count, as start does.
            store.container_reset_restarts(&c.id)?;
            supervisor::start_detached(store, &c.id).map_err(|e| anyhow::anyhow!(e.message))?;
        }
        println!("{n}");
        Ok(())
    })
}

pub fn kill(store: &Store, a: KillArgs) -> anyhow::Result<()> {
    let sig = signal::parse(&a.signal)?;
    each_daemon(&a.containers, None, |n| {
        // docker: "Cannot kill container: x: No such container: x".
        let c = store
            .find_container(n)
            .map_err(|e| anyhow::anyhow!("Cannot kill container: {n}: {e}"))?;
        if c.state.is_live() {
            mark_manual_stop(store, &c);
        }
        if !send(&c, sig)? {
            bail!(
                "Cannot kill container: {n}: Container {} is not running",
                c.id
            );
        }
        if sig == libc::SIGKILL {
            thaw_if_paused(store, &c);
            wait_stopped(store, &c.id, Duration::from_secs(10))?;
        }
        println!("{n}");
        Ok(())
    })
}

fn remove_one(store: &Store, c: &ContainerRecord, force: bool) -> anyhow::Result<()> {
    // A supervisor holds the container's lock from before it records the start: a record
    // that is not live yet may be starting. Wait for it to show as live (then it is killed
    // below, with -f) rather than remove the record from under a running container.
    let mut c = c.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !c.state.is_live()
        && matches!(
            supervisor::try_supervisor_lock(&store.container_dir(&c.id)),
            Ok(None)
        )
    {
        if std::time::Instant::now() > deadline {
            bail!("container {} is starting; try again", c.id);
        }
        std::thread::sleep(Duration::from_millis(20));
        c = match store.find_container(&c.id) {
            Ok(fresh) => fresh,
            Err(kiln_store::Error::ContainerNotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
    }
    let c = &c;
    if c.state.is_live() {
        if !force {
            bail!(
                "You cannot remove a {} container {}. Stop the container before attempting removal or force remove",
                c.state.as_str(),
                c.id
            );
        }
        let supervisor = c.supervisor_pid;
        mark_manual_stop(store, c);
        send(c, libc::SIGKILL)?;
        thaw_if_paused(store, c);
        wait_stopped(store, &c.id, Duration::from_secs(30))?;
        wait_supervisor_gone(supervisor);
    }
    // (Read before the container's directory, which lists them, is removed.)
    let cgroups = super::cgroup::dirs_of(&store.container_dir(&c.id), &c.id);
    match store.remove_container(&c.id) {
        Ok(()) | Err(kiln_store::Error::ContainerNotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    super::cgroup::remove_dirs(cgroups);
    // A supervisor that was SIGKILLed left its published ports' nftables rules behind
    // (docs/networking.md): they go with the container, as its cgroups do. Only rules whose
    // supervisor is gone are touched; rootless kiln has none.
    let cfg: config::ContainerConfig = serde_json::from_str(&c.config).unwrap_or_default();
    if !cfg.host.port_bindings.is_empty() || cfg.host.publish_all {
        let _ = kiln_net::remove_stale_rules();
    }
    Ok(())
}

pub fn rm(store: &Store, a: RmArgs) -> anyhow::Result<()> {
    each(&a.containers, |n| {
        let c = match store.find_container(n) {
            // docker 20.10's CLI: `rm -f` of a missing container says so and succeeds.
            Err(e @ kiln_store::Error::ContainerNotFound(_)) if a.force => {
                eprintln!("Error: {e}");
                return Ok(());
            }
            r => r?,
        };
        remove_one(store, &c, a.force)?;
        if a.volumes {
            let cfg: config::ContainerConfig = serde_json::from_str(&c.config).unwrap_or_default();
            volume::remove_anonymous(store, &cfg);
        }
        println!("{n}");
        Ok(())
    })
}

pub fn wait(store: &Store, a: NamesArgs) -> anyhow::Result<()> {
    each_daemon(&a.containers, None, |n| {
        let c = store.find_container(n)?;
        let supervisor = c.supervisor_pid;
        // Opened while the row exists: the supervisor writes the code into this file before it
        // removes a `--rm` container, and the open file outlives the directory.
        let code_file = std::fs::File::open(store.container_dir(&c.id).join(supervisor::EXIT_CODE));
        let done = wait_stopped(store, &c.id, Duration::MAX)?;
        wait_supervisor_gone(supervisor);
        let code = match done {
            Some(d) => d.exit_code,
            None => code_file
                .ok()
                .and_then(|mut f| {
                    let mut s = String::new();
                    f.read_to_string(&mut s).ok()?;
                    s.trim().parse::<i32>().ok()
                })
                .ok_or_else(|| kiln_store::Error::ContainerNotFound(n.to_string()))?,
        };
        println!("{code}");
        Ok(())
    })
}

pub fn rename(store: &Store, a: RenameArgs) -> anyhow::Result<()> {
    check_name(&a.new_name)?;
    let c = store.find_container(&a.container)?;
    if c.name.as_deref() == Some(a.new_name.as_str()) {
        bail!("Renaming a container with the same name as its current name");
    }
    store.rename_container(&c.id, &a.new_name)?;
    Ok(())
}

pub fn prune(store: &Store, a: PruneArgs) -> anyhow::Result<()> {
    if !a.filter.is_empty() {
        bail!("container prune --filter is not supported by kiln yet");
    }
    if !a.force
        && !crate::cmd_image::confirm_prompt(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
        )?
    {
        // docker's CLI prints the total after a "no" too.
        println!("Total reclaimed space: 0B");
        return Ok(());
    }
    let mut out = String::new();
    let mut reclaimed = 0u64;
    for c in store.containers()? {
        if c.state.is_live() {
            continue;
        }
        reclaimed += super::rootfs::writable_size(store, &c.id);
        remove_one(store, &c, false)?;
        if out.is_empty() {
            out.push_str("Deleted Containers:\n");
        }
        out.push_str(&c.id);
        out.push('\n');
    }
    if !out.is_empty() {
        out.push('\n');
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{out}Total reclaimed space: {}",
        crate::cmd_image::render::human_size(reclaimed)
    )?;
    Ok(())
}
