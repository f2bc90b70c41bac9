//! overlayfs mounts through the new mount API (fsopen/fsconfig/fsmount/move_mount).
//!
//! Lower directories are added one `lowerdir+` at a time, so a chain of hundreds of layers
//! never hits the one-page limit of a `lowerdir=a:b:c` option string. `redirect_dir`,
//! `metacopy` and `index` are always off, explicitly (in a user namespace: `userxattr` and
//! `redirect_dir=nofollow`, which creates no redirects either): with them on, the upper directory of a
//! RUN step is no longer a complete diff (renamed directories stay in lower, chmod copies no
//! data). Mounts are undone by dropping the returned guard (lazy unmount).
//!
//! Callers normally run inside a private mount namespace, so that even a crash leaves nothing
//! mounted on the host.

use crate::error::{Error, Result};
use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Options of a writable overlay mount.
#[derive(Clone, Debug, Default)]
pub struct OverlayOptions {
    /// Mount with `volatile`: no syncs to the upper layer. Right for build containers whose
    /// upper is committed (and synced) or thrown away; after a crash the upper is unusable.
    pub volatile: bool,
}

/// A mounted file system, unmounted (`MNT_DETACH`) when dropped.
#[derive(Debug)]
pub struct OverlayMount {
    target: PathBuf,
    mounted: bool,
    /// The fuse-overlayfs process serving this mount (rootless fallback), reaped after the
    /// unmount.
    fuse: Option<Fuse>,
}

/// A fuse-overlayfs mount's process and directories.
#[derive(Debug)]
struct Fuse {
    child: std::process::Child,
    lowers: Vec<PathBuf>,
    upper: Option<PathBuf>,
}

impl OverlayMount {
    /// Where it is mounted.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Unmount now and report failure (dropping unmounts too, ignoring errors).
    pub fn unmount(mut self) -> Result<()> {
        self.mounted = false;
        let r =
            rustix::mount::unmount(&self.target, UnmountFlags::DETACH).map_err(|e| Error::Mount {
                fstype: "overlay",
                target: self.target.clone(),
                step: "umount".into(),
                message: None,
                source: e.into(),
            });
        if let Some(fuse) = self.reap_fuse()
            && let Some(upper) = &fuse.upper
        {
            r?;
            normalize_fuse_upper(upper, &fuse.lowers).map_err(|source| Error::Io {
                op: "convert the fuse-overlayfs upper directory",
                path: upper.clone(),
                source,
            })?;
            return Ok(());
        }
        r
    }

    /// fuse-overlayfs exits once its file system is unmounted: wait for it.
    fn reap_fuse(&mut self) -> Option<Fuse> {
        let mut fuse = self.fuse.take()?;
        let _ = fuse.child.wait();
        Some(fuse)
    }
}

/// Turn an upper directory fuse-overlayfs wrote into the form the kernel's overlay writes, so
/// that export gives root's bytes. fuse-overlayfs marks *every* directory it creates opaque
/// (`user.fuseoverlayfs.opaque` plus `.wh..wh..opq` and `.wh..opq` entries); the kernel marks
/// one only when it replaces something the lowers show. Each marked directory keeps an
/// opaque mark (`user.overlay.opaque`) exactly when its path is visible in the lowers.
fn normalize_fuse_upper(upper: &Path, lowers: &[PathBuf]) -> std::io::Result<()> {
    use crate::xattr::{OPAQUE_FUSE_XATTR, OPAQUE_USER_XATTR};
    use std::ffi::OsStr;
    // (path in the upper, whether an opaque directory above it already hides the lowers)
    let mut stack = vec![(PathBuf::new(), false)];
    while let Some((rel, hidden)) = stack.pop() {
        let dir = upper.join(&rel);
        let fuse_mark = crate::xattr::read_one(&dir, OsStr::new(OPAQUE_FUSE_XATTR))?.is_some();
        let mut marked = fuse_mark;
        let mut subdirs = Vec::new();
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let name = e.file_name();
            let ft = e.file_type()?;
            if name == ".wh..wh..opq" || (name == ".wh..opq" && ft.is_char_device()) {
                marked = true;
                std::fs::remove_file(e.path())?;
            } else if ft.is_dir() {
                subdirs.push(rel.join(&name));
            }
        }
        if fuse_mark {
            rustix::fs::lremovexattr(&dir, OPAQUE_FUSE_XATTR)?;
        }
        let opaque =
            marked && !hidden && !rel.as_os_str().is_empty() && visible_in_lowers(&rel, lowers);
        if opaque {
            rustix::fs::lsetxattr(
                &dir,
                OPAQUE_USER_XATTR,
                b"y",
                rustix::fs::XattrFlags::empty(),
            )?;
        }
        // Below an opaque directory the lowers show nothing; so also below one the kernel
        // marked (a directory copied up keeps no mark: it hides nothing).
        let below_hidden = hidden
            || opaque
            || crate::xattr::read_one(&dir, OsStr::new(OPAQUE_USER_XATTR))?.is_some();
        stack.extend(subdirs.into_iter().map(|d| (d, below_hidden)));
    }
    Ok(())
}

