//! Published ports through the kernel (as root): `kiln run -p` DNATs IPv4 TCP ports with
//! nftables rules in `table ip kiln` to a veth pair into the container, for connections to the
//! host's loopback and to its other address (real curl, real busybox httpd); stats counts the
//! traffic on the veth; stop, a restart policy's last exit and rm leave no rule and no veth; a
//! SIGKILLed supervisor's rules are reported and removed by `system check --repair`, and by the
//! next run that publishes a port.

mod support;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const BB: &str = "localhost/busybox:latest";

/// Any run that publishes a port removes every stale rule on the host: the tests of this file
/// take turns, so that one's runs do not clean up what the other is about to check.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `curl -fsS URL`'s body, or None when it fails.
fn curl(url: &str) -> Option<String> {
    let o = Command::new(require_command("curl", "curl"))
        .args(["-fsS", "--max-time", "5", url])
        .output()
        .unwrap();
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The host's first global IPv4 address (not loopback).
fn host_address() -> String {
    let o = Command::new(require_command("ip", "iproute2"))
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    text.lines()
        .filter(|l| !l.contains(" kiln"))
        .find_map(|l| {
            l.split_whitespace()
                .nth(3)?
                .split('/')
                .next()
                .map(String::from)
        })
        .unwrap_or_else(|| {
            panic!("this test needs a non-loopback IPv4 address on the host; `ip -4 addr`: {text}")
        })
}

/// Packets the DNAT rules of container `id` translated (the `counter` of its output rules).
fn dnat_packets(id: &str) -> u64 {
    let o = Command::new(require_command("nft", "nftables"))
        .args(["list", "chain", "ip", "kiln", "output"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains(id) && l.contains("dnat to 169.254."))
        .filter_map(|l| {
            l.split_once("counter packets ")?
                .1
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

fn supervisor_of(id: &str) -> u32 {
    let needle = format!("__container-supervise {id}");
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd)
            .replace('\0', " ")
            .contains(&needle)
        {
            return pid;
        }
    }
    panic!("no supervisor for {id}");
}

fn web(c: &Ctx, extra: &[&str], port: u16) -> String {
    let mut args = vec!["run", "-d"];
    args.extend_from_slice(extra);
    let p = format!("{port}:80");
    args.extend_from_slice(&[
        "-p",
        &p,
        BB,
        "sh",
        "-c",
        "mkdir -p /w && head -c 200000 /dev/zero > /w/big && echo kernel-path > /w/index.html && exec httpd -f -p 80 -h /w",
    ]);
    ok(c, &args).trim().to_string()
}

/// A web container on a fresh port, serving, whose supervisor is then SIGKILLed and which
/// `ps` shows exited: its rules stay behind (the veth dies with the namespace).
fn web_with_killed_supervisor(c: &Ctx) -> String {
    let port = free_port();
    let id = web(c, &[], port);
    wait_for("the server", || {
        curl(&format!("http://127.0.0.1:{port}/")).is_some()
    });
    // SAFETY: a process this test started (through kiln).
    unsafe { libc::kill(supervisor_of(&id) as i32, libc::SIGKILL) };
    wait_for("the container to be exited", || {
        !ok(c, &["ps", "-q", "--no-trunc"]).contains(&id)
    });
    assert!(!net_leftovers(&id).is_empty());
    id
}

#[test]
fn a_published_port_takes_the_kernel_path_and_stop_leaves_nothing() {
    let _turn = serial();
    require_root();
    require_command("nft", "nftables");
    let c = RunCtx::new();
    let host_ip = host_address();
    let port = free_port();
    let id = web(&c, &[], port);
    let local = format!("http://127.0.0.1:{port}/");
    wait_for("the server", || curl(&local).is_some());
    assert_eq!(curl(&local).as_deref(), Some("kernel-path\n"));
    assert_eq!(
        curl(&format!("http://{host_ip}:{port}/")).as_deref(),
        Some("kernel-path\n"),
        "through the host's address {host_ip}"
    );
    // The kernel translated them (the proxy's listener holds the port but saw none: it would
    // count in containers/<id>/proxy-traffic, which the kernel path does not make).
    assert!(dnat_packets(&id) >= 3, "DNAT counter {}", dnat_packets(&id));
    assert!(
        !c.root
            .join(format!("containers/{id}/proxy-traffic"))
            .exists()
    );
    let (ok_ps, rules) = (ok(&c, &["port", &id]), net_leftovers(&id).join("\n"));
    assert_eq!(ok_ps.trim(), format!("80/tcp -> 0.0.0.0:{port}"));
    assert!(rules.contains("masquerade"), "{rules}");
    assert!(
        rules.contains(&format!("veth kiln{}", &id[..11])),
        "{rules}"
    );
    // stats counts it on the veth: 200 kB out.
    let before = ok(&c, &["stats", "--no-stream", "--format", "{{.NetIO}}", &id]);
    assert!(curl(&format!("http://127.0.0.1:{port}/big")).is_some_and(|b| b.len() == 200_000));
    let after = ok(&c, &["stats", "--no-stream", "--format", "{{.NetIO}}", &id]);
    let sent = |s: &str| -> f64 {
        let tx = s.trim().split_once(" / ").unwrap().1;
        let i = tx.find(|ch: char| ch.is_ascii_alphabetic()).unwrap();
        tx[..i].parse::<f64>().unwrap()
            * match &tx[i..] {
                "B" => 1.0,
                "kB" => 1e3,
                "MB" => 1e6,
                u => panic!("{u}"),
            }
    };
    let d = sent(&after) - sent(&before);
    assert!(
        (200e3..260e3).contains(&d),
        "sent {before} -> {after}: once, not twice"
    );
    ok(&c, &["stop", "-t", "0", &id]);
    // The rules are gone when stop returns; the veth goes with the namespace, soon after.
    let rules_left: Vec<String> = net_leftovers(&id)
        .into_iter()
        .filter(|l| !l.starts_with("veth "))
        .collect();
    assert_eq!(rules_left, Vec::<String>::new(), "rules after stop");
    assert_eq!(
        net_leftovers_after_wait(&id),
        Vec::<String>::new(),
        "after stop"
    );
    assert!(curl(&local).is_none());
    // Started again: rules again, and gone with rm -f.
    ok(&c, &["start", &id]);
    wait_for("the server again", || curl(&local).is_some());
    assert!(!net_leftovers(&id).is_empty());
    ok(&c, &["rm", "-f", &id]);
    assert_eq!(
        net_leftovers_after_wait(&id),
        Vec::<String>::new(),
        "after rm -f"
    );

    // A restart policy's cycles, then its last exit: nothing left either.
    let port2 = free_port();
    let p = format!("{port2}:80");
    let id2 = ok(
        &c,
        &[
            "run",
            "-d",
            "--restart",
            "on-failure:2",
            "-p",
            &p,
            BB,
            "sh",
            "-c",
            "sleep 0.2; exit 3",
        ],
    )
    .trim()
    .to_string();
    wait_for("the restarts to end", || {
        ok(
            &c,
            &["inspect", "-f", "{{.State.Status}} {{.RestartCount}}", &id2],
        )
        .trim()
            == "exited 2"
    });
    assert_eq!(
        net_leftovers_after_wait(&id2),
        Vec::<String>::new(),
        "after the last exit"
    );
    // --rm.
    let port3 = free_port();
    let p = format!("{port3}:80");
    let id3 = ok(&c, &["run", "-d", "--rm", "-p", &p, BB, "sleep", "0.3"])
        .trim()
        .to_string();
    wait_for("--rm to remove it", || {
        ok(&c, &["ps", "-aq"]).trim().is_empty()
            || !ok(&c, &["ps", "-aq", "--no-trunc"]).contains(&id3)
    });
    assert_eq!(
        net_leftovers_after_wait(&id3),
        Vec::<String>::new(),
        "after --rm"
    );
}

#[test]
fn a_killed_supervisors_rules_go_with_system_check_repair_and_the_next_run() {
    let _turn = serial();
    require_root();
    require_command("nft", "nftables");
    let c = RunCtx::new();
    let port = free_port();
    let id = web(&c, &[], port);
    wait_for("the server", || {
        curl(&format!("http://127.0.0.1:{port}/")).is_some()
    });
    let sup = supervisor_of(&id);
    // SAFETY: a process this test started (through kiln).
    unsafe { libc::kill(sup as i32, libc::SIGKILL) };
    // The veth dies with the namespace; the rules stay until someone removes them.
    wait_for("the veth to go", || {
        !std::path::Path::new("/sys/class/net")
            .join(format!("kiln{}", &id[..11]))
            .exists()
    });
    let left = net_leftovers(&id);
    assert!(left.iter().any(|l| l.contains("dnat to")), "{left:?}");
    let (code, so, se) = out(&c.kiln(&["system", "check"]));
    assert_eq!(code, 1, "{so}{se}");
    assert!(
        so.contains(&format!("broken: nftables table ip kiln: 4 rules of container {id} (supervisor pid {sup} is gone)")),
        "{so}"
    );
    let (code, so, se) = out(&c.kiln(&["system", "check", "--repair"]));
    assert_eq!(code, 0, "{so}{se}");
    assert!(
        so.contains(&format!(
            "repaired: nftables table ip kiln: 4 rules of container {id}"
        )),
        "{so}"
    );
    assert_eq!(
        net_leftovers_after_wait(&id),
        Vec::<String>::new(),
        "after --repair"
    );
    ok(&c, &["rm", "-f", &id]);

    // Killed again: the next run that publishes a port removes the dead one's rules. (A new
    // port: the old one is in the ephemeral range, and another process's outgoing connection
    // may hold it as its local port by now, which makes the bind fail.)
    let id = web_with_killed_supervisor(&c);
    let next = web(&c, &[], free_port());
    assert_eq!(
        net_leftovers_after_wait(&id),
        Vec::<String>::new(),
        "after the next run"
    );
    assert!(!net_leftovers(&next).is_empty());
    ok(&c, &["rm", "-f", &id, &next]);
    assert_eq!(net_leftovers_after_wait(&next), Vec::<String>::new());
}

/// A SYN to `dst:dport` from `src`, sent as a raw frame on `ifname` to the MAC `to_mac`;
/// prints the reply's TCP flags in hex, or `none` (run in the container by the host's python).
const RAW_SYN: &str = r#"
import socket, struct, sys, time
ifn, mac, src, dst, dport = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800)); s.bind((ifn, 0)); s.settimeout(2)
def csum(b):
    if len(b) % 2: b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
sport = 45123
tcp = struct.pack('!HHIIBBHHH', sport, dport, 1000, 0, 5 << 4, 0x02, 65535, 0, 0)
ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 6, len(tcp))
tcp = tcp[:16] + struct.pack('!H', csum(ph + tcp)) + tcp[18:]
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
s.send(bytes.fromhex(mac.replace(':', '')) + s.getsockname()[4] + b'\x08\x00' + ip + tcp)
end = time.time() + 2
while time.time() < end:
    try: f = s.recv(70000)
    except socket.timeout: break
    p = f[14:]
    if p[9] != 6: continue
    t = p[(p[0] & 15) * 4:]
    if struct.unpack('!H', t[2:4])[0] == sport:
        print(hex(t[13])); sys.exit(0)
