//! Layer export and extraction throughput on a generated tree (~200 MB, 2,000 files of mixed
//! compressible content in 40 directories). `KILN_BENCH_MB` changes the size.
//!
//! cargo bench -p kiln-snapshot --bench export

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_snapshot::{
    Compression, ExportOptions, ExtractOptions, export_layer, extract_layer, remove_dir_all,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn generate(root: &Path, total_mb: usize) -> u64 {
    let files = 2000;
    let per_file = total_mb * 1024 * 1024 / files;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let words: Vec<&[u8]> = vec![
        b"layer ",
        b"kiln ",
        b"overlay ",
        b"whiteout ",
        b"0123456789 ",
        b"\n",
    ];
    for i in 0..files {
        let dir = root.join(format!("d{:02}", i % 40));
        fs::create_dir_all(&dir).unwrap();
        let mut data = Vec::with_capacity(per_file);
        // Half text-like (compresses ~4x), half random-ish (hardly compresses): like binaries.
        while data.len() < per_file {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 2 == 0 {
                data.extend_from_slice(words[(x % words.len() as u64) as usize]);
            } else {
                data.extend_from_slice(&x.to_le_bytes());
            }
        }
        data.truncate(per_file);
        fs::write(dir.join(format!("f{i:05}")), &data).unwrap();
    }
    (per_file * files) as u64
}

fn bench(c: &mut Criterion) {
    let mb: usize = std::env::var("KILN_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let bytes = generate(&src, mb);

    let mut g = c.benchmark_group("export");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Bytes(bytes));
    for (name, compression) in [
        ("uncompressed", Compression::None),
        ("gzip", Compression::Gzip),
        ("zstd", Compression::Zstd),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let opts = ExportOptions {
                    compression,
                    ..Default::default()
                };
                export_layer(&src, &opts, std::io::sink()).unwrap()
            })
        });
    }
    g.finish();

    let tar_path = tmp.path().join("layer.tar");
    let opts = ExportOptions {
        compression: Compression::None,
        ..Default::default()
    };
    export_layer(
        &src,
        &opts,
        std::io::BufWriter::new(fs::File::create(&tar_path).unwrap()),
    )
    .unwrap();
    let mut g = c.benchmark_group("extract");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Bytes(bytes));
    let fresh = |n: &str| -> PathBuf {
        let d = tmp.path().join(n);
        let _ = remove_dir_all(&d);
        fs::create_dir(&d).unwrap();
        d
    };
    g.bench_function("kiln", |b| {
        b.iter(|| {
            let d = fresh("kiln-out");
            let f = fs::File::open(&tar_path).unwrap();
            extract_layer(
                std::io::BufReader::with_capacity(1 << 20, f),
                &d,
                &ExtractOptions::default(),
            )
            .unwrap()
        })
    });
    g.bench_function("tar -x", |b| {
        b.iter(|| {
            let d = fresh("tar-out");
            let st = std::process::Command::new("tar")
                .args(["--xattrs", "--same-owner", "-xpf"])
                .arg(&tar_path)
                .arg("-C")
                .arg(&d)
                .status()
                .unwrap();
            assert!(st.success());
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
