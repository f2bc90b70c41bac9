//! Platforms in planning: the automatic platform ARGs BuildKit defines, the platform a stage
//! is built for, and which stages one multi-platform build plans once for every target.
//!
//! BuildKit's rules (`dockerfile2llb`): a stage is built for its `FROM --platform` (expanded
//! with the global scope), else for its parent stage's platform when it starts from one, else
//! for the target platform. `TARGET*` always name the build's target (also inside a
//! `--platform=$BUILDPLATFORM` stage) and `BUILD*` the machine kiln runs on.
//!
//! BuildKit shares work between platforms by content (identical LLB vertices merge). kiln
//! decides it per stage before solving: a stage whose platform does not come from the target
//! (`FROM --platform=$BUILDPLATFORM` or a literal), that reads no `TARGET*` ARG (FROM line
//! and instructions) and whose stage inputs are shared too, is planned once and its steps
//! serve every platform.

use kiln_dockerfile::EvalOptions;
use kiln_image::Platform;

use crate::error::{BuildError, Result};

/// The names BuildKit defines for the target platform.
pub const TARGET_ARGS: [&str; 4] = ["TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT"];

/// kiln_image's normalized platform in the Dockerfile evaluator's terms (`arm64` has no
/// variant, `arm` is `arm/v7`, as BuildKit's `TARGETVARIANT` is).
pub fn eval_platform(p: &Platform) -> kiln_dockerfile::Platform {
    kiln_dockerfile::Platform {
        os: p.os.clone(),
        arch: p.architecture.clone(),
        variant: p.variant.clone(),
    }
}

/// Evaluation options of one target platform (the build platform is the host's).
pub fn eval_options(
    build_args: &std::collections::BTreeMap<String, String>,
    target: &Platform,
) -> EvalOptions {
    EvalOptions {
        build_args: build_args.clone(),
        target_platform: eval_platform(target),
        build_platform: eval_platform(&Platform::host()),
    }
}

/// A `--platform` value (of `kiln build` or an expanded `FROM --platform`), normalized. Only
/// Linux images can be built: kiln runs Linux containers.
pub fn parse_platform(value: &str) -> std::result::Result<Platform, String> {
    let p = Platform::parse(value).map_err(|e| e.to_string())?;
    if p.os != "linux" {
        return Err(format!(
            "{value:?}: kiln builds Linux images only (operating system {:?} is not supported)",
            p.os
        ));
    }
    Ok(p)
}

/// `kiln build --platform a,b,...`: each normalized, duplicates refused (BuildKit refuses
/// them too: two manifests of one platform make an ambiguous index).
pub fn parse_platform_list(value: &str) -> Result<Vec<Platform>> {
    let mut out: Vec<Platform> = Vec::new();
    for part in value.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(BuildError::plan(format!(
                "--platform {value:?}: empty platform in the list"
            )));
        }
        let p = parse_platform(part).map_err(|m| BuildError::plan(format!("--platform: {m}")))?;
        if out.contains(&p) {
            return Err(BuildError::plan(format!(
                "--platform {value:?}: platform {p} is named twice"
            )));
        }
        out.push(p);
    }
    Ok(out)
}

/// Whether this machine runs `platform`'s programs (natively, or through a binfmt_misc
/// handler with the F flag, such as QEMU's): checked for every stage with RUN steps before
/// the build starts, so it fails at once and says what to install.
pub fn check_runnable(platform: &Platform, stage: &str) -> Result<()> {
    // The host's stages (every stage of most builds) read nothing under /proc.
    if kiln_runtime::binfmt::native_architectures().contains(&platform.architecture.as_str()) {
        return Ok(());
    }
    let p = platform.to_string();
    match kiln_runtime::binfmt::unsupported_message(&p, &platform.architecture) {
        None => Ok(()),
        Some(message) => Err(BuildError::NoEmulator {
            stage: format!("stage {stage} runs RUN steps for {p}"),
            message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_list_is_normalized_and_checked() {
        let l = parse_platform_list("linux/amd64, linux/aarch64,linux/arm").unwrap();
        let s: Vec<String> = l.iter().map(|p| p.to_string()).collect();
        assert_eq!(s, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
        assert!(parse_platform_list("linux/arm64,linux/arm64/v8").is_err());
        assert!(parse_platform_list("linux/amd64,").is_err());
        let e = parse_platform_list("windows/amd64")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Linux images only"), "{e}");
    }

    #[test]
    fn eval_platform_has_buildkits_variants() {
        let arm64 = eval_platform(&Platform::parse("linux/arm64/v8").unwrap());
        assert_eq!(arm64.to_string(), "linux/arm64");
        assert_eq!(arm64.variant, None);
        let arm = eval_platform(&Platform::parse("linux/arm").unwrap());
        assert_eq!(arm.to_string(), "linux/arm/v7");
    }
}
