//! End-to-end `kiln build` tests of what a build may see and do: `.dockerignore` on every read
//! of the context, relative context paths, mounts over the container's own paths, device
//! nodes, exports of images with symlinked directories, and huge commands in messages. The
//! real binary, a temporary store, the busybox image from scripts/make-busybox-image.sh,
//! overlayfs and namespaces for real (run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::*;

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

// ---- item 6: relative context paths ---------------------------------------------------------

/// The README's form: `cd CONTEXT && kiln build .`, with every mount type, a relative
/// `--secret src=`, a relative `--build-context`, an SSH agent socket and the store root
/// given relatively.
#[test]
fn relative_context_path_works_for_every_mount_type() {
    let c = Ctx::new();
    let extra = c.tmp.path().join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("e.txt"), "extra\n").unwrap();
    let _agent = std::os::unix::net::UnixListener::bind(c.ctx.join("agent.sock")).unwrap();
    c.file("a.txt", "ctx\n")
        .file("sub/b.txt", "sub\n")
        .file("tok.txt", "s3cret")
        .file(
            "Dockerfile",
            "FROM localhost/busybox:latest AS stage\n\
             RUN echo stage > /s.txt\n\
             FROM localhost/busybox:latest\n\
             RUN --mount=type=bind,target=/c cat /c/a.txt > /r-bind\n\
             RUN --mount=type=bind,source=sub,target=/c cat /c/b.txt > /r-bind-source\n\
             RUN --mount=type=bind,rw,target=/c echo x > /c/new && cat /c/a.txt > /r-bind-rw\n\
             RUN --mount=type=bind,from=stage,source=/s.txt,target=/s cat /s > /r-stage\n\
             RUN --mount=type=bind,from=extra,target=/e cat /e/e.txt > /r-named\n\
             RUN --mount=type=cache,target=/cache echo cache > /cache/x && cat /cache/x > /r-cache\n\
             RUN --mount=type=tmpfs,target=/t echo tmpfs > /t/x && cat /t/x > /r-tmpfs\n\
             RUN --mount=type=secret,id=tok cat /run/secrets/tok > /r-secret\n\
             RUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo ssh > /r-ssh\n",
        );
    let dest = c.fresh("out");
    let o = format!("type=local,dest={}", dest.display());
    // The store root given relatively too (`KILN_ROOT=../root`, the same store).
    let out = Command::new(bin())
        .env("KILN_ROOT", "../root")
        .current_dir(&c.ctx)
        .args([
            "build",
            "--progress=plain",
            "--secret",
            "id=tok,src=tok.txt",
            "--build-context",
            "extra=../extra",
            "--ssh",
            "default=./agent.sock",
            "-o",
            &o,
            ".",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kiln build . failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (f, want) in [
        ("r-bind", "ctx\n"),
        ("r-bind-source", "sub\n"),
        ("r-bind-rw", "ctx\n"),
        ("r-stage", "stage\n"),
        ("r-named", "extra\n"),
        ("r-cache", "cache\n"),
        ("r-tmpfs", "tmpfs\n"),
        ("r-secret", "s3cret"),
        ("r-ssh", "ssh\n"),
    ] {
        assert_eq!(read(&dest, f), want, "{f}");
    }
    assert!(!c.ctx.join("new").exists(), "rw writes reached the context");
    assert!(c.tmp_is_empty(), "the build left temporary files");
}

// ---- item 8: mounts over /proc and /sys ----------------------------------------------------

#[test]
fn mounts_over_proc_and_sys_are_refused_with_the_line() {
    let c = Ctx::new();
    for (target, kind) in [
        ("/proc", "tmpfs"),
        ("/proc/sys", "tmpfs"),
        ("/sys", "tmpfs"),
        ("/sys/fs/cgroup", "tmpfs"),
        ("/dev", "tmpfs"),
        ("/proc", "cache"),
        ("/./proc/../proc", "bind"),
        ("/", "tmpfs"),
        ("/x/..", "tmpfs"),
        ("/", "cache"),
    ] {
        c.file(
            "Dockerfile",
            &format!(
                "FROM localhost/busybox:latest\n\nRUN --mount=type={kind},target={target} true\n"
            ),
        );
        let (code, _, err) = c.build(&[]);
        assert_eq!(code, 1, "{target} ({kind}) was accepted:\n{err}");
        assert!(err.contains("Dockerfile:3"), "{target}: no line:\n{err}");
        assert!(
            err.contains(&format!("--mount target {target:?}")) && err.contains("not allowed"),
            "{target}: unclear message:\n{err}"
        );
        assert!(c.tmp_is_empty(), "a refused mount left temporary files");
    }
    // Below /dev is fine (/dev/shm is a common tmpfs target), and so is a relative target
    // that only looks like /proc: it is below the working directory.
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\nWORKDIR /w\n\
         RUN --mount=type=tmpfs,target=/dev/shm echo a > /dev/shm/a && cat /dev/shm/a > /shm\n\
         RUN --mount=type=tmpfs,target=proc touch /w/proc/x && ls /proc/self/fd >/dev/null && echo ok > /rel\n",
    );
    let out = c.export(&[]);
    assert_eq!(read(&out, "shm"), "a\n");
    assert_eq!(read(&out, "rel"), "ok\n");
}

