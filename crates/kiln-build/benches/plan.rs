//! Parse and plan generated 100,000-line Dockerfiles (only ENV lines, and a mix of
//! instructions) on `scratch`, so no store or image is needed: anything quadratic in the
//! number of instructions in planning (the image config's ENV, each RUN's environment) shows.
//! The generators are those of `kiln-dockerfile/benches/parse.rs`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_build::plan::{ImageSource, PlanOptions, ResolvedImage, plan};

/// Every stage is on scratch or on another stage: an image lookup is a bug in the bench.
struct NoImages;

impl ImageSource for NoImages {
    fn resolve(
        &self,
        reference: &str,
        _: &kiln_image::Platform,
    ) -> kiln_build::Result<ResolvedImage> {
        panic!("the bench Dockerfiles use no image, asked for {reference}")
    }
}

/// `FROM scratch` and `lines - 1` ENV lines, each setting a new variable (1.7 MB).
fn generate_env(lines: usize) -> String {
    let mut s = String::from("FROM scratch\n");
    for i in 0..lines - 1 {
        s.push_str(&format!("ENV V{i}=x{i}\n"));
    }
    s
}

/// `lines` lines of ENV, RUN, COPY, LABEL, WORKDIR, USER, EXPOSE with expansions, ten global
/// and stage ARGs, and a new stage on the previous one every 5,000 lines.
fn generate_mix(lines: usize) -> String {
    let mut s = String::new();
    for a in 0..10 {
        s.push_str(&format!("ARG G{a}=g{a}\n"));
    }
    s.push_str("FROM scratch AS s0\nARG G0\nARG G1\n");
    let mut stage = 0;
    for i in s.lines().count()..lines {
        if i % 5000 == 0 {
            stage += 1;
            s.push_str(&format!("FROM s{} AS s{stage}\n", stage - 1));
            continue;
        }
        // Variables are set again and again (150 names), as in real files: a file that
        // only adds variables between RUNs passes limits::MAX_RUN_ENV_BYTES.
        let e = (i / 8) % 50;
        s.push_str(&match i % 8 {
            0 => format!("ENV E{e}=${{G0:-e}}-{i}\n"),
            1 => format!("RUN echo {i} $E{e} && true\n"),
            2 => format!("LABEL l{i}=\"$E{e}\"\n"),
            3 => format!("WORKDIR /w/${{G1}}/{i}\n"),
            4 => format!("COPY --chown=1000 f{i} /d/$E{e}/\n"),
            5 => format!("ENV P{e}=${{E{e}%-*}} Q{e}=x\n"),
            6 => format!("USER u{i}\n"),
            _ => format!("EXPOSE {}\n", i % 60000 + 1),
        });
    }
    s
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("plan_100k");
    g.sample_size(10);
    for (name, src) in [
        ("env", generate_env(100_000)),
        ("mix", generate_mix(100_000)),
    ] {
        g.throughput(Throughput::Bytes(src.len() as u64));
        g.bench_function(format!("parse_and_plan_{name}"), |b| {
            b.iter(|| {
                let df = kiln_dockerfile::parse(black_box(&src)).unwrap();
                plan(&df, &PlanOptions::default(), &NoImages).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
