//! What the host's network shows, for tests that check a port is (or is no longer) held.

/// Whether something listens on TCP `port` of any address (/proc/net/tcp and tcp6 of this
/// process's network namespace). Not a connect: a published port's connections may go to a
/// container through the kernel's DNAT, refused when nothing listens there, while the proxy's
/// listener still holds the port.
pub fn tcp_listening(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                let local_port = cols
                    .get(1)
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| u16::from_str_radix(p, 16).ok());
                local_port == Some(port) && cols.get(3) == Some(&"0A")
            })
    })
}
