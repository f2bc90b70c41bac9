//! docker's `-p` grammar: what it accepts (as a table) and its error messages (as a table).

use std::net::IpAddr;

use kiln_net::{Error, PortMapping, Proto, format_port_line, parse_publish, publish_all};

fn m(ip: &str, host: u16, ctr: u16, proto: Proto) -> PortMapping {
    PortMapping {
        host_ip: ip.parse::<IpAddr>().unwrap(),
        host_port: host,
        container_port: ctr,
        proto,
    }
}

#[test]
fn accepted_specs() {
    use Proto::{Tcp, Udp};
    let cases: Vec<(&str, Vec<PortMapping>)> = vec![
        ("80", vec![m("0.0.0.0", 0, 80, Tcp)]),
        ("3000:80", vec![m("0.0.0.0", 3000, 80, Tcp)]),
        ("3000:80/tcp", vec![m("0.0.0.0", 3000, 80, Tcp)]),
        ("3000:80/TCP", vec![m("0.0.0.0", 3000, 80, Tcp)]),
        ("53:53/udp", vec![m("0.0.0.0", 53, 53, Udp)]),
        ("80/", vec![m("0.0.0.0", 0, 80, Tcp)]),
        ("127.0.0.1:3000:80", vec![m("127.0.0.1", 3000, 80, Tcp)]),
        ("127.0.0.1::80", vec![m("127.0.0.1", 0, 80, Tcp)]),
        ("127.0.0.1::80/udp", vec![m("127.0.0.1", 0, 80, Udp)]),
        (":3000:80", vec![m("0.0.0.0", 3000, 80, Tcp)]),
        ("[::1]:8080:80", vec![m("::1", 8080, 80, Tcp)]),
        ("[::]::80", vec![m("::", 0, 80, Tcp)]),
        ("::1:8080:80", vec![m("::1", 8080, 80, Tcp)]),
        (
            "8000-8001:80-81",
            vec![m("0.0.0.0", 8000, 80, Tcp), m("0.0.0.0", 8001, 81, Tcp)],
        ),
        (
            "80-82/udp",
            vec![
                m("0.0.0.0", 0, 80, Udp),
                m("0.0.0.0", 0, 81, Udp),
                m("0.0.0.0", 0, 82, Udp),
            ],
        ),
        ("0:80", vec![m("0.0.0.0", 0, 80, Tcp)]),
        ("65535:65535", vec![m("0.0.0.0", 65535, 65535, Tcp)]),
        (
            "published=8080,target=80",
            vec![m("0.0.0.0", 8080, 80, Tcp)],
        ),
        (
            "target=53,published=5353,protocol=udp,mode=host",
            vec![m("0.0.0.0", 5353, 53, Udp)],
        ),
        ("target=80", vec![m("0.0.0.0", 0, 80, Tcp)]),
    ];
    for (spec, want) in cases {
        match parse_publish(spec) {
            Ok(got) => assert_eq!(got, want, "-p {spec}"),
            Err(e) => panic!("-p {spec}: unexpected error: {e}"),
        }
    }
}

#[test]
fn docker_error_messages() {
    let cases: &[(&str, &str)] = &[
        ("", "No port specified: <empty>"),
        ("3000:", "No port specified: 3000:<empty>"),
        ("/tcp", "No port specified: /tcp<empty>"),
        ("abc", "Invalid containerPort: abc"),
        ("3000:abc", "Invalid containerPort: abc"),
        ("65536", "Invalid containerPort: 65536"),
        ("80-", "Invalid containerPort: 80-"),
        ("81-80", "Invalid containerPort: 81-80"),
        ("0", "Invalid containerPort: 0"),
        ("x:80", "Invalid hostPort: x"),
        ("70000:80", "Invalid hostPort: 70000"),
        ("1.2.3:3000:80", "Invalid ip address: 1.2.3"),
        ("localhost:3000:80", "Invalid ip address: localhost"),
        (
            "[::1:80:80",
            "Invalid ip address [::1: address [::1:: missing ']' in address",
        ),
        ("80/xyz", "Invalid proto: xyz"),
        (
            "8000-8002:80-81",
            "Invalid ranges specified for container and host Ports: 80-81 and 8000-8002",
        ),
        (
            "target=80,published",
            "invalid publish opts format (should be name=value but got 'published')",
        ),
    ];
    for (spec, want) in cases {
        match parse_publish(spec) {
            Err(e @ Error::InvalidPublish(_)) => assert_eq!(e.to_string(), *want, "-p {spec}"),
            other => panic!("-p {spec}: want InvalidPublish({want:?}), got {other:?}"),
        }
    }
}

#[test]
fn unsupported_specs_say_why() {
    let cases: &[(&str, &str)] = &[
        ("80/sctp", "not sctp"),
        ("8000-8010:80", "host port range for one container port"),
        ("target=80,foo=bar", "unsupported publish option 'foo=bar'"),
    ];
    for (spec, want) in cases {
        match parse_publish(spec) {
            Err(e @ Error::UnsupportedPublish(_)) => {
                assert!(e.to_string().contains(want), "-p {spec}: {e}")
            }
            other => panic!("-p {spec}: want UnsupportedPublish, got {other:?}"),
        }
    }
}

#[test]
fn publish_all_uses_ephemeral_ports_on_any_address() {
    assert_eq!(
        publish_all(&[(80, Proto::Tcp), (53, Proto::Udp)]),
        vec![
            m("0.0.0.0", 0, 80, Proto::Tcp),
            m("0.0.0.0", 0, 53, Proto::Udp)
        ]
    );
    assert!(publish_all(&[]).is_empty());
}

#[test]
fn port_lines_as_docker_port_prints_them() {
    let cases = [
        (m("0.0.0.0", 3000, 80, Proto::Tcp), "80/tcp -> 0.0.0.0:3000"),
        (
            m("127.0.0.1", 5353, 53, Proto::Udp),
            "53/udp -> 127.0.0.1:5353",
        ),
        (m("::", 8080, 80, Proto::Tcp), "80/tcp -> [::]:8080"),
        (m("::1", 8080, 80, Proto::Tcp), "80/tcp -> [::1]:8080"),
    ];
    for (mapping, want) in cases {
        assert_eq!(format_port_line(&mapping), want);
    }
}
