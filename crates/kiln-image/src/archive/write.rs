//! Writing docker-archives, oci-archives and OCI layout directories.
//!
//! Output is deterministic: entries sorted by name, fixed headers (mode 0644/0755, uid/gid 0,
//! mtime 0, no user names), compact JSON with a fixed key order. The same images give the
//! same bytes.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageManifest;
use serde::Serialize;

use super::ArchiveError;
use super::blobs::BlobSource;
use crate::compression::{Compression, media_types};
use crate::digest::{ContentMismatch, Digest, DigestWriter, VerifyingReader};
use crate::manifest::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, DescriptorOut, PlatformOut, build_index,
    build_manifest,
};
use crate::platform::Platform;
use crate::reference::ImageRef;

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// One image to export: its manifest and config exactly as stored, and the names to give it.
#[derive(Clone, Debug)]
pub struct ExportImage {
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    /// Names written into the archive (`RepoTags`, index annotations). References without a
    /// tag are not written as names.
    pub tags: Vec<ImageRef>,
}

/// A multi-platform image to export: an image index (its exact bytes, so its digest stays)
/// and the images it lists.
pub struct ExportIndex {
    /// The index blob (an OCI image index or a Docker manifest list).
    pub bytes: Vec<u8>,
    pub media_type: String,
    /// The images it lists, in its order; their manifests must be the ones it names, and
    /// their own `tags` are not written (the index carries the names).
    pub images: Vec<ExportImage>,
    /// Names written into `index.json` for the index.
    pub tags: Vec<ImageRef>,
}

/// An image whose manifest, config and layer list have been checked against each other.
struct Checked<'a> {
    img: &'a ExportImage,
    manifest_digest: Digest,
    manifest_media_type: String,
    config_digest: Digest,
    layers: Vec<LayerDesc>,
    diff_ids: Vec<Digest>,
    platform: Platform,
}

struct LayerDesc {
    digest: Digest,
    size: u64,
    compression: Compression,
}

fn check(index: usize, img: &ExportImage) -> Result<Checked<'_>, ArchiveError> {
    let manifest_digest = Digest::of(&img.manifest);
    let bad = |reason: String| ArchiveError::BadExportImage {
        index,
        what: format!("manifest {manifest_digest}"),
        reason,
    };
    let manifest: ImageManifest =
        serde_json::from_slice(&img.manifest).map_err(|e| bad(format!("invalid manifest: {e}")))?;
    let manifest_media_type = manifest
        .media_type()
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_else(|| media_types::OCI_MANIFEST.to_string());
    let config_digest = Digest::try_from(manifest.config().digest())
        .map_err(|e| bad(format!("config descriptor: {e}")))?;
    let actual = Digest::of(&img.config);
    if actual != config_digest || img.config.len() as u64 != manifest.config().size() {
        return Err(bad(format!(
            "config bytes ({actual}, {} bytes) do not match the manifest's config descriptor \
             ({config_digest}, {} bytes)",
            img.config.len(),
            manifest.config().size()
        )));
    }
    let config = crate::manifest::parse_image_config(&img.config)
        .map_err(|e| bad(format!("invalid config: {e}")))?;
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|s| Digest::parse(s).map_err(|e| bad(format!("config rootfs.diff_ids: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(bad(format!(
            "manifest has {} layers but the config has {} diff_ids",
            manifest.layers().len(),
            diff_ids.len()
        )));
    }
    let mut layers = Vec::new();
    for l in manifest.layers() {
        let digest =
            Digest::try_from(l.digest()).map_err(|e| bad(format!("layer descriptor: {e}")))?;
        let media_type = l.media_type().to_string();
        let compression = Compression::from_media_type(&media_type)
            .map_err(|e| bad(format!("layer {digest}: {e}")))?;
        layers.push(LayerDesc {
            digest,
            size: l.size(),
            compression,
        });
    }
    Ok(Checked {
        img,
        manifest_digest,
        manifest_media_type,
        config_digest,
        layers,
        diff_ids,
        platform: Platform::of_config(&config),
    })
}

/// What goes into one archive member.
enum Payload {
    Dir,
    Bytes(Vec<u8>),
    /// A blob copied from the source, checked against `digest` and `size` on the way.
    Blob {
        digest: Digest,
        size: u64,
    },
    /// A decompressed layer spooled to a temporary file.
    Temp {
        file: File,
        size: u64,
    },
}

impl Payload {
    fn size(&self) -> u64 {
        match self {
            Payload::Dir => 0,
            Payload::Bytes(b) => b.len() as u64,
            Payload::Blob { size, .. } | Payload::Temp { size, .. } => *size,
        }
    }
}

