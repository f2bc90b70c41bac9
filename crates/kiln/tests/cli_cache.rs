//! Image sizes and the build cache, end to end on real builds (as root): `images` SIZE and
//! `inspect .Size` as docker 20.10 reports them for the same image ID (compared live with
//! /usr/bin/docker), `system df` (summary, `--format`, `-v`), `builder prune` (dangling
//! cache only without `-a`, cache mounts, filters, `--keep-storage`, prompts) and
//! `builder du`.

mod support;
use support::*;

use kiln_test::docker::Docker;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(c: &Ctx, args: &[&str]) -> String {
    let o = c.kiln(args);
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "kiln {args:?} failed ({:?}):\n{out}\n{err}",
        o.status.code()
    );
    out
}

/// kiln with `input` on its standard input (for the prompts).
fn with_stdin(c: &Ctx, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .env("KILN_ROOT", &c.root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn docker(args: &[&str]) -> Output {
    Command::new("/usr/bin/docker")
        .args(args)
        .output()
        .expect("running /usr/bin/docker")
}

/// docker's size of a directory tree, computed here independently: every non-directory's
/// lstat size, a hard-linked inode once (what moby's `directory.Size` sums).
fn tree_size(dir: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if m.len() > 0 && seen.insert(m.ino()) {
            total += m.len();
        }
    }
    total
}

/// The Build Cache row of `system df --format '{{json .}}'`.
fn df_build_cache(c: &Ctx) -> serde_json::Value {
    let out = ok(c, &["system", "df", "--format", "{{json .}}"]);
    out.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["Type"] == "Build Cache")
        .expect("a Build Cache row")
}

fn reclaimed(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap_or_else(|| panic!("no total in {out:?}"))
        .to_string()
}

/// Deleted IDs listed by `builder prune`.
fn deleted(out: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| !l.ends_with("Deleted build cache objects:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `system df -v` build cache rows: (CACHE ID, CACHE TYPE, SHARED).
fn df_rows(c: &Ctx) -> Vec<(String, String, String)> {
    let out = ok(c, &["system", "df", "-v"]);
    out.lines()
        .skip_while(|l| !l.starts_with("CACHE ID"))
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_string(),
                f[1].to_string(),
                f.last().unwrap().to_string(),
            )
        })
        .collect()
}

const LAYERED: &str = "FROM localhost/busybox\n\
    RUN mkdir /d && echo hello > /d/a && ln /d/a /d/b && ln -s /d/a /d/c \
    && dd if=/dev/zero of=/d/big bs=1k count=300 2>/dev/null\n\
    RUN rm /d/big && echo more > /d/e\n";

#[test]
fn sizes_are_dockers_for_the_same_image_id() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", LAYERED);
    let tag = format!("kiln-sizes-test/{}:1", std::process::id());
    c.build_ok(&["-t", &tag]);
    let kiln_size = ok(
        &c,
        &["inspect", "-f", "{{.Size}} {{.VirtualSize}} {{.Id}}", &tag],
    );
    let kiln_images = ok(&c, &["images", "--format", "{{.Size}}", &tag]);
    let kiln_history = ok(&c, &["history", "-H=false", "--format", "{{.Size}}", &tag]);

    // The running dockerd, or one started (and stopped) here.
    let _engine = Docker::engine();
    let archive = c.tmp.path().join("img.tar");
    ok(&c, &["save", "-o", archive.to_str().unwrap(), &tag]);
    let load = docker(&["load", "-i", archive.to_str().unwrap()]);
    assert!(load.status.success(), "{}", text(&load).1);
    let d_inspect = docker(&[
        "image",
        "inspect",
        "-f",
        "{{.Size}} {{.VirtualSize}} {{.Id}}",
        &tag,
    ]);
    let d_images = docker(&["images", "--format", "{{.Size}}", &tag]);
    let d_history = docker(&["history", "-H=false", "--format", "{{.Size}}", &tag]);
    let _ = docker(&["rmi", &tag]);
    assert_eq!(
        kiln_size,
        text(&d_inspect).0,
        "inspect .Size (same image ID)"
    );
    assert_eq!(kiln_images, text(&d_images).0, "images SIZE");
    assert_eq!(kiln_history, text(&d_history).0, "history SIZE per layer");
}

