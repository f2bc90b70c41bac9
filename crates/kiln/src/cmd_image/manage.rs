//! `load`, `save`, `tag`, `rmi`, `image prune`.

use std::io::{IsTerminal, Write};

use anyhow::{Context, bail};
use kiln_image::ImageRef;
use kiln_store::{ImageRecord, PruneScope, RemoveEvent, SaveFormat, Store};
use serde_json::Value;

use super::render::{human_size_prec, now, parse_go_duration};
use super::{ArchiveKind, ImagePruneArgs, LoadArgs, Reported, RmiArgs, SaveArgs, TagArgs, message};

pub(crate) fn familiar(full: &str) -> String {
    ImageRef::parse_named(full)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}

pub(crate) fn load(store: &Store, a: LoadArgs) -> anyhow::Result<()> {
    let loaded = match &a.input {
        Some(p) => store.load_all(p)?,
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            store.load_reader_all(&mut stdin.lock())?
        }
    };
    let mut out = std::io::stdout().lock();
    let indexes = loaded.indexes.iter().map(|ix| (&ix.tags, ix.digest));
    let images = loaded.images.iter().map(|l| (&l.tags, l.image.id));
    for (tags, id) in images.chain(indexes) {
        for t in tags {
            if let Some(prev) = t.previous {
                writeln!(
                    out,
                    "The image {} already exists, renaming the old one with ID {prev} to empty string",
                    familiar(&t.reference)
                )?;
            }
            writeln!(out, "Loaded image: {}", familiar(&t.reference))?;
        }
        if tags.is_empty() {
            writeln!(out, "Loaded image ID: {id}")?;
        }
    }
    Ok(())
}

/// The images and names `save` writes: a name without a tag means every tag of that
/// repository (as docker does); an ID means the image without names.
fn save_selection(
    store: &Store,
    names: &[String],
) -> anyhow::Result<Vec<(ImageRecord, Vec<ImageRef>)>> {
    let mut out: Vec<(ImageRecord, Vec<ImageRef>)> = Vec::new();
    let mut add = |img: ImageRecord, tag: Option<ImageRef>| {
        if let Some(e) = out.iter_mut().find(|(i, _)| i.id == img.id) {
            if let Some(t) = tag
                && !e.1.contains(&t)
            {
                e.1.push(t);
            }
        } else {
            out.push((img, tag.into_iter().collect()));
        }
    };
    for name in names {
        let named = ImageRef::parse_named(name).ok();
        if let Some(n) = named
            .as_ref()
            .filter(|n| n.tag().is_none() && n.digest().is_none())
        {
            let repo = n.name();
            let mut found = false;
            for img in store.images()? {
                for t in img.tags.clone() {
                    if let Ok(r) = ImageRef::parse_named(&t)
                        && r.name() == repo
                    {
                        add(img.clone(), Some(r));
                        found = true;
                    }
                }
            }
            if found {
                continue;
            }
        }
        let img = store.resolve_image(name)?;
        let tag = ImageRef::parse(name)
            .ok()
            .filter(|r| img.tags.contains(&r.to_string()));
        add(img, tag);
    }
    Ok(out)
}

pub(crate) fn save(store: &Store, a: SaveArgs) -> anyhow::Result<()> {
    let format = match a.format {
        ArchiveKind::Docker => SaveFormat::Docker,
        ArchiveKind::Oci => SaveFormat::Oci,
    };
    let selection = save_selection(store, &a.images)?;
    match &a.output {
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            store.save(&selection, format, w)?.flush()?;
        }
        Some(path) => {
            // Beside the target and renamed, so a failed save never leaves half a file; a
            // device or FIFO (`-o /dev/null`) is written in place.
            let out = kiln_build::outfile::OutputFile::create(path).with_context(|| {
                format!(
                    "failed to save image: creating a file for {}",
                    path.display()
                )
            })?;
            let w = std::io::BufWriter::with_capacity(1 << 20, out.file());
            store.save(&selection, format, w)?.flush()?;
            out.commit()
                .with_context(|| format!("failed to save image: writing {}", path.display()))?;
        }
    }
    Ok(())
}

pub(crate) fn tag(store: &Store, a: TagArgs) -> anyhow::Result<()> {
    let img = super::inspect::resolve_named(store, &a.source)?;
    if let Err(e) = ImageRef::parse(&a.target) {
        // docker's CLI message, without `Error: `; the reason is the reference parser's.
        eprintln!(
            "Error parsing reference: {:?} is not a valid repository/tag: {e}",
            a.target
        );
        return Err(Reported.into());
    }
    store.tag(&img.id, &a.target)?;
    Ok(())
}

