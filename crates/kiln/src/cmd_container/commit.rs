//! `commit`: a new image from a container's changes, as docker's `commit`. The container's
//! writable layer (`containers/<id>/upper`, an overlay diff) becomes one layer tar
//! (kiln-snapshot's writer turns whiteouts and opaque directories into `.wh.` entries) on top
//! of its image's layers; the config is the image's with the container's Cmd, Entrypoint,
//! Env, WorkingDir, User, ExposedPorts and Labels, then the `-c` changes
//! (`commit_changes.rs`), a history entry, `-a` and `-m`. A running
//! container is paused (frozen) while its layer is read, unless `--pause=false`.

use std::io::Write;

use anyhow::{Context, bail};
use clap::Args;
use kiln_store::{LayerRecord, NewImage, Store};
use serde_json::{Value, json};

use super::config::ContainerConfig;

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long, value_name = "string")]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long, value_name = "list")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short, long, value_name = "string")]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, value_name = "bool", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub pause: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A change docker's daemon refuses: printed as docker prints it; exit 1.
fn daemon_error(msg: String) -> anyhow::Error {
    eprintln!("Error response from daemon: {msg}");
    crate::cmd_image::Reported.into()
}

pub fn commit(store: &Store, a: CommitArgs) -> anyhow::Result<()> {
    let c = store.find_container(&a.container)?;
    let tags: Vec<String> = match &a.repository {
        Some(r) => {
            if r.contains('@') {
                bail!("refusing to create a tag with a digest reference");
            }
            vec![
                kiln_image::ImageRef::parse(r)
                    .map_err(|e| anyhow::anyhow!("invalid reference format: {r}: {e}"))?
                    .to_string(),
            ]
        }
        None => Vec::new(),
    };
    // Bad changes fail before anything is written (docker's messages, exit 1).
    let changes = super::commit_changes::parse(&a.change).map_err(daemon_error)?;
    let cfg: ContainerConfig = serde_json::from_str(&c.config).unwrap_or_default();
    let mut config: Value = store.image_config(&c.image)?;
    {
        let ic = &mut config["config"];
        if !ic.is_object() {
            *ic = json!({});
        }
        ic["Cmd"] = json!(cfg.cmd);
        ic["Entrypoint"] = if cfg.entrypoint.is_empty() {
            Value::Null
        } else {
            json!(cfg.entrypoint)
        };
        ic["Env"] = json!(cfg.env);
        ic["WorkingDir"] = json!(cfg.working_dir);
        ic["User"] = json!(cfg.user);
        if !cfg.exposed_ports.is_empty() {
            ic["ExposedPorts"] = cfg
                .exposed_ports
                .iter()
                .map(|p| (p.clone(), json!({})))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        if !cfg.labels.is_empty() {
            ic["Labels"] = json!(cfg.labels);
        }
        super::commit_changes::apply(&changes, ic).map_err(daemon_error)?;
    }
    let base_layers = store.layers(&c.image)?;
    let lease = store.lease()?;
    // Freeze a running container so its layer is read at one point in time.
    let frozen = a.pause
        && c.state == kiln_store::ContainerState::Running
        && super::cgroup::freeze(&store.container_dir(&c.id), &c.id, true).is_ok();
    let layer = (|| -> anyhow::Result<LayerRecord> {
        let upper = store.container_dir(&c.id).join("upper");
        let mut w = store.blob_writer()?;
        kiln_snapshot::write_layer_tar(&upper, &mut w, &kiln_snapshot::TarOptions::default())
            .with_context(|| format!("writing the layer of container {}", c.id))?;
        w.flush()?;
        let size = w.len();
        let info = w.finish()?.commit(&lease, None)?;
        Ok(LayerRecord {
            blob: info.digest,
            diff_id: info.digest,
            media_type: OCI_LAYER.into(),
            compressed_size: size,
            uncompressed_size: size,
        })
    })();
    if frozen {
        let _ = super::cgroup::freeze(&store.container_dir(&c.id), &c.id, false);
    }
    let layer = layer?;
    let now = crate::cmd_image::render::now();
    let created = kiln_store::timestamp::format_rfc3339(now);
    config["created"] = json!(created);
    if let Some(au) = &a.author {
        config["author"] = json!(au);
    }
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array_mut()
        .context("the image config has no rootfs.diff_ids")?;
    diff_ids.push(json!(layer.diff_id.to_string()));
    let mut entry = json!({"created": created, "created_by": cfg.argv().join(" ")});
    if let Some(au) = &a.author {
        entry["author"] = json!(au);
    }
    if let Some(m) = &a.message {
        entry["comment"] = json!(m);
    }
    match config["history"].as_array_mut() {
        Some(h) => h.push(entry),
        None => config["history"] = json!([entry]),
    }
    let config_bytes = serde_json::to_vec(&config)?;
    let cfg_blob = store.put_blob(&lease, &config_bytes, None)?;
    let mut layers = base_layers;
    layers.push(layer);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cfg_blob.digest.to_string(), "size": cfg_blob.size},
        "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.blob.to_string(), "size": l.compressed_size})).collect::<Vec<_>>(),
    });
    let man_blob = store.put_blob(&lease, &serde_json::to_vec(&manifest)?, None)?;
    let new = NewImage {
        manifest_digest: man_blob.digest,
        manifest_media_type: OCI_MANIFEST.into(),
        config_digest: cfg_blob.digest,
        layers,
        created: Some(now),
        architecture: config["architecture"].as_str().unwrap_or("amd64").into(),
        os: config["os"].as_str().unwrap_or("linux").into(),
        parent: Some(c.image),
    };
    store.record_image(&new, &tags)?;
    drop(lease);
    println!("{}", cfg_blob.digest);
    Ok(())
}
