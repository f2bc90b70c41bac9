//! The UDP proxy: round trips for several clients (each its own flow) and flows ending after
//! the idle timeout.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Netns, pattern, udp_echo_server};
use kiln_net::{PortMapping, Proto, Proxy, ProxyOptions};

fn udp(container_port: u16) -> PortMapping {
    PortMapping {
        host_ip: "127.0.0.1".parse().unwrap(),
        host_port: 0,
        container_port,
        proto: Proto::Udp,
    }
}

#[test]
fn round_trips_per_client_and_idle_flows_end() {
    let ns = Netns::new(true);
    udp_echo_server(ns.udp_socket("0.0.0.0:53"));
    let opts = ProxyOptions {
        udp_idle: Duration::from_secs(1),
        ..ProxyOptions::default()
    };
    let proxy = Proxy::start_with(&ns.file, &[udp(53)], opts).unwrap();
    let b = proxy.bound()[0];
    let addr = SocketAddr::new(b.host_ip, b.host_port);
    assert_ne!(b.host_port, 0);

    let clients: Vec<UdpSocket> = (0..3)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        })
        .collect();
    let mut buf = vec![0u8; 65536];
    for round in 0..5u8 {
        for (i, c) in clients.iter().enumerate() {
            let msg = pattern(100 + 1000 * i + usize::from(round), round ^ i as u8);
            c.send_to(&msg, addr).unwrap();
            let (n, from) = c.recv_from(&mut buf).expect("reply through the proxy");
            assert_eq!(from, addr, "the reply comes from the published port");
            assert!(
                buf[..n] == msg[..],
                "client {i} round {round}: reply differs"
            );
        }
    }
    // A large datagram goes through whole.
    let big = pattern(60_000, 9);
    clients[0].send_to(&big, addr).unwrap();
    let n = clients[0].recv(&mut buf).unwrap();
    assert!(buf[..n] == big[..]);
    assert_eq!(proxy.live_udp_flows(), 3);

    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.live_udp_flows() > 0 {
        assert!(Instant::now() < deadline, "idle flows did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A new datagram from an old client starts a new flow.
    clients[1].send_to(b"again", addr).unwrap();
    let n = clients[1].recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"again");
    proxy.stop();
}
