//! kiln-snapshot: layer directories, overlayfs mounts, and the two directions between a
//! directory and a layer tar.
//!
//! Every layer is a directory holding that layer's diff *in overlayfs form*: deletions are
//! 0:0 character devices, replaced directories carry `trusted.overlay.opaque=y`
//! (`user.overlay.opaque=y` in a user namespace, where overlay is mounted with `userxattr`;
//! export reads both, so the tar is the same). A list of
//! layer directories is therefore directly usable as overlay lower directories, and the
//! upper directory of a RUN step *is* its diff (as in containerd's overlay snapshotter).
//!
//! - [`extract_layer`] / [`apply_layer`]: layer tar → diff directory / merged rootfs, safely.
//! - [`write_layer_tar`] / [`export_layer`]: diff directory → normalized layer tar → blob,
//!   with diff-id and digest computed in the same pass.
//! - [`check_layer_tar`]: the extraction's rules on a layer tar, writing nothing (pull
//!   refuses a layer that would not extract before storing it).
//! - [`mount_overlay`] / [`mount_readonly`]: overlay mounts with the new mount API.
//! - [`Snapshotter`]: the one lifecycle of a mounted snapshot — `prepare(lowers)` → a writable
//!   [`ActiveSnapshot`] (its upper is the diff), `view(lowers)` → a read-only [`View`],
//!   `commit` → the upper as a [`Diff`], drop → unmounted and removed. Build steps and
//!   (later) `kiln run` containers use it.
//!
//! It does not know the store or Dockerfiles: its caller gives it the layer directories and
//! fresh directories ([`TempDirs`]); kiln-build links snapshots to the store.

mod compression;
mod digest;
mod error;
mod export;
mod extract;
mod overlay;
mod remove;
mod snapshotter;
mod usage;
mod xattr;

pub use overlay::{OverlayMount, OverlayOptions, mount_overlay, mount_readonly};
pub use snapshotter::{ActiveSnapshot, Diff, DirTemp, KeptDirs, Snapshotter, TempDirs, View};

pub use compression::decompress;
pub use error::{EntryError, Error, Result};
pub use export::{
    CompressedBlob, ExportOptions, LayerDescriptorInfo, LayerStats, TarOptions, compress_tar,
    export_layer, write_layer_tar,
};
pub use extract::{
    CheckStats, ExtractOptions, ExtractStats, apply_layer, check_layer_tar, extract_layer,
    extract_layer_tar,
};
pub use kiln_image::{Compression, Digest};

pub use remove::remove_dir_all;

pub use usage::{DirUsage, dir_size};
pub use xattr::{
    OPAQUE_FUSE_XATTR, OPAQUE_USER_XATTR, OPAQUE_XATTR, in_user_namespace, opaque_xattr,
};
