//! `kiln pull`, `kiln push`, `kiln login`, `kiln logout`: registries, with docker's flags and
//! messages (kiln-registry does the work).

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use kiln_image::{Compression, ImageRef, Platform};
use kiln_registry::{Credentials, Event, PullOptions, PushOptions, Settings};
use kiln_store::Store;

use crate::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Log in to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Set platform if server is multi-platform capable (default: this machine's)
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Pull every platform of a multi-platform image and keep its index (as skopeo copy --all)
    #[arg(long, conflicts_with = "platform")]
    pub all_platforms: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// NAME[:TAG|@DIGEST]
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WireCompression {
    /// gzip (what every registry and client reads)
    Gzip,
    /// zstd (smaller and faster; needs a recent client to pull)
    Zstd,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Compression of the layers the store keeps uncompressed
    #[arg(long, value_enum, default_value_t = WireCompression::Gzip)]
    pub compression: WireCompression,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// NAME[:TAG]
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// The registry (default: Docker Hub)
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub)
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

pub fn run(cmd: Command, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_env();
    match cmd {
        Command::Pull(a) => pull(a, global, &settings),
        Command::Push(a) => push(a, global, &settings),
        Command::Login(a) => login(a, &settings),
        Command::Logout(a) => logout(a, &settings),
    }
}

/// Passes events on and notes when the first line (`Pulling from`, `The push refers to`)
/// went out.
struct Tracked<'a> {
    inner: &'a dyn kiln_registry::Progress,
    started: std::sync::atomic::AtomicBool,
}

impl<'a> Tracked<'a> {
    fn new(inner: &'a dyn kiln_registry::Progress) -> Tracked<'a> {
        Tracked {
            inner,
            started: Default::default(),
        }
    }

    /// Reports `e` as docker does: bare once the output had started (its daemon was
    /// streaming already), else with `Error response from daemon: ` (main's prefix).
    fn fail(&self, e: kiln_registry::Error) -> anyhow::Result<ExitCode> {
        if self.started.load(std::sync::atomic::Ordering::Relaxed) {
            Ok(bare_failure(e))
        } else {
            Err(e.into())
        }
    }
}

impl kiln_registry::Progress for Tracked<'_> {
    fn event(&self, e: Event) {
        if matches!(e, Event::PullingFrom { .. } | Event::PushRefersTo { .. }) {
            self.started
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.inner.event(e)
    }
}

/// Prints `e` without a prefix (and the store-damage hint where it applies): exit 1.
fn bare_failure(e: kiln_registry::Error) -> ExitCode {
    let damaged = matches!(&e, kiln_registry::Error::Store(s) if s.suggests_damage());
    eprintln!("{}", crate::cmd_image::message(&e.into()));
    if damaged {
        eprintln!("{}", crate::STORE_DAMAGE_HINT);
    }
    ExitCode::FAILURE
}

/// A failure found before asking any registry: docker prints these bare (its CLI's own
/// errors), while what a registry answered gets `Error response from daemon: `.
fn local_error(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("{message}");
    Ok(ExitCode::FAILURE)
}

fn short(d: &kiln_image::Digest) -> String {
    d.hex()[..12].to_string()
}

/// docker's plain progress line for an event (one per layer step), if it has one.
fn line(e: Event) -> Option<String> {
    Some(match e {
        Event::PullingFrom { tag, repository } => format!("{tag}: Pulling from {repository}"),
        Event::PushRefersTo { repository } => {
            format!("The push refers to repository [{repository}]")
        }
        Event::Layer { digest, status } => format!("{}: {}", short(&digest), status.text()?),
    })
}

/// Prints docker's plain progress lines on stdout (`pull`, `push`).
fn render(e: Event) {
    if let Some(l) = line(e) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{l}");
    }
}

/// `pull`'s and `push`'s progress on stdout: docker's redrawn display on a terminal, its
/// plain lines otherwise.
fn stdout_progress() -> Box<dyn kiln_registry::Progress> {
    if std::io::stdout().is_terminal() {
        let width = rustix::termios::tcgetwinsize(std::io::stdout())
            .map(|w| usize::from(w.ws_col))
            .unwrap_or(200);
        Box::new(tty::Display::new(width))
    } else {
        Box::new(render)
    }
}

