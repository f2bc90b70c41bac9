//! Reading docker-archives (`docker save`): `manifest.json` lists each image's config and
//! layer files. Docker ≥ 25 also writes an OCI layout in the same tar; when present, its
//! manifests are attached to the matching images.

use std::sync::Arc;

use oci_spec::image::ImageConfiguration;
use serde::Deserialize;

use super::source::Source;
use super::{
    ArchiveError, ArchiveImage, ArchiveLayer, check_bytes, diff_ids, oci_read, parse_json, sniff,
};
use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::ImageRef;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The digest a member's name promises: `blobs/sha256/<hex>` or `<hex>.json` (the image ID
/// naming of docker < 25).
fn digest_from_name(name: &str) -> Option<Digest> {
    if let Some(hex) = name.strip_prefix("blobs/sha256/") {
        return Digest::from_hex(hex).ok();
    }
    if let Some(hex) = name.strip_suffix(".json")
        && !hex.contains('/')
    {
        return Digest::from_hex(hex).ok();
    }
    None
}

pub(crate) fn read(source: &Arc<Source>) -> Result<Vec<ArchiveImage>, ArchiveError> {
    let bytes = source.read_small("manifest.json", "a docker-archive")?;
    let entries: Vec<Entry> =
        parse_json(source, "manifest.json", "docker-archive manifest", &bytes)?;
    if entries.is_empty() {
        return Err(ArchiveError::Invalid {
            path: source.path().to_path_buf(),
            member: "manifest.json".into(),
            reason: "lists no images".into(),
        });
    }
    // Docker ≥ 25: the same blobs are also described by an OCI index.
    let oci = if source.contains("index.json")? && source.contains("oci-layout")? {
        oci_read::read(source)?.0
    } else {
        Vec::new()
    };

    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let needed_by = format!("manifest.json entry {i}");
        let config_member = super::source::clean_name(source.path(), &e.config)?;
        let config_bytes = source.read_small(&config_member, &needed_by)?;
        let config_digest = Digest::of(&config_bytes);
        if let Some(d) = digest_from_name(&config_member) {
            check_bytes(source, &config_member, &config_bytes, &d, None)?;
        }
        let config: ImageConfiguration =
            super::parse_config(source, &config_member, &config_bytes)?;
        let diffs = diff_ids(source, &config_member, &config)?;
        if diffs.len() != e.layers.len() {
            return Err(ArchiveError::Invalid {
                path: source.path().to_path_buf(),
                member: "manifest.json".into(),
                reason: format!(
                    "entry {i} lists {} layers but its config {config_member} has {} diff_ids",
                    e.layers.len(),
                    diffs.len()
                ),
            });
        }
        let oci_match = oci.iter().find(|img| img.config_digest == config_digest);
        let mut layers = Vec::with_capacity(e.layers.len());
        for (li, (name, diff_id)) in e.layers.iter().zip(diffs).enumerate() {
            let member = super::source::clean_name(source.path(), name)?;
            let size = source
                .size(&member)?
                .ok_or_else(|| ArchiveError::MissingMember {
                    path: source.path().to_path_buf(),
                    member: member.clone(),
                    needed_by: needed_by.clone(),
                })?;
            let compression = sniff(source, &member, &needed_by)?;
            let from_oci = oci_match
                .and_then(|m| m.layers.get(li))
                .filter(|l| l.member == member);
            let media_type = from_oci
                .map(|l| l.media_type.clone())
                .unwrap_or_else(|| compression.layer_media_type(false).to_string());
            layers.push(ArchiveLayer {
                media_type,
                compression,
                digest: digest_from_name(&member).filter(|_| member.starts_with("blobs/")),
                diff_id: Some(diff_id),
                size,
                member,
                source: source.clone(),
            });
        }
        let mut names = Vec::new();
        for tag in e.repo_tags.unwrap_or_default() {
            let r = ImageRef::parse(&tag).map_err(|err| ArchiveError::Invalid {
                path: source.path().to_path_buf(),
                member: "manifest.json".into(),
                reason: format!("RepoTags entry {tag:?}: {err}"),
            })?;
            if !names.contains(&r) {
                names.push(r);
            }
        }
        let platform = Platform::of_config(&config);
        out.push(ArchiveImage {
            config_bytes,
            config_digest,
            config,
            layers,
            names,
            ref_names: oci_match.map(|m| m.ref_names.clone()).unwrap_or_default(),
            manifest: oci_match.and_then(|m| m.manifest.clone()),
            platform,
        });
    }
    Ok(out)
}
