//! The CLI side by side with docker 20.10 + BuildKit: each case runs the same arguments with
//! `docker` (a private dockerd this suite starts) and with `kiln` (a temp store), masks what
//! differs by nature (relative times, durations, the tool's name; IDs, sizes and step numbers
//! where a case says so) and compares stdout, stderr and the exit code line by line.
//!
//! Every remaining difference must be listed in `KNOWN` below, with its reason and whether it
//! stays on purpose (docs/docker-compat.md) or is pending a fix; a difference not listed fails
//! the suite, and so does a listed one that is gone, so the table stays true.
//!
//! Image commands run on the *same* images in both: kiln builds them, `kiln save | docker load`
//! copies them, so IDs are compared unmasked. Builds run with both tools (their IDs differ and
//! are masked). Set `KILN_COMPAT_REPORT=FILE` to write every difference found to FILE.

mod docker_compat {
    pub mod daemon;
    pub mod normalize;
}
mod support;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use docker_compat::daemon::Daemon;
use docker_compat::normalize::{Change, Mask, diff, normalize};

/// Where a known difference shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
    Exit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Stays: documented in docs/docker-compat.md with this reason.
    OnPurpose,
    /// To be fixed; the string names the file (and so the owner) the fix belongs to. None
    /// is pending today.
    #[allow(dead_code)]
    Pending(&'static str),
}

/// A difference the suite expects. It covers every docker-only line containing `docker` and
/// every kiln-only line containing `kiln` in that case's stream (`a|b`: either; `*`: any line;
/// "": none), and its non-empty patterns must still match in some case it names: a fixed
/// difference fails the suite until its entry is removed. `case` may end in `*` (a prefix).
struct Known {
    case: &'static str,
    stream: Stream,
    docker: &'static str,
    kiln: &'static str,
    status: Status,
    why: &'static str,
}

use Status::OnPurpose;
use Stream::{Exit, Stderr, Stdout};

const fn k(
    case: &'static str,
    stream: Stream,
    docker: &'static str,
    kiln: &'static str,
    status: Status,
    why: &'static str,
) -> Known {
    Known {
        case,
        stream,
        docker,
        kiln,
        status,
        why,
    }
}

