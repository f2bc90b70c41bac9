//! `ps`, `port`, `stats`, `top`.

use std::io::Write;

use anyhow::bail;
use kiln_store::{ContainerRecord, ContainerState, Store};
use serde_json::json;

use super::config::ContainerConfig;
use super::net::{PortMapping, host_addr};
use super::{PortArgs, PsArgs, StatsArgs, TopArgs};
use crate::cmd_image::render::{
    Format, ellipsis, human_duration, human_size, listing_template_error, since,
};

fn secs(ns: i64) -> i64 {
    ns / 1_000_000_000
}

/// docker's STATUS text.
pub fn status_text(c: &ContainerRecord, dir: &std::path::Path) -> String {
    let now = crate::cmd_image::render::now();
    if let Some((code, at)) = super::restarting::read(dir, c) {
        return format!("Restarting ({code}) {} ago", human_duration(now - secs(at)));
    }
    match c.state {
        ContainerState::Created => "Created".into(),
        ContainerState::Running => format!("Up {}", human_duration(now - secs(c.started_ns))),
        ContainerState::Paused => {
            format!("Up {} (Paused)", human_duration(now - secs(c.started_ns)))
        }
        ContainerState::Exited => format!(
            "Exited ({}) {} ago",
            c.exit_code,
            human_duration(now - secs(c.finished_ns))
        ),
        ContainerState::Dead => "Dead".into(),
    }
}

fn ports_of(c: &ContainerRecord) -> Vec<PortMapping> {
    serde_json::from_str(&c.ports).unwrap_or_default()
}

/// docker's PORTS column: bound ports, then exposed ones not published (`80/tcp`).
fn ports_text(c: &ContainerRecord, cfg: &ContainerConfig) -> String {
    let bound = ports_of(c);
    let mut parts: Vec<String> = bound.iter().map(PortMapping::ps_text).collect();
    for p in &cfg.exposed_ports {
        if !bound
            .iter()
            .any(|b| format!("{}/{}", b.container_port, b.proto.as_str()) == *p)
        {
            parts.push(p.clone());
        }
    }
    parts.join(", ")
}

pub fn ps(store: &Store, a: PsArgs) -> anyhow::Result<()> {
    let mut list = store.containers()?;
    let filter = super::ps_filter::PsFilter::parse(store, &a.filter)?;
    let all = a.all || a.latest || a.last >= 0 || filter.implies_all();
    if !all {
        list.retain(|c| c.state.is_live());
    }
    list.retain(|c| {
        let cfg: ContainerConfig = serde_json::from_str(&c.config).unwrap_or_default();
        let bound = ports_of(c);
        let mut ports: Vec<(u16, u16, &str)> = bound
            .iter()
            .map(|m| (m.host_port, m.container_port, m.proto.as_str()))
            .collect();
        for p in &cfg.exposed_ports {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            if let Ok(port) = port.parse::<u16>()
                && !ports.iter().any(|(_, c, pr)| *c == port && *pr == proto)
            {
                ports.push((0, port, proto));
            }
        }
        filter.matches(store, c, &cfg, &ports)
    });
    if a.latest {
        list.truncate(1);
    } else if a.last >= 0 {
        list.truncate(a.last as usize);
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for c in &list {
            let shown = if a.no_trunc {
                c.id.clone()
            } else {
                crate::cmd_image::render::truncate_id(&c.id)
            };
            writeln!(out, "{shown}")?;
        }
        return Ok(());
    }
    let mut default = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".to_string();
    if a.size {
        default.push_str("\t{{.Size}}");
    }
    let format = Format::new(&a.format, &default)
        .map_err(listing_template_error)?
        .for_type("*formatter.ContainerContext");
    // docker computes sizes when the template uses them, `-s` or not.
    let want_size = a.size || a.format.contains(".Size") || a.format.contains("json");
    let mut rows = Vec::new();
    for c in &list {
        let cfg: ContainerConfig = serde_json::from_str(&c.config).unwrap_or_default();
        let dir = store.container_dir(&c.id);
        let command = ps_command(&cfg.argv(), a.no_trunc);
        let size = if want_size {
            let rw = super::rootfs::writable_size(store, &c.id);
            format!(
                "{} (virtual {})",
                human_size(rw),
                human_size(rw + store.image_size(&c.image).unwrap_or(0))
            )
        } else {
            String::new()
        };
        rows.push(json!({
            "ID": if a.no_trunc { c.id.clone() } else { crate::cmd_image::render::truncate_id(&c.id) },
            "Image": c.image_ref,
            "Command": command,
            "CreatedAt": go_time_string(c.created),
            "RunningFor": since(c.created),
            "LocalVolumes": cfg.host.mount_points.iter().filter(|m| m.typ == "volume").count().to_string(),
            "Label": crate::cmd_image::gotemplate::method(cfg.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect()),
            "Status": if c.state == ContainerState::Running && super::restarting::read(&dir, c).is_none() { status_text(c, &dir) + &super::health::status_suffix(&dir) } else { status_text(c, &dir) },
            "State": super::restarting::state_name(&dir, c),
            "Ports": ports_text(c, &cfg),
            "Names": c.name.clone().unwrap_or_default(),
            "Labels": cfg.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            "Mounts": cfg.host.mount_points.iter().map(|m| if m.typ == "volume" { ellipsis(&m.name, 15) } else { m.source.clone() }).chain(cfg.host.binds.iter().filter(|_| cfg.host.mount_points.is_empty()).filter_map(|b| super::config::parse_bind(b).ok()).map(|b| b.source.display().to_string())).collect::<Vec<_>>().join(","),
            "Networks": match cfg.host.network_mode.as_str() { "private" => "bridge", m => m },
            "Size": size,
        }));
    }
    let header = json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "LocalVolumes": "LOCAL VOLUMES", "Label": crate::cmd_image::gotemplate::method(Default::default()),
        "RunningFor": "CREATED", "Status": "STATUS", "State": "STATE", "Ports": "PORTS",
        "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
        "Size": "SIZE",
    });
    let text = format
        .render(&header, &rows)
        .map_err(listing_template_error)?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// docker's COMMAND: the daemon joins the arguments, quoting those with a space in `'`;
