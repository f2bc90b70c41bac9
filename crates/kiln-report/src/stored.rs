//! A [`LayerIndex`] as the store keeps it (`Store::layer_files`): a compact binary encoding,
//! so that a report of an image whose layers were indexed before reads no layer blob.
//!
//! ```text
//! varint size, varint tar_bytes, varint count, then per change:
//!   u8 tag (0 put, 1 whiteout, 2 opaque)
//!   varint shared, varint n, n bytes   the path: `shared` bytes of the previous path + these
//!   put only: u8 kind, u8 flags (1 digest, 2 link, 4 hard link),
//!             varint size, mode, uid, gid; [32 bytes sha256]; [varint n, n bytes link]
//! ```
//!
//! Paths in tar order share long prefixes, so they are stored as the previous path's prefix
//! plus a suffix. A new encoding takes a new [`FORMAT`]: rows of another format are not read.

use kiln_image::Digest;

use crate::layer::{Change, Kind, LayerIndex, Meta};

/// The encoding's number in the store.
pub const FORMAT: u32 = 1;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn kind_byte(k: Kind) -> u8 {
    match k {
        Kind::File => 0,
        Kind::Dir => 1,
        Kind::Symlink => 2,
        Kind::Char => 3,
        Kind::Block => 4,
        Kind::Fifo => 5,
    }
}

/// Encodes `idx`.
pub fn encode(idx: &LayerIndex) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + idx.changes.len() * 48);
    put_varint(&mut out, idx.size);
    put_varint(&mut out, idx.tar_bytes);
    put_varint(&mut out, idx.changes.len() as u64);
    let mut prev: &[u8] = b"";
    for c in &idx.changes {
        let (tag, path) = match c {
            Change::Put(p, _) => (0u8, p),
            Change::Whiteout(p) => (1, p),
            Change::Opaque(p) => (2, p),
        };
        out.push(tag);
        let p = path.as_bytes();
        let shared = prev.iter().zip(p).take_while(|(a, b)| a == b).count();
        put_varint(&mut out, shared as u64);
        put_varint(&mut out, (p.len() - shared) as u64);
        out.extend_from_slice(&p[shared..]);
        prev = p;
        if let Change::Put(_, m) = c {
            out.push(kind_byte(m.kind));
            let flags = u8::from(m.digest.is_some())
                | (u8::from(m.link.is_some()) << 1)
                | (u8::from(m.hardlink) << 2);
            out.push(flags);
            put_varint(&mut out, m.size);
            put_varint(&mut out, u64::from(m.mode));
            put_varint(&mut out, m.uid);
            put_varint(&mut out, m.gid);
            if let Some(d) = &m.digest {
                out.extend_from_slice(d.as_bytes());
            }
            if let Some(l) = &m.link {
                put_varint(&mut out, l.len() as u64);
                out.extend_from_slice(l.as_bytes());
            }
        }
    }
    out
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.data.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
}

/// Decodes what [`encode`] made; `None` for anything else (the caller indexes the blob again).
pub fn decode(data: &[u8]) -> Option<LayerIndex> {
    let mut r = Reader { data, at: 0 };
    let size = r.varint()?;
    let tar_bytes = r.varint()?;
    let count = usize::try_from(r.varint()?).ok()?;
    // Every change takes at least 3 bytes: a count beyond that is damage, not a huge layer.
    if count > data.len() / 3 {
        return None;
    }
    let mut changes = Vec::with_capacity(count);
    let mut prev = String::new();
    for _ in 0..count {
        let tag = r.byte()?;
        let shared = usize::try_from(r.varint()?).ok()?;
        let n = usize::try_from(r.varint()?).ok()?;
        let suffix = std::str::from_utf8(r.bytes(n)?).ok()?;
        if shared > prev.len() || !prev.is_char_boundary(shared) {
            return None;
        }
        let mut path = String::with_capacity(shared + suffix.len());
        path.push_str(&prev[..shared]);
        path.push_str(suffix);
        prev.clone_from(&path);
        changes.push(match tag {
            0 => {
                let kind = match r.byte()? {
                    0 => Kind::File,
                    1 => Kind::Dir,
                    2 => Kind::Symlink,
                    3 => Kind::Char,
                    4 => Kind::Block,
                    5 => Kind::Fifo,
                    _ => return None,
                };
                let flags = r.byte()?;
                let size = r.varint()?;
                let mode = u32::try_from(r.varint()?).ok()?;
                let uid = r.varint()?;
                let gid = r.varint()?;
                let digest = if flags & 1 != 0 {
                    Some(Digest::from_bytes(r.bytes(32)?.try_into().ok()?))
                } else {
                    None
                };
                let link = if flags & 2 != 0 {
                    let n = usize::try_from(r.varint()?).ok()?;
                    Some(std::str::from_utf8(r.bytes(n)?).ok()?.to_string())
                } else {
                    None
                };
                Change::Put(
                    path,
                    Meta {
                        kind,
                        size,
                        mode,
                        uid,
                        gid,
                        digest,
                        link,
                        hardlink: flags & 4 != 0,
                    },
                )
            }
            1 => Change::Whiteout(path),
            2 => Change::Opaque(path),
            _ => return None,
        });
    }
    (r.at == data.len()).then_some(LayerIndex {
        changes,
        size,
        tar_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LayerIndex {
        let file = |size, digest: Option<&[u8]>| Meta {
            kind: Kind::File,
            size,
            mode: 0o644,
            uid: 1000,
            gid: 100_000,
            digest: digest.map(Digest::of),
            link: None,
            hardlink: false,
        };
        LayerIndex {
            changes: vec![
                Change::Opaque("/app".into()),
                Change::Put(
                    "/app".into(),
                    Meta {
                        kind: Kind::Dir,
                        mode: 0o755,
                        ..file(0, None)
                    },
                ),
                Change::Put("/app/a.txt".into(), file(3, Some(b"abc"))),
                Change::Put("/app/ä/b".into(), file(1 << 40, Some(b"big"))),
                Change::Put(
                    "/app/ä/link".into(),
                    Meta {
                        kind: Kind::Symlink,
                        link: Some("../a.txt".into()),
                        ..file(0, None)
                    },
                ),
                Change::Put(
                    "/app/hard".into(),
                    Meta {
                        hardlink: true,
                        ..file(3, Some(b"abc"))
                    },
                ),
                Change::Whiteout("/etc/gone".into()),
                Change::Put(
                    "/dev/null".into(),
                    Meta {
                        kind: Kind::Char,
                        mode: 0o7777,
                        ..file(0, None)
                    },
                ),
            ],
            size: 12345,
            tar_bytes: 1 << 33,
        }
    }

    #[test]
    fn round_trips() {
        let idx = sample();
        let back = decode(&encode(&idx)).expect("decodes");
        assert_eq!(back.size, idx.size);
        assert_eq!(back.tar_bytes, idx.tar_bytes);
        assert_eq!(format!("{:?}", back.changes), format!("{:?}", idx.changes));
    }

    #[test]
    fn damage_is_refused_not_misread() {
        let bytes = encode(&sample());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_none());
        assert!(decode(&[0xff; 16]).is_none());
    }
}
