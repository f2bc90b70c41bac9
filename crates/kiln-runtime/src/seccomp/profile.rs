//! A seccomp profile in docker's format (what `--security-opt seccomp=FILE` reads, and the shape
//! of docker's default): rules that apply only on some architectures, only with (or without)
//! some capabilities, or only from some kernel version on. [`Profile::resolve`] turns it into
//! the OCI spec's `linux.seccomp` for this machine and a capability set, as dockerd does before
//! it hands a spec to runc.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};
use serde_json::Value;

/// A rule's condition on the machine or the container (docker's `includes`/`excludes`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Capability names (`CAP_SYS_ADMIN`), checked against the bounding set.
    pub caps: Vec<String>,
    /// Docker's architecture names (`amd64`, `arm64`, `x86`, `arm`, `s390x`...).
    pub arches: Vec<String>,
    /// `(major, minor)`: the running kernel is at least this.
    pub min_kernel: Option<(u64, u64)>,
}

/// One entry of a profile's `syscalls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: LinuxSeccompAction,
    pub errno_ret: Option<u32>,
    /// All must hold (docker's `args`).
    pub args: Vec<LinuxSeccompArg>,
    pub includes: Filter,
    pub excludes: Filter,
}

/// A docker-format profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub default_action: LinuxSeccompAction,
    pub default_errno_ret: Option<u32>,
    /// The flat `architectures` list, if the profile has one.
    pub architectures: Vec<Arch>,
    /// `archMap`: a main architecture and the ones that run on it (x86_64 runs x86 and x32).
    pub arch_map: Vec<(Arch, Vec<Arch>)>,
    pub rules: Vec<Rule>,
}

/// Why a profile could not be read; `what` names the place in the JSON.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct ProfileError {
    pub what: String,
}

fn bad(what: impl Into<String>) -> ProfileError {
    ProfileError { what: what.into() }
}

/// Docker's name for this machine's architecture (Go's `GOARCH`, as the profile's `arches`
/// spell it).
pub fn native_arch_name() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The seccomp architecture this binary runs as.
pub fn native_arch() -> Option<Arch> {
    match std::env::consts::ARCH {
        "x86_64" => Some(Arch::ScmpArchX86_64),
        "aarch64" => Some(Arch::ScmpArchAarch64),
        "x86" => Some(Arch::ScmpArchX86),
        "arm" => Some(Arch::ScmpArchArm),
        "s390x" => Some(Arch::ScmpArchS390x),
        "powerpc64" => Some(Arch::ScmpArchPpc64le),
        _ => None,
    }
}