/// the CLI cuts it to 20 characters (unless `--no-trunc`) and Go-quotes it.
fn ps_command(argv: &[String], no_trunc: bool) -> String {
    let mut parts = argv.iter();
    let mut command = parts.next().cloned().unwrap_or_default();
    for a in parts {
        command.push(' ');
        if a.contains(' ') {
            command.push_str(&format!("'{a}'"));
        } else {
            command.push_str(a);
        }
    }
    if !no_trunc {
        command = ellipsis(&command, 20);
    }
    crate::cmd_image::gotemplate::sprintf("%q", &[Some(json!(command))])
}

/// Go's `time.Time.String()` of a unix time in the local zone:
/// `2006-01-02 15:04:05 -0700 MST` (docker's CreatedAt).
fn go_time_string(unix: i64) -> String {
    // SAFETY: localtime_r fills the tm we own; tm_zone points at static tz data.
    unsafe {
        let t: libc::time_t = unix as libc::time_t;
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return unix.to_string();
        }
        let off = tm.tm_gmtoff;
        let zone = if tm.tm_zone.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(tm.tm_zone)
                .to_string_lossy()
                .into_owned()
        };
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {}{:02}{:02} {zone}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec,
            if off < 0 { '-' } else { '+' },
            off.abs() / 3600,
            off.abs() % 3600 / 60
        )
    }
}

pub fn port(store: &Store, a: PortArgs) -> anyhow::Result<()> {
    let c = store.find_container(&a.container)?;
    let bound = ports_of(&c);
    let mut out = std::io::stdout().lock();
    match &a.port {
        None => {
            for m in &bound {
                writeln!(
                    out,
                    "{}/{} -> {}",
                    m.container_port,
                    m.proto.as_str(),
                    host_addr(m.host_ip, m.host_port)
                )?;
            }
        }
        Some(p) => {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            let port: u16 = port
                .parse()
                .map_err(|_| anyhow::anyhow!("Invalid port: {p}"))?;
            let hits: Vec<_> = bound
                .iter()
                .filter(|m| m.container_port == port && m.proto.as_str() == proto)
                .collect();
            if hits.is_empty() {
                bail!(
                    "No public port '{port}/{proto}' published for {}",
                    a.container
                );
            }
            for m in hits {
                writeln!(out, "{}", host_addr(m.host_ip, m.host_port))?;
            }
        }
    }
    Ok(())
}

