//! docker's flags that are not the build's own options: the RUN environment (`--add-host`,
//! `--shm-size`, `--ulimit`), `--pull`'s policy, the build cache's `--cache-from`/`--cache-to`, and
//! the flags that mean nothing for kiln (checked as docker checks them, then one warning each).
//! Errors are printed as docker prints flag errors and exit 125.

use std::process::ExitCode;

use kiln_build::options::BuildOptions;

use crate::cmd_registry::PullPolicy;

use super::BuildArgs;

/// A flag kiln refuses before anything runs, printed as docker prints flag errors (exit 125).
#[derive(Debug)]
pub(super) enum FlagError {
    /// `invalid argument "V" for "--F" flag: WHY`.
    Invalid {
        flag: &'static str,
        value: String,
        why: String,
    },
    /// A flag kiln cannot honour yet, and what to do instead.
    Unsupported(String),
}

impl FlagError {
    pub(super) fn invalid(flag: &'static str, value: &str, why: impl Into<String>) -> FlagError {
        FlagError::Invalid {
            flag,
            value: value.to_string(),
            why: why.into(),
        }
    }

    pub(super) fn report(&self) -> ExitCode {
        match self {
            FlagError::Invalid { flag, value, why } => {
                eprintln!(
                    "invalid argument {value:?} for \"{flag}\" flag: {why}\nSee 'kiln build --help'."
                )
            }
            FlagError::Unsupported(m) => eprintln!("ERROR: {m}"),
        }
        ExitCode::from(125)
    }
}

/// docker's boolean flag values (Go's `strconv.ParseBool`).
fn parse_bool(flag: &'static str, v: &str) -> Result<bool, FlagError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(FlagError::invalid(
            flag,
            v,
            format!("strconv.ParseBool: parsing {v:?}: invalid syntax"),
        )),
    }
}

fn parse_int(flag: &'static str, v: &str) -> Result<i64, FlagError> {
    v.parse().map_err(|_| {
        FlagError::invalid(
            flag,
            v,
            format!("strconv.ParseInt: parsing {v:?}: invalid syntax"),
        )
    })
}

fn parse_size(flag: &'static str, v: &str) -> Result<u64, FlagError> {
    kiln_build::options::parse_ram_size(v).map_err(|why| FlagError::invalid(flag, v, why))
}

