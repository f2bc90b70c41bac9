//! kiln's dev-only test harness, shared by every crate's tests (never linked into the binary).
//!
//! - [`prereq`]: a test that needs root or a system tool asserts it through here. A missing
//!   tool is installed once by `scripts/install-deps.sh` when the tests run as root, and
//!   otherwise fails the test with the package and the command to run: no test returns early
//!   and counts as passed.
//! - [`docker`]: a Docker engine for interop tests: the running one, or a `dockerd` this test
//!   process starts and stops.
//! - [`registry`]: a real registry (`docker-registry`) on 127.0.0.1, and a proxy that cuts
//!   connections.
//! - [`fuzz`]: a seeded generator and byte mutations for bounded fuzz tests on stable Rust
//!   (`KILN_FUZZ_CASES` and `KILN_FUZZ_SEED` make a run longer or different).
#![warn(missing_docs)]

pub mod docker;
pub mod fuzz;
pub mod net;
pub mod prereq;
pub mod registry;
