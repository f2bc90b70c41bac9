//! kiln-build: plan → key → solve → exec → export.
//!
//! ```text
//! row 4   kiln (bin)
//! row 3   kiln-build        plan ← key ← rootfs ← inputs ← exec ← solve → export
//! row 1   kiln-store   kiln-snapshot   kiln-runtime
//! row 0   kiln-dockerfile   kiln-image
//! ```
//!
//! [`build`] runs one build: parse the Dockerfile, [`plan::plan`] the steps the target needs,
//! run them with [`solve::run_dag`] (each step: cache key → cache hit, or execute on an overlay
//! of its parent's layers), and export the target stage into the store. ARCHITECTURE.md draws
//! the modules and which way they import.

pub(crate) mod cache_artifact;
pub mod cache_options;
pub(crate) mod encoder;
pub mod error;
pub mod event;
pub mod namespace;
pub mod options;
pub mod outfile;
pub mod signals;

mod exec;
mod export;
mod inputs;
mod key;
pub mod plan;
mod rootfs;
pub mod solve;
mod state;

pub use exec::copy;
pub use inputs::context;
pub use plan::{config, stepname};

pub use error::{BuildError, Result};
pub use export::prune::prune_cache;
pub use kiln_store::{BuildCachePrune, BuildCachePruneReport};
/// Base-image layers unpacked once into shared snapshots (containers use them too).
pub use rootfs::{LayerRef, unpack::image_chain};
pub use solve::engine::build;
pub use state::{BuildOutcome, TargetImage};
