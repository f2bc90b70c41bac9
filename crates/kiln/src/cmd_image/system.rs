//! `system df`, `system prune`, `system check`.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use anyhow::bail;
use kiln_store::{PruneScope, Store};
use serde_json::json;

use super::manage::{confirm, familiar};
use super::render::{Format, human_size, human_size_prec, since, tabwrite, truncate_id};
use super::{CheckArgs, DfArgs, Reported, SystemPruneArgs};

fn hs4(n: u64) -> String {
    human_size_prec(n as f64, 4)
}

fn reclaimable(part: u64, total: u64) -> String {
    if total == 0 {
        return hs4(part);
    }
    format!("{} ({}%)", hs4(part), part * 100 / total)
}

/// `CACHE ID` as `df -v` shows it: the digest part of the ID, 12 characters.
fn short_cache_id(id: &str) -> String {
    id.rsplit(':')
        .next()
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

pub(crate) fn df(store: &Store, a: DfArgs) -> anyhow::Result<()> {
    if a.verbose && !a.format.is_empty() {
        bail!("--format and --verbose cannot be used together: --format prints the summary rows");
    }
    let images = store.images()?;
    let containers = store.containers()?;
    let in_use: HashSet<_> = containers.iter().map(|c| c.image).collect();
    // Layers are shared: count each once (by chain ID), as docker's LayersSize does, with
    // docker's size of a layer (its unpacked files).
    let mut layer_size: HashMap<kiln_store::Digest, u64> = HashMap::new();
    let mut active_layers: HashSet<kiln_store::Digest> = HashSet::new();
    let mut per_image = Vec::new();
    let mut users: HashMap<kiln_store::Digest, usize> = HashMap::new();
    for img in &images {
        let layers = store.layers(&img.id)?;
        let diff_ids: Vec<_> = layers.iter().map(|l| l.diff_id).collect();
        let chains = kiln_store::chain_ids(&diff_ids);
        let mut sized = Vec::new();
        for (l, chain) in layers.iter().zip(chains) {
            let size = store.layer_size(l)?;
            layer_size.insert(chain, size);
            *users.entry(chain).or_default() += 1;
            if in_use.contains(&img.id) {
                active_layers.insert(chain);
            }
            sized.push((chain, size));
        }
        per_image.push((img, sized));
    }
    let total: u64 = layer_size.values().sum();
    let active: u64 = active_layers.iter().map(|d| layer_size[d]).sum();
    // Bookkeeping records (explain parts, URL validators, stage-file digests) hold nothing
    // and docker has no such rows: counted by neither df nor du, removed by `prune -a`.
    let cache: Vec<_> = store
        .build_cache()?
        .into_iter()
        .filter(|e| !(e.kind == kiln_store::CacheKind::Internal && e.size == 0))
        .collect();
    let cache_total: u64 = cache.iter().map(|e| e.size).sum();
    let cache_held: u64 = cache
        .iter()
        .filter(|e| e.in_use && !e.shared)
        .map(|e| e.size)
        .sum();
    let active_images = images.iter().filter(|i| in_use.contains(&i.id)).count();
    let running = containers
        .iter()
        .filter(|c| c.state == kiln_store::ContainerState::Running)
        .count();
    // A container's size is its writable layer's (docker's SizeRw, what `ps -s` shows);
    // reclaimable is what the stopped ones hold.
    let container_size: Vec<u64> = containers
        .iter()
        .map(|c| crate::cmd_container::writable_size(store, &c.id))
        .collect();
    let containers_total: u64 = container_size.iter().sum();
    let containers_stopped: u64 = containers
        .iter()
        .zip(&container_size)
        .filter(|(c, _)| !c.state.is_live())
        .map(|(_, s)| s)
        .sum();
    let volumes = crate::cmd_container::volume_usage(store)?;
    let volume_total: u64 = volumes.iter().map(|v| v.size).sum();
    let volume_unused: u64 = volumes
        .iter()
        .filter(|v| v.links == 0)
        .map(|v| v.size)
        .sum();
    let mut out = std::io::stdout().lock();
    if !a.verbose {
        let row = |kind: &str, count: usize, act: usize, size: String, recl: String| {
            json!({"Type": kind, "TotalCount": count.to_string(), "Active": act.to_string(),
                   "Size": size, "Reclaimable": recl})
        };
        let rows = vec![
            row(
                "Images",
                images.len(),
                active_images,
                hs4(total),
                reclaimable(total - active, total),
            ),
            row(
                "Containers",
                containers.len(),
                running,
                hs4(containers_total),
                reclaimable(containers_stopped, containers_total),
            ),
            row(
                "Local Volumes",
                volumes.len(),
                volumes.iter().filter(|v| v.links > 0).count(),
                hs4(volume_total),
                reclaimable(volume_unused, volume_total),
            ),
            row(
                "Build Cache",
                cache.len(),
                cache.iter().filter(|e| e.in_use).count(),
                hs4(cache_total),
                hs4(cache_total - cache_held),
            ),
        ];
        let format = Format::new(
            &a.format,
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        )?;
        let header = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE",
                            "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
        out.write_all(format.render(&header, &rows)?.as_bytes())?;
        return Ok(());
    }
    writeln!(out, "Images space usage:\n")?;
    let mut rows = String::from(
        "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS",
    );
    for (img, layers) in &per_image {
        let size: u64 = layers.iter().map(|(_, s)| s).sum();
        let shared: u64 = layers
            .iter()
            .filter(|(c, _)| users[c] > 1)
            .map(|(_, s)| s)
            .sum();
        let n_containers = containers.iter().filter(|c| c.image == img.id).count();
        let names: Vec<(String, String)> = if img.tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            img.tags
                .iter()
                .map(|t| {
                    let f = familiar(t);
                    match f.rsplit_once(':') {
                        Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
                        _ => (f, "<none>".into()),
                    }
                })
                .collect()
        };
        for (repo, tag) in names {
            rows.push_str(&format!(
                "\n{repo}\t{tag}\t{}\t{}\t{}\t{}\t{}\t{n_containers}",
                truncate_id(&img.id.to_string()),
                since(img.created.unwrap_or(0)),
                human_size(size),
                // docker's SHARED SIZE has four significant digits (units.HumanSize), the
                // other two three.
                hs4(shared),
                human_size(size - shared.min(size)),
            ));
        }
    }
    writeln!(out, "{}\n", tabwrite(&rows))?;
    writeln!(out, "Containers space usage:\n")?;
    let mut rows =
        String::from("CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES");
    for (c, size) in containers.iter().zip(&container_size) {
        rows.push_str(&format!(
            "\n{}\t{}\t\t{}\t{}\t{}\t{:?}\t{}",
            truncate_id(&c.id),
            truncate_id(&c.image.to_string()),
            volumes_of(c),
            hs4(*size),
            since(c.created),
            c.state,
            c.name.clone().unwrap_or_default()
        ));
    }
    writeln!(out, "{}\n", tabwrite(&rows))?;
    writeln!(out, "Local Volumes space usage:\n")?;
    let mut rows = String::from("VOLUME NAME\tLINKS\tSIZE");
    for v in &volumes {
        rows.push_str(&format!("\n{}\t{}\t{}", v.name, v.links, hs4(v.size)));
    }
    writeln!(out, "{}\n", tabwrite(&rows))?;
    writeln!(out, "Build cache usage: {}\n", hs4(cache_total))?;
    let format = Format::new(
        "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
        "",
    )?;
    let rows: Vec<_> = cache
        .iter()
        .map(|e| {
            // docker marks what a running build holds with a star.
            let star = if e.in_use { "*" } else { "" };
            json!({
                "ID": format!("{}{star}", short_cache_id(&e.id)),
                "CacheType": e.kind.as_str(),
                "Size": human_size(e.size),
                "CreatedSince": since(e.created),
                "LastUsedSince": e.last_used.map(since).unwrap_or_default(),
                "UsageCount": e.uses.to_string(),
                "Shared": e.shared.to_string(),
            })
        })
        .collect();
    let header = json!({"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE",
        "CreatedSince": "CREATED", "LastUsedSince": "LAST USED", "UsageCount": "USAGE",
        "Shared": "SHARED"});
    out.write_all(format.render(&header, &rows)?.as_bytes())?;
    Ok(())
}

