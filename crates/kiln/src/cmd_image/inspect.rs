//! `kiln inspect` / `kiln image inspect` (docker's image JSON) and `kiln history`.

use std::io::Write;

use kiln_image::ImageRef;
use kiln_store::{ImageRecord, Store};
use serde::Serialize;
use serde_json::{Value, json};

use super::render::{Format, ellipsis, go_json_pretty, human_size, since, truncate_id};
use super::{HistoryArgs, InspectArgs, Reported, message};

/// docker's `container.Config` as `docker image inspect` shows it (field order kept).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerConfig {
    hostname: String,
    domainname: String,
    user: String,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    exposed_ports: Option<Value>,
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    env: Value,
    cmd: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args_escaped: Option<bool>,
    image: String,
    volumes: Value,
    working_dir: String,
    entrypoint: Value,
    on_build: Value,
    labels: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shell: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InspectImage {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: String,
    comment: String,
    created: String,
    docker_version: String,
    author: String,
    config: DockerConfig,
    architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    os: String,
    size: u64,
    #[serde(rename = "RootFS")]
    root_fs: RootFs,
    metadata: Metadata,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RootFs {
    #[serde(rename = "Type")]
    kind: String,
    layers: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    last_tag_time: String,
}

fn familiar(full: &str) -> String {
    ImageRef::parse_named(full)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn some(v: &Value) -> Option<Value> {
    (!v.is_null()).then(|| v.clone())
}

fn inspect_value(store: &Store, img: &ImageRecord) -> anyhow::Result<Value> {
    let config = store.image_config(&img.id)?;
    let c = &config["config"];
    let doc = InspectImage {
        id: img.id.to_string(),
        repo_tags: img.tags.iter().map(|t| familiar(t)).collect(),
        repo_digests: Vec::new(),
        parent: img.parent.map(|p| p.to_string()).unwrap_or_default(),
        comment: str_of(&config["comment"]),
        created: config["created"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        docker_version: str_of(&config["docker_version"]),
        author: str_of(&config["author"]),
        config: DockerConfig {
            hostname: String::new(),
            domainname: String::new(),
            user: str_of(&c["User"]),
            attach_stdin: false,
            attach_stdout: false,
            attach_stderr: false,
            exposed_ports: some(&c["ExposedPorts"]),
            tty: false,
            open_stdin: false,
            stdin_once: false,
            env: c["Env"].clone(),
            cmd: c["Cmd"].clone(),
            healthcheck: some(&c["Healthcheck"]),
            args_escaped: c["ArgsEscaped"].as_bool(),
            image: String::new(),
            volumes: c["Volumes"].clone(),
            working_dir: str_of(&c["WorkingDir"]),
            entrypoint: c["Entrypoint"].clone(),
            on_build: c["OnBuild"].clone(),
            labels: c["Labels"].clone(),
            stop_signal: c["StopSignal"].as_str().map(str::to_string),
            shell: some(&c["Shell"]),
        },
        architecture: img.architecture.clone(),
        variant: config["variant"].as_str().map(str::to_string),
        os: img.os.clone(),
        size: img.size,
        root_fs: RootFs {
            kind: "layers".into(),
            layers: config["rootfs"]["diff_ids"]
                .as_array()
                .map(|a| a.iter().map(str_of).collect())
                .unwrap_or_default(),
        },
        metadata: Metadata {
            last_tag_time: img
                .last_tagged
                .map(kiln_store::timestamp::format_rfc3339)
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        },
    };
    Ok(serde_json::to_value(doc)?)
}

pub(crate) fn inspect(store: &Store, a: InspectArgs) -> anyhow::Result<()> {
    let mut docs = Vec::new();
    let mut failed = Vec::new();
    for name in &a.images {
        match store
            .resolve_image(name)
            .map_err(anyhow::Error::from)
            .and_then(|img| inspect_value(store, &img))
        {
            Ok(v) => docs.push(v),
            Err(e) => failed.push(message(&e)),
        }
    }
    let mut out = std::io::stdout().lock();
    if a.format.is_empty() || a.format == "json" {
        writeln!(out, "{}", go_json_pretty(&Value::Array(docs)))?;
    } else {
        let format = Format::new(&a.format, "")?;
        out.write_all(format.render(&Value::Null, &docs)?.as_bytes())?;
    }
    drop(out);
    for f in &failed {
        eprintln!("Error: {f}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Reported.into())
    }
}

pub(crate) fn history(store: &Store, a: HistoryArgs) -> anyhow::Result<()> {
    let img = store.resolve_image(&a.image)?;
    let config = store.image_config(&img.id)?;
    let layers = store.layers(&img.id)?;
    let mut entries: Vec<Value> = config["history"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        // No history recorded: one anonymous entry per layer, as docker shows them.
        entries = layers.iter().map(|_| json!({})).collect();
    }
    let mut layer_sizes = layers.iter().map(|l| l.uncompressed_size);
    let mut rows_oldest_first = Vec::new();
    for h in &entries {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        let size = if empty {
            0
        } else {
            layer_sizes.next().unwrap_or(0)
        };
        let created = h["created"]
            .as_str()
            .and_then(kiln_store::timestamp::parse_rfc3339)
            .unwrap_or(0);
        let created_by = str_of(&h["created_by"]).replace('\t', " ");
        rows_oldest_first.push((created, created_by, size, str_of(&h["comment"])));
    }
    let mut rows = Vec::new();
    for (i, (created, created_by, size, comment)) in rows_oldest_first.into_iter().rev().enumerate()
    {
        let id = if i == 0 {
            if a.no_trunc {
                img.id.to_string()
            } else {
                truncate_id(&img.id.to_string())
            }
        } else {
            "<missing>".to_string()
        };
        let created_at = kiln_store::timestamp::format_rfc3339(created);
        rows.push(json!({
            "ID": id,
            "CreatedSince": if a.human { since(created) } else { created_at.clone() },
            "CreatedAt": created_at,
            "CreatedBy": if a.no_trunc { created_by } else { ellipsis(&created_by, 45) },
            "Size": if a.human { human_size(size) } else { size.to_string() },
            "Comment": comment,
        }));
    }
    let default = if a.human {
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    } else {
        "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    };
    let source = if a.quiet && a.format.is_empty() {
        "{{.ID}}"
    } else {
        a.format.as_str()
    };
    let format = Format::new(source, default)?;
    let header = json!({
        "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT",
    });
    std::io::stdout()
        .lock()
        .write_all(format.render(&header, &rows)?.as_bytes())?;
    Ok(())
}
