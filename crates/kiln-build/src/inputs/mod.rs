//! What steps read besides their parent's layers: the build context and `--build-context`
//! directories ([`context`], opened with their checksum caches by [`open`]), URL and git
//! sources of ADD ([`http`], [`git`]), the files of another stage ([`stage_files`]) and the
//! SSH agent forwarded to `RUN --mount=type=ssh` ([`ssh`]).

pub mod context;
pub(crate) mod git;
pub mod http;
pub(crate) mod open;
pub(crate) mod sources;
pub(crate) mod ssh;
pub(crate) mod stage_files;
