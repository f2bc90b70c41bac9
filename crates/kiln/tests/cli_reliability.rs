//! Reliability: the store and the build under crashes, races and a full disk. Each test
//! reproduces a failure found by probing kiln as an adversarial user would (kill -9 at random
//! moments, removals racing builds, `system check --repair` racing builds, signals during the
//! export, a 100% full file system). Run as root (overlayfs, namespaces, loop mounts).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod support;
use support::{bin, busybox_archive, require_root};

struct Store {
    _tmp: Option<tempfile::TempDir>,
    root: PathBuf,
    work: PathBuf,
}

impl Store {
    fn new() -> Store {
        require_root();
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let s = Store::at(tmp.path().join("root"), tmp.path().join("work"));
        Store {
            _tmp: Some(tmp),
            ..s
        }
    }

    fn at(root: PathBuf, work: PathBuf) -> Store {
        std::fs::create_dir_all(&work).unwrap();
        let s = Store {
            _tmp: None,
            root,
            work,
        };
        s.ok(&["load", "-q", "-i", busybox_archive().to_str().unwrap()]);
        s
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.env("KILN_ROOT", &self.root)
            .env_remove("SOURCE_DATE_EPOCH")
            .args(args);
        c
    }

    fn kiln(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kiln(args);
        assert!(
            out.status.success(),
            "kiln {}: exit {:?}\n{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A build context directory named `name` holding `dockerfile`.
    fn context(&self, name: &str, dockerfile: &str) -> PathBuf {
        let d = self.work.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("Dockerfile"), dockerfile).unwrap();
        d
    }

    fn build(&self, tag: &str, dockerfile: &str) {
        let ctx = self.context(&format!("ctx-{}", tag.replace([':', '/'], "-")), dockerfile);
        self.ok(&["build", "-q", "-t", tag, ctx.to_str().unwrap()]);
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn image_ids(&self) -> Vec<String> {
        self.ok(&["images", "-a", "-q", "--no-trunc"])
            .lines()
            .map(str::to_string)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// `system check` finds nothing broken, and every listed image is usable: it saves, and
    /// a build can start FROM it.
    fn assert_healthy(&self, what: &str) {
        let out = self.kiln(&["system", "check"]);
        assert!(
            out.status.success(),
            "{what}: system check found problems:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for id in self.image_ids() {
            let dest = self.work.join("save.tar");
            let out = self.kiln(&["save", "-o", dest.to_str().unwrap(), &id]);
            assert!(
                out.status.success(),
                "{what}: save {id}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let ctx = self.context("from-check", &format!("FROM {id}\nRUN true\n"));
            let out = self.kiln(&["build", "-q", ctx.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{what}: build FROM {id}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Files in tmp/ (in-progress writes) left behind.
    fn tmp_entries(&self) -> Vec<String> {
        std::fs::read_dir(self.root.join("tmp"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// An image of `layers` small layers on busybox, tagged `tag`.
fn layered(s: &Store, tag: &str, layers: usize, salt: &str) {
    let mut df = String::from("FROM localhost/busybox:latest\n");
    for i in 0..layers {
        df.push_str(&format!("RUN echo {salt}-{i} > /f{i}\n"));
    }
    s.build(tag, &df);
}

fn kill9(child: &mut Child) {
    // SAFETY: kill on the pid of a child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let _ = child.wait();
}

/// Issue item 2 (and the rest of the mutating commands): `kill -9` 1-16 ms into the command
/// leaves a store that `system check` finds consistent, whose every image still saves and
/// builds.
#[test]
fn kill_9_at_random_moments_of_every_mutating_command_loses_nothing() {
    let commands: &[(&str, &[&str])] = &[
        ("rmi", &["rmi", "-f", "app1", "app2", "app3"]),
        ("image prune -a", &["image", "prune", "-a", "-f"]),
        ("system prune -a", &["system", "prune", "-a", "-f"]),
        ("builder prune -a", &["builder", "prune", "-a", "-f"]),
        ("tag", &["tag", "app1", "app9"]),
        // To stdout, which spawn() points at the null device: never -o /dev/null by path.
        ("save", &["save", "app1", "app2"]),
    ];
    let mut kills = 0;
    for (name, args) in commands {
        for round in 0..6u64 {
            let s = Store::new();
            layered(&s, "app1", 12, "a");
            layered(&s, "app2", 12, "b");
            layered(&s, "app3", 4, "c");
            let mut child = s.spawn(args);
            // These commands take 5-35 ms on this store: most rounds kill them mid-way.
            std::thread::sleep(Duration::from_millis(1 + round * 3));
            if child.try_wait().unwrap().is_none() {
                kills += 1;
            }
            kill9(&mut child);
            s.assert_healthy(&format!("kill -9 during {name} (round {round})"));
        }
    }
    // Builds and loads, killed the same way.
    for round in 0..6u64 {
        let s = Store::new();
        let ctx = s.context(
            "killed-build",
            &format!(
                "FROM localhost/busybox:latest\nRUN echo {round} > /a\nRUN head -c 20000000 /dev/urandom > /big\nRUN echo done > /b\n"
            ),
        );
        let mut child = s.spawn(&["build", "-q", "-t", "killed", ctx.to_str().unwrap()]);
        std::thread::sleep(Duration::from_millis(20 + round * 60));
        kill9(&mut child);
        s.assert_healthy(&format!("kill -9 during build (round {round})"));
        let mut child = s.spawn(&["load", "-i", busybox_archive().to_str().unwrap()]);
        std::thread::sleep(Duration::from_millis(2 + round * 4));
        kill9(&mut child);
        s.assert_healthy(&format!("kill -9 during load (round {round})"));
    }
    assert!(
        kills > 10,
        "only {kills} commands were still running when killed: the test no longer probes anything"
    );
}

/// Issue item 1: `system check --repair` running again and again while builds finish never
/// removes (or reports) the fresh images.
#[test]
fn check_and_repair_racing_builds_keep_every_new_image() {
    let s = Store::new();
    // A big blob makes each check's hashing pass long: the window the race needs.
    s.build(
        "big",
        "FROM localhost/busybox:latest\nRUN head -c 200000000 /dev/urandom > /big\n",
    );
    let stop = AtomicBool::new(false);
    // Checks finished so far: the builders go on (new images each round) until two checks
    // have run during the builds, however slow a loaded machine makes one check.
    let checks = std::sync::atomic::AtomicUsize::new(0);
    let built = std::sync::Mutex::new(Vec::new());
    let reports = std::thread::scope(|sc| {
        let checker = sc.spawn(|| {
            let mut outs = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let args: &[&str] = if i % 2 == 0 {
                    &["system", "check", "--repair"]
                } else {
                    &["system", "check"]
                };
                outs.push(s.kiln(args));
                checks.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
            outs
        });
        let builders: Vec<_> = (0..4)
            .map(|n| {
                let (s, checks, built) = (&s, &checks, &built);
                sc.spawn(move || {
                    for round in 0..30 {
                        let df = format!(
                            "FROM localhost/busybox:latest\nRUN echo {n} {round} > /n\nRUN sleep 0.{n}\nRUN echo x{n} > /m\n"
                        );
                        let name = format!("fresh{n}-{round}");
                        s.build(&name, &df);
                        built.lock().unwrap().push(name);
                        if checks.load(Ordering::SeqCst) >= 2 {
                            break;
                        }
                    }
                })
            })
            .collect();
        for b in builders {
            b.join().unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        checker.join().unwrap()
    });
    assert!(
        reports.len() >= 2,
        "the checker ran {} times during 30 rounds of builds",
        reports.len()
    );
    for out in &reports {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !text.contains("broken:") && !text.contains("repaired:"),
            "a check racing builds reported problems:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let listed = s.ok(&["images", "--format", "{{.Repository}}"]);
    for name in built.lock().unwrap().iter() {
        assert!(
            listed.lines().any(|l| l == name),
            "{name} is gone:\n{listed}"
        );
    }
    s.assert_healthy("after check/repair racing builds");
}

/// Issue item 3: `rmi` and `image prune -a` of the base image while a build uses it: the
/// build still succeeds, its image is complete, and the removed base's content goes once the
/// build ends.
#[test]
fn removing_the_base_image_during_a_build_does_not_fail_the_build() {
    let s = Store::new();
    layered(&s, "base", 3, "base");
    let ctx = s.context(
        "uses-base",
        "FROM base\nRUN sleep 2\nRUN echo done > /done\n",
    );
    let build = s.spawn(&[
        "build",
        "--progress=plain",
        "-t",
        "child",
        ctx.to_str().unwrap(),
    ]);
    std::thread::sleep(Duration::from_millis(700));
    s.ok(&["rmi", "base"]);
    s.ok(&["image", "prune", "-a", "-f"]);
    let out = build.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the build failed after its base was removed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = s.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(listed.lines().any(|l| l == "child"), "{listed}");
    assert!(!listed.lines().any(|l| l == "base"), "{listed}");
    s.assert_healthy("after rmi during a build");

    // Eight builds at once with a prune racing them.
    let s = Store::new();
    layered(&s, "base", 3, "base");
    let builds: Vec<Child> = (0..8)
        .map(|n| {
            let ctx = s.context(
                &format!("par{n}"),
                &format!("FROM base\nRUN sleep 1\nRUN echo {n} > /n\n"),
            );
            s.spawn(&[
                "build",
                "-q",
                "-t",
                &format!("par{n}"),
                ctx.to_str().unwrap(),
            ])
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    s.ok(&["rmi", "base"]);
    s.ok(&["image", "prune", "-a", "-f"]);
    for (n, b) in builds.into_iter().enumerate() {
        let out = b.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "build {n} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    s.assert_healthy("after a prune racing eight builds");
}

/// Issue item 12: nothing says the image was written when the build failed.
#[test]
fn a_failed_build_never_says_built() {
    let s = Store::new();
    let ctx = s.context("fails", "FROM localhost/busybox:latest\nRUN exit 3\n");
    let out = s.kiln(&["build", "--progress=plain", ctx.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains("writing image"), "{err}");
    let ctx = s.context("succeeds", "FROM localhost/busybox:latest\nRUN true\n");
    let out = s.kiln(&["build", "--progress=plain", ctx.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("writing image sha256:"), "{err}");
}

/// Issue item 13: SIGINT, SIGTERM or SIGHUP while a layer is being exported stops the export
/// and removes the partial blob at once (not at the next command).
#[test]
fn a_signal_during_the_export_leaves_no_partial_blob() {
    for sig in [libc::SIGINT, libc::SIGHUP, libc::SIGTERM] {
        let s = Store::new();
        // gzip of 300 MB of random data: seconds of export.
        let ctx = s.context(
            "export",
            "FROM localhost/busybox:latest\nRUN head -c 300000000 /dev/urandom > /big\n",
        );
        let mut child = s.spawn(&[
            "build",
            "-q",
            "--compression",
            "gzip",
            "-t",
            "x",
            ctx.to_str().unwrap(),
        ]);
        let start = Instant::now();
        // Wait for the layer blob's temp file: the export has begun.
        loop {
            if s.tmp_entries().iter().any(|n| n.contains(".blob-")) {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the build ended before its export was seen"
            );
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no export started"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: signalling a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "signal {sig}: the build succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cancelled"), "signal {sig}: {err}");
        let left: Vec<String> = s
            .tmp_entries()
            .into_iter()
            .filter(|n| n.contains(".blob-"))
            .collect();
        assert!(
            left.is_empty(),
            "signal {sig}: partial blobs left: {left:?}"
        );
        assert!(!s.ok(&["images"]).contains("\nx "), "signal {sig}");
        s.assert_healthy(&format!("after signal {sig} during export"));
    }
}

/// A small ext4 file system on a loop device, unmounted on drop.
struct LoopFs {
    _img: tempfile::TempDir,
    mnt: PathBuf,
}

impl LoopFs {
    fn new(mb: u64) -> LoopFs {
        require_root();
        let img = tempfile::tempdir_in("/var/tmp").unwrap();
        let file = img.path().join("fs.img");
        let f = std::fs::File::create(&file).unwrap();
        f.set_len(mb << 20).unwrap();
        let st = Command::new(support::require_command("mkfs.ext4", "e2fsprogs"))
            .args(["-q", "-F"])
            .arg(&file)
            .status()
            .expect("mkfs.ext4 (e2fsprogs) is needed for the full-disk test");
        assert!(st.success(), "mkfs.ext4 failed");
        let mnt = img.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let st = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&file)
            .arg(&mnt)
            .status()
            .unwrap();
        assert!(st.success(), "mount -o loop failed (needs loop devices)");
        LoopFs { _img: img, mnt }
    }

    /// Fills the file system to the last block.
    fn fill(&self) {
        for (name, bs) in [("filler", "1M"), ("filler2", "4k"), ("filler3", "1k")] {
            let _ = Command::new("dd")
                .args(["if=/dev/zero", &format!("bs={bs}")])
                .arg(format!("of={}", self.mnt.join(name).display()))
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

/// Issue item 15: on a 100% full file system, `builder prune -a` and `system prune -a` work
/// (that is when users run them), and leave a consistent store.
#[test]
fn prune_works_when_the_disk_is_full() {
    let fs = LoopFs::new(300);
    let s = Store::at(fs.mnt.join("store"), fs.mnt.join("work"));
    layered(&s, "many", 300, "m");
    s.build(
        "big",
        "FROM localhost/busybox:latest\nRUN head -c 30000000 /dev/urandom > /big\n",
    );
    fs.fill();
    let out = s.kiln(&["builder", "prune", "-a", "-f"]);
    assert!(
        out.status.success(),
        "builder prune -a on a full disk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let df = s.ok(&["system", "df"]);
    let cache_line = df.lines().find(|l| l.starts_with("Build Cache")).unwrap();
    assert!(
        cache_line.split_whitespace().nth(2) == Some("0"),
        "the build cache is not empty after builder prune -a:\n{df}"
    );
    s.ok(&["system", "check"]);
    let _ = std::fs::remove_file(fs.mnt.join("work/save.tar"));
    // A repair that removes an image, on a full disk.
    let id = s.ok(&["inspect", "--format", "{{.Id}}", "big"]);
    let cfg = s
        .root
        .join("blobs/sha256")
        .join(id.trim().trim_start_matches("sha256:"));
    std::fs::write(&cfg, b"garbage").unwrap();
    fs.fill();
    let out = s.kiln(&["system", "check", "--repair"]);
    assert!(
        out.status.success(),
        "check --repair on a full disk: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A removal that frees almost nothing (an untag) uses the reserve up; the next prune on
    // a full disk must still work.
    s.ok(&["tag", "many", "many2"]);
    fs.fill();
    s.ok(&["rmi", "many2"]);
    fs.fill();
    let out = s.kiln(&["system", "prune", "-a", "-f"]);
    assert!(
        out.status.success(),
        "system prune -a on a full disk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.image_ids(), Vec::<String>::new());
    let out = s.kiln(&["system", "check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let trash: Vec<_> = std::fs::read_dir(s.root.join("trash")).unwrap().collect();
    assert!(trash.is_empty(), "trash left behind: {trash:?}");
}

/// `system check` says what is broken and what `--repair` will do, before doing it.
#[test]
fn check_explains_each_problem_and_what_repair_will_do() {
    let s = Store::new();
    layered(&s, "victim", 2, "v");
    let id = s.ok(&["inspect", "--format", "{{.Id}}", "victim"]);
    let cfg = s
        .root
        .join("blobs/sha256")
        .join(id.trim().trim_start_matches("sha256:"));
    std::fs::write(&cfg, b"not the config").unwrap();
    let out = s.kiln(&["system", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("broken: blob"), "{text}");
    assert!(
        text.contains("--repair deletes the blob and every image that needs it"),
        "{text}"
    );
    assert!(text.contains("broken: image"), "{text}");
    assert!(
        text.contains("--repair removes the image and its tags"),
        "{text}"
    );
    assert!(cfg.exists(), "a plain check changed nothing");
    let out = s.kiln(&["system", "check", "--repair"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("repaired: image"), "{text}");
    s.assert_healthy("after repair");
}

/// `save -o` and `--output type=docker,dest=` write a device or FIFO destination in place:
/// renaming a temp file over it replaced the machine's `/dev/null` with a regular file. A
/// private null device stands in for /dev/null, so a regression cannot break the machine.
#[test]
fn outputs_to_devices_and_fifos_are_written_in_place() {
    let s = Store::new();
    let null = s.work.join("null");
    let c = std::ffi::CString::new(null.to_str().unwrap()).unwrap();
    // SAFETY: mknod on a NUL-terminated path; makes a char device 1,3 (the null device).
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    assert_eq!(rc, 0, "mknod of a null device (needs root)");
    let is_null_device = |p: &Path| {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = std::fs::symlink_metadata(p).unwrap();
        m.file_type().is_char_device() && m.rdev() == libc::makedev(1, 3)
    };
    s.ok(&["save", "-o", null.to_str().unwrap(), "localhost/busybox"]);
    assert!(is_null_device(&null), "save -o replaced the device node");
    let ctx = s.context(
        "to-null",
        "FROM localhost/busybox:latest\nRUN echo hi > /hi\n",
    );
    let spec = format!("type=docker,dest={}", null.display());
    s.ok(&["build", "-q", "-o", &spec, ctx.to_str().unwrap()]);
    assert!(
        is_null_device(&null),
        "--output type=docker replaced the device node"
    );
    // A FIFO: the archive arrives through it.
    let fifo = s.work.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    s.ok(&["save", "-o", fifo.to_str().unwrap(), "localhost/busybox"]);
    let bytes = reader.join().unwrap();
    let mut names = Vec::new();
    for e in tar::Archive::new(&bytes[..]).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert!(names.iter().any(|n| n == "manifest.json"), "{names:?}");
}

/// `-o -` and `type=tar|docker,dest=-` write to standard output (and `-q` then prints no ID
/// there); an output without `type=`, `push=true` and unknown keys are refused, not ignored;
/// `type=image,name=X` tags X.
#[test]
fn output_specs_are_honoured_or_refused() {
    let s = Store::new();
    let ctx = s.context(
        "outputs",
        "FROM localhost/busybox:latest\nRUN echo hi > /hi\n",
    );
    let c = ctx.to_str().unwrap();
    for spec in ["-", "type=tar,dest=-"] {
        let out = s.kiln(&["build", "-q", "-o", spec, c]);
        assert!(
            out.status.success(),
            "{spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut found = false;
        for e in tar::Archive::new(&out.stdout[..]).entries().unwrap() {
            found |= e.unwrap().path().unwrap().to_str() == Some("hi");
        }
        assert!(found, "-o {spec}: the rootfs tar on stdout has no /hi");
    }
    for (spec, want) in [
        ("dest=out", "type is required"),
        (
            "type=image,push=true",
            "tag is needed when pushing to registry",
        ),
        ("type=image,bogus=1", "\"bogus\""),
        ("type=local,dest=-", "needs a directory"),
        ("type=tar,name=x,dest=f", "\"name\""),
    ] {
        let out = s.kiln(&["build", "-q", "-o", spec, c]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{spec}: {err}");
    }
    s.ok(&["build", "-q", "-o", "type=image,name=via-output", c]);
    assert!(s.ok(&["images"]).contains("via-output"));
}

/// Ctrl-C while `-o type=local` is being written stops it: exit non-zero, "cancelled", and
/// nothing says built.
#[test]
fn a_signal_during_a_local_output_cancels_the_build() {
    let s = Store::new();
    let ctx = s.context(
        "local-out",
        "FROM localhost/busybox:latest\nRUN head -c 300000000 /dev/urandom > /big\n",
    );
    s.ok(&["build", "-q", ctx.to_str().unwrap()]);
    let dest = s.work.join("out");
    let spec = format!("type=local,dest={}", dest.display());
    let mut child = s
        .cmd(&[
            "build",
            "--progress=plain",
            "-o",
            &spec,
            ctx.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !dest.join("big").exists() {
        assert!(child.try_wait().unwrap().is_none(), "ended before writing");
        assert!(start.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: signalling a child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("cancelled"), "{err}");
    // The image was written before the output; the export itself never ends DONE.
    let export = err
        .lines()
        .find_map(|l| l.strip_suffix(" exporting to image"))
        .expect("the export had started");
    assert!(!err.contains(&format!("{export} DONE")), "{err}");
}

/// An output or `--iidfile` that cannot be written is refused before anything is built, so a
/// failed build never leaves its image tagged; a failed build leaves no ID file.
#[test]
fn unwritable_outputs_fail_before_the_build() {
    let s = Store::new();
    let ctx = s.context(
        "unwritable",
        "FROM localhost/busybox:latest\nRUN echo x > /x\n",
    );
    let c = ctx.to_str().unwrap();
    for args in [
        &["-o", "type=docker,dest=/nonexistent/x.tar"][..],
        &["-o", "type=tar,dest=/nonexistent/x.tar"][..],
        &["--iidfile", "/nonexistent/iid"][..],
    ] {
        let mut a = vec!["build", "--progress=plain", "-t", "should-not-exist"];
        a.extend_from_slice(args);
        a.push(c);
        let out = s.kiln(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(!err.contains("writing image"), "{args:?}: {err}");
        assert!(!s.ok(&["images"]).contains("should-not-exist"), "{args:?}");
    }
    let iid = s.work.join("iid");
    let bad = s.context("bad", "FROM localhost/busybox:latest\nRUN exit 1\n");
    let out = s.kiln(&[
        "build",
        "--iidfile",
        iid.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(!iid.exists(), "a failed build left an ID file");
    s.ok(&["build", "-q", "--iidfile", iid.to_str().unwrap(), c]);
    assert!(
        std::fs::read_to_string(&iid)
            .unwrap()
            .starts_with("sha256:")
    );
}

/// `save` holds what it copies: an `rmi -f` of the image while it is being saved removes the
/// image, not the blobs the archive is being written from.
#[test]
fn rmi_during_save_does_not_break_the_save() {
    let s = Store::new();
    s.build(
        "saved",
        "FROM localhost/busybox:latest\nRUN head -c 100000000 /dev/urandom > /big\n",
    );
    for round in 0..5u64 {
        if round > 0 {
            s.build(
                "saved",
                &format!("FROM localhost/busybox:latest\nRUN head -c 100000000 /dev/urandom > /big{round}\n"),
            );
        }
        let dest = s.work.join("saved.tar");
        let save = s.spawn(&["save", "-o", dest.to_str().unwrap(), "saved"]);
        std::thread::sleep(Duration::from_millis(20 + round * 30));
        s.ok(&["rmi", "-f", "saved"]);
        // Collects every blob nothing references (the base image stays tagged).
        s.ok(&["system", "prune", "-f"]);
        let out = save.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let probe = Store::new();
        probe.ok(&["load", "-i", dest.to_str().unwrap()]);
        s.assert_healthy(&format!("rmi during save, round {round}"));
    }
}

/// The store directories that hold image content (the setuid files of unpacked layers among
/// it): 0700 whatever the root's mode.
const PRIVATE_DIRS: [&str; 7] = [
    "blobs",
    "tmp",
    "snapshots-v1",
    "trash",
    "containers",
    "volumes",
    "cache-mounts-v1",
];

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

/// rv3 finding 1: with a 0755 store root, another local user could run an unpacked layer's
/// setuid-root file (root on the host). The content directories are 0700, whatever the
/// root's mode, and an existing one that is group/other accessible is tightened on open.
#[test]
fn another_user_cannot_reach_unpacked_layers_whatever_the_store_roots_mode() {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    let user = kiln_test::prereq::test_user("kilntest", true);
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = Store::at(root.clone(), tmp.path().join("work"));
    // What the finding used: a setuid-root copy of a program in a layer (busybox runs its
    // first argument as the applet when its name starts with "busybox").
    s.build(
        "suid",
        "FROM localhost/busybox:latest\nRUN cp /bin/busybox /busybox-suid && chmod 4755 /busybox-suid\n",
    );
    assert_eq!(
        mode_of(&root),
        0o755,
        "kiln leaves the root's own mode alone"
    );
    for d in PRIVATE_DIRS {
        assert_eq!(mode_of(&root.join(d)), 0o700, "{d}");
    }
    let mut suid = Vec::new();
    for e in std::fs::read_dir(root.join("snapshots-v1")).unwrap() {
        let p = e.unwrap().path().join("busybox-suid");
        if std::fs::symlink_metadata(&p).is_ok() {
            suid.push(p);
        }
    }
    assert!(!suid.is_empty(), "no unpacked layer holds /busybox-suid");
    assert_eq!(mode_of(&suid[0]), 0o4755, "the layer keeps its setuid bit");
    let as_user = |script: &str, arg: &Path| {
        user.command("/bin/sh")
            .args(["-c", script, "sh"])
            .arg(arg)
            .current_dir("/")
            .output()
            .unwrap()
    };
    // The user reaches the root (so what follows is the content directories' doing)...
    let o = as_user("ls \"$1\"", &root);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let check_refused = |what: &str| {
        let o = as_user("ls \"$1\"", &root.join("snapshots-v1"));
        assert!(!o.status.success(), "{what}: the user lists snapshots-v1");
        let o = as_user("\"$1\" true", &suid[0]);
        assert!(
            !o.status.success(),
            "{what}: the user runs {}",
            suid[0].display()
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    check_refused("new store");
    // A store made by an earlier kiln (or with --root on a 0755/0777 directory): tightened by
    // the next open, even a read-only command.
    for (d, m) in PRIVATE_DIRS
        .iter()
        .zip([0o755, 0o777, 0o755, 0o711, 0o755, 0o750, 0o705])
    {
        std::fs::set_permissions(root.join(d), std::fs::Permissions::from_mode(m)).unwrap();
    }
    let o = as_user("\"$1\" true", &suid[0]);
    assert!(
        o.status.success(),
        "the test's 0755 snapshots-v1 is not reachable"
    );
    s.ok(&["images", "-q"]);
    for d in PRIVATE_DIRS {
        assert_eq!(mode_of(&root.join(d)), 0o700, "{d} after the next open");
    }
    check_refused("tightened store");
    // Containers and builds still work on it.
    s.build(
        "suid2",
        "FROM suid\nUSER 1001\nRUN ls / >/dev/null && test -u /busybox-suid\n",
    );
    s.assert_healthy("a tightened store");
}