/// `stats`: one table with `--no-stream`; else the table redrawn about once a second (the
/// screen cleared first, as docker's CLI does) until interrupted.
pub fn stats(store: &Store, a: StatsArgs) -> anyhow::Result<()> {
    if a.no_stream {
        let table = stats_table(store, &a, std::time::Duration::from_millis(200))?;
        std::io::stdout().lock().write_all(table.as_bytes())?;
        return Ok(());
    }
    loop {
        let table = stats_table(store, &a, std::time::Duration::from_millis(1000))?;
        let mut out = std::io::stdout().lock();
        // A closed stdout (`| head`) ends the stream.
        if out
            .write_all(format!("\x1b[2J\x1b[H{table}").as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(());
        }
    }
}

/// The stats table, CPU % measured over `sample`.
fn stats_table(
    store: &Store,
    a: &StatsArgs,
    sample: std::time::Duration,
) -> anyhow::Result<String> {
    let list: Vec<ContainerRecord> = if a.containers.is_empty() {
        store
            .containers()?
            .into_iter()
            .filter(|c| a.all || c.state.is_live())
            .collect()
    } else {
        a.containers
            .iter()
            .map(|n| store.find_container(n))
            .collect::<Result<_, _>>()?
    };
    // CPU %: usage over a short interval, as docker's first sample compares two reads.
    let before: Vec<(u64, std::time::Instant)> = list
        .iter()
        .map(|c| {
            let u = super::cgroup::usage(&store.container_dir(&c.id), &c.id, c.pid);
            (u.2, std::time::Instant::now())
        })
        .collect();
    std::thread::sleep(sample);
    let default = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";
    let format = Format::new(&a.format, default)?;
    let total_mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .trim()
                    .trim_end_matches(" kB")
                    .parse::<u64>()
                    .ok()
            })
        })
        .unwrap_or(0)
        * 1024;
    let mut rows = Vec::new();
    for (c, (cpu0, t0)) in list.iter().zip(before) {
        let live = c.state.is_live();
        let (mem, limit, cpu1, pids) = if live {
            super::cgroup::usage(&store.container_dir(&c.id), &c.id, c.pid)
        } else {
            (0, 0, cpu0, 0)
        };
        // A stopped container reads all zeros, as docker's `stats -a` shows it.
        let limit = if !live {
            0
        } else if limit == 0 || limit >= (1 << 62) {
            total_mem
        } else {
            limit.min(total_mem.max(1))
        };
        let dt = t0.elapsed().as_nanos().max(1) as f64;
        let cpu = (cpu1.saturating_sub(cpu0)) as f64 / dt * 100.0;
        let mem_perc = if limit > 0 {
            mem as f64 / limit as f64 * 100.0
        } else {
            0.0
        };
        let bin = |b: u64| human_size_prec_binary(b);
        let (net, block) = if live {
            let cfg: ContainerConfig = serde_json::from_str(&c.config).unwrap_or_default();
            let dir = store.container_dir(&c.id);
            (
                super::io_stats::net(&dir, c.pid, &cfg.host.network_mode)
                    .map_or_else(|| "--".into(), |(rx, tx)| super::io_stats::pair(rx, tx)),
                {
                    let (r, w) = super::io_stats::block(&dir, &c.id, c.pid);
                    super::io_stats::pair(r, w)
                },
            )
        } else {
            (super::io_stats::pair(0, 0), super::io_stats::pair(0, 0))
        };
        rows.push(json!({
            "ID": if a.no_trunc { c.id.clone() } else { crate::cmd_image::render::truncate_id(&c.id) },
            "Container": if a.no_trunc { c.id.clone() } else { crate::cmd_image::render::truncate_id(&c.id) },
            "Name": c.name.clone().unwrap_or_default(),
            "CPUPerc": format!("{cpu:.2}%"),
            "MemUsage": format!("{} / {}", bin(mem), bin(limit)),
            "MemPerc": format!("{mem_perc:.2}%"),
            "NetIO": net,
            "BlockIO": block,
            "PIDs": pids.to_string(),
        }));
    }
    let header = json!({
        "ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    });
    format.render(&header, &rows)
}

/// docker's `units.BytesSize`: binary units, `7.5MiB`.
fn human_size_prec_binary(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let s = format!("{v:.4}");
    let s = format!(
        "{:.*}",
        4 - s.split('.').next().unwrap_or("").len().min(3),
        v
    );
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

/// docker's `top`: the host's `ps` with the options given (default `-ef`), `-q` naming the
/// container's processes where ps takes it, and only the rows whose PID is the container's
/// (moby's `parsePSOutput`), so options such as `aux` never list the host's processes.
pub fn top(store: &Store, a: TopArgs) -> anyhow::Result<()> {
    let daemon = |m: String| anyhow::anyhow!("Error response from daemon: {m}");
    let c = store
        .find_container(&a.container)
        .map_err(|e| daemon(e.to_string()))?;
    if !c.state.is_live() || c.pid == 0 {
        return Err(daemon(format!("Container {} is not running", c.id)));
    }
    // The container's processes: those in its cgroup (exec'd ones too), else its first
    // process and its descendants.
    let pids = super::cgroup::processes(&store.container_dir(&c.id), &c.id, c.pid);
    // docker joins the options with spaces and splits them again.
    let joined = if a.ps_args.is_empty() {
        "-ef".to_string()
    } else {
        a.ps_args.join(" ")
    };
    let ps_args: Vec<&str> = joined.split(' ').collect();
    let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    let ps = |extra: Option<String>| {
        std::process::Command::new("ps")
            .args(&ps_args)
            .args(extra)
            .output()
            .map_err(|e| anyhow::anyhow!("running ps: {e}"))
    };
    let mut out = ps(Some(format!("-q{}", list.join(","))))?;
    if !out.status.success() {
        // Some options (f) do not go with -q: all processes, filtered below.
        out = ps(None)?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            // moby: the first line of ps's stderr, else Go's "exit status N".
            let first = match err.lines().next().filter(|l| !l.is_empty()) {
                Some(l) => l.to_string(),
                None => match out.status.code() {
                    Some(c) => format!("exit status {c}"),
                    None => "signal: killed".to_string(),
                },
            };
            return Err(daemon(format!("ps: {first}")));
        }
    }
    let table = ps_rows(&String::from_utf8_lossy(&out.stdout), &pids).map_err(daemon)?;
    let text: Vec<String> = table.iter().map(|row| row.join("\t")).collect();
    let mut text = crate::cmd_image::render::tabwrite_min(&text.join("\n"), 20);
    text.push('\n');
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}

/// moby's `parsePSOutput`: the titles, then the rows whose PID is in `pids` (and the thread
/// rows, PID `-`, that follow one of them); the last column keeps its spaces.
fn ps_rows(output: &str, pids: &[u32]) -> Result<Vec<Vec<String>>, String> {
    let mut lines = output.split('\n');
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_ascii_whitespace()
        .map(str::to_string)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| "Couldn't find PID field in ps output".to_string())?;
    let n = titles.len();
    let mut rows = vec![titles];
    let mut after_ours = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(pid) = fields.get(pid_col) else {
            continue;
        };
        let ours = if *pid == "-" {
            after_ours
        } else {
            let p: u32 = pid
                .parse()
                .map_err(|e| format!("Unexpected pid '{pid}': {e}"))?;
            after_ours = pids.contains(&p);
            after_ours
        };
        if ours {
            let mut row: Vec<String> = fields[..(n - 1).min(fields.len())]
                .iter()
                .map(|f| f.to_string())
                .collect();
            if fields.len() >= n {
                row.push(fields[n - 1..].join(" "));
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod top_tests {
    use super::ps_rows;

    #[test]
    fn only_the_containers_rows_are_kept() {
        let out = "USER PID %CPU COMMAND\nroot 1 0.0 /sbin/init splash\nroot 42 0.1 sleep 300\nroot - 0.0 -\nroot 7 0.0 x\n";
        let rows = ps_rows(out, &[42]).unwrap();
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[1], ["root", "42", "0.1", "sleep 300"]);
        assert_eq!(rows[2][1], "-");
        assert_eq!(
            ps_rows("COMMAND\nsleep\n", &[42]).unwrap_err(),
            "Couldn't find PID field in ps output"
        );
    }
}
