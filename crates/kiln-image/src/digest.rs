//! Content digests (`sha256:<hex>`), and readers/writers that compute them while streaming.
//!
//! Only sha256 is supported: it is what Docker, BuildKit and every registry use for images,
//! and supporting one algorithm keeps blob paths (`blobs/sha256/<hex>`) unambiguous.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// The only algorithm kiln produces and accepts.
pub const SHA256: &str = "sha256";

/// A sha256 content digest. Always holds 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// Why a string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("invalid digest {input:?}: expected \"sha256:<64 hex digits>\"")]
    MissingAlgorithm { input: String },
    #[error("invalid digest {input:?}: unsupported digest algorithm {algorithm:?} (only sha256)")]
    UnsupportedAlgorithm { input: String, algorithm: String },
    #[error("invalid digest {input:?}: expected 64 hex digits after \"sha256:\", found {len}")]
    BadLength { input: String, len: usize },
    #[error("invalid digest {input:?}: {what} is not a lowercase hex digit")]
    BadHex { input: String, what: char },
}

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(DigestError::MissingAlgorithm { input: s.into() });
        };
        if algorithm != SHA256 {
            return Err(DigestError::UnsupportedAlgorithm {
                input: s.into(),
                algorithm: algorithm.into(),
            });
        }
        Self::from_hex(hex).map_err(|e| match e {
            DigestError::BadLength { len, .. } => DigestError::BadLength {
                input: s.into(),
                len,
            },
            DigestError::BadHex { what, .. } => DigestError::BadHex {
                input: s.into(),
                what,
            },
            other => other,
        })
    }

    /// Parses the bare 64-hex form (as used in blob file names and image IDs).
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        if hex.len() != 64 {
            return Err(DigestError::BadLength {
                input: hex.into(),
                len: hex.len(),
            });
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
            // ok_or_else: the error's copy of the input is made only for an error.
            let hi = hex_val(pair[0]).ok_or_else(|| DigestError::BadHex {
                input: hex.into(),
                what: pair[0] as char,
            })?;
            let lo = hex_val(pair[1]).ok_or_else(|| DigestError::BadHex {
                input: hex.into(),
                what: pair[1] as char,
            })?;
            out[i] = hi << 4 | lo;
        }
        Ok(Digest(out))
    }

    /// The sha256 digest whose 32 bytes are `bytes`.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Digest(Sha256::digest(data).into())
    }

    /// The digest of everything `r` yields, and the byte count.
    pub fn of_reader(mut r: impl Read) -> io::Result<(Self, u64)> {
        let mut w = DigestWriter::new(io::sink());
        io::copy(&mut r, &mut w)?;
        let (_, d, n) = w.finish();
        Ok((d, n))
    }

    /// 64 lowercase hex characters, without the algorithm.
    pub fn hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }

    /// The algorithm name; always `sha256`.
    pub fn algorithm(&self) -> &'static str {
        SHA256
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `blobs/sha256/<hex>`: where this blob lives in an OCI layout.
    pub fn blob_path(&self) -> String {
        format!("blobs/{SHA256}/{}", self.hex())
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHA256}:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl From<Digest> for oci_spec::image::Digest {
    fn from(d: Digest) -> Self {
        // Always valid: sha256 with 64 lowercase hex digits.
        let sha: oci_spec::image::Sha256Digest = d
            .hex()
            .parse()
            .expect("a kiln Digest is always a valid sha256 digest");
        sha.into()
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = DigestError;
    fn try_from(d: &oci_spec::image::Digest) -> Result<Self, Self::Error> {
        Digest::parse(d.as_ref())
    }
}

/// Incremental sha256 for callers that feed bytes themselves.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.len += data.len() as u64;
    }
    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn finish(self) -> Digest {
        Digest(self.inner.finalize().into())
    }
}

/// A `Write` adapter that passes bytes through to `inner` and hashes and counts them.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> DigestWriter<W> {
    pub fn new(inner: W) -> Self {
        DigestWriter {
            inner,
            hasher: Hasher::new(),
        }
    }
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }
    /// Returns the inner writer, the digest and the byte count of everything written.
    pub fn finish(self) -> (W, Digest, u64) {
        let n = self.hasher.len();
        (self.inner, self.hasher.finish(), n)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Content did not match what was expected of it. Carried inside `io::Error`s
/// (kind `InvalidData`) by [`VerifyingReader`]; find it with [`ContentMismatch::find`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentMismatch {
    #[error("{what}: content does not match its digest {expected} (got {actual})")]
    Digest {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what} ({expected_digest}): expected {expected} bytes, got {actual}")]
    Size {
        what: String,
        expected_digest: Digest,
        expected: u64,
        actual: u64,
    },
}