/// Whether the merged view of `lowers` (top first) shows something at `rel`: the first lower
/// that has it decides (a 0:0 device there is a whiteout), and a lower whose directory on the
/// way is opaque, or holds a non-directory on the way, hides everything below it.
fn visible_in_lowers(rel: &Path, lowers: &[PathBuf]) -> bool {
    use crate::xattr::{OPAQUE_FUSE_XATTR, OPAQUE_USER_XATTR, OPAQUE_XATTR};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let opaque = |p: &Path| {
        [OPAQUE_XATTR, OPAQUE_USER_XATTR, OPAQUE_FUSE_XATTR]
            .iter()
            .any(|n| {
                crate::xattr::read_one(p, std::ffi::OsStr::new(n))
                    .ok()
                    .flatten()
                    .is_some_and(|v| v == b"y")
            })
    };
    let comps: Vec<_> = rel.components().collect();
    for lower in lowers {
        let mut p = lower.clone();
        for (i, c) in comps.iter().enumerate() {
            p.push(c);
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                break; // not in this lower: look further down
            };
            let whiteout = md.file_type().is_char_device() && md.rdev() == 0;
            if i + 1 == comps.len() {
                return !whiteout;
            }
            if whiteout || !md.is_dir() {
                return false;
            }
            if opaque(&p) {
                // The rest of the path exists in this lower or nowhere.
                let rest: PathBuf = comps[i + 1..].iter().collect();
                let full = p.join(rest);
                return std::fs::symlink_metadata(&full)
                    .is_ok_and(|m| !(m.file_type().is_char_device() && m.rdev() == 0));
            }
        }
    }
    false
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = rustix::mount::unmount(&self.target, UnmountFlags::DETACH);
        }
        let _ = self.reap_fuse();
    }
}

/// Mount an overlay of `lowers` (top layer first) with `upper` and `work` (same file system,
/// `work` empty) on `target`. With no lowers (FROM scratch) there is nothing to hide or copy
/// up, so `upper` itself is bind-mounted on `target`: it still ends up holding the diff.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    opts: &OverlayOptions,
) -> Result<OverlayMount> {
    if lowers.is_empty() {
        return bind(upper, target, false);
    }
    overlay(lowers, Some((upper, work)), target, opts.volatile)
}

/// Mount a read-only view of `lowers` (top first) on `target`: an overlay of the lowers, a
/// read-only bind mount when there is only one (overlay needs two lowers without an upper),
/// or an empty read-only tmpfs when there are none.
pub fn mount_readonly(lowers: &[PathBuf], target: &Path) -> Result<OverlayMount> {
    match lowers {
        [] => empty_readonly(target),
        [only] => bind(only, target, true),
        _ => overlay(lowers, None, target, false),
    }
}

