//! Container networking for `kiln run`, with docker's behaviour where it can be had without a
//! daemon:
//!
//! - [`parse_publish`], [`publish_all`], [`format_port_line`]: docker's `-p`/`-P` grammar and
//!   the `kiln port` line.
//! - [`Proxy`]: a userspace port proxy (docker's `docker-proxy`): it accepts on the host and
//!   connects inside the container's network namespace, TCP (epoll workers, `splice`, half-close)
//!   and UDP (per-client flows with an idle timeout).
//! - [`KernelPorts`]: published IPv4 TCP ports at kernel speed for root (a veth pair and
//!   nftables DNAT, docker's `--userland-proxy=false`); the proxy keeps the port and serves the
//!   rest.
//! - [`PrivateNet`]: the container's own network namespace with loopback up and outbound access
//!   through `pasta` (Debian's `passt`), in place of docker's bridge.
//!
//! The design and what differs from docker: `docs/networking.md`.

mod dnat;
mod error;
mod netns;
mod private;
mod proxy;
mod publish;

pub use dnat::{KernelPorts, StaleRules, remove_stale_rules, rules_of, stale_rules};
pub use error::Error;
pub use private::{PrivateNet, Starting};
pub use proxy::{Proxy, ProxyOptions, Traffic};
pub use publish::{PortMapping, Proto, format_port_line, parse_publish, publish_all};
