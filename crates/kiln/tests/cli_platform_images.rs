//! Multi-platform images in the store, end to end: `load` of a multi-platform OCI archive keeps
//! every platform (the tag names an image index), `images` lists the index once (`--tree` per
//! platform, `{{.Platform}}`), `image inspect --platform`, `rmi`/prune/`system check` of
//! indexes, `save` of an index, and push/pull of an index with a local registry.
//!
//! The archive is scripts/make-multiplatform-busybox.sh's (linux/amd64, linux/arm64/v8,
//! linux/arm/v7 from Debian's busybox-static .debs), made once per test run. Nothing here runs
//! a foreign binary, so no QEMU is needed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::{Ctx, ok, out};

const TAG: &str = "localhost/mpbb:1";

/// The multi-platform archive and its index's digest (what `index.json` names).
fn multiplatform_archive() -> &'static (PathBuf, String) {
    static ARCHIVE: OnceLock<(PathBuf, String)> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        for (cmd, pkg) in [("jq", "jq"), ("dpkg-deb", "dpkg"), ("gzip", "gzip")] {
            support::require_command(cmd, pkg);
        }
        let dir = std::env::temp_dir().join(format!("kiln-mp-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("mp.tar");
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts/make-multiplatform-busybox.sh");
        let st = Command::new("bash")
            .arg(&script)
            .arg(&out)
            .arg(TAG)
            .output()
            .expect("running make-multiplatform-busybox.sh");
        assert!(
            st.status.success(),
            "make-multiplatform-busybox.sh failed (needs busybox-static .debs for amd64, arm64, \
             armhf: bash scripts/install-deps.sh ci): {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let digest = String::from_utf8(st.stdout).unwrap().trim().to_string();
        assert!(digest.starts_with("sha256:"), "script printed {digest:?}");
        (out, digest)
    })
}

fn short(digest: &str) -> &str {
    &digest["sha256:".len().."sha256:".len() + 12]
}

/// A store with busybox and the multi-platform image loaded.
fn loaded() -> (Ctx, String) {
    let c = Ctx::new();
    let (archive, digest) = multiplatform_archive();
    let o = ok(&c, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(o, format!("Loaded image: {TAG}\n"));
    (c, digest.clone())
}

fn fails(c: &Ctx, args: &[&str]) -> String {
    let (code, so, se) = out(&c.kiln(args));
    assert_eq!(code, 1, "kiln {args:?} should fail: {so}{se}");
    se
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn load_keeps_every_platform_and_images_lists_the_index_once() {
    let (c, digest) = loaded();
    // One row for the index; its images are not listed on their own.
    let rows = ok(
        &c,
        &[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}} {{.Platform}}",
        ],
    );
    let mp_rows: Vec<&str> = lines(&rows)
        .into_iter()
        .filter(|l| l.starts_with(TAG))
        .collect();
    assert_eq!(
        mp_rows,
        vec![
            format!(
                "{TAG} {} linux/amd64,linux/arm64,linux/arm/v7",
                short(&digest)
            )
            .as_str()
        ]
    );
    assert_eq!(lines(&rows).len(), 2, "{rows}");
    // -a lists the platforms' images too, untagged.
    let all = ok(&c, &["images", "-a", "--format", "{{.Tag}} {{.Platform}}"]);
    let mut untagged: Vec<&str> = lines(&all)
        .into_iter()
        .filter(|l| l.starts_with("<none>"))
        .collect();
    untagged.sort();
    assert_eq!(
        untagged,
        vec![
            "<none> linux/amd64",
            "<none> linux/arm/v7",
            "<none> linux/arm64"
        ]
    );

    // --tree: the index, then one line per platform, each with its image's ID.
    let tree = ok(&c, &["images", "--tree", TAG]);
    let t = lines(&tree);
    assert_eq!(t.len(), 5, "{tree}");
    assert!(
        t[0].starts_with("IMAGE") && t[0].contains("DISK USAGE") && t[0].contains("CONTENT SIZE")
    );
    assert!(
        t[1].starts_with(TAG) && t[1].contains(short(&digest)),
        "{tree}"
    );
    let arm64_id = ok(
        &c,
        &[
            "image",
            "inspect",
            "--platform",
            "linux/arm64",
            "-f",
            "{{range .Manifests}}{{if eq .ImageData.Platform.architecture \"arm64\"}}{{.ID}}{{end}}{{end}}",
            TAG,
        ],
    );
    assert!(t[2].starts_with("├─ linux/amd64"), "{tree}");
    assert!(
        t[3].starts_with("├─ linux/arm64 ") && t[3].contains(short(arm64_id.trim())),
        "{tree}"
    );
    assert!(t[4].starts_with("└─ linux/arm/v7"), "{tree}");
    assert!(fails(&c, &["images", "--tree", "-q"]).contains("--tree cannot be combined"));

    // inspect: the index digest as Id, the host's image (amd64 here) unless --platform says.
    let host = ok(
        &c,
        &[
            "image",
            "inspect",
            "-f",
            "{{.Id}} {{.Architecture}} {{.RepoTags}}",
            TAG,
        ],
    );
    assert_eq!(host.trim(), format!("{digest} amd64 [{TAG}]"));
    let arm64 = ok(
        &c,
        &[
            "image",
            "inspect",
            "--platform",
            "linux/arm64",
            "-f",
            "{{.Architecture}} {{.Variant}}",
            TAG,
        ],
    );
    assert_eq!(arm64.trim(), "arm64 v8");
    let arm = ok(
        &c,
        &[
            "image",
            "inspect",
            "--platform",
            "arm",
            "-f",
            "{{.Os}} {{.Architecture}} {{.Variant}}",
            TAG,
        ],
    );
    assert_eq!(arm.trim(), "linux arm v7");
    let manifests = ok(&c, &["image", "inspect", "-f", "{{len .Manifests}}", TAG]);
    assert_eq!(manifests.trim(), "3");
    let err = fails(
        &c,
        &["image", "inspect", "--platform", "linux/riscv64", TAG],
    );
    assert!(
        err.contains("no matching manifest for linux/riscv64 in the manifest list entries (it has: linux/amd64, linux/arm64, linux/arm/v7)"),
        "{err}"
    );
    let err = fails(
        &c,
        &[
            "image",
            "inspect",
            "--platform",
            "linux/arm64",
            "localhost/busybox",
        ],
    );
    assert!(
        err.contains("image with reference localhost/busybox was found but does not match the specified platform: wanted linux/arm64, actual: linux/amd64"),
        "{err}"
    );

    // Loading it again (from standard input) changes nothing.
    let (archive, _) = multiplatform_archive();
    let o = Command::new(support::bin())
        .env("KILN_ROOT", &c.root)
        .arg("load")
        .stdin(std::fs::File::open(archive).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("Loaded image: {TAG}\n")
    );
    assert_eq!(
        ok(&c, &["images", "--format", "{{.ID}}", TAG]).trim(),
        short(&digest)
    );
    let check = ok(&c, &["system", "check"]);
    assert!(check.contains("store is consistent"), "{check}");
}