#[test]
fn mount_targets_are_checked_where_they_resolve_in_the_image() {
    let c = Ctx::new();
    support::require_command("runc", "runc");
    // Symlinks in the image carry a target onto /dev, /sys, /proc or the root: refused where
    // the runtime resolves the target inside the root, with the Dockerfile line.
    for (target, resolved) in [
        ("/d", "/dev"),
        ("/r/sys", "/sys"),
        ("/r/sys/fs/cgroup", "/sys/fs/cgroup"),
        ("/p/sys", "/proc/sys"),
        ("/r/proc", "/proc"),
        ("/r", "/"),
        ("/r/", "/"),
        ("/t/../r/dev", "/dev"),
    ] {
        c.file(
            "Dockerfile",
            &format!(
                "FROM localhost/busybox:latest\n\
                 RUN ln -s /proc /p && ln -s / /r && ln -s /dev /d && ln -s /tmp /t\n\
                 RUN --mount=type=tmpfs,target={target} echo hi > /dev/null\n"
            ),
        );
        // runc checks only /proc itself; kiln refuses before handing it the spec.
        let (code, _, err) = c.build(&["--no-cache", "--runtime", "runc"]);
        assert_eq!(code, 1, "runc: {target} was accepted:\n{err}");
        assert!(
            err.contains(&format!(
                "--mount target {target:?} resolves to {resolved} "
            )),
            "runc: {target}: unclear message:\n{err}"
        );
        let (code, _, err) = c.build(&[]);
        assert_eq!(code, 1, "{target} was accepted:\n{err}");
        assert!(err.contains("Dockerfile:3"), "{target}: no line:\n{err}");
        assert!(
            err.contains(&format!(
                "--mount target {target:?} resolves to {resolved} in the container"
            )) && err.contains("not allowed"),
            "{target}: unclear message:\n{err}"
        );
        assert!(!err.contains("Permission denied"), "{target}: ran:\n{err}");
        assert!(c.tmp_is_empty(), "a refused mount left temporary files");
    }
    // A symlink met below an earlier mount is seen where the runtime mounts: the bind mount of
    // a stage's /data holds s -> /sys.
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest AS data\n\
         RUN mkdir /data && ln -s /sys /data/s\n\
         FROM localhost/busybox:latest\n\
         RUN --mount=type=bind,from=data,source=/data,target=/data \
             --mount=type=tmpfs,target=/data/s/kernel true\n",
    );
    let (code, _, err) = c.build(&[]);
    assert_eq!(code, 1, "accepted:\n{err}");
    assert!(err.contains("Dockerfile:4"), "no line:\n{err}");
    assert!(
        err.contains("--mount target \"/data/s/kernel\" resolves to /sys/kernel in the container"),
        "unclear message:\n{err}"
    );
    assert!(c.tmp_is_empty(), "a refused mount left temporary files");

    // A symlink to an ordinary place still works as a target: the tmpfs lands on /tmp (and
    // nothing written there is committed), and /dev/shm through /d is fine.
    c.file(
        "Dockerfile",
        "FROM localhost/busybox:latest\n\
         RUN ln -s /tmp /t && ln -s /dev /d\n\
         RUN --mount=type=tmpfs,target=/t --mount=type=tmpfs,target=/d/shm \
             echo x > /tmp/x && echo y > /dev/shm/y && grep -c ' /tmp tmpfs' /proc/mounts > /tmpfs \
             && echo hi > /dev/null && echo ok > /ok\n",
    );
    let out = c.export(&[]);
    assert_eq!(read(&out, "ok"), "ok\n");
    assert_eq!(read(&out, "tmpfs"), "1\n");
    assert!(!out.join("tmp/x").exists(), "the tmpfs was not on /tmp");
}

// ---- item 14: huge commands are not echoed whole --------------------------------------------