fn overlay(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    volatile: bool,
) -> Result<OverlayMount> {
    if !crate::xattr::in_user_namespace() {
        return kernel_overlay(lowers, upper, target, volatile);
    }
    // Rootless. `_KILN_TEST_OVERLAY_REFUSED=1` makes the kernel's answer EPERM, for the test
    // of this message: no honest way to make this kernel refuse it was found.
    let r = if std::env::var_os("_KILN_TEST_OVERLAY_REFUSED").is_some_and(|v| v == "1") {
        Err(Error::Mount {
            fstype: "overlay",
            target: target.to_path_buf(),
            step: "fsopen".into(),
            message: None,
            source: Errno::PERM.into(),
        })
    } else {
        kernel_overlay(lowers, upper, target, volatile)
    };
    let refused = |e: &Error| {
        matches!(e, Error::Mount { source, fstype: "overlay", .. }
            if matches!(source.raw_os_error(), Some(libc::EPERM | libc::ENODEV | libc::EINVAL)))
    };
    match r {
        Err(e) if refused(&e) => match find_fuse_overlayfs() {
            Some(bin) => fuse_overlay(&bin, lowers, upper, target),
            None => Err(Error::RootlessOverlayRefused {
                source: Box::new(e),
            }),
        },
        r => r,
    }
}

static FUSE_USED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `fuse-overlayfs` on PATH.
fn find_fuse_overlayfs() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("fuse-overlayfs"))
        .find(|p| p.is_file())
}

/// The rootless fallback: `fuse-overlayfs -f` as kiln's child (no daemon left behind),
/// serving `target` until it is unmounted. Said once per process on stderr (fd 2 directly:
/// a build's progress view holds the stderr lock).
fn fuse_overlay(
    bin: &Path,
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<OverlayMount> {
    use std::os::unix::ffi::OsStrExt;
    let fail = |step: &str, source: std::io::Error| Error::Mount {
        fstype: "fuse-overlayfs",
        target: target.to_path_buf(),
        step: step.into(),
        message: None,
        source,
    };
    let mut dirs: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
    if let Some((u, w)) = upper {
        dirs.extend([u, w]);
    }
    if let Some(bad) = dirs
        .iter()
        .find(|d| d.as_os_str().as_bytes().iter().any(|b| b":,".contains(b)))
    {
        return Err(fail(
            "options",
            std::io::Error::other(format!(
                "{} holds ':' or ',', which fuse-overlayfs options cannot carry",
                bad.display()
            )),
        ));
    }
    let lower: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    let mut opts = format!("lowerdir={}", lower.join(":"));
    if let Some((u, w)) = upper {
        opts.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    } else {
        opts.push_str(",ro");
    }
    if !FUSE_USED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        let note = "kiln: the kernel refused overlayfs in the rootless user namespace: using fuse-overlayfs (slower)\n";
        // SAFETY: writing a valid buffer to fd 2.
        unsafe { libc::write(2, note.as_ptr().cast(), note.len()) };
    }
    let before = std::fs::metadata(target).map_err(|e| fail("stat", e))?;
    let mut child = std::process::Command::new(bin)
        .arg("-f")
        .arg("-o")
        .arg(&opts)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| fail("start fuse-overlayfs", e))?;
    // Mounted once the target's device changes; the process exiting first is a failure.
    use std::os::unix::fs::MetadataExt;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| fail("wait", e))? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return Err(fail(
                "fuse-overlayfs",
                std::io::Error::other(format!("exited ({status}): {}", err.trim())),
            ));
        }
        if std::fs::metadata(target).is_ok_and(|m| m.dev() != before.dev()) {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(
                "fuse-overlayfs",
                std::io::Error::other("not mounted after 30s"),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Ok(OverlayMount {
        target: target.to_path_buf(),
        mounted: true,
        fuse: Some(Fuse {
            child,
            lowers: lowers.to_vec(),
            upper: upper.map(|(u, _)| u.to_path_buf()),
        }),
    })
}

/// Whether the kernel's overlay takes `lowerdir+` (Linux 6.8 and later, where overlay speaks
/// the new mount API itself). Before that (Debian 12's 6.1), fsconfig hands overlay's legacy
/// parser `key=value` strings of at most 256 bytes, and `lowerdir+` is unknown to it: the
/// first mount refused that way retries through mount(2) with one option string, and later
/// mounts go straight there.
static LOWERDIR_PLUS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const SUPPORTED: u8 = 1;
const LEGACY: u8 = 2;

fn kernel_overlay(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    volatile: bool,
) -> Result<OverlayMount> {
    use std::sync::atomic::Ordering;
    if lowers.is_empty() {
        return Err(Error::NoLowerDirs {
            target: target.to_path_buf(),
        });
    }
    match LOWERDIR_PLUS.load(Ordering::Relaxed) {
        LEGACY => legacy_overlay(lowers, upper, target, volatile),
        known => match overlay_fs(lowers, upper, target, volatile) {
            Ok(m) => {
                LOWERDIR_PLUS.store(SUPPORTED, Ordering::Relaxed);
                attach(m, target)
            }
            // A kernel without `lowerdir+`; if mount(2) fails too, the first error (with the
            // kernel's own message) says more.
            Err(e) if known == UNKNOWN && is_einval(&e) => {
                let m = legacy_overlay(lowers, upper, target, volatile).map_err(|_| e)?;
                LOWERDIR_PLUS.store(LEGACY, Ordering::Relaxed);
                Ok(m)
            }
            Err(e) => Err(e),
        },
    }
}

/// Puts a detached overlay on `target`.
fn attach(mnt: OwnedFd, target: &Path) -> Result<OverlayMount> {
    attach_fs(mnt, target, "overlay")
}

/// Puts a detached file system of type `fstype` on `target`.
fn attach_fs(mnt: OwnedFd, target: &Path, fstype: &'static str) -> Result<OverlayMount> {
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| Error::Mount {
        fstype,
        target: target.to_path_buf(),
        step: "move_mount".into(),
        message: None,
        source: e.into(),
    })?;
    Ok(OverlayMount {
        target: target.to_path_buf(),
        mounted: true,
        fuse: None,
    })
}