#[test]
fn rmi_prune_and_df_know_indexes() {
    let (c, digest) = loaded();
    let ids = ok(
        &c,
        &[
            "image",
            "inspect",
            "-f",
            "{{range .Manifests}}{{.ID}} {{end}}",
            TAG,
        ],
    );
    let ids: Vec<String> = ids.split_whitespace().map(str::to_string).collect();
    assert_eq!(ids.len(), 3);
    // A platform's image is kept by its index: refused without -f.
    let err = fails(&c, &["rmi", &ids[1]]);
    assert!(
        err.contains("must be forced") && err.contains("image index"),
        "{err}"
    );
    // Prune removes dangling images, not an index's (untagged) platforms.
    ok(&c, &["image", "prune", "-f"]);
    ok(&c, &["system", "prune", "-f"]);
    assert_eq!(
        ok(&c, &["image", "inspect", "-f", "{{len .Manifests}}", TAG]).trim(),
        "3"
    );
    // system df counts the index's images.
    let df = ok(
        &c,
        &["system", "df", "--format", "{{.Type}} {{.TotalCount}}"],
    );
    assert!(df.lines().any(|l| l == "Images 4"), "{df}");
    // A second tag: rmi of one tag only untags.
    ok(&c, &["tag", TAG, "localhost/mpbb:2"]);
    assert_eq!(
        ok(
            &c,
            &["images", "--format", "{{.Tag}} {{.ID}}", "localhost/mpbb"]
        ),
        format!("1 {s}\n2 {s}\n", s = short(&digest))
    );
    // By its ID (the short index digest, as `images` shows it): -f with several tags.
    let err = fails(&c, &["rmi", short(&digest)]);
    assert!(
        err.contains("must be forced) - image is referenced in multiple repositories"),
        "{err}"
    );
    assert_eq!(
        ok(&c, &["rmi", "localhost/mpbb:2"]),
        "Untagged: localhost/mpbb:2\n"
    );
    // The last tag: the index and the images only it kept go (the amd64 layer is busybox's).
    let gone = ok(&c, &["rmi", TAG]);
    let g = lines(&gone);
    assert_eq!(g[0], format!("Untagged: {TAG}"));
    assert_eq!(g[1], format!("Deleted: {digest}"));
    for id in &ids {
        assert!(gone.contains(&format!("Deleted: {id}")), "{gone}");
    }
    assert_eq!(ok(&c, &["images", "-a", "-q"]).lines().count(), 1);
    // Loaded again, removed by ID: every tag, then the index and its images.
    let (archive, _) = multiplatform_archive();
    ok(&c, &["load", "-i", archive.to_str().unwrap()]);
    let gone = ok(&c, &["rmi", short(&digest)]);
    assert!(
        gone.starts_with(&format!("Untagged: {TAG}\nDeleted: {digest}\n")),
        "{gone}"
    );
    assert_eq!(ok(&c, &["images", "-a", "-q"]).lines().count(), 1);
    let check = ok(&c, &["system", "check"]);
    assert!(check.contains("store is consistent"), "{check}");
    assert!(c.tmp_is_empty());
}

