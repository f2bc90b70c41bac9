//! Throughput of the port proxy against the same server reached without it (issue 9's goal:
//! ≥ 0.7 of direct), and against docker's `docker-proxy` when it is installed. Run by
//! `bench/net-proxy.sh`; needs root, and `wrk` (Debian's wrk) for the HTTP rows.
//!
//! - bulk: one TCP connection moves `KILN_BENCH_MIB` MiB (default 1024) server → client
//!   ("down") and client → server ("up").
//! - http: `wrk -t2 -c200 -d5s` against a small keep-alive HTTP server (4 KiB responses).
//!
//! The proxy CPU rows leave kiln-dnat out: the kernel does its work in softirq context,
//! charged to whichever task is running.
//!
//! Targets: "direct" (client in the server's namespace, loopback), "kiln" (host → kiln-net
//! proxy → the namespace), "kiln-dnat" (host → nftables DNAT → veth → the namespace:
//! kiln-net's `KernelPorts`, what `kiln run -p` uses for root; its proxy keeps the listener
//! and must carry nothing), "docker-proxy" (host → docker-proxy → a server on the host's
//! loopback). Each is run `KILN_BENCH_RUNS` times (default 5), interleaved; the output is a
//! markdown table of medians with min–max and the ratio to direct.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Netns;
use kiln_net::{KernelPorts, PortMapping, Proto, Proxy, ProxyOptions};

const BUF: usize = 256 * 1024;
const BODY: usize = 4096;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Bulk server: the first byte says 'd' (send `mib` MiB, then close) or 'u' (read to EOF,
/// then answer one byte).
fn bulk_server(l: TcpListener, mib: usize) {
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let mut op = [0u8; 1];
                if c.read_exact(&mut op).is_err() {
                    return;
                }
                let mut buf = vec![7u8; BUF];
                if op[0] == b'd' {
                    for _ in 0..(mib * 1024 * 1024 / BUF) {
                        if c.write_all(&buf).is_err() {
                            return;
                        }
                    }
                    let _ = c.shutdown(Shutdown::Write);
                } else {
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                    }
                    let _ = c.write_all(b"k");
                }
            });
        }
    });
}

/// A keep-alive HTTP/1.1 server answering every request with `BODY` bytes.
fn http_server(l: TcpListener) {
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let _ = c.set_nodelay(true);
                    let mut resp =
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\n\r\n").into_bytes();
                    resp.extend(std::iter::repeat_n(b'x', BODY));
                    let mut buf = vec![0u8; 8192];
                    let mut have = 0;
                    loop {
                        match c.read(&mut buf[have..]) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => have += n,
                        }
                        while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n")
                        {
                            if c.write_all(&resp).is_err() {
                                return;
                            }
                            buf.copy_within(end + 4..have, 0);
                            have -= end + 4;
                        }
                        if have == buf.len() {
                            return;
                        }
                    }
                })
                .ok();
        }
    });
}

/// Short-connection server: for each connection, reads to end of stream and answers one byte
/// ("k"), then closes; two threads share the listener.
fn conn_server(l: TcpListener) {
    let l = std::sync::Arc::new(l);
    for _ in 0..2 {
        let l = l.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 {
                        let _ = c.write_all(b"k");
                        break;
                    }
                }
            }
        });
    }
}