fn is_einval(e: &Error) -> bool {
    matches!(e, Error::Mount { source, .. } if source.raw_os_error() == Some(libc::EINVAL))
}

/// The options every overlay gets after its directories. Rootless: overlay's marks in
/// user.overlay.* (trusted.* needs the initial namespace), and `redirect_dir=nofollow`, the
/// only mode the kernel accepts with `userxattr` (it also creates no redirects, so the upper
/// stays a complete diff).
fn common_options() -> Vec<(&'static str, Option<&'static str>)> {
    let userxattr = crate::xattr::in_user_namespace();
    let mut out = Vec::new();
    if userxattr {
        out.push(("userxattr", None));
    }
    out.extend([
        (
            "redirect_dir",
            Some(if userxattr { "nofollow" } else { "off" }),
        ),
        ("metacopy", Some("off")),
        ("index", Some("off")),
    ]);
    out
}

/// A detached overlay file system through the new mount API, one `lowerdir+` per layer (no
/// length limit), ready for `move_mount`.
fn overlay_fs(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    volatile: bool,
) -> Result<OwnedFd> {
    let fail = |step: String, fs: Option<&OwnedFd>, e: Errno| Error::Mount {
        fstype: "overlay",
        target: target.to_path_buf(),
        step,
        message: fs.and_then(kernel_log),
        source: e.into(),
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| fail("fsopen".into(), None, e))?;
    // fsconfig copies at most 256 bytes of a value, and overlay strips backslashes from
    // upperdir and workdir (not from lowerdir+): such paths go by descriptor.
    let mut held = Vec::new();
    let mut name = |p: &Path, unescaped: bool| -> Result<PathBuf> {
        let b = p.as_os_str().as_bytes();
        if b.len() < FSCONFIG_VALUE_MAX && !(unescaped && b.contains(&b'\\')) {
            return Ok(p.to_path_buf());
        }
        by_descriptor(p, &mut held)
            .map(PathBuf::from)
            .map_err(|e| fail(format!("open {}", p.display()), None, e))
    };
    for l in lowers {
        let n = name(l, false)?;
        fsconfig_set_string(&fs, "lowerdir+", &n)
            .map_err(|e| fail(format!("fsconfig lowerdir+ {}", l.display()), Some(&fs), e))?;
    }
    if let Some((u, w)) = upper {
        let (un, wn) = (name(u, true)?, name(w, true)?);
        fsconfig_set_string(&fs, "upperdir", &un)
            .map_err(|e| fail(format!("fsconfig upperdir {}", u.display()), Some(&fs), e))?;
        fsconfig_set_string(&fs, "workdir", &wn)
            .map_err(|e| fail(format!("fsconfig workdir {}", w.display()), Some(&fs), e))?;
        if volatile {
            fsconfig_set_flag(&fs, "volatile")
                .map_err(|e| fail("fsconfig volatile".into(), Some(&fs), e))?;
        }
    }
    for (k, v) in common_options() {
        match v {
            None => fsconfig_set_flag(&fs, k),
            Some(v) => fsconfig_set_string(&fs, k, v),
        }
        .map_err(|e| {
            fail(
                format!(
                    "fsconfig {k}{}",
                    v.map(|v| format!("={v}")).unwrap_or_default()
                ),
                Some(&fs),
                e,
            )
        })?;
    }
    fsconfig_create(&fs).map_err(|e| fail("fsconfig create".into(), Some(&fs), e))?;
    drop(held);
    fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| fail("fsmount".into(), Some(&fs), e))
}

