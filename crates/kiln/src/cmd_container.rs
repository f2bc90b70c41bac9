//! Container commands with docker's flags, output and exit codes: `run`, `create`, `start`,
//! `stop`, `restart`, `kill`, `rm`, `ps`, `logs`, `wait`, `rename`, `port`, `stats`, `top`,
//! `container inspect|prune|ls|...`. No daemon: each running container has its own supervisor
//! process (`cmd_container/supervisor.rs`); state lives in the store (docs/run.md).

mod attach;
mod cgroup;
mod cgroup_host;
mod commit;
mod commit_changes;
pub(crate) mod config;
mod cp;
mod diff;
mod exec;
mod health;
mod ids;
mod inspect;
mod io_stats;
mod lifecycle;
mod list;
mod logfile;
mod logs;
mod mounts;
pub(crate) mod net;
mod ps_filter;
mod resources;
mod restarting;
mod rootfs;
mod run_flags;
mod signal;
mod spec;
pub(crate) mod supervisor;
mod terminal;
mod timestamp;
mod volume;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kiln_store::Store;

use crate::GlobalArgs;

pub(crate) use inspect::{Doc as ContainerDoc, container_doc, inspect_containers};
pub(crate) use rootfs::writable_size;
pub(crate) use volume::{prune_unused as prune_volumes, usage as volume_usage};

