//! cgroup v2 and Debian 12's own kernel, in a virtual machine: this host boots with cgroup v1
//! and a 6.x kernel whose overlay speaks the new mount API, so `scripts/cgroup2-vm.sh` boots
//! Debian bookworm's 6.1 kernel (cgroup2 with memory, cpu and pids) under QEMU with this
//! kiln, and checks there: a multi-stage build as root and as an ordinary user (same image
//! ID), `run` limits as root and in a user's delegated subtree (set, enforced, read by
//! `stats`, frozen by `pause`, removed by `rm`), and the warning without delegation. Needs
//! root, qemu-system-x86 and debootstrap (the guest's disk is made once, then cached).

mod support;
use support::*;

#[test]
fn cgroup_v2_limits_and_debian_12_kernel_in_a_vm() {
    require_root();
    require_command("qemu-system-x86_64", "qemu-system-x86");
    require_command("debootstrap", "debootstrap");
    require_command("mkfs.ext4", "e2fsprogs");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cgroup2-vm.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(bin())
        .output()
        .expect("running scripts/cgroup2-vm.sh");
    let console = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "cgroup2-vm.sh failed:\n{console}\n{err}"
    );
    let failed: Vec<&str> = console.lines().filter(|l| l.contains(": FAIL")).collect();
    assert!(failed.is_empty(), "{failed:#?}\n{console}");
    // Every check the guest makes, for each user: one that never ran fails here.
    let mut checks: Vec<String> = vec![
        "root: a build of 61 layers succeeds: ok".into(),
        "root: every layer is seen: ok".into(),
        "kilntest's image is root's: ok".into(),
        "kilntest, not delegated: the container runs: ok".into(),
        "kilntest, not delegated: one warning says what to do: ok".into(),
    ];
    for (who, under) in [("root", "/kiln/"), ("kilntest", "/deleg/kiln/")] {
        for check in [
            "a multi-stage build succeeds: ok",
            "build -q prints the image ID: ok",
            "its image runs: ok",
            "run -d with limits exits 0: ok",
            "run -d with limits warns of nothing: ok",
            &format!("the container's cgroup ({under}"),
            "memory.max: ok",
            "cpu.max: ok",
            "pids.max: ok",
            "stats reads the v2 cgroup (",
            "stats counts block writes (",
            "pause freezes the cgroup: ok",
            "inspect says paused: ok",
            "unpause thaws it: ok",
            "inspect says running: ok",
            "over --memory the process is killed (137): ok",
            "--pids-limit stops forks: ok",
            "--cpus throttles (",
            "rm -f removes the cgroups: ok",
            "no container left: ok",
        ] {
            checks.push(format!("{who}: {check}"));
        }
    }
    for check in &checks {
        assert!(
            console
                .lines()
                .any(|l| l.starts_with(&format!("CHECK {check}"))),
            "no `CHECK {check}` in the guest's console:\n{console}"
        );
    }
    assert!(console.contains("KILN-VM-RESULT: PASS"), "{console}");
}
