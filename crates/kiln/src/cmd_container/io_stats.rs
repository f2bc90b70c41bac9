//! `stats`' NET I/O and BLOCK I/O columns: bytes received / sent by the container's network
//! interfaces, and bytes read / written by its processes on block devices, in docker's form
//! (`1.23kB / 648B`: decimal units, three significant digits).
//!
//! - Network: the container's network namespace's `/proc/<pid>/net/dev`, every interface but
//!   `lo` (docker counts its endpoints' interfaces only). Published ports' traffic crosses
//!   `kiln0` when they go through the kernel (root: the DNAT and the proxy both reach the
//!   container over that veth), so the interfaces count it. Otherwise (rootless, kernel path
//!   refused) the proxy reaches the container over its loopback and counts the bytes it
//!   delivers each way in `containers/<id>/proxy-traffic` (kiln-net's `Traffic`), which is
//!   added here, client → container as received, container → client as sent; with the
//!   kernel path that file is removed at start, so nothing is counted twice.
//!   `--network host` shares the host's interfaces, which docker does not count: `0B / 0B`,
//!   as docker prints.
//! - Block: cgroup v2's `io.stat` (`rbytes`, `wbytes`); cgroup v1's blkio
//!   (`blkio.io_service_bytes_recursive`, else `blkio.throttle.io_service_bytes_recursive`,
//!   `Read` and `Write`). Kernels that no longer count v1 blkio for a cgroup without a
//!   throttle limit (6.x) report zeros there; then, and without cgroups (rootless, none
//!   delegated), the processes' own accounting (`/proc/<pid>/io` `read_bytes`,
//!   `write_bytes`; a process's count includes the children it reaped) is summed over the
//!   container's processes.

use std::path::Path;

use crate::cmd_image::render::human_size;

/// docker's `HumanSizeWithPrecision(rx, 3) + " / " + HumanSizeWithPrecision(tx, 3)`.
pub fn pair(a: u64, b: u64) -> String {
    format!("{} / {}", human_size(a), human_size(b))
}

/// The file in a container's directory where its port proxy counts the bytes it carries.
pub fn traffic_file(container_dir: &Path) -> std::path::PathBuf {
    container_dir.join("proxy-traffic")
}

/// (received, sent) bytes of the running container whose first process is `pid`: every
/// interface but `lo` in its network namespace, plus its published ports' traffic (the proxy's
/// counters in `container_dir`); `None` when the interfaces cannot be read.
pub fn net(container_dir: &Path, pid: u32, network_mode: &str) -> Option<(u64, u64)> {
    if network_mode == "host" {
        return Some((0, 0));
    }
    if pid == 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let (rx, tx) = parse_net_dev(&text);
    let (prx, ptx) = kiln_net::Traffic::read_file(&traffic_file(container_dir)).unwrap_or((0, 0));
    Some((rx + prx, tx + ptx))
}

/// Sums `/proc/net/dev`'s receive and transmit byte columns, `lo` left out.
fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0u64, 0u64);
    for line in text.lines().skip(2) {
        let Some((name, fields)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = fields
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        // Receive: bytes packets errs drop fifo frame compressed multicast; then transmit.
        rx += f.first().copied().unwrap_or(0);
        tx += f.get(8).copied().unwrap_or(0);
    }
    (rx, tx)
}

/// (read, written) bytes of the container (see the module's comment for the sources).
pub fn block(container_dir: &Path, id: &str, pid: u32) -> (u64, u64) {
    let dirs = super::cgroup::dirs_of(container_dir, id);
    let from_cgroup = if super::cgroup_host::is_v2() {
        super::cgroup::dir_for(&dirs, "")
            .and_then(|d| std::fs::read_to_string(d.join("io.stat")).ok())
            .map(|t| parse_io_stat(&t))
    } else {
        super::cgroup::dir_for(&dirs, "blkio").and_then(|d| {
            [
                "blkio.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes_recursive",
            ]
            .iter()
            .filter_map(|f| std::fs::read_to_string(d.join(f)).ok())
            .map(|t| parse_blkio(&t))
            .find(|&(r, w)| r + w > 0)
        })
    };
    match from_cgroup {
        Some(rw) if rw != (0, 0) => rw,
        _ => proc_io(&super::cgroup::processes(container_dir, id, pid)),
    }
}

/// v2 `io.stat`: `MAJ:MIN rbytes=N wbytes=N rios=N ...` per device.
fn parse_io_stat(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for kv in text.split_whitespace() {
        match kv.split_once('=') {
            Some(("rbytes", v)) => r += v.parse::<u64>().unwrap_or(0),
            Some(("wbytes", v)) => w += v.parse::<u64>().unwrap_or(0),
            _ => {}
        }
    }
    (r, w)
}

/// v1 blkio `MAJ:MIN Read N` / `MAJ:MIN Write N` lines (docker sums ops starting with r and
/// w; the `Total` lines have no op).
fn parse_blkio(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [_, op, v] = f[..] else { continue };
        let v: u64 = v.parse().unwrap_or(0);
        match op.as_bytes().first() {
            Some(b'r' | b'R') => r += v,
            Some(b'w' | b'W') => w += v,
            _ => {}
        }
    }
    (r, w)
}

/// `read_bytes` and `write_bytes` of `/proc/<pid>/io`, summed over `pids`.
fn proc_io(pids: &[u32]) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for p in pids {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{p}/io")) else {
            continue;
        };
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("read_bytes:") {
                r += v.trim().parse::<u64>().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("write_bytes:") {
                w += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    (r, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_sums_every_interface_but_lo() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    2949      36    0    0    0     0          0         0     2949      36    0    0    0     0       0          0
  eth0:     678      13    0    0    0     0          0         0     1844      24    0    0    0     0       0          0
  eth1:1000 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0
";
        assert_eq!(parse_net_dev(text), (1678, 1849));
    }

    #[test]
    fn cgroup_io_files_parse_as_docker_sums_them() {
        assert_eq!(
            parse_io_stat(
                "254:0 rbytes=4096 wbytes=5255168 rios=1 wios=13 dbytes=0 dios=0\n8:0 rbytes=1 wbytes=2\n"
            ),
            (4097, 5255170)
        );
        assert_eq!(
            parse_blkio(
                "254:0 Read 10\n254:0 Write 5255168\n254:0 Sync 5255168\n254:0 Async 0\n254:0 Discard 0\n254:0 Total 5255178\nTotal 5255178\n"
            ),
            (10, 5255168)
        );
    }

    #[test]
    fn pairs_use_dockers_decimal_units() {
        assert_eq!(pair(1234, 648), "1.23kB / 648B");
        assert_eq!(pair(0, 5_255_168), "0B / 5.26MB");
    }
}
