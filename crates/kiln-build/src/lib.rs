//! kiln-build: plan → graph → solve → export.
//!
//! ```text
//! row 4   kiln (bin)
//! row 3   kiln-build        plan · solve · export · events
//! row 1   kiln-store   kiln-snapshot   kiln-runtime
//! row 0   kiln-dockerfile   kiln-image
//! ```
//!
//! [`build`] runs one build: parse the Dockerfile, [`plan::plan`] the steps the target needs,
//! run them with [`solve::run_dag`] (each step: cache key → cache hit, or execute on an overlay
//! of its parent's layers), and export the target stage into the store.

mod cachekey;
pub mod config;
pub mod context;
mod context_glue;
pub mod copy;
mod copy_glue;
mod display;
mod engine;
pub mod error;
pub mod event;
mod execute;
mod explain;
mod export;
mod history;
mod key;
pub mod namespace;
pub mod options;
pub mod outfile;
mod outputs;
pub mod plan;
mod prune;
mod rootfs;
mod run;
pub mod signals;
pub mod solve;
mod ssh;
mod stage_files;
mod state;
pub mod stepname;
mod unpack;
mod values;

pub use engine::build;
pub use error::{BuildError, Result};
pub use kiln_store::{BuildCachePrune, BuildCachePruneReport};
pub use prune::prune_cache;
pub use state::BuildOutcome;
