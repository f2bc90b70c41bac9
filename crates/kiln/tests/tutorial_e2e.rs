//! The tutorial end to end (as root): `scripts/tutorial-e2e.sh` with this build of kiln. It
//! builds the React app of `examples/tutorial-react` on the node and nginx bases of
//! `/var/tmp/kiln-fixtures/images` (`.ci/run` makes them with `../shared/fixtures/make-base-images.sh`),
//! with `npm install` from the npm registry, then runs it as the tutorial does (`kiln run -d -p
//! 3000:80 --name app-container multistage`) and checks it over HTTP, with `exec`, `logs`,
//! `stats`, `port`, headless Chromium (DOM text, screenshot) and that `stop` + `rm` leave
//! nothing. The script's logs, the served page and the screenshot are kept in
//! `target/tmp/tutorial-e2e-logs/` (a CI artifact).

mod support;
use std::path::Path;
use std::process::Command;

use support::*;

#[test]
fn tutorial_builds_runs_serves_and_renders_with_kiln_run() {
    require_root();
    for (cmd, pkg) in [
        ("chromium", "chromium"),
        ("curl", "curl"),
        ("ss", "iproute2"),
        ("jq", "jq"),
        ("pasta", "passt"),
    ] {
        require_command(cmd, pkg);
    }
    for base in ["node-18", "nginx-bookworm"] {
        let p = format!("/var/tmp/kiln-fixtures/images/{base}.docker.tar");
        assert!(
            Path::new(&p).exists(),
            "{p} is missing: make the tutorial's bases with `bash ../shared/fixtures/make-base-images.sh \
             /var/tmp/kiln-fixtures` as root (.ci/run does)"
        );
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tutorial-e2e-logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).unwrap();
    let out = Command::new("bash")
        .arg(repo.join("scripts/tutorial-e2e.sh"))
        .env("KILN", bin())
        .env("LOG_DIR", &logs)
        .env("FIXTURES", "/var/tmp/kiln-fixtures/images")
        .output()
        .expect("running scripts/tutorial-e2e.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "scripts/tutorial-e2e.sh failed (logs in {}):\n{stdout}\n{stderr}",
        logs.display()
    );
    assert!(!stdout.lines().any(|l| l.starts_with("FAIL")), "{stdout}");
    // The run part ran, not just the builds.
    for want in [
        "PASS  kiln run -d -p ",
        "returns the app's index.html",
        "serves the JS bundle",
        "kiln exec app-container ls -la /usr/share/nginx/html lists",
        "kiln logs app-container shows the requests",
        "kiln stats --no-stream shows app-container's memory use",
        "kiln port app-container prints 80/tcp -> 0.0.0.0:",
        "the rendered DOM holds the React app's text",
        "a screenshot of the page",
        "after stop + rm: no process",
        "after stop + rm: no mount",
        "after stop + rm: no cgroup",
        "after stop + rm: nothing listens on port",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("PASS") && l.contains(want)),
            "no PASS line with {want:?}:\n{stdout}"
        );
    }
    let png = std::fs::read(logs.join("app-container.png")).expect("the screenshot is kept");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5000);
}
