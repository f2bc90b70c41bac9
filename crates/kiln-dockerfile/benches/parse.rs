//! Parse (and analyze) a generated 5,000-instruction Dockerfile with heredocs, continuations,
//! flags and variable expansions; and 100,000-line ones (only ENV lines, and a mix of
//! instructions), where anything quadratic in the number of instructions shows.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_dockerfile::{EvalOptions, analyze, parse};

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

/// About 5,000 instructions over 10 stages.
fn generate() -> String {
    let mut s = String::from("# syntax=docker/dockerfile:1\nARG BASE=alpine:3.20 VERSION=1.0\n");
    for stage in 0..10 {
        s.push_str(&format!("FROM ${{BASE}} AS stage{stage}\nARG VERSION\n"));
        for i in 0..62 {
            s.push_str(&format!(
                "ENV VAR_{i}=value-$VERSION-{i} OTHER_{i}=\"${{VAR_{i}:-default}}\"\n"
            ));
            s.push_str(&format!("RUN --mount=type=cache,target=/cache/{i},id=c{i} \\\n    echo step {i} \\\n    && make -j4 target-{i}\n"));
            s.push_str(&format!(
                "COPY --chown=1000:1000 --chmod=0644 src/{i}/ /app/${{VAR_{i}}}/\n"
            ));
            s.push_str(&format!("RUN <<EOF\nset -e\necho heredoc {i}\nEOF\n"));
            s.push_str(&format!("LABEL step{i}=\"$VERSION\" other=x\n"));
            s.push_str(&format!("WORKDIR /work/${{VAR_{i}%%-*}}\n"));
            s.push_str(&format!(
                "COPY <<-EOT /etc/conf-{i}\n\tkey=${{VERSION}}\n\tEOT\n"
            ));
            if stage > 0 {
                s.push_str(&format!("COPY --from=stage{} /app /prev/{i}\n", stage - 1));
            } else {
                s.push_str("EXPOSE 8080/tcp\n");
            }
        }
    }
    s
}

/// CPU time this thread has run, from /proc (Linux); lets a loaded machine still report what
/// one parse costs, since wall time there includes waiting for a core.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn report_cpu_time(src: &str) {
    const N: u32 = 30;
    let (Some(t0), wall) = (thread_cpu_ns(), std::time::Instant::now()) else {
        return;
    };
    for _ in 0..N {
        std::hint::black_box(parse(std::hint::black_box(src)).unwrap());
    }
    let (Some(t1), wall) = (thread_cpu_ns(), wall.elapsed()) else {
        return;
    };
    let cpu_ms = (t1 - t0) as f64 / 1e6 / f64::from(N);
    eprintln!(
        "parse: {cpu_ms:.2} ms CPU per parse ({:.1} MiB/s), {:.2} ms wall",
        src.len() as f64 / (cpu_ms / 1e3) / (1024.0 * 1024.0),
        wall.as_secs_f64() * 1e3 / f64::from(N)
    );
}

fn bench(c: &mut Criterion) {
    let src = generate();
    let df = parse(&src).expect("generated Dockerfile parses");
    let n: usize = df
        .stages
        .iter()
        .map(|s| s.instructions.len() + 1)
        .sum::<usize>()
        + df.meta_args.len();
    eprintln!(
        "generated Dockerfile: {n} instructions, {} bytes",
        src.len()
    );
    report_cpu_time(&src);
    let mut g = c.benchmark_group("dockerfile");
    g.throughput(Throughput::Bytes(src.len() as u64));
    g.bench_function("parse_5000", |b| {
        b.iter(|| parse(std::hint::black_box(&src)).unwrap())
    });
    g.bench_function("parse_and_analyze_5000", |b| {
        b.iter(|| {
            let df = parse(std::hint::black_box(&src)).unwrap();
            analyze(&df, EvalOptions::default(), None).unwrap()
        })
    });
    g.finish();

    // 100k lines: one iteration takes a noticeable time, so fewer samples.
    let mut g = c.benchmark_group("dockerfile_100k");
    g.sample_size(10);
    for (name, src) in [
        ("env", generate_env(100_000)),
        ("mix", generate_mix(100_000)),
    ] {
        g.throughput(Throughput::Bytes(src.len() as u64));
        g.bench_function(format!("parse_{name}"), |b| {
            b.iter(|| parse(std::hint::black_box(&src)).unwrap())
        });
        g.bench_function(format!("parse_and_analyze_{name}"), |b| {
            b.iter(|| {
                let df = parse(std::hint::black_box(&src)).unwrap();
                analyze(&df, EvalOptions::default(), None).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