#[test]
fn a_huge_failing_command_is_not_echoed_whole() {
    let c = Ctx::new();
    // 10 MB in one RUN: too long for execve, so the RUN fails.
    let big = "x".repeat(10 << 20);
    c.file(
        "Dockerfile",
        &format!("FROM localhost/busybox:latest\nRUN echo {big}\n"),
    );
    let (code, out, err) = c.build(&[]);
    assert_eq!(code, 1, "{}", &err[..err.len().min(4000)]);
    assert!(
        err.len() + out.len() < 64 << 10,
        "{} bytes of output for a {} byte command",
        err.len() + out.len(),
        big.len()
    );
    assert!(
        err.contains("Argument list too long"),
        "the cause is lost:\n{err}"
    );
    assert!(
        err.contains(&format!("({} bytes)", "RUN echo ".len() + big.len())),
        "no size marker:\n{err}"
    );
}

// ---- item 4: .dockerignore applies to bind mounts of a context ------------------------------

#[test]
fn bind_mounts_of_a_context_hide_what_dockerignore_excludes() {
    let c = Ctx::new();
    let extra = c.tmp.path().join("extra");
    std::fs::create_dir_all(extra.join("d")).unwrap();
    std::fs::write(extra.join("e.txt"), "e\n").unwrap();
    std::fs::write(extra.join("d/hidden"), "h\n").unwrap();
    std::fs::write(extra.join(".dockerignore"), "d/hidden\n").unwrap();
    c.file(".dockerignore", "secret\n**/*.log\n!logs/keep.log\n")
        .file("a.txt", "a\n")
        .file("secret/key", "k\n")
        .file("node.log", "n\n")
        .file("logs/x.log", "x\n")
        .file("logs/keep.log", "keep\n")
        .file("logs/sub/y.log", "y\n")
        .file(
            "Dockerfile",
            "FROM localhost/busybox:latest\n\
             COPY . /copy\n\
             RUN find /copy | sed s,^/copy,/c, | sort > /copy-list\n\
             RUN --mount=type=bind,target=/c find /c | sort > /bind-list\n\
             RUN --mount=type=bind,target=/c,rw find /c | sort > /rw-list && rm -rf /c/logs && echo x > /c/new\n\
             RUN --mount=type=bind,source=logs,target=/c find /c | sort > /source-list\n\
             RUN --mount=type=bind,from=extra,target=/c find /c | sort > /named-list\n",
        );
    let out = c.export(&["--build-context", &format!("extra={}", extra.display())]);
    let copy = read(&out, "copy-list");
    assert!(
        !copy.contains("secret") && !copy.contains("x.log"),
        "{copy}"
    );
    assert!(copy.contains("/c/logs/keep.log"), "{copy}");
    assert_eq!(
        read(&out, "bind-list"),
        copy,
        "a bind mount sees what COPY sees"
    );
    assert_eq!(read(&out, "rw-list"), copy, "so does a rw bind mount");
    assert_eq!(read(&out, "source-list"), "/c\n/c/keep.log\n/c/sub\n");
    assert_eq!(
        read(&out, "named-list"),
        "/c\n/c/.dockerignore\n/c/d\n/c/e.txt\n",
        "a named context applies its own .dockerignore"
    );
    assert!(c.ctx.join("logs/x.log").exists() && !c.ctx.join("new").exists());
    assert!(c.tmp_is_empty(), "the build left temporary files");

    // A source that is itself excluded does not exist, as for COPY.
    for source in ["secret", "secret/key", "node.log"] {
        c.file(
            "Dockerfile",
            &format!(
                "FROM localhost/busybox:latest\nRUN --mount=type=bind,source={source},target=/c cat /c\n"
            ),
        );
        let (code, _, err) = c.build(&[]);
        assert_eq!(code, 1, "{source}: excluded source was mounted:\n{err}");
        assert!(
            err.contains(&format!("\"/{source}\": not found")) && err.contains("Dockerfile:2"),
            "{source}: {err}"
        );
    }
}

// ---- item 7: outputs of images whose upper layers write through a lower layer's symlink ------

/// The entries of a tar file: path → (entry type, link target or contents).
fn tar_entries(file: &Path) -> std::collections::BTreeMap<String, (tar::EntryType, String)> {
    use std::io::Read;
    let mut a = tar::Archive::new(std::fs::File::open(file).unwrap());
    let mut out = std::collections::BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let kind = e.header().entry_type();
        let what = match e.link_name().unwrap() {
            Some(l) => l.to_string_lossy().into_owned(),
            None => {
                let mut s = String::new();
                let _ = e.read_to_string(&mut s);
                s
            }
        };
        out.insert(path, (kind, what));
    }
    out
}

