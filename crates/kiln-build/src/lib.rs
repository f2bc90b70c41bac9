//! kiln-build: plan → graph → solve → export.

pub mod context;
pub mod copy;