/// The differences that remain. Keep each entry as narrow as the output allows; the reasons
/// are in docs/docker-compat.md, with what is pending and where.
#[rustfmt::skip]
const KNOWN: &[Known] = &[
    // ---- usage and help
    k("unknown-image-command", Stderr, "*", "is not a TOOL image command|See 'TOOL image --help'", OnPurpose,
      "docker 20.10 prints the group's usage for an unknown subcommand; kiln names it (same exit 1)"),
    k("no-command|image-no-subcommand|builder-no-subcommand", Stderr, "*", "*", OnPurpose,
      "the usage text itself: cobra's layout and docker's commands vs clap's and kiln's (both on stderr, exit 0)"),
    k("bad-bool", Stderr, "strconv.ParseBool", "possible values: true, false", OnPurpose,
      "the reason after docker's wording is Go's parser message; kiln lists the values"),
    k("help-*", Stdout, "", "--root", OnPurpose,
      "kiln's store directory (docker's is the daemon's --data-root)"),
    k("help-build", Stdout, "",
      "--allow|--build-context|--cache-to|--check|--metadata-file|--compression|--explain|--no-cache-filter|--push|--report|--runtime|--security|--squash|-j, --jobs",
      OnPurpose, "buildx's flags (--allow, --build-context, --cache-to, --check, --metadata-file, --no-cache-filter, --push, --security) and kiln's own; --squash: docker 20.10 hides its experimental --squash in BuildKit mode"),
    k("help-build", Stdout, "",
      "--compress|--cpu-period|--cpu-quota|--cpuset-cpus|--cpuset-mems|--force-rm|--memory-swap|--rm|--shm-size|--ulimit|-c, --cpu-shares|-m, --memory",
      OnPurpose, "the classic builder's flags: docker 20.10 hides them from help in BuildKit mode (and accepts them); kiln lists what it accepts"),
    k("help-save", Stdout, "", "--format", OnPurpose, "kiln also writes oci-archive"),
    k("help-save", Stdout, "", "--platform", OnPurpose,
      "issue 11: one platform of a multi-platform image (docker 27's save --platform)"),
    k("help-images|help-image-ls", Stdout, "", "--tree", OnPurpose,
      "issue 11: docker 27's tree view of multi-platform images"),
    k("help-inspect", Stdout, "", "--platform", OnPurpose,
      "issue 11: one platform of a multi-platform image (docker 26's image inspect --platform)"),
    // ---- image commands
    k("load-again|load-again-q", Stdout, "Loaded image ID: sha256:", "", OnPurpose,
      "docker 20.10 prints every entry's ID when the archive's last entry has no tag (its counter of tags is reset per entry); kiln prints the untagged entry's"),
    k("inspect-json", Stdout, "[0].GraphDriver.", "[0].GraphDriver.", OnPurpose,
      "kiln has no overlay2 driver: its layers are read-only overlay lower directories (Name overlay, LowerDir only); no upper, work or merged directory exists"),
    k("inspect-json", Stdout, "[0].Metadata.LastTagTime = \"0001-01-01T00:00:00Z\"", "[0].Metadata.LastTagTime = \"20", OnPurpose,
      "an artifact of the suite: docker got the image by `load`, which records no tag time; kiln tagged it when it built it"),
    k("tag-bad-name", Stderr, "repository name must be lowercase", "repository name (library/Bad) must be lowercase", OnPurpose,
      "current docker's reference parser names the repository (as for build -t)"),
    // An image other images are built on. The issue asks rmi to refuse it without -f; kiln
    // sees children by their layers, docker 20.10 only by the parent its classic builder
    // recorded (loaded and BuildKit images have none), and refuses even with -f then.
    k("rmi-base-by-id", Stdout, "Untagged: compat/base:1|Deleted: sha256:", "", OnPurpose,
      "issue 14: refuse to remove an image other images are built on unless -f"),
    k("rmi-base-by-id", Stderr, "", "(must be forced) - image has dependent child images", OnPurpose,
      "issue 14: refuse to remove an image other images are built on unless -f"),
    k("rmi-base-by-id", Exit, "exit 0", "exit 1", OnPurpose, "issue 14: refused without -f"),
    k("rmi-parent-by-id", Stderr, "(cannot be forced) - image has dependent child images", "(must be forced) - image has dependent child images",
      OnPurpose, "kiln's -f removes it (the children keep their layers); docker cannot"),
    k("rmi-f-parent-by-id", Stdout, "", "Untagged: compat/parent:1|Deleted: sha256:<ID>", OnPurpose, "-f removes it in kiln"),
    k("rmi-f-parent-by-id", Stderr, "(cannot be forced) - image has dependent child images", "", OnPurpose, "-f removes it in kiln"),
    k("rmi-f-parent-by-id", Exit, "exit 1", "exit 0", OnPurpose, "-f removes it in kiln"),
    k("rmi-parent-tag", Stdout, "Untagged: compat/parent:1", "", OnPurpose, "follows from rmi-f-parent-by-id (kiln removed it)"),
    k("rmi-parent-tag", Stderr, "", "Error: No such image: compat/parent:1", OnPurpose, "follows from rmi-f-parent-by-id"),
    k("rmi-parent-tag", Exit, "exit 0", "exit 1", OnPurpose, "follows from rmi-f-parent-by-id"),
    // ---- builds (IDs, sizes, durations and step numbers masked; docker's [internal] steps dropped)
    k("build-failing-run", Stderr,
      "#N ERROR: executor failed running [/bin/sh -c exit 3]: exit code: 3",
      "#N ERROR: process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3|Dockerfile:3|--------------------|   1 |   2 |   3 | >>> RUN exit 3|   4 |",
      OnPurpose, "current BuildKit's wording (buildx, docker 23+), with the Dockerfile excerpt"),
    k("build-failing-run", Stderr,
      "executor failed running [/bin/sh -c exit 3]: exit code: 3",
      "ERROR: failed to solve: process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3",
      OnPurpose, "current BuildKit's last line; docker 20.10's has no ERROR: prefix"),
    k("build-failing-copy", Stderr,
      "#N ERROR: \"/nope\" not found: not found",
      "#N ERROR: failed to compute cache key: \"/nope\": not found|Dockerfile:2|--------------------|   1 |   2 | >>> COPY nope /x|   3 |",
      OnPurpose, "current BuildKit's wording (buildx, docker 23+), with the Dockerfile excerpt"),
    k("build-failing-copy", Stderr,
      "failed to compute cache key: \"/nope\" not found: not found",
      "ERROR: failed to solve: failed to compute cache key: \"/nope\": not found",
      OnPurpose, "current BuildKit's last line; docker 20.10's has no ERROR: prefix"),
    k("build-failing-run|build-failing-copy", Stderr, "#N CACHED", "#N DONE <DUR>", OnPurpose,
      "a FROM is always DONE in kiln (finding and unpacking the image); BuildKit's CACHED/DONE follows its solver's cache of the image vertex, which kiln does not have (docs/docker-compat.md)"),
    k("build-missing-target|build-bad-instruction", Stderr, "*", "*",
      OnPurpose, "kiln reports Dockerfile errors before any step, with line, column, source and hint; docker after its [internal] steps, in one line"),
    k("build-missing-context", Stderr, "unable to prepare context", "ERROR: unable to prepare context", OnPurpose,
      "build errors carry BuildKit's ERROR: prefix (buildx, docker 23+); 20.10 printed none"),
    // ---- build cache
    k("system-df|system-df-after-prune", Stdout, "Build Cache", "Build Cache", OnPurpose,
      "the record count: kiln's store also holds the cache of the suite's kiln-only setup builds (docker gets those images by load, and builds the parent/child pair with its classic builder, which keeps none), and docker keeps records of its context transfers (source.local)"),
    k("builder-prune-f", Stdout, "*", "sha256:<ID>", OnPurpose,
      "record IDs: kiln's are content digests, BuildKit's random (how many: as system-df)"),
];