/// `kiln diff CONTAINER` (docker's `diff`; `kiln diff IMAGE1 IMAGE2` compares images):
/// docker's `Error: No such container: X` and exit 1 when it is none.
pub(crate) fn diff_container(store_root: &std::path::Path, name: &str) -> anyhow::Result<ExitCode> {
    let store = Store::open(store_root)?;
    match diff::diff(&store, name) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            let msg = crate::cmd_image::message(&e);
            // docker's CLI prints a daemon's refusal as it came, without its own "Error: ".
            if msg.starts_with("Error response from daemon: ") {
                eprintln!("{msg}");
            } else {
                eprintln!("Error: {msg}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a command in a new container
    Run(RunArgs),
    /// Create a new container
    Create(RunArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// List containers
    Ps(PsArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(NamesArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Pause all processes within one or more containers
    Pause(NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(NamesArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
}

#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Run a command in a new container
    Run(RunArgs),
    /// Create a new container
    Create(RunArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// List containers
    #[command(alias = "list", alias = "ps")]
    Ls(PsArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(NamesArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Display detailed information on one or more containers
    Inspect(ContainerInspectArgs),
    /// Remove all stopped containers
    Prune(PruneArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Pause all processes within one or more containers
    Pause(NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(NamesArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(ContainerDiffArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
}

#[derive(Args, Debug)]
pub struct ContainerDiffArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// The flags `run` and `create` share.
#[derive(Args, Debug, Default)]
pub struct CreateArgs {
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container
    #[arg(long, value_name = "string")]
    pub name: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short, long, value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long, value_name = "list")]
    pub env_file: Vec<PathBuf>,
    /// Set meta data on a container
    #[arg(short, long, value_name = "list")]
    pub label: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long, value_name = "string")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "string")]
    pub workdir: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "string")]
    pub entrypoint: Option<String>,
    /// Connect a container to a network: private (default; also "bridge", "default"), host, none
    #[arg(long, alias = "net", value_name = "network", default_value = "private")]
    pub network: String,
    /// Publish a container's port(s) to the host
    #[arg(short, long, value_name = "list")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Container host name
    #[arg(long, value_name = "string")]
    pub hostname: Option<String>,
    /// Set custom DNS servers
    #[arg(long, value_name = "list")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long, value_name = "list")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long, alias = "dns-opt", value_name = "list")]
    pub dns_option: Vec<String>,
    /// Ulimit options (name=soft[:hard])
    #[arg(long, value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Size of /dev/shm
    #[arg(long, value_name = "bytes")]
    pub shm_size: Option<String>,
    /// Add additional groups to join
    #[arg(long, value_name = "list")]
    pub group_add: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long, value_name = "list")]
    pub label_file: Vec<PathBuf>,
    /// Sysctl options (not supported by kiln: refused)
    #[arg(long, value_name = "map")]
    pub sysctl: Vec<String>,
    /// IPC mode to use (kiln: private only)
    #[arg(long, value_name = "string")]
    pub ipc: Option<String>,
    /// PID namespace to use (kiln: the container's own only)
    #[arg(long, value_name = "string")]
    pub pid: Option<String>,
    /// UTS namespace to use (kiln: the container's own only)
    #[arg(long, value_name = "string")]
    pub uts: Option<String>,
    /// User namespace to use (not supported by kiln: refused)
    #[arg(long, value_name = "string")]
    pub userns: Option<String>,
    /// Logging driver for the container (kiln: json-file only)
    #[arg(long, value_name = "string")]
    pub log_driver: Option<String>,
    /// Log driver options (not supported by kiln: refused)
    #[arg(long, value_name = "list")]
    pub log_opt: Vec<String>,
    /// Disable OOM Killer (not supported by kiln: refused)
    #[arg(long)]
    pub oom_kill_disable: bool,
    /// Add a host device to the container (HOST[:CONTAINER][:rwm])
    #[arg(long, value_name = "list")]
    pub device: Vec<String>,
    /// Write the container ID to the file
    #[arg(long, value_name = "string")]
    pub cidfile: Option<PathBuf>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long, value_name = "list")]
    pub add_host: Vec<String>,
    /// Bind mount a volume (HOST:CONTAINER[:ro], NAME:CONTAINER[:ro], CONTAINER)
    #[arg(short, long, value_name = "list")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container (type=bind|volume|tmpfs,source=,target=,readonly)
    #[arg(long, value_name = "mount")]
    pub mount: Vec<String>,
    /// Mount volumes from the specified container(s) (CONTAINER[:ro|:rw])
    #[arg(long, value_name = "list")]
    pub volumes_from: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    pub read_only: bool,
    /// Mount a tmpfs directory
    #[arg(long, value_name = "list")]
    pub tmpfs: Vec<String>,
    /// Add Linux capabilities
    #[arg(long, value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long, value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Security Options (no-new-privileges)
    #[arg(long, value_name = "list")]
    pub security_opt: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Memory limit
    #[arg(short, long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long, value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long, value_name = "bytes")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long, value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Signal to stop a container
    #[arg(long, value_name = "string")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long, value_name = "int")]
    pub stop_timeout: Option<i64>,
    /// Restart policy to apply when a container exits (no, always, unless-stopped, on-failure[:N])
    #[arg(long, value_name = "string", default_value = "no")]
    pub restart: String,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, value_name = "string", default_value = "missing")]
    pub pull: String,
    /// Set platform if server is multi-platform capable (picks it from an index, pulls it;
    /// a foreign one runs under QEMU through binfmt_misc)
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Command to run to check health
    #[arg(long, value_name = "string")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long, value_name = "duration")]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)
    #[arg(long, value_name = "duration")]
    pub health_start_period: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long, value_name = "duration")]
    pub health_timeout: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long)]
    pub no_healthcheck: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    #[command(flatten)]
    pub create: CreateArgs,
    /// The image, then the command and its arguments. Before the image a word with a dash is
    /// kiln's flag (an unknown one is refused, as docker does); from the image on, every word
    /// is the command's (`trailing_var_arg`), dashes and all.
    #[arg(required = true, value_name = "IMAGE [COMMAND] [ARG...]", trailing_var_arg = true, num_args = 1..)]
    pub image_and_command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    /// Start every container the filters select (podman's; see docs/run.md "After a reboot")
    #[arg(long, conflicts_with_all = ["attach", "interactive", "containers"])]
    pub all: bool,
    /// With --all: restart-policy=POLICY, stopped-by-user=true|false (a key given twice: either)
    #[arg(long, value_name = "filter", requires = "all")]
    pub filter: Vec<String>,
    #[arg(required_unless_present = "all", value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, value_name = "bool", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait for stop before killing it
    #[arg(short, long, value_name = "int")]
    pub time: Option<i64>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, value_name = "string", default_value = "KILL")]
    pub signal: String,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    pub latest: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, value_name = "int", default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
    /// Filter output based on conditions provided
    #[arg(short, long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print containers using a Go template
    #[arg(
        long,
        value_name = "string",
        default_value = "",
        hide_default_value = true
    )]
    pub format: String,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, value_name = "string", default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)
    #[arg(long, value_name = "string", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)
    #[arg(long, value_name = "string", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short, long, value_name = "list")]
    pub env: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long, value_name = "string")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "string")]
    pub workdir: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// The command and its arguments.
    #[arg(required = true, value_name = "COMMAND [ARG...]", trailing_var_arg = true, allow_hyphen_values = true, num_args = 1..)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NamesArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

