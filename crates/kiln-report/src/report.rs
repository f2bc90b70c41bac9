//! What an image ships: sizes per layer, the biggest directories and files, build leftovers,
//! wasted and duplicated bytes, the build's stages when the store has its record, and a
//! comparison with another image.

use std::collections::{BTreeSet, HashMap};

use kiln_store::BuildRecord;
use serde::Serialize;

use crate::image::LoadedImage;
use crate::layer::Kind;
use crate::leftovers::{self, Leftover};
use crate::merge::{Lost, LostHow};
use crate::tree::{DirSize, SizeTree};
use crate::units::{human, percent};

/// Knobs of a report.
#[derive(Clone, Debug)]
pub struct Options {
    /// Directory levels of the size tree.
    pub depth: usize,
    /// Entries per level (and files, leftovers, wasted, duplicates listed).
    pub top: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { depth: 2, top: 10 }
    }
}

/// The image reported on.
#[derive(Clone, Debug, Serialize)]
pub struct ImageSummary {
    /// As named on the command line.
    pub name: String,
    /// Image ID.
    pub id: String,
    /// Tags pointing at it.
    pub tags: Vec<String>,
    /// docker's size (sum of the layers' unpacked sizes).
    pub size: u64,
    /// Bytes of the final filesystem (what a container starts with).
    pub content_size: u64,
    /// Files (non-directories) in the final filesystem.
    pub files: u64,
    /// Number of layers.
    pub layers: usize,
}

