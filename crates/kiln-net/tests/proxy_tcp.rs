//! The TCP proxy against servers in a network namespace the test makes: byte-exact transfers
//! both ways, half-close, 200 concurrent connections, docker's message for a taken port, and
//! a refused connection.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use common::{Netns, echo_server, pattern};
use kiln_net::{Error, PortMapping, Proto, Proxy};

fn local(container_port: u16) -> PortMapping {
    PortMapping {
        host_ip: "127.0.0.1".parse().unwrap(),
        host_port: 0,
        container_port,
        proto: Proto::Tcp,
    }
}

fn host_addr(p: &Proxy, i: usize) -> SocketAddr {
    let b = p.bound()[i];
    assert_ne!(b.host_port, 0, "ephemeral port resolved");
    SocketAddr::new(b.host_ip, b.host_port)
}

/// An echo server on port 7 of a new namespace (lo only), proxied from 127.0.0.1:ephemeral.
fn echo_setup() -> (Netns, Proxy, SocketAddr) {
    let ns = Netns::new(true);
    echo_server(ns.tcp_listener("0.0.0.0:7"));
    let proxy = Proxy::start(&ns.file, &[local(7)]).expect("proxy start");
    assert_eq!(
        proxy.target_ip().to_string(),
        "127.0.0.1",
        "lo-only namespace"
    );
    let addr = host_addr(&proxy, 0);
    (ns, proxy, addr)
}

#[test]
fn proxy_and_private_net_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<Proxy>();
    send::<kiln_net::PrivateNet>();
    send::<Error>();
}

#[test]
fn large_transfer_is_byte_exact_both_ways() {
    let (_ns, proxy, addr) = echo_setup();
    let data = pattern(48 << 20, 1);
    let mut c = TcpStream::connect(addr).unwrap();
    let mut w = c.try_clone().unwrap();
    let sent = data.clone();
    let writer = thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::with_capacity(data.len());
    c.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "echoed bytes differ");
    proxy.stop();
}

#[test]
fn half_close_propagates_each_way() {
    let ns = Netns::new(true);
    // Server: reads everything until the client's EOF, then answers with the count and closes
    // its side; a client whose EOF did not reach the server would wait forever.
    let l = ns.tcp_listener("0.0.0.0:9");
    thread::spawn(move || {
        for conn in l.incoming() {
            let mut c = conn.unwrap();
            thread::spawn(move || {
                let mut all = Vec::new();
                c.read_to_end(&mut all).unwrap();
                c.write_all(format!("got {}", all.len()).as_bytes())
                    .unwrap();
                c.shutdown(Shutdown::Write).unwrap();
                // Then wait for the proxy to close the connection.
                let mut rest = Vec::new();
                let _ = c.read_to_end(&mut rest);
            });
        }
    });
    let proxy = Proxy::start(&ns.file, &[local(9)]).unwrap();
    let addr = host_addr(&proxy, 0);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(&pattern(100_000, 2)).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "got 100000");

    // The other way: the server closes its write side first and keeps reading.
    let l2 = ns.tcp_listener("0.0.0.0:10");
    thread::spawn(move || {
        let (mut c, _) = l2.accept().unwrap();
        c.write_all(b"hello").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut all = Vec::new();
        c.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"still open");
    });
    proxy.stop();
    let proxy = Proxy::start(&ns.file, &[local(10)]).unwrap();
    let mut c = TcpStream::connect(host_addr(&proxy, 0)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hello = Vec::new();
    c.read_to_end(&mut hello).unwrap();
    assert_eq!(hello, b"hello");
    c.write_all(b"still open").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    thread::sleep(Duration::from_millis(100));
    proxy.stop();
}

#[test]
fn two_hundred_concurrent_connections_all_succeed() {
    let (_ns, proxy, addr) = echo_setup();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(200));
    let clients: Vec<_> = (0..200u32)
        .map(|i| {
            let b = barrier.clone();
            thread::spawn(move || {
                let mut c = TcpStream::connect(addr).expect("connect");
                c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                // All 200 are open at once before any finishes.
                b.wait();
                let msg = pattern(10_000 + i as usize, i as u8);
                c.write_all(&msg).unwrap();
                c.shutdown(Shutdown::Write).unwrap();
                let mut got = Vec::new();
                c.read_to_end(&mut got).unwrap();
                assert!(got == msg, "connection {i}: echo differs");
            })
        })
        .collect();
    let mut failed = 0;
    for c in clients {
        if c.join().is_err() {
            failed += 1;
        }
    }
    assert_eq!(failed, 0, "connections failed");
    // Every connection was closed on both sides and forgotten by the proxy.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while proxy.live_connections() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} connections stay open",
            proxy.live_connections()
        );
        thread::sleep(Duration::from_millis(20));
    }
    proxy.stop();
}

