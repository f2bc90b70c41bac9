//! End-to-end `kiln build` tests: the real binary, a temporary store, the busybox base image
//! from scripts/make-busybox-image.sh, overlayfs and namespaces for real (run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::*;

fn kiln_mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains("kiln-"))
        .count()
}

#[test]
fn multi_stage_build_copies_from_stage_and_skips_unused() {
    let c = Ctx::new();
    c.file("a.txt", "hello\n").file(
        "Dockerfile",
        "FROM localhost/busybox:latest AS build\nWORKDIR /src\nCOPY a.txt .\nRUN echo built > out.txt && cat a.txt >> out.txt\n\n\
         FROM localhost/busybox:latest AS unused\nRUN exit 1\n\n\
         FROM localhost/busybox:latest\nCOPY --from=build /src/out.txt /out.txt\nENV GREETING=hi\nCMD [\"cat\", \"/out.txt\"]\n",
    );
    let out = c.export(&["-t", "demo"]);
    assert_eq!(
        std::fs::read_to_string(out.join("out.txt")).unwrap(),
        "built\nhello\n"
    );
    assert!(
        !out.join("src").exists(),
        "the build stage's files must not reach the final image"
    );
    let inspect = c.kiln(&["inspect", "demo"]);
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        v[0]["Config"]["Cmd"],
        serde_json::json!(["cat", "/out.txt"])
    );
    assert!(
        v[0]["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "GREETING=hi")
    );
    assert!(
        c.tmp_is_empty(),
        "the build left temporary files in the store"
    );
}

#[test]
fn noop_rebuild_is_fully_cached_with_the_same_id() {
    let c = Ctx::new();
    c.file("a.txt", "1\n").file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nCOPY a.txt /a\nRUN cat /a > /b\n",
    );
    let id1 = c.image_id(&["-t", "x"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let err = c.build_ok(&["-t", "x"]);
    assert_eq!(err.matches("CACHED").count(), 2, "{err}");
    // Only the base image resolution and the export ("exporting to image", as BuildKit
    // prints it) report DONE; no instruction runs.
    assert_eq!(
        err.matches("DONE").count(),
        2,
        "nothing should run on a no-op rebuild:\n{err}"
    );
    let id2 = c.image_id(&["-t", "x"]);
    assert_eq!(id1, id2);
}

#[test]
fn editing_a_source_file_keeps_the_dependency_install_cached_and_explains_the_miss() {
    let c = Ctx::new();
    c.file("package.json", "{\"name\":\"demo\"}\n").file("src/App.jsx", "v1\n").file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nWORKDIR /app\nCOPY package*.json ./\nRUN echo installed > node_modules\nCOPY src ./src\nRUN cat src/App.jsx > build.txt\n",
    );
    c.build_ok(&[]);
    c.file("src/App.jsx", "v2\n");
    let err = c.build_ok(&["--explain"]);
    assert!(
        err.contains("[stage-0 3/6] COPY package*.json ./\n#3 CACHED")
            || err.contains("COPY package*.json ./\n#") && err.matches("CACHED").count() == 3,
        "{err}"
    );
    assert_eq!(
        err.matches("CACHED").count(),
        3,
        "WORKDIR, COPY package*.json and RUN install stay cached:\n{err}"
    );
    assert!(
        err.contains("cache miss: file src/App.jsx changed"),
        "{err}"
    );
    let out = c.export(&[]);
    assert_eq!(
        std::fs::read_to_string(out.join("app/build.txt")).unwrap(),
        "v2\n"
    );
}

#[test]
fn jobs_one_and_jobs_eight_give_identical_digests() {
    let df = "FROM localhost/busybox:latest AS a\nRUN echo a > /a\nFROM localhost/busybox:latest AS b\nRUN echo b > /b\n\
              FROM localhost/busybox:latest\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n";
    let c1 = Ctx::new();
    c1.file("Dockerfile", df);
    let c2 = Ctx::new();
    c2.file("Dockerfile", df);
    let id1 = c1.image_id(&["--jobs", "1", "--build-arg", "SOURCE_DATE_EPOCH=1700000000"]);
    let id2 = c2.image_id(&["--jobs", "8", "--build-arg", "SOURCE_DATE_EPOCH=1700000000"]);
    assert_eq!(id1, id2);
}

#[test]
fn independent_stages_run_at_the_same_time() {
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest AS a\nRUN cut -d' ' -f1 /proc/uptime > /start && sleep 1 && cut -d' ' -f1 /proc/uptime > /end\n\
         FROM localhost/busybox:latest AS b\nRUN cut -d' ' -f1 /proc/uptime > /start && sleep 1 && cut -d' ' -f1 /proc/uptime > /end\n\
         FROM localhost/busybox:latest\nCOPY --from=a /start /a.start\nCOPY --from=a /end /a.end\nCOPY --from=b /start /b.start\nCOPY --from=b /end /b.end\n",
    );
    let out = c.export(&["--jobs", "2"]);
    // /proc/uptime is the host's clock (not namespaced), in seconds with centiseconds.
    let t = |n: &str| -> f64 {
        std::fs::read_to_string(out.join(n))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    // The two intervals overlap: each started before the other ended.
    assert!(
        t("a.start") < t("b.end") && t("b.start") < t("a.end"),
        "stages ran one after the other"
    );
}

