//! Reading OCI image layouts (directory or tar): `oci-layout`, `index.json`, nested indexes,
//! `blobs/sha256/<hex>`.

use std::collections::HashMap;
use std::sync::Arc;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use super::source::Source;
use super::{
    ArchiveError, ArchiveImage, ArchiveIndex, ArchiveLayer, ArchiveManifest, diff_ids, parse_json,
    read_verified,
};
use crate::compression::{Compression, media_types};
use crate::digest::Digest;
use crate::manifest::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use crate::platform::Platform;
use crate::reference::ImageRef;

/// Nested indexes deeper than this are refused (a hostile layout could loop).
const MAX_DEPTH: usize = 8;

/// What a walk of `index.json` found: the images (each once) and the image indexes that list
/// them (each once).
#[derive(Default)]
struct Found {
    images: Vec<ArchiveImage>,
    seen: HashMap<Digest, usize>,
    indexes: Vec<ArchiveIndex>,
    seen_indexes: HashMap<Digest, usize>,
}

pub(crate) fn read(
    source: &Arc<Source>,
) -> Result<(Vec<ArchiveImage>, Vec<ArchiveIndex>), ArchiveError> {
    let layout = source.read_small("oci-layout", "an OCI layout")?;
    let v: serde_json::Value = parse_json(source, "oci-layout", "oci-layout file", &layout)?;
    if v.get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        return Err(ArchiveError::Invalid {
            path: source.path().to_path_buf(),
            member: "oci-layout".into(),
            reason: "missing imageLayoutVersion".into(),
        });
    }
    let bytes = source.read_small("index.json", "an OCI layout")?;
    let index: ImageIndex = parse_json(source, "index.json", "image index", &bytes)?;
    let mut found = Found::default();
    for desc in index.manifests() {
        let names = Names::from_descriptor(desc);
        walk(source, desc, &names, "index.json", 0, &mut found)?;
    }
    if found.images.is_empty() {
        return Err(ArchiveError::Invalid {
            path: source.path().to_path_buf(),
            member: "index.json".into(),
            reason: "names no image manifests".into(),
        });
    }
    Ok((found.images, found.indexes))
}

/// Names an index entry gives the image(s) below it.
#[derive(Clone, Default)]
struct Names {
    refs: Vec<ImageRef>,
    ref_names: Vec<String>,
}

impl Names {
    fn from_descriptor(desc: &Descriptor) -> Names {
        let mut n = Names::default();
        let Some(ann) = desc.annotations() else {
            return n;
        };
        if let Some(full) = ann.get(ANNOTATION_IMAGE_NAME)
            && let Ok(r) = ImageRef::parse(full)
        {
            n.refs.push(r);
        }
        if let Some(rn) = ann.get(ANNOTATION_REF_NAME) {
            n.ref_names.push(rn.clone());
            // A full reference (not a bare tag such as `latest` or `v1.2`) names the image.
            if n.refs.is_empty()
                && rn.contains(['/', ':', '@'])
                && let Ok(r) = ImageRef::parse(rn)
            {
                n.refs.push(r);
            }
        }
        n
    }

    fn merged(&self, child: &Names) -> Names {
        if child.refs.is_empty() && child.ref_names.is_empty() {
            self.clone()
        } else {
            child.clone()
        }
    }
}

fn descriptor_digest(
    source: &Source,
    desc: &Descriptor,
    parent: &str,
) -> Result<Digest, ArchiveError> {
    Digest::try_from(desc.digest()).map_err(|e| ArchiveError::Invalid {
        path: source.path().to_path_buf(),
        member: parent.to_string(),
        reason: format!("descriptor digest: {e}"),
    })
}

