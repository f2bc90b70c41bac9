//! Random IDs: a container's or an anonymous volume's 64 hex digits, as docker makes them.

/// `n` random bytes from /dev/urandom (a time-and-pid mix if it cannot be read).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .is_ok();
    if !ok {
        let t = super::logfile::now_nanos() as u64 ^ (std::process::id() as u64) << 32;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t.rotate_left(i as u32 * 7) & 0xff) as u8;
        }
    }
    buf
}

/// 64 random hex digits.
pub fn new_id() -> String {
    random_bytes(32)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
