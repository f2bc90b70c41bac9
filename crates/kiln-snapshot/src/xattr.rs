//! Extended attributes: which ones belong in a layer, and reading them from a path.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// The xattr overlayfs uses to mark a directory opaque (root, trusted namespace).
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The same mark on overlays mounted with `userxattr` (rootless).
pub const OPAQUE_USER_XATTR: &str = "user.overlay.opaque";

/// The mark fuse-overlayfs sets on an opaque directory it made in a user namespace.
pub const OPAQUE_FUSE_XATTR: &str = "user.fuseoverlayfs.opaque";

/// Whether this process runs in a user namespace other than the initial one (rootless kiln,
/// or root in a container with its own user namespace). overlayfs is then mounted with
/// `userxattr` and keeps its marks in `user.overlay.*`: `trusted.*` needs CAP_SYS_ADMIN in
/// the initial namespace.
pub fn in_user_namespace() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
            .unwrap_or(false)
    })
}

/// The opaque mark this process's overlay mounts read: [`OPAQUE_USER_XATTR`] in a user
/// namespace, [`OPAQUE_XATTR`] otherwise. Extraction writes it; export reads both.
pub fn opaque_xattr() -> &'static str {
    if in_user_namespace() {
        OPAQUE_USER_XATTR
    } else {
        OPAQUE_XATTR
    }
}

/// overlayfs' private bookkeeping (`origin`, `impure`, `uuid`, `opaque`...): never part of a
/// layer's content, dropped on export and on extraction.
pub(crate) fn is_overlay_private(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.")
        || name.starts_with(b"user.overlay.")
        || name.starts_with(b"user.fuseoverlayfs.")
}

/// All xattrs of `path` (not following a final symlink), sorted by name.
pub(crate) fn read_all(path: &Path) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let mut names = vec![0u8; 1024];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::llistxattr_query(path)?;
                names.resize(need.max(names.len() * 2), 0);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let value = read_one(path, OsStr::from_bytes(name))?;
        if let Some(v) = value {
            out.push((OsString::from_vec(name.to_vec()), v));
        }
    }
    out.sort();
    Ok(out)
}

/// One xattr of `path`, `None` if it is absent.
pub(crate) fn read_one(path: &Path, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    let cname =
        CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut value = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, cname.as_c_str(), &mut value[..]) {
            Ok(n) => {
                value.truncate(n);
                return Ok(Some(value));
            }
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::lgetxattr_query(path, cname.as_c_str())?;
                value.resize(need.max(value.len() * 2), 0);
            }
            Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_private_names() {
        assert!(is_overlay_private(b"trusted.overlay.origin"));
        assert!(is_overlay_private(b"user.overlay.opaque"));
        assert!(!is_overlay_private(b"security.capability"));
        assert!(!is_overlay_private(b"user.mime_type"));
    }

    #[test]
    fn reads_what_was_set() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, b"").unwrap();
        rustix::fs::lsetxattr(&f, "user.b", b"2", rustix::fs::XattrFlags::empty()).unwrap();
        rustix::fs::lsetxattr(
            &f,
            "user.a",
            &[0u8, 1, 2][..],
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let got = read_all(&f).unwrap();
        let names: Vec<_> = got.iter().map(|(n, _)| n.to_str().unwrap()).collect();
        assert_eq!(names, ["user.a", "user.b"]);
        assert_eq!(got[0].1, [0, 1, 2]);
        assert_eq!(read_one(&f, OsStr::new("user.none")).unwrap(), None);
    }
}
