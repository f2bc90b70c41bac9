//! Bounded fuzzing of safe extraction: layer tars made of hostile and ordinary entries (escaping
//! names, absolute and climbing symlinks and hard links, whiteouts, devices, PAX records with
//! long names and xattrs), then mutated field by field and byte by byte, are extracted
//! (`extract_layer`) and applied onto a populated root (`apply_layer`) in a temporary
//! directory. Whatever the result, nothing outside the destination may be created, changed,
//! linked to or removed, and nothing may panic.
//! `KILN_FUZZ_CASES=100000 cargo test --release -p kiln-snapshot --test suite fuzz`.

use super::fixture::*;
use kiln_snapshot::{ExtractOptions, apply_layer, extract_layer, remove_dir_all};
use kiln_test::fuzz::{self, Rng};
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One tar entry, before serialization.
#[derive(Clone, Debug)]
struct Entry {
    kind: u8,
    name: String,
    link: String,
    mode: u32,
    uid: u64,
    data: Vec<u8>,
    pax: Vec<(String, Vec<u8>)>,
}

impl Entry {
    fn new(kind: u8, name: &str, link: &str, data: &[u8]) -> Entry {
        Entry {
            kind,
            name: name.into(),
            link: link.into(),
            mode: if kind == b'5' { 0o755 } else { 0o644 },
            uid: 0,
            data: data.to_vec(),
            pax: Vec::new(),
        }
    }
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0w$o}", v, w = field.len() - 1);
    let s = &s.as_bytes()[s.len().saturating_sub(field.len() - 1)..];
    field[..s.len()].copy_from_slice(s);
    field[s.len()] = 0;
}

/// A ustar header; `name` and `link` are cut to their fields (PAX records carry long ones).
fn header(kind: u8, name: &[u8], link: &[u8], mode: u32, uid: u64, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    octal(&mut h[100..108], mode as u64);
    octal(&mut h[108..116], uid);
    octal(&mut h[116..124], uid);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_600_000_000);
    h[156] = kind;
    h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], 1);
    octal(&mut h[337..345], 3);
    fix_checksum(&mut h);
    h
}

fn fix_checksum(h: &mut [u8]) {
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| b as u64).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(&s.as_bytes()[s.len() - 8..]);
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// The tar bytes and the offsets of its headers (so byte mutations can keep checksums valid).
fn serialize(entries: &[Entry]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut headers = Vec::new();
    for e in entries {
        let mut pax = e.pax.clone();
        if e.name.len() > 100 {
            pax.push(("path".into(), e.name.clone().into_bytes()));
        }
        if e.link.len() > 100 {
            pax.push(("linkpath".into(), e.link.clone().into_bytes()));
        }
        if !pax.is_empty() {
            let mut body = Vec::new();
            for (k, v) in &pax {
                // "LEN KEY=VALUE\n", LEN counting itself.
                let rest = k.len() + v.len() + 3;
                let mut len = rest + rest.to_string().len();
                if len.to_string().len() != rest.to_string().len() {
                    len += 1;
                }
                body.extend_from_slice(format!("{len} {k}=").as_bytes());
                body.extend_from_slice(v);
                body.push(b'\n');
            }
            headers.push(out.len());
            out.extend_from_slice(&header(b'x', b"pax", b"", 0o644, 0, body.len() as u64));
            out.extend_from_slice(&body);
            pad(&mut out);
        }
        headers.push(out.len());
        let h = header(
            e.kind,
            e.name.as_bytes(),
            e.link.as_bytes(),
            e.mode,
            e.uid,
            e.data.len() as u64,
        );
        out.extend_from_slice(&h);
        out.extend_from_slice(&e.data);
        pad(&mut out);
    }
    out.extend_from_slice(&[0u8; 1024]);
    (out, headers)
}

/// The layer the generator starts from: every kind of entry, ordinary and hostile.
fn seed_entries(outside: &Path) -> Vec<Entry> {
    let out = outside.to_str().unwrap();
    vec![
        Entry::new(b'5', "etc/", "", b""),
        Entry::new(b'0', "etc/passwd", "", b"root:x:0:0::/root:/bin/sh\n"),
        Entry::new(b'2', "etc/link", "passwd", b""),
        Entry::new(b'1', "etc/hard", "etc/passwd", b""),
        Entry::new(b'0', "etc/.wh.gone", "", b""),
        Entry::new(b'0', "var/.wh..wh..opq", "", b""),
        Entry::new(b'5', "var/", "", b""),
        Entry::new(b'3', "dev/null", "", b""),
        Entry::new(b'6', "fifo", "", b""),
        Entry::new(b'2', "up", "../../..", b""),
        Entry::new(b'2', "abs", out, b""),
        Entry::new(b'0', "up/escaped", "", b"evil"),
        Entry::new(b'0', "abs/escaped", "", b"evil"),
        Entry::new(b'1', "stolen", &format!("{out}/keep"), b""),
        Entry::new(b'0', &format!("{}/long", "d".repeat(120)), "", b"long name"),
    ]
}