#[test]
fn size_counts_unpacked_files_with_hard_links_once() {
    require_root();
    let c = Ctx::new();
    // The base is one layer: its size is the unpacked tree's.
    c.file("Dockerfile", "FROM localhost/busybox\n");
    let rootfs = c.export(&[]);
    let base = ok(&c, &["inspect", "-f", "{{.Size}}", "localhost/busybox"]);
    assert_eq!(base.trim(), tree_size(&rootfs).to_string());

    c.file("Dockerfile", LAYERED);
    c.build_ok(&["-t", "layered"]);
    let sizes = ok(
        &c,
        &["history", "-H=false", "--format", "{{.Size}}", "layered"],
    );
    let sizes: Vec<u64> = sizes.lines().map(|l| l.parse().unwrap()).collect();
    // Newest first: "more\n" (the removed file counts nothing in the layer that removes
    // it), then "hello\n" once for both links + "/d/a" for the symlink + 300 KiB, then base.
    assert_eq!(sizes[0], 5);
    assert_eq!(sizes[1], 6 + 4 + 300 * 1024);
    assert_eq!(sizes[2].to_string(), base.trim());
    let total: u64 = sizes.iter().sum();
    let inspect = ok(&c, &["inspect", "-f", "{{.Size}}", "layered"]);
    assert_eq!(inspect.trim(), total.to_string());
    let listed = ok(&c, &["images", "--format", "{{.Size}}", "layered"]);
    // Three significant digits, decimal units: two decimals between 1 and 10 MB.
    assert!((1_000_000..10_000_000).contains(&total));
    assert_eq!(listed.trim(), format!("{:.2}MB", total as f64 / 1e6));
}

#[test]
fn inspect_has_dockers_keys_and_prints_nil_maps_as_go_does() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", "FROM localhost/busybox\nLABEL a=1\n");
    c.build_ok(&["-t", "labelled"]);
    let json = ok(&c, &["image", "inspect", "localhost/busybox"]);
    let keys: Vec<&str> = json
        .lines()
        .filter(|l| l.starts_with("        \"") && !l.starts_with("         "))
        .map(|l| l.trim().split('"').nth(1).unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "Id",
            "RepoTags",
            "RepoDigests",
            "Parent",
            "Comment",
            "Created",
            "Container",
            "ContainerConfig",
            "DockerVersion",
            "Author",
            "Config",
            "Architecture",
            "Os",
            "Size",
            "VirtualSize",
            "GraphDriver",
            "RootFS",
            "Metadata"
        ],
        "{json}"
    );
    let t = "{{.Config.Labels}}|{{json .Config.Labels}}|{{.ContainerConfig.Labels}}|{{.Config.Volumes}}|{{len .Config.Labels}}";
    assert_eq!(
        ok(&c, &["inspect", "-f", t, "localhost/busybox"]),
        "map[]|null|map[]|map[]|0\n"
    );
    assert_eq!(
        ok(
            &c,
            &[
                "inspect",
                "-f",
                "{{.Config.Labels}} {{json .Config.Labels}}",
                "labelled"
            ]
        ),
        "map[a:1] {\"a\":\"1\"}\n"
    );
    assert_eq!(
        ok(
            &c,
            &[
                "inspect", "--type", "image", "-s", "-f", "{{.Os}}", "labelled"
            ]
        ),
        "linux\n"
    );
    let o = c.kiln(&["inspect", "--type", "container", "labelled"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o).1, "Error: No such container: labelled\n");
    let o = c.kiln(&["inspect", "--type", "volume", "labelled"]);
    assert!(!o.status.success());
    assert!(
        text(&o)
            .1
            .contains("\"volume\" is not a valid value for --type"),
        "{}",
        text(&o).1
    );
}

