//! The end of a build: the target stage as an image in the store ([`image`]), the extra
//! `--output`s ([`outputs`]), the build record `kiln report` shows ([`record`]), and keeping the build cache under its size limit ([`prune`]).

pub(crate) mod cache_export;
pub(crate) mod cache_records;
pub(crate) mod image;
pub(crate) mod outputs;
pub(crate) mod platforms;
pub(crate) mod prune;
pub(crate) mod record;
pub(crate) mod squash;
