//! kiln-dockerfile: Dockerfile text → typed stages. No I/O.

pub mod dockerignore;
pub mod expand;
