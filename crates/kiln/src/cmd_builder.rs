//! `kiln builder prune` (docker's) and `kiln builder du` (buildx's): the build cache —
//! records, cache mounts and content nothing references (see kiln-store's `build_cache`).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use kiln_store::{BuildCachePrune, CacheEntry, CacheKind, Store};

use crate::GlobalArgs;
use crate::cmd_image::render::{human_duration, human_size_prec, now, parse_go_duration};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage builds
    Builder {
        #[command(subcommand)]
        command: BuilderCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum BuilderCommand {
    /// Remove build cache
    Prune(PruneArgs),
    /// Disk usage
    Du(DuArgs),
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. 'until=24h')
    #[arg(long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Amount of disk space to keep for cache
    #[arg(long, value_name = "bytes", value_parser = checked_size)]
    pub keep_storage: Option<String>,
}

#[derive(Args, Debug)]
pub struct DuArgs {
    /// Provide filter values
    #[arg(long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Provide a more verbose output
    #[arg(long)]
    pub verbose: bool,
}

pub fn run(cmd: Command, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let Command::Builder { command } = cmd;
    let r = match command {
        BuilderCommand::Prune(args) => prune(args, global),
        BuilderCommand::Du(args) => du(args, global),
    };
    match r {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("Error: {}", crate::cmd_image::message(&e));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `--filter` values of `builder prune` and `builder du`, as a prune selection.
fn parse_filters(raw: &[String]) -> anyhow::Result<BuildCachePrune> {
    let mut sel = BuildCachePrune::default();
    for f in raw {
        let Some((k, v)) = f.split_once('=') else {
            bail!(
                "invalid argument {f:?} for \"--filter\" flag: bad format of filter (expected name=value)"
            );
        };
        match k {
            "until" | "unused-for" => {
                let secs = parse_go_duration(v).with_context(|| {
                    format!(
                        "\"{k}\" filter expects a duration (e.g., '24h'): time: invalid duration {v:?}"
                    )
                })?;
                sel.unused_for = Some(secs.max(0));
            }
            "type" => match CacheKind::parse(v) {
                Some(kind) => sel.kinds.push(kind),
                // docker accepts any type and matches nothing; a typo is better reported.
                None => bail!(
                    "Invalid filter 'type={v}': the types are regular, exec.cachemount and internal"
                ),
            },
            "id" => sel.ids.push(v.to_string()),
            _ => bail!("Invalid filter '{k}'"),
        }
    }
    Ok(sel)
}

/// A bad size is a usage error (exit 125, docker's `invalid argument` line), found by clap.
fn checked_size(s: &str) -> Result<String, String> {
    parse_ram_bytes(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// docker's `units.RAMInBytes`: binary units, `2GB` = 2 GiB.
fn parse_ram_bytes(s: &str) -> anyhow::Result<u64> {
    kiln_build::options::parse_ram_size(s).map_err(anyhow::Error::msg)
}

fn hs4(n: u64) -> String {
    human_size_prec(n as f64, 4)
}

fn prune(args: PruneArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let mut sel = parse_filters(&args.filter).context("failed to prune build cache")?;
    sel.all = args.all;
    if let Some(k) = &args.keep_storage {
        sel.keep_bytes = Some(
            parse_ram_bytes(k)
                .with_context(|| format!("invalid argument {k:?} for \"--keep-storage\" flag"))?,
        );
    }
    let mut out = std::io::stdout().lock();
    if !args.force {
        let warning = if args.all {
            "WARNING! This will remove all build cache. Are you sure you want to continue?"
        } else {
            "WARNING! This will remove all dangling build cache. Are you sure you want to continue?"
        };
        write!(out, "{warning} [y/N] ")?;
        out.flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y") {
            // docker prints the total even when the answer is no.
            writeln!(out, "Total reclaimed space: 0B")?;
            return Ok(());
        }
    }
    // Empty bookkeeping records go with the rest, but unnamed, as `system df -v` and
    // `builder du` leave them out (unless asked for by `--filter type=internal`).
    let unlisted: std::collections::HashSet<String> = if sel.kinds.contains(&CacheKind::Internal) {
        Default::default()
    } else {
        Store::open(global.store_root())?
            .build_cache()?
            .into_iter()
            .filter(|e| e.kind == CacheKind::Internal && e.size == 0)
            .map(|e| e.id)
            .collect()
    };
    let report = kiln_build::prune_cache(&global.store_root(), &sel, &|| {
        eprintln!("waiting for running builds to finish before pruning the build cache...")
    })?;
    let listed: Vec<&String> = report
        .removed
        .iter()
        .filter(|id| !unlisted.contains(*id))
        .collect();
    if !listed.is_empty() {
        writeln!(out, "Deleted build cache objects:")?;
        for id in listed {
            writeln!(out, "{id}")?;
        }
        writeln!(out)?;
    }
    writeln!(out, "Total reclaimed space: {}", hs4(report.reclaimed))?;
    Ok(())
}

fn du(args: DuArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let sel = parse_filters(&args.filter)?;
    let store = Store::open(global.store_root())?;
    let t = now();
    let entries: Vec<CacheEntry> = store
        .build_cache()?
        .into_iter()
        .filter(|e| sel.matches(e, t))
        // Empty bookkeeping records only when asked for (`--filter type=internal`).
        .filter(|e| {
            e.size > 0 || e.kind != CacheKind::Internal || sel.kinds.contains(&CacheKind::Internal)
        })
        .collect();
    let mut out = std::io::stdout().lock();
    let ago = |s: i64| format!("{} ago", human_duration(t - s));
    if args.verbose {
        let mut text = String::new();
        for e in &entries {
            text.push_str(&format!(
                "ID:\t{}\nCreated at:\t{}\nMutable:\t{}\nReclaimable:\t{}\nShared:\t{}\nSize:\t{}\nUsage count:\t{}\n",
                e.id,
                go_time(e.created),
                e.kind == CacheKind::CacheMount,
                !e.in_use,
                e.shared,
                hs4(e.size),
                e.uses,
            ));
            if let Some(u) = e.last_used {
                text.push_str(&format!("Last used:\t{}\n", ago(u)));
            }
            text.push_str(&format!("Type:\t{}\n\n", e.kind.as_str()));
        }
        out.write_all(tabwrite_tabs(&text).as_bytes())?;
    } else {
        let mut text = String::from("ID\tRECLAIMABLE\tSIZE\tLAST ACCESSED\n");
        for e in &entries {
            // buildx marks mutable records (cache mounts) with a star.
            let star = if e.kind == CacheKind::CacheMount {
                "*"
            } else {
                ""
            };
            text.push_str(&format!(
                "{}{star}\t{}\t{}\t{}\n",
                e.id,
                !e.in_use,
                hs4(e.size),
                e.last_used.map(ago).unwrap_or_default()
            ));
        }
        out.write_all(tabwrite_tabs(&text).as_bytes())?;
    }
    if args.filter.is_empty() {
        let total: u64 = entries.iter().map(|e| e.size).sum();
        let reclaimable: u64 = entries.iter().filter(|e| !e.in_use).map(|e| e.size).sum();
        let shared: u64 = entries.iter().filter(|e| e.shared).map(|e| e.size).sum();
        let mut text = String::new();
        if shared > 0 {
            text.push_str(&format!(
                "Shared:\t{}\nPrivate:\t{}\n",
                hs4(shared),
                hs4(total - shared)
            ));
        }
        text.push_str(&format!(
            "Reclaimable:\t{}\nTotal:\t{}\n",
            hs4(reclaimable),
            hs4(total)
        ));
        out.write_all(tabwrite_tabs(&text).as_bytes())?;
    }
    Ok(())
}

/// Go's `time.Time` default format, UTC: `2024-01-02 15:04:05 +0000 UTC`.
fn go_time(t: i64) -> String {
    let s = kiln_store::timestamp::format_rfc3339(t);
    format!(
        "{} +0000 UTC",
        s.trim_end_matches('Z').replacen('T', " ", 1)
    )
}

/// Go's `text/tabwriter` as buildx sets it (minwidth 1, tabwidth 8, padding 1, padchar
/// '\t'): each column is as wide as its widest cell plus one, rounded up to a tab stop, and
/// filled with tabs.
fn tabwrite_tabs(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let cols = lines
        .iter()
        .map(|l| l.len().saturating_sub(1))
        .max()
        .unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for l in &lines {
        for (j, cell) in l.iter().enumerate().take(l.len().saturating_sub(1)) {
            widths[j] = widths[j].max(cell.chars().count() + 1);
        }
    }
    for w in &mut widths {
        *w = w.div_ceil(8) * 8;
    }
    let mut out = String::new();
    for l in &lines {
        for (j, cell) in l.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < l.len() {
                let pad = widths[j] - cell.chars().count();
                out.extend(std::iter::repeat_n('\t', pad.div_ceil(8)));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_storage_is_binary_like_docker() {
        assert_eq!(parse_ram_bytes("2GB").unwrap(), 2 << 30);
        assert_eq!(parse_ram_bytes("512k").unwrap(), 512 << 10);
        assert_eq!(parse_ram_bytes("100").unwrap(), 100);
        assert!(parse_ram_bytes("lots").is_err());
        assert!(parse_ram_bytes("5XB").is_err());
    }

    #[test]
    fn filters_parse_and_refuse() {
        let s = parse_filters(&[
            "type=exec.cachemount".into(),
            "id=ab".into(),
            "until=1h".into(),
        ])
        .unwrap();
        assert_eq!(s.kinds, vec![CacheKind::CacheMount]);
        assert_eq!(s.ids, vec!["ab".to_string()]);
        assert_eq!(s.unused_for, Some(3600));
        assert!(parse_filters(&["type=bogus".into()]).is_err());
        assert!(parse_filters(&["label=x".into()]).is_err());
    }

    #[test]
    fn tab_padding_like_buildx() {
        assert_eq!(
            tabwrite_tabs("ID\tX\nabcdefghij\tY\n"),
            "ID\t\tX\nabcdefghij\tY\n"
        );
    }
}
