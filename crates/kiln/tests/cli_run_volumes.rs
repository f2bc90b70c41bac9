//! End-to-end tests of volumes and mounts: named volumes made on first use and seeded from
//! the image, anonymous volumes from `-v /d` and the image's VOLUME (removed by `rm -v` and
//! `--rm`), `kiln volume create/ls/inspect/rm/prune` with docker's words, `--mount` of the
//! three types, `--tmpfs`, `--read-only`, inspect's Mounts, and destinations resolved inside
//! the container's root (a symlink in the image never leads a mount out). Needs root.

mod support;
use std::path::Path;

use support::*;

const BB: &str = "localhost/busybox:latest";

fn ctx() -> RunCtx {
    require_root();
    RunCtx(Ctx::new())
}

fn volume_names(c: &Ctx) -> Vec<String> {
    ok(c, &["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn named_volumes_are_made_on_first_use_seeded_from_the_image_and_kept() {
    let c = ctx();
    // Seeded: the image's /etc is copied into the empty volume.
    let ls = ok(&c, &["run", "--rm", "-v", "etcv:/etc", BB, "ls", "/etc"]);
    assert!(ls.contains("passwd"), "{ls}");
    assert_eq!(volume_names(&c), ["etcv"]);
    // Kept across containers; what a container wrote is there for the next.
    ok(
        &c,
        &[
            "run",
            "--rm",
            "-v",
            "etcv:/etc",
            BB,
            "sh",
            "-c",
            "echo kept > /etc/mine",
        ],
    );
    assert_eq!(
        ok(
            &c,
            &["run", "--rm", "-v", "etcv:/x:ro", BB, "cat", "/x/mine"]
        ),
        "kept\n"
    );
    let (code, _, err) = out(&c.kiln(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=etcv,target=/y,readonly",
        BB,
        "touch",
        "/y/z",
    ]));
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    // ls / inspect as docker shows them.
    let ls = ok(&c, &["volume", "ls"]);
    assert_eq!(ls, "DRIVER    VOLUME NAME\nlocal     etcv\n");
    let doc: serde_json::Value =
        serde_json::from_str(&ok(&c, &["volume", "inspect", "etcv"])).unwrap();
    assert_eq!(doc[0]["Name"], "etcv");
    assert_eq!(doc[0]["Driver"], "local");
    assert_eq!(doc[0]["Scope"], "local");
    let mp = doc[0]["Mountpoint"].as_str().unwrap();
    assert!(Path::new(mp).join("mine").exists(), "{mp}");
    // In use: rm refuses, with docker's words; dangling filters it out.
    let id = ok(
        &c,
        &["create", "--name", "user", "-v", "etcv:/etc", BB, "true"],
    );
    let (code, _, err) = out(&c.kiln(&["volume", "rm", "etcv"]));
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("remove etcv: volume is in use - [{}]", id.trim())),
        "{err}"
    );
    assert_eq!(
        ok(&c, &["volume", "ls", "-q", "--filter", "dangling=true"]),
        ""
    );
    let doc: serde_json::Value = serde_json::from_str(&ok(&c, &["inspect", "user"])).unwrap();
    let m = &doc[0]["Mounts"][0];
    assert_eq!(m["Type"], "volume");
    assert_eq!(m["Name"], "etcv");
    assert_eq!(m["Destination"], "/etc");
    assert_eq!(m["Driver"], "local");
    assert_eq!(m["RW"], true);
    ok(&c, &["rm", "user"]);
    assert_eq!(ok(&c, &["volume", "rm", "etcv"]).trim(), "etcv");
    let (code, _, err) = out(&c.kiln(&["volume", "rm", "etcv"]));
    assert_eq!(code, 1);
    assert!(err.contains("no such volume"), "{err}");
    // create / prune.
    assert_eq!(ok(&c, &["volume", "create", "made"]).trim(), "made");
    assert_eq!(
        ok(&c, &["volume", "create", "--label", "a=b", "made"]).trim(),
        "made"
    );
    let (code, _, err) = out(&c.kiln(&["volume", "create", "bad/name"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("includes invalid characters for a local volume name"),
        "{err}"
    );
    let pruned = ok(&c, &["volume", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Volumes:\nmade\n"), "{pruned}");
    assert!(volume_names(&c).is_empty());
}

#[test]
fn anonymous_volumes_from_v_and_image_volume_go_with_rm_v_and_rm() {
    let c = ctx();
    c.file(
        "Dockerfile",
        "FROM localhost/busybox\nRUN mkdir /data && echo seeded > /data/x\nVOLUME /data\n",
    );
    c.build_ok(&["-t", "vol"]);
    // --rm removes the anonymous volume it made.
    assert_eq!(
        ok(&c, &["run", "--rm", "vol", "cat", "/data/x"]),
        "seeded\n"
    );
    assert!(volume_names(&c).is_empty(), "{:?}", volume_names(&c));
    // -v /d and the image's VOLUME: two anonymous volumes; rm keeps them, rm -v removes.
    ok(&c, &["create", "--name", "a", "-v", "/more", "vol", "true"]);
    assert_eq!(volume_names(&c).len(), 2);
    assert!(volume_names(&c).iter().all(|n| n.len() == 64));
    ok(&c, &["create", "--name", "b", "-v", "/more", "vol", "true"]);
    ok(&c, &["rm", "a"]);
    assert_eq!(volume_names(&c).len(), 4, "rm without -v keeps them");
    ok(&c, &["rm", "-v", "b"]);
    assert_eq!(volume_names(&c).len(), 2);
    ok(&c, &["volume", "prune", "-f"]);
    // A mount on the image's VOLUME path replaces the anonymous one.
    let host = c.tmp.path().join("hostdata");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("x"), "host\n").unwrap();
    let bind = format!("{}:/data", host.display());
    assert_eq!(
        ok(&c, &["run", "--rm", "-v", &bind, "vol", "cat", "/data/x"]),
        "host\n"
    );
    assert!(volume_names(&c).is_empty());
    let (code, _, err) = out(&c.kiln(&["run", "--rm", "-v", "/d", "-v", "xx:/d", BB, "true"]));
    assert_eq!(code, 125);
    assert!(err.contains("Duplicate mount point: /d"), "{err}");
}

#[test]
fn mount_flag_tmpfs_and_read_only_root() {
    let c = ctx();
    let host = c.tmp.path().join("bindsrc");
    std::fs::create_dir_all(&host).unwrap();
    let m = format!("type=bind,source={},target=/b", host.display());
    ok(
        &c,
        &[
            "run",
            "--rm",
            "--read-only",
            "--mount",
            &m,
            "--mount",
            "type=tmpfs,target=/t,tmpfs-size=1m",
            BB,
            "sh",
            "-c",
            "echo via-bind > /b/f && echo t > /t/f && grep ' /t ' /proc/mounts && ! touch /root-file",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(host.join("f")).unwrap(),
        "via-bind\n"
    );
    let (code, _, err) = out(&c.kiln(&[
        "run",
        "--rm",
        "--mount",
        "type=bind,source=/nonexistent-kiln,target=/b",
        BB,
        "true",
    ]));
    assert_eq!(code, 125);
    assert!(
        err.contains("bind source path does not exist: /nonexistent-kiln"),
        "{err}"
    );
    let (code, _, err) =
        out(&c.kiln(&["run", "--rm", "--mount", "type=nfs,target=/b", BB, "true"]));
    assert_eq!(code, 125, "{err}");
    let (code, _, err) = out(&c.kiln(&["run", "--rm", "--mount", "type=volume", BB, "true"]));
    assert_eq!(code, 125);
    assert!(err.contains("target is required"), "{err}");
    // inspect's Mounts for a bind and a tmpfs.
    ok(
        &c,
        &[
            "create", "--name", "i", "--mount", &m, "--tmpfs", "/run", BB, "true",
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&ok(&c, &["inspect", "i"])).unwrap();
    let mounts = doc[0]["Mounts"].as_array().unwrap();
    assert_eq!(mounts[0]["Type"], "bind");
    assert_eq!(mounts[0]["Source"], host.display().to_string());
    assert_eq!(mounts[0]["Destination"], "/b");
    assert_eq!(mounts[0]["Propagation"], "rprivate");
    assert_eq!(mounts[1]["Type"], "tmpfs");
    assert_eq!(mounts[1]["Destination"], "/run");
}

#[test]
fn mount_destinations_and_seeding_stay_inside_the_root() {
    let c = ctx();
    let probe = c.tmp.path().join("outside");
    std::fs::create_dir_all(&probe).unwrap();
    let p = probe.display().to_string();
    // /esc in the image points at the host's probe directory, by an absolute link and by
    // climbing out with `..`: inside the container both resolve within its root.
    c.file(
        "Dockerfile",
        &format!(
            "FROM localhost/busybox\nRUN ln -s {p} /esc && ln -s ../../../../../../../..{p} /esc2 && mkdir -p {p} && echo image > {p}/seed\nVOLUME /esc2\n"
        ),
    );
    c.build_ok(&["-t", "esc"]);
    let host = c.tmp.path().join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    let bind = format!("{}:/esc/m", host.display());
    ok(
        &c,
        &[
            "run",
            "--rm",
            "-v",
            &bind,
            "esc",
            "sh",
            "-c",
            "echo in > /esc/m/f",
        ],
    );
    assert_eq!(std::fs::read_to_string(host.join("f")).unwrap(), "in\n");
    assert!(
        !probe.join("m").exists(),
        "the mount point was made outside the root"
    );
    // The seeded volume holds the image's content behind the link, not the host's.
    std::fs::write(probe.join("host-only"), "host\n").unwrap();
    let ls = ok(&c, &["run", "--rm", "esc", "ls", "/esc2/"]);
    assert_eq!(ls, "seed\n", "seeded from inside the root only");
}
