//! Base images as snapshot chains: each layer is unpacked once (safely, by kiln-snapshot) into
//! a diff directory keyed by its chain id, and reused by every build and container after.

use kiln_snapshot::{ExtractOptions, extract_layer};
use kiln_store::{Digest, LayerRecord, Lease, Store, chain_ids};

use crate::error::{BuildError, Result};
use crate::rootfs::LayerRef;

pub use kiln_store::layer_snapshot_key;

/// The image's layers (`layers`, as `lease` holds them) as snapshots, bottom first.
pub fn image_chain(
    store: &Store,
    lease: &Lease,
    id: &str,
    layers: &[LayerRecord],
) -> Result<Vec<LayerRef>> {
    image_chain_with(store, lease, id, layers, &|| {})
}

/// [`image_chain`], calling `before_unpack` before the first layer it has to unpack (the
/// build's scheduler starts another worker then).
pub(crate) fn image_chain_with(
    store: &Store,
    lease: &Lease,
    id: &str,
    layers: &[LayerRecord],
    before_unpack: &dyn Fn(),
) -> Result<Vec<LayerRef>> {
    let id = Digest::parse(id).map_err(|source| BuildError::ImageId {
        id: id.to_string(),
        source,
    })?;
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id).collect();
    let chains = chain_ids(&diff_ids);
    let mut out = Vec::with_capacity(layers.len());
    let mut parent: Option<String> = None;
    for (layer, chain) in layers.iter().zip(chains) {
        let key = layer_snapshot_key(&chain);
        let info = match lease.use_snapshot(&key)? {
            Some(info) => info,
            None => {
                before_unpack();
                let dir = store.prepare_snapshot_dir()?;
                let blob = store.open_blob(&layer.blob)?;
                let r = extract_layer(
                    std::io::BufReader::with_capacity(1 << 20, blob),
                    &dir,
                    &ExtractOptions::default(),
                );
                let stats = match r {
                    Ok(stats) => stats,
                    Err(source) => {
                        let _ = kiln_snapshot::remove_dir_all(&dir);
                        return Err(BuildError::Unpack {
                            blob: layer.blob.to_string(),
                            image: id.to_string(),
                            source: Box::new(source),
                        });
                    }
                };
                warn_rootless_losses(&layer.blob.to_string(), &stats);
                store.commit_snapshot(lease, &key, parent.as_deref(), &dir)?
            }
        };
        out.push(LayerRef {
            snapshot: key.clone(),
            dir: info.path,
            blob: Some(layer.clone()),
        });
        parent = Some(key);
    }
    Ok(out)
}

/// Rootless extraction leaves out what a user namespace cannot make (docs/rootless.md): say so
/// once per layer, on stderr. Written to fd 2 directly: a build's progress view holds the
/// `std::io::stderr()` lock while it runs, so `eprintln!` from here would wait for it forever.
fn warn_rootless_losses(blob: &str, stats: &kiln_snapshot::ExtractStats) {
    let warn = |line: String| {
        let line = format!("{line}\n");
        // SAFETY: writing a valid buffer to fd 2; a short or failed write only loses the warning.
        unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    };
    let short = blob.strip_prefix("sha256:").unwrap_or(blob);
    let short = &short[..short.len().min(12)];
    if stats.devices_skipped > 0 {
        warn(format!(
            "kiln: warning: layer {short}: {} device node(s) not created: a rootless user namespace cannot make device nodes (the image's layer keeps them)",
            stats.devices_skipped
        ));
    }
    if stats.xattrs_skipped > 0 {
        warn(format!(
            "kiln: warning: layer {short}: {} trusted.* extended attribute(s) not set: rootless kiln cannot set them (the image's layer keeps them)",
            stats.xattrs_skipped
        ));
    }
}
