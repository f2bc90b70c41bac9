//! Which architectures this machine runs: natively, or through a `binfmt_misc` handler (QEMU
//! user emulation, as Debian's `qemu-user-static` registers it).
//!
//! A foreign RUN step needs nothing of kiln: the container's `execve` of an aarch64 `/bin/sh`
//! reaches the kernel, which hands it to the registered interpreter. That works inside a
//! container's root only when the handler has the `F` (fix-binary) flag: the kernel opened the
//! interpreter when it was registered, so it need not exist inside the image. So kiln only
//! asks, before a build starts, whether some enabled handler matches an ELF header of the
//! architecture, exactly as the kernel would match it (`(header & mask) == magic`), and says
//! what to install when none does.
//!
//! Architectures are named as Go (and OCI platforms) name them: `amd64`, `arm64`, `arm`,
//! `riscv64`...

use std::path::{Path, PathBuf};

/// Where the kernel shows its handlers.
pub const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// How this machine can run programs of one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// The CPU runs them.
    Native,
    /// An enabled handler with the fix-binary flag runs them (its name and interpreter).
    Emulated {
        handler: String,
        interpreter: String,
    },
    /// A handler matches but lacks the `F` flag: its interpreter would have to exist inside
    /// every image, so a RUN step would fail.
    NoFixBinary {
        handler: String,
        interpreter: String,
    },
    /// Nothing runs them.
    Unsupported,
}

/// One `binfmt_misc` entry, as `/proc/sys/fs/binfmt_misc/NAME` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    pub name: String,
    pub enabled: bool,
    pub interpreter: String,
    pub flags: String,
    pub offset: usize,
    pub magic: Vec<u8>,
    pub mask: Vec<u8>,
}