#[test]
fn save_writes_the_whole_index_or_one_platform() {
    let skopeo = support::require_command("skopeo", "skopeo");
    let (c, digest) = loaded();
    let (archive, _) = multiplatform_archive();
    let oci = c.fresh("mp-oci").with_extension("tar");
    ok(
        &c,
        &["save", "--format", "oci", "-o", oci.to_str().unwrap(), TAG],
    );
    // The index as loaded, byte for byte (its digest is the archive's), named by index.json.
    let index_json = tar_member(&oci, "index.json");
    assert!(
        index_json.contains(&format!("\"digest\":\"{digest}\""))
            && index_json.contains("\"io.containerd.image.name\":\"localhost/mpbb:1\"")
            && index_json.contains("application/vnd.oci.image.index.v1+json"),
        "{index_json}"
    );
    let member = format!("blobs/sha256/{}", &digest["sha256:".len()..]);
    assert_eq!(tar_member(&oci, &member), tar_member(archive, &member));
    let raw = Command::new(&skopeo)
        .args(["inspect", "--raw"])
        .arg(format!("oci-archive:{}", oci.display()))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(
        String::from_utf8(raw.stdout).unwrap(),
        tar_member(archive, &member)
    );
    for (arch, variant) in [("arm64", "v8"), ("arm", "v7"), ("amd64", "")] {
        let o = Command::new(&skopeo)
            .args(["inspect", "--override-os", "linux", "--override-arch", arch])
            .args(if variant.is_empty() {
                vec![]
            } else {
                vec!["--override-variant", variant]
            })
            .args(["--format", "{{.Architecture}}"])
            .arg(format!("oci-archive:{}", oci.display()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), arch);
    }
    // Loaded back into another store: the same index, every platform.
    let other = Ctx::new();
    assert_eq!(
        ok(&other, &["load", "-i", oci.to_str().unwrap()]),
        format!("Loaded image: {TAG}\n")
    );
    assert_eq!(
        ok(
            &other,
            &[
                "images",
                "--no-trunc",
                "--format",
                "{{.ID}} {{.Platform}}",
                TAG
            ]
        )
        .trim(),
        format!("{digest} linux/amd64,linux/arm64,linux/arm/v7")
    );

    // One platform: a docker-archive (or oci-archive) of that platform's image.
    let arm64 = c.fresh("mp-arm64").with_extension("tar");
    ok(
        &c,
        &[
            "save",
            "--platform",
            "linux/arm64",
            "-o",
            arm64.to_str().unwrap(),
            TAG,
        ],
    );
    let manifest = tar_member(&arm64, "manifest.json");
    let arm64_id = ok(
        &c,
        &[
            "image",
            "inspect",
            "--platform",
            "linux/arm64",
            "-f",
            "{{range .Manifests}}{{if eq .ImageData.Platform.architecture \"arm64\"}}{{.ID}}{{end}}{{end}}",
            TAG,
        ],
    );
    assert!(
        manifest.contains(&format!(
            "blobs/sha256/{}",
            &arm64_id.trim()["sha256:".len()..]
        )) && manifest.contains("\"RepoTags\":[\"localhost/mpbb:1\"]"),
        "{manifest}"
    );
    let third = Ctx::new();
    ok(&third, &["load", "-i", arm64.to_str().unwrap()]);
    assert_eq!(
        ok(&third, &["images", "--format", "{{.Platform}}", TAG]).trim(),
        "linux/arm64"
    );
    // docker-archive without --platform: the host's platform (amd64 here).
    let host = c.fresh("mp-host").with_extension("tar");
    ok(&c, &["save", "-o", host.to_str().unwrap(), TAG]);
    let host_id = ok(
        &c,
        &[
            "image",
            "inspect",
            "--platform",
            "linux/amd64",
            "-f",
            "{{range .Manifests}}{{if eq .ImageData.Platform.architecture \"amd64\"}}{{.ID}}{{end}}{{end}}",
            TAG,
        ],
    );
    assert!(tar_member(&host, "manifest.json").contains(&host_id.trim()["sha256:".len()..]));
    // A platform it does not have: an error naming what it has, and no file.
    let none = c.fresh("mp-none").with_extension("tar");
    let err = fails(
        &c,
        &[
            "save",
            "--platform",
            "linux/riscv64",
            "-o",
            none.to_str().unwrap(),
            TAG,
        ],
    );
    assert!(
        err.contains("no matching manifest for linux/riscv64") && err.contains("linux/arm/v7"),
        "{err}"
    );
    assert!(!none.exists());
    let err = fails(
        &c,
        &[
            "save",
            "--platform",
            "linux/arm64",
            "-o",
            none.to_str().unwrap(),
            "localhost/busybox",
        ],
    );
    assert!(
        err.contains("does not match the specified platform"),
        "{err}"
    );
    assert!(c.tmp_is_empty());
}