type Members = BTreeMap<String, Payload>;

fn add_blob_dirs(m: &mut Members) {
    m.insert("blobs/".into(), Payload::Dir);
    m.insert("blobs/sha256/".into(), Payload::Dir);
}

/// Checks the source's size for a blob against the manifest's.
fn source_blob(blobs: &dyn BlobSource, digest: Digest, size: u64) -> Result<Payload, ArchiveError> {
    let actual = blobs
        .size(&digest)
        .map_err(|source| ArchiveError::Blob { digest, source })?;
    if actual != size {
        return Err(ArchiveError::Blob {
            digest,
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob is {actual} bytes but the manifest says {size}"),
            ),
        });
    }
    Ok(Payload::Blob { digest, size })
}

/// Index entries for one image: one per tag (as Docker writes them), or one without names.
fn index_entries(c: &Checked<'_>) -> Vec<DescriptorOut> {
    let mut base = DescriptorOut::new(
        &c.manifest_media_type,
        c.manifest_digest,
        c.img.manifest.len() as u64,
    );
    base.platform = Some(PlatformOut::from(&c.platform));
    per_tag(base, &c.img.tags)
}

/// `base` once per tagged reference of `tags`, named by it (the image name and ref-name
/// annotations), or once without names when none is tagged.
fn per_tag(base: DescriptorOut, tags: &[ImageRef]) -> Vec<DescriptorOut> {
    let tagged: Vec<&ImageRef> = tags.iter().filter(|t| t.tag().is_some()).collect();
    if tagged.is_empty() {
        return vec![base];
    }
    tagged
        .into_iter()
        .map(|t| {
            let mut d = base.clone();
            let named = t
                .name_only()
                .with_tag(t.tag().unwrap_or_default())
                .unwrap_or_else(|_| t.clone());
            d.annotations
                .insert(ANNOTATION_IMAGE_NAME.into(), named.to_string());
            d.annotations.insert(
                ANNOTATION_REF_NAME.into(),
                t.tag().unwrap_or_default().into(),
            );
            d
        })
        .collect()
}

/// `index.json` entries for an image index: one per tag, or one without names.
fn index_entries_of_index(ix: &ExportIndex) -> Vec<DescriptorOut> {
    let base = DescriptorOut::new(&ix.media_type, Digest::of(&ix.bytes), ix.bytes.len() as u64);
    per_tag(base, &ix.tags)
}

/// Adds one image's manifest, config and layer blobs.
fn add_image_members(
    m: &mut Members,
    c: &Checked<'_>,
    blobs: &dyn BlobSource,
) -> Result<(), ArchiveError> {
    m.insert(
        c.manifest_digest.blob_path(),
        Payload::Bytes(c.img.manifest.clone()),
    );
    m.insert(
        c.config_digest.blob_path(),
        Payload::Bytes(c.img.config.clone()),
    );
    for l in &c.layers {
        if let std::collections::btree_map::Entry::Vacant(e) = m.entry(l.digest.blob_path()) {
            e.insert(source_blob(blobs, l.digest, l.size)?);
        }
    }
    Ok(())
}

/// Members and index entries of an OCI layout holding `images`, blobs as stored.
fn oci_members(
    images: &[ExportImage],
    blobs: &dyn BlobSource,
) -> Result<(Members, Vec<DescriptorOut>), ArchiveError> {
    oci_members_with_indexes(images, &[], blobs)
}

