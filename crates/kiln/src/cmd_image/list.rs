//! `kiln images` / `kiln image ls`.

use std::collections::HashSet;
use std::io::Write;

use anyhow::{Context, bail};
use kiln_image::ImageRef;
use kiln_store::{ImageRecord, Store};
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

    fn keeps_image(&self, store: &Store, img: &ImageRecord) -> anyhow::Result<bool> {
        if let Some(d) = self.dangling
            && d != img.tags.is_empty()
        {
            return Ok(false);
        }
        let created = img.created.unwrap_or(0);
        if self.before.is_some_and(|b| created >= b) || self.since.is_some_and(|s| created <= s) {
            return Ok(false);
        }
        if !self.label.is_empty() {
            let config = store.image_config(&img.id)?;
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
    let all = store.images()?;
    // Intermediate images (untagged, other images built on them: the ones `image prune`
    // keeps) only with -a, as docker lists them; so `-f dangling=true` without -a lists
    // exactly what a prune would remove.
    // Only untagged images can be hidden, so only they are asked about (none, usually).
    let untagged: Vec<_> = all
        .iter()
        .filter(|i| !a.all && i.tags.is_empty())
        .map(|i| i.id)
        .collect();
    let parents: HashSet<_> = store.images_with_children(&untagged)?;
    let mut rows = Vec::new();
    for img in &all {
        if !a.all && img.tags.is_empty() && parents.contains(&img.id) {
            continue;
        }
        if !filter.keeps_image(store, img)? {
            continue;
        }
        let id = if a.no_trunc {
            img.id.to_string()
        } else {
            truncate_id(&img.id.to_string())
        };
        let created = img.created.unwrap_or(0);
        let size = store.image_size(&img.id)?;
        let base = json!({
            "ID": id,
            "Digest": "<none>",
            "CreatedSince": if created == 0 && img.created.is_none() { String::new() } else { since(created) },
            "CreatedAt": kiln_store::timestamp::format_go_utc(created),
            "Size": human_size(size),
            "VirtualSize": super::render::human_size_prec(size as f64, 4),
            "Containers": "N/A",
            "SharedSize": "N/A",
            "UniqueSize": "N/A",
        });
        // RepoDigests (pull, push): the digest column of that repository's rows.
        let repo_digests: Vec<(String, String)> = store
            .repo_digests(&img.id)?
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
        if img.tags.is_empty() {
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
        for t in &img.tags {
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
        "UniqueSize": "UNIQUE SIZE",
    });
    let out = format.render(&header, &rows)?;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}