/// A member of a tar file, as text.
fn tar_member(tar: &Path, member: &str) -> String {
    let o = Command::new("tar")
        .arg("xOf")
        .arg(tar)
        .arg(member)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{member} in {}: {}",
        tar.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn push_of_an_index_and_pull_all_platforms() {
    let skopeo = support::require_command("skopeo", "skopeo");
    let reg = kiln_test::registry::Registry::start();
    let (c, digest) = loaded();
    let (archive, _) = multiplatform_archive();
    let index_bytes = tar_member(
        archive,
        &format!("blobs/sha256/{}", &digest["sha256:".len()..]),
    );
    let name = format!("{}/mp:1", reg.addr);
    ok(&c, &["tag", TAG, &name]);
    let pushed = ok(&c, &["push", &name]);
    // Every platform's layers, then the index under the tag: the store's index, same digest.
    assert_eq!(
        pushed.lines().last().unwrap(),
        format!("1: digest: {digest} size: {}", index_bytes.len()),
        "{pushed}"
    );
    let skopeo_out = |args: &[&str]| {
        let o = Command::new(&skopeo)
            .arg("inspect")
            .arg("--tls-verify=false")
            .args(args)
            .arg(format!("docker://{name}"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(skopeo_out(&["--raw"]), index_bytes);
    for (arch, variant) in [("arm64", "v8"), ("arm", "v7"), ("amd64", "")] {
        let mut args = vec!["--override-os", "linux", "--override-arch", arch];
        if !variant.is_empty() {
            args.extend(["--override-variant", variant]);
        }
        args.extend(["--format", "{{.Architecture}} {{.Digest}}"]);
        let o = skopeo_out(&args);
        assert!(o.starts_with(&format!("{arch} {digest}")), "{o}");
    }
    // RepoDigests of the index name it.
    assert_eq!(
        ok(
            &c,
            &["image", "inspect", "-f", "{{json .RepoDigests}}", &name]
        )
        .trim(),
        format!("[\"{}/mp@{digest}\"]", reg.addr)
    );

    // --all-platforms: the index and every platform, as pushed.
    let all = Ctx::new();
    let o = ok(&all, &["pull", "--all-platforms", &name]);
    assert!(o.contains(&format!("Digest: {digest}")), "{o}");
    assert_eq!(
        ok(
            &all,
            &[
                "images",
                "--no-trunc",
                "--format",
                "{{.ID}} {{.Platform}}",
                &name
            ]
        )
        .trim(),
        format!("{digest} linux/amd64,linux/arm64,linux/arm/v7")
    );
    let again = ok(&all, &["pull", "--all-platforms", &name]);
    assert!(again.contains("Status: Image is up to date"), "{again}");
    let check = ok(&all, &["system", "check"]);
    assert!(check.contains("store is consistent"), "{check}");
    // One platform: a single image, as before.
    let one = Ctx::new();
    ok(&one, &["pull", "--platform", "linux/arm/v7", &name]);
    assert_eq!(
        ok(&one, &["images", "--format", "{{.Platform}}", &name]).trim(),
        "linux/arm/v7"
    );
    let (code, _, err) = out(&one.kiln(&[
        "pull",
        "--all-platforms",
        "--platform",
        "linux/arm64",
        &name,
    ]));
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn prune_all_judges_an_index_by_its_filters_and_users() {
    let (c, digest) = loaded();
    // The filter keeps what lacks the label: the index stays.
    ok(
        &c,
        &[
            "image",
            "prune",
            "-a",
            "-f",
            "--filter",
            "label=no.such.label",
        ],
    );
    assert_eq!(ok(&c, &["images", "-q", TAG]).trim(), short(&digest));
    // Unfiltered, nothing uses it: it goes with its images.
    let o = ok(&c, &["image", "prune", "-a", "-f"]);
    assert!(o.contains(&format!("untagged: {TAG}")), "{o}");
    assert!(o.contains(&format!("deleted: {digest}")), "{o}");
    assert_eq!(ok(&c, &["images", "-a", "-q"]), "");
    let check = ok(&c, &["system", "check"]);
    assert!(check.contains("store is consistent"), "{check}");
}

/// Rewrites the multi-platform archive (unpacked as an OCI layout in `dir`), its index
/// renamed `localhost/tampered:1`: `label` swaps the amd64 and arm64 labels, `arch` rewrites the arm64 config's architecture (and its label) to a hostile value.
const TAMPER: &str = r#"
import hashlib, json, os, sys
d, mode = sys.argv[1], sys.argv[2]
def blob(dg): return open(os.path.join(d, "blobs", *dg.split(":")), "rb").read()
def put(b):
    dg = "sha256:" + hashlib.sha256(b).hexdigest()
    open(os.path.join(d, "blobs", "sha256", dg[7:]), "wb").write(b)
    return dg
top = json.load(open(os.path.join(d, "index.json")))
inner = json.loads(blob(top["manifests"][0]["digest"]))
ms = inner["manifests"]
by = {m["platform"]["architecture"]: m for m in ms}
if mode == "label":
    by["amd64"]["platform"]["architecture"], by["arm64"]["platform"]["architecture"] = "arm64", "amd64"
    by["amd64"]["platform"].pop("variant", None); by["arm64"]["platform"].pop("variant", None)
else:
    m = by["arm64"]
    man = json.loads(blob(m["digest"]))
    cfg = json.loads(blob(man["config"]["digest"]))
    cfg["architecture"] = sys.argv[3]; cfg.pop("variant", None)
    cb = json.dumps(cfg).encode()
    man["config"] = dict(man["config"], digest=put(cb), size=len(cb))
    mb = json.dumps(man).encode()
    m["digest"], m["size"] = put(mb), len(mb)
    m["platform"] = {"os": "linux", "architecture": sys.argv[3]}
ib = json.dumps(inner).encode()
top["manifests"][0].update(digest=put(ib), size=len(ib),
    annotations={"org.opencontainers.image.ref.name": "localhost/tampered:1"})
json.dump(top, open(os.path.join(d, "index.json"), "w"))
"#;

/// Hostile multi-platform archives are refused whole, and the store stays usable: an index
/// whose labels lie about its images (the config is what counts), and a platform kiln's
/// parser refuses (`../x`, a space), which would otherwise be written and break every later
/// read of the store.
#[test]
fn lying_labels_and_hostile_platforms_are_refused_and_the_store_stays_usable() {
    support::require_command("python3", "python3");
    let c = Ctx::new();
    let (archive, _) = multiplatform_archive();
    for (mode, arch, want) in [
        ("label", "", "but its config says linux/amd64"),
        ("arch", "..", "platform"),
        ("arch", "evil arch", "platform"),
    ] {
        let dir = c.tmp.path().join(format!("layout-{mode}-{}", arch.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("tar")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success());
        let st = Command::new("python3")
            .args(["-c", TAMPER])
            .arg(&dir)
            .args([mode, arch])
            .status()
            .unwrap();
        assert!(st.success(), "tampering {mode}");
        let err = fails(&c, &["load", "-i", dir.to_str().unwrap()]);
        assert!(err.contains(want), "{mode} {arch:?}: {err}");
        // Nothing of it is tagged, and every reader of the store still works.
        let images = ok(&c, &["images", "--format", "{{.Repository}}"]);
        assert!(!images.contains("tampered"), "{images}");
        ok(&c, &["system", "check"]);
        ok(&c, &["image", "prune", "-af"]);
    }
    // The genuine archive still loads, with its right platforms.
    ok(&c, &["load", "-i", archive.to_str().unwrap()]);
    let plats = ok(&c, &["images", "--format", "{{.Platform}}", TAG]);
    assert!(
        plats.contains("linux/amd64") && plats.contains("linux/arm64"),
        "{plats}"
    );
}
