//! ADD: local archives are extracted (plain, gzip, bzip2, xz, zstd), COPY keeps them as
//! files; URLs are downloaded from a server on 127.0.0.1 started by the test.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use kiln_build::context::BuildContext;
use kiln_build::copy::{CopyRequest, CopySource, copy_into};

fn req<'a>(source: CopySource<'a>, patterns: &[&str], dest: &str) -> CopyRequest<'a> {
    CopyRequest {
        is_add: true,
        ..CopyRequest::new(source, patterns, dest)
    }
}

fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_size(size);
    h.set_mtime(1_000_000_000);
    h
}

/// The add-tar case's pkg.tar: pkg/ 0750 1234:5678, pkg/bin/tool 0755, pkg/README 0600
/// 1234:5678, a symlink and a hard link.
fn pkg_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Directory, 0o750, 1234, 5678, 0);
    b.append_data(&mut h, "pkg/", &[][..]).unwrap();
    let mut h = header(tar::EntryType::Directory, 0o755, 0, 0, 0);
    b.append_data(&mut h, "pkg/bin/", &[][..]).unwrap();
    let tool = b"#!/bin/sh\necho tool\n";
    let mut h = header(tar::EntryType::Regular, 0o755, 0, 0, tool.len() as u64);
    b.append_data(&mut h, "pkg/bin/tool", &tool[..]).unwrap();
    let mut h = header(tar::EntryType::Regular, 0o600, 1234, 5678, 7);
    b.append_data(&mut h, "pkg/README", &b"readme\n"[..])
        .unwrap();
    let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0, 0);
    b.append_link(&mut h, "pkg/tool-link", "bin/tool").unwrap();
    let mut h = header(tar::EntryType::Link, 0o755, 0, 0, 0);
    b.append_link(&mut h, "pkg/tool-hard", "pkg/bin/tool")
        .unwrap();
    b.into_inner().unwrap()
}

fn check_pkg(root: &Path) {
    let m = |p: &str| fs::symlink_metadata(root.join(p)).unwrap();
    assert_eq!(m("pkg").mode() & 0o7777, 0o750);
    assert_eq!((m("pkg").uid(), m("pkg").gid()), (1234, 5678));
    assert_eq!(m("pkg/bin/tool").mode() & 0o7777, 0o755);
    assert_eq!(m("pkg/README").mode() & 0o7777, 0o600);
    assert_eq!((m("pkg/README").uid(), m("pkg/README").gid()), (1234, 5678));
    assert_eq!(
        fs::read_link(root.join("pkg/tool-link")).unwrap(),
        Path::new("bin/tool")
    );
    assert_eq!(m("pkg/tool-hard").ino(), m("pkg/bin/tool").ino());
    assert_eq!(m("pkg/README").mtime(), 1_000_000_000);
    assert_eq!(
        fs::read_to_string(root.join("pkg/bin/tool")).unwrap(),
        "#!/bin/sh\necho tool\n"
    );
}

fn compress(kind: &str, data: &[u8]) -> Vec<u8> {
    match kind {
        "gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "bz2" => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "xz" => {
            let mut out = Vec::new();
            lzma_rs::xz_compress(&mut std::io::Cursor::new(data), &mut out).unwrap();
            out
        }
        "zst" => zstd::encode_all(data, 3).unwrap(),
        _ => data.to_vec(),
    }
}

