//! The default (private) network as the container's program sees it from its first
//! instruction: pasta's address and default routes are there before the program runs (its
//! process waits at a start gate while pasta configures the namespace), and outbound DNS and
//! HTTP work (the package registry deb.debian.org, the one outside address tests may reach).
//! Needs root and pasta.

mod support;

use support::*;

const BB: &str = "localhost/busybox:latest";

fn ctx() -> RunCtx {
    require_root();
    require_command("pasta", "passt");
    RunCtx(Ctx::new())
}

/// Whether this (the host's) namespace has an IPv6 default route, which pasta copies.
fn host_has_v6_default() -> bool {
    std::fs::read_to_string("/proc/net/ipv6_route")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 10 && f[0].bytes().all(|b| b == b'0') && f[1] == "00" && f[9] != "lo"
        })
}

#[test]
fn the_program_starts_with_its_address_and_default_routes() {
    let c = ctx();
    let v6 = host_has_v6_default();
    // Several starts: the gate opens on a thread racing the container's setup, and pasta adds
    // the address before the routes.
    for i in 0..12 {
        let text = ok(
            &c,
            &[
                "run",
                "--rm",
                BB,
                "sh",
                "-c",
                "ip -4 route show default; echo ---; ip -6 route show default; echo ---; \
                 ip -4 -o addr show",
            ],
        );
        let parts: Vec<&str> = text.split("---\n").collect();
        assert_eq!(parts.len(), 3, "run {i}: {text}");
        assert!(
            parts[0].starts_with("default via "),
            "run {i}: no IPv4 default route when the program started:\n{text}"
        );
        if v6 {
            assert!(
                parts[1].starts_with("default via "),
                "run {i}: no IPv6 default route when the program started (the host has one):\n{text}"
            );
        }
        assert!(
            parts[2]
                .lines()
                .any(|l| !l.contains(" lo ") && l.contains(" inet ")),
            "run {i}: no IPv4 address besides lo:\n{text}"
        );
    }
}

#[test]
fn outbound_dns_and_http_reach_the_package_registry() {
    let c = ctx();
    // The first thing the program does: a name lookup (the host's resolv.conf) and an HTTP GET.
    // (busybox 1.35.0-4 wget crashes with -T or -O - after the transfer, on the host too.)
    let (code, so, se) = out(&c.kiln(&[
        "run",
        "--rm",
        BB,
        "sh",
        "-c",
        "wget -q -O /tmp/Release http://deb.debian.org/debian/dists/bookworm/Release \
         && cat /tmp/Release",
    ]));
    assert_eq!(code, 0, "wget through the private network failed: {se}{so}");
    assert!(
        so.lines().any(|l| l == "Origin: Debian"),
        "not Debian's Release file:\n{}",
        so.lines().take(5).collect::<Vec<_>>().join("\n")
    );
    assert!(!se.contains("WARNING"), "{se}");
}