/// The most fsconfig copies of a string value (`strndup_user(value, 256)`), NUL included.
const FSCONFIG_VALUE_MAX: usize = 256;

/// The option string of mount(2) may fill one page; the lower directories get what the
/// directories and flags around them leave.
const PAGE: usize = 4096;

/// `p` as `/proc/thread-self/fd/N` of an `O_PATH` descriptor kept in `held`: the kernel
/// resolves it in this process while the file system is created, so `held` must outlive that.
fn by_descriptor(p: &Path, held: &mut Vec<OwnedFd>) -> std::result::Result<String, Errno> {
    let fd = rustix::fs::open(
        p,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let name = format!("/proc/thread-self/fd/{}", fd.as_raw_fd());
    held.push(fd);
    Ok(name)
}

/// `p` as it can stand in a legacy option string: itself when it is UTF-8 without a byte an
/// option parser splits on or unescapes (`,` `:` `\` `"`; security modules read the same
/// string before overlay does, with rules of their own), else by descriptor.
fn legacy_name(p: &Path, held: &mut Vec<OwnedFd>) -> std::result::Result<String, Errno> {
    match p.to_str() {
        Some(s) if !s.contains([',', ':', '\\', '"']) => Ok(s.to_string()),
        _ => by_descriptor(p, held),
    }
}

/// An overlay through mount(2) and one option string, for kernels whose overlay predates the
/// new mount API (before 6.5; `lowerdir+` before 6.8). A chain whose paths do not fit in the
/// page names each lower directory by an `O_PATH` descriptor (about 24 bytes: some 150
/// layers).
fn legacy_overlay(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    volatile: bool,
) -> Result<OverlayMount> {
    let fail = |step: String, e: Errno| Error::Mount {
        fstype: "overlay",
        target: target.to_path_buf(),
        step,
        message: None,
        source: e.into(),
    };
    // Held open until the mount is made.
    let mut held: Vec<OwnedFd> = Vec::new();
    let mut rest = String::new();
    if let Some((u, w)) = upper {
        let un = legacy_name(u, &mut held).map_err(|e| fail(format!("open {}", u.display()), e))?;
        let wn = legacy_name(w, &mut held).map_err(|e| fail(format!("open {}", w.display()), e))?;
        rest.push_str(&format!(",upperdir={un},workdir={wn}"));
        if volatile {
            rest.push_str(",volatile");
        }
    }
    for (k, v) in common_options() {
        rest.push(',');
        rest.push_str(k);
        if let Some(v) = v {
            rest.push('=');
            rest.push_str(v);
        }
    }
    let mut names = Vec::with_capacity(lowers.len());
    for l in lowers {
        names
            .push(legacy_name(l, &mut held).map_err(|e| fail(format!("open {}", l.display()), e))?);
    }
    let mut data = format!("lowerdir={}{rest}", names.join(":"));
    if data.len() >= PAGE {
        names.clear();
        for l in lowers {
            names.push(
                by_descriptor(l, &mut held)
                    .map_err(|e| fail(format!("open {}", l.display()), e))?,
            );
        }
        data = format!("lowerdir={}{rest}", names.join(":"));
        if data.len() >= PAGE {
            return Err(fail(
                format!(
                    "options ({} lower directories do not fit in one page even as descriptors)",
                    lowers.len()
                ),
                Errno::NAMETOOLONG,
            ));
        }
    }
    let data = std::ffi::CString::new(data)
        .map_err(|_| fail("options (a NUL byte)".into(), Errno::INVAL))?;
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|e| fail("mount (legacy options)".into(), e))?;
    drop(held);
    Ok(OverlayMount {
        target: target.to_path_buf(),
        mounted: true,
        fuse: None,
    })
}

