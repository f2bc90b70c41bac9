//! The TCP proxy makes a connection's splice pipes only when a direction carries bulk data:
//! connections with small messages hold no pipe (2 fds each in the proxy, not 6), a bulk
//! transfer still goes through splice and arrives byte-exact, and closing gives every pipe
//! back. Its own test binary: it counts this process's pipes, which other tests running in
//! parallel would change.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{Netns, echo_server, pattern};
use kiln_net::{PortMapping, Proto, Proxy};

/// Open pipe fds of this process.
fn pipes() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("pipe:"))
        .count()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pipes_are_made_only_for_bulk_data_and_given_back() {
    let ns = Netns::new(true);
    echo_server(ns.tcp_listener("0.0.0.0:7"));
    let proxy = Proxy::start(
        &ns.file,
        &[PortMapping {
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: 0,
            container_port: 7,
            proto: Proto::Tcp,
        }],
    )
    .expect("proxy start");
    let b = proxy.bound()[0];
    let addr = SocketAddr::new(b.host_ip, b.host_port);
    let before = pipes();

    // 20 connections, each with a few small request/answer round trips.
    let mut conns = Vec::new();
    for i in 0..20u8 {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for round in 0..3u8 {
            let msg = pattern(100, i.wrapping_mul(7).wrapping_add(round));
            c.write_all(&msg).unwrap();
            let mut back = vec![0u8; msg.len()];
            c.read_exact(&mut back).unwrap();
            assert_eq!(back, msg, "connection {i}, round {round}");
        }
        conns.push(c);
    }
    assert_eq!(proxy.live_connections(), 20);
    assert_eq!(
        pipes(),
        before,
        "connections that carried only small messages hold no pipe"
    );

    // One bulk transfer through the first connection: byte-exact, and through a pipe.
    let data = pattern(16 << 20, 9);
    let mut w = conns[0].try_clone().unwrap();
    let sent = data.clone();
    let writer = thread::spawn(move || w.write_all(&sent).unwrap());
    let mut back = vec![0u8; data.len()];
    conns[0].read_exact(&mut back).unwrap();
    writer.join().unwrap();
    assert!(back == data, "16 MiB echoed byte-exact");
    let during = pipes();
    assert!(
        during >= before + 2,
        "a bulk direction moves through a splice pipe ({before} pipe fds before, {during} after)"
    );

    drop(conns);
    wait_for("the proxy to close every connection", || {
        proxy.live_connections() == 0
    });
    assert_eq!(pipes(), before, "closed connections give their pipes back");
    proxy.stop();
}