#[test]
fn rmi_of_a_parent_needs_force_and_children_survive() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", "FROM localhost/busybox\nRUN echo p > /p\n");
    let parent = c.image_id(&["-t", "parent:1"]);
    c.file("Dockerfile", "FROM parent:1\nRUN echo c > /c\n");
    c.build_ok(&["-t", "child:1"]);
    let short = &parent.trim_start_matches("sha256:")[..12];
    let o = c.kiln(&["rmi", &parent]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o).1,
        format!(
            "Error: conflict: unable to delete {short} (must be forced) - image has dependent child images\n"
        )
    );
    // By name, docker only untags an image that has children.
    assert_eq!(ok(&c, &["rmi", "parent:1"]), "Untagged: parent:1\n");
    assert!(ok(&c, &["images", "-a", "-q"]).contains(short));
    // Now an intermediate image, as docker lists them: only with -a, never dangling, so
    // `images -f dangling=true -q | xargs rmi` finds nothing to refuse.
    assert!(!ok(&c, &["images", "-q"]).contains(short));
    assert_eq!(ok(&c, &["images", "-q", "-f", "dangling=true"]), "");
    // A REPOSITORY pattern matches as --filter reference= does.
    assert!(ok(&c, &["images", "chi*"]).contains("child"));
    assert_eq!(ok(&c, &["images", "-q", "nomatch*"]), "");
    let out = ok(&c, &["rmi", "-f", &parent]);
    assert!(out.starts_with(&format!("Deleted: {parent}")), "{out}");
    assert!(!ok(&c, &["images", "-a", "-q"]).contains(short));
    // The child keeps its layers: it still builds on.
    c.file("Dockerfile", "FROM child:1\nRUN cat /p /c\n");
    c.build_ok(&[]);
}

#[test]
fn image_prune_prompts_on_stdout_and_totals_like_docker() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", "FROM localhost/busybox\nRUN echo 1 > /f\n");
    c.build_ok(&["-t", "p:1"]);
    c.file("Dockerfile", "FROM localhost/busybox\nRUN echo 2 > /f\n");
    c.build_ok(&["-t", "p:1"]);
    let o = with_stdin(&c, &["image", "prune"], "n\n");
    assert!(o.status.success());
    assert_eq!(
        text(&o).0,
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] Total reclaimed space: 0B\n"
    );
    let dangling = ok(
        &c,
        &["images", "-q", "--no-trunc", "--filter", "dangling=true"],
    );
    assert_eq!(dangling.lines().count(), 1);
    let o = with_stdin(&c, &["image", "prune"], "y\n");
    let (out, _) = text(&o);
    assert!(
        out.contains(&format!("Deleted Images:\ndeleted: {}\n", dangling.trim())),
        "{out}"
    );
    assert!(reclaimed(&out) != "0B", "{out}");
    // -a prompts as docker does, and says nothing more (a removed base is pulled back).
    let o = with_stdin(&c, &["image", "prune", "-a"], "n\n");
    let (out, err) = text(&o);
    assert!(out.starts_with(
        "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue? [y/N] "
    ));
    assert!(err.is_empty(), "{err}");
    assert!(
        ok(&c, &["images", "-q"]).lines().count() >= 2,
        "declined: nothing removed"
    );
}

const MULTISTAGE: &str = "FROM localhost/busybox AS builder\n\
    RUN --mount=type=cache,target=/cache dd if=/dev/zero of=/cache/blob bs=1k count=64 2>/dev/null && echo built > /out\n\
    RUN dd if=/dev/zero of=/scratch bs=1k count=200 2>/dev/null\n\
    FROM localhost/busybox\n\
    COPY --from=builder /out /out\n\
    RUN echo final > /final\n";

#[test]
fn df_build_cache_is_what_prune_all_frees() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", MULTISTAGE);
    c.build_ok(&["-t", "ms:1"]);
    let row = df_build_cache(&c);
    assert_ne!(row["Size"], "0B", "{row}");
    let listed = df_rows(&c);
    assert_eq!(row["TotalCount"], listed.len().to_string());
    assert!(
        listed.iter().any(|r| r.1 == "exec.cachemount"),
        "{listed:?}"
    );
    // The summary table: docker's columns.
    let table = ok(&c, &["system", "df"]);
    assert!(table.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"));
    let out = ok(&c, &["builder", "prune", "-a", "-f"]);
    assert_eq!(reclaimed(&out), row["Size"].as_str().unwrap(), "{out}");
    assert_eq!(deleted(&out).len(), listed.len(), "{out}");
    let after = df_build_cache(&c);
    assert_eq!(
        (after["TotalCount"].as_str(), after["Size"].as_str()),
        (Some("0"), Some("0B"))
    );
    let left = |dir: &str| -> Vec<String> {
        std::fs::read_dir(c.root.join(dir))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        left("cache-mounts-v1").is_empty(),
        "{:?}",
        left("cache-mounts-v1")
    );
    // What stays in snapshots-v1 is an image's own unpacked layers (the base the build ran
    // on), as docker's `builder prune -a` leaves images' layers alone.
    let image_layers = image_layer_snapshot_dirs(&c, &["localhost/busybox", "ms:1"]);
    let snaps = left("snapshots-v1");
    assert!(
        !snaps.is_empty(),
        "the base image's unpacked layer was collected"
    );
    for s in &snaps {
        assert!(
            image_layers.contains(s),
            "snapshots-v1 still holds {s} (not an image layer)"
        );
    }
    // The images are untouched.
    assert!(ok(&c, &["images", "--format", "{{.Repository}}"]).contains("ms"));
}

