//! Platforms (`linux/amd64`, `linux/arm64`, `linux/arm/v7`): parsing and normalization as
//! containerd's `platforms` package does it, so that `--platform` values, image configs and
//! index entries compare equal when docker would say they are the same platform.

use std::fmt;
use std::str::FromStr;

/// An OS/architecture/variant triple, always normalized (see [`Platform::normalize`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// Why a platform specifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    #[error("{input:?}: invalid platform specifier: {reason}")]
    Invalid { input: String, reason: &'static str },
    #[error("{input:?}: unknown operating system or architecture")]
    Unknown { input: String },
    #[error("{input:?}: kiln builds and runs Linux images only, not {os} ones")]
    NotLinux { input: String, os: String },
}

/// `s` for an error message: at most 80 characters.
fn shown(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The longest os, architecture or variant kiln accepts (real ones are under 16).
const MAX_COMPONENT: usize = 64;

impl Platform {
    /// Builds a normalized platform.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_string),
        }
        .normalize()
    }

    /// Parses a specifier: `os/arch[/variant]`, or just `os` or `arch` (the other part is
    /// taken from the host), as `docker build --platform` accepts them.
    pub fn parse(s: &str) -> Result<Self, PlatformError> {
        let invalid = |reason| PlatformError::Invalid {
            input: shown(s),
            reason,
        };
        let parts: Vec<&str> = s.split('/').collect();
        for p in &parts {
            if p.is_empty() {
                return Err(invalid("empty component"));
            }
            // containerd's specifier: [A-Za-z0-9_.-]+ (arm64/v8.2), but never `.` or `..`
            // (a component may end up in a path), and kept short.
            if !p
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
            {
                return Err(invalid("components may hold only [A-Za-z0-9_.-]"));
            }
            if p.starts_with('.') {
                return Err(invalid("a component may not start with a dot"));
            }
            if p.len() > MAX_COMPONENT {
                return Err(invalid("a component is longer than 64 characters"));
            }
        }
        let host = Platform::host();
        match parts.as_slice() {
            [one] => {
                let lower = one.to_ascii_lowercase();
                let os = normalize_os(&lower);
                if is_known_os(&os) {
                    return Ok(Platform { os, ..host });
                }
                let (arch, variant) = normalize_arch(&lower, "");
                if is_known_arch(&arch) {
                    return Ok(Platform {
                        os: host.os,
                        architecture: arch,
                        variant: (!variant.is_empty()).then_some(variant),
                    });
                }
                Err(PlatformError::Unknown { input: shown(s) })
            }
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(invalid("expected os/arch[/variant]")),
        }
    }

    /// [`Platform::parse`] for a platform kiln builds or runs: its OS must be `linux`
    /// (`windows/amd64` is refused with a message that says why).
    pub fn parse_linux(s: &str) -> Result<Self, PlatformError> {
        let p = Platform::parse(s)?;
        if p.os != "linux" {
            return Err(PlatformError::NotLinux {
                input: s.into(),
                os: p.os,
            });
        }
        Ok(p)
    }

    /// The platform kiln runs on (always `linux` here), in container terms.
    pub fn host() -> Self {
        // Rust's names differ from Go's (GOARCH) for a few targets.
        let little = cfg!(target_endian = "little");
        let arch = match std::env::consts::ARCH {
            "x86" => "386",
            "powerpc64" if little => "ppc64le",
            "powerpc64" => "ppc64",
            "powerpc" => "ppc",
            "loongarch64" => "loong64",
            "mips" if little => "mipsle",
            "mips64" if little => "mips64le",
            other => other,
        };
        Platform::new("linux", arch, None)
    }

    /// containerd's normalization: lowercase; `x86_64`→`amd64` (variant `v1` dropped),
    /// `aarch64`→`arm64` (variant `v8` dropped, it is the default), `i386`→`386`,
    /// `armhf`→`arm/v7`, `armel`→`arm/v6`, bare `arm`→`arm/v7`, `macos`→`darwin`.
    pub fn normalize(self) -> Self {
        let os = normalize_os(&self.os.to_ascii_lowercase());
        let (architecture, variant) = normalize_arch(
            &self.architecture.to_ascii_lowercase(),
            &self.variant.unwrap_or_default().to_ascii_lowercase(),
        );
        Platform {
            os,
            architecture,
            variant: (!variant.is_empty()).then_some(variant),
        }
    }

    /// Whether an image built for `other` is what a user asking for `self` wants: same OS and
    /// architecture, and the same variant (a missing variant on one side matches any).
    pub fn matches(&self, other: &Platform) -> bool {
        let a = self.clone().normalize();
        let b = other.clone().normalize();
        a.os == b.os
            && a.architecture == b.architecture
            && (a.variant.is_none() || b.variant.is_none() || a.variant == b.variant)
    }

    /// The platform an image config declares.
    pub fn of_config(config: &oci_spec::image::ImageConfiguration) -> Self {
        Platform::new(
            &config.os().to_string(),
            &config.architecture().to_string(),
            config.variant().as_deref(),
        )
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

impl From<&oci_spec::image::Platform> for Platform {
    fn from(p: &oci_spec::image::Platform) -> Self {
        Platform::new(
            &p.os().to_string(),
            &p.architecture().to_string(),
            p.variant().as_deref(),
        )
    }
}

impl From<&Platform> for oci_spec::image::Platform {
    fn from(p: &Platform) -> Self {
        let mut out = oci_spec::image::Platform::default();
        out.set_os(p.os.as_str().into());
        out.set_architecture(p.architecture.as_str().into());
        out.set_variant(p.variant.clone());
        out
    }
}

fn normalize_os(os: &str) -> String {
    match os {
        "macos" => "darwin".into(),
        other => other.into(),
    }
}

fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let v = |s: &str| s.to_string();
    match arch {
        "i386" => (v("386"), v("")),
        "x86_64" | "x86-64" | "amd64" => {
            (v("amd64"), if variant == "v1" { v("") } else { v(variant) })
        }
        "aarch64" | "arm64" => (
            v("arm64"),
            match variant {
                "8" | "v8" | "v8.0" => v(""),
                "9" | "9.0" | "v9.0" => v("v9"),
                other => v(other),
            },
        ),
        "armhf" => (v("arm"), v("v7")),
        "armel" => (v("arm"), v("v6")),
        "arm" => (
            v("arm"),
            match variant {
                "" | "7" => v("v7"),
                "5" | "6" | "8" => format!("v{variant}"),
                other => v(other),
            },
        ),
        other => (v(other), v(variant)),
    }
}

