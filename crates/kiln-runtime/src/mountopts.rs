//! OCI mount options (`ro`, `nosuid`, `rbind`, `mode=755`...) split into mount(2) flags,
//! propagation flags and the data string, as runc does.

use libc::c_ulong;

/// A mount's options after parsing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// `MS_*` flags for the mount itself (`MS_RDONLY`, `MS_NOSUID`, ...).
    pub flags: c_ulong,
    /// `MS_BIND`, plus `MS_REC` for `rbind`.
    pub bind: Option<c_ulong>,
    /// Propagation changes applied after the mount (`MS_PRIVATE`, `MS_SLAVE|MS_REC`, ...).
    pub propagation: Vec<c_ulong>,
    /// Filesystem-specific options, comma-joined (`mode=755,size=65536k`).
    pub data: String,
}

/// Parse OCI mount options. Unknown options go to the data string, where the kernel judges them.
pub fn parse(options: &[String]) -> MountOptions {
    let mut out = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let opt = opt.as_str();
        // (set, clear) flag pairs.
        let flag: Option<(c_ulong, c_ulong)> = match opt {
            "ro" => Some((libc::MS_RDONLY, 0)),
            "rw" => Some((0, libc::MS_RDONLY)),
            "nosuid" => Some((libc::MS_NOSUID, 0)),
            "suid" => Some((0, libc::MS_NOSUID)),
            "nodev" => Some((libc::MS_NODEV, 0)),
            "dev" => Some((0, libc::MS_NODEV)),
            "noexec" => Some((libc::MS_NOEXEC, 0)),
            "exec" => Some((0, libc::MS_NOEXEC)),
            "sync" => Some((libc::MS_SYNCHRONOUS, 0)),
            "async" => Some((0, libc::MS_SYNCHRONOUS)),
            "dirsync" => Some((libc::MS_DIRSYNC, 0)),
            "mand" => Some((libc::MS_MANDLOCK, 0)),
            "nomand" => Some((0, libc::MS_MANDLOCK)),
            "noatime" => Some((libc::MS_NOATIME, 0)),
            "atime" => Some((0, libc::MS_NOATIME)),
            "nodiratime" => Some((libc::MS_NODIRATIME, 0)),
            "diratime" => Some((0, libc::MS_NODIRATIME)),
            "relatime" => Some((libc::MS_RELATIME, 0)),
            "norelatime" => Some((0, libc::MS_RELATIME)),
            "strictatime" => Some((libc::MS_STRICTATIME, 0)),
            "nostrictatime" => Some((0, libc::MS_STRICTATIME)),
            _ => None,
        };
        if let Some((set, clear)) = flag {
            out.flags = (out.flags | set) & !clear;
            continue;
        }
        match opt {
            "bind" => out.bind = Some(libc::MS_BIND | out.bind.unwrap_or(0)),
            "rbind" => out.bind = Some(libc::MS_BIND | libc::MS_REC),
            "private" => out.propagation.push(libc::MS_PRIVATE),
            "rprivate" => out.propagation.push(libc::MS_PRIVATE | libc::MS_REC),
            "shared" => out.propagation.push(libc::MS_SHARED),
            "rshared" => out.propagation.push(libc::MS_SHARED | libc::MS_REC),
            "slave" => out.propagation.push(libc::MS_SLAVE),
            "rslave" => out.propagation.push(libc::MS_SLAVE | libc::MS_REC),
            "unbindable" => out.propagation.push(libc::MS_UNBINDABLE),
            "runbindable" => out.propagation.push(libc::MS_UNBINDABLE | libc::MS_REC),
            // runc-only extensions that make no sense here; runc ignores unknown ones too.
            "tmpcopyup" | "idmap" | "ridmap" => {}
            other => data.push(other),
        }
    }
    out.data = data.join(",");
    out
}

/// `MS_*` flags that a bind remount must repeat or the kernel refuses it (they are locked),
/// taken from `statvfs` flags of the existing mount.
pub fn locked_flags(st_flags: c_ulong) -> c_ulong {
    let pairs = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
        (libc::ST_RDONLY, libc::MS_RDONLY),
    ];
    pairs
        .iter()
        .filter(|(st, _)| st_flags & *st != 0)
        .fold(0, |acc, (_, ms)| acc | ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &[&str]) -> MountOptions {
        parse(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data_are_split() {
        let o = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert_eq!(o.bind, None);
    }

    #[test]
    fn later_options_win() {
        assert_eq!(opts(&["ro", "rw"]).flags, 0);
        assert_eq!(opts(&["rw", "ro"]).flags, libc::MS_RDONLY);
    }

    #[test]
    fn bind_rbind_and_propagation() {
        let o = opts(&["rbind", "ro", "rprivate"]);
        assert_eq!(o.bind, Some(libc::MS_BIND | libc::MS_REC));
        assert_eq!(o.flags, libc::MS_RDONLY);
        assert_eq!(o.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
        assert_eq!(opts(&["bind"]).bind, Some(libc::MS_BIND));
    }
}