fn bind(source: &Path, target: &Path, readonly: bool) -> Result<OverlayMount> {
    let fail = |step: &str, e: Errno| Error::Mount {
        fstype: "bind",
        target: target.to_path_buf(),
        step: step.into(),
        message: None,
        source: e.into(),
    };
    rustix::mount::mount_bind(source, target).map_err(|e| fail("bind", e))?;
    let guard = OverlayMount {
        target: target.to_path_buf(),
        mounted: true,
        fuse: None,
    };
    if readonly {
        rustix::mount::mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "")
            .map_err(|e| fail("remount read-only", e))?;
    }
    Ok(guard)
}

/// An empty, read-only directory (the root of an image with no layers).
fn empty_readonly(target: &Path) -> Result<OverlayMount> {
    let fail = |step: &str, e: Errno| Error::Mount {
        fstype: "tmpfs",
        target: target.to_path_buf(),
        step: step.into(),
        message: None,
        source: e.into(),
    };
    let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| fail("fsopen", e))?;
    fsconfig_set_string(&fs, "mode", "755").map_err(|e| fail("fsconfig mode=755", e))?;
    fsconfig_set_string(&fs, "size", "4k").map_err(|e| fail("fsconfig size=4k", e))?;
    fsconfig_create(&fs).map_err(|e| fail("fsconfig create", e))?;
    let mnt = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY,
    )
    .map_err(|e| fail("fsmount", e))?;
    attach_fs(mnt, target, "tmpfs")
}

/// The messages the kernel logged into an fs context ("e overlay: ..."), if any.
fn kernel_log(fs: &OwnedFd) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        if !out.is_empty() {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(&buf[..n]);
    }
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).trim().to_string())
}

#[cfg(test)]
mod legacy_lowerdir_tests {
    use super::*;

    fn require_root() {
        assert!(
            rustix::process::geteuid().is_root(),
            "this test mounts overlays: run it as root"
        );
    }

    /// `n` lower directories under `parent`, each holding `f<i>` and a shared `common`
    /// (top first, as mounts take them).
    fn lowers(parent: &Path, n: usize, name: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for i in 0..n {
            let d = parent.join(format!("{name}{i:03}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(format!("f{i:03}")), i.to_string()).unwrap();
            std::fs::write(d.join("common"), i.to_string()).unwrap();
            out.insert(0, d);
        }
        out
    }

    fn mount_legacy(lowers: &[PathBuf], parent: &Path) -> (OverlayMount, PathBuf) {
        let (upper, work, target) = (parent.join("u"), parent.join("w"), parent.join("t"));
        for d in [&upper, &work, &target] {
            std::fs::create_dir_all(d).unwrap();
        }
        let m = legacy_overlay(lowers, Some((&upper, &work)), &target, false).unwrap();
        (m, target)
    }

    /// Paths with bytes an option parser splits on or unescapes (and a non-UTF-8 one) go by
    /// descriptor, through mount(2) and through the new mount API alike.
    #[test]
    fn odd_paths_are_named_by_descriptors() {
        use std::os::unix::ffi::OsStrExt;
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let odd = std::ffi::OsStr::from_bytes(b"a,b:c\\d\"e\xff");
        for (i, legacy) in [true, false].into_iter().enumerate() {
            let parent = tmp.path().join(format!("{i}")).join(odd);
            let ls = lowers(&parent, 3, "l");
            let (m, target) = if legacy {
                mount_legacy(&ls, &parent)
            } else {
                let (upper, work, target) = (parent.join("u"), parent.join("w"), parent.join("t"));
                for d in [&upper, &work, &target] {
                    std::fs::create_dir_all(d).unwrap();
                }
                let fs = overlay_fs(&ls, Some((&upper, &work)), &target, false).unwrap();
                (attach(fs, &target).unwrap(), target)
            };
            assert_eq!(std::fs::read_to_string(target.join("common")).unwrap(), "2");
            assert_eq!(std::fs::read_to_string(target.join("f000")).unwrap(), "0");
            std::fs::write(target.join("new"), "x").unwrap();
            m.unmount().unwrap();
            assert!(parent.join("u/new").exists(), "the upper is the odd path's");
        }
    }

    /// fsconfig's 256-byte limit: a longer path goes by descriptor through the new API.
    #[test]
    fn long_paths_go_by_descriptor_through_the_new_api() {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().join("y".repeat(200)).join("z".repeat(100));
        let ls = lowers(&parent, 2, "l");
        let (upper, work, target) = (parent.join("u"), parent.join("w"), parent.join("t"));
        for d in [&upper, &work, &target] {
            std::fs::create_dir_all(d).unwrap();
        }
        let fs = overlay_fs(&ls, Some((&upper, &work)), &target, false).unwrap();
        let m = attach(fs, &target).unwrap();
        assert_eq!(std::fs::read_to_string(target.join("common")).unwrap(), "1");
        std::fs::write(target.join("new"), "x").unwrap();
        m.unmount().unwrap();
        assert!(upper.join("new").exists());
    }

    /// A chain whose paths do not fit in the legacy parser's page goes through descriptors.
    #[test]
    fn legacy_lowerdir_names_a_long_chain_by_descriptors() {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let long = "x".repeat(120);
        let ls = lowers(tmp.path(), 150, &format!("{long}/l"));
        assert!(ls.iter().map(|l| l.as_os_str().len() + 1).sum::<usize>() > PAGE);
        let (m, target) = mount_legacy(&ls, tmp.path());
        assert_eq!(
            std::fs::read_to_string(target.join("common")).unwrap(),
            "149"
        );
        assert_eq!(std::fs::read_to_string(target.join("f000")).unwrap(), "0");
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 151);
        std::fs::write(target.join("new"), "written").unwrap();
        m.unmount().unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("u/new")).unwrap(),
            "written"
        );
    }
}

