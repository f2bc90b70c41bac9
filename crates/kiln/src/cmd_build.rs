//! Placeholder: no commands yet.

use std::process::ExitCode;

use clap::Subcommand;

use crate::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum Command {}

pub fn run(cmd: Command, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {}
}
