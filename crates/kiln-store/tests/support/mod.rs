//! Test helpers shared by the store's integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Makes the deterministic busybox docker-archive with `scripts/make-busybox-image.sh` and
/// returns its path and the image ID the script printed. Fails with a clear message when
/// busybox-static is not installed.
pub fn busybox_archive(dir: &Path, tag: &str) -> (PathBuf, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-image.sh");
    let out = dir.join("busybox.tar");
    let res = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .arg(tag)
        .output()
        .expect("running make-busybox-image.sh");
    assert!(
        res.status.success(),
        "make-busybox-image.sh failed (is busybox-static installed? apt-get install busybox-static): {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let id = String::from_utf8(res.stdout).unwrap().trim().to_string();
    (out, id)
}
