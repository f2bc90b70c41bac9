//! Rough throughput of the archive code on one big layer: write docker-archive (gunzip while
//! writing), write oci-archive, open + verify both. Compare with skopeo on the same files:
//! `cargo run --release -p kiln-image --example archive_speed -- [MiB] [DIR]`.

use std::fs::File;
use std::io::Write;
use std::time::Instant;

use kiln_image::archive::MemoryBlobSource;
use kiln_image::manifest::{DescriptorOut, build_manifest};
use kiln_image::{Compression, Digest, ExportImage, ImageRef, open_archive};

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(256);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/tmp".into()));

    // A layer tar of files that compress about as well as binaries do.
    let mut b = tar::Builder::new(Vec::new());
    let mut state = 0x1234_5678u64;
    for i in 0..mib {
        let data: Vec<u8> = (0..1 << 20)
            .map(|j| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if j % 3 == 0 {
                    (state & 0xff) as u8
                } else {
                    b'a' + (j % 7) as u8
                }
            })
            .collect();
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, format!("f/{i}"), &data[..]).unwrap();
    }
    let layer = b.into_inner().unwrap();
    let t = Instant::now();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer).unwrap();
    let gz = gz.finish().unwrap();
    println!(
        "layer {} MiB, gzip {} MiB ({:.2?})",
        layer.len() >> 20,
        gz.len() >> 20,
        t.elapsed()
    );

    let mut blobs = MemoryBlobSource::new();
    let diff_id = Digest::of(&layer);
    let gz_len = gz.len() as u64;
    let ld = blobs.insert(gz);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    }))
    .unwrap();
    let cd = DescriptorOut::new(
        kiln_image::compression::media_types::OCI_CONFIG,
        Digest::of(&config),
        config.len() as u64,
    );
    let (manifest, _) = build_manifest(
        &cd,
        &[DescriptorOut::new(
            Compression::Gzip.layer_media_type(true),
            ld,
            gz_len,
        )],
    );
    let img = ExportImage {
        manifest,
        config,
        tags: vec![ImageRef::parse("speed:1").unwrap()],
    };

    let d = dir.join("kiln-speed-docker.tar");
    let t = Instant::now();
    kiln_image::write_docker_archive(
        File::create(&d).unwrap(),
        std::slice::from_ref(&img),
        &blobs,
    )
    .unwrap();
    println!("write docker-archive (gunzip + hash): {:.2?}", t.elapsed());
    let o = dir.join("kiln-speed-oci.tar");
    let t = Instant::now();
    kiln_image::write_oci_archive(
        File::create(&o).unwrap(),
        std::slice::from_ref(&img),
        &blobs,
    )
    .unwrap();
    println!("write oci-archive (copy + hash): {:.2?}", t.elapsed());
    for p in [&d, &o] {
        let t = Instant::now();
        let r = open_archive(p).unwrap();
        let opened = t.elapsed();
        r.verify().unwrap();
        println!(
            "{}: open {opened:.2?}, verify {:.2?}",
            p.display(),
            t.elapsed()
        );
    }
}
