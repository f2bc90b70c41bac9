// Shared helpers for the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compare `got` with the file at `path`; with KILN_BLESS=1 (re)write the file instead.
pub fn assert_golden(path: &Path, got: &str) {
    if std::env::var_os("KILN_BLESS").is_some() {
        std::fs::write(path, got).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let want = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "reading {} ({e}); run with KILN_BLESS=1 to create it",
            path.display()
        )
    });
    if want != got {
        panic!(
            "golden mismatch for {}\n--- want\n{want}\n--- got\n{got}",
            path.display()
        );
    }
}
