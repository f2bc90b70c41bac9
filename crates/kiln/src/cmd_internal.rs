//! Hidden internal subcommands: plumbing for debugging and benchmarks, not a user interface.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use kiln_runtime::oci_spec::runtime::Spec;
use kiln_runtime::{Executor, ExitStatus, Stdio};

use crate::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run an OCI bundle (`BUNDLE/config.json`) with kiln's runtime, like `runc run`, and exit
    /// with the container's status (128+N for signal N).
    #[command(name = "__run-bundle", hide = true)]
    RunBundle {
        /// `embedded` (kiln's own executor), or an OCI runtime name or path (runc, crun).
        #[arg(long, default_value = "embedded")]
        runtime: String,
        /// Bundle directory holding config.json (a relative root.path is relative to it).
        bundle: PathBuf,
    },
    /// The supervisor of a detached container (`kiln run -d`, `kiln start`): with `--detach`,
    /// start it in the background and return.
    #[command(name = "__container-supervise", hide = true)]
    ContainerSupervise {
        #[arg(long)]
        detach: bool,
        /// The container's ID.
        id: String,
    },
}

pub fn run(cmd: Command, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::RunBundle { runtime, bundle } => run_bundle(&runtime, &bundle),
        Command::ContainerSupervise { detach, id } => {
            crate::cmd_container::supervisor::internal(&global.store_root(), &id, detach)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_bundle(runtime: &str, bundle: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = bundle.join("config.json");
    let mut spec =
        Spec::load(&config).with_context(|| format!("cannot read {}", config.display()))?;
    if let Some(root) = spec.root_mut().as_mut()
        && root.path().is_relative()
    {
        let abs = bundle.join(root.path());
        root.set_path(abs);
    }
    let executor = Executor::from_name(runtime)?;
    let status = match executor.run(&spec, Stdio::inherit()?) {
        Ok(status) => status,
        Err(e) => match e.exit_code() {
            // A missing or non-executable program exits 127/126, as a shell would.
            Some(code) => {
                eprintln!("kiln: {e}");
                return Ok(ExitCode::from(code as u8));
            }
            None => return Err(e.into()),
        },
    };
    Ok(match status {
        ExitStatus::Code(c) => ExitCode::from(c as u8),
        ExitStatus::Signal(s) => ExitCode::from(128u8.wrapping_add(s as u8)),
    })
}
