//! Arbitrary `.dockerignore` text and paths: compiling and matching must not panic, and a
//! directory the walker may skip holds only excluded paths.
#![no_main]

use kiln_dockerfile::dockerignore::PatternSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the path to test; the rest is the .dockerignore file.
    let (path, patterns) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(set) = PatternSet::parse_dockerignore(patterns) else {
        return;
    };
    // Paths as the context walker makes them: relative, clean.
    let parts: Vec<&str> = path.split('/').collect();
    if parts.iter().any(|p| matches!(*p, "" | "." | "..")) {
        return;
    }
    let excluded = set.is_excluded(path);
    for n in 1..parts.len() {
        if set.can_skip_dir(&parts[..n].join("/")) {
            assert!(excluded, "{path:?} is under a skipped directory but not excluded");
        }
    }
});