#[cfg(test)]
mod fuse_upper_tests {
    use super::*;
    use crate::xattr::{OPAQUE_FUSE_XATTR, OPAQUE_USER_XATTR, read_one};
    use std::ffi::OsStr;

    fn mark(p: &Path, name: &str) {
        rustix::fs::lsetxattr(p, name, b"y", rustix::fs::XattrFlags::empty()).unwrap();
    }

    /// fuse-overlayfs' marks on new directories become kernel-style marks only where the
    /// lowers show the path, and never below a directory that is already opaque.
    #[test]
    fn fuse_marks_become_kernel_marks_where_the_lowers_show_the_path() {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        std::fs::create_dir_all(lower.join("cfg/sub")).unwrap();
        std::fs::create_dir_all(lower.join("hidden/below")).unwrap();
        mark(&lower.join("hidden"), OPAQUE_USER_XATTR);
        // cfg replaced (opaque), cfg/sub new inside it, fresh new, hidden/below: the lower
        // shows it (its own opaque mark is on hidden, above).
        for d in ["cfg/sub", "fresh", "hidden/below"] {
            std::fs::create_dir_all(upper.join(d)).unwrap();
        }
        for d in ["cfg", "cfg/sub", "fresh", "hidden/below"] {
            mark(&upper.join(d), OPAQUE_FUSE_XATTR);
            std::fs::write(upper.join(d).join(".wh..wh..opq"), b"").unwrap();
        }
        normalize_fuse_upper(&upper, std::slice::from_ref(&lower)).unwrap();
        let opaque = |d: &str| {
            read_one(&upper.join(d), OsStr::new(OPAQUE_USER_XATTR))
                .unwrap()
                .is_some()
        };
        assert!(opaque("cfg"));
        assert!(!opaque("cfg/sub"), "below an opaque directory");
        assert!(!opaque("fresh"), "nothing in the lowers");
        assert!(opaque("hidden/below"));
        for d in ["cfg", "cfg/sub", "fresh", "hidden/below"] {
            assert!(!upper.join(d).join(".wh..wh..opq").exists(), "{d}");
            let fuse = read_one(&upper.join(d), OsStr::new(OPAQUE_FUSE_XATTR)).unwrap();
            assert!(fuse.is_none(), "{d}");
        }
    }
}