/// Connections per second: `CONN_THREADS` clients (in the namespace `netns` when given), each
/// looping for `CONN_SECS`: connect, send a 100-byte request, half-close, read the one-byte
/// answer, close.
fn conn_rate(netns: Option<&std::fs::File>, addr: SocketAddr) -> (f64, u64) {
    const CONN_THREADS: usize = 4;
    const CONN_SECS: f64 = 3.0;
    let t = Instant::now();
    let handles: Vec<_> = (0..CONN_THREADS)
        .map(|_| {
            let ns = netns.map(|f| f.try_clone().unwrap());
            std::thread::spawn(move || {
                if let Some(f) = ns {
                    use std::os::fd::AsRawFd;
                    // SAFETY: setns on this client thread only.
                    assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
                }
                let mut n = 0u64;
                while t.elapsed().as_secs_f64() < CONN_SECS {
                    let mut c = TcpStream::connect(addr).unwrap();
                    c.write_all(&[b'u'; 100]).unwrap();
                    c.shutdown(Shutdown::Write).unwrap();
                    let mut k = [0u8; 1];
                    c.read_exact(&mut k).unwrap();
                    assert_eq!(&k, b"k");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let n: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    (n as f64 / t.elapsed().as_secs_f64(), n)
}

/// MB/s of one bulk transfer through `addr`; `connect` makes the client socket.
fn bulk(connect: &dyn Fn() -> TcpStream, down: bool, mib: usize) -> f64 {
    let t = Instant::now();
    let mut c = connect();
    let mut buf = vec![0u8; BUF];
    if down {
        c.write_all(b"d").unwrap();
        let mut total = 0usize;
        loop {
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, mib * 1024 * 1024 / BUF * BUF);
    } else {
        c.write_all(b"u").unwrap();
        for _ in 0..(mib * 1024 * 1024 / BUF) {
            c.write_all(&buf).unwrap();
        }
        c.shutdown(Shutdown::Write).unwrap();
        let mut k = [0u8; 1];
        c.read_exact(&mut k).unwrap();
    }
    (mib * 1024 * 1024) as f64 / 1e6 / t.elapsed().as_secs_f64()
}

/// User + system CPU seconds in a /proc stat line (fields 14 and 15, counted after the ")"
/// that ends the name).
fn stat_cpu(stat: &str) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / hz
}

/// CPU seconds used so far by the proxy of `target`: for kiln, this process's kiln-net threads
/// (`kiln-net-*`: workers, acceptors, the namespace thread; only the proxy under test is busy
/// during a test, so the difference across a test is its CPU); for docker-proxy, the docker-proxy processes `pids`.
fn proxy_cpu(target: &str, pids: &[u32]) -> f64 {
    if target == "docker-proxy" {
        return pids
            .iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
            .map(|s| stat_cpu(&s))
            .sum();
    }
    let mut cpu = 0.0;
    for t in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let dir = t.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if !comm.starts_with("kiln-net-") {
            continue;
        }
        if let Ok(stat) = std::fs::read_to_string(dir.join("stat")) {
            cpu += stat_cpu(&stat);
        }
    }
    cpu
}

/// Requests/s from wrk (run inside `netns` when given), its error count and the number of
/// requests it completed.
fn wrk(netns: Option<&str>, url: &str) -> (f64, u64, u64) {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={ns}")).arg("wrk");
            c
        }
        None => Command::new("wrk"),
    };
    let out = cmd
        .args(["-t2", "-c200", "-d5s", url])
        .output()
        .expect("running wrk (apt-get install -y wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "wrk failed: {text}");
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output: {text}"));
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk output: {text}"));
    let mut errors = 0u64;
    for l in text.lines() {
        let l = l.trim();
        if let Some(rest) = l.strip_prefix("Socket errors:") {
            errors += rest
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
        if let Some(rest) = l.strip_prefix("Non-2xx or 3xx responses:") {
            errors += rest.trim().parse::<u64>().unwrap_or(0);
        }
    }
    (rps, errors, requests)
}

/// Makes a client connection to one target.
type Connector = Box<dyn Fn() -> TcpStream>;

struct DockerProxy(Child);

impl DockerProxy {
    fn start(host_port: u16, target: SocketAddr) -> Option<DockerProxy> {
        let bin = [
            "/usr/sbin/docker-proxy",
            "/usr/bin/docker-proxy",
            "/usr/libexec/docker/docker-proxy",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
        // docker-proxy reports readiness on fd 3 (a pipe from dockerd) and closes it: give it
        // /dev/null there, or it closes its own listener.
        let child = Command::new("sh")
            .args(["-c", "exec \"$0\" \"$@\" 3>/dev/null", bin])
            .args(["-proto", "tcp", "-host-ip", "127.0.0.1"])
            .args(["-host-port", &host_port.to_string()])
            .args(["-container-ip", &target.ip().to_string()])
            .args(["-container-port", &target.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", host_port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(DockerProxy(child))
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn summary(xs: &mut [f64]) -> (f64, f64, f64) {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

fn main() {
    // `cargo bench` passes --bench; nothing else is accepted.
    let runs = env_num("KILN_BENCH_RUNS", 5);
    let mib = env_num("KILN_BENCH_MIB", 1024);
    let ns = Netns::new(true);
    bulk_server(ns.tcp_listener("0.0.0.0:5001"), mib);
    http_server(ns.tcp_listener("0.0.0.0:8080"));
    conn_server(ns.tcp_listener("0.0.0.0:5002"));
    let map = |p| PortMapping {
        host_ip: "127.0.0.1".parse().unwrap(),
        host_port: 0,
        container_port: p,
        proto: Proto::Tcp,
    };
    // KILN_BENCH_WORKERS: a comma list of worker counts (0: the default); each makes one kiln
    // proxy, named "kiln" for the first and "kiln-wN" for the others, all in the same runs.
    let worker_counts: Vec<usize> = std::env::var("KILN_BENCH_WORKERS")
        .unwrap_or_else(|_| "0".into())
        .split(',')
        .map(|w| w.trim().parse().expect("KILN_BENCH_WORKERS: numbers"))
        .collect();
    let mut kilns: Vec<(String, u16, u16, u16, Proxy)> = Vec::new();
    for (i, &w) in worker_counts.iter().enumerate() {
        let opts = ProxyOptions {
            tcp_workers: w,
            ..ProxyOptions::default()
        };
        let proxy = Proxy::start_with(&ns.file, &[map(5001), map(8080), map(5002)], opts).unwrap();
        let b = proxy.bound();
        let name = if i == 0 {
            "kiln".to_string()
        } else {
            format!("kiln-w{w}")
        };
        kilns.push((name, b[0].host_port, b[1].host_port, b[2].host_port, proxy));
    }

    // The kernel path: a veth pair to the namespace and DNAT rules for the ports a proxy
    // bound (as kiln run does); the proxy targets the veth and should see no connection.
    let mut kernel =
        KernelPorts::link(&ns.file, &format!("bench{}", std::process::id())).expect("veth");
    let dnat_proxy = Proxy::start_with(
        &ns.file,
        &[map(5001), map(8080), map(5002)],
        ProxyOptions {
            target: Some(kernel.container_ip().into()),
            ..ProxyOptions::default()
        },
    )
    .unwrap();
    kernel.publish(&dnat_proxy.bound()).expect("nftables rules");
    let db = dnat_proxy.bound();
    let (dn_bulk, dn_http, dn_conn) = (db[0].host_port, db[1].host_port, db[2].host_port);

    // docker-proxy's server is on the host's loopback (docker-proxy dials from the host).
    let host_bulk = TcpListener::bind("127.0.0.1:0").unwrap();
    let host_http = TcpListener::bind("127.0.0.1:0").unwrap();
    let (hb, hh) = (
        host_bulk.local_addr().unwrap(),
        host_http.local_addr().unwrap(),
    );
    let host_conn = TcpListener::bind("127.0.0.1:0").unwrap();
    let hc = host_conn.local_addr().unwrap();
    bulk_server(host_bulk, mib);
    http_server(host_http);
    conn_server(host_conn);
    let (dp_bulk, dp_http, dp_conn) = (free_port(), free_port(), free_port());
    let dockers = (
        DockerProxy::start(dp_bulk, hb),
        DockerProxy::start(dp_http, hh),
        DockerProxy::start(dp_conn, hc),
    );
    let have_docker = dockers.0.is_some() && dockers.1.is_some() && dockers.2.is_some();
    let docker_pids: Vec<u32> = [&dockers.0, &dockers.1, &dockers.2]
        .iter()
        .filter_map(|d| d.as_ref().map(|d| d.0.id()))
        .collect();
    if !have_docker {
        eprintln!("docker-proxy not found or not starting: its rows are left out");
    }
    let have_wrk = kiln_test::prereq::find_command("wrk").is_some();
    if !have_wrk {
        eprintln!("wrk not installed (apt-get install -y wrk): the HTTP rows are left out");
    }

    let ns_file = ns.file.try_clone().unwrap();
    let direct_connect = move || {
        let f = ns_file.try_clone().unwrap();
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: setns on this short-lived thread only.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            TcpStream::connect("127.0.0.1:5001").unwrap()
        })
        .join()
        .unwrap()
    };
    let docker_connect = move || TcpStream::connect(("127.0.0.1", dp_bulk)).unwrap();
    let mut targets: Vec<(&str, Connector)> = vec![("direct", Box::new(direct_connect))];
    for (name, port, _, _, _) in &kilns {
        let port = *port;
        targets.push((
            name.as_str(),
            Box::new(move || TcpStream::connect(("127.0.0.1", port)).unwrap()),
        ));
    }
    targets.push((
        "kiln-dnat",
        Box::new(move || TcpStream::connect(("127.0.0.1", dn_bulk)).unwrap()),
    ));
    if have_docker {
        targets.push(("docker-proxy", Box::new(docker_connect)));
    }
    // KILN_BENCH_TARGETS / KILN_BENCH_TESTS (comma lists) narrow a run for profiling; the
    // defaults run everything.
    let pick = |var: &str, name: &str| {
        std::env::var(var)
            .map(|v| v.split(',').any(|x| x.trim() == name))
            .unwrap_or(true)
    };
    targets.retain(|(name, _)| pick("KILN_BENCH_TARGETS", name));

    let mut rows: Vec<(String, String, Vec<f64>)> = Vec::new();
    // The proxies' own CPU per unit of work, less sensitive to the
    // machine's other load than throughput.
    let mut cpu_rows: Vec<(String, String, Vec<f64>)> = Vec::new();
    let push =
        |rows: &mut Vec<(String, String, Vec<f64>)>, test: &str, target: &str, v: f64| match rows
            .iter_mut()
            .find(|r| r.0 == test && r.1 == target)
        {
            Some(r) => r.2.push(v),
            None => rows.push((test.into(), target.into(), vec![v])),
        };
    let ns_path = ns.path();
    let mut wrk_errors = Vec::new();
    for run in 0..runs {
        eprintln!("run {}/{runs}", run + 1);
        for (name, connect) in &targets {
            if pick("KILN_BENCH_TESTS", "down") {
                let cpu = proxy_cpu(name, &docker_pids);
                let v = bulk(connect.as_ref(), true, mib);
                push(&mut rows, &format!("bulk down {mib} MiB (MB/s)"), name, v);
                if !matches!(*name, "direct" | "kiln-dnat") {
                    let ms = (proxy_cpu(name, &docker_pids) - cpu) * 1e3 * 1024.0 / mib as f64;
                    push(&mut cpu_rows, "bulk down (CPU ms per GiB)", name, ms);
                }
            }
            if pick("KILN_BENCH_TESTS", "up") {
                let cpu = proxy_cpu(name, &docker_pids);
                let v = bulk(connect.as_ref(), false, mib);
                push(&mut rows, &format!("bulk up {mib} MiB (MB/s)"), name, v);
                if !matches!(*name, "direct" | "kiln-dnat") {
                    let ms = (proxy_cpu(name, &docker_pids) - cpu) * 1e3 * 1024.0 / mib as f64;
                    push(&mut cpu_rows, "bulk up (CPU ms per GiB)", name, ms);
                }
            }
        }
        if pick("KILN_BENCH_TESTS", "conn") {
            let local = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
            let mut conn: Vec<(&str, Option<&std::fs::File>, SocketAddr)> =
                vec![("direct", Some(&ns.file), local(5002))];
            for (name, _, _, port, _) in &kilns {
                conn.push((name.as_str(), None, local(*port)));
            }
            conn.push(("kiln-dnat", None, local(dn_conn)));
            if have_docker {
                conn.push(("docker-proxy", None, local(dp_conn)));
            }
            conn.retain(|(name, _, _)| pick("KILN_BENCH_TARGETS", name));
            for (name, netns, addr) in conn {
                let cpu = proxy_cpu(name, &docker_pids);
                let (rate, n) = conn_rate(netns, addr);
                push(&mut rows, "connections 4 clients (conn/s)", name, rate);
                if !matches!(name, "direct" | "kiln-dnat") {
                    let us = (proxy_cpu(name, &docker_pids) - cpu) * 1e6 / n.max(1) as f64;
                    push(
                        &mut cpu_rows,
                        "connections (CPU µs per connection)",
                        name,
                        us,
                    );
                }
            }
        }
        if have_wrk && pick("KILN_BENCH_TESTS", "http") {
            let mut http: Vec<(&str, Option<&str>, String)> = vec![(
                "direct",
                Some(ns_path.as_str()),
                "http://127.0.0.1:8080/".to_string(),
            )];
            for (name, _, port, _, _) in &kilns {
                http.push((name.as_str(), None, format!("http://127.0.0.1:{port}/")));
            }
            http.push(("kiln-dnat", None, format!("http://127.0.0.1:{dn_http}/")));
            if have_docker {
                http.push(("docker-proxy", None, format!("http://127.0.0.1:{dp_http}/")));
            }
            http.retain(|(name, _, _)| pick("KILN_BENCH_TARGETS", name));
            for (name, netns, url) in http {
                let cpu = proxy_cpu(name, &docker_pids);
                let (rps, errors, requests) = wrk(netns, &url);
                wrk_errors.push((name, errors));
                push(&mut rows, "http wrk -t2 -c200 4 KiB (req/s)", name, rps);
                if !matches!(name, "direct" | "kiln-dnat") {
                    let us = (proxy_cpu(name, &docker_pids) - cpu) * 1e6 / requests.max(1) as f64;
                    push(&mut cpu_rows, "http (CPU µs per request)", name, us);
                }
            }
        }
    }
    // Ratios two ways: of the medians, and the median (min–max) of each run's own ratio (a
    // target against the direct run of the same round, seconds apart: steadier on a machine
    // whose load changes over minutes).
    println!(
        "| test | target | median | min–max | ratio to direct | per-run ratio, median (min–max) |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    let runs_of: Vec<(String, String, Vec<f64>)> = rows.clone();
    let medians: Vec<(String, String, f64)> = rows
        .iter_mut()
        .map(|(t, n, xs)| (t.clone(), n.clone(), summary(&mut xs.clone()).0))
        .collect();
    for (test, name, xs) in &mut rows {
        let direct_runs = runs_of
            .iter()
            .find(|(t, n, _)| t == test && n == "direct")
            .map(|r| r.2.clone())
            .unwrap_or_default();
        let mut paired: Vec<f64> = xs.iter().zip(&direct_runs).map(|(x, d)| x / d).collect();
        let (med, lo, hi) = summary(xs);
        let direct = medians
            .iter()
            .find(|(t, n, _)| t == test && n == "direct")
            .map(|m| m.2)
            .unwrap_or(f64::NAN);
        let (pm, pl, ph) = if paired.is_empty() {
            (f64::NAN, f64::NAN, f64::NAN)
        } else {
            summary(&mut paired)
        };
        println!(
            "| {test} | {name} | {med:.0} | {lo:.0}–{hi:.0} | {:.2} | {pm:.2} ({pl:.2}–{ph:.2}) |",
            med / direct
        );
    }
    if !cpu_rows.is_empty() {
        println!();
        println!("| proxy CPU | target | median | min–max |");
        println!("|---|---|---:|---:|");
        for (test, name, xs) in &mut cpu_rows {
            let (med, lo, hi) = summary(xs);
            println!("| {test} | {name} | {med:.1} | {lo:.1}–{hi:.1} |");
        }
    }
    let errors: u64 = wrk_errors.iter().map(|e| e.1).sum();
    println!();
    println!("wrk errors (socket errors + non-2xx) over all runs: {errors} {wrk_errors:?}");
    println!(
        "kiln-dnat: {} connections DNATed by the kernel, {:?} bytes (in, out) through its proxy",
        kernel.dnat_packets().unwrap_or(0),
        dnat_proxy.traffic()
    );
    assert_eq!(
        dnat_proxy.traffic(),
        (0, 0),
        "kiln-dnat's connections went through the proxy"
    );
    for (_, _, _, _, proxy) in kilns {
        proxy.stop();
    }
    dnat_proxy.stop();
    kernel.remove().expect("removing the veth and rules");
}
