//! Solving the plan: [`engine`] drives one build (open inputs, plan, schedule, export), the
//! [`dag`] scheduler runs steps in dependency order on a thread pool, and [`explain`] records
//! why a step's cache key changed since the last build.
//! [`exec_ctx`] gives exec the parts of the build a step reads.

pub mod dag;
pub(crate) mod engine;
mod exec_ctx;
pub(crate) mod explain;
pub(crate) mod key_inputs;
pub(crate) mod remote_cache;

pub use dag::{DagError, run_dag};
