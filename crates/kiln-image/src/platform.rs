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
}

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
            input: s.into(),
            reason,
        };
        let parts: Vec<&str> = s.split('/').collect();
        for p in &parts {
            if p.is_empty() {
                return Err(invalid("empty component"));
            }
            if !p
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
            {
                return Err(invalid("components may hold only [A-Za-z0-9_.-]"));
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
                Err(PlatformError::Unknown { input: s.into() })
            }
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(invalid("expected os/arch[/variant]")),
        }
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
