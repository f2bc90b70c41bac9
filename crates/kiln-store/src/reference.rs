//! Name normalization for lookups (`busybox` → `docker.io/library/busybox:latest`).

use crate::error::{Error, Result};

/// The full form of a reference as tags are stored.
pub(crate) fn normalize(name: &str) -> Result<String> {
    crate::ImageRef::parse(name)
        .map(|r| r.to_string())
        .map_err(|e| Error::InvalidReference {
            reference: name.to_string(),
            reason: e.to_string(),
        })
}
