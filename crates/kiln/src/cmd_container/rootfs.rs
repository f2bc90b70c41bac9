//! A container's root file system: an overlay of its image's layers (unpacked once into
//! snapshots keyed `layer:<chain id>`, shared with builds) below its own writable layer
//! `containers/<id>/upper`, which lives as long as the container (not volatile: it survives a
//! crash as the container's state). The mount is kiln-snapshot's [`Snapshotter`], the same
//! lifecycle builds use, prepared in directories the container keeps
//! ([`Snapshotter::prepare_in`]).

use std::path::PathBuf;

use anyhow::Context;
use kiln_snapshot::{
    ActiveSnapshot, DirTemp, ExtractOptions, KeptDirs, OverlayOptions, Snapshotter, extract_layer,
};
use kiln_store::{Digest, Lease, Store, chain_ids};

/// Snapshot key of the layer whose chain id is `chain` (the key kiln-build's unpacking uses).
fn layer_snapshot_key(chain: &Digest) -> String {
    format!("layer:{chain}")
}

/// The image's layers as snapshots, bottom first: (key, directory). Layers not unpacked yet
/// are unpacked now. The lease protects them until the container's row references them.
pub fn image_layers(
    store: &Store,
    image: &Digest,
) -> anyhow::Result<(Lease, Vec<(String, PathBuf)>)> {
    let lease = store.lease()?;
    let (_, layers) = lease
        .use_image(image)?
        .ok_or_else(|| anyhow::anyhow!("No such image: {image}"))?;
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id).collect();
    let mut out = Vec::with_capacity(layers.len());
    let mut parent: Option<String> = None;
    for (layer, chain) in layers.iter().zip(chain_ids(&diff_ids)) {
        let key = layer_snapshot_key(&chain);
        let info = match lease.use_snapshot(&key)? {
            Some(info) => info,
            None => {
                let dir = store.prepare_snapshot_dir()?;
                let blob = store.open_blob(&layer.blob)?;
                if let Err(e) = extract_layer(
                    std::io::BufReader::with_capacity(1 << 20, blob),
                    &dir,
                    &ExtractOptions::default(),
                ) {
                    let _ = kiln_snapshot::remove_dir_all(&dir);
                    anyhow::bail!("unpacking layer {} of image {image}: {e}", layer.blob);
                }
                store.commit_snapshot(&lease, &key, parent.as_deref(), &dir)?
            }
        };
        out.push((key.clone(), info.path));
        parent = Some(key);
    }
    Ok((lease, out))
}

/// Mounts container `id`'s root at `containers/<id>/rootfs`: the image's layers (`lowers`,
/// bottom first) under `containers/<id>/upper`. Call in the supervisor's private mount
/// namespace; the mount goes when it is dropped or the namespace dies.
pub fn mount_rootfs(
    store: &Store,
    id: &str,
    lowers: &[PathBuf],
) -> anyhow::Result<(ActiveSnapshot, PathBuf)> {
    let dir = store.container_dir(id);
    let (upper, work, target) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
    for d in [&upper, &work, &target] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let top_first: Vec<PathBuf> = lowers.iter().rev().cloned().collect();
    let snapshotter = Snapshotter::new(DirTemp::new(&dir)?);
    let kept = KeptDirs {
        upper: &upper,
        work: &work,
        rootfs: &target,
    };
    // Not volatile: the upper is the container's state and must survive a crash.
    let active = snapshotter
        .prepare_in(&top_first, &kept, &OverlayOptions { volatile: false })
        .with_context(|| format!("mounting the root file system of container {id}"))?;
    Ok((active, target))
}