impl ContentMismatch {
    /// Finds a mismatch carried inside an `io::Error`.
    pub fn find(e: &io::Error) -> Option<&ContentMismatch> {
        e.get_ref()?.downcast_ref::<ContentMismatch>()
    }
}

/// A `Read` adapter that hashes what it yields and, at end of stream, fails with an
/// `InvalidData` error (holding a [`ContentMismatch`]) unless the bytes match the expected
/// digest (and size, when given). Reading past the expected size fails at once, so a lying
/// size cannot make a consumer read forever.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Hasher,
    expected: Digest,
    expected_size: Option<u64>,
    what: String,
    done: bool,
}

impl<R: Read> VerifyingReader<R> {
    /// `what` names the content in errors (for example `layer blobs/sha256/ab…`).
    pub fn new(
        inner: R,
        expected: Digest,
        expected_size: Option<u64>,
        what: impl Into<String>,
    ) -> Self {
        VerifyingReader {
            inner,
            hasher: Hasher::new(),
            expected,
            expected_size,
            what: what.into(),
            done: false,
        }
    }

    fn size_error(&self, actual: u64) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            ContentMismatch::Size {
                what: self.what.clone(),
                expected_digest: self.expected,
                expected: self.expected_size.unwrap_or(0),
                actual,
            },
        )
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
            if let Some(size) = self.expected_size
                && self.hasher.len() > size
            {
                return Err(self.size_error(self.hasher.len()));
            }
            return Ok(n);
        }
        if let Some(size) = self.expected_size
            && self.hasher.len() != size
        {
            return Err(self.size_error(self.hasher.len()));
        }
        let actual = self.hasher.clone().finish();
        if actual != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                ContentMismatch::Digest {
                    what: self.what.clone(),
                    expected: self.expected,
                    actual,
                },
            ));
        }
        self.done = true;
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn known_vectors() {
        assert_eq!(Digest::of(b"").to_string(), EMPTY);
        assert_eq!(
            Digest::of(b"abc").hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parse_round_trip_and_serde() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d, EMPTY.parse().unwrap());
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{EMPTY}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
        let oci: oci_spec::image::Digest = d.into();
        assert_eq!(oci.to_string(), EMPTY);
        assert_eq!(Digest::try_from(&oci).unwrap(), d);
        assert_eq!(d.blob_path(), format!("blobs/sha256/{}", d.hex()));
    }

    #[test]
    fn parse_errors() {
        assert!(matches!(
            Digest::parse("e3b0"),
            Err(DigestError::MissingAlgorithm { .. })
        ));
        assert!(matches!(
            Digest::parse("sha512:abcd"),
            Err(DigestError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            Digest::parse("sha256:abcd"),
            Err(DigestError::BadLength { len: 4, .. })
        ));
        let upper = EMPTY.to_uppercase().replace("SHA256", "sha256");
        let err = Digest::parse(&upper).unwrap_err();
        assert!(
            matches!(err, DigestError::BadHex { what: 'E', .. }),
            "{err}"
        );
        assert!(err.to_string().contains(&upper));
    }

    #[test]
    fn writer_hashes_and_counts() {
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(b"ab").unwrap();
        w.write_all(b"c").unwrap();
        let (buf, d, n) = w.finish();
        assert_eq!(buf, b"abc");
        assert_eq!(n, 3);
        assert_eq!(d, Digest::of(b"abc"));
        assert_eq!(Digest::of_reader(&b"abc"[..]).unwrap(), (d, 3));
    }

    #[test]
    fn verifying_reader() {
        let d = Digest::of(b"hello");
        let mut out = Vec::new();
        VerifyingReader::new(&b"hello"[..], d, Some(5), "x")
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"hello");

        let err = VerifyingReader::new(&b"hellO"[..], d, Some(5), "blob x")
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            ContentMismatch::find(&err),
            Some(ContentMismatch::Digest { .. })
        ));
        assert!(err.to_string().contains("blob x"), "{err}");

        let err = VerifyingReader::new(&b"hello!"[..], d, Some(5), "x")
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(matches!(
            ContentMismatch::find(&err),
            Some(ContentMismatch::Size { actual: 6, .. })
        ));
        let err = VerifyingReader::new(&b"hell"[..], d, Some(5), "x")
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(matches!(
            ContentMismatch::find(&err),
            Some(ContentMismatch::Size { actual: 4, .. })
        ));
    }
}
