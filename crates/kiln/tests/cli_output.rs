//! `kiln build --output` for images: `compression=`, `compression-level=`,
//! `force-compression=`, `oci-mediatypes=` and `name=` on type=image/oci/docker, checked with
//! tools that are not kiln (skopeo, umoci, gzip, zstd, tar); every other key refused naming
//! it; `push=true` and `type=registry` without a name refused before anything is built (pushes:
//! cli_pull_on_demand.rs). Run as root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::*;

const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
const DOCKER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

const DOCKERFILE: &str = "FROM localhost/busybox:latest\n\
     RUN echo hi > /hi && for i in 1 2 3 4 5 6 7 8; do cat /bin/busybox; done > /big\n";

fn tools() {
    require_root();
    for (cmd, pkg) in [
        ("skopeo", "skopeo"),
        ("umoci", "umoci"),
        ("gzip", "gzip"),
        ("zstd", "zstd"),
        ("tar", "tar"),
    ] {
        require_command(cmd, pkg);
    }
}

fn ctx() -> Ctx {
    tools();
    let c = Ctx::new();
    c.file("Dockerfile", DOCKERFILE);
    c
}

/// Every member of the archive at `path`, by name.
fn members(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(path).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        out.insert(name, data);
    }
    out
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

/// A layer as an archive's manifest names it.
#[derive(Debug, Clone)]
struct Layer {
    media_type: String,
    digest: String,
    size: u64,
}

/// The manifest `index.json` names (the only one) and its layers.
fn manifest_of(m: &BTreeMap<String, Vec<u8>>) -> (serde_json::Value, Vec<Layer>) {
    let index = json(&m["index.json"]);
    let d = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest = json(&m[&blob_path(d)]);
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| Layer {
            media_type: l["mediaType"].as_str().unwrap().into(),
            digest: l["digest"].as_str().unwrap().into(),
            size: l["size"].as_u64().unwrap(),
        })
        .collect();
    (manifest, layers)
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap())
}

/// Checks a layer blob with the tool for its compression: `gzip -t`, `zstd -t`, `tar -t`.
fn check_blob(dir: &Path, bytes: &[u8], media_type: &str) {
    let f = dir.join("blob");
    std::fs::write(&f, bytes).unwrap();
    let (tool, args): (&str, &[&str]) = if media_type.ends_with("gzip") {
        ("gzip", &["-t"])
    } else if media_type.ends_with("zstd") {
        ("zstd", &["-q", "-t"])
    } else {
        ("tar", &["-tf"])
    };
    let out = Command::new(tool).args(args).arg(&f).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?} on a {media_type} layer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The media type says what the bytes are, not only what a tool tolerates.
    let magic_gzip = bytes.starts_with(&[0x1f, 0x8b]);
    let magic_zstd = bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    assert_eq!(magic_gzip, media_type.ends_with("gzip"), "{media_type}");
    assert_eq!(magic_zstd, media_type.ends_with("zstd"), "{media_type}");
}

fn skopeo(args: &[&str]) -> serde_json::Value {
    let out = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out.stdout)
}

/// Every layer of the archive: in the tar, of the size and digest the manifest says, its bytes
/// compressed as its media type says; the manifest's layer media types are returned.
fn check_layers(c: &Ctx, archive: &Path) -> Vec<Layer> {
    let m = members(archive);
    let (_, layers) = manifest_of(&m);
    for l in &layers {
        let bytes = m
            .get(&blob_path(&l.digest))
            .unwrap_or_else(|| panic!("{} not in the archive", l.digest));
        assert_eq!(bytes.len() as u64, l.size, "{l:?}");
        check_blob(c.tmp.path(), bytes, &l.media_type);
    }
    layers
}

fn out_spec(kind: &str, dest: &Path, extra: &str) -> String {
    let mut s = format!("type={kind},dest={}", dest.display());
    if !extra.is_empty() {
        s.push(',');
        s.push_str(extra);
    }
    s
}

fn types(layers: &[Layer]) -> Vec<&str> {
    layers.iter().map(|l| l.media_type.as_str()).collect()
}