/// One layer.
#[derive(Clone, Debug, Serialize)]
pub struct LayerSummary {
    /// Position, base first (0-based).
    pub index: usize,
    /// Its diff-id.
    pub diff_id: String,
    /// Where it came from (when the build record says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// docker's size of the layer.
    pub size: u64,
    /// Entries it puts (files, directories, links).
    pub entries: usize,
    /// The history entry that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// A file of the final filesystem.
#[derive(Clone, Debug, Serialize)]
pub struct FileSize {
    /// The path.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// The layer that wrote it.
    pub layer: usize,
    /// Where that layer came from (when the build record says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// Wasted bytes: files later layers overwrote or deleted.
#[derive(Clone, Debug, Serialize)]
pub struct Wasted {
    /// Bytes of lost files.
    pub bytes: u64,
    /// Bytes of all layers.
    pub total: u64,
    /// `1 - bytes / total`, in percent with one decimal.
    pub efficiency: f64,
    /// Lost files, biggest first (`--top` of them).
    pub files: Vec<Lost>,
    /// How many lost files in all.
    pub count: usize,
}

/// Files with the same content at several paths of the final filesystem.
#[derive(Clone, Debug, Serialize)]
pub struct Duplicate {
    /// Their sha256.
    pub digest: String,
    /// Bytes of one copy.
    pub size: u64,
    /// The paths, sorted.
    pub paths: Vec<String>,
    /// Bytes beyond the first copy.
    pub wasted: u64,
}

/// Duplicated content.
#[derive(Clone, Debug, Serialize)]
pub struct Duplicates {
    /// Bytes beyond the first copy of each content.
    pub bytes: u64,
    /// Groups, most wasted first (`--top` of them).
    pub groups: Vec<Duplicate>,
    /// How many groups in all.
    pub count: usize,
}

/// One stage of the build that made the image.
#[derive(Clone, Debug, Serialize)]
pub struct StageSummary {
    /// Its index in the Dockerfile.
    pub index: u32,
    /// Name (`stage-N` if unnamed).
    pub name: String,
    /// Its base.
    pub base: String,
    /// Bytes of its filesystem.
    pub size: u64,
    /// Wall time of its steps.
    pub duration_ms: u64,
    /// Steps.
    pub steps: u32,
    /// Cache hits.
    pub cached_steps: u32,
    /// The image was made from it.
    pub is_final: bool,
    /// The stage it is built on (`FROM stage`), by index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_stage: Option<u32>,
    /// The stages it reads files from (`COPY --from`, `RUN --mount from=`), by index.
    pub uses: Vec<u32>,
}

/// The build record, when the image was built here.
#[derive(Clone, Debug, Serialize)]
pub struct BuildSummary {
    /// `--target`, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Whole build.
    pub duration_ms: u64,
    /// Stages in Dockerfile order.
    pub stages: Vec<StageSummary>,
    /// The biggest non-final stage: name, size, and how much smaller the image is in percent
    /// of the stage's size (negative: larger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub biggest_build_stage: Option<(String, u64, f64)>,
    /// "the image (88MB) is 77.0% smaller than its biggest build stage installer (388MB)"
    /// (or `larger than`, or `the same size as`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ship_thin: Option<String>,
}

/// How `a` compares with `b` in size: the percentage of `b` by which `a` is smaller
/// (negative: larger), and the words, "is 77.0% smaller than", "is 338.1% larger than" or
/// "is the same size as".
pub fn size_words(a: u64, b: u64) -> (f64, String) {
    let pct = if b == 0 {
        0.0
    } else {
        // `+ 0.0` turns a rounded -0.0 into 0.0.
        percent(b as f64 - a as f64, b as f64) + 0.0
    };
    let words = match a.cmp(&b) {
        std::cmp::Ordering::Less => format!("is {pct:.1}% smaller than"),
        std::cmp::Ordering::Greater if b == 0 => "is larger than".to_string(),
        std::cmp::Ordering::Greater => format!("is {:.1}% larger than", -pct),
        std::cmp::Ordering::Equal => "is the same size as".to_string(),
    };
    (pct, words)
}

/// A directory whose size accounts for the difference between two images.
#[derive(Clone, Debug, Serialize)]
pub struct DirDelta {
    /// The path.
    pub path: String,
    /// Bytes in the reported image.
    pub this: u64,
    /// Bytes in the other image.
    pub other: u64,
    /// What it looks like (a leftover kind), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// `--compare OTHER`.
#[derive(Clone, Debug, Serialize)]
pub struct Compare {
    /// The other image.
    pub other: ImageSummary,
    /// How much smaller (positive) or larger (negative) this image is, in percent of the other.
    pub reduction_percent: f64,
    /// The sentence the text report prints.
    pub sentence: String,
    /// Where the difference is, biggest first.
    pub differences: Vec<DirDelta>,
    /// Top-level directories side by side.
    pub top_dirs: Vec<DirDelta>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The image.
    pub image: ImageSummary,
    /// Its layers, base first.
    pub layers: Vec<LayerSummary>,
    /// Biggest directories, to `--depth`.
    pub directories: Vec<DirSize>,
    /// Biggest files.
    pub files: Vec<FileSize>,
    /// Bytes of the final filesystem by where they came from (base, stage, context), biggest
    /// first; empty when the image has no build record naming its layers' origins.
    pub shipped_from: Vec<crate::origin::OriginBytes>,
    /// Likely build leftovers, biggest first.
    pub leftovers: Vec<Leftover>,
    /// Wasted bytes.
    pub wasted: Wasted,
    /// Duplicated content.
    pub duplicates: Duplicates,
    /// The build, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildSummary>,
    /// `--compare`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<Compare>,
}

fn summary(img: &LoadedImage, tree: &SizeTree) -> ImageSummary {
    ImageSummary {
        name: img.name.clone(),
        id: img.record.id.to_string(),
        tags: img.record.tags.clone(),
        size: img.size(),
        content_size: tree.total(),
        files: img
            .merged
            .files
            .values()
            .filter(|n| n.meta.kind != Kind::Dir)
            .count() as u64,
        layers: img.layers.len(),
    }
}

/// The report of `img`, with `build` when the store has its record and `other` for `--compare`.
pub fn report(
    img: &LoadedImage,
    build: Option<&BuildRecord>,
    other: Option<&LoadedImage>,
    opts: &Options,
) -> Report {
    let tree = SizeTree::of(&img.merged);
    let history = img.layer_history();
    let labels = crate::origin::layer_labels(build, img.layers.len());
    let origin_of = |layer: usize| labels.as_ref().map(|l| l[layer].clone());
    let layers = img
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| LayerSummary {
            index: i,
            diff_id: img.diff_ids[i].to_string(),
            origin: origin_of(i),
            size: l.size,
            entries: l
                .changes
                .iter()
                .filter(|c| matches!(c, crate::layer::Change::Put(..)))
                .count(),
            created_by: history[i].clone(),
        })
        .collect();

