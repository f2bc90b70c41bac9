//! kiln-runtime integration tests: real namespaces and mounts, run as root.
//!
//! - `embedded`: the default executor, feature by feature (exit codes, stdio, user, caps,
//!   namespaces, mounts, masked paths, errors).
//! - `lifecycle`: kill, drop, leaks of mounts and processes, concurrency.
//! - `devices`: Docker's device rules (nodes may be made, only the standard ones opened).
//! - `external`: the same basics through runc.
//!
//! No test skips: without root, busybox-static or runc a test fails and says what to install
//! (as root, scripts/install-deps.sh installs a missing package first).

mod devices;
mod embedded;
mod external;
mod lifecycle;
mod util;