#[test]
fn failing_run_reports_the_line_and_leaves_nothing_behind() {
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN echo before\nRUN echo oops >&2 && exit 3\n",
    );
    let before = kiln_mounts();
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("exit code: 3"), "{err}");
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(
        err.contains("oops"),
        "the failing step's output is shown:\n{err}"
    );
    assert_eq!(kiln_mounts(), before, "mounts leaked");
    assert!(c.tmp_is_empty(), "temporary directories leaked");
    let check = c.kiln(&["system", "check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn target_builds_only_what_it_needs() {
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest AS build\nRUN echo b > /b\nFROM build AS test\nRUN exit 1\nFROM localhost/busybox:latest\nCOPY --from=build /b /b\n",
    );
    let err = c.build_ok(&["--target", "build"]);
    assert!(!err.contains("exit 1"), "{err}");
    let (code, _, err) = c.build(&["--target", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn secrets_are_readable_but_never_stored() {
    let c = Ctx::new();
    c.file("token", "s3cr3t-value\n").file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /len\n",
    );
    let src = format!("id=tok,src={}", c.ctx.join("token").display());
    let out = c.export(&["--secret", &src, "-t", "sec"]);
    assert_eq!(
        std::fs::read_to_string(out.join("len")).unwrap().trim(),
        "13"
    );
    assert!(!out.join("run/secrets/tok").exists());
    // Nothing the store keeps (blobs, snapshots, cache records) holds the secret.
    for e in walk(&c.root) {
        let data = std::fs::read(&e).unwrap_or_default();
        assert!(
            !data.windows(12).any(|w| w == b"s3cr3t-value"),
            "secret found in {}",
            e.display()
        );
    }
    let hist = c.kiln(&["history", "--no-trunc", "sec"]);
    assert!(!String::from_utf8_lossy(&hist.stdout).contains("s3cr3t"));
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn dockerfile_errors_point_at_the_line() {
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUNN echo hi\n",
    );
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1);
    assert!(err.contains("Dockerfile:2:1"), "{err}");
    assert!(err.contains("did you mean"), "{err}");
}

#[test]
fn missing_base_image_says_how_to_get_it() {
    let c = Ctx::new();
    c.file("Dockerfile", "FROM localhost/nothere:1\nRUN true\n");
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1);
    assert!(err.contains("kiln load"), "{err}");
}

#[test]
fn build_context_names_an_image_archive() {
    let c = Ctx::new();
    c.file("Dockerfile", "FROM base\nRUN echo ok > /ok\n");
    let spec = format!("base=docker-archive:{}", busybox_archive().display());
    let out = c.export(&["--build-context", &spec]);
    assert_eq!(std::fs::read_to_string(out.join("ok")).unwrap(), "ok\n");
    let (code, _, err) = c.build(&["--build-context", "base=/some/dir"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--build-context base=/some/dir") && err.contains("No such file"),
        "{err}"
    );
    let (code, _, err) = c.build(&["--build-context", "base=https://example.invalid/x.git"]);
    assert_eq!(code, 1);
    assert!(err.contains("supported values"), "{err}");
}

#[test]
fn build_context_names_a_directory() {
    let c = Ctx::new();
    let extra = c.tmp.path().join("extra");
    std::fs::create_dir_all(extra.join("sub")).unwrap();
    std::fs::write(extra.join("sub/a.txt"), "from extra\n").unwrap();
    std::fs::write(extra.join("secret.key"), "hidden").unwrap();
    // The named directory's own .dockerignore applies, not the main context's.
    std::fs::write(extra.join(".dockerignore"), "*.key\n").unwrap();
    c.file("main.txt", "from main\n");
    c.file(".dockerignore", "sub\n");
    c.file(
        "Dockerfile",
        "FROM extra AS files\n\
         FROM localhost/busybox:latest\n\
         COPY --from=extra sub /got/\n\
         COPY --from=files / /whole/\n\
         COPY main.txt /got/\n\
         RUN --mount=from=extra,target=/mnt cat /mnt/sub/a.txt > /got/mounted\n",
    );
    let spec = format!("extra={}", extra.display());
    let out = c.export(&["--build-context", &spec]);
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("got/a.txt"), "from extra\n");
    assert_eq!(read("got/main.txt"), "from main\n");
    assert_eq!(read("got/mounted"), "from extra\n");
    assert_eq!(read("whole/sub/a.txt"), "from extra\n");
    assert!(
        !out.join("whole/secret.key").exists(),
        "its .dockerignore applies"
    );

    // Cached when nothing changed; an edit in the named directory is a miss that names it.
    let args = ["--build-context", spec.as_str(), "-t", "named:1"];
    c.build_ok(&args);
    let err = c.build_ok(&args);
    assert_eq!(
        err.matches("CACHED").count(),
        5,
        "every step cached:\n{err}"
    );
    std::fs::write(extra.join("sub/a.txt"), "changed\n").unwrap();
    let err = c.build_ok(&[&args[..], &["--explain"]].concat());
    assert!(err.contains("in build context extra changed"), "{err}");
    let out = c.export(&["--build-context", &spec]);
    assert_eq!(
        std::fs::read_to_string(out.join("got/a.txt")).unwrap(),
        "changed\n"
    );
}