/// Names and link targets that have broken extractors before.
fn hostile_names(outside: &Path) -> Vec<String> {
    let out = outside.to_str().unwrap();
    let mut v: Vec<String> = [
        "../x",
        "../../outside/keep",
        "/x",
        "a/../../x",
        ".",
        "..",
        "",
        "/",
        "a//b",
        "./a",
        "etc",
        "etc/passwd",
        "etc/link/x",
        "up",
        "up/x",
        "abs",
        "abs/keep",
        "abs/.wh.keep",
        ".wh.abs",
        "up/.wh.outside",
        ".wh..wh..opq",
        "etc/.wh..wh..opq",
        "a\0b",
        "dev/null/x",
        "fifo/x",
        "stolen",
        "\u{202e}x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(out.to_string());
    v.push(format!("{out}/keep"));
    v.push(format!("{out}/new"));
    v.push(format!("../../../..{out}/keep"));
    v.push("x".repeat(300));
    v
}

const PAX_KEYS: &[&str] = &[
    "path",
    "linkpath",
    "size",
    "uid",
    "gid",
    "mtime",
    "SCHILY.xattr.user.k",
    "SCHILY.xattr.trusted.overlay.opaque",
    "SCHILY.xattr.security.capability",
    "SCHILY.xattr.trusted.overlay.redirect",
    "LIBARCHIVE.xattr.user.k",
    "GNU.sparse.size",
];

fn mutate_entries(rng: &mut Rng, es: &mut Vec<Entry>, names: &[String]) {
    const KINDS: &[u8] = b"01234567xgLKSV\0A";
    for _ in 0..1 + rng.below(4) {
        if es.is_empty() {
            es.push(Entry::new(b'0', "f", "", b"x"));
        }
        let i = rng.below(es.len());
        match rng.below(10) {
            0 => es[i].name = rng.pick(names).clone(),
            1 => es[i].link = rng.pick(names).clone(),
            2 => es[i].kind = *rng.pick(KINDS),
            3 => {
                let any = rng.next_u64() as u32;
                es[i].mode = *rng.pick(&[0, 0o7777, 0o4755, 0o111, any]);
            }
            4 => {
                let any = rng.next_u64() & 0xffff_ffff;
                es[i].uid = *rng.pick(&[0, 1000, 65534, 0o7777777, any]);
            }
            5 => {
                let k = rng.pick(PAX_KEYS).to_string();
                let v = if rng.one_in(2) {
                    rng.pick(names).clone().into_bytes()
                } else {
                    rng.pick(&[&b"y"[..], b"-1", b"", b"99999999999999999999", b"\xff\x00"])
                        .to_vec()
                };
                es[i].pax.push((k, v));
            }
            6 => {
                let e = es[i].clone();
                let at = rng.below(es.len() + 1);
                es.insert(at, e);
            }
            7 => {
                es.remove(i);
            }
            8 => {
                let j = rng.below(es.len());
                es.swap(i, j);
            }
            _ => {
                let mut d = std::mem::take(&mut es[i].data);
                fuzz::mutate(rng, &mut d, &[], &[]);
                es[i].data = d;
            }
        }
    }
}

/// A generated layer: the tar bytes (maybe gzip) and whether to use root's options.
fn layer(rng: &mut Rng, outside: &Path, names: &[String]) -> (Vec<u8>, bool) {
    let mut es = seed_entries(outside);
    // Start from a few seed entries, in any order, then mutate.
    let keep = 1 + rng.below(es.len());
    for _ in 0..es.len() - keep {
        let i = rng.below(es.len());
        es.remove(i);
    }
    mutate_entries(rng, &mut es, names);
    let (mut bytes, headers) = serialize(&es);
    if !headers.is_empty() && rng.one_in(4) {
        // Byte edits inside one header, checksum fixed or not.
        let at = *rng.pick(&headers);
        let mut h = bytes[at..at + 512].to_vec();
        fuzz::mutate(rng, &mut h, &[], &[b"../", b"/", b"\0", b"7777777", b" "]);
        h.resize(512, 0);
        if !rng.one_in(4) {
            fix_checksum(&mut h);
        }
        bytes[at..at + 512].copy_from_slice(&h);
    }
    if rng.one_in(8) {
        fuzz::mutate(rng, &mut bytes, &[], &[]);
    }
    if rng.one_in(6) {
        bytes = gzip(&bytes);
    }
    (bytes, rng.one_in(2))
}

/// A scratch area: `outside/` (with `keep`, which must stay as it is) beside the destination.
struct Area {
    _tmp: tempfile::TempDir,
    top: PathBuf,
    outside: PathBuf,
    dest: PathBuf,
}

impl Area {
    fn new() -> Area {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().to_path_buf();
        let outside = top.join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), b"keep").unwrap();
        let dest = top.join("a/b/dest");
        Area {
            _tmp: tmp,
            top,
            outside,
            dest,
        }
    }

    fn fresh_dest(&self, populated: bool) {
        if self.dest.exists() {
            remove_dir_all(&self.dest).unwrap();
        }
        fs::create_dir_all(&self.dest).unwrap();
        if populated {
            // What a lower layer leaves for whiteouts and symlinks to act on.
            let d = &self.dest;
            fs::create_dir_all(d.join("etc")).unwrap();
            fs::write(d.join("etc/gone"), b"g").unwrap();
            fs::create_dir_all(d.join("var/cache")).unwrap();
            std::os::unix::fs::symlink(&self.outside, d.join("abs")).unwrap();
            std::os::unix::fs::symlink("../../..", d.join("up")).unwrap();
        }
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Nothing outside `dest` changed.
    fn assert_untouched(&self, what: &str) {
        assert_eq!(Self::names_in(&self.top), ["a", "outside"], "{what}: top");
        assert_eq!(Self::names_in(&self.top.join("a")), ["b"], "{what}: a/");
        assert_eq!(
            Self::names_in(&self.top.join("a/b")),
            ["dest"],
            "{what}: a/b/"
        );
        assert_eq!(Self::names_in(&self.outside), ["keep"], "{what}: outside/");
        let keep = self.outside.join("keep");
        let md = fs::symlink_metadata(&keep).unwrap();
        assert!(md.is_file(), "{what}: outside/keep was replaced");
        assert_eq!(
            fs::read(&keep).unwrap(),
            b"keep",
            "{what}: outside/keep changed"
        );
        assert_eq!(
            md.nlink(),
            1,
            "{what}: outside/keep was hard-linked into the layer"
        );
        assert_eq!(
            (md.mode() & 0o7777, md.uid()),
            (0o644, 0),
            "{what}: keep's mode/owner"
        );
        let od = fs::metadata(&self.outside).unwrap();
        assert_eq!(od.mode() & 0o7777, 0o755, "{what}: outside/'s mode changed");
    }
}

