//! kiln's nftables rules, through the `nft` command: one table, `ip kiln`, with three NAT base
//! chains (`output` and `prerouting` DNAT a published port to the container's veth address,
//! `postrouting` masquerades what leaves through a kiln veth), and each container's rules
//! tagged with a comment that names it and its supervisor:
//! `kiln <owner> pid <pid> start <ticks>`. A rule whose supervisor (pid + start time) is gone
//! is stale, whatever store it came from, and any kiln may remove it.
//!
//! `nft` rather than nf_tables netlink: rules are expressions in a binary encoding that `nft`
//! compiles (and prints back readably for `nft list ruleset`); a batch is one atomic
//! transaction, about 4 ms per call here.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use super::veth::run_tool;

pub(crate) const TABLE: &str = "kiln";

/// The process that owns a set of rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Supervisor {
    pub pid: u32,
    pub start: u64,
}

impl Supervisor {
    pub(crate) fn current() -> io::Result<Supervisor> {
        let pid = std::process::id();
        let start = start_time(pid)
            .ok_or_else(|| io::Error::other("cannot read this process's start time"))?;
        Ok(Supervisor { pid, start })
    }

    pub(crate) fn alive(self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// Field 22 of `/proc/PID/stat` (clock ticks since boot); `None` when the process is gone or
/// a zombie (a SIGKILLed supervisor its parent has not reaped yet).
fn start_time(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let mut fields = text[text.rfind(')')? + 1..].split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

pub(crate) fn comment(owner: &str, sup: Supervisor) -> String {
    format!("kiln {owner} pid {} start {}", sup.pid, sup.start)
}

fn parse_comment(c: &str) -> Option<(String, Supervisor)> {
    let f: Vec<&str> = c.split(' ').collect();
    match f[..] {
        ["kiln", owner, "pid", pid, "start", start] => Some((
            owner.to_string(),
            Supervisor {
                pid: pid.parse().ok()?,
                start: start.parse().ok()?,
            },
        )),
        _ => None,
    }
}

/// One TCP port to DNAT: `daddr` `None` is any local address (a 0.0.0.0 mapping).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forward {
    pub daddr: Option<Ipv4Addr>,
    pub dport: u16,
    pub to: Ipv4Addr,
    pub to_port: u16,
}

/// The batch that makes the table and its chains (an `add` of what exists changes nothing,
/// but costs a 13 ms commit here, against 2 ms for the rules alone: [`add_rules`] tries
/// without it first).
pub(crate) fn table_batch() -> String {
    format!(
        "add table ip {TABLE}\n\
         add chain ip {TABLE} output {{ type nat hook output priority -100; policy accept; }}\n\
         add chain ip {TABLE} prerouting {{ type nat hook prerouting priority -100; policy accept; }}\n\
         add chain ip {TABLE} postrouting {{ type nat hook postrouting priority 100; policy accept; }}\n\
         add chain ip {TABLE} guard {{ type filter hook prerouting priority -300; policy accept; }}\n"
    )
}

/// Adds a batch of rules ([`add_batch`]) in one transaction, making the table and chains
/// first when they are missing.
pub(crate) fn add_rules(nft: &Path, rules: &str) -> io::Result<()> {
    match run_tool(nft, &["-f", "-"], rules, None) {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("No such file or directory") => {
            run_tool(nft, &["-f", "-"], &(table_batch() + rules), None).map(drop)
        }
        Err(e) => Err(e),
    }
}

/// The rules of one container. `prerouting`: also for connections from other machines (only
/// where the host forwards).
pub(crate) fn add_batch(
    forwards: &[Forward],
    host_if: &str,
    tag: &str,
    prerouting: bool,
) -> String {
    let mut b = String::new();
    for f in forwards {
        let matcher = match f.daddr {
            None => "fib daddr type local".to_string(),
            Some(a) => format!("ip daddr {a}"),
        };
        let rule = format!(
            "{matcher} tcp dport {} counter dnat to {}:{} comment \"{tag}\"",
            f.dport, f.to, f.to_port
        );
        b.push_str(&format!("add rule ip {TABLE} output {rule}\n"));
        // Loopback destinations never arrive from outside (martians).
        if prerouting && !f.daddr.is_some_and(|a| a.is_loopback()) {
            b.push_str(&format!("add rule ip {TABLE} prerouting {rule}\n"));
        }
    }
    // `route_localnet` on the host's end lets DNATed 127.0.0.1 traffic out through the veth;
    // it would also let the container reach the host's 127.0.0.1-only services with packets
    // it crafts (CAP_NET_RAW) to 127.0.0.1 and the host end's MAC (the CVE-2020-8558 class):
    // nothing from the veth may be addressed to loopback, as kube-proxy and docker drop it.
    b.push_str(&format!(
        "add rule ip {TABLE} guard iifname \"{host_if}\" ip daddr 127.0.0.0/8 counter drop comment \"{tag}\"\n"
    ));
    // Replies must come back through the veth: the container sees the host's veth address as
    // the client, which it reaches on-link (its default route is pasta's tap).
    b.push_str(&format!(
        "add rule ip {TABLE} postrouting oifname \"{host_if}\" ct status dnat counter masquerade comment \"{tag}\"\n"
    ));
    b
}

/// A rule of the table: its chain, handle and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub chain: String,
    pub handle: u64,
    pub owner: String,
    pub sup: Supervisor,
    /// Packets its counter saw.
    pub packets: u64,
}

/// Every kiln-tagged rule of the table, from `nft -a list table ip kiln`'s text (rules
/// without a kiln tag are someone else's, left alone).
pub(crate) fn parse_listing(text: &str) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut chain = String::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("chain ") {
            chain = rest.split_whitespace().next().unwrap_or("").to_string();
            continue;
        }
        let Some((body, handle)) = t.rsplit_once("# handle ") else {
            continue;
        };
        if t.starts_with("table ") || chain.is_empty() {
            continue;
        }
        let Ok(handle) = handle.trim().parse::<u64>() else {
            continue;
        };
        let tagged = body
            .split_once("comment \"")
            .and_then(|(_, c)| c.split_once('"'))
            .and_then(|(c, _)| parse_comment(c));
        let packets = body
            .split_once("counter packets ")
            .and_then(|(_, r)| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if let Some((owner, sup)) = tagged {
            rules.push(Rule {
                chain: chain.clone(),
                handle,
                owner,
                sup,
                packets,
            });
        }
    }
    rules
}