/// One command, run with both tools.
struct Case {
    name: &'static str,
    args: Vec<String>,
    stdin: Option<&'static str>,
    mask: Mask,
    /// How stdout is compared.
    view: View,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum View {
    /// Line by line, normalized.
    Lines,
    /// The flags a help text lists, not its prose (cobra's and clap's layouts differ).
    Flags,
    /// A JSON document as sorted `path = value` lines: key order aside, every field compared.
    JsonFields,
    /// A table whose rows may tie on their sort key (`images` sorts by creation time, to the
    /// second: images built in one second come in either order): the header, then the
    /// normalized rows sorted.
    UnorderedRows,
}

fn case(name: &'static str, args: &[&str]) -> Case {
    Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: None,
        mask: Mask::default(),
        view: View::Lines,
    }
}

impl Case {
    fn stdin(mut self, s: &'static str) -> Case {
        self.stdin = Some(s);
        self
    }
    fn mask(mut self, mask: Mask) -> Case {
        self.mask = mask;
        self
    }
    fn view(mut self, view: View) -> Case {
        self.view = view;
        self
    }
}

/// A build: IDs, sizes (of transfers and layers) and step numbers masked.
const BUILD: Mask = Mask {
    ids: true,
    sizes: true,
    steps: true,
};

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

struct Suite {
    docker: Daemon,
    store: tempfile::TempDir,
    ctx: PathBuf,
    /// Every difference seen, for the report.
    report: String,
    /// Differences no entry of KNOWN covers.
    unexpected: Vec<String>,
    /// (KNOWN index) entries whose difference showed.
    seen: Vec<bool>,
    cases: Vec<&'static str>,
    /// `@id:` arguments resolved so far, by (tool, reference).
    ids: std::cell::RefCell<std::collections::HashMap<(String, String), String>>,
}