#[test]
fn docker_and_oci_outputs_load_back_with_the_same_id() {
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN echo x > /x\n",
    );
    for kind in ["docker", "oci"] {
        let dest = c.tmp.path().join(format!("img-{kind}.tar"));
        let spec = format!("type={kind},dest={}", dest.display());
        let id = c.image_id(&["-t", "out:1", "-o", &spec]);
        let other = Ctx::new();
        let out = other.kiln(&["load", "-i", dest.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ids = other.kiln(&["images", "-q", "--no-trunc", "out:1"]);
        assert_eq!(String::from_utf8_lossy(&ids.stdout).trim(), id, "{kind}");
    }
}

#[test]
fn onbuild_triggers_of_a_base_image_run_first() {
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nONBUILD RUN echo triggered > /t\n",
    );
    c.build_ok(&["-t", "onb"]);
    let v: serde_json::Value = serde_json::from_slice(&c.kiln(&["inspect", "onb"]).stdout).unwrap();
    assert_eq!(
        v[0]["Config"]["OnBuild"],
        serde_json::json!(["RUN echo triggered > /t"])
    );
    c.file("Dockerfile", "FROM onb\nRUN cat /t > /seen\n");
    let out = c.export(&["-t", "child"]);
    assert_eq!(
        std::fs::read_to_string(out.join("seen")).unwrap(),
        "triggered\n"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&c.kiln(&["inspect", "child"]).stdout).unwrap();
    assert!(
        v[0]["Config"]["OnBuild"].is_null() || v[0]["Config"]["OnBuild"] == serde_json::json!([])
    );
}

/// Processes whose command line is exactly `args`.
fn processes_running(args: &[&str]) -> usize {
    let want: Vec<u8> = args
        .iter()
        .flat_map(|a| a.bytes().chain(std::iter::once(0)))
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| c == want)
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn ctrl_c_stops_the_build_and_leaves_nothing_behind() {
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN sleep 347\n",
    );
    let before = kiln_mounts();
    let mut child = Command::new(bin())
        .env("KILN_ROOT", &c.root)
        .args(["build", "--progress=plain", c.ctx.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the RUN's process exists, then interrupt the build as a terminal would.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while processes_running(&["sleep", "347"]) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the RUN never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: kill(2) on the pid of a child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(
        processes_running(&["sleep", "347"]),
        0,
        "the RUN's process survived Ctrl-C"
    );
    assert_eq!(kiln_mounts(), before, "mounts leaked");
    assert!(c.tmp_is_empty(), "temporary directories leaked");
    let check = c.kiln(&["system", "check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn builder_prune_empties_the_cache() {
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN echo a > /a\n",
    );
    c.build_ok(&[]);
    let out = c.kiln(&["builder", "prune", "-f", "--filter", "until=1h"]);
    assert!(out.status.success());
    assert!(
        c.build_ok(&[]).contains("CACHED"),
        "records used within the hour survive until=1h"
    );
    let out = c.kiln(&["builder", "prune", "-a", "-f"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Total reclaimed space:"));
    assert!(
        !c.build_ok(&[]).contains("CACHED"),
        "after prune -a nothing is cached"
    );
    let bad = c.kiln(&["builder", "prune", "--filter", "until=soon"]);
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn long_layer_chains_build() {
    let c = Ctx::new();
    let mut df = String::from("FROM localhost/busybox:latest\n");
    for i in 0..105 {
        df.push_str(&format!("RUN echo {i} > /f{i}\n"));
    }
    df.push_str("RUN ls / | grep -c '^f' > /count\n");
    c.file("Dockerfile", &df);
    let out = c.export(&[]);
    assert_eq!(
        std::fs::read_to_string(out.join("count")).unwrap().trim(),
        "105"
    );
    assert_eq!(std::fs::read_to_string(out.join("f104")).unwrap(), "104\n");
}

#[test]
fn network_none_leaves_only_loopback() {
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN --network=none tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /per-run\n\
         RUN tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort > /default\n",
    );
    let out = c.export(&[]);
    assert_eq!(
        std::fs::read_to_string(out.join("per-run")).unwrap(),
        "lo\n"
    );
    let host = std::fs::read_to_string(out.join("default")).unwrap();
    assert!(
        host.lines().count() > 1,
        "the default is the host's network: {host}"
    );
    let out = c.export(&["--network", "none", "--no-cache"]);
    assert_eq!(
        std::fs::read_to_string(out.join("default")).unwrap(),
        "lo\n"
    );
}

#[test]
fn every_history_entry_has_a_created_time() {
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN true\nENV A=1\nEXPOSE 80\n",
    );
    let dest = c.tmp.path().join("h.tar");
    let spec = format!("type=oci,dest={}", dest.display());
    c.build_ok(&["-t", "h", "-o", &spec]);
    let out = c.kiln(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedSince}}|{{.CreatedBy}}",
        "h",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    for line in text
        .lines()
        .filter(|l| l.contains("ENV A=1") || l.contains("EXPOSE"))
    {
        assert!(
            !line.contains("years ago"),
            "metadata entry without a created time: {line}"
        );
    }
    assert!(text.contains("ENV A=1"), "{text}");
}

#[test]
fn ssh_mounts_forward_an_agent_socket_and_leave_nothing_in_the_image() {
    let c = Ctx::new();
    let agent_path = c.tmp.path().join("agent.sock");
    let _agent = std::os::unix::net::UnixListener::bind(&agent_path).unwrap();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\n\
         RUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK $(stat -c '%a %u' $SSH_AUTH_SOCK)\" > /ssh-default\n\
         RUN --mount=type=ssh,id=deploy,target=/tmp/a.sock,mode=0660,uid=7 stat -c '%a %u' /tmp/a.sock > /ssh-deploy\n\
         RUN --mount=type=ssh,id=absent echo skipped > /ssh-absent\n",
    );
    let spec = format!("default={}", agent_path.display());
    let spec2 = format!("deploy={}", agent_path.display());
    let out = c.export(&["--ssh", &spec, "--ssh", &spec2]);
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("ssh-default"), "/run/buildkit/ssh_agent.0 600 0\n");
    assert_eq!(read("ssh-deploy"), "660 7\n");
    assert_eq!(
        read("ssh-absent"),
        "skipped\n",
        "not required: runs without it"
    );
    assert!(
        !out.join("run/buildkit").exists(),
        "the socket is not in the image"
    );
    assert!(!out.join("tmp/a.sock").exists());

    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN --mount=type=ssh,id=key,required=true true\n",
    );
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1);
    assert!(err.contains("no SSH agent socket for id \"key\""), "{err}");
    let (code, _, err) = c.build(&[
        "--ssh",
        &format!("key={}", c.ctx.join("Dockerfile").display()),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("not an agent socket"), "{err}");
}

