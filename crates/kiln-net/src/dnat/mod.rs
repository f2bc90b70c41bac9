//! Published ports at kernel speed (docker's `--userland-proxy=false` path), for root and
//! IPv4 TCP: a veth pair links the host to the container's namespace ([`veth`]), and
//! nftables rules ([`nft`]) DNAT the published port to the container's end and masquerade it
//! to the host's end, so that replies come back over the veth. The port proxy keeps its
//! listener (it reserves the port, and serves what the rules do not catch: IPv6, UDP, other
//! machines' connections where the host does not forward).
//!
//! Every change to kiln's rules and every choice of subnet happens under one host-wide lock
//! ([`LOCK`]): the routes and the table are the kernel's, shared by every store.

mod nft;
mod veth;

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use crate::netns::NsThread;
use crate::{Error, PortMapping, Proto};

/// The host-wide lock file.
pub const LOCK: &str = "/run/kiln-net.lock";

/// The kernel path of one container: its veth pair, and its rules once [`KernelPorts::publish`]
/// added them. Dropping it deletes both.
pub struct KernelPorts {
    ip: PathBuf,
    nft: PathBuf,
    host_if: String,
    container_ip: Ipv4Addr,
    owner: String,
    sup: nft::Supervisor,
    rules: usize,
    /// The veth pair is gone (removed once).
    unlinked: bool,
}

/// Rules left by a supervisor that is gone ([`stale_rules`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRules {
    /// The owner the rules were added for (kiln: the container's ID).
    pub owner: String,
    /// The supervisor that added them.
    pub pid: u32,
    pub rules: usize,
}

fn unavailable(why: impl std::fmt::Display) -> Error {
    Error::KernelPath(why.to_string())
}

/// The host-wide lock, held until dropped.
fn lock() -> io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK)?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f)
}

fn tools() -> Result<(PathBuf, PathBuf), Error> {
    let nft = veth::find_tool("nft")
        .ok_or_else(|| unavailable("nft is not installed (Debian package nftables)"))?;
    let ip = veth::find_tool("ip")
        .ok_or_else(|| unavailable("ip is not installed (Debian package iproute2)"))?;
    Ok((ip, nft))
}

/// Whether the host forwards IPv4 (then other machines' connections may take the DNAT).
fn host_forwards() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|s| s.trim() == "1")
}

impl KernelPorts {
    /// Makes the veth pair between the host and `netns` (an open `/proc/PID/ns/net`), for
    /// `owner` (letters, digits, `-`, `_`; the host end is named `kiln` + its first 11
    /// characters, IFNAMSIZ). Removes stale rules first. Fails (nothing left behind) without root,
    /// `nft` or `ip`, or when the kernel refuses.
    pub fn link(netns: &File, owner: &str) -> Result<KernelPorts, Error> {
        if owner.is_empty()
            || !owner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(unavailable(format!("bad owner name {owner:?}")));
        }
        if crate::proxy::in_user_namespace() {
            return Err(unavailable(
                "rootless: no veth and no nftables rules in the host's namespace",
            ));
        }
        let (ip, nft) = tools()?;
        let sup = nft::Supervisor::current().map_err(unavailable)?;
        let host_if = format!(
            "{}{}",
            veth::HOST_PREFIX,
            &owner[..owner.len().min(15 - veth::HOST_PREFIX.len())]
        );
        let ns = NsThread::start(netns, "kiln-net-veth")?;
        let _lock = lock().map_err(|e| unavailable(format!("locking {LOCK}: {e}")))?;
        let _ = remove_stale_locked(&nft);
        // The name is taken by this owner's previous pair when its namespace is still being
        // torn down (`release` leaves that to the kernel): it is removed and the name reused.
        if veth::exists(&host_if) {
            let _ = veth::delete(&ip, &host_if);
        }
        let subnet = veth::pick_free().map_err(unavailable)?;
        veth::create(&ip, netns, &ns, &host_if, subnet)
            .map_err(|e| unavailable(format!("making the veth pair {host_if}: {e}")))?;
        Ok(KernelPorts {
            ip,
            nft,
            host_if,
            container_ip: subnet.container(),
            owner: owner.to_string(),
            sup,
            rules: 0,
            unlinked: false,
        })
    }

    /// The container's address on its veth: the target of the DNAT (and of the proxy).
    pub fn container_ip(&self) -> Ipv4Addr {
        self.container_ip
    }

    /// The host end's name.
    pub fn host_interface(&self) -> &str {
        &self.host_if
    }

    /// Adds the rules for `maps` as bound (real host ports): each IPv4 TCP mapping is DNATed
    /// for the host's own connections, and for other machines' where the host forwards IPv4.
    /// Returns the mappings taken; the others stay with the proxy. All or nothing.
    pub fn publish(&mut self, maps: &[PortMapping]) -> Result<Vec<PortMapping>, Error> {
        let taken: Vec<PortMapping> = maps
            .iter()
            .filter(|m| m.proto == Proto::Tcp && m.host_ip.is_ipv4() && m.host_port != 0)
            .copied()
            .collect();
        if taken.is_empty() {
            return Ok(taken);
        }
        let forwards: Vec<nft::Forward> = taken
            .iter()
            .map(|m| nft::Forward {
                daddr: match m.host_ip {
                    IpAddr::V4(a) if !a.is_unspecified() => Some(a),
                    _ => None,
                },
                dport: m.host_port,
                to: self.container_ip,
                to_port: m.container_port,
            })
            .collect();
        let batch = nft::add_batch(
            &forwards,
            &self.host_if,
            &nft::comment(&self.owner, self.sup),
            host_forwards(),
        );
        let _lock = lock().map_err(|e| unavailable(format!("locking {LOCK}: {e}")))?;
        nft::add_rules(&self.nft, &batch)
            .map_err(|e| unavailable(format!("adding the nftables rules: {e}")))?;
        self.rules = batch.lines().filter(|l| l.starts_with("add rule")).count();
        Ok(taken)
    }

    /// Packets the DNAT rules of this container have translated (connections' first packets:
    /// NAT rules see only those).
    pub fn dnat_packets(&self) -> Result<u64, Error> {
        let rules = nft::list(&self.nft).map_err(unavailable)?;
        Ok(rules
            .iter()
            .filter(|r| r.owner == self.owner && r.sup == self.sup && r.chain != "postrouting")
            .map(|r| r.packets)
            .sum())
    }

    /// Deletes the rules, then the veth pair (drop does the same, ignoring errors).
    pub fn remove(mut self) -> Result<(), Error> {
        self.teardown(true)
    }

    /// Deletes the rules and leaves the veth pair to die with the container's namespace: the
    /// kernel then unregisters it on its own time (deleting it here took 20-26 ms, most of
    /// `kiln run --rm -p`'s cost at exit). For a caller whose namespace ends with it.
    pub fn release(mut self) -> Result<(), Error> {
        self.unlinked = true;
        self.teardown(false)
    }

    fn teardown(&mut self, unlink: bool) -> Result<(), Error> {
        let lock = lock().map_err(|e| unavailable(format!("locking {LOCK}: {e}")));
        let mut result = Ok(());
        if self.rules > 0 && lock.is_ok() {
            result = nft::list(&self.nft)
                .and_then(|rules| {
                    let mine: Vec<&nft::Rule> = rules
                        .iter()
                        .filter(|r| r.owner == self.owner && r.sup == self.sup)
                        .collect();
                    nft::delete(&self.nft, &mine)
                })
                .map_err(|e| unavailable(format!("deleting the nftables rules: {e}")));
            self.rules = 0;
        }
        if unlink && !self.unlinked {
            self.unlinked = true;
            let _ = veth::delete(&self.ip, &self.host_if);
        }
        drop(lock);
        result
    }
}