impl Suite {
    fn run_tool(&self, tool: &str, c: &Case) -> Outcome {
        let mut cmd = if tool == "docker" {
            self.docker.cli()
        } else {
            let mut cmd = Command::new(support::bin());
            cmd.env("KILN_ROOT", self.store.path())
                .env_remove("SOURCE_DATE_EPOCH")
                .env_remove("BUILDKIT_PROGRESS");
            cmd
        };
        let args: Vec<String> = c.args.iter().map(|a| self.resolve(tool, a)).collect();
        cmd.args(&args)
            .current_dir(&self.ctx)
            .env("NO_COLOR", "1")
            .stdin(if c.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{tool}: {e}"));
        if let Some(input) = c.stdin {
            let mut w = child.stdin.take().unwrap();
            w.write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    /// Runs a case with both tools and records its differences; returns docker's outcome.
    fn check(&mut self, c: Case) -> Outcome {
        assert!(
            !self.cases.contains(&c.name),
            "case name {} used twice",
            c.name
        );
        self.cases.push(c.name);
        let d = self.run_tool("docker", &c);
        let kl = self.run_tool("kiln", &c);
        let text = |o: &Outcome, tool: &str, stdout: bool| {
            let raw = if stdout { &o.stdout } else { &o.stderr };
            match c.view {
                View::Flags if stdout => help_flags(raw),
                View::JsonFields if stdout && o.code == 0 => json_fields(raw),
                View::UnorderedRows if stdout => {
                    let n = normalize(raw, tool, c.mask);
                    let mut lines: Vec<&str> = n.lines().collect();
                    if lines.len() > 1 {
                        lines[1..].sort_unstable();
                    }
                    lines.iter().map(|l| format!("{l}\n")).collect()
                }
                _ => normalize(raw, tool, c.mask),
            }
        };
        let streams = [
            (Stdout, text(&d, "docker", true), text(&kl, "kiln", true)),
            (Stderr, text(&d, "docker", false), text(&kl, "kiln", false)),
            (
                Exit,
                format!("exit {}\n", d.code),
                format!("exit {}\n", kl.code),
            ),
        ];
        for (stream, dt, kt) in streams {
            let changes = diff(&dt, &kt);
            if changes.is_empty() {
                continue;
            }
            let _ = writeln!(
                self.report,
                "== {} {:?}: {}",
                c.name,
                stream,
                c.args.join(" ")
            );
            for ch in &changes {
                let (side, line) = match ch {
                    Change::Docker(l) => ("docker", l),
                    Change::Kiln(l) => ("kiln  ", l),
                };
                let covered = KNOWN.iter().enumerate().find(|(_, kn)| {
                    case_matches(kn.case, c.name)
                        && kn.stream == stream
                        && matches(if side == "docker" { kn.docker } else { kn.kiln }, line)
                });
                let _ = writeln!(
                    self.report,
                    "{} {side} | {line}",
                    if covered.is_some() { " " } else { "!" }
                );
                if covered.is_none() {
                    self.unexpected.push(format!(
                        "{} {:?} ({}): only {side}: {line}",
                        c.name,
                        stream,
                        c.args.join(" ")
                    ));
                }
            }
            // An entry is still true where each of its patterns matched a line of its side.
            for (i, kn) in KNOWN.iter().enumerate() {
                if !case_matches(kn.case, c.name) || kn.stream != stream {
                    continue;
                }
                let side_ok = |pat: &str, docker_side: bool| {
                    pat.is_empty()
                        || changes.iter().any(|ch| match ch {
                            Change::Docker(l) if docker_side => matches(pat, l),
                            Change::Kiln(l) if !docker_side => matches(pat, l),
                            _ => false,
                        })
                };
                if side_ok(kn.docker, true) && side_ok(kn.kiln, false) {
                    self.seen[i] = true;
                }
            }
        }
        d
    }

    /// `@id:REF` → the ID REF had in this tool's store when first asked (for images the tools
    /// built apart, whose IDs differ; kept, so that a case can name an image an earlier one
    /// removed); any other argument as it is.
    fn resolve(&self, tool: &str, arg: &str) -> String {
        let Some(r) = arg.strip_prefix("@id:") else {
            return arg.to_string();
        };
        let key = (tool.to_string(), r.to_string());
        if let Some(id) = self.ids.borrow().get(&key) {
            return id.clone();
        }
        let id = self.setup(tool, &["images", "-q", r], None).stdout;
        let id = id.trim().to_string();
        assert!(!id.is_empty(), "no image {r} in {tool}");
        self.ids.borrow_mut().insert(key, id.clone());
        id
    }

    /// Asserts on the same setup command in both tools (not a comparison).
    fn setup(&self, tool: &str, args: &[&str], stdin: Option<&'static str>) -> Outcome {
        let c = Case {
            name: "setup",
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin,
            mask: Mask::default(),
            view: View::Lines,
        };
        let o = self.run_tool(tool, &c);
        assert_eq!(
            o.code,
            0,
            "setup `{tool} {}` failed:\n{}{}",
            args.join(" "),
            o.stdout,
            o.stderr
        );
        o
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.ctx.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// A kiln build (setup, not compared), created at `epoch`: docker lists images newest
    /// first and orders images created in the same second at random, so each gets its own.
    fn kiln_build(&self, tag: &str, epoch: u32, dockerfile: &str) -> String {
        self.write("Dockerfile", dockerfile);
        let mut cmd = Command::new(support::bin());
        let out = cmd
            .env("KILN_ROOT", self.store.path())
            .env("SOURCE_DATE_EPOCH", epoch.to_string())
            .args(["build", "-q", "-t", tag, "."])
            .current_dir(&self.ctx)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "setup build of {tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A parent and a child image built by both tools, docker's with its classic builder: only
    /// that builder records the parent, which makes docker refuse to remove it.
    fn parent_and_child(&self) {
        for (tag, dockerfile) in [
            (
                "compat/parent:1",
                "FROM localhost/busybox:latest\nRUN echo p > /p\n",
            ),
            ("compat/child:1", "FROM compat/parent:1\nRUN echo c > /c\n"),
        ] {
            self.write("Dockerfile", dockerfile);
            let args = ["build", "--network=host", "-q", "-t", tag, "."];
            self.setup("kiln", &args, None);
            let out = self
                .docker
                .cli()
                .env("DOCKER_BUILDKIT", "0")
                .args(args)
                .current_dir(&self.ctx)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "docker classic build of {tag}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// The busybox base, by the same ID, in both.
    fn load_base(&self) {
        let archive = support::busybox_archive().to_str().unwrap().to_string();
        self.setup("kiln", &["load", "-q", "-i", &archive], None);
        self.setup("docker", &["load", "-q", "-i", &archive], None);
    }
}

/// `a|b` names cases a and b, `help-*` every case starting with `help-`.
fn case_matches(pattern: &str, name: &str) -> bool {
    pattern.split('|').any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

fn matches(pat: &str, line: &str) -> bool {
    !pat.is_empty() && (pat == "*" || pat.split('|').any(|p| line.contains(p)))
}

/// The flags a help text lists (`-f, --filter`, `--no-trunc`), one per line, sorted: cobra's and
/// clap's help differ in layout, the flag names are what scripts depend on.
fn help_flags(help: &str) -> String {
    let mut flags: Vec<String> = help
        .lines()
        .filter_map(|l| {
            let t = l.trim_start();
            let mut c = t.chars();
            let flag = c.next() == Some('-')
                && c.next()
                    .is_some_and(|c| c == '-' || c.is_ascii_alphanumeric());
            if !flag {
                return None;
            }
            let mut names: Vec<&str> = Vec::new();
            for w in t.split([' ', ',']) {
                if w.is_empty() {
                    continue;
                }
                if !w.starts_with('-') {
                    break;
                }
                // `--human[=<HUMAN>]`, `--format=<FORMAT>` → the name
                names.push(w.split(['[', '=', '<']).next().unwrap());
            }
            Some(names.join(", "))
        })
        .filter(|f| f != "-h, --help" && f != "--help")
        .collect();
    flags.sort();
    flags.dedup();
    flags.iter().map(|f| format!("{f}\n")).collect()
}

/// `{"a":{"b":[1]}}` → `a.b[0] = 1`, sorted. docker's overlay2 directories are masked.
fn json_fields(text: &str) -> String {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    walk(&format!("{prefix}.{k}"), v, out);
                }
            }
            serde_json::Value::Array(a) if !a.is_empty() => {
                for (i, v) in a.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), v, out);
                }
            }
            serde_json::Value::String(s) if prefix.contains(".GraphDriver.Data.") => {
                out.push(format!(
                    "{prefix} = <{}>",
                    s.split('/').next_back().unwrap_or("")
                ));
            }
            other => out.push(format!("{prefix} = {other}")),
        }
    }
    let v: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return format!("not JSON: {e}\n{text}"),
    };
    let mut out = Vec::new();
    walk("", &v, &mut out);
    out.sort();
    out.iter().map(|l| format!("{l}\n")).collect()
}

