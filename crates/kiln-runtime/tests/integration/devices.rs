//! Docker's device rules in the embedded executor: `mknod` of any node works (as in BuildKit),
//! opening a node other than the standard ones fails, FIFOs and /dev/null, zero, urandom work.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use kiln_runtime::Executor;

use crate::util::{require_root, rootfs, run, spec};

/// (major, minor) of the block device holding the host's root file system.
fn root_disk() -> (u32, u32) {
    let dev = std::fs::metadata("/").unwrap().dev();
    (libc::major(dev), libc::minor(dev))
}

/// A node this host lets root open (the loop driver's 7:0; this sandbox refuses even root
/// its own disk, so the root disk alone would prove nothing): the control for the tests.
fn openable_host_node(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let p = dir.join("loop-control-node");
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(7, 0)) },
        0
    );
    std::fs::File::open(&p).expect("the host itself cannot open b 7:0: no control device");
    std::fs::remove_file(&p).unwrap();
    p
}

fn v1_devices_controller() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" - cgroup ") && l.split(',').any(|o| o == "devices"))
}

#[test]
fn a_node_for_the_host_disk_can_be_made_but_not_opened() {
    require_root();
    let (major, minor) = root_disk();
    let root = rootfs();
    openable_host_node(root.path());
    let script = format!(
        "mknod /disk b {major} {minor}; echo mknod=$?; \
         head -c1 /disk >/dev/null 2>&1; echo open=$?; \
         mknod /loop b 7 0 && dd if=/loop of=/dev/null count=0 2>/dev/null; echo dd=$?; \
         head -c4 /dev/zero | wc -c; head -c4 /dev/urandom | wc -c; echo x > /dev/null && echo null=ok; \
         mkfifo /fifo && (echo through > /fifo &) && cat /fifo"
    );
    let out = run(&Executor::Embedded, &spec(root.path(), &script)).unwrap();
    assert!(out.status.success(), "{out:?}", out = out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    if v1_devices_controller() {
        assert_eq!(
            lines[0], "mknod=0",
            "mknod is allowed, as in Docker: {lines:?}"
        );
        assert!(
            Path::new(&root.path().join("disk")).exists(),
            "the node is in the rootfs"
        );
    } else {
        assert_eq!(
            lines[0], "mknod=1",
            "no device cgroup: no CAP_MKNOD: {lines:?}"
        );
    }
    assert_eq!(lines[1], "open=1", "the host disk was readable: {lines:?}");
    assert_eq!(lines[2], "dd=1", "a loop device node was opened: {lines:?}");
    assert_eq!(&lines[3..], ["4", "4", "null=ok", "through"], "{lines:?}");
}

#[test]
fn device_cgroups_are_removed_after_the_run() {
    require_root();
    assert!(
        v1_devices_controller(),
        "this host has no v1 devices controller: nothing to test here"
    );
    let root = rootfs();
    let out = run(
        &Executor::Embedded,
        &spec(root.path(), "cat /proc/self/cgroup"),
    )
    .unwrap();
    assert!(out.status.success());
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(":devices:"))
        .unwrap_or_else(|| panic!("no devices line: {}", out.stdout));
    let path = line.rsplit(':').next().unwrap();
    assert!(
        path.rsplit('/').next().unwrap().starts_with("kiln-"),
        "the container is not in a device cgroup of its own: {line}"
    );
    let dir = Path::new("/sys/fs/cgroup/devices").join(path.trim_start_matches('/'));
    assert!(!dir.exists(), "{} was left behind", dir.display());
}