/// docker's terminal display of a pull or push (its CLI's `jsonmessage` rendering): one line
/// per layer, redrawn in place. A layer seen for the first time gets a new line below the
/// others; an update moves the cursor up to its line (`ESC[nA`), erases it (`ESC[2K`),
/// writes `ID: STATUS` (with a progress bar while bytes move) and moves back down
/// (`ESC[nB`). A line without a layer (`Pulling from`, `The push refers to`) starts a new
/// block.
mod tty {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use kiln_registry::{Event, LayerStatus};

    /// Redraws of a layer's byte count are at most this often.
    const REDRAW: Duration = Duration::from_millis(100);

    pub struct Display {
        width: usize,
        state: Mutex<State>,
    }

    #[derive(Default)]
    struct State {
        /// Each layer's line in the current block, from 0.
        lines: HashMap<String, usize>,
        /// When each layer's bytes started moving (for the time left).
        started: HashMap<String, Instant>,
        /// When each layer's line was last drawn with a byte count.
        drawn: HashMap<String, Instant>,
    }

    impl Display {
        pub fn new(width: usize) -> Display {
            Display {
                width,
                state: Mutex::new(State::default()),
            }
        }
    }

    impl kiln_registry::Progress for Display {
        fn event(&self, e: Event) {
            let mut st = self.state.lock().unwrap();
            let mut out = std::io::stdout().lock();
            let (id, status) = match e {
                Event::Layer { digest, status } => (super::short(&digest), status),
                other => {
                    st.lines.clear();
                    if let Some(l) = super::line(other) {
                        let _ = writeln!(out, "{l}");
                    }
                    let _ = out.flush();
                    return;
                }
            };
            let now = Instant::now();
            let text = match status {
                LayerStatus::Downloading(done, total)
                | LayerStatus::Extracting(done, total)
                | LayerStatus::Pushing(done, total) => {
                    let verb = match status {
                        LayerStatus::Downloading(..) => "Downloading",
                        LayerStatus::Extracting(..) => "Extracting",
                        _ => "Pushing",
                    };
                    // Per verb: `Extracting` counts its time left from its own start, and
                    // its first line is drawn however soon after the last `Downloading`.
                    let key = format!("{verb} {id}");
                    let start = *st.started.entry(key.clone()).or_insert(now);
                    if done < total
                        && st
                            .drawn
                            .get(&key)
                            .is_some_and(|t| now.duration_since(*t) < REDRAW)
                    {
                        return;
                    }
                    st.drawn.insert(key, now);
                    format!("{verb} {}", bar(done, total, now - start, self.width))
                }
                LayerStatus::Compressing => "Pushing ".to_string(),
                other => match other.text() {
                    Some(t) => format!("{t} "),
                    None => return,
                },
            };
            let n = st.lines.len();
            let line = *st.lines.entry(id.clone()).or_insert(n);
            if line == n {
                let _ = out.write_all(b"\n");
            }
            let up = st.lines.len() - line;
            let _ = write!(out, "\x1b[{up}A\x1b[2K\r{id}: {text}\r\x1b[{up}B");
            let _ = out.flush();
        }
    }

