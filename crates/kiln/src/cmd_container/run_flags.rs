//! `run` flags docker has for the container's process and files: `--ulimit`, `--shm-size`,
//! `--dns*` (the container's resolv.conf), `--group-add`, `--cidfile`; parsed with docker's
//! messages, applied to the spec (spec.rs) and the files the supervisor writes.

use std::path::Path;

use anyhow::bail;
use kiln_runtime::oci_spec::runtime::{PosixRlimitBuilder, PosixRlimitType, Spec};
use serde::{Deserialize, Serialize};

/// One `--ulimit` (docker's `units.Ulimit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    pub name: String,
    pub hard: i64,
    pub soft: i64,
}

/// docker's ulimit names, with the spec's type and `setrlimit`'s resource for each.
const ULIMITS: &[(&str, PosixRlimitType, libc::__rlimit_resource_t)] = &[
    ("core", PosixRlimitType::RlimitCore, libc::RLIMIT_CORE),
    ("cpu", PosixRlimitType::RlimitCpu, libc::RLIMIT_CPU),
    ("data", PosixRlimitType::RlimitData, libc::RLIMIT_DATA),
    ("fsize", PosixRlimitType::RlimitFsize, libc::RLIMIT_FSIZE),
    ("locks", PosixRlimitType::RlimitLocks, libc::RLIMIT_LOCKS),
    (
        "memlock",
        PosixRlimitType::RlimitMemlock,
        libc::RLIMIT_MEMLOCK,
    ),
    (
        "msgqueue",
        PosixRlimitType::RlimitMsgqueue,
        libc::RLIMIT_MSGQUEUE,
    ),
    ("nice", PosixRlimitType::RlimitNice, libc::RLIMIT_NICE),
    ("nofile", PosixRlimitType::RlimitNofile, libc::RLIMIT_NOFILE),
    ("nproc", PosixRlimitType::RlimitNproc, libc::RLIMIT_NPROC),
    ("rss", PosixRlimitType::RlimitRss, libc::RLIMIT_RSS),
    ("rtprio", PosixRlimitType::RlimitRtprio, libc::RLIMIT_RTPRIO),
    ("rttime", PosixRlimitType::RlimitRttime, libc::RLIMIT_RTTIME),
    (
        "sigpending",
        PosixRlimitType::RlimitSigpending,
        libc::RLIMIT_SIGPENDING,
    ),
    ("stack", PosixRlimitType::RlimitStack, libc::RLIMIT_STACK),
    ("as", PosixRlimitType::RlimitAs, libc::RLIMIT_AS),
];

/// `--ulimit`s as `setrlimit` takes them (an `exec` gets the container's, as runc's does).
pub fn exec_rlimits(list: &[Ulimit]) -> Vec<(libc::__rlimit_resource_t, libc::rlimit)> {
    let resource = |name: &str| {
        ULIMITS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, r)| *r)
    };
    // -1 is unlimited (RLIM_INFINITY), as in the spec.
    let lim = |v: i64| if v < 0 { libc::RLIM_INFINITY } else { v as u64 };
    list.iter()
        .filter_map(|u| {
            let r = resource(&u.name)?;
            Some((
                r,
                libc::rlimit {
                    rlim_cur: lim(u.soft),
                    rlim_max: lim(u.hard),
                },
            ))
        })
        .collect()
}