#[test]
fn each_compression_in_each_archive_type_is_what_independent_tools_read() {
    let c = ctx();
    let mut ids = Vec::new();
    for (compression, oci_type, docker_type) in [
        ("uncompressed", OCI_TAR, DOCKER_TAR),
        ("gzip", OCI_GZIP, DOCKER_GZIP),
        ("zstd", OCI_ZSTD, DOCKER_ZSTD),
    ] {
        let oci = c.fresh("oci").with_extension("tar");
        let docker = c.fresh("docker").with_extension("tar");
        let extra = format!("compression={compression}");
        let id = c.image_id(&[
            "-t",
            "out:1",
            "-o",
            &out_spec("oci", &oci, &extra),
            "-o",
            &out_spec("docker", &docker, &extra),
        ]);
        ids.push(id.clone());

        // type=oci: OCI media types; the busybox layer (stored uncompressed) compressed too.
        let layers = check_layers(&c, &oci);
        assert_eq!(types(&layers), [oci_type, oci_type], "oci {compression}");
        let raw = skopeo(&[
            "inspect",
            "--raw",
            &format!("oci-archive:{}", oci.display()),
        ]);
        assert_eq!(
            raw["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(raw["layers"][1]["mediaType"], oci_type);
        let config = skopeo(&[
            "inspect",
            "--config",
            &format!("oci-archive:{}", oci.display()),
        ]);
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);

        // type=docker: docker's media types, blobs as they are, manifest.json naming them.
        let layers = check_layers(&c, &docker);
        assert_eq!(
            types(&layers),
            [docker_type, docker_type],
            "docker {compression}"
        );
        let m = members(&docker);
        let (manifest, _) = manifest_of(&m);
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.docker.container.image.v1+json"
        );
        let mj = json(&m["manifest.json"]);
        let want: Vec<String> = layers.iter().map(|l| blob_path(&l.digest)).collect();
        assert_eq!(mj[0]["Layers"], serde_json::json!(want));
        assert_eq!(mj[0]["RepoTags"], serde_json::json!(["out:1"]));
        let info = skopeo(&["inspect", &format!("docker-archive:{}", docker.display())]);
        assert_eq!(info["Layers"].as_array().unwrap().len(), 2, "{info}");
        // The image is the same image whatever its layers' compression.
        assert_eq!(manifest["config"]["digest"], id.as_str());

        // umoci unpacks the OCI archive (Debian 12's umoci 0.4.7 reads no zstd layers: those
        // are decompressed by zstd itself and listed by tar).
        if compression == "zstd" {
            let m = members(&oci);
            let (_, layers) = manifest_of(&m);
            let f = c.tmp.path().join("layer.zst");
            std::fs::write(&f, &m[&blob_path(&layers[1].digest)]).unwrap();
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("zstd -q -d -c {} | tar -tf -", f.display()))
                .output()
                .unwrap();
            assert!(out.status.success());
            assert!(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .any(|l| l == "hi")
            );
            continue;
        }
        let layout = c.fresh("layout");
        std::fs::create_dir_all(&layout).unwrap();
        let st = Command::new("tar")
            .arg("-xf")
            .arg(&oci)
            .arg("-C")
            .arg(&layout)
            .status()
            .unwrap();
        assert!(st.success());
        let bundle = c.fresh("bundle");
        let out = Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:1", layout.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "umoci unpack ({compression}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(bundle.join("rootfs/hi")).unwrap(),
            "hi\n"
        );
        assert!(bundle.join("rootfs/bin/busybox").exists());
    }
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "one image ID whatever the compression: {ids:?}"
    );
}

/// Size of the layer the build made (the top one) in an oci archive written with `extra`.
fn top_layer_size(c: &Ctx, extra: &str) -> (u64, String) {
    let oci = c.fresh("oci").with_extension("tar");
    c.build_ok(&["-o", &out_spec("oci", &oci, extra)]);
    let layers = check_layers(c, &oci);
    let top = layers.last().unwrap();
    (top.size, top.media_type.clone())
}

