//! A container's root file system: an overlay of its image's layers (unpacked once into
//! snapshots keyed `layer:<chain id>`, shared with builds) below its own writable layer
//! `containers/<id>/upper`, which lives as long as the container (not volatile: it survives a
//! crash as the container's state). The mount is kiln-snapshot's [`Snapshotter`], the same
//! lifecycle builds use, prepared in directories the container keeps
//! ([`Snapshotter::prepare_in`]).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::Context;
use kiln_snapshot::{ActiveSnapshot, DirTemp, KeptDirs, OverlayOptions, Snapshotter};
use kiln_store::{Digest, Lease, Store};

/// The bytes a container wrote (its overlay's upper directory): docker's `SizeRw`, as `ps -s`,
/// `inspect --size`, `system df` and `container prune` count it.
pub fn writable_size(store: &Store, id: &str) -> u64 {
    kiln_snapshot::dir_size(&store.container_dir(id).join("upper"))
        .map(|u| u.size)
        .unwrap_or(0)
}

/// The image's layers as snapshots, bottom first: (key, directory). Layers not unpacked yet
/// are unpacked now, by kiln-build's unpacking (the same `layer:<chain id>` snapshots builds
/// use). The lease protects them until the container's row references them.
pub fn image_layers(
    store: &Store,
    image: &Digest,
) -> anyhow::Result<(Lease, Vec<(String, PathBuf)>)> {
    let lease = store.lease()?;
    let (_, layers) = lease
        .use_image(image)?
        .ok_or_else(|| anyhow::anyhow!("No such image: {image}"))?;
    let chain = kiln_build::image_chain(store, &lease, &image.to_string(), &layers)?;
    let out = chain.into_iter().map(|l| (l.snapshot, l.dir)).collect();
    Ok((lease, out))
}

/// Mounts container `id`'s root at `containers/<id>/rootfs`: the image's layers (`lowers`,
/// bottom first) under `containers/<id>/upper`. Call in the supervisor's private mount
/// namespace; the mount goes when it is dropped or the namespace dies. `throwaway` (a `--rm`
/// container, whose upper is deleted when it stops) mounts it volatile: unmounting a
/// non-volatile overlay syncs the whole file system under the store (all of the host's dirty
/// data), which a `--rm` container has no reason to wait for.
pub fn mount_rootfs(
    store: &Store,
    id: &str,
    lowers: &[PathBuf],
    throwaway: bool,
) -> anyhow::Result<(ActiveSnapshot, PathBuf)> {
    let dir = store.container_dir(id);
    let (upper, work, target) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
    for d in [&upper, &work, &target] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    if work.join("work/incompat/volatile").exists() {
        anyhow::bail!(
            "container {id}: its writable layer was mounted volatile (--rm) and not unmounted cleanly, so it may have lost data; remove the container"
        );
    }
    let top_first: Vec<PathBuf> = lowers.iter().rev().cloned().collect();
    let snapshotter = Snapshotter::new(DirTemp::new(&dir)?);
    let kept = KeptDirs {
        upper: &upper,
        work: &work,
        rootfs: &target,
    };
    // Otherwise not volatile: the upper is the container's state and must survive a crash.
    let active = snapshotter
        .prepare_in(
            &top_first,
            &kept,
            &OverlayOptions {
                volatile: throwaway,
            },
        )
        .with_context(|| format!("mounting the root file system of container {id}"))?;
    Ok((active, target))
}

/// `rel` opened inside `root` (O_PATH unless `flags` say otherwise), symlinks resolved there.
pub(super) fn open_in_root(root: &OwnedFd, rel: &str, flags: i32) -> std::io::Result<OwnedFd> {
    let rel = rel.trim_start_matches('/');
    let rel = std::ffi::CString::new(if rel.is_empty() { "." } else { rel })
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: open_how is plain data; zero is its "no flags" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 with a valid dirfd, a NUL-terminated path and a local open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            rel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