    let mut files: Vec<FileSize> = img
        .merged
        .files
        .iter()
        .filter(|(_, n)| n.meta.kind == Kind::File && !n.meta.hardlink)
        .map(|(p, n)| FileSize {
            path: p.clone(),
            size: n.meta.size,
            layer: n.layer,
            origin: origin_of(n.layer),
        })
        .collect();
    files.sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path)));
    files.truncate(opts.top);

    let total: u64 = img.size();
    let mut lost: Vec<Lost> = img
        .merged
        .lost
        .iter()
        .filter(|l| l.size > 0)
        .cloned()
        .collect();
    let wasted_bytes: u64 = lost.iter().map(|l| l.size).sum();
    lost.sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path)));
    let count = lost.len();
    lost.truncate(opts.top);
    let wasted = Wasted {
        bytes: wasted_bytes,
        total,
        efficiency: 100.0 - percent(wasted_bytes as f64, total as f64),
        files: lost,
        count,
    };

    let mut by_digest: HashMap<kiln_image::Digest, (u64, Vec<String>)> = HashMap::new();
    for (p, n) in &img.merged.files {
        if n.meta.kind == Kind::File
            && !n.meta.hardlink
            && n.meta.size > 0
            && let Some(d) = n.meta.digest
        {
            let e = by_digest.entry(d).or_insert((n.meta.size, Vec::new()));
            e.1.push(p.clone());
        }
    }
    let mut groups: Vec<Duplicate> = by_digest
        .into_iter()
        .filter(|(_, (_, paths))| paths.len() > 1)
        .map(|(digest, (size, paths))| Duplicate {
            digest: digest.to_string(),
            size,
            wasted: size * (paths.len() as u64 - 1),
            paths,
        })
        .collect();
    groups.sort_by(|a, b| b.wasted.cmp(&a.wasted).then(a.paths.cmp(&b.paths)));
    let dup_bytes = groups.iter().map(|g| g.wasted).sum();
    let dup_count = groups.len();
    groups.truncate(opts.top);

    let this_summary = summary(img, &tree);
    let build = build.map(|b| build_summary(b, this_summary.size));
    let compare = other.map(|o| compare(img, &tree, o, opts));
    let mut directories = tree.rollup(opts.depth, opts.top);
    let shipped_from = match &labels {
        Some(l) => {
            fill_origins(&mut directories, &img.merged, l);
            crate::origin::of_image(&img.merged, l)
        }
        None => Vec::new(),
    };
    Report {
        image: this_summary,
        layers,
        directories,
        files,
        shipped_from,
        leftovers: leftovers::find(&img.merged),
        wasted,
        duplicates: Duplicates {
            bytes: dup_bytes,
            groups,
            count: dup_count,
        },
        build,
        compare,
    }
}

/// The origins of every directory of a rollup.
fn fill_origins(dirs: &mut [DirSize], m: &crate::merge::Merged, labels: &[String]) {
    for d in dirs {
        d.origins = crate::origin::under(m, &d.path, labels);
        fill_origins(&mut d.children, m, labels);
    }
}

fn build_summary(b: &BuildRecord, image_size: u64) -> BuildSummary {
    let stages: Vec<StageSummary> = b
        .stages
        .iter()
        .map(|s| StageSummary {
            index: s.index,
            name: s.label(),
            base: s.base.clone(),
            size: s.size,
            duration_ms: s.duration_ms,
            steps: s.steps,
            cached_steps: s.cached_steps,
            is_final: s.is_final,
            base_stage: s.base_stage,
            uses: s.uses.clone(),
        })
        .collect();
    let biggest = stages
        .iter()
        .filter(|s| !s.is_final)
        .max_by_key(|s| s.size)
        .map(|s| (s.name.clone(), s.size, size_words(image_size, s.size)));
    let ship_thin = biggest.as_ref().map(|(name, size, (_, words))| {
        format!(
            "the image ({}) {words} its biggest build stage {name} ({})",
            human(image_size),
            human(*size)
        )
    });
    BuildSummary {
        target: b.target.clone(),
        duration_ms: b.duration_ms,
        stages,
        biggest_build_stage: biggest.map(|(name, size, (pct, _))| (name, size, pct)),
        ship_thin,
    }
}