#[test]
fn compression_levels_are_applied() {
    let c = ctx();
    let (g0, t0) = top_layer_size(&c, "compression=gzip,compression-level=0");
    let (g1, _) = top_layer_size(&c, "compression=gzip,compression-level=1");
    let (g9, t9) = top_layer_size(&c, "compression=gzip,compression-level=9");
    assert_eq!((t0.as_str(), t9.as_str()), (OCI_GZIP, OCI_GZIP));
    assert!(g9 <= g1 && g1 < g0, "gzip 0: {g0}, 1: {g1}, 9: {g9}");
    // Level 0 stores: about the tar's size.
    let (tar, _) = top_layer_size(&c, "compression=uncompressed");
    assert!(g0 >= tar, "gzip level 0 {g0} < tar {tar}");
    let (z1, _) = top_layer_size(&c, "compression=zstd,compression-level=1");
    let (z19, tz) = top_layer_size(&c, "compression=zstd,compression-level=19");
    assert_eq!(tz, OCI_ZSTD);
    assert!(z19 <= z1, "zstd 1: {z1}, 19: {z19}");
    // --compression gives the type, the output its level.
    let oci = c.fresh("oci").with_extension("tar");
    c.build_ok(&[
        "--compression",
        "gzip",
        "-o",
        &out_spec("oci", &oci, "compression-level=9"),
    ]);
    let top = check_layers(&c, &oci).pop().unwrap();
    assert_eq!((top.size, top.media_type.as_str()), (g9, OCI_GZIP));
}

