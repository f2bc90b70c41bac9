//! Platforms (containerd's normalization) and compression detection/decoding.

use std::io::{Read, Write};

use kiln_image::compression::{self, media_types};
use kiln_image::{Compression, Platform, PlatformError};

#[test]
fn platform_parse_and_normalize() {
    for (input, want) in [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("Linux/AMD64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64/v3"),
        ("linux/arm64", "linux/arm64"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm64/8", "linux/arm64"),
        ("linux/arm64/9", "linux/arm64/v9"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/7", "linux/arm/v7"),
        ("linux/arm/v7", "linux/arm/v7"),
        ("linux/arm/6", "linux/arm/v6"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("linux/i386", "linux/386"),
        ("linux/s390x", "linux/s390x"),
        ("macos/arm64", "darwin/arm64"),
        ("windows/amd64", "windows/amd64"),
    ] {
        let p = Platform::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(p.to_string(), want, "{input}");
        assert_eq!(
            Platform::parse(want).unwrap(),
            p,
            "normalization is idempotent"
        );
    }
}

#[test]
fn platform_single_component_takes_the_rest_from_the_host() {
    let host = Platform::host();
    assert_eq!(host.os, "linux");
    let p = Platform::parse("linux").unwrap();
    assert_eq!(p, host);
    let p = Platform::parse("arm64").unwrap();
    assert_eq!((p.os.as_str(), p.architecture.as_str()), ("linux", "arm64"));
    assert!(matches!(
        Platform::parse("beos"),
        Err(PlatformError::Unknown { .. })
    ));
    #[cfg(target_arch = "x86_64")]
    assert_eq!(host.to_string(), "linux/amd64");
    #[cfg(target_arch = "aarch64")]
    assert_eq!(host.to_string(), "linux/arm64");
}

#[test]
fn platform_errors() {
    for bad in [
        "",
        "linux/",
        "/amd64",
        "linux/amd64/v8/x",
        "linux/am d64",
        "linux//amd64",
    ] {
        let e = Platform::parse(bad).unwrap_err();
        assert!(e.to_string().contains("platform"), "{bad:?}: {e}");
    }
}

#[test]
fn platform_matching_and_oci_conversion() {
    let a = Platform::parse("linux/arm64/v8").unwrap();
    let b = Platform::new("linux", "aarch64", None);
    assert!(a.matches(&b));
    assert!(!a.matches(&Platform::parse("linux/amd64").unwrap()));
    assert!(
        !Platform::parse("linux/arm/v6")
            .unwrap()
            .matches(&Platform::parse("linux/arm/v7").unwrap())
    );
    let oci: kiln_image::oci_spec::image::Platform =
        (&Platform::parse("linux/arm/v7").unwrap()).into();
    assert_eq!(oci.architecture().to_string(), "arm");
    assert_eq!(oci.variant().as_deref(), Some("v7"));
    assert_eq!(Platform::from(&oci).to_string(), "linux/arm/v7");
}

#[test]
fn detect_by_magic() {
    assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
    assert_eq!(
        Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
        Compression::Zstd
    );
    assert_eq!(Compression::detect(b"ustar"), Compression::None);
    assert_eq!(Compression::detect(&[]), Compression::None);
    assert_eq!(Compression::detect(&[0x1f]), Compression::None);
}

#[test]
fn media_types_round_trip() {
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        for oci in [true, false] {
            let mt = compression::media_type_for_layer(c, oci);
            assert_eq!(Compression::from_media_type(mt).unwrap(), c, "{mt}");
        }
    }
    assert_eq!(
        Compression::from_media_type(media_types::DOCKER_LAYER_GZIP).unwrap(),
        Compression::Gzip
    );
    assert_eq!(
        Compression::None.layer_media_type(true),
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(
        Compression::Gzip.layer_media_type(false),
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let e = Compression::from_media_type("application/json").unwrap_err();
    assert!(e.to_string().contains("application/json"));
}

/// A reader that hands out one byte per read, to prove detection does not rely on one read
/// returning the whole magic.
struct Trickle<R>(R);
impl<R: Read> Read for Trickle<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(1);
        self.0.read(&mut buf[..n])
    }
}

#[test]
fn auto_decoder_handles_all_three() {
    let data: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&data[..], 3).unwrap();
    for (name, bytes, want) in [
        ("plain", data.clone(), Compression::None),
        ("gzip", gz, Compression::Gzip),
        ("zstd", zst, Compression::Zstd),
    ] {
        let (c, mut r) =
            compression::auto_decoder(Box::new(Trickle(std::io::Cursor::new(bytes)))).unwrap();
        assert_eq!(c, want, "{name}");
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert!(out == data, "{name}: decoded bytes differ");
    }
    // Empty input: nothing to detect, nothing to read.
    let mut out = Vec::new();
    compression::decoder(Box::new(std::io::empty()))
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert!(out.is_empty());
}

#[test]
fn truncated_gzip_is_an_error() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&[7u8; 100_000]).unwrap();
    let gz = gz.finish().unwrap();
    let cut = gz[..gz.len() / 2].to_vec();
    let mut out = Vec::new();
    let r = compression::decoder(Box::new(std::io::Cursor::new(cut)))
        .unwrap()
        .read_to_end(&mut out);
    assert!(
        r.is_err(),
        "a truncated gzip stream must not read as complete"
    );
}
