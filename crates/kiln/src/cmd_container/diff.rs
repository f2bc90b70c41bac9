//! `diff CONTAINER` (docker's `docker diff`): what the container changed in its root, from its
//! writable layer (`containers/<id>/upper`) against the image's layers: `A` added, `C`
//! changed, `D` deleted (an overlay whiteout), sorted by path. The files the runtime makes for
//! every container (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, `/dev`, `/proc`, `/sys`
//! mount points) are left out, as docker keeps them in a layer of their own; a directory shows
//! as changed when something under it does or its mode or owner differs from the image's.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use kiln_store::Store;

/// What the runtime makes in every container's root (docker's init layer).
const INIT_PATHS: &[&str] = &[
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/dev",
    "/proc",
    "/sys",
    "/.dockerenv",
    "/etc/mtab",
];

/// `rel` in `lower`, walking it component by component without following a symlink (a link
/// in a layer must not make us look at the host).
fn lookup(lower: &Path, rel: &Path) -> Option<std::fs::Metadata> {
    let mut p = lower.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        p.push(c);
        let m = std::fs::symlink_metadata(&p).ok()?;
        if i + 1 < comps.len() && !m.is_dir() {
            return None;
        }
    }
    m_of(&p)
}

fn m_of(p: &Path) -> Option<std::fs::Metadata> {
    std::fs::symlink_metadata(p).ok()
}

fn is_opaque(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()))
    else {
        return false;
    };
    let mut buf = [0u8; 4];
    // SAFETY: lgetxattr into a local buffer of the given size.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// Changes of the directory `rel` of `upper` over `lowers` (top first), into `out`; whether
/// anything under it was reported.
fn walk(
    upper: &Path,
    lowers: &[PathBuf],
    rel: &Path,
    hidden: bool,
    out: &mut Vec<(String, char)>,
) -> bool {
    let Ok(rd) = std::fs::read_dir(upper.join(rel)) else {
        return false;
    };
    let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
    names.sort();
    let mut any = false;
    for name in names {
        let r = rel.join(&name);
        let abs = format!("/{}", r.display());
        if INIT_PATHS.contains(&abs.as_str()) {
            continue;
        }
        let Some(m) = m_of(&upper.join(&r)) else {
            continue;
        };
        if m.file_type().is_char_device() && m.rdev() == 0 {
            out.push((abs, 'D'));
            any = true;
            continue;
        }
        let below = if hidden {
            None
        } else {
            lowers.iter().find_map(|l| lookup(l, &r))
        };
        if m.is_dir() {
            let opaque = is_opaque(&upper.join(&r));
            let at = out.len();
            let inner = walk(upper, lowers, &r, hidden || opaque, out);
            match below {
                None => {
                    out.insert(at, (abs, 'A'));
                    any = true;
                }
                Some(b) => {
                    let meta_changed =
                        b.mode() != m.mode() || b.uid() != m.uid() || b.gid() != m.gid();
                    if inner || opaque || meta_changed || !b.is_dir() {
                        out.insert(at, (abs, 'C'));
                        any = true;
                    }
                }
            }
            any |= inner;
        } else {
            out.push((abs, if below.is_some() { 'C' } else { 'A' }));
            any = true;
        }
    }
    any
}

/// `diff CONTAINER`.
pub fn diff(store: &Store, name: &str) -> anyhow::Result<()> {
    let c = store.find_container(name)?;
    let (lease, layers) = super::rootfs::image_layers(store, &c.image)?;
    // Top layer first, as overlay looks them up.
    let lowers: Vec<PathBuf> = layers.iter().rev().map(|(_, d)| d.clone()).collect();
    let upper = store.container_dir(&c.id).join("upper");
    let mut out = Vec::new();
    walk(&upper, &lowers, Path::new(""), false, &mut out);
    drop(lease);
    out.sort();
    let mut stdout = std::io::stdout().lock();
    for (p, k) in out {
        writeln!(stdout, "{k} {p}")?;
    }
    Ok(())
}
