//! The end of a multi-platform build (`--platform a,b`): one image per platform (each with
//! its own config: architecture, os, variant), then an OCI image index over them, tagged with
//! the `-t` tags. `--output`s as BuildKit writes them for several platforms: `type=local`
//! and `type=tar` one directory per platform (`linux_amd64/`, `linux_arm_v7/`), `type=oci`
//! an archive whose `index.json` names the index; `type=docker` is refused, as BuildKit
//! refuses it (a docker-archive holds one platform).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use kiln_image::Platform;
use kiln_store::Digest;

use crate::error::{BuildError, Result};
use crate::event::Event;
use crate::export::image::{Target, export_target};
use crate::options::{ArchiveOutput, Output};
use crate::rootfs::StepResult;
use crate::state::{Build, BuildOutcome};

/// A platform's directory name in multi-platform outputs (BuildKit's `platforms.Format` with
/// `/` → `_`).
pub fn dir_name(p: &Platform) -> String {
    p.to_string().replace('/', "_")
}

/// Refuse what a multi-platform build cannot write, before anything runs.
pub fn check_outputs(outputs: &[Output]) -> Result<()> {
    for o in outputs {
        match o {
            Output::Docker(_) => {
                return Err(BuildError::plan(
                    "docker exporter does not currently support exporting manifest lists: build one platform for type=docker, or use type=oci",
                ));
            }
            Output::Oci(a) if a.compression.is_some() || a.oci_media_types == Some(false) => {
                return Err(BuildError::plan(
                    "type=oci with several platforms writes the layers as the store has them: compression= and oci-mediatypes=false are not supported there (use --compression)",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Exports every platform's image, the index, and the outputs.
pub fn export(b: &Build<'_>, results: &[StepResult]) -> Result<BuildOutcome> {
    check_outputs(&b.opts.outputs)?;
    // `type=tar`: each platform's files in a directory of one tree, tarred at the end.
    let tar_tree = match b.opts.outputs.iter().any(|o| matches!(o, Output::Tar(_))) {
        true => Some(TreeDir(b.store.prepare_snapshot_dir()?)),
        false => None,
    };
    let mut entries: Vec<(Platform, Digest)> = Vec::new();
    for (v, variant) in b.plan.variants.iter().enumerate() {
        b.events.send(Event::Export {
            message: format!("exporting image for {}", variant.platform),
            elapsed: None,
        });
        let mut outputs = Vec::new();
        for o in &b.opts.outputs {
            match o {
                Output::Local(dir) => {
                    outputs.push(Output::Local(dir.join(dir_name(&variant.platform))))
                }
                Output::Tar(_) => {
                    let tree = tar_tree.as_ref().expect("made above");
                    outputs.push(Output::Local(
                        tree.0.as_path().join(dir_name(&variant.platform)),
                    ));
                }
                _ => {}
            }
        }
        let target = Target {
            stage: b.plan.target,
            variant: v,
            name: b.opts.target.clone(),
            tags: &[],
            outputs: &outputs,
        };
        let out = export_target(b, results, &target)?;
        let id = Digest::parse(&out.image_id)
            .map_err(|e| BuildError::plan(format!("image ID {}: {e}", out.image_id)))?;
        entries.push((variant.platform.clone(), id));
    }
    if b.cancel.load(Ordering::SeqCst) {
        return Err(BuildError::Cancelled);
    }
    let t = std::time::Instant::now();
    let index = b.store.put_index(&entries)?;
    let mut tags = Vec::new();
    for t in &b.opts.tags {
        let name = kiln_image::ImageRef::parse(t)
            .map(|r| r.to_string())
            .map_err(|source| BuildError::InvalidName {
                what: "tag",
                name: t.clone(),
                source,
            })?;
        b.store.tag_index(&index, &name)?;
        tags.push(name);
    }
    b.events.send(Event::Export {
        message: format!("writing image index {index}"),
        elapsed: Some(t.elapsed()),
    });
    for name in &tags {
        b.events.send(Event::Export {
            message: format!("naming to {name}"),
            elapsed: None,
        });
    }
    for o in &b.opts.outputs {
        let t = std::time::Instant::now();
        match o {
            Output::Oci(a) => {
                write_oci_index_archive(b, &index, a)?;
                b.events.send(Event::Export {
                    message: format!("exporting to oci archive {}", a.dest.display()),
                    elapsed: Some(t.elapsed()),
                });
            }
            Output::Tar(file) => {
                let tree = tar_tree.as_ref().expect("made above");
                write_tree_tar(b, tree.0.as_path(), file)?;
                b.events.send(Event::Export {
                    message: format!("writing tar {}", file.display()),
                    elapsed: Some(t.elapsed()),
                });
            }
            _ => {}
        }
    }
    let index = index.to_string();
    Ok(BuildOutcome {
        image_id: index.clone(),
        manifest_digest: index,
        tags,
        cached: 0,
        executed: 0,
        warnings: Vec::new(),
        targets: Vec::new(),
    })
}

/// A directory under the store's tmp/, removed with what it holds on drop.
struct TreeDir(PathBuf);

impl Drop for TreeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An OCI image layout in a tar whose `index.json` names the image index (as BuildKit's oci
/// exporter writes a multi-platform image): the index, every manifest, config and layer.
fn write_oci_index_archive(b: &Build<'_>, index: &Digest, a: &ArchiveOutput) -> Result<()> {
    let index_bytes = b.store.read_blob(index)?;
    let parsed: serde_json::Value =
        serde_json::from_slice(&index_bytes).map_err(|source| BuildError::Encode {
            what: "the image index",
            source,
        })?;
    // Blobs in a fixed order: the index, then per manifest the manifest, config, layers.
    let mut blobs: Vec<Digest> = vec![*index];
    let digest_of = |v: &serde_json::Value| -> Result<Digest> {
        let s = v["digest"].as_str().unwrap_or_default();
        Digest::parse(s).map_err(|e| BuildError::plan(format!("descriptor digest {s:?}: {e}")))
    };
    for m in parsed["manifests"].as_array().into_iter().flatten() {
        let md = digest_of(m)?;
        let manifest: serde_json::Value = serde_json::from_slice(&b.store.read_blob(&md)?)
            .map_err(|source| BuildError::Encode {
                what: "a manifest",
                source,
            })?;
        blobs.push(md);
        blobs.push(digest_of(&manifest["config"])?);
        for l in manifest["layers"].as_array().into_iter().flatten() {
            blobs.push(digest_of(l)?);
        }
    }
    let mut annotations = serde_json::Map::new();
    let names: Vec<&String> = b.opts.tags.iter().chain(&a.names).collect();
    if let Some(first) = names.first()
        && let Ok(r) = kiln_image::ImageRef::parse(first)
    {
        annotations.insert("io.containerd.image.name".into(), r.to_string().into());
        if let Some(tag) = r.tag() {
            annotations.insert("org.opencontainers.image.ref.name".into(), tag.into());
        }
    }
    let mut desc = serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": index.to_string(),
        "size": index_bytes.len(),
    });
    if !annotations.is_empty() {
        desc["annotations"] = serde_json::Value::Object(annotations);
    }
    let top = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [desc],
    });
    let top = serde_json::to_vec(&top).map_err(|source| BuildError::Encode {
        what: "index.json",
        source,
    })?;
    let out = crate::outfile::OutputFile::create(&a.dest)
        .map_err(|e| BuildError::io("creating a file for", &a.dest, e))?;
    let werr = |e: std::io::Error| BuildError::io("writing", &a.dest, e);
    {
        let mut file = out.file();
        let w = std::io::BufWriter::new(crate::export::outputs::Cancellable {
            inner: &mut file,
            cancel: b.cancel,
        });
        let mut tar = tar::Builder::new(w);
        let mut seen = std::collections::BTreeSet::new();
        append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(werr)?;
        append_bytes(&mut tar, "index.json", &top).map_err(werr)?;
        for d in blobs {
            if !seen.insert(d) {
                continue;
            }
            let size = b.store.blob_size(&d)?;
            let f = b.store.open_blob(&d)?;
            let mut h = tar_header(size);
            tar.append_data(&mut h, format!("blobs/sha256/{}", d.hex()), f)
                .map_err(werr)?;
        }
        let mut w = tar.into_inner().map_err(werr)?;
        w.flush().map_err(werr)?;
    }
    out.commit()
        .map_err(|e| BuildError::io("renaming into", &a.dest, e))
}

fn tar_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut h = tar_header(bytes.len() as u64);
    tar.append_data(&mut h, name, bytes)
}

/// `type=tar` of several platforms: the tree of per-platform directories as one tar.
fn write_tree_tar(b: &Build<'_>, tree: &Path, file: &PathBuf) -> Result<()> {
    let out = crate::outfile::OutputFile::create(file)
        .map_err(|e| BuildError::io("creating a file for", file, e))?;
    let werr = |e: std::io::Error| BuildError::io("writing", file, e);
    {
        let mut f = out.file();
        let w = std::io::BufWriter::new(crate::export::outputs::Cancellable {
            inner: &mut f,
            cancel: b.cancel,
        });
        let mut tar = tar::Builder::new(w);
        tar.follow_symlinks(false);
        let mut names: Vec<_> = std::fs::read_dir(tree)
            .map_err(|e| BuildError::io("reading", tree, e))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        for n in names {
            tar.append_dir_all(&n, tree.join(&n)).map_err(werr)?;
        }
        let mut w = tar.into_inner().map_err(werr)?;
        w.flush().map_err(werr)?;
    }
    out.commit()
        .map_err(|e| BuildError::io("renaming into", file, e))
}