impl Drop for KernelPorts {
    fn drop(&mut self) {
        let _ = self.teardown(true);
    }
}

/// The `nft` to look at kiln's rules with: none for rootless kiln (it makes no rules and may
/// not read the host's) or without `nft` (no rule can have been made).
fn nft_for_check() -> Option<PathBuf> {
    if crate::proxy::in_user_namespace() {
        return None;
    }
    tools().ok().map(|(_, nft)| nft)
}

/// kiln rules whose supervisor is gone (a SIGKILLed one leaves them).
pub fn stale_rules() -> Result<Vec<StaleRules>, Error> {
    let Some(nft) = nft_for_check() else {
        return Ok(Vec::new());
    };
    let rules = nft::list(&nft).map_err(unavailable)?;
    Ok(group_stale(&rules))
}

/// Removes [`stale_rules`] and returns what they were.
pub fn remove_stale_rules() -> Result<Vec<StaleRules>, Error> {
    let Some(nft) = nft_for_check() else {
        return Ok(Vec::new());
    };
    let _lock = lock().map_err(|e| unavailable(format!("locking {LOCK}: {e}")))?;
    remove_stale_locked(&nft).map_err(unavailable)
}

fn remove_stale_locked(nft: &std::path::Path) -> io::Result<Vec<StaleRules>> {
    let rules = nft::list(nft)?;
    let stale = group_stale(&rules);
    if stale.is_empty() {
        return Ok(stale);
    }
    let doomed: Vec<&nft::Rule> = rules.iter().filter(|r| !r.sup.alive()).collect();
    nft::delete(nft, &doomed)?;
    Ok(stale)
}

fn group_stale(rules: &[nft::Rule]) -> Vec<StaleRules> {
    let mut out: Vec<StaleRules> = Vec::new();
    for r in rules.iter().filter(|r| !r.sup.alive()) {
        match out
            .iter_mut()
            .find(|s| s.owner == r.owner && s.pid == r.sup.pid)
        {
            Some(s) => s.rules += 1,
            None => out.push(StaleRules {
                owner: r.owner.clone(),
                pid: r.sup.pid,
                rules: 1,
            }),
        }
    }
    out
}

/// The kiln rules of `owner` (any supervisor) now in the table, as `nft` prints them: for
/// tests.
pub fn rules_of(owner: &str) -> Result<usize, Error> {
    let Some(nft) = nft_for_check() else {
        return Ok(0);
    };
    let rules = nft::list(&nft).map_err(unavailable)?;
    Ok(rules.iter().filter(|r| r.owner == owner).count())
}