/// Members and index entries of an OCI layout holding `images` and `indexes` (each index
/// blob as given, `index.json` naming the index), blobs as stored.
fn oci_members_with_indexes(
    images: &[ExportImage],
    indexes: &[ExportIndex],
    blobs: &dyn BlobSource,
) -> Result<(Members, Vec<DescriptorOut>), ArchiveError> {
    let mut m = Members::new();
    add_blob_dirs(&mut m);
    let mut index = Vec::new();
    for (i, img) in images.iter().enumerate() {
        let c = check(i, img)?;
        add_image_members(&mut m, &c, blobs)?;
        index.extend(index_entries(&c));
    }
    let mut n = images.len();
    for ix in indexes {
        let digest = Digest::of(&ix.bytes);
        let listed: Vec<String> = serde_json::from_slice::<serde_json::Value>(&ix.bytes)
            .ok()
            .and_then(|v| {
                v.get("manifests")?.as_array().map(|a| {
                    a.iter()
                        .filter_map(|d| d.get("digest")?.as_str().map(str::to_string))
                        .collect()
                })
            })
            .ok_or_else(|| ArchiveError::BadExportImage {
                index: n,
                what: format!("image index {digest}"),
                reason: "not an image index (no \"manifests\" list)".into(),
            })?;
        for img in &ix.images {
            let c = check(n, img)?;
            if !listed.contains(&c.manifest_digest.to_string()) {
                return Err(ArchiveError::BadExportImage {
                    index: n,
                    what: format!("manifest {}", c.manifest_digest),
                    reason: format!("image index {digest} does not list it"),
                });
            }
            add_image_members(&mut m, &c, blobs)?;
            n += 1;
        }
        m.insert(digest.blob_path(), Payload::Bytes(ix.bytes.clone()));
        index.extend(index_entries_of_index(ix));
    }
    m.insert("index.json".into(), Payload::Bytes(build_index(&index)));
    m.insert("oci-layout".into(), Payload::Bytes(OCI_LAYOUT.to_vec()));
    Ok((m, index))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Decompresses a layer blob to a temporary file, checking the blob digest and the diff ID.
fn spool_uncompressed(
    blobs: &dyn BlobSource,
    l: &LayerDesc,
    diff_id: Digest,
) -> Result<Payload, ArchiveError> {
    let blob_err = |source| ArchiveError::Blob {
        digest: l.digest,
        source,
    };
    let raw = blobs.open(&l.digest).map_err(blob_err)?;
    let verified = VerifyingReader::new(raw, l.digest, Some(l.size), format!("layer {}", l.digest));
    let tmp = tempfile::tempfile().map_err(blob_err)?;
    let mut w = DigestWriter::new(tmp);
    match l.compression {
        Compression::Gzip => io::copy(
            &mut flate2::read::MultiGzDecoder::new(io::BufReader::new(verified)),
            &mut w,
        ),
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(verified).and_then(|mut d| io::copy(&mut d, &mut w))
        }
        Compression::None => {
            let mut v = verified;
            io::copy(&mut v, &mut w)
        }
    }
    .map_err(blob_err)?;
    let (mut file, got, size) = w.finish();
    if got != diff_id {
        return Err(blob_err(io::Error::new(
            io::ErrorKind::InvalidData,
            ContentMismatch::Digest {
                what: format!("uncompressed layer {}", l.digest),
                expected: diff_id,
                actual: got,
            },
        )));
    }
    file.rewind().map_err(blob_err)?;
    Ok(Payload::Temp { file, size })
}

/// `docker save`'s layers: uncompressed under their diff IDs, with the OCI view Docker ≥ 25
/// adds (same config, the uncompressed layers) in the index. Returns the layer paths.
fn uncompressed_docker_layers(
    m: &mut Members,
    index: &mut Vec<DescriptorOut>,
    i: usize,
    img: &ExportImage,
    c: &Checked<'_>,
    blobs: &dyn BlobSource,
) -> Result<Vec<String>, ArchiveError> {
    let mut layer_paths = Vec::new();
    let mut oci_layers = Vec::new();
    for (l, diff_id) in c.layers.iter().zip(&c.diff_ids) {
        let path = diff_id.blob_path();
        if !m.contains_key(&path) {
            let payload = if l.compression == Compression::None {
                if l.digest != *diff_id {
                    return Err(ArchiveError::BadExportImage {
                        index: i,
                        what: format!("manifest {}", c.manifest_digest),
                        reason: format!(
                            "uncompressed layer {} does not match its diff_id {diff_id}",
                            l.digest
                        ),
                    });
                }
                source_blob(blobs, l.digest, l.size)?
            } else {
                spool_uncompressed(blobs, l, *diff_id)?
            };
            m.insert(path.clone(), payload);
        }
        oci_layers.push(DescriptorOut::new(
            media_types::OCI_LAYER,
            *diff_id,
            m[&path].size(),
        ));
        layer_paths.push(path);
    }
    let config_desc = DescriptorOut::new(
        media_types::OCI_CONFIG,
        c.config_digest,
        img.config.len() as u64,
    );
    let (manifest, manifest_digest) = build_manifest(&config_desc, &oci_layers);
    let oci_view = ExportImage {
        manifest: manifest.clone(),
        config: img.config.clone(),
        tags: img.tags.clone(),
    };
    let oc = check(i, &oci_view)?;
    index.extend(index_entries(&oc));
    m.insert(manifest_digest.blob_path(), Payload::Bytes(manifest));
    Ok(layer_paths)
}

