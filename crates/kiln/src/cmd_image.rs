//! Image commands with docker's flags and output: `load`, `save`, `images` / `image ls`,
//! `tag`, `rmi` / `image rm`, `image prune`, `inspect` / `image inspect`, `history`, and
//! `system df|prune|check`. Errors print as `Error: ...` (docker's text without "response
//! from daemon") and exit 1; usage errors exit as docker's (1 for a wrong number of arguments, 125 for flags; `usage.rs`).

pub mod gotemplate;
mod inspect;
mod list;
mod manage;
pub(crate) mod render;
mod system;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Args, Subcommand, ValueEnum};
use kiln_store::Store;

use crate::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// List images
    Images(ImagesArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Return low-level information on images (and kiln's container records)
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Manage kiln's store
    #[command(subcommand)]
    System(SystemCommand),
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(RmiArgs),
    /// Remove unused images
    Prune(ImagePruneArgs),
    /// Display detailed information on one or more images
    Inspect(ImageInspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Show kiln disk usage
    Df(DfArgs),
    /// Remove unused data
    Prune(SystemPruneArgs),
    /// Verify every blob's digest and every reference; with --repair, remove what is broken
    Check(CheckArgs),
    /// Show the platforms this machine builds and runs: natively and emulated (binfmt_misc)
    Info,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file (or OCI layout directory), instead of STDIN
    #[arg(short, long, value_name = "string")]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ArchiveKind {
    /// docker-archive (what `docker save` writes).
    Docker,
    /// oci-archive (a tar of an OCI image layout).
    Oci,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "string")]
    pub output: Option<PathBuf>,
    /// Archive format
    #[arg(long, value_enum, default_value_t = ArchiveKind::Docker)]
    pub format: ArchiveKind,
    /// Save this platform's image of a multi-platform image (default: every platform with
    /// --format oci; the host's with --format docker)
    #[arg(long, value_name = "string", value_parser = parse_platform)]
    pub platform: Option<kiln_image::Platform>,
    /// Images to save.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output based on conditions provided (dangling=, reference=, before=, since=, label=)
    #[arg(short, long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print images using a Go template ('table', 'table TEMPLATE', 'json')
    #[arg(
        long,
        value_name = "string",
        default_value = "",
        hide_default_value = true
    )]
    pub format: String,
    /// List multi-platform images as a tree: each image, then one line per platform
    #[arg(long)]
    pub tree: bool,
    /// Only images of this repository[:tag].
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// Source image.
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    /// New name.
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents (kiln never deletes parents with a child)
    #[arg(long)]
    pub no_prune: bool,
    /// Images to remove
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ImagePruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. 'until=<timestamp>'; until=, label=, label!=)
    #[arg(long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(
        short,
        long,
        value_name = "string",
        default_value = "",
        hide_default_value = true
    )]
    pub format: String,
    /// Display total file sizes if the type is container
    #[arg(short, long)]
    pub size: bool,
    /// Return JSON for specified type (image or container)
    #[arg(long = "type", value_name = "string", value_parser = parse_inspect_type)]
    pub kind: Option<InspectType>,
    /// Images (or, with --type container, containers) to inspect
    #[arg(required = true, value_name = "NAME|ID")]
    pub images: Vec<String>,
    /// `image inspect --platform` (docker's `inspect` has no such flag).
    #[arg(skip)]
    pub platform: Option<kiln_image::Platform>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InspectType {
    /// An image.
    Image,
    /// A container record.
    Container,
}

fn parse_inspect_type(s: &str) -> Result<InspectType, String> {
    match s {
        "image" => Ok(InspectType::Image),
        "container" => Ok(InspectType::Container),
        _ => Err(format!("{s:?} is not a valid value for --type")),
    }
}

#[derive(Args, Debug)]
pub struct ImageInspectArgs {
    /// Format the output using the given Go template
    #[arg(
        short,
        long,
        value_name = "string",
        default_value = "",
        hide_default_value = true
    )]
    pub format: String,
    /// Inspect this platform's image of a multi-platform image (os[/arch[/variant]])
    #[arg(long, value_name = "string", value_parser = parse_platform)]
    pub platform: Option<kiln_image::Platform>,
    /// Images to inspect
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