#[test]
fn force_compression_transcodes_base_layers() {
    let c = ctx();
    // A base whose layers are stored gzip-compressed.
    c.image_id(&["--compression", "gzip", "-t", "gzbase"]);
    let base = c.fresh("base");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(
        base.join("Dockerfile"),
        "FROM gzbase\nRUN echo top > /top\n",
    )
    .unwrap();
    let build = |extra: &str| -> Vec<Layer> {
        let oci = c.fresh("oci").with_extension("tar");
        let spec = out_spec("oci", &oci, extra);
        let out = c.kiln(&["build", "-q", "-o", &spec, base.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        check_layers(&c, &oci)
    };
    // Without force-compression, layers compressed another way are kept (BuildKit's rule).
    let kept = build("compression=zstd");
    assert_eq!(types(&kept), [OCI_GZIP, OCI_GZIP, OCI_ZSTD]);
    let forced = build("compression=zstd,force-compression=true");
    assert_eq!(types(&forced), [OCI_ZSTD, OCI_ZSTD, OCI_ZSTD]);
    assert_eq!(
        forced[2].digest, kept[2].digest,
        "the built layer is the same blob"
    );
    let plain = build("compression=uncompressed,force-compression=true");
    assert_eq!(types(&plain), [OCI_TAR, OCI_TAR, OCI_TAR]);
    // Transcoding keeps the diff IDs: an uncompressed blob's digest is its diff ID.
    let oci = c.fresh("oci").with_extension("tar");
    let out = c.kiln(&[
        "build",
        "-q",
        "-o",
        &out_spec("oci", &oci, "compression=uncompressed,force-compression=1"),
        base.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let config = skopeo(&[
        "inspect",
        "--config",
        &format!("oci-archive:{}", oci.display()),
    ]);
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let digests: Vec<&str> = plain.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(diff_ids, digests);
    // Same format, other level: kept even when forced (BuildKit converts between formats).
    let gz = build("compression=gzip,compression-level=1,force-compression=true");
    assert_eq!(types(&gz), [OCI_GZIP, OCI_GZIP, OCI_GZIP]);
    assert_eq!(gz[0].digest, kept[0].digest);
    // skopeo reads the forced zstd archive, base layers included (an empty
    // force-compression= is true, as in BuildKit).
    let oci = c.fresh("oci").with_extension("tar");
    let out = c.kiln(&[
        "build",
        "-q",
        "-o",
        &out_spec("oci", &oci, "compression=zstd,force-compression="),
        base.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}", oci.display()),
    ]);
    let layers = raw["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{raw}");
    for l in layers {
        assert_eq!(l["mediaType"], OCI_ZSTD, "{raw}");
    }
    // skopeo copies it (reading and checking every blob) into a directory.
    let dir = c.fresh("copied");
    let out = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci-archive:{}", oci.display()))
        .arg(format!("dir:{}", dir.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing left behind by the transcodes.
    assert!(c.tmp_is_empty());
}

#[test]
fn a_rebuild_with_another_compression_gets_it() {
    let c = ctx();
    c.image_id(&["-t", "same"]);
    for (compression, want) in [("gzip", OCI_GZIP), ("zstd", OCI_ZSTD), ("gzip", OCI_GZIP)] {
        let oci = c.fresh("oci").with_extension("tar");
        let err = c.build_ok(&[
            "-t",
            "same",
            "-o",
            &out_spec("oci", &oci, &format!("compression={compression}")),
        ]);
        assert!(err.contains("CACHED"), "{err}");
        assert_eq!(
            types(&check_layers(&c, &oci)),
            [want, want],
            "{compression}"
        );
    }
    // --compression is the archives' default too.
    let docker = c.fresh("docker").with_extension("tar");
    c.build_ok(&[
        "--compression",
        "zstd",
        "-o",
        &out_spec("docker", &docker, ""),
    ]);
    assert_eq!(
        types(&check_layers(&c, &docker)),
        [DOCKER_ZSTD, DOCKER_ZSTD]
    );
    // type=image on an image already in the store: it keeps its manifest, and says so.
    let err = c.build_ok(&["-o", "type=image,compression=zstd"]);
    assert!(err.contains("keeps its manifest"), "{err}");
    // A new image gets the compression in the store.
    let err = c.build_ok(&[
        "--label",
        "v=2",
        "-o",
        "type=image,name=zimg,compression=zstd",
    ]);
    assert!(!err.contains("keeps its manifest"), "{err}");
    let index: serde_json::Value = json(&std::fs::read(c.root.join("index.json")).unwrap());
    let m = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"] == "docker.io/library/zimg:latest"
        })
        .unwrap_or_else(|| panic!("zimg not in {index}"));
    let manifest =
        json(&std::fs::read(c.root.join(blob_path(m["digest"].as_str().unwrap()))).unwrap());
    for l in manifest["layers"].as_array().unwrap() {
        assert_eq!(l["mediaType"], OCI_ZSTD, "{manifest}");
    }
    // Without any compression key type=docker stays what `docker save` writes.
    let plain = c.fresh("docker").with_extension("tar");
    c.build_ok(&["-o", &out_spec("docker", &plain, "")]);
    let m = members(&plain);
    let mj = json(&m["manifest.json"]);
    let (manifest, layers) = manifest_of(&m);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(types(&layers), [OCI_TAR, OCI_TAR]);
    assert_eq!(mj[0]["Layers"].as_array().unwrap().len(), 2);
}

#[test]
fn names_go_into_the_archives() {
    let c = ctx();
    let oci = c.fresh("oci").with_extension("tar");
    let docker = c.fresh("docker").with_extension("tar");
    c.build_ok(&[
        "-t",
        "tagged:1",
        "-o",
        &out_spec("oci", &oci, "name=named:2"),
        "-o",
        &format!(
            "type=docker,dest={},\"name=a:1,b:2\",compression=gzip",
            docker.display()
        ),
    ]);
    let index = json(&members(&oci)["index.json"]);
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["io.containerd.image.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        names,
        ["docker.io/library/tagged:1", "docker.io/library/named:2"]
    );
    let mj = json(&members(&docker)["manifest.json"]);
    assert_eq!(
        mj[0]["RepoTags"],
        serde_json::json!(["tagged:1", "a:1", "b:2"])
    );
    // name= on an archive names the archive, not an image in the store.
    let images = String::from_utf8_lossy(&c.kiln(&["images"]).stdout).into_owned();
    assert!(
        images.contains("tagged") && !images.contains("named"),
        "{images}"
    );
}

/// (spec, text the error must contain): each refused before the build runs.
const REFUSED: &[(&str, &str)] = &[
    ("type=oci,dest=o.tar,compression=lz4", "compression=lz4"),
    ("type=oci,dest=o.tar,compression=estargz", "estargz"),
    (
        "type=oci,dest=o.tar,compression=gzip,compression-level=10",
        "compression-level=10",
    ),
    (
        "type=oci,dest=o.tar,compression=gzip,compression-level=-1",
        "compression-level=-1",
    ),
    (
        "type=oci,dest=o.tar,compression=zstd,compression-level=23",
        "0-22",
    ),
    (
        "type=oci,dest=o.tar,compression=zstd,compression-level=x",
        "compression-level",
    ),
    (
        "type=oci,dest=o.tar,compression-level=3",
        "compression-level",
    ),
    (
        "type=docker,dest=o.tar,force-compression=maybe",
        "force-compression",
    ),
    (
        "type=docker,dest=o.tar,oci-mediatypes=perhaps",
        "oci-mediatypes",
    ),
    ("type=image,oci-mediatypes=false", "oci-mediatypes"),
    ("type=tar,dest=o.tar,compression=gzip", "\"compression\""),
    ("type=local,dest=d,name=x", "\"name\""),
    ("type=docker,dest=o.tar,push=false", "\"push\""),
    ("type=oci,dest=o.tar,annotation.x=y", "\"annotation.x\""),
    ("type=image,unpack=true", "\"unpack\""),
    ("type=image,name=Bad:Name", "name="),
    ("type=image,compression", "compression"),
    (
        "type=image,push=true",
        "tag is needed when pushing to registry",
    ),
    ("type=registry", "tag is needed when pushing to registry"),
    ("type=image,push=maybe", "push"),
    ("type=registry,name=x,push=false", "always pushes"),
    (
        "type=image,name=x,push=true,compression=uncompressed",
        "compressed layers only",
    ),
];

#[test]
fn bad_output_keys_and_values_are_refused_naming_them() {
    let c = ctx();
    let before = String::from_utf8_lossy(&c.kiln(&["images", "-q"]).stdout).into_owned();
    let mut failures = Vec::new();
    for (spec, want) in REFUSED {
        let (code, _, err) = c.build(&["-o", spec]);
        if code == 0 || !err.contains(want) || err.contains("RUN echo") {
            failures.push(format!("-o {spec}: exit {code}, want {want:?}:\n{err}"));
        }
    }
    for (args, want) in [
        (&["--compression", "lz4"][..], "--compression"),
        (
            &[
                "-o",
                "type=image,compression=gzip",
                "-o",
                "type=image,compression=zstd",
            ][..],
            "different compressions",
        ),
        (
            &["--compression", "zstd", "-o", "type=image,compression=gzip"][..],
            "disagree",
        ),
    ] {
        let (code, _, err) = c.build(args);
        if code == 0 || !err.contains(want) || err.contains("RUN echo") {
            failures.push(format!("{args:?}: exit {code}, want {want:?}:\n{err}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing was built.
    let after = String::from_utf8_lossy(&c.kiln(&["images", "-q"]).stdout).into_owned();
    assert_eq!(before, after);
    assert!(c.tmp_is_empty());
}

/// Pushes themselves are tested in cli_pull_on_demand.rs (against a real registry).
#[test]
fn a_push_with_no_name_is_refused_before_building() {
    let c = ctx();
    for args in [
        &["-o", "type=image,push=true"][..],
        &["-o", "type=registry"][..],
        &["--push"][..],
    ] {
        let (code, out, err) = c.build(args);
        assert_ne!(code, 0, "{args:?}");
        assert!(out.is_empty(), "{out}");
        assert!(
            err.contains("tag is needed when pushing to registry"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("[1/2]"), "the build ran: {err}");
    }
    let _: PathBuf = c.root.clone();
}

/// `docker load` reads a gzip-compressed type=docker archive (docker media types, compressed
/// blobs, as BuildKit writes it) and gets the same image ID; kiln loads it back too.
#[test]
fn docker_loads_a_compressed_docker_archive() {
    let c = ctx();
    let tag = format!("kiln-output-test/{}:gz", std::process::id());
    let archive = c.fresh("docker").with_extension("tar");
    let id = c.image_id(&[
        "-t",
        &tag,
        "-o",
        &out_spec("docker", &archive, "compression=gzip,compression-level=9"),
    ]);
    assert_eq!(
        types(&check_layers(&c, &archive)),
        [DOCKER_GZIP, DOCKER_GZIP]
    );
    // kiln loads it back, to the same ID.
    let other = Ctx::new();
    let out = other.kiln(&["load", "-q", "-i", archive.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let images =
        String::from_utf8_lossy(&other.kiln(&["images", "-q", "--no-trunc"]).stdout).into_owned();
    assert!(images.contains(&id), "{images}");
    // The running dockerd, or one started (and stopped) here.
    let engine = kiln_test::docker::Docker::engine();
    let docker = |args: &[&str]| engine.command().args(args).output().unwrap();
    let load = docker(&["load", "-i", archive.to_str().unwrap()]);
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let inspect = docker(&["image", "inspect", "-f", "{{.Id}}", &tag]);
    let _ = docker(&["rmi", &tag]);
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), id);
}

/// `kill -9` while an archive is being written leaves nothing beside the destination: the file
/// has no name until it is complete (O_TMPFILE), and a complete one is the whole archive.
#[test]
fn a_killed_export_leaves_no_partial_file() {
    let c = ctx();
    c.build_ok(&["-t", "killed-export"]);
    let out_dir = c.fresh("killed-out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let dest = out_dir.join("img.tar");
    let spec = format!(
        "type=oci,dest={},compression=gzip,compression-level=9,force-compression=true",
        dest.display()
    );
    for delay_ms in [30u64, 80, 150, 250, 400] {
        let _ = std::fs::remove_file(&dest);
        let mut child = Command::new(bin())
            .env("KILN_ROOT", &c.root)
            .args(["build", "-q", "-o", &spec, c.ctx.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let names: Vec<String> = std::fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| n == "img.tar"),
            "after a kill at {delay_ms} ms ({status}): {names:?}"
        );
        if names.is_empty() {
            continue;
        }
        // A file at dest is a whole archive that another tool reads.
        let st = Command::new("skopeo")
            .args(["inspect", &format!("oci-archive:{}", dest.display())])
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
    }
}

/// Outputs that would lose data are refused before the build: an empty `dest=`, a key given
/// twice, two outputs into one file or both to standard output.
#[test]
fn outputs_that_would_lose_data_are_refused() {
    let c = ctx();
    let d = c.fresh("dup-out");
    std::fs::create_dir_all(&d).unwrap();
    let a = d.join("a.tar");
    let a2 = format!("{}/./a.tar", d.display());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["-o".into(), "type=oci,dest=".into()],
            "needs dest=PATH",
        ),
        (
            vec![
                "-o".into(),
                format!("type=oci,dest={},dest=b.tar", a.display()),
            ],
            "the key \"dest\" is given twice",
        ),
        (
            vec![
                "-o".into(),
                "type=tar,dest=-".into(),
                "-o".into(),
                "type=oci,dest=-".into(),
            ],
            "two outputs write to standard output",
        ),
        (
            vec![
                "-o".into(),
                format!("type=oci,dest={}", a.display()),
                "-o".into(),
                format!("type=docker,dest={a2}"),
            ],
            "two outputs write to",
        ),
    ];
    for (args, want) in cases {
        let mut full: Vec<&str> = vec!["-t", "refused-dup"];
        full.extend(args.iter().map(String::as_str));
        let (code, _, err) = c.build(&full);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("DONE"), "refused before building: {err}");
    }
    assert!(!a.exists());
    let out = c.kiln(&["images", "-q", "refused-dup"]);
    assert!(out.stdout.is_empty(), "no image was tagged");
}