    /// docker's `JSONProgress.String()`: `[=====>      ]  12.3MB/50MB 4s` (the bar on a
    /// terminal wider than 110 columns, the time left on one wider than 50).
    pub fn bar(done: u64, total: u64, elapsed: Duration, width: usize) -> String {
        if total == 0 {
            return format!("{:>8}", human_size(done));
        }
        let pct = ((done as f64 / total as f64 * 100.0) as usize / 2).min(50);
        let mut s = String::new();
        if width > 110 {
            s = format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct));
        }
        if done > total {
            s.push_str(&format!("{:>8}", human_size(done)));
        } else {
            s.push_str(&format!("{:>8}/{}", human_size(done), human_size(total)));
        }
        if done > 0 && pct < 50 && width > 50 {
            let left = elapsed.as_secs_f64() / done as f64 * (total - done) as f64;
            s.push(' ');
            s.push_str(&go_duration(left as u64));
        }
        s
    }

    /// go-units' `HumanSize`: decimal units, four significant digits (`12.35MB`, `512B`).
    pub fn human_size(n: u64) -> String {
        const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
        let mut x = n as f64;
        let mut u = 0;
        while x >= 1000.0 && u + 1 < UNITS.len() {
            x /= 1000.0;
            u += 1;
        }
        let int_digits = if x < 1.0 {
            1
        } else {
            x.log10().floor() as usize + 1
        };
        let s = format!("{:.*}", 4usize.saturating_sub(int_digits), x);
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        format!("{s}{}", UNITS[u])
    }

    /// Go's `Duration.String()` of whole seconds: `0s`, `42s`, `1m5s`, `2h0m1s`.
    pub fn go_duration(secs: u64) -> String {
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        match (h, m) {
            (0, 0) => format!("{s}s"),
            (0, _) => format!("{m}m{s}s"),
            _ => format!("{h}h{m}m{s}s"),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn docker_sizes_bars_and_durations() {
            assert_eq!(human_size(0), "0B");
            assert_eq!(human_size(512), "512B");
            assert_eq!(human_size(12_345_678), "12.35MB");
            assert_eq!(human_size(50_000_000), "50MB");
            assert_eq!(human_size(1_500), "1.5kB");
            assert_eq!(human_size(999_999), "1000kB");
            assert_eq!(go_duration(0), "0s");
            assert_eq!(go_duration(65), "1m5s");
            assert_eq!(go_duration(7201), "2h0m1s");
            assert_eq!(
                bar(12_345_678, 50_000_000, Duration::from_secs(1), 120),
                format!("[{}>{}]  12.35MB/50MB 3s", "=".repeat(12), " ".repeat(38))
            );
            assert_eq!(
                bar(50, 50, Duration::ZERO, 120),
                format!("[{}>] {:>8}/50B", "=".repeat(50), "50B")
            );
            assert_eq!(bar(5, 50, Duration::from_secs(1), 80), "      5B/50B 9s");
            assert_eq!(bar(5, 50, Duration::from_secs(1), 0), "      5B/50B");
        }
    }
}

fn pull(a: PullArgs, global: &GlobalArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let (reference, named) = match (ImageRef::parse(&a.name), ImageRef::parse_named(&a.name)) {
        (Ok(r), Ok(n)) => (r, n),
        (Err(e), _) | (_, Err(e)) => return local_error(e),
    };
    let platform = match &a.platform {
        Some(p) => match Platform::parse(p) {
            Ok(p) => p,
            Err(e) => return local_error(format!("invalid --platform {p:?}: {e}")),
        },
        None => Platform::host(),
    };
    if !a.quiet && named.tag().is_none() && reference.digest().is_none() {
        println!("Using default tag: latest");
    }
    let store = Store::open(global.store_root())?;
    let quiet = |_: Event| {};
    let shown = stdout_progress();
    let tracked = Tracked::new(if a.quiet { &quiet } else { shown.as_ref() });
    let progress: &dyn kiln_registry::Progress = &tracked;
    if a.all_platforms {
        let opts = PullOptions {
            settings,
            platform,
            progress,
        };
        let pulled = match kiln_registry::pull_all(&store, &reference, &opts) {
            Ok(p) => p,
            Err(e) => return tracked.fail(e),
        };
        let (digest, reference, up_to_date) = match pulled {
            kiln_registry::PulledAll::Image(p) => (p.digest, p.reference, p.up_to_date),
            kiln_registry::PulledAll::Index {
                digest,
                reference,
                up_to_date,
                ..
            } => (digest, reference, up_to_date),
        };
        if !a.quiet {
            println!("Digest: {digest}");
            let familiar = reference.familiar();
            if up_to_date {
                println!("Status: Image is up to date for {familiar}");
            } else {
                println!("Status: Downloaded newer image for {familiar}");
            }
        }
        println!("{reference}");
        return Ok(ExitCode::SUCCESS);
    }
    let pulled = match kiln_registry::pull(
        &store,
        &reference,
        &PullOptions {
            settings,
            platform,
            progress,
        },
    ) {
        Ok(p) => p,
        Err(e) => return tracked.fail(e),
    };
    if !a.quiet {
        println!("Digest: {}", pulled.digest);
        let familiar = pulled.reference.familiar();
        if pulled.up_to_date {
            println!("Status: Image is up to date for {familiar}");
        } else {
            println!("Status: Downloaded newer image for {familiar}");
        }
    }
    println!("{}", pulled.reference);
    Ok(ExitCode::SUCCESS)
}

