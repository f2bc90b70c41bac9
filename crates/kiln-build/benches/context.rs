//! Context checksum of a generated 20,000-file tree: cold (every file read and hashed) and
//! warm (the metadata cache answers; no file contents read).

use std::fs;
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use kiln_build::context::{BuildContext, ChecksumCache, SelectOptions};

const DIRS: usize = 200;
const FILES_PER_DIR: usize = 100;

fn generate(root: &Path) {
    for d in 0..DIRS {
        let dir = root.join(format!("pkg{d:03}/src"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..FILES_PER_DIR {
            // 0.5 to 4 KiB of varied content per file (~45 MiB in all).
            let n = 512 + (d * 131 + f * 17) % 3584;
            let body: Vec<u8> = (0..n).map(|i| (i * 31 + d + f) as u8).collect();
            fs::write(dir.join(format!("file{f:03}.js")), body).unwrap();
        }
    }
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path());
    // Files changed within the last second are not cached (coarse timestamps).
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let cx = BuildContext::open_with_dockerignore(tmp.path()).unwrap();
    let all = vec![".".to_string()];
    let opts = SelectOptions::default();
    let mut g = c.benchmark_group("context_checksum_20k");
    g.sample_size(10);
    g.bench_function("cold", |b| {
        b.iter(|| {
            let cache = ChecksumCache::in_memory();
            black_box(cx.checksum(&all, &opts, &cache).unwrap())
        })
    });
    let cache_file = tmp.path().join("../kiln-bench-context-cache");
    let warm = ChecksumCache::load(&cache_file);
    cx.checksum(&all, &opts, &warm).unwrap();
    warm.save().unwrap();
    g.bench_function("warm (cache loaded from disk)", |b| {
        b.iter(|| {
            let cache = ChecksumCache::load(&cache_file);
            let k = cx.checksum(&all, &opts, &cache).unwrap();
            assert_eq!(cache.stats().misses, 0);
            black_box(k)
        })
    });
    g.finish();
    let _ = fs::remove_file(&cache_file);
}

criterion_group!(benches, bench);
criterion_main!(benches);
