//! `kiln builder prune`: the build cache, as `docker builder` manages it.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use crate::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage the build cache.
    Builder {
        #[command(subcommand)]
        command: BuilderCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum BuilderCommand {
    /// Remove build cache.
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all build cache, not only what exceeds --keep-storage.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Keep at most this much cache (e.g. 2GB, 500MB).
    #[arg(long, value_name = "SIZE")]
    pub keep_storage: Option<String>,
    /// Filters: until=DURATION (e.g. 24h).
    #[arg(long, value_name = "FILTER")]
    pub filter: Vec<String>,
}

pub fn run(cmd: Command, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Builder {
            command: BuilderCommand::Prune(args),
        } => prune(args, global),
    }
}

fn prune(args: PruneArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let keep = match &args.keep_storage {
        Some(s) => Some(crate::progress::parse_size(s)?),
        None => None,
    };
    let mut until = None;
    for f in &args.filter {
        match f.split_once('=') {
            Some(("until", v)) => {
                let secs = crate::cmd_image::render::parse_go_duration(v).with_context(|| {
                    format!("invalid duration {v:?} in --filter: use e.g. 24h or 30m")
                })?;
                until = Some(std::time::Duration::from_secs(secs.max(0) as u64));
            }
            _ => bail!("unsupported --filter {f:?}: use until=DURATION"),
        }
    }
    if !args.force {
        // Without -a, a filter or --keep-storage, kiln removes every record (docker would
        // keep cache that images still use): say what will happen.
        let warning = if args.all || (keep.is_none() && until.is_none()) {
            "WARNING! This will remove all build cache."
        } else {
            "WARNING! This will remove the build cache that --filter or --keep-storage selects."
        };
        if !crate::cmd_image::confirm(warning)? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let reclaimed = kiln_build::prune_cache(&global.store_root(), args.all, keep, until, &|| {
        eprintln!("waiting for running builds to finish before pruning the build cache...")
    })?;
    println!(
        "Total:\t{}",
        crate::cmd_image::render::human_size(reclaimed)
    );
    Ok(ExitCode::SUCCESS)
}

