//! `kiln diff IMAGE1 IMAGE2`: files added (A), removed (D) and changed (C) between the final
//! filesystems of two images, and their config differences (kiln-report does the work).
//! `kiln diff CONTAINER` (one argument) is docker's `diff` of a container
//! (`cmd_container/diff.rs`).

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use kiln_store::Store;

use crate::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show the file and config changes from IMAGE1 to IMAGE2, or (one argument) a container's
    /// changes to its image's files, as docker's diff
    Diff(DiffArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// One line per path (`A`, `D`, `C` with what changed), then config lines.
    Text,
    /// A JSON document: files, config, stat.
    Json,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    pub format: DiffFormat,
    /// Show only counts and byte totals
    #[arg(long)]
    pub stat: bool,
    /// Exit with 1 if the images differ, 0 if not (as `git diff --exit-code`)
    #[arg(long)]
    pub exit_code: bool,
    /// The image to compare from.
    #[arg(value_name = "IMAGE1")]
    pub from: String,
    /// The image to compare to (without it, IMAGE1 names a container).
    #[arg(value_name = "IMAGE2")]
    pub to: Option<String>,
}

pub fn run(cmd: Command, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let Command::Diff(a) = cmd;
    let Some(to) = &a.to else {
        if a.stat || a.exit_code || a.format != DiffFormat::Text {
            anyhow::bail!("--format, --stat and --exit-code compare two images: give IMAGE2");
        }
        return crate::cmd_container::diff_container(&global.store_root(), &a.from);
    };
    let store = Store::open(global.store_root())?;
    let images = kiln_report::load_images(&store, &[&a.from, to])?;
    let d = kiln_report::diff::diff_images(&images[0], &images[1]);
    let out = match (a.format, a.stat) {
        (DiffFormat::Text, false) => kiln_report::diff::render_text(&d),
        (DiffFormat::Text, true) => kiln_report::diff::render_stat(&d),
        (DiffFormat::Json, false) => serde_json::to_string_pretty(&d)? + "\n",
        (DiffFormat::Json, true) => serde_json::to_string_pretty(&d.stat)? + "\n",
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(if a.exit_code && !d.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