#[test]
fn local_and_tar_outputs_resolve_lower_layer_symlinks_inside_the_root() {
    let c = Ctx::new();
    // A name the host does not have: a write that escaped the exported root would show.
    let real = format!("/kiln-safety-real-{}", std::process::id());
    assert!(!Path::new(&real).exists());
    c.file(
        "Dockerfile",
        &format!(
            "FROM localhost/busybox:latest\n\
             RUN ln -s {real} /link && mkdir {real} && ln -s {real}/ /link2 && ln -s /link /chain\n\
             RUN echo x > /link/f && mkdir /link2/d && echo y > /chain/d/g\n"
        ),
    );
    let out = c.export(&[]);
    assert_eq!(
        std::fs::read_link(out.join("link")).unwrap(),
        PathBuf::from(&real)
    );
    let inside = out.join(real.trim_start_matches('/'));
    assert_eq!(read(&inside, "f"), "x\n");
    assert_eq!(read(&inside, "d/g"), "y\n");
    assert!(
        !Path::new(&real).exists(),
        "the export wrote outside its root"
    );

    let tar = c.fresh("fs.tar");
    let o = format!("type=tar,dest={}", tar.display());
    c.build_ok(&["-o", &o]);
    let entries = tar_entries(&tar);
    let r = real.trim_start_matches('/');
    assert_eq!(
        entries.get("link"),
        Some(&(tar::EntryType::Symlink, real.clone()))
    );
    assert_eq!(
        entries.get(&format!("{r}/f")),
        Some(&(tar::EntryType::Regular, "x\n".into()))
    );
    assert_eq!(
        entries.get(&format!("{r}/d/g")),
        Some(&(tar::EntryType::Regular, "y\n".into()))
    );
    assert!(
        !entries.keys().any(|k| k.starts_with("link/")),
        "{entries:?}"
    );
}

// ---- item 5: device nodes ------------------------------------------------------------------

#[test]
fn a_run_can_make_device_nodes_but_not_open_the_host_disk() {
    use std::os::unix::fs::MetadataExt;
    let c = Ctx::new();
    // The control: this host lets root open a loop device node (it refuses even root its own
    // disk, so the disk alone would prove nothing).
    let control = c.tmp.path().join("loop-control");
    let status = Command::new("mknod")
        .args([control.to_str().unwrap(), "b", "7", "0"])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::File::open(&control).expect("the host cannot open b 7:0: no control device");
    let dev = std::fs::metadata("/").unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    c.file(
        "Dockerfile",
        &format!(
            "FROM localhost/busybox:latest\n\
             RUN mknod /disk b {major} {minor} && mknod /null2 c 1 3 && mkfifo /fifo \
             && if head -c1 /disk > /dev/null; then echo opened > /disk-read; fi \
             && mknod /loop b 7 0 && if dd if=/loop of=/dev/null count=0; then echo opened > /loop-dd; fi \
             && echo x > /null2 && head -c4 /dev/zero | wc -c > /zero && head -c4 /dev/urandom | wc -c > /urandom \
             && echo ok > /dev/null && (echo through > /fifo &) && cat /fifo > /fifo-read\n"
        ),
    );
    let tar = c.fresh("fs.tar");
    let o = format!("type=tar,dest={}", tar.display());
    let mut child = Command::new(bin())
        .env("KILN_ROOT", &c.root)
        .args([
            "build",
            "--progress=plain",
            "-o",
            &o,
            c.ctx.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(child.wait().unwrap().success(), "build failed:\n{err}");
    let e = tar_entries(&tar);
    assert!(!e.contains_key("disk-read"), "the host disk was opened");
    assert!(!e.contains_key("loop-dd"), "a loop device node was opened");
    assert_eq!(e.get("zero").map(|v| v.1.as_str()), Some("4\n"));
    assert_eq!(e.get("urandom").map(|v| v.1.as_str()), Some("4\n"));
    assert_eq!(e.get("fifo-read").map(|v| v.1.as_str()), Some("through\n"));
    // The nodes a RUN made are part of its layer, as in BuildKit.
    assert_eq!(e.get("disk").map(|v| v.0), Some(tar::EntryType::Block));
    assert_eq!(e.get("null2").map(|v| v.0), Some(tar::EntryType::Char));
    assert_eq!(e.get("fifo").map(|v| v.0), Some(tar::EntryType::Fifo));
    // The build's device cgroups are gone.
    let left: Vec<String> = std::fs::read_dir("/sys/fs/cgroup/devices")
        .map(|rd| {
            rd.flatten()
                .filter_map(|d| d.file_name().into_string().ok())
                .filter(|n| n.starts_with(&format!("kiln-{pid}-")))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "device cgroups left behind: {left:?}");
}
