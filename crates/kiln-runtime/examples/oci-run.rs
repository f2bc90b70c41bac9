//! A minimal OCI runtime front end over kiln-runtime, for benchmarks and debugging:
//! `oci-run [--runtime embedded|runc|PATH] BUNDLE` (or `oci-run --spec` for a default
//! config.json) runs `BUNDLE/config.json` with this
//! process's stdio and exits with the container's status (128+N for signal N, 127/126 for exec
//! errors, 125 for other failures, like docker).

use std::path::PathBuf;
use std::process::ExitCode;

use kiln_runtime::oci_spec::runtime::Spec;
use kiln_runtime::{Executor, ExitStatus, Stdio};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut runtime = String::from("embedded");
    let mut bundle = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runtime" => runtime = args.next().unwrap_or_default(),
            // Like `runc spec`: print kiln's default spec (root "rootfs", `sh`).
            "--spec" => {
                let mut spec = kiln_runtime::docker_default_spec();
                if let Some(root) = spec.root_mut().as_mut() {
                    root.set_path("rootfs".into());
                }
                match serde_json::to_string_pretty(&spec) {
                    Ok(json) => println!("{json}"),
                    Err(e) => eprintln!("oci-run: {e}"),
                }
                return ExitCode::SUCCESS;
            }
            _ => bundle = Some(PathBuf::from(a)),
        }
    }
    let Some(bundle) = bundle else {
        eprintln!("usage: oci-run [--runtime embedded|runc|PATH] BUNDLE");
        return ExitCode::from(2);
    };
    match run(&runtime, &bundle) {
        Ok(ExitStatus::Code(c)) => ExitCode::from(c as u8),
        Ok(ExitStatus::Signal(s)) => ExitCode::from(128u8.wrapping_add(s as u8)),
        Err(e) => {
            eprintln!("oci-run: {e}");
            let code = e
                .downcast_ref::<kiln_runtime::RuntimeError>()
                .and_then(|e| e.exit_code())
                .unwrap_or(125);
            ExitCode::from(code as u8)
        }
    }
}

fn run(runtime: &str, bundle: &std::path::Path) -> Result<ExitStatus, Box<dyn std::error::Error>> {
    let mut spec = Spec::load(bundle.join("config.json"))?;
    if let Some(root) = spec.root_mut().as_mut()
        && root.path().is_relative()
    {
        let abs = bundle.join(root.path());
        root.set_path(abs);
    }
    let executor = Executor::from_name(runtime)?;
    Ok(executor.run(&spec, Stdio::inherit()?)?)
}
