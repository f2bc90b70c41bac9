//! kiln-runtime integration tests: real namespaces and mounts, run as root.
//!
//! - `embedded`: the default executor, feature by feature (exit codes, stdio, user, caps,
//!   namespaces, mounts, masked paths, errors).
//! - `lifecycle`: kill, drop, leaks of mounts and processes, concurrency.
//! - `devices`: Docker's device rules (nodes may be made, only the standard ones opened).
//! - `external`: the same basics through runc (skipped with a notice if runc is missing).

mod devices;
mod embedded;
mod external;
mod lifecycle;
mod util;
