//! The private network: lo up, pasta attached for outbound access (an address and a default
//! route in the namespace; no traffic is sent out), pasta gone after drop, and the proxy
//! forwarding to the container's address as docker does.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::{Netns, echo_server};
use kiln_net::{PortMapping, PrivateNet, Proto, Proxy};
use kiln_test::prereq;

fn pasta_alive(pid: u32) -> bool {
    // Debian's pasta is a link to passt, which may exec passt.avx2. A zombie is dead.
    let named = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|c| c.starts_with("pasta") || c.starts_with("passt"));
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    });
    named && !zombie
}

/// The inodes of the sockets process `pid` holds.
fn socket_inodes(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect()
}

#[test]
fn lo_up_outbound_through_pasta_and_pasta_gone_after_drop() {
    prereq::require_command("pasta", "passt");
    let ns = Netns::new(false);
    assert!(
        !ns.ip(&["link", "show", "lo"]).contains(",UP"),
        "lo starts down"
    );

    let net = PrivateNet::setup(&ns.file).expect("private network");
    assert_eq!(net.loopback_only_reason(), None, "pasta attached");
    let pid = net.pasta_pid().expect("a pasta process");
    assert!(pasta_alive(pid), "pasta {pid} runs while the network lives");
    let addr = net.address().expect("an address from pasta");

    assert!(ns.ip(&["link", "show", "lo"]).contains(",UP"), "lo is up");
    let addrs = ns.ip(&["-o", "addr", "show"]);
    assert!(addrs.contains(&addr.to_string()), "{addr} not in:\n{addrs}");
    let routes = ns.ip(&["route", "show", "default"]);
    assert!(
        routes.starts_with("default via "),
        "no default route:\n{routes}"
    );
    // pasta copies the host's IPv6 default route too, and setup waits for it.
    let host_v6 = std::fs::read_to_string("/proc/net/ipv6_route")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("00000000000000000000000000000000 00 ") && !l.ends_with(" lo"));
    if host_v6 {
        let v6 = ns.ip(&["-6", "route", "show", "default"]);
        assert!(
            v6.starts_with("default via "),
            "no IPv6 default route:\n{v6}"
        );
    }
    // Only whether a route exists: `ip route get` asks the kernel, nothing is sent.
    let route = ns.ip(&["route", "get", "192.0.2.123"]);
    assert!(!route.contains("unreachable"), "{route}");
    // pasta forwards no port by itself: with a server listening in the namespace, pasta holds
    // no listening TCP socket on the host.
    let _server = ns.tcp_listener("0.0.0.0:8080");
    std::thread::sleep(Duration::from_millis(1500));
    let inodes = socket_inodes(pid);
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap().lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            assert!(
                !(cols[3] == "0A" && inodes.iter().any(|i| i == cols[9])),
                "pasta listens on the host: {line}"
            );
        }
    }

    drop(net);
    let deadline = Instant::now() + Duration::from_secs(5);
    while pasta_alive(pid) {
        assert!(Instant::now() < deadline, "pasta {pid} survived the drop");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "pasta was reaped"
    );
}

#[test]
fn proxy_forwards_to_the_container_address_like_docker() {
    prereq::require_command("pasta", "passt");
    let ns = Netns::new(false);
    let net = PrivateNet::setup(&ns.file).expect("private network");
    let addr = net.address().expect("an address from pasta");
    assert!(addr.is_ipv4(), "pasta gives an IPv4 address first: {addr}");

    echo_server(ns.tcp_listener("0.0.0.0:8080"));
    echo_server(ns.tcp_listener("127.0.0.1:8081"));
    let map = |p| PortMapping {
        host_ip: "127.0.0.1".parse().unwrap(),
        host_port: 0,
        container_port: p,
        proto: Proto::Tcp,
    };
    let proxy = Proxy::start(&ns.file, &[map(8080), map(8081)]).unwrap();
    assert_eq!(
        proxy.target_ip(),
        addr,
        "the proxy targets the container's address"
    );
    let b = proxy.bound();

    let mut c = TcpStream::connect(("127.0.0.1", b[0].host_port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"through pasta's namespace").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got, "through pasta's namespace");

    // A server bound only to the container's loopback is not published (as with docker).
    let mut c = TcpStream::connect(("127.0.0.1", b[1].host_port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 1];
    match c.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("a loopback-only server was reached: {other:?}"),
    }
    proxy.stop();
    drop(net);
}

/// Run by `pasta_dies_with_its_owner` in a child process: sets up the private network of the
/// namespace named by KILN_NET_TEST_NETNS, prints pasta's pid, and waits to be killed.
#[test]
#[ignore = "helper: run by pasta_dies_with_its_owner in a child process"]
fn helper_hold_a_private_net() {
    let Ok(path) = std::env::var("KILN_NET_TEST_NETNS") else {
        panic!("only run by pasta_dies_with_its_owner");
    };
    let f = std::fs::File::open(path).unwrap();
    let net = PrivateNet::setup(&f).unwrap();
    println!("pasta={}", net.pasta_pid().expect("pasta"));
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(60));
    drop(net);
}

#[test]
fn pasta_dies_with_its_owner() {
    use std::io::BufRead;
    prereq::require_command("pasta", "passt");
    let ns = Netns::new(false);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_hold_a_private_net",
            "--ignored",
            "--nocapture",
        ])
        .env("KILN_NET_TEST_NETNS", ns.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let pid: u32 = out
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("pasta=").map(|p| p.parse().unwrap()))
        .expect("the helper printed pasta's pid");
    assert!(pasta_alive(pid));
    // SIGKILL: no destructor runs; the death signal must take pasta down.
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while pasta_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "pasta {pid} outlived its killed owner"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn without_a_working_pasta_the_network_is_loopback_only_and_says_why() {
    let ns = Netns::new(false);
    let net = PrivateNet::setup_with(&ns.file, None).unwrap();
    assert!(ns.ip(&["link", "show", "lo"]).contains(",UP"), "lo is up");
    assert_eq!(net.pasta_pid(), None);
    assert_eq!(net.address(), None);
    let why = net.loopback_only_reason().expect("a reason");
    assert!(why.contains("passt"), "{why}");

    let missing = std::path::Path::new("/nonexistent/pasta");
    let net = PrivateNet::setup_with(&ns.file, Some(missing)).unwrap();
    let why = net.loopback_only_reason().expect("a reason");
    assert!(
        why.contains("/nonexistent/pasta") && why.contains("could not be started"),
        "{why}"
    );

    // A pasta that fails: its message is part of the reason.
    let dir = std::env::temp_dir().join(format!("kiln-net-fakepasta-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("pasta");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'No routable interface for IPv4' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let net = PrivateNet::setup_with(&ns.file, Some(&fake)).unwrap();
    let why = net.loopback_only_reason().expect("a reason").to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        why.contains("exited") && why.contains("No routable interface for IPv4"),
        "{why}"
    );
}