fn print_events(
    out: &mut impl Write,
    events: &[RemoveEvent],
    capitalized: bool,
) -> std::io::Result<()> {
    for e in events {
        match (e, capitalized) {
            (RemoveEvent::Untagged(r), true) => writeln!(out, "Untagged: {}", familiar(r))?,
            (RemoveEvent::Untagged(r), false) => writeln!(out, "untagged: {}", familiar(r))?,
            (RemoveEvent::Deleted(d), true) => writeln!(out, "Deleted: {d}")?,
            (RemoveEvent::Deleted(d), false) => writeln!(out, "deleted: {d}")?,
        }
    }
    Ok(())
}

pub(crate) fn rmi(store: &Store, a: RmiArgs) -> anyhow::Result<()> {
    let mut failed = false;
    for name in &a.images {
        match store.remove_image(name, a.force) {
            Ok((events, _)) => print_events(&mut std::io::stdout().lock(), &events, true)?,
            Err(e) => {
                failed = true;
                eprintln!("Error: {}", message(&e.into()));
            }
        }
    }
    if failed { Err(Reported.into()) } else { Ok(()) }
}

/// Asks on the terminal; anything but y/Y declines.
pub(crate) fn confirm(warning: &str) -> anyhow::Result<bool> {
    // On standard output, as docker prompts.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        write!(out, "{warning}\nAre you sure you want to continue? [y/N] ")?;
        out.flush()?;
    }
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y"))
}

/// `until=` and `label=` filters of `image prune`, as a keep-predicate.
fn prune_filter(store: &Store, raw: &[String]) -> anyhow::Result<impl Fn(&ImageRecord) -> bool> {
    let mut until: Option<i64> = None;
    let mut labels: Vec<(bool, String, Option<String>)> = Vec::new();
    for r in raw {
        let Some((k, v)) = r.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        match k {
            "until" => {
                let t = parse_go_duration(v)
                    .map(|d| now() - d)
                    .or_else(|| kiln_store::timestamp::parse_rfc3339(v))
                    .or_else(|| v.parse::<i64>().ok());
                match t {
                    Some(t) => until = Some(t),
                    None => bail!("invalid filter 'until={v}': not a duration or timestamp"),
                }
            }
            "label" | "label!" => {
                let neg = k == "label!";
                let (lk, lv) = match v.split_once('=') {
                    Some((a, b)) => (a.to_string(), Some(b.to_string())),
                    None => (v.to_string(), None),
                };
                labels.push((neg, lk, lv));
            }
            other => bail!("Invalid filter '{other}'"),
        }
    }
    let store = store.clone();
    Ok(move |img: &ImageRecord| -> bool {
        if let Some(u) = until
            && img.created.unwrap_or(0) >= u
        {
            return true;
        }
        if labels.is_empty() {
            return false;
        }
        let config = store.image_config(&img.id).unwrap_or(Value::Null);
        let have = &config["config"]["Labels"];
        let matches = |k: &str, v: &Option<String>| match (have.get(k), v) {
            (Some(Value::String(h)), Some(w)) => h == w,
            (Some(_), None) => true,
            _ => false,
        };
        !labels.iter().all(|(neg, k, v)| matches(k, v) != *neg)
    })
}

pub(crate) fn prune(store: &Store, a: ImagePruneArgs) -> anyhow::Result<()> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    let keep = prune_filter(store, &a.filter)?;
    if !a.force && !confirm(warning)? {
        // docker prints the total even when the answer is no.
        println!("Total reclaimed space: 0B");
        return Ok(());
    }
    let scope = if a.all {
        PruneScope::Unused
    } else {
        PruneScope::Dangling
    };
    // docker counts what a prune reclaims as it counts image sizes: the unpacked files of the
    // layers that went. Their sizes are read before the images (and records) go.
    let mut layer_sizes: std::collections::HashMap<kiln_store::Digest, u64> = Default::default();
    for img in store.images()? {
        for l in store.layers(&img.id)? {
            if let std::collections::hash_map::Entry::Vacant(e) = layer_sizes.entry(l.blob) {
                e.insert(store.layer_size(&l)?);
            }
        }
    }
    let report = store.prune_images(scope, &keep)?;
    let reclaimed: u64 = layer_sizes
        .iter()
        .filter(|(blob, _)| !store.has_blob(blob))
        .map(|(_, size)| size)
        .sum();
    let mut out = std::io::stdout().lock();
    if !report.images.is_empty() {
        writeln!(out, "Deleted Images:")?;
        print_events(&mut out, &report.images, false)?;
        writeln!(out)?;
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        human_size_prec(reclaimed as f64, 4)
    )?;
    Ok(())
}
