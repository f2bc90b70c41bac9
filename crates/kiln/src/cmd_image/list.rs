//! `kiln images` / `kiln image ls`.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use anyhow::{Context, bail};
use kiln_image::{Digest, ImageRef};
use kiln_store::{ImageRecord, IndexRecord, Store};
use serde_json::{Value, json};

use super::ImagesArgs;
use super::render::{Format, glob_match, human_size, since, truncate_id};

const DEFAULT_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}";
const DEFAULT_TABLE_DIGEST: &str = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}";

/// Parsed `--filter` values: the same key ORs, different keys AND.
#[derive(Default)]
pub(crate) struct Filters {
    dangling: Option<bool>,
    reference: Vec<String>,
    before: Option<i64>,
    since: Option<i64>,
    label: Vec<(String, Option<String>)>,
}

impl Filters {
    fn parse(store: &Store, raw: &[String]) -> anyhow::Result<Filters> {
        let mut f = Filters::default();
        for r in raw {
            let Some((k, v)) = r.split_once('=') else {
                bail!("bad format of filter (expected name=value)");
            };
            match k {
                "dangling" => {
                    f.dangling = Some(match v.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => bail!("Invalid filter 'dangling=[{v}]'"),
                    })
                }
                "reference" => f.reference.push(v.to_string()),
                "before" => f.before = Some(store.resolve_image(v)?.created.unwrap_or(0)),
                "since" => f.since = Some(store.resolve_image(v)?.created.unwrap_or(0)),
                "label" => f.label.push(match v.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (v.to_string(), None),
                }),
                other => bail!("Invalid filter '{other}'"),
            }
        }
        Ok(f)
    }

    fn keeps_image(&self, store: &Store, item: &Item) -> anyhow::Result<bool> {
        let img = &item.config_of;
        if let Some(d) = self.dangling
            && d != item.tags.is_empty()
        {
            return Ok(false);
        }
        let created = item.created.unwrap_or(0);
        if self.before.is_some_and(|b| created >= b) || self.since.is_some_and(|s| created <= s) {
            return Ok(false);
        }
        if !self.label.is_empty() {
            let config = store.image_config(img)?;
            let labels = &config["config"]["Labels"];
            let all = self.label.iter().all(|(k, v)| match (labels.get(k), v) {
                (Some(Value::String(have)), Some(want)) => have == want,
                (Some(_), None) => true,
                _ => false,
            });
            if !all {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn keeps_tag(&self, familiar: &str, repo: &str) -> bool {
        self.reference.is_empty()
            || self
                .reference
                .iter()
                .any(|p| glob_match(p, familiar) || glob_match(p, repo))
    }
}

pub(crate) fn images(store: &Store, a: ImagesArgs) -> anyhow::Result<()> {
    let mut filter = Filters::parse(store, &a.filter)?;
    if let Some(r) = &a.repository {
        // `kiln images busybox` = reference filter on that repository (any tag unless given);
        // a pattern (`'app/*'`, `'app:1.*'`) is matched as `--filter reference=` matches it.
        if r.contains(['*', '?', '[']) {
            filter.reference.push(r.clone());
        } else {
            let named =
                ImageRef::parse_named(r).with_context(|| format!("invalid reference {r:?}"))?;
            let pat = match named.tag() {
                Some(t) => format!("{}:{t}", named.repository_familiar()),
                None => named.repository_familiar(),
            };
            filter.reference.push(pat);
        }
    }
    if a.tree {
        if !a.format.is_empty() || a.quiet || a.digests {
            bail!("--tree cannot be combined with --format, --quiet or --digests");
        }
        let items = listed(store, a.all)?;
        let mut kept = Vec::new();
        for item in items {
            if filter.keeps_image(store, &item)? {
                kept.push(item);
            }
        }
        let out = tree(store, &kept, &filter, a.no_trunc)?;
        std::io::stdout().lock().write_all(out.as_bytes())?;
        return Ok(());
    }
    let mut rows = Vec::new();
    for item in listed(store, a.all)? {
        if !filter.keeps_image(store, &item)? {
            continue;
        }
        let id = if a.no_trunc {
            item.id.to_string()
        } else {
            truncate_id(&item.id.to_string())
        };
        let created = item.created.unwrap_or(0);
        let size = item.size;
        let base = json!({
            "ID": id,
            "Digest": "<none>",
            "CreatedSince": if created == 0 && item.created.is_none() { String::new() } else { since(created) },
            "CreatedAt": kiln_store::timestamp::format_go_utc(created),
            "Size": human_size(size),
            "VirtualSize": super::render::human_size_prec(size as f64, 4),
            "Containers": "N/A",
            "SharedSize": "N/A",
            "UniqueSize": "N/A",
            "Platform": item.platforms,
        });
        // RepoDigests (pull, push): the digest column of that repository's rows.
        let repo_digests: Vec<(String, String)> = item
            .repo_digests
            .iter()
            .filter_map(|d| ImageRef::parse_named(d).ok())
            .filter_map(|r| Some((r.repository_familiar(), r.digest()?.to_string())))
            .collect();
        let mut push = |repo: &str, tag: &str| {
            let mut row = base.clone();
            row["Repository"] = json!(repo);
            row["Tag"] = json!(tag);
            if let Some((_, d)) = repo_digests.iter().find(|(r, _)| r == repo) {
                row["Digest"] = json!(d);
            }
            rows.push(row);
        };
        if item.tags.is_empty() {
            // Pulled by digest: docker lists the repository with TAG <none>.
            let repos: Vec<String> = repo_digests.iter().map(|(r, _)| r.clone()).collect();
            if repos.is_empty() {
                if filter.reference.is_empty() {
                    push("<none>", "<none>");
                }
            } else {
                for r in repos {
                    if filter.keeps_tag(&r, &r) {
                        push(&r, "<none>");
                    }
                }
            }
            continue;
        }
        for t in &item.tags {
            let Ok(r) = ImageRef::parse_named(t) else {
                continue;
            };
            let repo = r.repository_familiar();
            let tag = r.tag().unwrap_or("<none>").to_string();
            if filter.keeps_tag(&r.familiar(), &repo) {
                push(&repo, &tag);
            }
        }
    }
    let source = if a.quiet && a.format.is_empty() {
        "{{.ID}}"
    } else {
        a.format.as_str()
    };
    let default = if a.digests {
        DEFAULT_TABLE_DIGEST
    } else {
        DEFAULT_TABLE
    };
    let mut source = source.to_string();
    if a.digests
        && source.starts_with("table")
        && source != "table"
        && !source.contains("{{.Digest}}")
    {
        source.push_str("\t{{.Digest}}");
    }
    let format = Format::new(&source, default)?;
    let header = json!({
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
        "Containers": "CONTAINERS", "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE",
        "UniqueSize": "UNIQUE SIZE", "Platform": "PLATFORM",
    });
    let out = format.render(&header, &rows)?;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

/// One line (or one block of lines, one per tag) of `kiln images`: a single-platform image,
/// or an image index (a multi-platform image), which is listed once with the index digest as
/// its ID, as docker's containerd image store lists it.
struct Item {
    id: Digest,
    tags: Vec<String>,
    created: Option<i64>,
    added: i64,
    /// Unpacked size; for an index, the sum of its platforms' sizes (a layer they share
    /// counted once).
    size: u64,
    /// `os/arch[/variant]`; for an index, each of its platforms, comma-separated.
    platforms: String,
    repo_digests: Vec<String>,
    /// Whose config labels `label=` filters read (an index: its default entry).
    config_of: Digest,
    index: Option<IndexRecord>,
}

/// Every image and index `kiln images` lists, newest first. An image an index lists is shown
/// only under its index, unless it has tags of its own or `all` is set.
fn listed(store: &Store, all: bool) -> anyhow::Result<Vec<Item>> {
    let images = store.images()?;
    let indexes = store.indexes()?;
    let in_index: HashSet<Digest> = indexes
        .iter()
        .flat_map(|ix| ix.entries.iter().map(|e| e.image.id))
        .collect();
    // Intermediate images (untagged, other images built on them: the ones `image prune`
    // keeps) only with -a, as docker lists them; so `-f dangling=true` without -a lists
    // exactly what a prune would remove.
    // Only untagged images can be hidden, so only they are asked about (none, usually).
    let untagged: Vec<_> = images
        .iter()
        .filter(|i| !all && i.tags.is_empty())
        .map(|i| i.id)
        .collect();
    let parents: HashSet<_> = store.images_with_children(&untagged)?;
    let mut items = Vec::new();
    for img in images {
        if !all && img.tags.is_empty() && (parents.contains(&img.id) || in_index.contains(&img.id))
        {
            continue;
        }
        items.push(Item {
            id: img.id,
            created: img.created,
            added: img.added,
            size: store.image_size(&img.id)?,
            platforms: img.platform().to_string(),
            repo_digests: store.repo_digests(&img.id)?,
            config_of: img.id,
            tags: img.tags,
            index: None,
        });
    }
    for ix in indexes {
        let Some(default) = ix.default_entry() else {
            continue;
        };
        let repo_digests = super::inspect::index_repo_digests(store, &ix)?;
        items.push(Item {
            id: ix.digest,
            tags: ix.tags.clone(),
            created: ix.created(),
            added: ix.added,
            size: index_usage(store, &ix)?.0,
            platforms: ix
                .platforms()
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
            repo_digests,
            config_of: default.image.id,
            index: Some(ix),
        });
    }
    items.sort_by(|a, b| {
        (b.created.unwrap_or(0), b.added, b.id).cmp(&(a.created.unwrap_or(0), a.added, a.id))
    });
    Ok(items)
}

/// An image's disk usage (unpacked layers) and content size (its blobs as stored: manifest,
/// config, layers).
fn image_usage(store: &Store, img: &ImageRecord) -> anyhow::Result<(u64, u64)> {
    let layers = store.layers(&img.id)?;
    let sizes = store.layer_sizes(&img.id)?;
    let disk = sizes.iter().sum();
    let content = layers.iter().map(|l| l.compressed_size).sum::<u64>()
        + store.blob_size(&img.id)?
        + store.blob_size(&img.manifest_digest)?;
    Ok((disk, content))
}

/// An index's disk usage and content size: its images', a layer or blob they share counted
/// once, plus the index blob.
fn index_usage(store: &Store, ix: &IndexRecord) -> anyhow::Result<(u64, u64)> {
    let mut unpacked: HashMap<Digest, u64> = HashMap::new();
    let mut blobs: HashMap<Digest, u64> = HashMap::new();
    blobs.insert(ix.digest, ix.size);
    for e in &ix.entries {
        let img = &e.image;
        let layers = store.layers(&img.id)?;
        let sizes = store.layer_sizes(&img.id)?;
        for (l, s) in layers.iter().zip(sizes) {
            unpacked.insert(l.diff_id, s);
            blobs.insert(l.blob, l.compressed_size);
        }
        blobs.insert(img.id, store.blob_size(&img.id)?);
        blobs.insert(img.manifest_digest, store.blob_size(&img.manifest_digest)?);
    }
    Ok((unpacked.values().sum(), blobs.values().sum()))
}

/// `kiln images --tree` (docker 27's view): per name, the image (ID, disk usage, content
/// size), then one indented line per platform with that platform's image.
fn tree(store: &Store, items: &[Item], filter: &Filters, no_trunc: bool) -> anyhow::Result<String> {
    let short = |d: &Digest| {
        if no_trunc {
            d.to_string()
        } else {
            truncate_id(&d.to_string())
        }
    };
    let mut lines: Vec<[String; 4]> = vec![[
        "IMAGE".into(),
        "ID".into(),
        "DISK USAGE".into(),
        "CONTENT SIZE".into(),
    ]];
    for item in items {
        let mut names: Vec<String> = item
            .tags
            .iter()
            .filter_map(|t| ImageRef::parse_named(t).ok())
            .filter(|r| filter.keeps_tag(&r.familiar(), &r.repository_familiar()))
            .map(|r| r.familiar())
            .collect();
        if item.tags.is_empty() {
            if !filter.reference.is_empty() {
                continue;
            }
            names.push("<untagged>".into());
        }
        if names.is_empty() {
            continue;
        }
        let (children, usage): (Vec<(String, ImageRecord)>, (u64, u64)) = match &item.index {
            Some(ix) => (
                ix.entries
                    .iter()
                    .map(|e| (e.platform.to_string(), e.image.clone()))
                    .collect(),
                index_usage(store, ix)?,
            ),
            None => {
                let img = store
                    .image(&item.id)?
                    .with_context(|| format!("image {} vanished", item.id))?;
                let usage = image_usage(store, &img)?;
                (vec![(item.platforms.clone(), img)], usage)
            }
        };
        let mut child_lines = Vec::new();
        for (n, (platform, img)) in children.iter().enumerate() {
            let branch = if n + 1 == children.len() {
                "└─"
            } else {
                "├─"
            };
            let (disk, content) = image_usage(store, img)?;
            child_lines.push([
                format!("{branch} {platform}"),
                short(&img.id),
                human_size(disk),
                human_size(content),
            ]);
        }
        for name in names {
            lines.push([
                name,
                short(&item.id),
                human_size(usage.0),
                human_size(usage.1),
            ]);
            lines.extend(child_lines.iter().cloned());
        }
        lines.push(Default::default());
    }
    if lines.last().is_some_and(|l| l[0].is_empty()) {
        lines.pop();
    }
    let width = |i: usize| {
        lines
            .iter()
            .map(|l| l[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2, w3) = (width(0), width(1), width(2), width(3));
    let mut out = String::new();
    for l in &lines {
        if l[0].is_empty() {
            out.push('\n');
            continue;
        }
        let pad = |s: &str, w: usize| " ".repeat(w.saturating_sub(s.chars().count()));
        out.push_str(&format!(
            "{}{}   {}{}   {}{}   {}{}\n",
            l[0],
            pad(&l[0], w0),
            l[1],
            pad(&l[1], w1),
            pad(&l[2], w2),
            l[2],
            pad(&l[3], w3),
            l[3],
        ));
    }
    Ok(out)
}