/// `name=soft[:hard]` (docker's `units.ParseUlimit`; the hard limit defaults to the soft).
pub fn parse_ulimit(v: &str) -> anyhow::Result<Ulimit> {
    let bad =
        |why: String| anyhow::anyhow!("invalid argument \"{v}\" for \"--ulimit\" flag: {why}");
    let Some((name, limits)) = v.split_once('=') else {
        return Err(bad(format!("invalid ulimit argument: {v}")));
    };
    if !ULIMITS.iter().any(|(n, _, _)| *n == name) {
        return Err(bad(format!("invalid ulimit type: {name}")));
    }
    let num = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| bad(format!("strconv.ParseInt: parsing {s:?}: invalid syntax")))
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => {
            let s = num(limits)?;
            (s, s)
        }
    };
    if soft > hard {
        return Err(bad(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// `--shm-size` in bytes (0 when not given).
pub fn shm_size(v: Option<&str>) -> anyhow::Result<i64> {
    let Some(v) = v else { return Ok(0) };
    let b = kiln_build::options::parse_ram_size(v)
        .map_err(|e| anyhow::anyhow!("invalid argument \"{v}\" for \"--shm-size\" flag: {e}"))?;
    // 0 is docker's "not given" (the 64 MB default).
    Ok(b as i64)
}

/// `--dns-search` values: domains (docker's `ValidateDNSSearch`; `.` alone means none).
pub fn dns_search(list: &[String]) -> anyhow::Result<Vec<String>> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    for v in list {
        let d = v.strip_suffix('.').unwrap_or(v);
        if v != "." && (d.len() > 255 || !d.split('.').all(label_ok)) {
            bail!("{v} is not a valid domain");
        }
    }
    Ok(list.to_vec())
}

/// `--dns-option` values: one resolv.conf option each (docker does not check them; kiln
/// refuses whitespace, which would add lines of its own to resolv.conf).
pub fn dns_options(list: &[String]) -> anyhow::Result<Vec<String>> {
    if let Some(v) = list.iter().find(|v| v.chars().any(char::is_whitespace)) {
        bail!("invalid --dns-option {v:?}: an option has no whitespace");
    }
    Ok(list.iter().filter(|v| !v.is_empty()).cloned().collect())
}

/// `--dns` values: IP addresses (docker's `ValidateIPAddress`).
pub fn dns_servers(list: &[String]) -> anyhow::Result<Vec<String>> {
    list.iter()
        .map(|d| match d.trim().parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(ip.to_string()),
            Err(_) => {
                bail!("invalid argument \"{d}\" for \"--dns\" flag: {d} is not an ip address")
            }
        })
        .collect()
}

/// `--dns`, `--dns-search` and `--dns-option`, as the container's HostConfig holds them.
pub struct DnsFlags<'a> {
    pub dns: &'a [String],
    pub dns_search: &'a [String],
    pub dns_options: &'a [String],
}

/// The container's resolv.conf from the host's: docker keeps the host's lines and replaces
/// the nameservers, search domains and options the flags give (in that order: search,
/// nameserver, options, as libnetwork writes it).
pub fn resolv_conf(host: &str, h: &DnsFlags) -> String {
    if h.dns.is_empty() && h.dns_search.is_empty() && h.dns_options.is_empty() {
        return host.to_string();
    }
    let keyword = |l: &str, k: &str| l.split_whitespace().next() == Some(k);
    let lines = |k: &str| -> Vec<String> {
        host.lines()
            .filter(|l| keyword(l, k))
            .map(str::to_string)
            .collect()
    };
    let mut out = String::new();
    if h.dns_search.is_empty() {
        lines("search")
            .iter()
            .for_each(|l| out.push_str(&format!("{l}\n")));
    } else if h.dns_search.iter().any(|s| s != ".") {
        out.push_str(&format!("search {}\n", h.dns_search.join(" ")));
    }
    if h.dns.is_empty() {
        lines("nameserver")
            .iter()
            .for_each(|l| out.push_str(&format!("{l}\n")));
    } else {
        h.dns
            .iter()
            .for_each(|d| out.push_str(&format!("nameserver {d}\n")));
    }
    if h.dns_options.is_empty() {
        lines("options")
            .iter()
            .for_each(|l| out.push_str(&format!("{l}\n")));
    } else {
        out.push_str(&format!("options {}\n", h.dns_options.join(" ")));
    }
    out
}

/// What [`apply`] puts into the spec, as the container's HostConfig holds it.
pub struct SpecFlags<'a> {
    pub ulimits: &'a [Ulimit],
    pub shm_size: i64,
    pub privileged: bool,
    pub devices: &'a [DeviceMapping],
}

/// `--ulimit`, `--shm-size`, `--device` and `--privileged`'s devices into the spec.
pub fn apply(spec: &mut Spec, h: &SpecFlags) -> anyhow::Result<()> {
    if !h.ulimits.is_empty()
        && let Some(process) = spec.process_mut()
    {
        let mut list = process.rlimits().clone().unwrap_or_default();
        for u in h.ulimits {
            let typ = ULIMITS
                .iter()
                .find(|(n, _, _)| *n == u.name)
                .map(|(_, t, _)| *t);
            let Some(typ) = typ else {
                bail!("--ulimit: unknown type {}", u.name)
            };
            list.retain(|r| r.typ() != typ);
            // -1 is unlimited (RLIM_INFINITY) as in docker.
            list.push(
                PosixRlimitBuilder::default()
                    .typ(typ)
                    .soft(u.soft as u64)
                    .hard(u.hard as u64)
                    .build()?,
            );
        }
        process.set_rlimits(Some(list));
    }
    apply_devices(spec, h)?;
    if h.shm_size > 0
        && let Some(mounts) = spec.mounts_mut()
        && let Some(shm) = mounts
            .iter_mut()
            .find(|m| m.destination() == Path::new("/dev/shm"))
        && let Some(opts) = shm.options_mut()
    {
        opts.retain(|o| !o.starts_with("size="));
        opts.push(format!("size={}k", (h.shm_size + 1023) / 1024));
    }
    Ok(())
}