/// `as_stored`: layers stay as the manifest names them (compressed ones compressed) and the
/// index names that manifest, as BuildKit's docker exporter writes them. Otherwise layers are
/// written uncompressed under their diff IDs with an OCI view over them, as `docker save`
/// writes them.
fn docker_members(
    images: &[ExportImage],
    blobs: &dyn BlobSource,
    as_stored: bool,
) -> Result<Members, ArchiveError> {
    let mut m = Members::new();
    add_blob_dirs(&mut m);
    let mut entries = Vec::new();
    let mut index = Vec::new();
    for (i, img) in images.iter().enumerate() {
        let c = check(i, img)?;
        m.insert(
            c.config_digest.blob_path(),
            Payload::Bytes(img.config.clone()),
        );
        let layer_paths = if as_stored {
            let mut paths = Vec::new();
            for l in &c.layers {
                let path = l.digest.blob_path();
                if !m.contains_key(&path) {
                    m.insert(path.clone(), source_blob(blobs, l.digest, l.size)?);
                }
                paths.push(path);
            }
            index.extend(index_entries(&c));
            m.insert(
                c.manifest_digest.blob_path(),
                Payload::Bytes(img.manifest.clone()),
            );
            paths
        } else {
            uncompressed_docker_layers(&mut m, &mut index, i, img, &c, blobs)?
        };
        let tags: Vec<String> = img
            .tags
            .iter()
            .filter(|t| t.tag().is_some())
            .map(|t| t.name_only().familiar() + ":" + t.tag().unwrap_or_default())
            .collect();
        entries.push(DockerEntry {
            config: c.config_digest.blob_path(),
            repo_tags: (!tags.is_empty()).then_some(tags),
            layers: layer_paths,
        });
    }
    m.insert(
        "manifest.json".into(),
        Payload::Bytes(serde_json::to_vec(&entries).expect("manifest.json serializes")),
    );
    m.insert("index.json".into(), Payload::Bytes(build_index(&index)));
    m.insert("oci-layout".into(), Payload::Bytes(OCI_LAYOUT.to_vec()));
    Ok(m)
}

/// Writes the members as a tar with fixed headers.
fn write_tar<W: Write>(
    w: W,
    members: Members,
    blobs: &dyn BlobSource,
    dest: &Path,
) -> Result<W, ArchiveError> {
    let werr = |source| ArchiveError::Write {
        dest: dest.to_path_buf(),
        source,
    };
    let mut b = tar::Builder::new(w);
    for (name, payload) in members {
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(payload.size());
        match payload {
            Payload::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                b.append_data(&mut h, &name, io::empty()).map_err(werr)?;
            }
            Payload::Bytes(bytes) => {
                h.set_mode(0o644);
                b.append_data(&mut h, &name, &bytes[..]).map_err(werr)?;
            }
            Payload::Temp { file, size } => {
                h.set_mode(0o644);
                // take(size): the tar header promised exactly this many bytes.
                b.append_data(&mut h, &name, file.take(size))
                    .map_err(werr)?;
            }
            Payload::Blob { digest, size } => {
                h.set_mode(0o644);
                let raw = blobs
                    .open(&digest)
                    .map_err(|source| ArchiveError::Blob { digest, source })?;
                let r = VerifyingReader::new(raw, digest, Some(size), format!("blob {digest}"));
                b.append_data(&mut h, &name, r)
                    .map_err(|e| match ContentMismatch::find(&e) {
                        Some(_) => ArchiveError::Blob { digest, source: e },
                        None => werr(e),
                    })?;
            }
        }
    }
    b.into_inner().map_err(werr)
}

/// Writes a docker-archive (the `docker save` format, as Docker ≥ 25 writes it): configs and
/// **uncompressed** layers under `blobs/sha256/`, `manifest.json` with `RepoTags`, and an OCI
/// `index.json` + `oci-layout` over the same blobs. Compressed layers are decompressed (docker
/// load checks layer files against the config's diff IDs). Returns the writer.
pub fn write_docker_archive<W: Write>(
    w: W,
    images: &[ExportImage],
    blobs: &dyn BlobSource,
) -> Result<W, ArchiveError> {
    let members = docker_members(images, blobs, false)?;
    write_tar(w, members, blobs, Path::new("docker-archive"))
}

/// Writes a docker-archive as BuildKit's docker exporter writes one: layer blobs as the
/// manifest names them (gzip or zstd ones stay compressed; `docker load` decompresses them),
/// `manifest.json` naming those blobs, and an `index.json` naming the manifest itself (docker
/// or OCI media types, as given). Returns the writer.
pub fn write_docker_archive_as_stored<W: Write>(
    w: W,
    images: &[ExportImage],
    blobs: &dyn BlobSource,
) -> Result<W, ArchiveError> {
    let members = docker_members(images, blobs, true)?;
    write_tar(w, members, blobs, Path::new("docker-archive"))
}

