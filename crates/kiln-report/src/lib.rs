//! kiln-report: what an image ships and how two images differ, computed from the layers in the
//! store — `kiln report` and `kiln diff`.
//!
//! A layer blob is read once, ever ([`image::load_images`]): one streaming pass indexes its
//! entries (metadata, content sha256, whiteouts), and the index is kept in the store
//! ([`stored`]) for the next report or diff. Everything else is a pure function of
//! those indexes: [`merge`] applies them in order as unpacking does, [`diff`] compares two
//! final filesystems and configs, [`report`] sizes, leftovers, wasted and duplicated bytes,
//! [`html`] (with [`graph`], the stage graph) and [`text`] render.

#![warn(missing_docs)]

pub mod diff;
mod error;
pub mod graph;
pub mod html;
pub mod image;
pub mod layer;
pub mod leftovers;
mod markup;
pub mod merge;
pub mod origin;
pub mod report;
pub mod stored;
pub mod text;
pub mod tree;
pub mod units;

pub use error::{Error, Result};
pub use image::{LoadedImage, load_images};
