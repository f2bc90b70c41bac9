//! Building OCI manifests and indexes as bytes, deterministically.
//!
//! oci-spec's types keep annotations in a `HashMap`, so serializing them twice can give two
//! byte strings (and two digests). These small mirror types use `BTreeMap` and a fixed field
//! order; digests are taken over exactly the bytes returned.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::compression::media_types;
use crate::digest::Digest;
use crate::platform::Platform;

/// Annotation holding the full image name (containerd, Docker ≥ 25).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// OCI's reference-name annotation (kiln writes the tag here, as Docker does).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One content descriptor, serialized in OCI's field order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescriptorOut {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformOut>,
}

/// A platform inside a descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlatformOut {
    pub architecture: String,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl From<&Platform> for PlatformOut {
    fn from(p: &Platform) -> Self {
        PlatformOut {
            architecture: p.architecture.clone(),
            os: p.os.clone(),
            variant: p.variant.clone(),
        }
    }
}

impl DescriptorOut {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        DescriptorOut {
            media_type: media_type.into(),
            digest,
            size,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: &'a DescriptorOut,
    layers: &'a [DescriptorOut],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexOut<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: &'a [DescriptorOut],
}

/// An OCI image manifest (`application/vnd.oci.image.manifest.v1+json`) for this config and
/// these layers, as compact JSON; returns the bytes and their digest.
pub fn build_manifest(config: &DescriptorOut, layers: &[DescriptorOut]) -> (Vec<u8>, Digest) {
    let bytes = serde_json::to_vec(&ManifestOut {
        schema_version: 2,
        media_type: media_types::OCI_MANIFEST,
        config,
        layers,
    })
    .expect("manifest serialization cannot fail");
    let d = Digest::of(&bytes);
    (bytes, d)
}

/// An OCI image index over `manifests`, as compact JSON.
pub fn build_index(manifests: &[DescriptorOut]) -> Vec<u8> {
    serde_json::to_vec(&IndexOut {
        schema_version: 2,
        media_type: media_types::OCI_INDEX,
        manifests,
    })
    .expect("index serialization cannot fail")
}

/// Parses an image config, tolerating what Docker leaves out: an image without layers has
/// `"rootfs": {"type": "layers"}` with no `diff_ids` (Go's `omitempty`), which oci-spec
/// requires. Parse from the exact stored bytes; never re-serialize them.
pub fn parse_image_config(
    bytes: &[u8],
) -> Result<oci_spec::image::ImageConfiguration, serde_json::Error> {
    let mut v: serde_json::Value = serde_json::from_slice(bytes)?;
    if let Some(obj) = v.as_object_mut() {
        let rootfs = obj
            .entry("rootfs")
            .or_insert_with(|| serde_json::json!({"type": "layers"}));
        if let Some(r) = rootfs.as_object_mut() {
            match r.get("diff_ids") {
                None | Some(serde_json::Value::Null) => {
                    r.insert("diff_ids".into(), serde_json::Value::Array(Vec::new()));
                }
                Some(_) => {}
            }
        }
    }
    serde_json::from_value(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_without_layers_parses() {
        let c = parse_image_config(
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#,
        )
        .unwrap();
        assert!(c.rootfs().diff_ids().is_empty());
        let c = parse_image_config(
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":null}}"#,
        )
        .unwrap();
        assert!(c.rootfs().diff_ids().is_empty());
        assert!(parse_image_config(b"[1]").is_err());
        assert!(parse_image_config(b"{").is_err());
    }
}