/// A loopback HTTP server for ADD: serves the current (body, etag), answers 304 to a matching
/// If-None-Match, and logs each request as "200" or "304".
struct UrlServer {
    base: String,
    state: std::sync::Arc<std::sync::Mutex<(String, String, Vec<&'static str>)>>,
}

impl UrlServer {
    fn start(body: &str, etag: &str) -> UrlServer {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let state = std::sync::Arc::new(std::sync::Mutex::new((
            body.to_string(),
            etag.to_string(),
            Vec::new(),
        )));
        let st = state.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => req.extend_from_slice(&buf[..k]),
                    }
                }
                let text = String::from_utf8_lossy(&req).to_lowercase();
                let mut g = st.lock().unwrap();
                let (body, etag) = (g.0.clone(), g.1.clone());
                let resp = if text.contains(&format!("if-none-match: \"{etag}\"")) {
                    g.2.push("304");
                    format!(
                        "HTTP/1.1 304 Not Modified\r\nETag: \"{etag}\"\r\nConnection: close\r\n\r\n"
                    )
                } else {
                    g.2.push("200");
                    format!(
                        "HTTP/1.1 200 OK\r\nETag: \"{etag}\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                drop(g);
                let _ = s.write_all(resp.as_bytes());
            }
        });
        UrlServer { base, state }
    }

    fn set(&self, body: &str, etag: &str) {
        let mut g = self.state.lock().unwrap();
        g.0 = body.to_string();
        g.1 = etag.to_string();
    }

    fn take_log(&self) -> Vec<&'static str> {
        std::mem::take(&mut self.state.lock().unwrap().2)
    }
}

#[test]
fn add_url_is_keyed_by_content_with_conditional_requests() {
    let srv = UrlServer::start("v1\n", "e1");
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        &format!(
            "FROM localhost/busybox:latest\nADD {}/tool.txt /tool.txt\nRUN cat /tool.txt > /copy.txt\n",
            srv.base
        ),
    );
    let out = c.export(&[]);
    assert_eq!(
        std::fs::read_to_string(out.join("copy.txt")).unwrap(),
        "v1\n"
    );
    assert_eq!(srv.take_log(), ["200"], "downloaded once for key and copy");
    // Unchanged: a conditional request, answered 304, and both steps cached.
    let err = c.build_ok(&[]);
    assert_eq!(srv.take_log(), ["304"]);
    assert_eq!(err.matches("CACHED").count(), 2, "{err}");
    // Changed on the server: the ADD misses, says why, and gets the new content.
    srv.set("v2\n", "e2");
    let err = c.build_ok(&["--explain"]);
    assert!(
        err.contains(&format!("the content at {}/tool.txt changed", srv.base)),
        "{err}"
    );
    assert_eq!(srv.take_log(), ["200"]);
    let out = c.export(&[]);
    assert_eq!(
        std::fs::read_to_string(out.join("copy.txt")).unwrap(),
        "v2\n"
    );
    assert!(c.tmp_is_empty(), "downloads are removed with the build");
}