impl Profile {
    /// Parse a docker-format profile (`defaultAction`, `architectures` or `archMap`,
    /// `syscalls[]` with `name`/`names`, `action`, `errnoRet`, `args`, `includes`, `excludes`).
    pub fn from_json(text: &str) -> Result<Profile, ProfileError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| bad(format!("decoding seccomp profile failed: {e}")))?;
        let obj = v.as_object().ok_or_else(|| {
            bad("decoding seccomp profile failed: the profile is not a JSON object")
        })?;
        let default_action = match obj.get("defaultAction") {
            Some(a) => action(a, "defaultAction")?,
            None => return Err(bad("seccomp profile: defaultAction is missing")),
        };
        let default_errno_ret = opt_u32(obj.get("defaultErrnoRet"), "defaultErrnoRet")?;
        let architectures = list(obj.get("architectures"), "architectures")?
            .iter()
            .enumerate()
            .map(|(i, a)| arch(a, &format!("architectures[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut arch_map = Vec::new();
        for (i, m) in list(obj.get("archMap"), "archMap")?.iter().enumerate() {
            let at = format!("archMap[{i}]");
            let main = arch(
                field(m, "architecture", &at)?,
                &format!("{at}.architecture"),
            )?;
            let subs = list(m.get("subArchitectures"), &format!("{at}.subArchitectures"))?
                .iter()
                .enumerate()
                .map(|(j, a)| arch(a, &format!("{at}.subArchitectures[{j}]")))
                .collect::<Result<Vec<_>, _>>()?;
            arch_map.push((main, subs));
        }
        if !architectures.is_empty() && !arch_map.is_empty() {
            return Err(bad(
                "seccomp profile: 'architectures' and 'archMap' were both specified, use either 'architectures' or 'archMap'",
            ));
        }
        let mut rules = Vec::new();
        for (i, s) in list(obj.get("syscalls"), "syscalls")?.iter().enumerate() {
            rules.push(rule(s, &format!("syscalls[{i}]"))?);
        }
        Ok(Profile {
            default_action,
            default_errno_ret,
            architectures,
            arch_map,
            rules,
        })
    }

    /// The OCI `linux.seccomp` for this machine and a container whose bounding set is
    /// `bounding` (`CAP_`-prefixed names): the rules whose conditions hold, as dockerd keeps
    /// them. The architectures are the flat list, or the archMap entry of this machine.
    pub fn resolve(&self, bounding: &[String]) -> Result<LinuxSeccomp, ProfileError> {
        self.resolve_for(
            native_arch_name(),
            native_arch(),
            bounding,
            kernel_version(),
        )
    }

    pub(crate) fn resolve_for(
        &self,
        arch_name: &str,
        native: Option<Arch>,
        bounding: &[String],
        kernel: Option<(u64, u64)>,
    ) -> Result<LinuxSeccomp, ProfileError> {
        let mut arches = self.architectures.clone();
        if let Some(native) = native
            && let Some((main, subs)) = self.arch_map.iter().find(|(a, _)| *a == native)
        {
            arches.push(*main);
            arches.extend(subs.iter().copied());
        }
        let has = |c: &String| bounding.iter().any(|b| b.eq_ignore_ascii_case(c));
        let kernel_at_least = |min: (u64, u64)| -> Result<bool, ProfileError> {
            let k = kernel.ok_or_else(|| {
                bad("seccomp profile: cannot read the kernel version for minKernel")
            })?;
            Ok(k >= min)
        };
        let mut syscalls = Vec::new();
        for r in &self.rules {
            let ex = &r.excludes;
            if ex.arches.iter().any(|a| a == arch_name) || ex.caps.iter().any(has) {
                continue;
            }
            if let Some(min) = ex.min_kernel
                && kernel_at_least(min)?
            {
                continue;
            }
            let inc = &r.includes;
            if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == arch_name) {
                continue;
            }
            if !inc.caps.iter().all(has) {
                continue;
            }
            if let Some(min) = inc.min_kernel
                && !kernel_at_least(min)?
            {
                continue;
            }
            let mut call = LinuxSyscall::default();
            call.set_names(r.names.clone());
            call.set_action(r.action);
            call.set_errno_ret(r.errno_ret);
            call.set_args((!r.args.is_empty()).then(|| r.args.clone()));
            syscalls.push(call);
        }
        let mut out = LinuxSeccomp::default();
        out.set_default_action(self.default_action);
        out.set_default_errno_ret(self.default_errno_ret);
        out.set_architectures((!arches.is_empty()).then_some(arches));
        out.set_syscalls(Some(syscalls));
        Ok(out)
    }
}

/// The running kernel's `(major, minor)`, from uname(2).
fn kernel_version() -> Option<(u64, u64)> {
    // SAFETY: uname fills the zeroed struct; its release field is NUL-terminated.
    let release = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return None;
        }
        std::ffi::CStr::from_ptr(u.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    };
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// One argument comparison (`value` is the mask of a MASKED_EQ, `value_two` its datum).
pub(crate) fn seccomp_arg(
    index: usize,
    value: u64,
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
) -> LinuxSeccompArg {
    let b = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op);
    let b = match value_two {
        Some(v) => b.value_two(v),
        None => b,
    };
    b.build().expect("every field of a seccomp argument is set")
}

fn field<'a>(v: &'a Value, name: &str, at: &str) -> Result<&'a Value, ProfileError> {
    v.get(name)
        .ok_or_else(|| bad(format!("seccomp profile: {at}.{name} is missing")))
}

/// A JSON array, or nothing for a missing or null field.
fn list<'a>(v: Option<&'a Value>, at: &str) -> Result<&'a [Value], ProfileError> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(bad(format!(
            "seccomp profile: {at} must be an array, not {other}"
        ))),
    }
}

fn string<'a>(v: &'a Value, at: &str) -> Result<&'a str, ProfileError> {
    v.as_str()
        .ok_or_else(|| bad(format!("seccomp profile: {at} must be a string, not {v}")))
}

fn strings(v: Option<&Value>, at: &str) -> Result<Vec<String>, ProfileError> {
    list(v, at)?
        .iter()
        .enumerate()
        .map(|(i, s)| string(s, &format!("{at}[{i}]")).map(str::to_string))
        .collect()
}

fn u64_of(v: &Value, at: &str) -> Result<u64, ProfileError> {
    v.as_u64().ok_or_else(|| {
        bad(format!(
            "seccomp profile: {at} must be an unsigned 64-bit number, not {v}"
        ))
    })
}

fn opt_u32(v: Option<&Value>, at: &str) -> Result<Option<u32>, ProfileError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(n) => u32::try_from(u64_of(n, at)?)
            .map(Some)
            .map_err(|_| bad(format!("seccomp profile: {at} is out of range: {n}"))),
    }
}