#[test]
fn add_tar_case() {
    let c = tempfile::tempdir().unwrap();
    let tar = pkg_tar();
    for ext in ["tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst"] {
        let kind = ext.rsplit('.').next().unwrap();
        fs::write(c.path().join(format!("pkg.{ext}")), compress(kind, &tar)).unwrap();
    }
    fs::write(c.path().join("not-a-tar.gz"), compress("gz", b"just text")).unwrap();
    let cx = BuildContext::open_with_dockerignore(c.path()).unwrap();
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    copy_into(
        &req(CopySource::Context(&cx), &["pkg.tar"], "/extracted/"),
        r,
    )
    .unwrap();
    check_pkg(&r.join("extracted"));
    copy_into(
        &req(CopySource::Context(&cx), &["pkg.tar.gz"], "/extracted-gz"),
        r,
    )
    .unwrap();
    check_pkg(&r.join("extracted-gz"));
    for ext in ["bz2", "xz", "zst"] {
        let dest = format!("/x-{ext}/");
        copy_into(
            &req(
                CopySource::Context(&cx),
                &[&format!("pkg.tar.{ext}")],
                &dest,
            ),
            r,
        )
        .unwrap();
        check_pkg(&r.join(format!("x-{ext}")));
    }
    // COPY never extracts.
    let mut q = req(CopySource::Context(&cx), &["pkg.tar"], "/copied/");
    q.is_add = false;
    copy_into(&q, r).unwrap();
    assert_eq!(fs::read(r.join("copied/pkg.tar")).unwrap(), tar);
    // A compressed file that is not a tar stays a file.
    copy_into(
        &req(CopySource::Context(&cx), &["not-a-tar.gz"], "/plain/"),
        r,
    )
    .unwrap();
    assert!(r.join("plain/not-a-tar.gz").is_file());
    // ADD into an existing directory merges.
    fs::create_dir_all(r.join("merge/pkg")).unwrap();
    fs::write(r.join("merge/pkg/existing.txt"), "existing\n").unwrap();
    copy_into(&req(CopySource::Context(&cx), &["pkg.tar"], "/merge"), r).unwrap();
    check_pkg(&r.join("merge"));
    assert_eq!(
        fs::read_to_string(r.join("merge/pkg/existing.txt")).unwrap(),
        "existing\n"
    );
    // --chown owns the destination it creates; the extracted entries keep the archive's
    // owners (dockerd 20.10's BuildKit; tests/conformance/add-chown-archive).
    let mut q = req(CopySource::Context(&cx), &["pkg.tar"], "/owned/");
    q.chown = Some("42:43".into());
    copy_into(&q, r).unwrap();
    let m = fs::metadata(r.join("owned")).unwrap();
    assert_eq!((m.uid(), m.gid()), (42, 43));
    check_pkg(&r.join("owned"));
}

/// Serve `body` for every request (up to `n` connections) on 127.0.0.1; 404 for /missing.
fn serve(body: &'static [u8], n: usize) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(n) {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => req.extend_from_slice(&buf[..k]),
                }
            }
            let line = String::from_utf8_lossy(&req);
            let resp = if line.starts_with("GET /missing") {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            } else {
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(body);
                r
            };
            let _ = s.write_all(&resp);
        }
    });
    format!("http://{addr}")
}

#[test]
fn add_url() {
    let body: &'static [u8] = b"downloaded content\n";
    let base = serve(body, 8);
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    let c = tempfile::tempdir().unwrap();
    let cx = BuildContext::open_with_dockerignore(c.path()).unwrap();
    let url = format!("{base}/files/tool.txt?v=1");
    copy_into(&req(CopySource::Context(&cx), &[&url], "/dl/"), r).unwrap();
    let m = fs::metadata(r.join("dl/tool.txt")).unwrap();
    assert_eq!(fs::read(r.join("dl/tool.txt")).unwrap(), body);
    assert_eq!(m.mode() & 0o7777, 0o600);
    assert_eq!(m.mtime(), 784_111_777, "mtime from Last-Modified");
    assert_eq!((m.uid(), m.gid()), (0, 0));
    // Not a directory destination: the file takes the destination's name.
    copy_into(&req(CopySource::Context(&cx), &[&url], "/renamed.txt"), r).unwrap();
    assert_eq!(fs::read(r.join("renamed.txt")).unwrap(), body);
    // --checksum verified.
    let good = "sha256:".to_string() + &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
    let mut q = req(CopySource::Context(&cx), &[&url], "/ok/");
    q.checksum = Some(good);
    copy_into(&q, r).unwrap();
    let mut q = req(CopySource::Context(&cx), &[&url], "/bad/");
    q.checksum = Some(format!("sha256:{}", "0".repeat(64)));
    let e = copy_into(&q, r).unwrap_err();
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    assert!(!r.join("bad").exists());
    // Errors: 404, COPY of a URL, git URLs.
    let e = copy_into(
        &req(
            CopySource::Context(&cx),
            &[&format!("{base}/missing")],
            "/m/",
        ),
        r,
    )
    .unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
    let mut q = req(CopySource::Context(&cx), &[&url], "/c/");
    q.is_add = false;
    assert!(copy_into(&q, r).is_err());
    // A git repository that cannot be reached (a closed loopback port): an error naming it.
    let e = copy_into(
        &req(
            CopySource::Context(&cx),
            &["https://127.0.0.1:1/r.git"],
            "/g/",
        ),
        r,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("git https://127.0.0.1:1/r.git"),
        "{e}"
    );
    assert!(!r.join("g").exists());
}
