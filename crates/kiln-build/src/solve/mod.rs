//! Solving the plan: [`engine`] drives one build (open inputs, plan, schedule, export), the
//! [`dag`] scheduler runs steps in dependency order on a thread pool, and [`explain`] records
//! why a step's cache key changed since the last build.

pub mod dag;
pub(crate) mod engine;
pub(crate) mod explain;
pub(crate) mod key_inputs;

pub use dag::{DagError, run_dag};
