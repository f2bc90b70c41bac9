//! `kiln build` writes the build record `kiln report` shows: per stage that ran, in Dockerfile
//! order, its base, size, steps and cache hits; a rebuild after a change in the final stage
//! shows the builder stage cached, and a no-op rebuild writes no new record.

mod support;

use support::*;

const DOCKERFILE: &str = "\
FROM localhost/busybox:latest AS builder
RUN dd if=/dev/zero of=/big bs=1000 count=100 && echo built > /out
FROM localhost/busybox:latest
COPY --from=builder /out /out
RUN echo VERSION > /final
";

fn report(c: &Ctx, image: &str) -> serde_json::Value {
    let out = c.kiln(&["report", "--format", "json", image]);
    assert!(
        out.status.success(),
        "kiln report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (name, base, size, steps, cached_steps, is_final) of each recorded stage.
fn stages(r: &serde_json::Value) -> Vec<(String, String, u64, u64, u64, bool)> {
    let build = r.get("build").expect("the image has a build record");
    build["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["base"].as_str().unwrap().to_string(),
                s["size"].as_u64().unwrap(),
                s["steps"].as_u64().unwrap(),
                s["cached_steps"].as_u64().unwrap(),
                s["is_final"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn build_records_list_stages_with_sizes_and_cache_hits() {
    require_root();
    let c = Ctx::new();
    c.file("Dockerfile", &DOCKERFILE.replace("VERSION", "v1"));
    c.build_ok(&["-t", "rec"]);
    let s = stages(&report(&c, "rec"));
    assert_eq!(s.len(), 2, "{s:?}");
    let (builder, last) = (&s[0], &s[1]);
    assert_eq!(builder.0, "builder");
    assert_eq!(last.0, "stage-1");
    assert!(builder.1.contains("busybox"), "base {:?}", builder.1);
    assert!(last.1.contains("busybox"), "base {:?}", last.1);
    assert_eq!((builder.3, builder.4, builder.5), (1, 0, false));
    assert_eq!((last.3, last.4, last.5), (2, 0, true));
    // Both on busybox: the builder has /big (100000 bytes) and /out ("built\n"), the final
    // stage /out and /final ("v1\n").
    assert!(builder.2 > 100_000, "{builder:?}");
    assert_eq!(builder.2 - last.2, 100_000 + 6 - (6 + 3), "{s:?}");

    // A change in the final stage only: the builder stage is all cache hits, the final
    // stage's COPY too.
    c.file("Dockerfile", &DOCKERFILE.replace("VERSION", "v2"));
    c.build_ok(&["-t", "rec"]);
    let s = stages(&report(&c, "rec"));
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!((s[0].3, s[0].4), (1, 1), "builder cached: {s:?}");
    assert_eq!((s[1].3, s[1].4), (2, 1), "final stage: {s:?}");
    assert_eq!(s[0].2 - s[1].2, 100_000 + 6 - (6 + 3), "{s:?}");
    let before = report(&c, "rec")["build"].clone();

    // Nothing changed: no new record (it would show the final stage all cached).
    c.build_ok(&["-t", "rec"]);
    let after = report(&c, "rec")["build"].clone();
    assert_eq!(before, after, "a no-op rebuild writes no build record");
}
