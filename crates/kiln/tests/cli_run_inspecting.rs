//! End-to-end tests of looking into containers: `kiln diff CONTAINER` (docker's diff: A, C, D
//! from the writable layer, the runtime's own files left out; `kiln diff IMAGE1 IMAGE2` still
//! compares images), `stats` streaming its table, and `cp` both ways (`-` for tar), running
//! and stopped, never through a symlink out of the container. Needs root.

mod support;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

const BB: &str = "localhost/busybox:latest";

fn ctx() -> RunCtx {
    require_root();
    RunCtx(Ctx::new())
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

#[test]
fn cp_copies_both_ways_and_never_follows_a_link_out_of_the_root() {
    let c = ctx();
    let probe = c.tmp.path().join("outside");
    std::fs::create_dir_all(&probe).unwrap();
    let p = probe.display().to_string();
    c.file(
        "Dockerfile",
        &format!(
            "FROM localhost/busybox\nRUN mkdir -p {p} && echo image > {p}/seed && ln -s {p} /esc\n"
        ),
    );
    c.build_ok(&["-t", "esc"]);
    std::fs::write(probe.join("seed"), "host\n").unwrap();
    ok(&c, &["run", "-d", "--name", "c", "esc", "sleep", "100"]);
    let out = c.tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // Out: a file into a directory, a directory under a new name, through the image's link.
    ok(&c, &["cp", "c:/etc/passwd", out.to_str().unwrap()]);
    assert!(
        std::fs::read_to_string(out.join("passwd"))
            .unwrap()
            .contains("root:")
    );
    ok(
        &c,
        &["cp", "c:/esc/seed", out.join("seed").to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("seed")).unwrap(),
        "image\n"
    );
    // Out as a tar stream.
    let o = c.kiln(&["cp", "c:/etc/group", "-"]);
    assert!(o.status.success());
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["group"]);
    // In: to a directory, under a new name, from a tar stream; owned by root.
    let hf = c.tmp.path().join("hf");
    std::fs::write(&hf, "hello\n").unwrap();
    ok(&c, &["cp", hf.to_str().unwrap(), "c:/tmp/"]);
    ok(&c, &["cp", hf.to_str().unwrap(), "c:/tmp/renamed"]);
    assert_eq!(
        ok(&c, &["exec", "c", "cat", "/tmp/hf", "/tmp/renamed"]),
        "hello\nhello\n"
    );
    // Through the link: the container's directory, not the host's.
    ok(&c, &["cp", hf.to_str().unwrap(), "c:/esc/planted"]);
    assert!(
        !probe.join("planted").exists(),
        "written outside the container"
    );
    assert_eq!(
        ok(&c, &["exec", "c", "cat", &format!("{p}/planted")]),
        "hello\n"
    );
    let mut tarball = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tarball);
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "fromtar", &b"tar"[..]).unwrap();
        b.finish().unwrap();
    }
    let mut child = Command::new(bin())
        .env("KILN_ROOT", &c.root)
        .args(["cp", "-", "c:/root"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &tarball).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(ok(&c, &["exec", "c", "cat", "/root/fromtar"]), "tar");
    let o = c.kiln(&["cp", "c:/nope", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such container:path: c:/nope"));
    // A stopped container: its writable layer, mounted for the copy only.
    ok(&c, &["stop", "-t", "0", "c"]);
    ok(&c, &["cp", hf.to_str().unwrap(), "c:/stopped"]);
    ok(
        &c,
        &["cp", "c:/tmp/renamed", out.join("r").to_str().unwrap()],
    );
    assert_eq!(std::fs::read_to_string(out.join("r")).unwrap(), "hello\n");
    ok(&c, &["start", "c"]);
    assert_eq!(ok(&c, &["exec", "c", "cat", "/stopped"]), "hello\n");
    let root = c.root.to_string_lossy().into_owned();
    ok(&c, &["rm", "-f", "c"]);
    let left: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root))
        .map(String::from)
        .collect();
    assert_eq!(left, Vec::<String>::new());
    let o = c.kiln(&["cp", "a", "b"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("must specify at least one container source")
    );
}

#[test]
fn commit_makes_an_image_of_the_containers_changes() {
    let c = ctx();
    ok(
        &c,
        &[
            "run",
            "--name",
            "m",
            "-e",
            "FOO=bar",
            "-w",
            "/work",
            BB,
            "sh",
            "-c",
            "echo made > /made; rm /etc/group",
        ],
    );
    let id = ok(
        &c,
        &["commit", "-m", "my change", "-a", "me", "m", "committed:1"],
    );
    let id = id.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(
        ok(
            &c,
            &[
                "run",
                "--rm",
                "committed:1",
                "sh",
                "-c",
                "cat /made; test -e /etc/group || echo gone; pwd; echo $FOO"
            ]
        ),
        "made\ngone\n/work\nbar\n"
    );
    assert_eq!(
        ok(
            &c,
            &[
                "inspect",
                "-f",
                "{{.Id}} {{.Author}} {{len .RootFS.Layers}}",
                "committed:1"
            ]
        )
        .trim(),
        format!("{id} me 2")
    );
    let h = ok(
        &c,
        &[
            "history",
            "--format",
            "{{.Comment}}|{{.CreatedBy}}",
            "committed:1",
        ],
    );
    assert!(
        h.starts_with("my change|sh -c echo made > /made; rm /etc/group\n"),
        "{h}"
    );
    // A running container: frozen while its layer is read, running after.
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "live",
            BB,
            "sh",
            "-c",
            "echo live > /live; sleep 100",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let id2 = ok(&c, &["commit", "live"]);
    assert_eq!(
        ok(&c, &["run", "--rm", id2.trim(), "cat", "/live"]),
        "live\n"
    );
    assert!(ok(&c, &["ps", "--format", "{{.Status}}"]).starts_with("Up "));
}
