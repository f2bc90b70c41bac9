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
