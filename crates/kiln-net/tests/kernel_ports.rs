//! Published ports through the kernel (`KernelPorts`: veth pair + nftables DNAT), with the real
//! `ip` and `nft`, all inside namespaces the test makes: a "host" namespace (its own nftables
//! table, its own ip_forward), a "machine" beside it on a veth (198.51.100.0/24, TEST-NET-2),
//! and the container's namespace with an echo server. Connections to the host's loopback, to
//! its other address and from the other machine reach the container with the proxy carrying
//! nothing; removal leaves no rule and no veth; rules of a dead supervisor are found and
//! removed.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use common::{Netns, echo_server, pattern};
use kiln_net::{KernelPorts, PortMapping, Proto, Proxy, ProxyOptions};
use kiln_test::prereq;

fn any_port(container_port: u16, proto: Proto) -> PortMapping {
    PortMapping {
        host_ip: "0.0.0.0".parse().unwrap(),
        host_port: 0,
        container_port,
        proto,
    }
}

/// Sends `data`, half-closes, and reads the echo to its end.
fn echo(mut c: TcpStream, data: &[u8]) -> Vec<u8> {
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = c.try_clone().unwrap();
    let sent = data.to_vec();
    let writer = std::thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    back
}

/// Runs `f` on a thread that entered the namespace `ns`.
fn in_ns<R: Send + 'static>(ns: &File, f: impl FnOnce() -> R + Send + 'static) -> R {
    let fd = ns.try_clone().unwrap();
    std::thread::spawn(move || {
        // SAFETY: setns on this thread only.
        assert_eq!(
            unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        f()
    })
    .join()
    .unwrap()
}

/// `nft ARGS` in the calling thread's namespace (the child inherits it).
fn nft(args: &[&str]) -> (bool, String) {
    let out = Command::new(prereq::require_command("nft", "nftables"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn link_exists(name: &str) -> bool {
    Command::new(prereq::require_command("ip", "iproute2"))
        .args(["link", "show", name])
        .output()
        .unwrap()
        .status
        .success()
}

/// The host namespace, a machine beside it, and a container namespace.
fn setup() -> (Netns, Netns, Netns) {
    prereq::require_root("veth pairs and nftables rules");
    prereq::require_command("nft", "nftables");
    let host = Netns::new(true);
    let machine = Netns::new(true);
    let ctr = Netns::new(true);
    let mpath = machine.path();
    host.ip(&[
        "link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns", &mpath,
    ]);
    host.ip(&["addr", "add", "198.51.100.1/24", "dev", "uplink"]);
    host.ip(&["link", "set", "uplink", "up"]);
    machine.ip(&["addr", "add", "198.51.100.2/24", "dev", "eth0"]);
    machine.ip(&["link", "set", "eth0", "up"]);
    (host, machine, ctr)
}

#[test]
fn published_tcp_goes_through_the_kernel_and_removal_leaves_nothing() {
    let (host, machine, ctr) = setup();
    echo_server(ctr.tcp_listener("0.0.0.0:7"));
    let ctr_file = ctr.file.try_clone().unwrap();
    let machine_file = machine.file.try_clone().unwrap();
    let owner = format!("t{}a", std::process::id());
    in_ns(&host.file, move || {
        // This namespace forwards (its own sysctl): other machines' connections take the DNAT.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").unwrap();
        let mut k = KernelPorts::link(&ctr_file, &owner).expect("veth pair");
        let ifname = k.host_interface().to_string();
        assert!(link_exists(&ifname), "{ifname} made");
        let maps = [any_port(7, Proto::Tcp), any_port(7, Proto::Udp)];
        let opts = ProxyOptions {
            target: Some(k.container_ip().into()),
            ..ProxyOptions::default()
        };
        let proxy = Proxy::start_with(&ctr_file, &maps, opts).expect("proxy");
        let taken = k.publish(&proxy.bound()).expect("rules");
        assert_eq!(
            taken,
            vec![proxy.bound()[0]],
            "TCP only: UDP stays with the proxy"
        );
        let port = proxy.bound()[0].host_port;
        let (ok, table) = nft(&["list", "table", "ip", "kiln"]);
        assert!(ok, "{table}");
        // One DNAT in output (the host's own connections), one in prerouting (forwarded).
        let dnat = format!("dnat to {}:7", k.container_ip());
        assert_eq!(table.matches(&dnat).count(), 2, "{table}");

        // The host's own connections, to loopback (route_localnet on the veth) and to its
        // other address; byte-exact, with half-close.
        let data = pattern(4 << 20, 3);
        for ip in ["127.0.0.1", "198.51.100.1"] {
            let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
            let back = echo(TcpStream::connect(addr).unwrap(), &data);
            assert!(
                back == data,
                "echo through {addr}: {} bytes back",
                back.len()
            );
        }
        // Another machine's (prerouting, forwarded to the veth).
        let addr: SocketAddr = format!("198.51.100.1:{port}").parse().unwrap();
        let c = in_ns(&machine_file, move || TcpStream::connect(addr).unwrap());
        assert!(echo(c, b"from afar") == b"from afar");
        // 200 at once.
        let conns: Vec<TcpStream> = (0..200)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let handles: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                std::thread::spawn(move || {
                    echo(c, &pattern(8192, i as u8)) == pattern(8192, i as u8)
                })
            })
            .collect();
        assert!(handles.into_iter().all(|h| h.join().unwrap()), "200 echoes");

        // The kernel took them all: the proxy, whose listener holds the port, saw nothing.
        assert_eq!(proxy.traffic(), (0, 0), "bytes through the proxy");
        assert_eq!(proxy.live_connections(), 0);
        let translated = k.dnat_packets().unwrap();
        assert!(translated >= 203, "DNATed connections: {translated}");

        proxy.stop();
        k.remove().expect("remove");
        assert_eq!(kiln_net::rules_of(&owner).unwrap(), 0);
        // The table and its chains stay, empty.
        let (ok, out) = nft(&["list", "table", "ip", "kiln"]);
        assert!(
            ok && !out.contains("dnat") && !out.contains("masquerade"),
            "{out}"
        );
        assert!(!link_exists(&ifname), "{ifname} left");
        // Nothing listens or answers any more.
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    });
}

#[test]
fn rules_of_a_dead_supervisor_are_found_and_removed() {
    let (host, _machine, ctr) = setup();
    let ctr_file = ctr.file.try_clone().unwrap();
    let owner = format!("t{}b", std::process::id());
    let ifname = in_ns(&host.file, move || {
        // What a SIGKILLed supervisor leaves: its rules, naming a process that is gone (a child
        // that has exited and been reaped).
        let mut child = Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let tag = format!("kiln {owner} pid {dead} start 1");
        let batch = format!(
            "add table ip kiln\n\
             add chain ip kiln output {{ type nat hook output priority -100; policy accept; }}\n\
             add rule ip kiln output ip daddr 127.0.0.1 tcp dport 9 counter dnat to 169.254.1.2:9 comment \"{tag}\"\n"
        );
        nft_batch(&batch);

        let stale = kiln_net::stale_rules().unwrap();
        assert_eq!(stale.len(), 1, "{stale:?}");
        assert_eq!(
            (stale[0].owner.as_str(), stale[0].pid, stale[0].rules),
            (owner.as_str(), dead, 1)
        );
        // A live supervisor's rules are not stale.
        let mut k = KernelPorts::link(&ctr_file, "livec").expect("veth");
        drop(ctr_file);
        // ...and the next KernelPorts::link removed the dead one's.
        assert_eq!(kiln_net::rules_of(&owner).unwrap(), 0);
        k.publish(&[PortMapping {
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: 7007,
            container_port: 7,
            proto: Proto::Tcp,
        }])
        .unwrap();
        assert!(kiln_net::stale_rules().unwrap().is_empty());
        // output, postrouting and the loopback guard (no prerouting for a 127.0.0.1 mapping).
        assert_eq!(kiln_net::rules_of("livec").unwrap(), 3);
        // Re-add a dead one: system check's repair removes it and keeps the live ones.
        nft_batch(&batch);
        assert_eq!(kiln_net::remove_stale_rules().unwrap().len(), 1);
        assert_eq!(kiln_net::rules_of(&owner).unwrap(), 0);
        assert_eq!(kiln_net::rules_of("livec").unwrap(), 3);
        // release: the rules now, the veth with the namespace.
        let ifname = k.host_interface().to_string();
        k.release().unwrap();
        assert_eq!(kiln_net::rules_of("livec").unwrap(), 0);
        assert!(
            link_exists(&ifname),
            "{ifname} stays while its namespace lives"
        );
        ifname
    });
    drop(ctr);
    let t0 = std::time::Instant::now();
    while in_ns(&host.file, {
        let n = ifname.clone();
        move || link_exists(&n)
    }) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{ifname} outlived the container's namespace"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Applies an nftables batch (`nft -f -`), as a dead supervisor's leftover rules.
fn nft_batch(batch: &str) {
    let mut p = Command::new(prereq::require_command("nft", "nftables"))
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    p.stdin.take().unwrap().write_all(batch.as_bytes()).unwrap();
    assert!(p.wait().unwrap().success());
}
