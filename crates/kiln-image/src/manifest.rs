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