/// `--group-add`: numbers as they are, names through the container's /etc/group (docker's
/// message when there is no such group).
pub fn group_add(rootfs: &Path, list: &[String]) -> anyhow::Result<Vec<u32>> {
    let mut out = Vec::new();
    for g in list {
        if let Ok(n) = g.parse::<u32>() {
            out.push(n);
            continue;
        }
        let groups = kiln_build::copy::passwd::groups(rootfs).unwrap_or_default();
        match groups.iter().find(|e| e.name == *g) {
            Some(e) => out.push(e.gid),
            None => bail!("Unable to find group {g}: no matching entries in group file"),
        }
    }
    Ok(out)
}

/// `--cidfile`: docker refuses a file that exists (another container may own it).
pub fn check_cidfile(path: &Path) -> anyhow::Result<std::fs::File> {
    if path.symlink_metadata().is_ok() {
        bail!(
            "container ID file found, make sure the other container isn't running or delete {}",
            path.display()
        );
    }
    // Made before the container, as docker's CLI does: a file that cannot be made leaves no
    // container behind (created new: never over another's, never through a symlink).
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("failed to create the container ID file: {e}"))
}

/// Writes the container ID into the file [`check_cidfile`] made.
pub fn write_cidfile(mut f: std::fs::File, id: &str) -> anyhow::Result<()> {
    use std::io::Write;
    f.write_all(id.as_bytes())
        .map_err(|e| anyhow::anyhow!("failed to write the container ID to the file: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_parse_as_docker() {
        assert_eq!(
            parse_ulimit("nofile=100:200").unwrap(),
            Ulimit {
                name: "nofile".into(),
                soft: 100,
                hard: 200
            }
        );
        assert_eq!(parse_ulimit("nproc=50").unwrap().hard, 50);
        let e = |v: &str| parse_ulimit(v).unwrap_err().to_string();
        assert_eq!(
            e("bogus=1"),
            "invalid argument \"bogus=1\" for \"--ulimit\" flag: invalid ulimit type: bogus"
        );
        assert_eq!(
            e("nofile=x"),
            "invalid argument \"nofile=x\" for \"--ulimit\" flag: strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            e("nofile=200:100"),
            "invalid argument \"nofile=200:100\" for \"--ulimit\" flag: ulimit soft limit must be less than or equal to hard limit: 200 > 100"
        );
    }

    #[test]
    fn resolv_conf_as_libnetwork_writes_it() {
        let host = "# generated\nnameserver 10.0.0.1\nsearch lan\noptions edns0\n";
        let flags = |dns: &[&str], search: &[&str], options: &[&str]| {
            let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            (v(dns), v(search), v(options))
        };
        let conf = |(dns, dns_search, dns_options): (Vec<String>, Vec<String>, Vec<String>)| {
            resolv_conf(
                host,
                &DnsFlags {
                    dns: &dns,
                    dns_search: &dns_search,
                    dns_options: &dns_options,
                },
            )
        };
        assert_eq!(conf(flags(&[], &[], &[])), host);
        assert_eq!(
            conf(flags(
                &["1.1.1.1", "9.9.9.9"],
                &["example.com"],
                &["ndots:2"]
            )),
            "search example.com\nnameserver 1.1.1.1\nnameserver 9.9.9.9\noptions ndots:2\n"
        );
        assert_eq!(
            conf(flags(&[], &["example.com"], &[])),
            "search example.com\nnameserver 10.0.0.1\noptions edns0\n"
        );
    }
}

/// One `--device` (docker's `DeviceMapping`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

/// `HOST[:CONTAINER][:rwm]`, the host path a char or block device (docker's messages). kiln
/// makes the node directly in the container's /dev (no subdirectories).
pub fn parse_device(v: &str) -> anyhow::Result<DeviceMapping> {
    let parts: Vec<&str> = v.split(':').collect();
    let is_mode = |s: &str| !s.is_empty() && s.chars().all(|c| "rwm".contains(c));
    let (host, ctr, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, m] if is_mode(m) => (*h, *h, *m),
        [h, c] => (*h, *c, "rwm"),
        [h, c, m] => (*h, *c, *m),
        _ => bail!("invalid device specification: {v}"),
    };
    if !is_mode(perms) {
        bail!("bad mode specified: {perms}");
    }
    let meta = std::fs::metadata(host).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            _ => e.to_string(),
        };
        anyhow::anyhow!(
            "error gathering device information while adding custom device {host:?}: {why}"
        )
    })?;
    use std::os::unix::fs::FileTypeExt;
    if !(meta.file_type().is_char_device() || meta.file_type().is_block_device()) {
        bail!(
            "error gathering device information while adding custom device {host:?}: not a device node"
        );
    }
    let parent = Path::new(ctr).parent();
    if !ctr.starts_with("/dev/") || parent != Some(Path::new("/dev")) {
        bail!("--device {v}: kiln makes devices directly in /dev (not {ctr})");
    }
    Ok(DeviceMapping {
        path_on_host: host.to_string(),
        path_in_container: ctr.to_string(),
        cgroup_permissions: perms.to_string(),
    })
}