fn parse_platform(s: &str) -> Result<kiln_image::Platform, String> {
    kiln_image::Platform::parse(s).map_err(|e| e.to_string())
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Pretty-print images using a Go template
    #[arg(
        long,
        value_name = "string",
        default_value = "",
        hide_default_value = true
    )]
    pub format: String,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "true|false",
          hide_possible_values = true)]
    pub human: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// The image
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

#[derive(Args, Debug)]
pub struct DfArgs {
    /// Pretty-print images using a Go template
    #[arg(
        long,
        value_name = "string",
        default_value = "",
        hide_default_value = true
    )]
    pub format: String,
    /// Show detailed information on space usage
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Args, Debug)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Prune volumes
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Remove what is broken (corrupt blobs and the images needing them, dangling records)
    #[arg(long)]
    pub repair: bool,
}

/// A failure already printed as docker prints it; the command exits 1.
#[derive(Debug)]
pub(crate) struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed")
    }
}
impl std::error::Error for Reported {}

/// A failure already printed, with docker's exit code for it (`inspect`: 64 for a template
/// that does not parse).
#[derive(Debug)]
pub(crate) struct ReportedExit(pub u8);

impl std::fmt::Display for ReportedExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed (exit {})", self.0)
    }
}
impl std::error::Error for ReportedExit {}

pub fn run(cmd: Command, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match dispatch(cmd, global) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.downcast_ref::<Reported>().is_some() => Ok(ExitCode::FAILURE),
        Err(e) if e.downcast_ref::<ReportedExit>().is_some() => Ok(e
            .downcast_ref::<ReportedExit>()
            .map_or(ExitCode::FAILURE, |r| ExitCode::from(r.0))),
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("Error: {}", message(&e));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The error chain in one line; store errors already carry their context.
/// For `kiln run`: the image, or (when it is not in the store) the name docker prints in
/// "Unable to find image 'NAME' locally".
pub(crate) fn resolve_named_for_run(
    store: &Store,
    name: &str,
) -> Result<kiln_store::ImageRecord, String> {
    store
        .resolve_image(name)
        .map_err(|_| match kiln_image::ImageRef::parse_named(name) {
            Ok(r) if r.tag().is_none() && r.digest().is_none() => format!("{name}:latest"),
            _ => name.to_string(),
        })
}

/// Asks `warning` + "Are you sure you want to continue? [y/N]" on the terminal.
pub(crate) fn confirm_prompt(warning: &str) -> anyhow::Result<bool> {
    manage::confirm(warning.trim_end_matches("\nAre you sure you want to continue?"))
}

pub(crate) fn message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = c.to_string();
        if parts.last().is_some_and(|p| p.contains(&s)) {
            continue;
        }
        parts.push(s);
    }
    parts.join(": ")
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn open_store(global: &GlobalArgs) -> anyhow::Result<Store> {
    let root = global.store_root();
    Ok(Store::open(&root)?)
}

fn dispatch(cmd: Command, global: &GlobalArgs) -> anyhow::Result<()> {
    let store = open_store(global)?;
    match cmd {
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => manage::load(&store, a),
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => manage::save(&store, a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => list::images(&store, a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => manage::tag(&store, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => manage::rmi(&store, a),
        Command::Image(ImageCommand::Prune(a)) => manage::prune(&store, a),
        Command::Inspect(a) => inspect::inspect(&store, a),
        Command::Image(ImageCommand::Inspect(a)) => inspect::inspect(
            &store,
            InspectArgs {
                format: a.format,
                size: false,
                kind: Some(InspectType::Image),
                images: a.images,
                platform: a.platform,
            },
        ),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => {
            inspect::history(&store, a)
        }
        Command::System(SystemCommand::Df(a)) => system::df(&store, a),
        Command::System(SystemCommand::Prune(a)) => system::prune(&store, a),
        Command::System(SystemCommand::Check(a)) => system::check(&store, a),
        Command::System(SystemCommand::Info) => system::info(&store),
    }
}