#[test]
fn fuzzed_layers_never_escape_the_destination() {
    require_root();
    // SAFETY: umask has no preconditions; a fixed one makes the modes checked above known.
    unsafe { libc::umask(0o022) };
    let area = Area::new();
    let names = hostile_names(&area.outside);
    let mut ok = 0;
    fuzz::run(
        "extract",
        1500,
        |rng| layer(rng, &area.outside, &names),
        |(tar, as_root)| {
            let opts = if *as_root {
                ExtractOptions::default()
            } else {
                ExtractOptions {
                    same_owner: false,
                    allow_devices: false,
                }
            };
            area.fresh_dest(false);
            let r = extract_layer(&tar[..], &area.dest, &opts);
            if let Err(e) = &r {
                assert!(!e.to_string().is_empty());
            }
            ok += usize::from(r.is_ok());
            area.assert_untouched("extract_layer");
            area.fresh_dest(true);
            let _ = apply_layer(&tar[..], &area.dest, &opts);
            area.assert_untouched("apply_layer");
        },
    );
    // Some layers must get through, or only the first checks were exercised.
    assert!(ok > fuzz::cases(1500) / 20, "only {ok} layers extracted");
}

#[test]
fn the_tar_writer_here_makes_tars_that_extract() {
    require_root();
    let area = Area::new();
    area.fresh_dest(false);
    let es = vec![
        Entry::new(b'5', "d/", "", b""),
        Entry::new(b'0', "d/f", "", b"data"),
        Entry::new(b'2', "d/l", "f", b""),
        Entry::new(b'0', &format!("{}/long", "n".repeat(120)), "", b"long"),
    ];
    let (tar, _) = serialize(&es);
    let mut f = fs::File::create(area.top.join("a/layer.tar")).unwrap();
    f.write_all(&tar).unwrap();
    let stats = extract_layer(&tar[..], &area.dest, &ExtractOptions::default()).unwrap();
    assert_eq!(stats.files, 2);
    assert_eq!(fs::read(area.dest.join("d/f")).unwrap(), b"data");
    assert_eq!(
        fs::read_link(area.dest.join("d/l")).unwrap(),
        Path::new("f")
    );
    let long = area.dest.join(format!("{}/long", "n".repeat(120)));
    assert_eq!(fs::read(long).unwrap(), b"long");
}

