//! Cache keys: sha256 over an explicit, versioned encoding of a step (never `Hash`/`Debug`
//! output, which may change between compiler versions). Changing what goes in bumps
//! [`KEY_VERSION`] and old records are simply never hit again.

use sha2::{Digest as _, Sha256};

/// v2: what COPY/ADD and RUN produce changed for the same inputs (special files, several
/// sources onto one path, archive owners with `--chown`, the `/etc` a RUN leaves on scratch).
pub const KEY_VERSION: &str = "kiln-cache-v2";

/// Feeds named fields into a sha256; every field is length-prefixed so no two field lists
/// encode the same bytes.
pub struct KeyBuilder {
    h: Sha256,
}

impl KeyBuilder {
    pub fn new(kind: &str) -> Self {
        let mut k = KeyBuilder { h: Sha256::new() };
        k.field("version", KEY_VERSION);
        k.field("kind", kind);
        k
    }

    pub fn field(&mut self, name: &str, value: &str) -> &mut Self {
        self.bytes(name, value.as_bytes())
    }

    pub fn bytes(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.h.update((name.len() as u64).to_le_bytes());
        self.h.update(name.as_bytes());
        self.h.update((value.len() as u64).to_le_bytes());
        self.h.update(value);
        self
    }

    pub fn opt(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.field(name, v),
            None => self.field(&format!("{name}:none"), ""),
        }
    }

    pub fn list<S: AsRef<str>>(&mut self, name: &str, values: &[S]) -> &mut Self {
        self.field(name, &values.len().to_string());
        for v in values {
            self.field(name, v.as_ref());
        }
        self
    }

    /// `sha256:<hex>`
    pub fn finish(&self) -> String {
        let d = self.h.clone().finalize();
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in d {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_unambiguous() {
        let a = KeyBuilder::new("run").field("a", "bc").finish();
        let b = KeyBuilder::new("run").field("ab", "c").finish();
        assert_ne!(a, b);
        let c = KeyBuilder::new("run").list("x", &["a", "b"]).finish();
        let d = KeyBuilder::new("run").list("x", &["ab"]).finish();
        assert_ne!(c, d);
        assert_eq!(KeyBuilder::new("run").field("a", "bc").finish(), a);
        assert!(a.starts_with("sha256:") && a.len() == 71);
    }
}