fn push(a: PushArgs, global: &GlobalArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let named = match ImageRef::parse_named(&a.name) {
        Ok(n) => n,
        Err(e) => return local_error(e),
    };
    if named.digest().is_some() {
        return local_error("cannot push a digest reference: name a tag");
    }
    if !a.quiet && named.tag().is_none() {
        println!("Using default tag: latest");
    }
    let reference = ImageRef::parse(&a.name)?;
    let store = Store::open(global.store_root())?;
    let quiet = |_: Event| {};
    let shown = stdout_progress();
    let tracked = Tracked::new(if a.quiet { &quiet } else { shown.as_ref() });
    let progress: &dyn kiln_registry::Progress = &tracked;
    let compression = match a.compression {
        WireCompression::Gzip => Compression::Gzip,
        WireCompression::Zstd => Compression::Zstd,
    };
    let pushed = match kiln_registry::push(
        &store,
        &reference,
        &PushOptions {
            settings,
            compression,
            progress,
            chunk_size: None,
        },
    ) {
        Ok(p) => p,
        Err(e @ kiln_registry::Error::NoSuchLocalImage(_)) => {
            if !a.quiet {
                println!("The push refers to repository [{}]", reference.name());
            }
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
        // Under the push's first line even with -q (docker's daemon printed it; -q hides it).
        Err(e) => return Ok(bare_failure(e)),
    };
    if a.quiet {
        println!("{}", pushed.reference);
    } else {
        println!(
            "{}: digest: {} size: {}",
            pushed.tag, pushed.digest, pushed.size
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn server_domain(server: Option<&str>) -> String {
    let s = server.unwrap_or("docker.io");
    let s = s
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let s = s.split('/').next().unwrap_or(s);
    match s {
        "index.docker.io" | "registry-1.docker.io" | "" => "docker.io".to_string(),
        s => s.to_string(),
    }
}

fn login(a: LoginArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    if a.password.is_some() && a.password_stdin {
        return local_error("--password and --password-stdin are mutually exclusive");
    }
    if a.password_stdin && a.username.is_none() {
        return local_error("Must provide --username with --password-stdin");
    }
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from standard input")?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else if !std::io::stdin().is_terminal() {
        return local_error("Cannot perform an interactive login from a non TTY device");
    } else {
        return local_error("interactive login is not supported yet: use -u USER --password-stdin");
    };
    let Some(username) = a.username else {
        return local_error("Cannot perform an interactive login from a non TTY device");
    };
    if username.is_empty() || password.is_empty() {
        return local_error("Error: Username and password are required");
    }
    let domain = server_domain(a.server.as_deref());
    let in_file = kiln_registry::login(settings, &domain, &Credentials { username, password })?;
    if in_file {
        eprintln!(
            "WARNING! Your password will be stored unencrypted in {}.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/engine/reference/commandline/login/#credentials-store\n",
            settings.credentials.path().display()
        );
    }
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

fn logout(a: LogoutArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let domain = server_domain(a.server.as_deref());
    let key = kiln_registry::credentials::server_key(&domain);
    // docker 20.10 says so whether or not there was a login to remove.
    println!("Removing login credentials for {key}");
    settings.credentials.erase(&domain)?;
    Ok(ExitCode::SUCCESS)
}

/// When `build` and `run`/`create` ask a registry for an image (`--pull`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// Re-check the registry for every image named; pull when its digest changed.
    Always,
    /// Pull only what the store lacks (the default).
    Missing,
    /// Never pull: a missing image is an error.
    Never,
}

impl PullPolicy {
    /// `always`, `missing`, `never` (docker run's `--pull` values).
    pub fn parse(s: &str) -> Option<PullPolicy> {
        match s {
            "always" => Some(PullPolicy::Always),
            "missing" => Some(PullPolicy::Missing),
            "never" => Some(PullPolicy::Never),
            _ => None,
        }
    }
}

/// An image ID or a prefix of one (what the store resolves without a registry).
fn names_an_id(name: &str) -> bool {
    let bare = name.strip_prefix("sha256:").unwrap_or(name);
    name.starts_with("sha256:")
        || (!bare.is_empty() && bare.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// `kiln build`'s [`ImageFetcher`]: pulls the images a build names that the store lacks (with
/// `--pull`, every named image, which is only downloaded when its digest changed), for the
/// host's platform. Each pull is one BuildKit-style vertex,
/// `[internal] load metadata for REFERENCE`, with a sub-step per layer downloaded.
pub struct BuildPuller {
    settings: Settings,
    policy: PullPolicy,
    events: kiln_build::event::EventSink,
    /// References asked already (normalized): each is pulled at most once per build.
    asked: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for BuildPuller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildPuller")
            .field("policy", &self.policy)
            .finish()
    }
}

impl BuildPuller {
    pub fn new(policy: PullPolicy, events: kiln_build::event::EventSink) -> BuildPuller {
        BuildPuller {
            settings: Settings::from_env(),
            policy,
            events,
            asked: Default::default(),
        }
    }

    fn internal(&self, vertex: &str, status: Option<String>, done: bool, error: Option<String>) {
        self.events.send(kiln_build::event::Event::Internal {
            vertex: vertex.to_string(),
            status,
            done,
            error,
        });
    }
}

impl kiln_build::options::ImageFetcher for BuildPuller {
    fn fetch(
        &self,
        store: &Store,
        reference: &str,
        in_store: bool,
        platform: &Platform,
    ) -> Result<(), kiln_build::options::FetchError> {
        use kiln_build::options::FetchError;
        if in_store && (self.policy != PullPolicy::Always || names_an_id(reference)) {
            return Ok(());
        }
        if self.policy == PullPolicy::Never {
            return Err(FetchError::NotPulled {
                hint: "pulling is disabled (--pull=never): pull it with `kiln pull NAME` or load it with `kiln load -i IMAGE.tar`, or build without --pull=never".into(),
            });
        }
        let r = ImageRef::parse(reference).map_err(|e| FetchError::Failed {
            message: e.to_string(),
        })?;
        // A digest names content that cannot change: the store's copy is the registry's.
        if in_store && r.digest().is_some() {
            return Ok(());
        }
        let name = r.to_string();
        if !self
            .asked
            .lock()
            .unwrap()
            .insert(format!("{name} {platform}"))
        {
            return Ok(());
        }
        let vertex = format!("[internal] load metadata for {name}");
        self.internal(&vertex, None, false, None);
        let progress = |e: Event| {
            if let Event::Layer { digest, status } = e {
                match status {
                    kiln_registry::LayerStatus::PullingFsLayer => {
                        self.internal(&vertex, Some(digest.to_string()), false, None)
                    }
                    kiln_registry::LayerStatus::PullComplete => {
                        self.internal(&vertex, Some(digest.to_string()), true, None)
                    }
                    _ => {}
                }
            }
        };
        let result = kiln_registry::pull(
            store,
            &r,
            &PullOptions {
                settings: &self.settings,
                platform: platform.clone(),
                progress: &progress,
            },
        );
        let error = result.as_ref().err().map(|e| e.to_string());
        self.internal(&vertex, None, true, error.clone());
        match error {
            None => Ok(()),
            Some(message) => Err(FetchError::Failed { message }),
        }
    }
}

/// The image `kiln run`/`create` start from: the store's, pulled first as `policy` says, as
/// docker does (`Unable to find image 'x:latest' locally`, then the pull's lines, on
/// stderr). Err: the message `run` prints (`kiln: MESSAGE.`, exit 125).
pub(crate) fn image_for_container(
    store: &Store,
    name: &str,
    policy: PullPolicy,
    platform: Option<&Platform>,
) -> Result<kiln_store::ImageRecord, String> {
    let local = match platform {
        None => crate::cmd_image::resolve_named_for_run(store, name),
        // `--platform`: an index's entry, or an image of that platform; another platform's
        // image counts as missing (pulled), and `--pull never` says which platforms there are.
        Some(p) => match store.resolve_platform(name, p) {
            Ok(img) => Ok(img),
            Err(
                e @ (kiln_store::Error::PlatformMismatch { .. }
                | kiln_store::Error::NoMatchingManifest { .. }),
            ) if policy == PullPolicy::Never => {
                return Err(format!("Error response from daemon: {e}"));
            }
            Err(_) => {
                crate::cmd_image::resolve_named_for_run(store, name).and(Err(name.to_string()))
            }
        },
    };
    match (local, policy) {
        (Ok(img), PullPolicy::Missing | PullPolicy::Never) => return Ok(img),
        (Ok(img), PullPolicy::Always) if names_an_id(name) => return Ok(img),
        (Ok(_), PullPolicy::Always) => {}
        (Err(full), PullPolicy::Never) => {
            return Err(format!("Error response from daemon: No such image: {full}"));
        }
        (Err(full), PullPolicy::Missing) => eprintln!("Unable to find image '{full}' locally"),
        (Err(_), PullPolicy::Always) => {}
    }
    let reference = ImageRef::parse(name).map_err(|e| e.to_string())?;
    let progress = |e: Event| {
        if let Some(l) = line(e) {
            eprintln!("{l}");
        }
    };
    let pulled = kiln_registry::pull(
        store,
        &reference,
        &PullOptions {
            settings: &Settings::from_env(),
            platform: platform.cloned().unwrap_or_else(Platform::host),
            progress: &progress,
        },
    )
    .map_err(|e| format!("Error response from daemon: {e}"))?;
    eprintln!("Digest: {}", pulled.digest);
    let familiar = pulled.reference.familiar();
    if pulled.up_to_date {
        eprintln!("Status: Image is up to date for {familiar}");
    } else {
        eprintln!("Status: Downloaded newer image for {familiar}");
    }
    Ok(pulled.image)
}

/// `build --push`, `-o type=registry`, `-o type=image,push=true`: pushes the built image
/// `image_id` (an image ID, or an index digest) under each of `names` with docker push's
/// lines on stderr (none when `quiet`). A name with `true` is a tag the build just set and
/// is pushed as `kiln push` would; one with `false` (`type=registry,name=`) is pushed without
/// tagging the store, and an image that ends with no tag at all is then dropped from the
/// image list (its layers stay in the build cache), as buildx's registry exporter loads
/// nothing. Layers the store keeps uncompressed go as `compression`. Returns the last
/// manifest digest pushed, or `failed to push NAME: WHY`.
pub(crate) fn push_built(
    store: &Store,
    image_id: &str,
    names: &[(String, bool)],
    compression: Compression,
    quiet: bool,
) -> Result<Option<kiln_image::Digest>, String> {
    let id = kiln_image::Digest::parse(image_id)
        .map_err(|e| format!("the built image {image_id:?}: {e}"))?;
    let pushed = push_names(store, &id, names, compression, quiet);
    if names.iter().any(|(_, tagged)| !tagged) {
        let untagged = match store.index(&id) {
            Ok(Some(ix)) => ix.tags.is_empty(),
            _ => store
                .image(&id)
                .ok()
                .flatten()
                .is_some_and(|i| i.tags.is_empty()),
        };
        if untagged {
            // Refused when something else holds it (a container, a child image): it stays.
            let _ = store.remove_image(&id.to_string(), false);
        }
    }
    pushed
}

fn push_names(
    store: &Store,
    id: &kiln_image::Digest,
    names: &[(String, bool)],
    compression: Compression,
    quiet: bool,
) -> Result<Option<kiln_image::Digest>, String> {
    let settings = Settings::from_env();
    let progress = |e: Event| {
        if !quiet && let Some(l) = line(e) {
            eprintln!("{l}");
        }
    };
    let mut last = None;
    for (n, tagged) in names {
        let reference = ImageRef::parse(n).map_err(|e| format!("failed to push {n}: {e}"))?;
        let opts = PushOptions {
            settings: &settings,
            compression,
            progress: &progress,
            chunk_size: None,
        };
        let pushed = if *tagged {
            kiln_registry::push(store, &reference, &opts)
        } else {
            kiln_registry::push_image(store, id, &reference, &opts)
        }
        .map_err(|e| format!("failed to push {n}: {e}"))?;
        if !quiet {
            eprintln!(
                "{}: digest: {} size: {}",
                pushed.tag, pushed.digest, pushed.size
            );
        }
        last = Some(pushed.digest);
    }
    Ok(last)
}
