//! The one error type of the crate: each variant says what failed and where.

use std::io;
use std::net::SocketAddr;

/// What went wrong in `kiln-net`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `-p` spec docker would reject, with docker's message.
    #[error("{0}")]
    InvalidPublish(String),
    /// A `-p` spec docker accepts and kiln does not support (said why).
    #[error("{0}")]
    UnsupportedPublish(String),
    /// A host port somebody else already listens on (docker's message).
    #[error("Bind for {0} failed: port is already allocated")]
    PortAllocated(SocketAddr),
    /// A port below `net.ipv4.ip_unprivileged_port_start` for a process in a user namespace
    /// (rootless kiln), which has no CAP_NET_BIND_SERVICE in the host's network namespace.
    #[error(
        "Bind for {addr} failed: ports below {start} are privileged on this host \
         (net.ipv4.ip_unprivileged_port_start={start}) and rootless kiln may not bind them; \
         publish a higher host port (-p {suggest}:{container_port}), or, as root, lower the \
         limit: sysctl net.ipv4.ip_unprivileged_port_start={port}",
        port = addr.port(),
        suggest = (*start).max(8080)
    )]
    PrivilegedPort {
        addr: SocketAddr,
        container_port: u16,
        start: u16,
    },
    /// Any other failure to bind a host port.
    #[error("Bind for {addr} failed: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// A system call on the container's network namespace failed.
    #[error("container network namespace: {what}: {source}")]
    Netns {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The file of the proxy's traffic counters could not be made.
    #[error("port proxy: making its traffic counters {}: {source}", path.display())]
    Traffic {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    /// The kernel path of published ports (veth + nftables) is not available here; the proxy
    /// serves them alone.
    #[error("published ports through the kernel: {0}")]
    KernelPath(String),
    /// A thread of the proxy or the private network could not start.
    #[error("starting thread {name}: {source}")]
    Thread {
        name: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn netns(what: impl Into<String>, source: io::Error) -> Error {
        Error::Netns {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn thread(name: &str, source: io::Error) -> Error {
        Error::Thread {
            name: name.to_string(),
            source,
        }
    }
}