fn start() -> Suite {
    support::require_root();
    let docker = Daemon::start();
    let store = tempfile::tempdir().unwrap();
    let ctx = store.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let s = Suite {
        docker,
        ctx,
        store,
        report: String::new(),
        unexpected: Vec::new(),
        seen: vec![false; KNOWN.len()],
        cases: Vec::new(),
        ids: Default::default(),
    };
    s.load_base();
    s
}

/// Image commands on identical images: kiln builds them, docker loads kiln's archive.
fn image_cases(s: &mut Suite) {
    s.write("a.txt", "hello\n");
    s.kiln_build(
        "compat/base:1",
        1_700_000_000,
        "FROM localhost/busybox:latest\nLABEL tier=base\nRUN echo base > /base.txt\n",
    );
    s.kiln_build(
        "compat/app:1",
        1_700_000_100,
        "FROM compat/base:1\nCOPY a.txt /a.txt\nENV GREETING=hello\nEXPOSE 80\nCMD [\"cat\", \"/a.txt\"]\n",
    );
    s.setup("kiln", &["tag", "compat/app:1", "compat/app:2"], None);
    let dangling = s.kiln_build(
        "compat/old:1",
        1_700_000_200,
        "FROM localhost/busybox:latest\nRUN echo old > /v\n",
    );
    s.kiln_build(
        "compat/old:1",
        1_700_000_300,
        "FROM localhost/busybox:latest\nRUN echo new > /v\n",
    );
    let archive = s.store.path().join("images.tar");
    let archive = archive.to_str().unwrap();
    s.setup(
        "kiln",
        &[
            "save",
            "-o",
            archive,
            "compat/base:1",
            "compat/app:1",
            "compat/app:2",
            "compat/old:1",
            &dangling,
        ],
        None,
    );
    s.setup("docker", &["load", "-i", archive], None);
    // Loading what is already there again: the same messages, in the archive's order.
    s.check(case("load-again", &["load", "-i", archive]));
    s.check(case("load-again-q", &["load", "-q", "-i", archive]));
    let sizes = Mask {
        sizes: true,
        ..Mask::default()
    };

    s.check(case("images", &["images"]));
    s.check(case("images-q", &["images", "-q"]));
    s.check(case("images-all", &["images", "-a"]));
    s.check(case("images-digests", &["images", "--digests"]));
    s.check(case("images-no-trunc", &["images", "--no-trunc"]).mask(sizes));
    s.check(case(
        "images-format",
        &["images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"],
    ));
    s.check(case(
        "images-format-table",
        &["images", "--format", "table {{.ID}}\t{{.Repository}}"],
    ));
    s.check(case("images-dangling", &["images", "--filter", "dangling=true"]).mask(sizes));
    s.check(
        case(
            "images-reference",
            &["images", "--filter", "reference=compat/app"],
        )
        .mask(sizes),
    );
    s.check(case("images-repository", &["images", "compat/old"]).mask(sizes));
    s.check(case(
        "images-label",
        &["images", "-q", "--filter", "label=tier=base"],
    ));
    s.check(case(
        "images-bad-filter",
        &["images", "--filter", "colour=red"],
    ));

    s.check(case(
        "inspect-config",
        &["inspect", "--format", "{{json .Config}}", "compat/app:1"],
    ));
    s.check(case(
        "inspect-size",
        &["inspect", "--format", "{{.Size}}", "compat/app:1"],
    ));
    s.check(case(
        "inspect-fields",
        &[
            "image", "inspect", "--format",
            "{{.Id}} {{.RepoTags}} {{.Os}} {{.Architecture}} {{.Config.Labels}} {{.Config.ExposedPorts}}",
            "compat/app:1",
        ],
    ));
    s.check(case("inspect-json", &["inspect", "compat/base:1"]).view(View::JsonFields));
    s.check(case("inspect-missing", &["inspect", "nosuch:1"]));
    s.check(case(
        "image-inspect-missing",
        &["image", "inspect", "nosuch:1"],
    ));
    s.check(case(
        "inspect-bad-template",
        &["inspect", "--format", "{{.Nope", "compat/app:1"],
    ));

    s.check(case("history", &["history", "compat/app:1"]));
    s.check(case(
        "history-no-trunc",
        &["history", "--no-trunc", "compat/app:1"],
    ));
    s.check(case(
        "history-H-false",
        &["history", "-H=false", "compat/app:1"],
    ));
    s.check(case("history-q", &["history", "-q", "compat/app:1"]));
    s.check(case(
        "history-format",
        &[
            "history",
            "--format",
            "{{.CreatedBy}}|{{.Size}}|{{.Comment}}",
            "compat/app:1",
        ],
    ));
    s.check(case("history-missing", &["history", "nosuch:1"]));

    s.check(case("tag-missing", &["tag", "nosuch:1", "other:1"]));
    s.check(case("tag-bad-name", &["tag", "compat/app:1", "Bad:Name"]));
    s.check(case("tag-ok", &["tag", "compat/app:1", "compat/app:3"]));

    let id = |r: &str| {
        s.setup("kiln", &["images", "-q", r], None)
            .stdout
            .trim()
            .to_string()
    };
    let (app_id, base_id) = (id("compat/app:1"), id("compat/base:1"));
    s.check(case("rmi-missing", &["rmi", "nosuch:1"]));
    s.check(case("rmi-id-tagged-thrice", &["rmi", &app_id]));
    s.check(case("rmi-tag", &["rmi", "compat/app:3"]));
    // Loaded images have no parent in docker (only its classic builder records one), so docker
    // removes a base by ID while an image built on it remains.
    let removed = s.check(case("rmi-base-by-id", &["rmi", &base_id]));
    // kiln refuses that on purpose (the image has a child) and removes it with -f, printing
    // what docker printed without it; the cases after it then run on the same images again.
    let forced = s.setup("kiln", &["rmi", "-f", &base_id], None);
    assert_eq!(removed.code, 0, "docker rmi {base_id}: {}", removed.stderr);
    assert_eq!(forced.stdout, removed.stdout, "kiln rmi -f {base_id}");
    s.check(case("rmi-force-tag", &["rmi", "-f", "compat/app:2"]));
    s.check(case("rmi-last-tag", &["rmi", "compat/app:1"]));

    s.check(case("image-prune-no", &["image", "prune"]).stdin("n\n"));
    s.check(case("image-prune-f", &["image", "prune", "-f"]));
    s.check(case("images-after-prune", &["images"]));
    // docker prunes in map order: leave one image so that the output has one order.
    s.check(case("rmi-old", &["rmi", "compat/old:1"]));
    s.check(case("image-prune-a-f", &["image", "prune", "-a", "-f"]));
    s.check(case("images-after-prune-a", &["images"]));
}