/// A host device node as the spec lists it, and the cgroup rule that lets it be opened with
/// `perms`.
fn device_entry(
    host: &Path,
    ctr: &Path,
    perms: &str,
) -> anyhow::Result<(
    kiln_runtime::oci_spec::runtime::LinuxDevice,
    kiln_runtime::oci_spec::runtime::LinuxDeviceCgroup,
)> {
    use kiln_runtime::oci_spec::runtime::{
        LinuxDeviceBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    };
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(host)?;
    let typ = if meta.file_type().is_block_device() {
        LinuxDeviceType::B
    } else {
        LinuxDeviceType::C
    };
    let (major, minor) = (
        libc::major(meta.rdev()) as i64,
        libc::minor(meta.rdev()) as i64,
    );
    let dev = LinuxDeviceBuilder::default()
        .path(ctr.to_path_buf())
        .typ(typ)
        .major(major)
        .minor(minor)
        .file_mode(meta.mode() & 0o7777)
        .uid(meta.uid())
        .gid(meta.gid())
        .build()?;
    let rule = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .major(major)
        .minor(minor)
        .access(perms.to_string())
        .build()?;
    Ok((dev, rule))
}

/// `--device` entries, and with `--privileged` every device node directly in the host's /dev
/// (docker adds the host's devices; nodes in subdirectories such as /dev/net/tun are left
/// out: the runtime makes nodes in existing directories only).
fn apply_devices(spec: &mut Spec, h: &SpecFlags) -> anyhow::Result<()> {
    let mut entries = Vec::new();
    if h.privileged {
        let mut names: Vec<_> = std::fs::read_dir("/dev")?
            .flatten()
            .filter(|e| {
                use std::os::unix::fs::FileTypeExt;
                e.file_type()
                    .is_ok_and(|t| t.is_char_device() || t.is_block_device())
            })
            .map(|e| e.path())
            // The terminal devices are the container's own (its devpts and console).
            .filter(|p| !matches!(p.to_str(), Some("/dev/ptmx" | "/dev/console")))
            .collect();
        names.sort();
        for p in names {
            entries.push(device_entry(&p, &p, "rwm")?);
        }
    }
    for d in h.devices {
        entries.push(
            device_entry(
                Path::new(&d.path_on_host),
                Path::new(&d.path_in_container),
                &d.cgroup_permissions,
            )
            .map_err(|e| anyhow::anyhow!("--device {}: {e}", d.path_on_host))?,
        );
    }
    if entries.is_empty() {
        return Ok(());
    }
    let Some(linux) = spec.linux_mut() else {
        return Ok(());
    };
    let mut devs = linux.devices().clone().unwrap_or_default();
    let mut rules = Vec::new();
    for (d, r) in entries {
        devs.retain(|x| x.path() != d.path());
        devs.push(d);
        rules.push(r);
    }
    linux.set_devices(Some(devs));
    // Privileged: no device rules at all (set_insecure); else the rules after docker's.
    if !h.privileged
        && let Some(res) = linux.resources_mut()
    {
        let mut list = res.devices().clone().unwrap_or_default();
        list.extend(rules);
        res.set_devices(Some(list));
    }
    Ok(())
}
