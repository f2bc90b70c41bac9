//! End-to-end tests of looking at containers: `kiln diff CONTAINER` (docker's diff: A, C, D
//! from the writable layer, the runtime's own files left out; `kiln diff IMAGE1 IMAGE2` still
//! compares images) and `stats` streaming its table. Needs root.

mod support;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

const BB: &str = "localhost/busybox:latest";

struct RunCtx(Ctx);

impl std::ops::Deref for RunCtx {
    type Target = Ctx;
    fn deref(&self) -> &Ctx {
        &self.0
    }
}

impl Drop for RunCtx {
    fn drop(&mut self) {
        let ids = self.0.kiln(&["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.0.kiln(&["rm", "-f", id]);
        }
    }
}

fn ctx() -> RunCtx {
    require_root();
    RunCtx(Ctx::new())
}

fn ok(c: &Ctx, args: &[&str]) -> String {
    let o = c.kiln(args);
    assert!(
        o.status.success(),
        "kiln {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn diff_of_a_container_lists_its_changes_as_docker() {
    let c = ctx();
    ok(
        &c,
        &[
            "run",
            "--name",
            "d",
            BB,
            "sh",
            "-c",
            "mkdir -p /newdir/sub && echo x > /newdir/sub/f && echo y >> /etc/passwd && rm /etc/group",
        ],
    );
    assert_eq!(
        ok(&c, &["diff", "d"]),
        "C /etc\nD /etc/group\nC /etc/passwd\nA /newdir\nA /newdir/sub\nA /newdir/sub/f\n"
    );
    assert_eq!(ok(&c, &["container", "diff", "d"]), ok(&c, &["diff", "d"]));
    // Nothing changed: nothing listed (the runtime's /etc/hosts & co. are not changes).
    ok(&c, &["run", "--name", "quiet", BB, "true"]);
    assert_eq!(ok(&c, &["diff", "quiet"]), "");
    let o = c.kiln(&["diff", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No such container: nosuch"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Two arguments still compare images.
    ok(&c, &["tag", BB, "bb2"]);
    assert_eq!(ok(&c, &["diff", BB, "bb2"]), "");
}

#[test]
fn stats_without_no_stream_redraws_its_table() {
    let c = ctx();
    ok(&c, &["run", "-d", "--name", "s", BB, "sleep", "100"]);
    let mut child = Command::new(bin())
        .env("KILN_ROOT", &c.root)
        .args(["stats", "s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf
    });
    std::thread::sleep(Duration::from_millis(2600));
    child.kill().unwrap();
    child.wait().unwrap();
    let text = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    let frames: Vec<&str> = text
        .split("\x1b[2J\x1b[H")
        .filter(|f| !f.is_empty())
        .collect();
    assert!(frames.len() >= 2, "redrawn: {text:?}");
    for f in &frames {
        assert!(f.starts_with("CONTAINER ID   NAME"), "{f:?}");
        assert!(f.lines().nth(1).is_some_and(|l| l.contains(" s ")), "{f:?}");
    }
}