/// The snapshots-v1 directory names of the `layer:<chain ID>` snapshots of `images`' layers
/// (kiln-store names a snapshot's directory by the first 32 hex digits of its key's sha256).
fn image_layer_snapshot_dirs(c: &Ctx, images: &[&str]) -> Vec<String> {
    let mut dirs = Vec::new();
    for img in images {
        let json = ok(c, &["inspect", "--format", "{{json .RootFS.Layers}}", img]);
        let diffs: Vec<kiln_image::Digest> = serde_json::from_str::<Vec<String>>(json.trim())
            .unwrap()
            .iter()
            .map(|d| d.parse().unwrap())
            .collect();
        for chain in kiln_store::chain_ids(&diffs) {
            let key = kiln_store::layer_snapshot_key(&chain);
            dirs.push(kiln_image::Digest::of(key.as_bytes()).hex()[..32].to_string());
        }
    }
    dirs
}

#[test]
fn prune_without_all_removes_only_dangling_cache_and_cache_mounts() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", MULTISTAGE);
    c.build_ok(&["-t", "ms:1"]);
    let before = df_rows(&c);
    let o = with_stdin(&c, &["builder", "prune"], "n\n");
    assert_eq!(
        text(&o).0,
        "WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] Total reclaimed space: 0B\n"
    );
    assert_eq!(df_rows(&c), before, "declined: nothing removed");
    let o = with_stdin(&c, &["builder", "prune"], "y\n");
    let (out, _) = text(&o);
    let gone: Vec<String> = deleted(&out)
        .iter()
        .map(|id| id.rsplit(':').next().unwrap()[..12].to_string())
        .collect();
    for (id, kind, shared) in &before {
        let removed = gone.contains(id);
        match (kind.as_str(), shared.as_str()) {
            ("exec.cachemount", _) => assert!(removed, "cache mount {id} stays: {out}"),
            (_, "true") => assert!(!removed, "{id} is used by an image: {out}"),
            ("internal", _) => assert!(!removed, "internal {id} needs -a: {out}"),
            _ => assert!(removed, "dangling {id} stays: {out}"),
        }
    }
    assert!(
        gone.len() >= 3,
        "the builder stage's steps and the cache mount: {out}"
    );
    // What images use stays cached: the final stage's steps are CACHED on a rebuild.
    let err = c.build_ok(&["-t", "ms:1"]);
    assert!(
        err.contains("CACHED [stage-1 3/3]") || err.contains("CACHED"),
        "{err}"
    );
}