/// docker's LOCAL VOLUMES of a container: how many volumes it mounts.
fn volumes_of(c: &kiln_store::ContainerRecord) -> usize {
    serde_json::from_str::<crate::cmd_container::config::ContainerConfig>(&c.config)
        .map(|cfg| {
            cfg.host
                .mount_points
                .iter()
                .filter(|m| m.typ == "volume")
                .count()
        })
        .unwrap_or(0)
}

pub(crate) fn prune(store: &Store, a: SystemPruneArgs) -> anyhow::Result<()> {
    let images_line = if a.all {
        "  - all images without at least one container associated to them"
    } else {
        "  - all dangling images"
    };
    // docker's list: volumes after containers (and networks, which kiln has none of), before
    // images, and only with --volumes; then a blank line before the question, as docker's
    // template leaves one (its empty filters section).
    let volumes_line = if a.volumes {
        "\n  - all volumes not used by at least one container"
    } else {
        ""
    };
    let warning = format!(
        "WARNING! This will remove:\n  - all stopped containers{volumes_line}\n{images_line}\n  - all build cache\n  - all content no image or cache record references\n"
    );
    if !a.force && !confirm(&warning)? {
        return Ok(());
    }
    let scope = if a.all {
        PruneScope::Unused
    } else {
        PruneScope::Dangling
    };
    let report = store.system_prune(scope)?;
    // After the containers went, so the volumes only they used are unused now.
    let (volumes, volume_bytes) = if a.volumes {
        crate::cmd_container::prune_volumes(store)?
    } else {
        (Vec::new(), 0)
    };
    let mut out = std::io::stdout().lock();
    if !report.containers.is_empty() {
        writeln!(out, "Deleted Containers:")?;
        for c in &report.containers {
            writeln!(out, "{c}")?;
        }
        writeln!(out)?;
    }
    if !volumes.is_empty() {
        writeln!(out, "Deleted Volumes:")?;
        for v in &volumes {
            writeln!(out, "{v}")?;
        }
        writeln!(out)?;
    }
    if !report.images.is_empty() {
        writeln!(out, "Deleted Images:")?;
        for e in &report.images {
            match e {
                kiln_store::RemoveEvent::Untagged(r) => writeln!(out, "untagged: {}", familiar(r))?,
                kiln_store::RemoveEvent::Deleted(d) => writeln!(out, "deleted: {d}")?,
            }
        }
        writeln!(out)?;
    }
    if !report.cache.is_empty() {
        writeln!(out, "Deleted build cache objects:")?;
        for k in &report.cache {
            writeln!(out, "{k}")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        hs4(report.reclaimed + volume_bytes)
    )?;
    Ok(())
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

pub(crate) fn check(store: &Store, a: CheckArgs) -> anyhow::Result<()> {
    let report = store.check(a.repair)?;
    let stale_rules = crate::cmd_container::net::stale_rules(a.repair);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "checked {} and {}",
        plural(report.blobs_checked, "blob"),
        plural(report.images_checked, "image")
    )?;
    for p in &report.problems {
        if report.repaired {
            writeln!(out, "repaired: {p}\n  (repair {})", p.repair_action())?;
        } else {
            writeln!(out, "broken: {p}\n  --repair {}", p.repair_action())?;
        }
    }
    for p in &stale_rules {
        let (what, action) = (p, crate::cmd_container::net::STALE_RULES_REPAIR);
        if a.repair {
            writeln!(out, "repaired: {what}\n  (repair {action})")?;
        } else {
            writeln!(out, "broken: {what}\n  --repair {action}")?;
        }
    }
    let problems = report.problems.len() + stale_rules.len();
    if report.unreferenced_blobs > 0 {
        writeln!(
            out,
            "note: {} blobs ({}) are not referenced by any image or cache record; `kiln system prune` removes them",
            report.unreferenced_blobs,
            hs4(report.unreferenced_bytes)
        )?;
    }
    if problems == 0 {
        writeln!(out, "store is consistent")?;
        return Ok(());
    }
    if report.repaired || (report.problems.is_empty() && a.repair) {
        writeln!(out, "repaired {}", plural(problems as u64, "problem"))?;
        return Ok(());
    }
    drop(out);
    eprintln!(
        "Error: {} found; run `kiln system check --repair` to remove what is broken",
        plural(problems as u64, "problem")
    );
    Err(Reported.into())
}

/// `kiln system info`: the store, and the platforms this machine runs (as `docker buildx
/// inspect`'s `Platforms:` line lists them, native first): natively, and emulated through a
/// binfmt_misc handler with the F flag (what `kiln build --platform` and `kiln run
/// --platform` can use).
pub(crate) fn info(store: &Store) -> anyhow::Result<()> {
    use kiln_runtime::binfmt;
    let name = |arch: &str| kiln_image::Platform::new("linux", arch, None).to_string();
    let native: Vec<String> = binfmt::native_architectures()
        .iter()
        .map(|a| name(a))
        .collect();
    let emulated = binfmt::emulated_architectures();
    let mounted = std::path::Path::new(binfmt::BINFMT_MISC)
        .join("status")
        .exists();
    println!("Store: {}", store.root().display());
    println!("Native platforms: {}", native.join(", "));
    let em: Vec<String> = emulated
        .iter()
        .map(|(a, h)| format!("{} ({h})", name(a)))
        .collect();
    match (em.is_empty(), mounted) {
        (false, _) => println!("Emulated platforms: {}", em.join(", ")),
        (true, true) => println!(
            "Emulated platforms: none (install QEMU's user emulators: apt-get install qemu-user-static)"
        ),
        (true, false) => println!(
            "Emulated platforms: none (binfmt_misc is not mounted at {}: mount -t binfmt_misc binfmt_misc {})",
            binfmt::BINFMT_MISC,
            binfmt::BINFMT_MISC
        ),
    }
    let all: Vec<String> = native
        .into_iter()
        .chain(emulated.iter().map(|(a, _)| name(a)))
        .collect();
    println!("Platforms: {}", all.join(", "));
    Ok(())
}