/// The RUN-environment flags (`--add-host`, `--shm-size`, `--ulimit`) into `opts`; the
/// registry flags refused; the flags that mean nothing for kiln checked as docker checks
/// them and returned as warning lines.
pub(super) fn docker_flags(
    args: &BuildArgs,
    opts: &mut BuildOptions,
) -> Result<Vec<String>, FlagError> {
    use kiln_build::options::{ExtraHost, Ulimit};
    for h in &args.add_hosts {
        let host = ExtraHost::parse(h).map_err(|why| FlagError::invalid("--add-host", h, why))?;
        opts.extra_hosts.push(host);
    }
    if let Some(v) = &args.shm_size {
        let n = parse_size("--shm-size", v)?;
        // 0 is docker's "unset": the default size.
        opts.shm_size = (n > 0).then_some(n);
    }
    for u in &args.ulimits {
        let limit = Ulimit::parse(u).map_err(|why| FlagError::invalid("--ulimit", u, why))?;
        opts.ulimits.retain(|l| l.resource != limit.resource);
        opts.ulimits.push(limit);
    }
    for c in &args.cache_from {
        let import = kiln_build::cache_options::CacheImport::parse(c)
            .map_err(|why| FlagError::invalid("--cache-from", c, why))?;
        opts.cache_from.push(import);
    }
    for c in &args.cache_to {
        let export = kiln_build::cache_options::CacheExport::parse(c)
            .map_err(|why| FlagError::invalid("--cache-to", c, why))?;
        opts.cache_to.push(export);
    }

    let n = &args.noop;
    let mut warnings = Vec::new();
    let mut warn = |flag: &str, why: &str| {
        warnings.push(format!("WARNING: {flag} has no effect: {why}"));
    };
    let containers = "kiln runs no intermediate containers to keep or remove";
    if let Some(v) = &n.rm {
        parse_bool("--rm", v)?;
        warn("--rm", containers);
    }
    if let Some(v) = &n.force_rm {
        parse_bool("--force-rm", v)?;
        warn("--force-rm", containers);
    }
    if let Some(v) = &n.compress {
        parse_bool("--compress", v)?;
        warn(
            "--compress",
            "kiln sends the context to no daemon (--compression sets the layers' compression)",
        );
    }
    if let Some(v) = &n.disable_content_trust {
        if !parse_bool("--disable-content-trust", v)? {
            return Err(FlagError::Unsupported(
                "--disable-content-trust=false: kiln cannot verify image signatures (Docker Content Trust); build without it".into(),
            ));
        }
        warn(
            "--disable-content-trust",
            "kiln verifies no image signatures (Docker Content Trust)",
        );
    }
    if let Some(v) = &n.isolation {
        if !matches!(v.as_str(), "" | "default") {
            return Err(FlagError::invalid(
                "--isolation",
                v,
                "invalid isolation: only \"default\" exists on Linux",
            ));
        }
        warn(
            "--isolation",
            "RUN steps always use Linux namespaces, the only isolation on Linux",
        );
    }
    let cgroups = "kiln sets no cgroup limits on RUN steps";
    if let Some(v) = &n.memory {
        parse_size("--memory", v)?;
        warn("--memory", cgroups);
    }
    if let Some(v) = &n.memory_swap {
        if v != "-1" {
            parse_size("--memory-swap", v)?;
        }
        warn("--memory-swap", cgroups);
    }
    for (flag, v) in [
        ("--cpu-shares", &n.cpu_shares),
        ("--cpu-period", &n.cpu_period),
        ("--cpu-quota", &n.cpu_quota),
    ] {
        if let Some(v) = v {
            parse_int(flag, v)?;
            warn(flag, cgroups);
        }
    }
    for (flag, v) in [
        ("--cpuset-cpus", &n.cpuset_cpus),
        ("--cpuset-mems", &n.cpuset_mems),
    ] {
        if let Some(v) = v {
            let ok = !v.is_empty()
                && v.split(',').all(|r| {
                    let mut ends = r.splitn(2, '-');
                    ends.all(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()))
                });
            if !ok {
                return Err(FlagError::invalid(
                    flag,
                    v,
                    "invalid format: expected a list such as 0-3 or 0,1",
                ));
            }
            warn(flag, cgroups);
        }
    }
    Ok(warnings)
}

/// `--pull`: docker's and buildx's boolean (`--pull` = `true` = always re-check every base,
/// `false` = pull what is missing), or a policy by name as `run --pull` takes it (`always`,
/// `missing`, `never`).
pub(super) fn pull_policy(v: Option<&str>) -> Result<PullPolicy, FlagError> {
    match v {
        None => Ok(PullPolicy::Missing),
        Some(v) => match PullPolicy::parse(v) {
            Some(p) => Ok(p),
            None => parse_bool("--pull", v)
                .map(|b| {
                    if b {
                        PullPolicy::Always
                    } else {
                        PullPolicy::Missing
                    }
                })
                .map_err(|_| {
                    FlagError::invalid(
                        "--pull",
                        v,
                        "expected true, false, always, missing or never",
                    )
                }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_takes_a_boolean_or_a_policy() {
        assert_eq!(pull_policy(None).unwrap(), PullPolicy::Missing);
        assert_eq!(pull_policy(Some("true")).unwrap(), PullPolicy::Always);
        assert_eq!(pull_policy(Some("false")).unwrap(), PullPolicy::Missing);
        assert_eq!(pull_policy(Some("never")).unwrap(), PullPolicy::Never);
        assert_eq!(pull_policy(Some("always")).unwrap(), PullPolicy::Always);
        assert!(pull_policy(Some("sometimes")).is_err());
    }

    #[test]
    fn booleans_are_read_as_go_reads_them() {
        assert!(parse_bool("--rm", "True").unwrap());
        assert!(!parse_bool("--rm", "0").unwrap());
        assert!(matches!(
            parse_bool("--rm", "yes"),
            Err(FlagError::Invalid { flag: "--rm", .. })
        ));
    }
}