#[derive(Args, Debug)]
pub struct ContainerInspectArgs {
    /// Format the output using the given Go template
    #[arg(
        short,
        long,
        value_name = "string",
        default_value = "",
        hide_default_value = true
    )]
    pub format: String,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (not supported yet: refused)
    #[arg(long, value_name = "filter")]
    pub filter: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Pretty-print images using a Go template
    #[arg(
        long,
        value_name = "string",
        default_value = "",
        hide_default_value = true
    )]
    pub format: String,
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// ps options (passed to the host's ps)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ps OPTIONS"
    )]
    pub ps_args: Vec<String>,
}

/// A failure whose message was printed and whose exit code is chosen.
#[derive(Debug)]
pub(crate) struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}
impl std::error::Error for Exit {}

pub fn run(cmd: Command, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(global.store_root())?;
    let r = match cmd {
        Command::Run(a) | Command::Container(ContainerCommand::Run(a)) => {
            return Ok(lifecycle::run(&store, a, true));
        }
        Command::Create(a) | Command::Container(ContainerCommand::Create(a)) => {
            return Ok(lifecycle::run(&store, a, false));
        }
        Command::Start(a) | Command::Container(ContainerCommand::Start(a)) => {
            lifecycle::start(&store, a)
        }
        Command::Stop(a) | Command::Container(ContainerCommand::Stop(a)) => {
            lifecycle::stop(&store, a, false)
        }
        Command::Restart(a) | Command::Container(ContainerCommand::Restart(a)) => {
            lifecycle::stop(&store, a, true)
        }
        Command::Kill(a) | Command::Container(ContainerCommand::Kill(a)) => {
            lifecycle::kill(&store, a)
        }
        Command::Rm(a) | Command::Container(ContainerCommand::Rm(a)) => lifecycle::rm(&store, a),
        Command::Ps(a) | Command::Container(ContainerCommand::Ls(a)) => list::ps(&store, a),
        Command::Logs(a) | Command::Container(ContainerCommand::Logs(a)) => logs::logs(&store, a),
        Command::Exec(a) | Command::Container(ContainerCommand::Exec(a)) => exec::exec(&store, a),
        Command::Wait(a) | Command::Container(ContainerCommand::Wait(a)) => {
            lifecycle::wait(&store, a)
        }
        Command::Rename(a) | Command::Container(ContainerCommand::Rename(a)) => {
            lifecycle::rename(&store, a)
        }
        Command::Port(a) | Command::Container(ContainerCommand::Port(a)) => list::port(&store, a),
        Command::Stats(a) | Command::Container(ContainerCommand::Stats(a)) => {
            list::stats(&store, a)
        }
        Command::Top(a) | Command::Container(ContainerCommand::Top(a)) => list::top(&store, a),
        Command::Container(ContainerCommand::Inspect(a)) => {
            inspect_containers(&store, &a.format, a.size, &a.containers, true)
        }
        Command::Container(ContainerCommand::Prune(a)) => lifecycle::prune(&store, a),
        Command::Volume(v) => volume::run(&store, v),
        Command::Container(ContainerCommand::Diff(a)) => diff::diff(&store, &a.container),
        Command::Cp(a) | Command::Container(ContainerCommand::Cp(a)) => cp::cp(&store, a),
        Command::Commit(a) | Command::Container(ContainerCommand::Commit(a)) => {
            commit::commit(&store, a)
        }
        Command::Attach(a) | Command::Container(ContainerCommand::Attach(a)) => {
            lifecycle::attach(&store, a)
        }
        Command::Pause(a) | Command::Container(ContainerCommand::Pause(a)) => {
            lifecycle::pause(&store, a, true)
        }
        Command::Unpause(a) | Command::Container(ContainerCommand::Unpause(a)) => {
            lifecycle::pause(&store, a, false)
        }
    };
    match r {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                return Ok(ExitCode::from(*code));
            }
            if let Some(crate::cmd_image::ReportedExit(code)) = e.downcast_ref() {
                return Ok(ExitCode::from(*code));
            }
            if e.downcast_ref::<crate::cmd_image::Reported>().is_some() {
                return Ok(ExitCode::FAILURE);
            }
            let msg = crate::cmd_image::message(&e);
            // docker's CLI prints a daemon's refusal as it came, without its own "Error: ".
            if msg.starts_with("Error response from daemon: ") {
                eprintln!("{msg}");
            } else {
                eprintln!("Error: {msg}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