print('none')
"#;

#[test]
fn a_container_cannot_reach_the_hosts_loopback_through_its_veth() {
    // route_localnet on the host's veth end must not open the host's 127.0.0.1-only services
    // to packets the container crafts (it has CAP_NET_RAW, as docker's default set).
    let _turn = serial();
    require_root();
    require_command("nft", "nftables");
    require_command("python3", "python3");
    let c = RunCtx::new();
    let secret = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let secret_port = secret.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("syn.py"), RAW_SYN).unwrap();
    let id = ok(
        &c,
        &[
            "run",
            "-d",
            "-p",
            &format!("{}:80", free_port()),
            "-v",
            "/:/host:ro",
            BB,
            "sleep",
            "60",
        ],
    )
    .trim()
    .to_string();
    let host_if = format!("kiln{}", &id[..11]);
    let mac = std::fs::read_to_string(format!("/sys/class/net/{host_if}/address")).unwrap();
    let addr = ok(
        &c,
        &["exec", &id, "ip", "-4", "-o", "addr", "show", "kiln0"],
    );
    let caddr = addr
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("no address on kiln0: {addr}"))
        .to_string();
    let reply = ok(
        &c,
        &[
            "exec",
            &id,
            "chroot",
            "/host",
            "python3",
            &format!("{}/syn.py", dir.path().display()),
            "kiln0",
            mac.trim(),
            &caddr,
            "127.0.0.1",
            &secret_port,
        ],
    );
    assert_eq!(
        reply.trim(),
        "none",
        "the host's 127.0.0.1:{secret_port} answered"
    );
    let table = String::from_utf8_lossy(
        &Command::new("nft")
            .args(["list", "chain", "ip", "kiln", "guard"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    let guard = table
        .lines()
        .find(|l| l.contains(&host_if))
        .unwrap_or_else(|| panic!("no guard rule for {host_if}: {table}"));
    assert!(
        guard.contains("ip daddr 127.0.0.0/8") && !guard.contains("packets 0 "),
        "{guard}"
    );
    ok(&c, &["rm", "-f", &id]);
    drop(secret);
}

#[test]
fn rm_of_a_container_whose_supervisor_was_killed_removes_its_rules() {
    // Attack review: after `kill -9` of the supervisor, `rm -f` left the 4 rules until the
    // next `run -p` or `system check --repair` (127.0.0.1:PORT DNATed to a dead address).
    let _turn = serial();
    require_root();
    require_command("nft", "nftables");
    let c = RunCtx::new();
    let id = web_with_killed_supervisor(&c);
    ok(&c, &["rm", "-f", &id]);
    assert_eq!(net_leftovers_after_wait(&id), Vec::<String>::new());
}
