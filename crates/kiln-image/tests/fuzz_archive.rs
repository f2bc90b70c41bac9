//! Bounded fuzzing of the archive readers: docker-archives and oci-archives written by kiln
//! (layers uncompressed, gzip and zstd; the archive itself plain or compressed) are mutated
//! as bytes, and member by member (contents, names, dropped and repeated members, then a
//! valid tar again, so mutations reach the JSON and digest checks). Opening, listing,
//! verifying and streaming layers must never panic, and every error names the archive.
//! `KILN_FUZZ_CASES=100000 cargo test --release -p kiln-image --test fuzz_archive`.

mod common;

use std::io::Read;
use std::path::Path;

use common::*;
use kiln_image::archive::MemoryBlobSource;
use kiln_image::{Compression, open_archive, write_docker_archive, write_oci_archive};
use kiln_test::fuzz::{self, Rng};

/// Archives kiln writes: both formats, each layer compression, one and two images.
fn corpus() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let mut blobs = MemoryBlobSource::new();
        let a = two_layer(&mut blobs, c, &["app:1", "app:latest"]);
        let b = make_image(
            &mut blobs,
            &[layer_tar(&[("x/y", b"z")])],
            c,
            &["localhost:5000/other/img:2"],
            "arm64",
        );
        for images in [
            vec![a.export.clone()],
            vec![a.export.clone(), b.export.clone()],
        ] {
            out.push(write_docker_archive(Vec::new(), &images, &blobs).unwrap());
            out.push(write_oci_archive(Vec::new(), &images, &blobs).unwrap());
        }
    }
    // Whole-archive compression, as `docker save | gzip` makes.
    let plain = out[0].clone();
    out.push(compress(&plain, Compression::Gzip));
    out.push(compress(&plain, Compression::Zstd));
    out
}

/// A tar's regular members (name, bytes); `None` when it is not a readable plain tar.
fn members(tar: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut ar = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in ar.entries().ok()? {
        let mut e = e.ok()?;
        if e.header().entry_type().is_dir() {
            continue;
        }
        let name = e.path().ok()?.to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).ok()?;
        out.push((name, data));
    }
    Some(out)
}

/// A tar of raw members; names are written as bytes (hostile ones included), cut to fit.
fn tar_of(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        let bytes = &name.as_bytes()[..name.len().min(99)];
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

const JSON_DICT: &[&[u8]] = &[
    b"\"",
    b",",
    b"[",
    b"]",
    b"{",
    b"}",
    b":",
    b"null",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"\"../../etc/passwd\"",
    b"\"/abs\"",
    b"\"sha256:\"",
    b"\"sha512:00\"",
    b"\"blobs/sha256/\"",
    b"\"Layers\":[]",
    b"\"RepoTags\":[\"::\"]",
    b"\"mediaType\":\"x\"",
    b"\"size\":0",
    b"\\u0000",
];

const NAMES: &[&str] = &[
    "manifest.json",
    "index.json",
    "oci-layout",
    "repositories",
    "../escape",
    "/abs/path",
    "blobs/sha256/../../x",
    "blobs/sha256/",
    "a/../manifest.json",
    "./manifest.json",
    "",
];

/// One generated archive: a byte mutation, or a member-level one.
fn archive(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let base = rng.pick(corpus).clone();
    let Some(mut ms) = members(&base).filter(|_| !rng.one_in(4)) else {
        let mut d = base;
        fuzz::mutate(rng, &mut d, corpus, JSON_DICT);
        return d;
    };
    for _ in 0..1 + rng.below(3) {
        if ms.is_empty() {
            break;
        }
        let i = rng.below(ms.len());
        match rng.below(6) {
            0..=2 => {
                let (_, data) = &mut ms[i];
                let others: Vec<Vec<u8>> = Vec::new();
                fuzz::mutate(rng, data, &others, JSON_DICT);
            }
            3 => ms[i].0 = rng.pick(NAMES).to_string(),
            4 => {
                ms.remove(i);
            }
            _ => {
                let m = ms[i].clone();
                ms.push(m);
            }
        }
    }
    tar_of(&ms)
}

/// Everything a reader of the archive does; panics only if kiln does.
fn read_everything(path: &Path) {
    let shown = path.display().to_string();
    let named = |e: &dyn std::fmt::Display| {
        let s = e.to_string();
        assert!(
            s.contains(&shown),
            "an error does not name the archive: {s}"
        );
    };
    let r = match open_archive(path) {
        Ok(r) => r,
        Err(e) => return named(&e),
    };
    let _ = r.format();
    for img in r.images() {
        let _ = (
            img.names.len(),
            img.ref_names.len(),
            img.platform.to_string(),
        );
        for l in &img.layers {
            if let Err(e) = l.verify() {
                named(&e);
            }
            match l.open_uncompressed() {
                // Read a bounded amount: a verified layer ends, a broken one errors.
                Ok(s) => {
                    let mut buf = Vec::new();
                    let _ = s.take(1 << 20).read_to_end(&mut buf);
                }
                Err(e) => named(&e),
            }
        }
    }
    if let Err(e) = r.verify() {
        named(&e);
    }
}

#[test]
fn mutated_archives_never_panic() {
    let corpus = corpus();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive.tar");
    let mut opened = 0;
    fuzz::run(
        "archive-mutations",
        3000,
        |rng| archive(rng, &corpus),
        |bytes| {
            std::fs::write(&path, bytes).unwrap();
            opened += usize::from(open_archive(&path).is_ok());
            read_everything(&path);
        },
    );
    // Member mutations that miss the checked parts leave archives that open: the readers
    // were reached past the tar layer.
    assert!(
        opened > fuzz::cases(3000) / 20,
        "only {opened} mutants opened"
    );
}

#[test]
fn random_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.tar");
    fuzz::run(
        "archive-random",
        1000,
        |rng| {
            // Random bytes behind a random known magic, so decoders are entered too.
            const MAGIC: &[&[u8]] = &[b"", b"\x1f\x8b\x08", b"\x28\xb5\x2f\xfd", b"manifest.json"];
            let mut d = rng.pick(MAGIC).to_vec();
            d.extend(rng.bytes(4096));
            d
        },
        |bytes| {
            std::fs::write(&path, bytes).unwrap();
            read_everything(&path);
        },
    );
}