/// Usage errors and help, which need no images.
fn usage_cases(s: &mut Suite) {
    s.check(case("unknown-command", &["frobnicate"]));
    s.check(case("unknown-image-command", &["image", "frobnicate"]));
    s.check(case("no-command", &[]));
    s.check(case("image-no-subcommand", &["image"]));
    s.check(case("builder-no-subcommand", &["builder"]));
    s.check(case("unknown-flag", &["images", "--bogus"]));
    s.check(case("unknown-short-flag", &["images", "-Z"]));
    s.check(case("unknown-build-flag", &["build", "--bogus", "."]));
    s.check(case("too-many-args", &["images", "a", "b"]));
    s.check(case("missing-args", &["tag", "x"]));
    s.check(case("missing-image-arg", &["history"]));
    s.check(case("flag-needs-value", &["images", "--format"]));
    s.check(case("bad-bool", &["history", "-H=maybe", "x"]));
    for (name, args) in [
        ("help-build", &["build", "--help"][..]),
        ("help-images", &["images", "--help"]),
        ("help-image-ls", &["image", "ls", "--help"]),
        ("help-history", &["history", "--help"]),
        ("help-inspect", &["image", "inspect", "--help"]),
        ("help-rmi", &["rmi", "--help"]),
        ("help-tag", &["tag", "--help"]),
        ("help-save", &["save", "--help"]),
        ("help-load", &["load", "--help"]),
        ("help-image-prune", &["image", "prune", "--help"]),
        ("help-system-df", &["system", "df", "--help"]),
        ("help-builder-prune", &["builder", "prune", "--help"]),
    ] {
        s.check(case(name, args).view(View::Flags));
    }
}