#[test]
fn prune_filters_and_keep_storage() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", MULTISTAGE);
    c.build_ok(&["-t", "ms:1"]);
    let rows = df_rows(&c);
    // until=: everything is younger than an hour.
    let out = ok(
        &c,
        &["builder", "prune", "-a", "-f", "--filter", "until=1h"],
    );
    assert_eq!(out, "Total reclaimed space: 0B\n");
    // --keep-storage above the total removes nothing.
    let out = ok(
        &c,
        &["builder", "prune", "-a", "-f", "--keep-storage", "1GB"],
    );
    assert_eq!(out, "Total reclaimed space: 0B\n");
    // type=: only the cache mount.
    let out = ok(
        &c,
        &["builder", "prune", "-f", "--filter", "type=exec.cachemount"],
    );
    assert_eq!(deleted(&out).len(), 1, "{out}");
    assert_eq!(
        reclaimed(&out),
        "65.54kB",
        "64 KiB written to the cache mount: {out}"
    );
    assert!(
        std::fs::read_dir(c.root.join("cache-mounts-v1"))
            .unwrap()
            .next()
            .is_none()
    );
    // id=: one record, by the ID `df -v` shows.
    let (id, _, _) = rows
        .iter()
        .find(|r| r.1 == "regular" && r.2 == "true")
        .expect("a shared record");
    let out = ok(
        &c,
        &[
            "builder",
            "prune",
            "-a",
            "-f",
            "--filter",
            &format!("id={id}"),
        ],
    );
    assert_eq!(deleted(&out).len(), 1, "{out}");
    assert!(deleted(&out)[0].contains(id.as_str()));
    assert!(!df_rows(&c).iter().any(|r| &r.0 == id));
    // --keep-storage 0 with -a: nothing left.
    ok(&c, &["builder", "prune", "-a", "-f", "--keep-storage", "0"]);
    assert_eq!(df_build_cache(&c)["Size"], "0B");
    // Bad filters are refused.
    for bad in ["type=bogus", "label=x", "until=soon", "nokey"] {
        let o = c.kiln(&["builder", "prune", "-f", "--filter", bad]);
        assert_eq!(o.status.code(), Some(1), "{bad}");
        assert!(text(&o).1.starts_with("Error: "), "{bad}: {}", text(&o).1);
    }
    // A bad size is docker's usage error: exit 125, no `Error:` prefix.
    let o = c.kiln(&["builder", "prune", "-f", "--keep-storage", "lots"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        text(&o)
            .1
            .starts_with("invalid argument \"lots\" for \"--keep-storage\" flag: "),
        "{}",
        text(&o).1
    );
}