/// The table's kiln rules (none when the table does not exist).
pub(crate) fn list(nft: &Path) -> io::Result<Vec<Rule>> {
    match run_tool(nft, &["-a", "list", "table", "ip", TABLE], "", None) {
        Ok(text) => Ok(parse_listing(&text)),
        Err(e) if e.to_string().contains("No such file or directory") => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Deletes `doomed` (rules of the table) in one transaction. The table and its chains stay,
/// empty, as docker's chains do: deleting them cost 15 ms here (unregistering the hooks waits
/// for an RCU grace period), paid by every `run --rm -p` that was the last one.
pub(crate) fn delete(nft: &Path, doomed: &[&Rule]) -> io::Result<()> {
    if doomed.is_empty() {
        return Ok(());
    }
    let b: String = doomed
        .iter()
        .map(|r| format!("delete rule ip {TABLE} {} handle {}\n", r.chain, r.handle))
        .collect();
    run_tool(nft, &["-f", "-"], &b, None).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_gives_each_rules_owner_and_handle() {
        let text = r#"table ip kiln { # handle 7
	chain output { # handle 1
		type nat hook output priority dstnat; policy accept;
		fib daddr type local tcp dport 3000 counter packets 5 bytes 300 dnat to 169.254.1.2:80 comment "kiln abc pid 12 start 345" # handle 4
		ip daddr 127.0.0.1 tcp dport 1 dnat to 1.2.3.4:5 # handle 5
	}

	chain postrouting { # handle 3
		type nat hook postrouting priority srcnat; policy accept;
		oifname "kilnabc" ct status dnat counter packets 0 bytes 0 masquerade comment "kiln abc pid 12 start 345" # handle 6
	}
}
"#;
        let rules = parse_listing(text);
        let sup = Supervisor {
            pid: 12,
            start: 345,
        };
        assert_eq!(
            rules,
            vec![
                Rule {
                    chain: "output".into(),
                    handle: 4,
                    owner: "abc".into(),
                    sup,
                    packets: 5
                },
                Rule {
                    chain: "postrouting".into(),
                    handle: 6,
                    owner: "abc".into(),
                    sup,
                    packets: 0
                }
            ]
        );
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = Supervisor::current().unwrap();
        assert!(me.alive());
        assert!(
            !Supervisor {
                start: me.start + 1,
                ..me
            }
            .alive()
        );
        assert_eq!(
            parse_comment(&comment("x1", me)),
            Some(("x1".to_string(), me))
        );
    }
}