#[test]
fn a_taken_port_is_dockers_error_and_nothing_stays_bound() {
    let ns = Netns::new(true);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    // A free port first, then the taken one: the first must be released on failure.
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let free_port = free.local_addr().unwrap().port();
    drop(free);
    let maps = [
        PortMapping {
            host_port: free_port,
            ..local(80)
        },
        PortMapping {
            host_port: port,
            ..local(80)
        },
    ];
    match Proxy::start(&ns.file, &maps) {
        Err(e @ Error::PortAllocated(_)) => assert_eq!(
            e.to_string(),
            format!("Bind for 127.0.0.1:{port} failed: port is already allocated")
        ),
        Err(e) => panic!("want PortAllocated, got {e:?}"),
        Ok(_) => panic!("a taken port was bound"),
    }
    TcpListener::bind(("127.0.0.1", free_port)).expect("the first port was released");
}

#[test]
fn a_refused_connection_closes_the_client() {
    let ns = Netns::new(true);
    let proxy = Proxy::start(&ns.file, &[local(1)]).unwrap();
    let mut c = TcpStream::connect(host_addr(&proxy, 0)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 1];
    match c.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("want EOF or reset, got {other:?}"),
    }
    proxy.stop();
}

#[test]
fn an_ipv6_host_address_forwards_too() {
    let ns = Netns::new(true);
    echo_server(ns.tcp_listener("0.0.0.0:7"));
    let map = PortMapping {
        host_ip: "::1".parse().unwrap(),
        ..local(7)
    };
    let proxy = Proxy::start(&ns.file, &[map]).unwrap();
    let mut c = TcpStream::connect(host_addr(&proxy, 0)).unwrap();
    c.write_all(b"v6").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"v6");
    proxy.stop();
}

#[test]
fn a_file_that_is_no_namespace_is_a_netns_error() {
    let f = std::fs::File::open("/proc/self/status").unwrap();
    match Proxy::start(&f, &[local(7)]) {
        Err(e @ Error::Netns { .. }) => {
            assert!(e.to_string().contains("setns"), "{e}")
        }
        Err(e) => panic!("want Netns, got {e:?}"),
        Ok(_) => panic!("a proxy into a non-namespace"),
    }
}

#[test]
fn a_stalled_reader_gets_every_byte_in_order() {
    let ns = Netns::new(true);
    let l = ns.tcp_listener("0.0.0.0:11");
    let want = pattern(16 << 20, 5);
    let expect = want.clone();
    thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        // Stall: the proxy must hold back (pipe full, or bytes held) without losing order.
        thread::sleep(Duration::from_millis(500));
        let mut got = Vec::new();
        // Read in small pieces with pauses, so the proxy switches between its paths.
        let mut buf = [0u8; 1000];
        loop {
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.len() % 997 == 0 {
                thread::sleep(Duration::from_millis(1));
            }
        }
        let verdict: &[u8] = if got == expect { b"same" } else { b"diff" };
        c.write_all(verdict).unwrap();
    });
    let proxy = Proxy::start(&ns.file, &[local(11)]).unwrap();
    let mut c = TcpStream::connect(host_addr(&proxy, 0)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // Small writes first, then large ones.
    for chunk in want[..100_000].chunks(100) {
        c.write_all(chunk).unwrap();
    }
    c.write_all(&want[100_000..]).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut verdict = String::new();
    c.read_to_string(&mut verdict).unwrap();
    assert_eq!(verdict, "same");
    proxy.stop();
}

#[test]
fn a_connect_that_hangs_is_given_up_after_its_timeout() {
    let ns = Netns::new(true);
    // 10.9.9.2 is routed through lo but owned by nobody: the SYN is dropped, the connect hangs.
    ns.ip(&["route", "add", "10.9.9.0/24", "dev", "lo"]);
    let opts = kiln_net::ProxyOptions {
        target: Some("10.9.9.2".parse().unwrap()),
        ..kiln_net::ProxyOptions::default()
    };
    let proxy = Proxy::start_with(&ns.file, &[local(80)], opts).unwrap();
    let t = std::time::Instant::now();
    let mut c = TcpStream::connect(host_addr(&proxy, 0)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    thread::sleep(Duration::from_millis(300));
    assert_eq!(proxy.live_connections(), 1, "the connect is pending");
    let mut buf = [0u8; 1];
    match c.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("want the client closed, got {other:?}"),
    }
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(8),
        "closed after {waited:?}, want about 5 s"
    );
    // The worker closes the client, then drops its count: give it a moment on a busy machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while proxy.live_connections() != 0 && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(proxy.live_connections(), 0);
    proxy.stop();
}