/// `git daemon` serving `base` on a loopback port; killed on drop.
struct GitDaemon {
    child: std::process::Child,
    port: u16,
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new(require_command("git", "git"))
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-C",
        ])
        .arg(dir)
        .args(args)
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn git_daemon(base: &Path) -> GitDaemon {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The git-daemon binary itself: `git daemon` would leave it running when killed.
    let exec_path = Command::new(require_command("git", "git"))
        .arg("--exec-path")
        .output()
        .unwrap();
    let exec_path = String::from_utf8_lossy(&exec_path.stdout)
        .trim()
        .to_string();
    let child = Command::new(Path::new(&exec_path).join("git-daemon"))
        .arg("--reuseaddr")
        .arg("--export-all")
        .arg("--listen=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(base)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("git daemon");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    GitDaemon { child, port }
}

#[test]
fn add_git_checks_out_a_ref_keyed_by_its_commit() {
    use std::os::unix::fs::PermissionsExt;
    let c = Ctx::new();
    let base = c.tmp.path().join("git");
    let work = c.tmp.path().join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    std::fs::write(work.join("README"), "v1\n").unwrap();
    std::fs::write(work.join("sub/a.txt"), "a\n").unwrap();
    std::fs::write(work.join("run.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(work.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "-a", "v1", "-m", "v1"]);
    std::fs::create_dir_all(&base).unwrap();
    git(
        &base,
        &["clone", "-q", "--bare", work.to_str().unwrap(), "r.git"],
    );
    let d = git_daemon(&base);
    let url = format!("git://127.0.0.1:{}/r.git", d.port);
    c.file(
        "Dockerfile",
        &format!(
            "FROM localhost/busybox:latest\n\
             ADD {url}#main /src\n\
             ADD {url}#v1:sub /sub\n\
             ADD --keep-git-dir=true {url} /withgit\n"
        ),
    );
    let out = c.export(&[]);
    assert_eq!(
        std::fs::read_to_string(out.join("src/README")).unwrap(),
        "v1\n"
    );
    let mode = std::fs::metadata(out.join("src/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert!(!out.join("src/.git").exists(), ".git is left out");
    assert_eq!(
        std::fs::read_to_string(out.join("sub/a.txt")).unwrap(),
        "a\n"
    );
    assert!(!out.join("sub/README").exists());
    assert!(out.join("withgit/.git").is_dir(), "--keep-git-dir keeps it");

    let err = c.build_ok(&[]);
    assert_eq!(err.matches("CACHED").count(), 3, "{err}");
    // A new commit on main (the remote's HEAD too): those ADDs miss and say why.
    std::fs::write(work.join("README"), "v2\n").unwrap();
    git(&work, &["commit", "-q", "-am", "two"]);
    git(
        &work,
        &["push", "-q", base.join("r.git").to_str().unwrap(), "main"],
    );
    let err = c.build_ok(&["--explain"]);
    assert!(
        err.contains(&format!("the commit of {url}#main changed")),
        "{err}"
    );
    assert!(
        err.contains(&format!("the commit of {url} changed")),
        "{err}"
    );
    let out = c.export(&[]);
    assert_eq!(
        std::fs::read_to_string(out.join("src/README")).unwrap(),
        "v2\n"
    );

    // A missing ref is a clear error.
    c.file(
        "Dockerfile",
        &format!("FROM localhost/busybox:latest\nADD {url}#nope /x\n"),
    );
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1);
    assert!(err.contains("no branch or tag \"nope\""), "{err}");
}

/// Entry names of every blob in the store that is a (plain) tar, by blob file name.
fn tar_blobs(root: &Path) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let bytes = std::fs::read(e.path()).unwrap();
        if bytes.len() < 512 || bytes.starts_with(b"{") {
            continue;
        }
        let mut names = Vec::new();
        let mut ar = tar::Archive::new(&bytes[..]);
        if let Ok(entries) = ar.entries() {
            for en in entries.flatten() {
                names.push(en.path().unwrap().to_string_lossy().into_owned());
            }
        }
        out.push((e.file_name().to_string_lossy().into_owned(), names));
    }
    out
}

fn check_clean(c: &Ctx) {
    let out = c.kiln(&["system", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("store is consistent"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn only_the_exported_image_gets_layer_blobs() {
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest AS gen\nRUN echo secret > /gen-only.txt && echo data > /data.txt\n\
         FROM localhost/busybox:latest\nCOPY --from=gen /data.txt /data.txt\n",
    );
    c.build_ok(&["-t", "final"]);
    let blobs = tar_blobs(&c.root);
    assert!(
        blobs
            .iter()
            .all(|(_, names)| !names.iter().any(|n| n.ends_with("gen-only.txt"))),
        "the gen stage is never exported, so its layer must not become a blob: {blobs:?}"
    );
    assert!(
        blobs
            .iter()
            .any(|(_, names)| names.iter().any(|n| n == "data.txt")),
        "the exported COPY layer is a blob: {blobs:?}"
    );
    check_clean(&c);
    // The gen stage's layer is still cached: exporting it now makes its blob, once.
    let err = c.build_ok(&["--target", "gen", "-t", "gen"]);
    assert_eq!(err.matches("CACHED").count(), 1, "{err}");
    assert!(
        tar_blobs(&c.root)
            .iter()
            .any(|(_, names)| names.iter().any(|n| n.ends_with("gen-only.txt")))
    );
    let before = std::fs::read_dir(c.root.join("blobs/sha256"))
        .unwrap()
        .count();
    c.build_ok(&["--target", "gen", "-t", "gen"]);
    let after = std::fs::read_dir(c.root.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(before, after, "the second export reuses the blob");
    check_clean(&c);
}

#[test]
fn a_layer_whose_blob_is_made_late_matches_a_no_cache_build_and_saves() {
    let df = "FROM localhost/busybox:latest AS gen\nWORKDIR /w\nRUN echo one > a && mkdir d && echo two > d/b && ln -s a l\n\
              FROM localhost/busybox:latest\nCOPY --from=gen /w/a /a\n";
    let epoch = ["--build-arg", "SOURCE_DATE_EPOCH=1700000000"];
    let c = Ctx::new();
    c.file("Dockerfile", df);
    // The first build never exports gen: its WORKDIR and RUN layers get no blob.
    c.build_ok(&epoch);
    // A cached build of gen makes them now.
    let mut args = vec!["--target", "gen", "-t", "gen:1"];
    args.extend_from_slice(&epoch);
    let mut a = vec!["-q"];
    a.extend_from_slice(&args);
    let (code, out, err) = c.build(&a);
    assert_eq!(code, 0, "{err}");
    let lazy = out.trim().to_string();
    let err = c.build_ok(&args);
    assert_eq!(err.matches("CACHED").count(), 2, "{err}");
    // The same image as when every step ran and made its blob right away.
    let fresh = Ctx::new();
    fresh.file("Dockerfile", df);
    let mut a = vec!["--no-cache", "--target", "gen"];
    a.extend_from_slice(&epoch);
    assert_eq!(fresh.image_id(&a), lazy);
    // Another SOURCE_DATE_EPOCH is another tar: the cached snapshot gets another blob, the
    // same as a build that ran the steps.
    let other = [
        "--target",
        "gen",
        "--build-arg",
        "SOURCE_DATE_EPOCH=1600000000",
    ];
    let id2 = c.image_id(&other);
    assert_ne!(id2, lazy);
    let fresh2 = Ctx::new();
    fresh2.file("Dockerfile", df);
    let mut a = vec!["--no-cache"];
    a.extend_from_slice(&other);
    assert_eq!(fresh2.image_id(&a), id2);
    // kiln save of the late-made image loads back with the same ID, and skopeo reads it.
    let saved = c.tmp.path().join("gen.tar");
    let out = c.kiln(&["save", "-o", saved.to_str().unwrap(), "gen:1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let third = Ctx::new();
    let out = third.kiln(&["load", "-i", saved.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids = third.kiln(&["images", "-q", "--no-trunc", "gen:1"]);
    assert_eq!(String::from_utf8_lossy(&ids.stdout).trim(), lazy);
    let sk = Command::new(require_command("skopeo", "skopeo"))
        .args([
            "inspect",
            "--raw",
            &format!("docker-archive:{}", saved.display()),
        ])
        .output()
        .unwrap();
    assert!(
        sk.status.success(),
        "{}",
        String::from_utf8_lossy(&sk.stderr)
    );
    check_clean(&c);
    check_clean(&third);
}

/// Media types of the layers of the tagged image `reference` (full form), from the store's
/// OCI layout.
fn layer_media_types(root: &Path, reference: &str) -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .unwrap_or_else(|| panic!("{reference} not in {index}"));
    let hex = m["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn compression_applies_to_cached_layers_too() {
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN echo x > /x\n",
    );
    let plain = c.image_id(&["-t", "plain"]);
    // The step is cached, but its layer is exported gzip-compressed. (A label makes it a new
    // image: an image already in the store keeps the manifest it has, as in docker.)
    let err = c.build_ok(&["--compression", "gzip", "--label", "v=2", "-t", "gz"]);
    assert!(err.contains("CACHED"), "{err}");
    let gz = c.image_id(&["--compression", "gzip", "--label", "v=2", "-t", "gz"]);
    assert_ne!(plain, gz);
    let plain_types = layer_media_types(&c.root, "docker.io/library/plain:latest");
    let gz_types = layer_media_types(&c.root, "docker.io/library/gz:latest");
    assert_eq!(
        plain_types.last().unwrap(),
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(
        gz_types.last().unwrap(),
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let dest = c.export(&["--compression", "gzip", "--label", "v=2"]);
    assert_eq!(std::fs::read_to_string(dest.join("x")).unwrap(), "x\n");
    check_clean(&c);
}

#[test]
fn tar_and_local_outputs_hold_the_final_filesystem() {
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest AS gen\nRUN echo data > /data.txt && echo no > /gen-only.txt\n\
         FROM localhost/busybox:latest\nCOPY --from=gen /data.txt /data.txt\nRUN rm /bin/cat\n",
    );
    let tar = c.tmp.path().join("fs.tar");
    let dir = c.tmp.path().join("fs");
    let t = format!("type=tar,dest={}", tar.display());
    let l = format!("type=local,dest={}", dir.display());
    c.build_ok(&["-o", &t, "-o", &l]);
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    for e in ar.entries().unwrap() {
        names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    assert!(names.iter().any(|n| n == "data.txt"), "{names:?}");
    assert!(names.iter().any(|n| n == "bin/sh"), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.contains("gen-only") || n == "bin/cat")
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("data.txt")).unwrap(),
        "data\n"
    );
    assert!(dir.join("bin/sh").exists() && !dir.join("bin/cat").exists());
    assert!(!dir.join("gen-only.txt").exists());
}

#[test]
fn no_cache_rebuild_keeps_the_old_snapshot_for_the_collector() {
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN mkdir /d && for i in 1 2 3; do echo $i > /d/$i; done\n",
    );
    let snaps = || {
        std::fs::read_dir(c.root.join("snapshots-v1"))
            .unwrap()
            .count()
    };
    let first = c.image_id(&["--build-arg", "SOURCE_DATE_EPOCH=1700000000", "-t", "nc:1"]);
    let before = snaps();
    let again = c.image_id(&[
        "--no-cache",
        "--build-arg",
        "SOURCE_DATE_EPOCH=1700000000",
        "-t",
        "nc:1",
    ]);
    assert_eq!(first, again, "same inputs, same image");
    assert_eq!(
        snaps(),
        before + 1,
        "the re-run step wrote a snapshot of its own"
    );
    // The cache now names the new one; the old one goes with the next collection.
    let out = c.kiln(&["builder", "prune", "-f", "--filter", "until=1000h"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        snaps(),
        before,
        "the replaced snapshot was collected, nothing else"
    );
    let out = c.kiln(&["system", "check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = c.build_ok(&["--build-arg", "SOURCE_DATE_EPOCH=1700000000"]);
    assert!(err.contains("CACHED"), "{err}");
}

#[test]
fn a_named_context_replaces_the_stage_of_the_same_name() {
    let c = Ctx::new();
    let tools = c.tmp.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    std::fs::write(tools.join("tool.txt"), "from the directory\n").unwrap();
    // Were `tools` or `deps` built, their `RUN exit 1` would fail the build; `expensive` is
    // needed only by `deps`, so it must not run either.
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest AS tools\nRUN exit 1\n\
         FROM localhost/busybox:latest AS expensive\nRUN exit 1\n\
         FROM localhost/busybox:latest AS deps\nCOPY --from=expensive / /x\nRUN exit 1\n\
         FROM localhost/busybox:latest\n\
         COPY --from=tools /tool.txt /got-tool\n\
         COPY --from=deps /bin/busybox /got-busybox\n",
    );
    let t = format!("tools={}", tools.display());
    let d = format!("deps=docker-archive:{}", busybox_archive().display());
    let out = c.export(&["--build-context", &t, "--build-context", &d]);
    assert_eq!(
        std::fs::read_to_string(out.join("got-tool")).unwrap(),
        "from the directory\n"
    );
    assert!(out.join("got-busybox").is_file());
    let err = c.build_ok(&["--build-context", &t, "--build-context", &d]);
    assert!(!err.contains("exit 1"), "no replaced stage ran:\n{err}");
    assert!(
        !err.contains("[expensive"),
        "a stage only the replaced one needed ran:\n{err}"
    );
}

// Limits on hostile input ("Limits" in docs/dockerfile.md): refused with a message and exit
// status 1, never a signal; nothing is run.

#[test]
fn an_exponential_arg_bomb_fails_at_planning_with_the_location() {
    let c = Ctx::new();
    let mut s = String::from("FROM scratch\nARG A=xxxxxxxx\nARG A1=${A}${A}\n");
    for i in 2..=40 {
        s.push_str(&format!("ARG A{i}=${{A{}}}${{A{}}}\n", i - 1, i - 1));
    }
    s.push_str("RUN echo $A40\n");
    c.file("Dockerfile", &s);
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("expansion too large"), "{err}");
    assert!(err.contains("Dockerfile:20:9"), "{err}");
}

#[test]
fn planning_errors_name_the_file_given_with_f() {
    let c = Ctx::new();
    let mut s = String::from("ARG A=xxxxxxxx\nARG A1=${A}${A}\n");
    for i in 2..=40 {
        s.push_str(&format!("ARG A{i}=${{A{}}}${{A{}}}\n", i - 1, i - 1));
    }
    s.push_str("FROM scratch\nENV B=$A40\n");
    c.file("Dockerfile.bomb", &s);
    let f = c.ctx.join("Dockerfile.bomb");
    let (code, _, err) = c.build(&["-f", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("expansion too large"), "{err}");
    // The global ARG that passes the limit, at its value (not at `ARG`), in the file built.
    assert!(err.contains(" --> Dockerfile.bomb:19:9\n"), "{err}");
    assert!(!err.contains("--> Dockerfile:"), "{err}");
}

#[test]
fn huge_lines_make_small_errors() {
    let c = Ctx::new();
    let big = "x".repeat(10_000_000);
    c.file("Dockerfile", &format!("FROM scratch\nENV X=\"{big}\n"));
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1, "{}", &err[..err.len().min(2000)]);
    assert!(err.len() < 2000, "{} bytes of stderr", err.len());
    assert!(err.contains("Dockerfile:2:7"), "{err}");
    assert!(err.contains("…\n"), "{err}");

    // A RUN printing one 10 MB line: its log is cut at 2 MiB, its error shows 1 KiB of it.
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN head -c 10000000 /dev/zero | tr \"\\0\" x; exit 4\n",
    );
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1, "{}", &err[..err.len().min(2000)]);
    assert!(
        err.contains("exit code: 4"),
        "{}",
        &err[err.len().saturating_sub(3000)..]
    );
    // The log is what shows the output (BuildKit's error box under it names the step only).
    assert!(err.contains("[output clipped, log limit 2MiB reached]"));
    assert!(
        err.len() < (2 << 20) + 10_000,
        "{} bytes of stderr",
        err.len()
    );
}

#[test]
fn a_dockerfile_from_dev_zero_is_refused() {
    assert!(Path::new("/dev/zero").exists(), "this test needs /dev/zero");
    let c = Ctx::new();
    let (code, _, err) = c.build(&["-f", "/dev/zero"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/dev/zero"), "{err}");
    assert!(err.contains("larger than 16 MiB"), "{err}");
}

/// A sparse file of 17 MiB: bigger than the limit without writing that much.
fn oversized(path: &Path) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(17 << 20).unwrap();
}

#[test]
fn oversized_ignore_files_are_refused() {
    let c = Ctx::new();
    c.file("Dockerfile", "FROM scratch\nCOPY a /a\n");
    c.file("a", "a\n");
    oversized(&c.ctx.join(".dockerignore"));
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(".dockerignore"), "{err}");
    assert!(err.contains("larger than 16 MiB"), "{err}");

    // `<Dockerfile>.dockerignore` is read before the context's.
    std::fs::remove_file(c.ctx.join(".dockerignore")).unwrap();
    oversized(&c.ctx.join("Dockerfile.dockerignore"));
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Dockerfile.dockerignore"), "{err}");
    assert!(err.contains("larger than 16 MiB"), "{err}");
    std::fs::remove_file(c.ctx.join("Dockerfile.dockerignore")).unwrap();

    // A `--build-context` directory's own `.dockerignore`.
    let extra = c.tmp.path().join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    oversized(&extra.join(".dockerignore"));
    c.file("Dockerfile", "FROM scratch\nCOPY --from=extra . /x\n");
    let named = format!("extra={}", extra.display());
    let (code, _, err) = c.build(&["--build-context", &named]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--build-context extra="), "{err}");
    assert!(err.contains("larger than 16 MiB"), "{err}");
}

#[test]
fn new_env_variables_between_runs_stop_at_the_run_environment_limit() {
    // Every RUN gets the whole environment: 1,000 × (a new 1 KiB variable, RUN) would hand
    // the RUNs 500 MiB in all. Planning stops at 64 MiB, before anything runs.
    let c = Ctx::new();
    let value = "v".repeat(1024);
    let mut s = String::from("FROM scratch\n");
    for i in 0..1000 {
        s.push_str(&format!("ENV V{i}={value}\nRUN true\n"));
    }
    c.file("Dockerfile", &s);
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("environment too large"), "{err}");
    assert!(err.contains("more than 64 MiB"), "{err}");
    // About the 360th RUN (line 2 × 360 + 1): sum of k KiB for k up to n passes 64 MiB.
    let line: usize = err
        .split("Dockerfile:")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Dockerfile:LINE in {err}"));
    assert!((700..760).contains(&line), "{err}");
}

/// `kiln build -` with a (gzipped) tar context, with a bare Dockerfile, `-f -`, and both at
/// once (refused, with docker's words); a hostile entry in the tar stays inside the context.
#[test]
fn contexts_and_dockerfiles_from_standard_input() {
    use std::io::Write;
    use std::process::Stdio;
    let c = Ctx::new();
    c.file("sub/a.txt", "hello\n")
        .file("x.log", "excluded\n")
        .file(".dockerignore", "*.log\n")
        .file(
            "Dockerfile",
            "FROM localhost/busybox:latest\nCOPY . /c\nRUN cat /c/sub/a.txt && test ! -e /c/x.log\n",
        );
    let tgz = c.fresh("ctx.tgz");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&c.ctx)
        .arg("-czf")
        .arg(&tgz)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let run = |args: &[&str], input: &[u8]| {
        let mut child = Command::new(bin())
            .env("KILN_ROOT", &c.root)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out
    };
    let out = run(
        &["build", "--progress=plain", "-t", "from-tar", "-"],
        &std::fs::read(&tgz).unwrap(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("hello"), "{err}");

    let out = run(
        &["build", "--progress=plain", "-"],
        b"FROM localhost/busybox:latest\nRUN echo bare-dockerfile\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("bare-dockerfile"),
        "{err}"
    );

    let ctx = c.ctx.to_str().unwrap();
    let out = run(
        &["build", "--progress=plain", "-f", "-", ctx],
        b"FROM localhost/busybox:latest\nCOPY sub/a.txt /a\nRUN cat /a\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("hello"), "{err}");

    let out = run(&["build", "-f", "-", "-"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("can't use stdin for both"),
        "{err}"
    );

    // A tar whose entry climbs out of the context: refused or kept inside, never written out.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let body = b"FROM localhost/busybox:latest\nCOPY . /c\n";
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "Dockerfile", &body[..]).unwrap();
    let escape = c.tmp.path().join("escaped");
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    let name = format!("../../../../../../..{}", escape.display());
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    b.append(&h, &b"bad"[..]).unwrap();
    let out = run(&["build", "-q", "-"], &b.into_inner().unwrap());
    assert!(!escape.exists(), "a tar entry escaped the context: {out:?}");
}

/// `builder prune` asks first, on stdout, as docker does; `-f` does not; "n" keeps the cache.
#[test]
fn builder_prune_asks_unless_forced() {
    use std::io::Write;
    use std::process::Stdio;
    let c = Ctx::new();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN echo x > /x\n",
    );
    c.build_ok(&[]);
    // As docker: without -a only dangling cache goes (this image still uses its steps'),
    // with -a all of it; both ask first.
    let ask = |all: bool, answer: &str| {
        let mut args = vec!["builder", "prune"];
        if all {
            args.push("-a");
        }
        let mut child = Command::new(bin())
            .env("KILN_ROOT", &c.root)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = ask(false, "y\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains(
            "WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] "
        ),
        "{text}"
    );
    let (_, _, err) = c.build(&[]);
    assert!(
        err.contains("CACHED"),
        "the image's steps are not dangling:\n{err}"
    );
    let out = ask(true, "n\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "WARNING! This will remove all build cache. Are you sure you want to continue? [y/N] "
        ),
        "{text}"
    );
    let (_, _, err) = c.build(&[]);
    assert!(err.contains("CACHED"), "answering n kept the cache:\n{err}");
    let out = ask(true, "y\n");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Total reclaimed space:"));
    let (_, _, err) = c.build(&[]);
    assert!(
        !err.contains("CACHED"),
        "answering y removed the cache:\n{err}"
    );
}