/// Builds with both tools (IDs differ: masked), then the cache commands on what they left.
fn build_cases(s: &mut Suite) {
    s.load_base();
    s.write("a.txt", "hello\n");
    s.write(
        "Dockerfile",
        "FROM localhost/busybox:latest\nCOPY a.txt /a.txt\nRUN echo built > /b.txt\nCMD [\"cat\", \"/a.txt\"]\n",
    );
    let plain = [
        "build",
        "--network=host",
        "--progress=plain",
        "-t",
        "compat/built:1",
        ".",
    ];
    s.check(case("build-plain", &plain).mask(BUILD));
    s.check(case("build-plain-cached", &plain).mask(BUILD));
    s.check(case("build-quiet", &["build", "--network=host", "-q", "."]).mask(BUILD));
    s.write(
        "Dockerfile",
        "FROM localhost/busybox:latest AS installer\nARG GREETING=hello\nRUN echo \"$GREETING\" > /g\n\
         FROM localhost/busybox:latest\nCOPY --from=installer /g /g\n",
    );
    s.check(
        case(
            "build-quiet-target-arg",
            &[
                "build",
                "--network=host",
                "-q",
                "--target",
                "installer",
                "--build-arg",
                "GREETING=hi",
                ".",
            ],
        )
        .mask(BUILD),
    );
    s.check(
        case(
            "build-unused-build-arg",
            &[
                "build",
                "--network=host",
                "-q",
                "--build-arg",
                "NOPE=1",
                ".",
            ],
        )
        .mask(BUILD),
    );
    s.write(
        "Dockerfile",
        "FROM localhost/busybox:latest\nRUN echo hi\nRUN exit 3\n",
    );
    s.check(
        case(
            "build-failing-run",
            &["build", "--network=host", "--progress=plain", "."],
        )
        .mask(BUILD),
    );
    s.write(
        "Dockerfile",
        "FROM localhost/busybox:latest\nCOPY nope /x\n",
    );
    s.check(
        case(
            "build-failing-copy",
            &["build", "--network=host", "--progress=plain", "."],
        )
        .mask(BUILD),
    );
    s.check(
        case(
            "build-missing-target",
            &[
                "build",
                "--network=host",
                "--progress=plain",
                "--target",
                "nope",
                ".",
            ],
        )
        .mask(BUILD),
    );
    s.write(
        "Dockerfile",
        "FROM localhost/busybox:latest\nFROBNICATE x\n",
    );
    s.check(
        case(
            "build-bad-instruction",
            &["build", "--network=host", "--progress=plain", "."],
        )
        .mask(BUILD),
    );
    s.check(
        case(
            "build-missing-context",
            &["build", "--network=host", "no-such-dir"],
        )
        .mask(BUILD),
    );

    s.parent_and_child();
    for tool in ["docker", "kiln"] {
        s.resolve(tool, "@id:compat/parent:1");
    }
    let ids = Mask {
        ids: true,
        ..Mask::default()
    };
    s.check(case("rmi-parent-by-id", &["rmi", "@id:compat/parent:1"]).mask(ids));
    s.check(case("rmi-f-parent-by-id", &["rmi", "-f", "@id:compat/parent:1"]).mask(ids));
    s.check(case("rmi-parent-tag", &["rmi", "compat/parent:1"]).mask(ids));
    s.check(
        case("images-after-parent-untag", &["images"])
            .mask(BUILD)
            .view(View::UnorderedRows),
    );

    s.check(case("system-df", &["system", "df"]).mask(BUILD));
    s.check(case("builder-prune-f", &["builder", "prune", "-f"]).mask(BUILD));
    s.check(
        case("builder-prune-no", &["builder", "prune"])
            .stdin("n\n")
            .mask(BUILD),
    );
    s.check(case("system-df-after-prune", &["system", "df"]).mask(BUILD));
}

#[test]
fn cli_matches_docker_20_10_except_known_differences() {
    let mut s = start();
    usage_cases(&mut s);
    image_cases(&mut s);
    build_cases(&mut s);

    if let Some(path) = std::env::var_os("KILN_COMPAT_REPORT") {
        std::fs::write(Path::new(&path), &s.report).unwrap();
    }
    let mut failures = String::new();
    for u in &s.unexpected {
        let _ = writeln!(failures, "new difference: {u}");
    }
    for (i, kn) in KNOWN.iter().enumerate() {
        for name in kn.case.split('|') {
            assert!(
                s.cases.iter().any(|c| case_matches(name, c)),
                "KNOWN names case {name:?}, which the suite does not run"
            );
        }
        if !s.seen[i] {
            let _ = writeln!(
                failures,
                "listed difference is gone (remove it from KNOWN and docs/docker-compat.md): {:?} {} {:?} docker={:?} kiln={:?} — {}",
                kn.status, kn.case, kn.stream, kn.docker, kn.kiln, kn.why
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{failures}\nall differences (! = not in KNOWN):\n{}",
        s.report
    );
}
