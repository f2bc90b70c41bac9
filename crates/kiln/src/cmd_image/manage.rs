//! `load`, `save`, `tag`, `rmi`, `image prune`.

use std::io::{IsTerminal, Write};

use anyhow::{Context, bail};
use kiln_image::{ImageRef, Platform};
use kiln_store::{ImageRecord, IndexRecord, PruneScope, RemoveEvent, SaveFormat, Store};
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

/// What `save` writes: images and multi-platform images (indexes), each with the names to
/// record for it.
#[derive(Default)]
struct Selection {
    images: Vec<(ImageRecord, Vec<ImageRef>)>,
    indexes: Vec<(IndexRecord, Vec<ImageRef>)>,
}

impl Selection {
    fn add_image(&mut self, img: ImageRecord, tag: Option<ImageRef>) {
        match self.images.iter_mut().find(|(i, _)| i.id == img.id) {
            Some(e) => {
                if let Some(t) = tag
                    && !e.1.contains(&t)
                {
                    e.1.push(t);
                }
            }
            None => self.images.push((img, tag.into_iter().collect())),
        }
    }

    fn add_index(&mut self, ix: IndexRecord, tag: Option<ImageRef>) {
        match self.indexes.iter_mut().find(|(i, _)| i.digest == ix.digest) {
            Some(e) => {
                if let Some(t) = tag
                    && !e.1.contains(&t)
                {
                    e.1.push(t);
                }
            }
            None => self.indexes.push((ix, tag.into_iter().collect())),
        }
    }

    /// A multi-platform image where an archive needs one platform: `platform`'s image, else
    /// (docker-archive) the host's.
    fn add(
        &mut self,
        ix: IndexRecord,
        tag: Option<ImageRef>,
        platform: Option<&Platform>,
        format: SaveFormat,
    ) -> anyhow::Result<()> {
        let want = match (platform, format) {
            (Some(p), _) => p.clone(),
            (None, SaveFormat::Oci) => {
                self.add_index(ix, tag);
                return Ok(());
            }
            (None, SaveFormat::Docker) => Platform::host(),
        };
        let Some(e) = ix.pick(&want) else {
            let has = ix
                .platforms()
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let name = tag
                .map(|t| t.familiar())
                .unwrap_or_else(|| ix.digest.to_string());
            if platform.is_some() {
                bail!(
                    "no matching manifest for {want} in the manifest list entries of {name} (it has: {has})"
                );
            }
            bail!(
                "{name} is a multi-platform image without this machine's platform {want} \
                 (it has: {has}); a docker-archive holds one platform per image: choose one \
                 with --platform, or save every platform with --format oci"
            );
        };
        self.add_image(e.image.clone(), tag);
        Ok(())
    }
}

/// The images and names `save` writes: a name without a tag means every tag of that
/// repository (as docker does); an ID means the image without names. With `platform`, each
/// multi-platform image is written as that platform's image (and a single image must be of
/// that platform).
fn save_selection(
    store: &Store,
    names: &[String],
    platform: Option<&Platform>,
    format: SaveFormat,
) -> anyhow::Result<Selection> {
    let mut out = Selection::default();
    let single = |img: ImageRecord, name: &str| -> anyhow::Result<ImageRecord> {
        match platform {
            Some(p) if !p.matches(&img.platform()) => Err(kiln_store::Error::PlatformMismatch {
                reference: name.to_string(),
                wanted: p.clone().normalize(),
                actual: img.platform(),
            }
            .into()),
            _ => Ok(img),
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
                        let img = single(img.clone(), &r.familiar())?;
                        out.add_image(img, Some(r));
                        found = true;
                    }
                }
            }
            for ix in store.indexes()? {
                for t in ix.tags.clone() {
                    if let Ok(r) = ImageRef::parse_named(&t)
                        && r.name() == repo
                    {
                        out.add(ix.clone(), Some(r), platform, format)?;
                        found = true;
                    }
                }
            }
            if found {
                continue;
            }
        }
        if let Some(ix) = store.resolve_index(name)? {
            let tag = ImageRef::parse(name)
                .ok()
                .filter(|r| ix.tags.contains(&r.to_string()));
            out.add(ix, tag, platform, format)?;
            continue;
        }
        let img = single(store.resolve_image(name)?, name)?;
        let tag = ImageRef::parse(name)
            .ok()
            .filter(|r| img.tags.contains(&r.to_string()));
        out.add_image(img, tag);
    }
    Ok(out)
}

pub(crate) fn save(store: &Store, a: SaveArgs) -> anyhow::Result<()> {
    let format = match a.format {
        ArchiveKind::Docker => SaveFormat::Docker,
        ArchiveKind::Oci => SaveFormat::Oci,
    };
    let sel = save_selection(store, &a.images, a.platform.as_ref(), format)?;
    match &a.output {
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            store
                .save_with_indexes(&sel.images, &sel.indexes, format, w)?
                .flush()?;
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
            store
                .save_with_indexes(&sel.images, &sel.indexes, format, w)?
                .flush()?;
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
    // A multi-platform image: the new tag names the index too.
    match store.resolve_index(&a.source)? {
        Some(ix) => store.tag_index(&ix.digest, &a.target)?,
        None => store.tag(&img.id, &a.target)?,
    };
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