#[test]
fn df_verbose_and_builder_du_list_the_records() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", MULTISTAGE);
    c.build_ok(&["-t", "ms:1"]);
    c.build_ok(&["-t", "ms:1"]);
    let out = ok(&c, &["system", "df", "-v"]);
    let header = out
        .lines()
        .find(|l| l.starts_with("CACHE ID"))
        .expect("build cache table");
    let cols: Vec<&str> = header
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        cols,
        [
            "CACHE ID",
            "CACHE TYPE",
            "SIZE",
            "CREATED",
            "LAST USED",
            "USAGE",
            "SHARED"
        ]
    );
    assert!(out.contains("Build cache usage: "));
    // The rebuild used the cached steps: they count a use.
    assert!(
        out.lines()
            .any(|l| l.contains("regular") && l.contains(" ago ") && l.contains(" 1 ")),
        "{out}"
    );
    let rows = df_rows(&c);
    let du = ok(&c, &["builder", "du"]);
    let mut lines = du.lines();
    let head: Vec<&str> = lines
        .next()
        .unwrap()
        .split('\t')
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(head, ["ID", "RECLAIMABLE", "SIZE", "LAST ACCESSED"]);
    let records: Vec<&str> = du.lines().skip(1).take(rows.len()).collect();
    for (id, _, _) in &rows {
        assert!(
            records.iter().any(|r| r.contains(id.as_str())),
            "{id} in {du}"
        );
    }
    assert!(du.contains("\nReclaimable:\t"), "{du}");
    assert!(du.contains("\nTotal:\t\t"), "{du}");
    let verbose = ok(&c, &["builder", "du", "--verbose"]);
    assert_eq!(
        verbose.matches("\nType:\t\t").count() + usize::from(verbose.starts_with("Type")),
        rows.len()
    );
    assert!(verbose.contains("Type:\t\texec.cachemount"), "{verbose}");
    let filtered = ok(&c, &["builder", "du", "--filter", "type=exec.cachemount"]);
    assert_eq!(filtered.lines().count(), 2, "{filtered}");
    // --format on the summary; refused with -v.
    let t = ok(
        &c,
        &["system", "df", "--format", "{{.Type}}={{.TotalCount}}"],
    );
    assert!(t.contains(&format!("Build Cache={}", rows.len())), "{t}");
    let o = c.kiln(&["system", "df", "-v", "--format", "{{.Type}}"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn help_texts_use_dockers_flag_names() {
    let help = |args: &[&str]| {
        let o = Command::new(bin())
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(help(&["history"]).contains("-H, --human[=<true|false>]"));
    let prune = help(&["builder", "prune"]);
    for want in [
        "-a, --all",
        "Remove all unused build cache, not just dangling ones",
        "--filter <filter>",
        "--keep-storage <bytes>",
        "Amount of disk space to keep for cache",
    ] {
        assert!(prune.contains(want), "{want} in {prune}");
    }
    let inspect = help(&["inspect"]);
    assert!(
        inspect.contains("--type <string>") && inspect.contains("-s, --size"),
        "{inspect}"
    );
    let df = help(&["system", "df"]);
    assert!(
        df.contains("--format <string>") && df.contains("-v, --verbose"),
        "{df}"
    );
    assert!(help(&["images"]).contains("-f, --filter <filter>"));
}

#[test]
fn debian_sizes_match_docker_with_hard_links_and_whiteouts() {
    require_root();
    let c = Ctx::new();
    let archive = c.tmp.path().join("debian.tar");
    let tag = format!("kiln-sizes-test/debian-{}:1", std::process::id());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-debian-image.sh");
    let st = Command::new("bash")
        .arg(&script)
        .arg(&archive)
        .arg(&tag)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "make-debian-image.sh failed (needs debootstrap and the Debian mirror): {}",
        String::from_utf8_lossy(&st.stderr)
    );
    ok(&c, &["load", "-q", "-i", archive.to_str().unwrap()]);
    // Hard links, a symlink, and a directory removed (whiteouts) on top.
    c.file(
        "Dockerfile",
        &format!(
            "FROM {tag}\nRUN cp -a /usr/lib/os-release /opt/o && ln /opt/o /opt/hl \
             && rm -rf /usr/share/doc && ln -s /x/y/z /opt/s\n"
        ),
    );
    let child = format!("{tag}-child");
    c.build_ok(&["-t", &child]);
    let fmt = "{{.Id}} {{.Size}} {{.VirtualSize}}";
    let kiln_size = ok(&c, &["inspect", "-f", fmt, &child]);
    let saved = c.tmp.path().join("child.tar");
    ok(&c, &["save", "-o", saved.to_str().unwrap(), &child]);
    let _engine = Docker::engine();
    let load = docker(&["load", "-i", saved.to_str().unwrap()]);
    assert!(load.status.success(), "docker load: {}", text(&load).1);
    let docker_size = text(&docker(&["image", "inspect", "-f", fmt, &child])).0;
    let d_history = text(&docker(&[
        "history",
        "-H=false",
        "--format",
        "{{.Size}}",
        &child,
    ]))
    .0;
    let _ = docker(&["rmi", &child]);
    assert_eq!(kiln_size, docker_size, "the child image, same ID");
    assert_eq!(
        ok(
            &c,
            &["history", "-H=false", "--format", "{{.Size}}", &child]
        ),
        d_history,
        "per layer, the base's included"
    );
}

#[test]
fn errors_use_dockers_wording() {
    require_root();
    let c = Ctx::new();
    for (args, want) in [
        (
            &["history", "nosuch"][..],
            "Error: No such image: nosuch:latest\n",
        ),
        (
            &["tag", "nosuch", "x"][..],
            "Error: No such image: nosuch:latest\n",
        ),
        (
            &["inspect", "nosuch"][..],
            "Error: No such object: nosuch\n",
        ),
        (
            &["image", "inspect", "nosuch"][..],
            "Error: No such image: nosuch\n",
        ),
        (
            &["images", "--filter", "bogus=1"][..],
            "Error: Invalid filter 'bogus'\n",
        ),
        (
            &["image", "prune", "-f", "--filter", "bogus=1"][..],
            "Error: Invalid filter 'bogus'\n",
        ),
        (
            &["builder", "prune", "-f", "--filter", "bogus=1"][..],
            "Error: failed to prune build cache: Invalid filter 'bogus'\n",
        ),
        (
            &["builder", "prune", "-f", "--filter", "until=soon"][..],
            "Error: failed to prune build cache: \"until\" filter expects a duration (e.g., '24h'): time: invalid duration \"soon\"\n",
        ),
    ] {
        let o = c.kiln(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&o).1, want, "{args:?}");
    }
    let o = c.kiln(&["inspect", "--type", "bogus", "x"]);
    assert!(
        text(&o)
            .1
            .contains("\"bogus\" is not a valid value for --type"),
        "{}",
        text(&o).1
    );
}
