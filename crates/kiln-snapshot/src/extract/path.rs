//! Layer tar entry names, cleaned into components that stay inside the root.

use crate::error::EntryError;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A cleaned entry path: no empty, `.` or `..` components, never absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EntryPath {
    comps: Vec<OsString>,
}

impl EntryPath {
    /// Clean `raw` lexically (`a/./b//c` → `a/b/c`, `a/../b` → `b`). Absolute paths and
    /// paths whose `..` climb above the root are refused, as are NUL bytes.
    pub(crate) fn parse(raw: &[u8]) -> Result<Self, EntryError> {
        if raw.first() == Some(&b'/') {
            return Err(EntryError::AbsolutePath);
        }
        if raw.contains(&0) {
            return Err(EntryError::InvalidName);
        }
        let mut comps: Vec<OsString> = Vec::new();
        for c in raw.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    if comps.pop().is_none() {
                        return Err(EntryError::EscapesRoot);
                    }
                }
                _ => comps.push(OsStr::from_bytes(c).to_os_string()),
            }
        }
        Ok(EntryPath { comps })
    }

    pub(crate) fn from_comps(comps: Vec<OsString>) -> Self {
        EntryPath { comps }
    }

    pub(crate) fn comps(&self) -> &[OsString] {
        &self.comps
    }

    /// The directory holding the entry (empty for the root and its children).
    pub(crate) fn parent(&self) -> &[OsString] {
        &self.comps[..self.comps.len().saturating_sub(1)]
    }

    /// The last component; `None` for the root itself.
    pub(crate) fn name(&self) -> Option<&OsStr> {
        self.comps.last().map(|c| c.as_os_str())
    }

    /// The path relative to the root, used as a key in sets of paths.
    pub(crate) fn key(&self) -> PathBuf {
        self.comps.iter().collect()
    }

    pub(crate) fn child(&self, name: &OsStr) -> EntryPath {
        let mut comps = self.comps.clone();
        comps.push(name.to_os_string());
        EntryPath { comps }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> Result<String, String> {
        EntryPath::parse(raw.as_bytes())
            .map(|p| p.key().to_string_lossy().into_owned())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn cleans_names() {
        assert_eq!(key("./usr/bin/"), Ok("usr/bin".into()));
        assert_eq!(key("a//b/./c"), Ok("a/b/c".into()));
        assert_eq!(key("a/../b"), Ok("b".into()));
        assert_eq!(key("./"), Ok("".into()));
        assert_eq!(key("."), Ok("".into()));
    }

    #[test]
    fn refuses_escapes() {
        assert!(matches!(
            EntryPath::parse(b"../x"),
            Err(EntryError::EscapesRoot)
        ));
        assert!(matches!(
            EntryPath::parse(b"a/../../etc/x"),
            Err(EntryError::EscapesRoot)
        ));
        assert!(matches!(
            EntryPath::parse(b"/etc/x"),
            Err(EntryError::AbsolutePath)
        ));
        assert!(matches!(
            EntryPath::parse(b"a\0b"),
            Err(EntryError::InvalidName)
        ));
    }

    #[test]
    fn parent_and_name() {
        let p = EntryPath::parse(b"a/b/c").unwrap();
        assert_eq!(p.parent().len(), 2);
        assert_eq!(p.name(), Some(OsStr::new("c")));
        assert_eq!(EntryPath::parse(b"./").unwrap().name(), None);
        assert_eq!(p.child(OsStr::new("d")).key(), PathBuf::from("a/b/c/d"));
    }
}
