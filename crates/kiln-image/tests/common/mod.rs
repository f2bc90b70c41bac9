//! Test images built from scratch: layer tars, configs and manifests made here, so every
//! digest in a test is computed, never pasted.
#![allow(dead_code)]

use std::io::{Read, Write};

use kiln_image::archive::MemoryBlobSource;
use kiln_image::manifest::{DescriptorOut, build_manifest};
use kiln_image::{Compression, Digest, ExportImage, ImageRef};

/// An uncompressed layer tar holding these files (mode 0644, mtime 0).
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn compress(data: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

pub fn config_json(diff_ids: &[Digest], arch: &str) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(|d| d.to_string()).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ids},
        "history": [{"created_by": "test"}],
    }))
    .unwrap()
}

/// A test image with the given layers, stored compressed with `c` in `blobs`.
pub struct TestImage {
    pub export: ExportImage,
    pub uncompressed: Vec<Vec<u8>>,
    pub layer_digests: Vec<Digest>,
    pub diff_ids: Vec<Digest>,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
}

pub fn make_image(
    blobs: &mut MemoryBlobSource,
    layers: &[Vec<u8>],
    c: Compression,
    tags: &[&str],
    arch: &str,
) -> TestImage {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_digests = Vec::new();
    for l in layers {
        diff_ids.push(Digest::of(l));
        let blob = compress(l, c);
        let size = blob.len() as u64;
        let d = blobs.insert(blob);
        layer_digests.push(d);
        descs.push(DescriptorOut::new(c.layer_media_type(true), d, size));
    }
    let config = config_json(&diff_ids, arch);
    let config_digest = Digest::of(&config);
    let cd = DescriptorOut::new(
        kiln_image::compression::media_types::OCI_CONFIG,
        config_digest,
        config.len() as u64,
    );
    let (manifest, manifest_digest) = build_manifest(&cd, &descs);
    blobs.insert(config.clone());
    blobs.insert(manifest.clone());
    TestImage {
        export: ExportImage {
            manifest,
            config,
            tags: tags.iter().map(|t| ImageRef::parse(t).unwrap()).collect(),
        },
        uncompressed: layers.to_vec(),
        layer_digests,
        diff_ids,
        manifest_digest,
        config_digest,
    }
}

/// The standard two-layer image.
pub fn two_layer(blobs: &mut MemoryBlobSource, c: Compression, tags: &[&str]) -> TestImage {
    let l1 = layer_tar(&[("etc/hello", b"hello\n"), ("bin/tool", &[7u8; 3000])]);
    let l2 = layer_tar(&[("etc/hello", b"bye\n"), ("etc/.wh.gone", b"")]);
    make_image(blobs, &[l1, l2], c, tags, "amd64")
}

pub fn read_all(mut r: impl Read) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.read_to_end(&mut v)?;
    Ok(v)
}

/// Builds a tar from raw (name, bytes) members, with no name checks (for hostile archives).
pub fn raw_tar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        // Write the name bytes directly: tar::Builder refuses `..`, hostile archives don't.
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A symlink member in a raw tar.
pub fn raw_tar_with_link(members: &[(&str, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_path(name).unwrap();
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    for (name, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_path(name).unwrap();
        let t = target.as_bytes();
        h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }
    b.into_inner().unwrap()
}