fn walk(
    source: &Arc<Source>,
    desc: &Descriptor,
    names: &Names,
    parent: &str,
    depth: usize,
    found: &mut Found,
) -> Result<Option<usize>, ArchiveError> {
    // Returns the position in `found.images` of the image `desc` names, if it names one.
    if depth > MAX_DEPTH {
        return Err(ArchiveError::Invalid {
            path: source.path().to_path_buf(),
            member: parent.into(),
            reason: format!("image indexes nested more than {MAX_DEPTH} deep"),
        });
    }
    let media_type = desc.media_type().to_string();
    let digest = descriptor_digest(source, desc, parent)?;
    let needed_by = format!("{parent} (descriptor {digest})");
    match media_type.as_str() {
        media_types::OCI_INDEX | media_types::DOCKER_MANIFEST_LIST => {
            // index.json names the image index; an index inside that one would make its
            // platforms and names ambiguous (whose tag, which arm/v7): refused, not guessed.
            if depth >= 1 {
                return Err(ArchiveError::Invalid {
                    path: source.path().to_path_buf(),
                    member: parent.into(),
                    reason: format!(
                        "it lists image index {digest} inside an image index: nested image indexes are not supported"
                    ),
                });
            }
            let bytes = read_verified(source, &digest, Some(desc.size()), &needed_by)?;
            let member = digest.blob_path();
            let index: ImageIndex = parse_json(source, &member, "image index", &bytes)?;
            let mut entries = Vec::with_capacity(index.manifests().len());
            for child in index.manifests() {
                let child_names = names.merged(&Names::from_descriptor(child));
                let image = walk(source, child, &child_names, &member, depth + 1, found)?;
                entries.push(image.map(|i| {
                    let platform = child
                        .platform()
                        .as_ref()
                        .map(Platform::from)
                        .unwrap_or_else(|| found.images[i].platform.clone());
                    (i, platform)
                }));
            }
            if entries.iter().any(Option::is_some) {
                match found.seen_indexes.get(&digest) {
                    Some(&i) => {
                        let known = &mut found.indexes[i];
                        for r in &names.refs {
                            if !known.names.contains(r) {
                                known.names.push(r.clone());
                            }
                        }
                    }
                    None => {
                        found.seen_indexes.insert(digest, found.indexes.len());
                        found.indexes.push(ArchiveIndex {
                            digest,
                            media_type,
                            bytes,
                            names: names.refs.clone(),
                            entries,
                        });
                    }
                }
            }
            Ok(None)
        }
        media_types::OCI_MANIFEST | media_types::DOCKER_MANIFEST => {
            // BuildKit attestations are image manifests too; they are not runnable images.
            if desc
                .annotations()
                .as_ref()
                .and_then(|a| a.get("vnd.docker.reference.type"))
                .is_some()
            {
                return Ok(None);
            }
            if let Some(&i) = found.seen.get(&digest) {
                let img = &mut found.images[i];
                for r in &names.refs {
                    if !img.names.contains(r) {
                        img.names.push(r.clone());
                    }
                }
                for r in &names.ref_names {
                    if !img.ref_names.contains(r) {
                        img.ref_names.push(r.clone());
                    }
                }
                return Ok(Some(i));
            }
            let Some(img) = read_image(source, desc, digest, media_type, names, &needed_by)? else {
                return Ok(None);
            };
            let i = found.images.len();
            found.seen.insert(digest, i);
            found.images.push(img);
            Ok(Some(i))
        }
        // Artifacts and other content an image store has no use for.
        _ => Ok(None),
    }
}

fn read_image(
    source: &Arc<Source>,
    desc: &Descriptor,
    digest: Digest,
    media_type: String,
    names: &Names,
    needed_by: &str,
) -> Result<Option<ArchiveImage>, ArchiveError> {
    let member = digest.blob_path();
    let bytes = read_verified(source, &digest, Some(desc.size()), needed_by)?;
    let manifest: ImageManifest = parse_json(source, &member, "image manifest", &bytes)?;
    let config_type = manifest.config().media_type().to_string();
    if config_type != media_types::OCI_CONFIG && config_type != media_types::DOCKER_CONFIG {
        // An artifact manifest (signature, SBOM, …), not an image.
        return Ok(None);
    }
    let config_digest = descriptor_digest(source, manifest.config(), &member)?;
    let config_bytes = read_verified(
        source,
        &config_digest,
        Some(manifest.config().size()),
        &format!("manifest {member}"),
    )?;
    let config_member = config_digest.blob_path();
    let config: ImageConfiguration = super::parse_config(source, &config_member, &config_bytes)?;
    let diffs = diff_ids(source, &config_member, &config)?;
    if diffs.len() != manifest.layers().len() {
        return Err(ArchiveError::Invalid {
            path: source.path().to_path_buf(),
            member: member.clone(),
            reason: format!(
                "manifest lists {} layers but config {config_member} has {} diff_ids",
                manifest.layers().len(),
                diffs.len()
            ),
        });
    }
    let mut layers = Vec::with_capacity(diffs.len());
    for (ld, diff_id) in manifest.layers().iter().zip(diffs) {
        let ldigest = descriptor_digest(source, ld, &member)?;
        let lmember = ldigest.blob_path();
        let lmedia = ld.media_type().to_string();
        let compression =
            Compression::from_media_type(&lmedia).map_err(|e| ArchiveError::Invalid {
                path: source.path().to_path_buf(),
                member: member.clone(),
                reason: format!("layer {ldigest}: {e}"),
            })?;
        let size = source
            .size(&lmember)?
            .ok_or_else(|| ArchiveError::MissingMember {
                path: source.path().to_path_buf(),
                member: lmember.clone(),
                needed_by: format!("manifest {member}"),
            })?;
        if size != ld.size() {
            return Err(ArchiveError::Invalid {
                path: source.path().to_path_buf(),
                member: lmember,
                reason: format!(
                    "blob is {size} bytes but manifest {member} says {}",
                    ld.size()
                ),
            });
        }
        layers.push(ArchiveLayer {
            media_type: lmedia,
            compression,
            digest: Some(ldigest),
            diff_id: Some(diff_id),
            size,
            member: lmember,
            source: source.clone(),
        });
    }
    // The image is what its config says; an index's label must agree with it (a label that
    // lies would put an amd64 image under arm64 and, since the image ID is the config's
    // digest, mislabel the genuine image too).
    let platform = Platform::of_config(&config);
    if let Some(label) = desc.platform().as_ref().map(Platform::from)
        && !label.matches(&platform)
    {
        return Err(ArchiveError::Invalid {
            path: source.path().to_path_buf(),
            member: member.clone(),
            reason: format!("its index lists it as {label}, but its config says {platform}"),
        });
    }
    Ok(Some(ArchiveImage {
        config_digest,
        config_bytes,
        config,
        layers,
        names: names.refs.clone(),
        ref_names: names.ref_names.clone(),
        manifest: Some(ArchiveManifest {
            bytes,
            digest,
            media_type,
            manifest,
        }),
        platform,
    }))
}