fn is_known_os(os: &str) -> bool {
    matches!(
        os,
        "aix"
            | "android"
            | "darwin"
            | "dragonfly"
            | "freebsd"
            | "hurd"
            | "illumos"
            | "ios"
            | "js"
            | "linux"
            | "nacl"
            | "netbsd"
            | "openbsd"
            | "plan9"
            | "solaris"
            | "windows"
            | "zos"
    )
}

fn is_known_arch(arch: &str) -> bool {
    matches!(
        arch,
        "386"
            | "amd64"
            | "amd64p32"
            | "arm"
            | "armbe"
            | "arm64"
            | "arm64be"
            | "ppc64"
            | "ppc64le"
            | "loong64"
            | "mips"
            | "mipsle"
            | "mips64"
            | "mips64le"
            | "mips64p32"
            | "mips64p32le"
            | "ppc"
            | "riscv"
            | "riscv64"
            | "s390"
            | "s390x"
            | "sparc"
            | "sparc64"
            | "wasm"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        Platform::parse(s).unwrap().to_string()
    }

    #[test]
    fn arm_defaults_and_aliases_normalize_as_containerd() {
        // `arm` is arm/v7; arm64's default variant v8 is dropped (arm64 = linux/arm64/v8).
        assert_eq!(p("linux/arm"), "linux/arm/v7");
        assert_eq!(p("linux/arm/7"), "linux/arm/v7");
        assert_eq!(p("linux/arm/v6"), "linux/arm/v6");
        assert_eq!(p("linux/arm/5"), "linux/arm/v5");
        assert_eq!(p("linux/armhf"), "linux/arm/v7");
        assert_eq!(p("linux/armel"), "linux/arm/v6");
        assert_eq!(p("linux/arm64"), "linux/arm64");
        assert_eq!(p("linux/arm64/v8"), "linux/arm64");
        assert_eq!(p("linux/aarch64"), "linux/arm64");
        assert_eq!(p("linux/aarch64/8"), "linux/arm64");
        assert_eq!(p("linux/arm64/v9.0"), "linux/arm64/v9");
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap(),
            Platform::parse("linux/arm64").unwrap()
        );
    }

    #[test]
    fn amd64_variants_v2_to_v4_are_kept_and_v1_is_dropped() {
        assert_eq!(p("linux/amd64"), "linux/amd64");
        assert_eq!(p("linux/amd64/v1"), "linux/amd64");
        assert_eq!(p("linux/x86_64"), "linux/amd64");
        assert_eq!(p("linux/x86-64/v1"), "linux/amd64");
        for v in ["v2", "v3", "v4"] {
            assert_eq!(p(&format!("linux/amd64/{v}")), format!("linux/amd64/{v}"));
        }
        assert_eq!(p("linux/i386"), "linux/386");
        assert_eq!(p("LINUX/AMD64"), "linux/amd64");
    }

    #[test]
    fn one_part_specifiers_fill_in_the_host() {
        let host = Platform::host();
        assert_eq!(Platform::parse("linux").unwrap(), host);
        let arm64 = Platform::parse("arm64").unwrap();
        assert_eq!(
            (arm64.os.as_str(), arm64.architecture.as_str()),
            ("linux", "arm64")
        );
        assert_eq!(p("arm"), "linux/arm/v7");
        assert_eq!(p("armhf"), "linux/arm/v7");
        assert!(matches!(
            Platform::parse("nonsense"),
            Err(PlatformError::Unknown { .. })
        ));
    }

    #[test]
    fn malformed_specifiers_are_refused() {
        for bad in [
            "",
            "linux/",
            "/amd64",
            "linux/amd64/v2/x",
            "linux/am d64",
            "linux//v7",
        ] {
            assert!(
                matches!(Platform::parse(bad), Err(PlatformError::Invalid { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn hostile_components_are_refused_and_not_echoed_whole() {
        for bad in [
            "linux/../arm64",
            "linux/..",
            "../x",
            "linux/evil arch",
            "linux/.x",
            "linux/",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        let long = format!("linux/{}", "a".repeat(5000));
        let e = Platform::parse(&long).unwrap_err().to_string();
        assert!(e.contains("longer than 64"), "{e}");
        assert!(e.len() < 200, "{e}");
    }

    #[test]
    fn windows_parses_but_is_not_a_platform_kiln_builds() {
        assert_eq!(p("windows/amd64"), "windows/amd64");
        let e = Platform::parse_linux("windows/amd64").unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"windows/amd64\": kiln builds and runs Linux images only, not windows ones"
        );
        assert!(Platform::parse_linux("windows").is_err());
        assert!(Platform::parse_linux("darwin/arm64").is_err());
        assert_eq!(
            Platform::parse_linux("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64"
        );
    }

    #[test]
    fn matching_ignores_a_missing_variant() {
        let m = |a: &str, b: &str| {
            Platform::parse(a)
                .unwrap()
                .matches(&Platform::parse(b).unwrap())
        };
        assert!(m("linux/arm", "linux/arm/v7"));
        assert!(!m("linux/arm/v6", "linux/arm/v7"));
        assert!(m("linux/amd64", "linux/amd64/v3"));
        assert!(m("linux/amd64/v3", "linux/amd64"));
        assert!(!m("linux/amd64/v2", "linux/amd64/v3"));
        assert!(!m("linux/arm64", "linux/amd64"));
        assert!(m("linux/arm64/v8", "linux/arm64"));
    }
}