#[test]
fn the_escape_check_sees_a_write_through_a_symlink() {
    let area = Area::new();
    area.fresh_dest(true);
    area.assert_untouched("before");
    // What a naive extractor does with `abs -> outside` then `abs/new`.
    fs::write(area.dest.join("abs/new"), b"evil").unwrap();
    let caught = std::panic::catch_unwind(|| area.assert_untouched("naive"));
    assert!(caught.is_err(), "a file written outside went unnoticed");
}

/// What an error says, to compare: the whole message when a rule refused the entry; only the
/// entry when a system call failed (the check names no system call) or the tar did not parse
/// (extraction reads file contents, the check skips them, so a truncation shows at another
/// read).
fn verdict(e: &kiln_snapshot::Error) -> String {
    match e {
        kiln_snapshot::Error::Entry {
            entry,
            kind: kiln_snapshot::EntryError::Io { .. },
        } => format!("{entry:?}: a system call fails"),
        kiln_snapshot::Error::Archive { .. } => "the tar does not parse".into(),
        e => e.to_string(),
    }
}

/// A byte slice read and sought forward only, whose seeks past the end fail as a stream's
/// would (`check_layer_tar`'s contract; a `Cursor` would let a truncated tar pass).
struct Stream<'a> {
    data: &'a [u8],
    pos: usize,
}

impl std::io::Read for Stream<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = out.len().min(self.data.len() - self.pos);
        out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl std::io::Seek for Stream<'_> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let std::io::SeekFrom::Current(n) = to else {
            panic!("check_layer_tar seeks only forward from where it is: {to:?}");
        };
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        self.pos = end;
        Ok(end as u64)
    }
}

#[test]
fn check_layer_tar_refuses_exactly_what_extract_layer_refuses() {
    require_root();
    // SAFETY: as above.
    unsafe { libc::umask(0o022) };
    let area = Area::new();
    let names = hostile_names(&area.outside);
    let (mut refused, mut passed, mut host) = (0, 0, 0);
    fuzz::run(
        "check",
        1500,
        |rng| layer(rng, &area.outside, &names).0,
        |blob| {
            area.fresh_dest(false);
            // Root's options: the check leaves devices to the caller's permissions.
            let extracted = extract_layer(&blob[..], &area.dest, &ExtractOptions::default());
            let mut tar = Vec::new();
            let decoded = match kiln_snapshot::decompress(&blob[..]) {
                Ok((_, mut r)) => std::io::Read::read_to_end(&mut r, &mut tar).is_ok(),
                Err(_) => false,
            };
            if !decoded {
                assert!(extracted.is_err(), "extracted what does not decompress");
                refused += 1;
                return;
            }
            let checked = kiln_snapshot::check_layer_tar(Stream { data: &tar, pos: 0 });
            if let Err(e) = &extracted
                && e.to_string().contains(": set xattr: ")
            {
                // The file system refused an xattr's value (a malformed `security.capability`):
                // the host's verdict, which the check does not model.
                host += 1;
                return;
            }
            assert_eq!(
                checked.as_ref().map(|_| ()).map_err(verdict),
                extracted.as_ref().map(|_| ()).map_err(verdict),
                "check and extraction disagree ({:?}, {:?}) on {:?}",
                checked.as_ref().err().map(|e| e.to_string()),
                extracted.as_ref().err().map(|e| e.to_string()),
                String::from_utf8_lossy(&tar[..tar.len().min(600)])
            );
            if checked.is_ok() {
                passed += 1;
            } else {
                refused += 1;
            }
        },
    );
    // Both verdicts must be common, or only one side of the rules was exercised.
    let n = fuzz::cases(1500);
    assert!(
        passed > n / 20 && refused > n / 20 && host < n / 10,
        "{passed} passed, {refused} refused, {host} refused by the file system"
    );
}
