//! The proxy's traffic counters (what `kiln stats` adds to NET I/O): every byte delivered to
//! the container counts as received and every byte delivered back as sent, exactly, for TCP
//! (small messages and bulk, both paths of the proxy) and UDP, read from the counters' file as
//! another process reads it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::Duration;

use common::{Netns, echo_server, pattern, udp_echo_server};
use kiln_net::{PortMapping, Proto, Proxy, ProxyOptions, Traffic};

fn map(container_port: u16, proto: Proto) -> PortMapping {
    PortMapping {
        host_ip: "127.0.0.1".parse().unwrap(),
        host_port: 0,
        container_port,
        proto,
    }
}

#[test]
fn tcp_and_udp_bytes_are_counted_each_way_in_the_file() {
    let ns = Netns::new(true);
    echo_server(ns.tcp_listener("0.0.0.0:7"));
    udp_echo_server(ns.udp_socket("0.0.0.0:53"));
    let dir = std::env::temp_dir().join(format!("kiln-net-traffic-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proxy-traffic");
    // A stale file from an earlier start is replaced by one at zero.
    std::fs::write(&file, [0xffu8; 16]).unwrap();
    let opts = ProxyOptions {
        traffic_file: Some(file.clone()),
        ..ProxyOptions::default()
    };
    let proxy = Proxy::start_with(&ns.file, &[map(7, Proto::Tcp), map(53, Proto::Udp)], opts)
        .expect("proxy start");
    assert_eq!(Traffic::read_file(&file), Some((0, 0)));
    let at = |i: usize| {
        let b = proxy.bound()[i];
        SocketAddr::new(b.host_ip, b.host_port)
    };

    // TCP: a small message, then 8 MiB (the splice path), echoed back.
    let mut c = TcpStream::connect(at(0)).unwrap();
    c.write_all(b"hello").unwrap();
    let mut five = [0u8; 5];
    c.read_exact(&mut five).unwrap();
    assert_eq!(&five, b"hello");
    let data = pattern(8 << 20, 3);
    let mut w = c.try_clone().unwrap();
    let sent = data.clone();
    let writer = thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert!(back == data, "echo is byte-exact");
    let tcp = 5 + data.len() as u64;

    // UDP: three datagrams and their echoes.
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut udp = 0;
    for n in [1usize, 100, 1400] {
        let d = pattern(n, 7);
        u.send_to(&d, at(1)).unwrap();
        let mut buf = [0u8; 2048];
        let (m, _) = u.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..m], &d[..]);
        udp += n as u64;
    }
    // The echo's last bytes are counted when the proxy's send returns, which the client may
    // see first: wait for the totals (bounded), then they must be exact.
    let want = (tcp + udp, tcp + udp);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while Traffic::read_file(&file) != Some(want) && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(Traffic::read_file(&file), Some(want));
    assert_eq!(proxy.traffic(), want);
    proxy.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}