/// Writes an oci-archive: a tar of an OCI image layout, blobs as stored (compressed layers
/// stay compressed). Returns the writer.
pub fn write_oci_archive<W: Write>(
    w: W,
    images: &[ExportImage],
    blobs: &dyn BlobSource,
) -> Result<W, ArchiveError> {
    let (members, _) = oci_members(images, blobs)?;
    write_tar(w, members, blobs, Path::new("oci-archive"))
}

/// Writes an oci-archive holding `images` and multi-platform `indexes` (each index blob as
/// given, so its digest stays; `index.json` names the index with its tags, as
/// `skopeo copy --all` and docker's containerd store write one). Returns the writer.
pub fn write_oci_archive_with_indexes<W: Write>(
    w: W,
    images: &[ExportImage],
    indexes: &[ExportIndex],
    blobs: &dyn BlobSource,
) -> Result<W, ArchiveError> {
    let (members, _) = oci_members_with_indexes(images, indexes, blobs)?;
    write_tar(w, members, blobs, Path::new("oci-archive"))
}

/// Writes (or adds to) an OCI image layout directory. Blobs already present with the right
/// size are kept; new ones are written to a temporary file and renamed into place. Existing
/// `index.json` entries stay unless a new image takes their name. `index.json` is replaced
/// last, atomically, so an interrupted write never leaves it naming missing blobs.
pub fn write_oci_layout(
    dir: &Path,
    images: &[ExportImage],
    blobs: &dyn BlobSource,
) -> Result<(), ArchiveError> {
    let werr = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ArchiveError::Write { dest: p, source }
    };
    let (members, new_entries) = oci_members(images, blobs)?;
    let blob_dir = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blob_dir).map_err(werr(&blob_dir))?;
    for (name, payload) in members {
        let path = dir.join(&name);
        match payload {
            Payload::Dir => {}
            Payload::Bytes(bytes) if name.starts_with("blobs/") => {
                if !present(&path, bytes.len() as u64) {
                    atomic_write(&path, |f| f.write_all(&bytes)).map_err(werr(&path))?;
                }
            }
            Payload::Blob { digest, size } => {
                if !present(&path, size) {
                    let raw = blobs
                        .open(&digest)
                        .map_err(|source| ArchiveError::Blob { digest, source })?;
                    let mut r =
                        VerifyingReader::new(raw, digest, Some(size), format!("blob {digest}"));
                    atomic_write(&path, |f| io::copy(&mut r, f).map(|_| ())).map_err(|e| {
                        match ContentMismatch::find(&e) {
                            Some(_) => ArchiveError::Blob { digest, source: e },
                            None => ArchiveError::Write {
                                dest: path.clone(),
                                source: e,
                            },
                        }
                    })?;
                }
            }
            // index.json is merged below; oci-layout is fixed.
            Payload::Bytes(_) | Payload::Temp { .. } => {}
        }
    }
    let layout = dir.join("oci-layout");
    atomic_write(&layout, |f| f.write_all(OCI_LAYOUT)).map_err(werr(&layout))?;

    let index_path = dir.join("index.json");
    let mut entries: Vec<serde_json::Value> = match fs::read(&index_path) {
        Ok(bytes) => {
            let v: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| ArchiveError::BadJson {
                    path: dir.to_path_buf(),
                    member: "index.json".into(),
                    what: "image index",
                    source: e,
                })?;
            v.get("manifests")
                .and_then(|m| m.as_array())
                .cloned()
                .unwrap_or_default()
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(werr(&index_path)(e)),
    };
    let taken: Vec<&String> = new_entries
        .iter()
        .filter_map(|d| d.annotations.get(ANNOTATION_IMAGE_NAME))
        .collect();
    entries.retain(|e| {
        let name = e
            .get("annotations")
            .and_then(|a| a.get(ANNOTATION_IMAGE_NAME))
            .and_then(|n| n.as_str());
        !name.is_some_and(|n| taken.iter().any(|t| t.as_str() == n))
    });
    for d in &new_entries {
        entries.push(serde_json::to_value(d).expect("descriptor serializes"));
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Index {
        schema_version: u32,
        media_type: &'static str,
        manifests: Vec<serde_json::Value>,
    }
    let bytes = serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: media_types::OCI_INDEX,
        manifests: entries,
    })
    .expect("index serializes");
    atomic_write(&index_path, |f| f.write_all(&bytes)).map_err(werr(&index_path))?;
    Ok(())
}

fn present(path: &Path, size: u64) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == size)
}

/// Writes through a temporary file in the same directory, fsyncs, renames into place.
fn atomic_write(path: &Path, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let dir: PathBuf = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    fill(tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