fn label_of(path: &str) -> Option<String> {
    leftovers::classify(path).map(|(k, _, note)| {
        if k == leftovers::LeftoverKind::Toolchain {
            note
        } else {
            k.word().to_string()
        }
    })
}

/// Directories under `dir` whose difference (other − this) explains most of `dir`'s: descends
/// while a few children hold 90% of it.
fn explain(a: &SizeTree, b: &SizeTree, dir: &str, min: u64, depth: usize, out: &mut Vec<DirDelta>) {
    let names: BTreeSet<String> = a.children(dir).into_iter().chain(b.children(dir)).collect();
    for name in names {
        let p = crate::layer::join(dir, &name);
        let (x, y) = (a.size(&p), b.size(&p));
        let d = x.abs_diff(y);
        if d < min || d == 0 {
            continue;
        }
        let mut sub = Vec::new();
        if depth > 0 && label_of(&p).is_none() {
            explain(a, b, &p, (d / 10).max(min), depth - 1, &mut sub);
        }
        let covered: u64 = sub.iter().map(|s| s.this.abs_diff(s.other)).sum();
        if !sub.is_empty() && sub.len() <= 3 && covered * 10 >= d * 9 {
            out.extend(sub);
        } else {
            out.push(DirDelta {
                label: label_of(&p),
                path: p,
                this: x,
                other: y,
            });
        }
    }
}

fn compare(img: &LoadedImage, tree: &SizeTree, other: &LoadedImage, opts: &Options) -> Compare {
    let otree = SizeTree::of(&other.merged);
    let osum = summary(other, &otree);
    let (reduction, words) = size_words(img.size(), osum.size);
    let sentence = format!("{} {words} {}", img.name, other.name);
    let total_delta = tree.total().abs_diff(otree.total());
    let mut differences = Vec::new();
    explain(
        tree,
        &otree,
        "/",
        (total_delta / 100).max(1),
        8,
        &mut differences,
    );
    differences.sort_by(|x, y| {
        y.this
            .abs_diff(y.other)
            .cmp(&x.this.abs_diff(x.other))
            .then(x.path.cmp(&y.path))
    });
    differences.truncate(opts.top);
    let names: BTreeSet<String> = tree
        .children("/")
        .into_iter()
        .chain(otree.children("/"))
        .collect();
    let mut top_dirs: Vec<DirDelta> = names
        .into_iter()
        .map(|n| {
            let p = format!("/{n}");
            DirDelta {
                this: tree.size(&p),
                other: otree.size(&p),
                label: None,
                path: p,
            }
        })
        .collect();
    top_dirs.sort_by(|x, y| {
        y.this
            .max(y.other)
            .cmp(&x.this.max(x.other))
            .then(x.path.cmp(&y.path))
    });
    top_dirs.truncate(opts.top);
    Compare {
        other: osum,
        reduction_percent: reduction,
        sentence,
        differences,
        top_dirs,
    }
}

/// How a lost file was lost, in words.
pub fn lost_words(l: &Lost) -> String {
    let how = match (l.how, l.same_content) {
        (LostHow::Deleted, _) => "deleted",
        (LostHow::Overwritten, true) => "copied up (metadata change)",
        (LostHow::Overwritten, false) => "overwritten",
    };
    format!("layer {} → {how} in layer {}", l.layer, l.by_layer)
}

#[cfg(test)]
mod tests {
    use super::size_words;

    #[test]
    fn size_words_say_smaller_larger_or_the_same() {
        assert_eq!(
            size_words(23, 100),
            (77.0, "is 77.0% smaller than".to_string())
        );
        // Larger: the percentage of the other's size, never a clamped "0.0% smaller".
        assert_eq!(
            size_words(438_100, 100_000),
            (-338.1, "is 338.1% larger than".to_string())
        );
        assert_eq!(size_words(5, 5), (0.0, "is the same size as".to_string()));
        assert_eq!(size_words(5, 0).1, "is larger than");
    }
}