impl Handler {
    /// Parses the text of a handler file; None for extension handlers and unreadable text.
    pub fn parse(name: &str, text: &str) -> Option<Handler> {
        let mut h = Handler {
            name: name.to_string(),
            enabled: false,
            interpreter: String::new(),
            flags: String::new(),
            offset: 0,
            magic: Vec::new(),
            mask: Vec::new(),
        };
        for line in text.lines() {
            let line = line.trim();
            if line == "enabled" {
                h.enabled = true;
            } else if let Some(v) = line.strip_prefix("interpreter ") {
                h.interpreter = v.to_string();
            } else if let Some(v) = line.strip_prefix("flags:") {
                h.flags = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("offset ") {
                h.offset = v.trim().parse().ok()?;
            } else if let Some(v) = line.strip_prefix("magic ") {
                h.magic = hex(v.trim())?;
            } else if let Some(v) = line.strip_prefix("mask ") {
                h.mask = hex(v.trim())?;
            }
        }
        (!h.magic.is_empty()).then_some(h)
    }

    /// Whether the kernel would hand a file starting with `header` to this handler.
    pub fn matches(&self, header: &[u8]) -> bool {
        if !self.enabled || header.len() < self.offset + self.magic.len() {
            return false;
        }
        self.magic.iter().enumerate().all(|(i, &m)| {
            let k = self.mask.get(i).copied().unwrap_or(0xff);
            header[self.offset + i] & k == m & k
        })
    }

    /// The fix-binary flag: the interpreter was opened at registration.
    pub fn fix_binary(&self) -> bool {
        self.flags.contains('F')
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// ELF identity of a Go architecture: (64-bit, little-endian, e_machine).
fn elf_identity(arch: &str) -> Option<(bool, bool, u16)> {
    Some(match arch {
        "386" => (false, true, 3),
        "amd64" => (true, true, 62),
        "arm" => (false, true, 40),
        "arm64" => (true, true, 183),
        "ppc64le" => (true, true, 21),
        "ppc64" => (true, false, 21),
        "ppc" => (false, false, 20),
        "s390x" => (true, false, 22),
        "s390" => (false, false, 22),
        "riscv64" => (true, true, 243),
        "mips" => (false, false, 8),
        "mipsle" => (false, true, 8),
        "mips64" => (true, false, 8),
        "mips64le" => (true, true, 8),
        "loong64" => (true, true, 258),
        "sparc64" => (true, false, 43),
        _ => return None,
    })
}

/// The first 64 bytes of an executable (ET_EXEC) of `arch`, as the kernel sees them when it
/// picks a handler. None when `arch` is not an ELF architecture kiln knows.
pub fn elf_header(arch: &str) -> Option<[u8; 64]> {
    let (wide, little, machine) = elf_identity(arch)?;
    let mut h = [0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = if wide { 2 } else { 1 };
    h[5] = if little { 1 } else { 2 };
    h[6] = 1;
    let half = |v: u16| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    h[16..18].copy_from_slice(&half(2));
    h[18..20].copy_from_slice(&half(machine));
    let version = if little {
        1u32.to_le_bytes()
    } else {
        1u32.to_be_bytes()
    };
    h[20..24].copy_from_slice(&version);
    Some(h)
}

/// The architectures the CPU runs (Go names): the host's, and 386 beside amd64.
pub fn native_architectures() -> Vec<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => vec!["amd64", "386"],
        "aarch64" => vec!["arm64"],
        "x86" => vec!["386"],
        "arm" => vec!["arm"],
        "riscv64" => vec!["riscv64"],
        "s390x" => vec!["s390x"],
        "powerpc64" if cfg!(target_endian = "little") => vec!["ppc64le"],
        "powerpc64" => vec!["ppc64"],
        "loongarch64" => vec!["loong64"],
        _ => vec![],
    }
}

/// The handlers registered under `dir` (normally [`BINFMT_MISC`]), sorted by name; none when
/// binfmt_misc as a whole is disabled (`status` says `disabled`: the kernel uses no handler).
/// Err when `dir` is not a mounted binfmt_misc (no `status` file).
pub fn handlers_in(dir: &Path) -> std::io::Result<Vec<Handler>> {
    let status = std::fs::read_to_string(dir.join("status"))?;
    let mut out = Vec::new();
    if status.trim() == "disabled" {
        return Ok(out);
    }
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "status" || name == "register" {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        out.extend(Handler::parse(&name, &text));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// How `arch` runs here, given the handlers (see [`handlers_in`]).
pub fn support_with(arch: &str, handlers: &[Handler]) -> Support {
    if native_architectures().contains(&arch) {
        return Support::Native;
    }
    let Some(header) = elf_header(arch) else {
        return Support::Unsupported;
    };
    let mut without_f = None;
    for h in handlers.iter().filter(|h| h.matches(&header)) {
        if h.fix_binary() {
            return Support::Emulated {
                handler: h.name.clone(),
                interpreter: h.interpreter.clone(),
            };
        }
        without_f.get_or_insert_with(|| Support::NoFixBinary {
            handler: h.name.clone(),
            interpreter: h.interpreter.clone(),
        });
    }
    without_f.unwrap_or(Support::Unsupported)
}

/// How `arch` runs on this machine (handlers read from [`BINFMT_MISC`]; none when it is not
/// mounted).
pub fn support(arch: &str) -> Support {
    let handlers = handlers_in(Path::new(BINFMT_MISC)).unwrap_or_default();
    support_with(arch, &handlers)
}

/// What a user is told when `platform` (`linux/ARCH[/VARIANT]`, architecture `arch`) cannot
/// run here, or None when it can.
pub fn unsupported_message(platform: &str, arch: &str) -> Option<String> {
    let mounted = Path::new(BINFMT_MISC).join("status").exists();
    match support(arch) {
        Support::Native | Support::Emulated { .. } => None,
        Support::NoFixBinary {
            handler,
            interpreter,
        } => Some(format!(
            "{platform} programs run here through the binfmt_misc handler {handler} ({interpreter}), but it lacks the F (fix-binary) flag, so it cannot run inside a container's root; register it with F (Debian's qemu-user-static does: `apt-get install qemu-user-static`)"
        )),
        Support::Unsupported if !mounted => Some(format!(
            "this machine cannot run {platform} programs: binfmt_misc is not mounted at {BINFMT_MISC}; mount it (`mount -t binfmt_misc binfmt_misc {BINFMT_MISC}`) and install QEMU's user emulators (`apt-get install qemu-user-static`)"
        )),
        Support::Unsupported => Some(format!(
            "this machine cannot run {platform} programs: no enabled binfmt_misc handler in {BINFMT_MISC} matches its executables; install QEMU's user emulators (`apt-get install qemu-user-static`, which registers them with the F flag) and make sure binfmt_misc is mounted (`mount -t binfmt_misc binfmt_misc {BINFMT_MISC}`)"
        )),
    }
}

/// Every architecture of [`elf_header`]'s table that runs here, emulated (not native), with
/// its handler: what `kiln system info` lists.
pub fn emulated_architectures() -> Vec<(&'static str, String)> {
    let handlers = handlers_in(Path::new(BINFMT_MISC)).unwrap_or_default();
    let all = [
        "386", "amd64", "arm", "arm64", "ppc64le", "ppc64", "ppc", "s390x", "s390", "riscv64",
        "mips", "mipsle", "mips64", "mips64le", "loong64", "sparc64",
    ];
    all.iter()
        .filter_map(|a| match support_with(a, &handlers) {
            Support::Emulated { handler, .. } => Some((*a, handler)),
            _ => None,
        })
        .collect()
}

/// The handler file of `name` (for messages and tests).
pub fn handler_path(name: &str) -> PathBuf {
    Path::new(BINFMT_MISC).join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn a_qemu_handler_matches_its_architecture_only() {
        let h = Handler::parse("qemu-aarch64", AARCH64).unwrap();
        assert!(h.fix_binary());
        assert!(h.matches(&elf_header("arm64").unwrap()));
        assert!(!h.matches(&elf_header("arm").unwrap()));
        assert!(!h.matches(&elf_header("riscv64").unwrap()));
        match support_with("arm64", std::slice::from_ref(&h)) {
            Support::Emulated { handler, .. } => assert_eq!(handler, "qemu-aarch64"),
            other => panic!("{other:?}"),
        }
        assert_eq!(support_with("riscv64", &[h]), Support::Unsupported);
    }

    #[test]
    fn a_disabled_binfmt_misc_has_no_handlers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("qemu-aarch64"), AARCH64).unwrap();
        std::fs::write(dir.path().join("status"), "enabled\n").unwrap();
        assert_eq!(handlers_in(dir.path()).unwrap().len(), 1);
        std::fs::write(dir.path().join("status"), "disabled\n").unwrap();
        assert!(handlers_in(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn disabled_or_unflagged_handlers_do_not_count() {
        let off = Handler::parse("q", &AARCH64.replace("enabled\n", "disabled\n")).unwrap();
        assert_eq!(support_with("arm64", &[off]), Support::Unsupported);
        let no_f = Handler::parse("q", &AARCH64.replace("POF", "PO")).unwrap();
        assert!(matches!(
            support_with("arm64", &[no_f]),
            Support::NoFixBinary { .. }
        ));
    }

    #[test]
    fn the_host_is_native_and_unknown_architectures_are_unsupported() {
        assert_eq!(
            support_with(native_architectures()[0], &[]),
            Support::Native
        );
        assert_eq!(support_with("wasm", &[]), Support::Unsupported);
    }
}