fn action(v: &Value, at: &str) -> Result<LinuxSeccompAction, ProfileError> {
    let s = string(v, at)?;
    let a: LinuxSeccompAction = s.parse().map_err(|_| {
        bad(format!(
            "seccomp profile: {at}: unknown action {s:?} (SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_TRACE, SCMP_ACT_LOG)"
        ))
    })?;
    if a == LinuxSeccompAction::ScmpActNotify {
        return Err(bad(format!(
            "seccomp profile: {at}: SCMP_ACT_NOTIFY needs a seccomp agent, which kiln does not run"
        )));
    }
    Ok(a)
}

fn arch(v: &Value, at: &str) -> Result<Arch, ProfileError> {
    let s = string(v, at)?;
    serde_json::from_value(Value::String(s.to_string()))
        .map_err(|_| bad(format!("seccomp profile: {at}: unknown architecture {s:?}")))
}

fn filter(v: Option<&Value>, at: &str) -> Result<Filter, ProfileError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Filter::default());
    };
    if !v.is_object() {
        return Err(bad(format!(
            "seccomp profile: {at} must be an object, not {v}"
        )));
    }
    let min_kernel = match v.get("minKernel") {
        None | Some(Value::Null) => None,
        Some(k) => {
            let s = string(k, &format!("{at}.minKernel"))?;
            if s.is_empty() {
                None
            } else {
                let parsed = s
                    .split_once('.')
                    .and_then(|(a, b)| Some((a.parse::<u8>().ok()?, b.parse::<u8>().ok()?)))
                    .filter(|&(a, b)| (a, b) != (0, 0));
                let (a, b) = parsed.ok_or_else(|| {
                    bad(format!(
                        "seccomp profile: {at}.minKernel: invalid kernel version {s:?}, expected \"<kernel>.<major>\""
                    ))
                })?;
                Some((u64::from(a), u64::from(b)))
            }
        }
    };
    Ok(Filter {
        caps: strings(v.get("caps"), &format!("{at}.caps"))?,
        arches: strings(v.get("arches"), &format!("{at}.arches"))?,
        min_kernel,
    })
}

fn rule(v: &Value, at: &str) -> Result<Rule, ProfileError> {
    if !v.is_object() {
        return Err(bad(format!(
            "seccomp profile: {at} must be an object, not {v}"
        )));
    }
    let name = match v.get("name") {
        None | Some(Value::Null) => None,
        Some(n) => Some(string(n, &format!("{at}.name"))?.to_string()),
    };
    let names = strings(v.get("names"), &format!("{at}.names"))?;
    let names = match (name.filter(|n| !n.is_empty()), names.is_empty()) {
        (Some(_), false) => {
            return Err(bad(format!(
                "seccomp profile: {at}: 'name' and 'names' were both specified, use either 'name' or 'names'"
            )));
        }
        (Some(n), true) => vec![n],
        (None, _) => names,
    };
    let action = action(field(v, "action", at)?, &format!("{at}.action"))?;
    let mut args = Vec::new();
    for (i, a) in list(v.get("args"), &format!("{at}.args"))?
        .iter()
        .enumerate()
    {
        let aat = format!("{at}.args[{i}]");
        let index = u64_of(field(a, "index", &aat)?, &format!("{aat}.index"))?;
        if index > 5 {
            return Err(bad(format!(
                "seccomp profile: {aat}.index: a syscall has 6 arguments (0-5), not {index}"
            )));
        }
        let value = match a.get("value") {
            None | Some(Value::Null) => 0,
            Some(n) => u64_of(n, &format!("{aat}.value"))?,
        };
        let value_two = match a.get("valueTwo") {
            None | Some(Value::Null) => None,
            Some(n) => Some(u64_of(n, &format!("{aat}.valueTwo"))?),
        };
        let op_name = string(field(a, "op", &aat)?, &format!("{aat}.op"))?;
        let op = serde_json::from_value(Value::String(op_name.to_string())).map_err(|_| {
            bad(format!(
                "seccomp profile: {aat}.op: unknown operator {op_name:?} (SCMP_CMP_EQ, SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_GT, SCMP_CMP_GE, SCMP_CMP_MASKED_EQ)"
            ))
        })?;
        args.push(seccomp_arg(index as usize, value, value_two, op));
    }
    Ok(Rule {
        names,
        action,
        errno_ret: opt_u32(v.get("errnoRet"), &format!("{at}.errnoRet"))?,
        args,
        includes: filter(v.get("includes"), &format!("{at}.includes"))?,
        excludes: filter(v.get("excludes"), &format!("{at}.excludes"))?,
    })
}
