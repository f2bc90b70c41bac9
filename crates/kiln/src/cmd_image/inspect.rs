//! `kiln inspect` / `kiln image inspect` (docker's image JSON) and `kiln history`.

use std::io::Write;

use kiln_image::ImageRef;
use kiln_store::{ImageRecord, Store};
use serde::Serialize;
use serde_json::{Value, json};

use super::gotemplate;
use super::render::{Format, ellipsis, go_json_pretty_of, human_size, since, truncate_id};
use super::{HistoryArgs, InspectArgs, InspectType, Reported, message};

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

/// docker's `ImageInspect`, fields in docker's order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InspectImage {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: String,
    comment: String,
    created: String,
    /// The build container (none: kiln, like BuildKit, commits without one).
    container: String,
    container_config: DockerConfig,
    docker_version: String,
    author: String,
    config: DockerConfig,
    architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    os: String,
    /// docker's size: the unpacked files of every layer.
    size: u64,
    /// The same figure (docker 20.10 still reports it).
    virtual_size: u64,
    graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    root_fs: RootFs,
    metadata: Metadata,
    /// A multi-platform image (an index): one entry per platform (docker 28's `Manifests`).
    #[serde(skip_serializing_if = "Option::is_none")]
    manifests: Option<Vec<ManifestSummary>>,
}

/// One platform of a multi-platform image, as docker 28's `ImageInspect.Manifests` shows it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestSummary {
    /// The platform's image ID (its config digest).
    #[serde(rename = "ID")]
    id: String,
    descriptor: Value,
    available: bool,
    size: Value,
    kind: String,
    image_data: Value,
}

/// Where the image's layers are unpacked: kiln's snapshot directories, as overlay lower
/// directories (top first), when every layer has one; `Data` is null otherwise.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GraphDriver {
    data: Option<Value>,
    name: String,
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

/// The build container's config, empty as BuildKit leaves it.
fn empty_config() -> DockerConfig {
    DockerConfig {
        hostname: String::new(),
        domainname: String::new(),
        user: String::new(),
        attach_stdin: false,
        attach_stdout: false,
        attach_stderr: false,
        exposed_ports: None,
        tty: false,
        open_stdin: false,
        stdin_once: false,
        env: Value::Null,
        cmd: Value::Null,
        healthcheck: None,
        args_escaped: None,
        image: String::new(),
        volumes: Value::Null,
        working_dir: String::new(),
        entrypoint: Value::Null,
        on_build: Value::Null,
        labels: Value::Null,
        stop_signal: None,
        shell: None,
    }
}

fn graph_driver(store: &Store, img: &ImageRecord) -> anyhow::Result<GraphDriver> {
    let layers = store.layers(&img.id)?;
    let diff_ids: Vec<_> = layers.iter().map(|l| l.diff_id).collect();
    let mut dirs = Vec::new();
    for chain in kiln_store::chain_ids(&diff_ids).iter().rev() {
        match store.snapshot(&format!("layer:{chain}"))? {
            Some(s) => dirs.push(s.path.display().to_string()),
            None => {
                dirs.clear();
                break;
            }
        }
    }
    let data = (!dirs.is_empty()).then(|| json!({"LowerDir": dirs.join(":")}));
    Ok(GraphDriver {
        data,
        name: "overlay".into(),
    })
}

/// docker's image `Comment`: the config's, else the last history entry's (what BuildKit's
/// images carry: `buildkit.dockerfile.v0`).
fn comment(config: &Value) -> String {
    let own = str_of(&config["comment"]);
    if !own.is_empty() {
        return own;
    }
    config["history"]
        .as_array()
        .and_then(|h| h.last())
        .map(|e| str_of(&e["comment"]))
        .unwrap_or_default()
}

/// The repository digests that name index `ix` (`NAME@<index digest>`, full form, sorted):
/// push and pull keep them on the index's images.
pub(crate) fn index_repo_digests(
    store: &Store,
    ix: &kiln_store::IndexRecord,
) -> anyhow::Result<Vec<String>> {
    let suffix = format!("@{}", ix.digest);
    let mut out = Vec::new();
    for e in &ix.entries {
        for d in store.repo_digests(&e.image.id)? {
            if d.ends_with(&suffix) && !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The inspect document of `name`: an image, or of a multi-platform image the entry for
/// `platform` (default: the host's, else the first) with the index's digest as `Id`, its
/// tags, and `Manifests`.
fn inspect_named(
    store: &Store,
    name: &str,
    platform: Option<&kiln_image::Platform>,
) -> anyhow::Result<InspectImage> {
    let index = store.resolve_index(name)?;
    let img = match platform {
        Some(p) => store.resolve_platform(name, p)?,
        None => match &index {
            Some(ix) => ix
                .default_entry()
                .map(|e| e.image.clone())
                .ok_or_else(|| anyhow::anyhow!("image index {} lists no image", ix.digest))?,
            None => store.resolve_image(name)?,
        },
    };
    let mut doc = inspect_doc(store, &img)?;
    if let Some(ix) = index {
        doc.id = ix.digest.to_string();
        doc.repo_tags = ix.tags.iter().map(|t| familiar(t)).collect();
        doc.repo_digests = index_repo_digests(store, &ix)?
            .iter()
            .map(|d| familiar(d))
            .collect();
        if let Some(t) = ix.last_tagged {
            doc.metadata.last_tag_time = kiln_store::timestamp::format_rfc3339(t);
        }
        let mut manifests = Vec::new();
        for e in &ix.entries {
            let m = &e.image;
            let manifest_size = store.blob_size(&m.manifest_digest)?;
            let content: u64 = store
                .layers(&m.id)?
                .iter()
                .map(|l| l.compressed_size)
                .sum::<u64>()
                + manifest_size
                + store.blob_size(&m.id)?;
            let mut platform =
                json!({"architecture": e.platform.architecture, "os": e.platform.os});
            if let Some(v) = &e.platform.variant {
                platform["variant"] = json!(v);
            }
            manifests.push(ManifestSummary {
                id: m.id.to_string(),
                descriptor: json!({
                    "mediaType": m.manifest_media_type,
                    "digest": m.manifest_digest.to_string(),
                    "size": manifest_size,
                    "platform": platform,
                }),
                available: true,
                size: json!({"Total": content, "Content": content}),
                kind: "image".into(),
                image_data: json!({
                    "Platform": platform,
                    "Containers": [],
                    "Size": {"Unpacked": store.image_size(&m.id)?},
                }),
            });
        }
        doc.manifests = Some(manifests);
    }
    Ok(doc)
}

fn inspect_doc(store: &Store, img: &ImageRecord) -> anyhow::Result<InspectImage> {
    let config = store.image_config(&img.id)?;
    let c = &config["config"];
    let size = store.image_size(&img.id)?;
    Ok(InspectImage {
        id: img.id.to_string(),
        repo_tags: img.tags.iter().map(|t| familiar(t)).collect(),
        repo_digests: store
            .repo_digests(&img.id)?
            .iter()
            .map(|d| familiar(d))
            .collect(),
        parent: img.parent.map(|p| p.to_string()).unwrap_or_default(),
        comment: comment(&config),
        created: config["created"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        container: str_of(&config["container"]),
        container_config: empty_config(),
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
        size,
        virtual_size: size,
        graph_driver: graph_driver(store, img)?,
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
        manifests: None,
    })
}

/// One document of `kiln inspect`, in the order the names were given.
#[derive(Serialize)]
#[serde(untagged)]
enum Object {
    Container(Box<crate::cmd_container::ContainerDoc>),
    Image(Box<InspectImage>),
}

pub(crate) fn inspect(store: &Store, a: InspectArgs) -> anyhow::Result<()> {
    if a.kind == Some(InspectType::Container)
        || (a.kind.is_none() && a.images.iter().all(|n| store.find_container(n).is_ok()))
    {
        return inspect_containers(store, &a);
    }
    let mut docs = Vec::new();
    let mut failed = Vec::new();
    for name in &a.images {
        // Without --type, docker looks for a container first, then an image, per name.
        if a.kind.is_none()
            && let Some(d) = crate::cmd_container::container_doc(store, name, a.size)
        {
            docs.push(Object::Container(Box::new(d)));
            continue;
        }
        match inspect_named(store, name, a.platform.as_ref()) {
            Ok(v) => docs.push(Object::Image(Box::new(v))),
            // Without --type, docker looks for any object.
            Err(e)
                if a.kind.is_none()
                    && matches!(
                        e.downcast_ref::<kiln_store::Error>(),
                        Some(kiln_store::Error::ImageNotFound(_))
                    ) =>
            {
                failed.push(format!("No such object: {name}"))
            }
            Err(e) => failed.push(message(&e)),
        }
    }
    let mut out = std::io::stdout().lock();
    if a.format.is_empty() || a.format == "json" {
        // Serialized from the structs, so the keys keep docker's order.
        writeln!(out, "{}", go_json_pretty_of(&docs)?)?;
    } else {
        let format = crate::cmd_image::render::inspect_format(&a.format)?;
        let values: Vec<Value> = docs
            .iter()
            .map(|d| match d {
                Object::Image(i) => serde_json::to_value(i).map(typed_maps),
                Object::Container(c) => serde_json::to_value(c).map(|mut v| {
                    gotemplate::go_typed_nils(&mut v);
                    v
                }),
            })
            .collect::<Result<_, _>>()?;
        out.write_all(crate::cmd_image::render::inspect_render(&format, &values)?.as_bytes())?;
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

/// In docker's Go structs these fields are maps: a template prints a missing one as an
/// empty map (`map[]`), not `<no value>`, while `json` still prints `null`.
fn typed_maps(mut v: Value) -> Value {
    gotemplate::go_typed_nils(&mut v);
    for section in ["Config", "ContainerConfig"] {
        for key in ["Labels", "Volumes", "ExposedPorts"] {
            if let Some(m) = v[section].as_object_mut() {
                let e = m.entry(key).or_insert(Value::Null);
                if e.is_null() {
                    *e = gotemplate::nil_map();
                }
            }
        }
    }
    // docker's `Variant` is a string field (omitted from JSON when empty).
    if let Some(m) = v.as_object_mut() {
        m.entry("Variant").or_insert_with(|| json!(""));
    }
    if v["GraphDriver"]["Data"].is_null() {
        v["GraphDriver"]["Data"] = gotemplate::nil_map();
    }
    v
}

/// `inspect --type container`, or names that are all containers (docker looks for containers
/// before images).
fn inspect_containers(store: &Store, a: &InspectArgs) -> anyhow::Result<()> {
    crate::cmd_container::inspect_containers(
        store,
        &a.format,
        a.size,
        &a.images,
        a.kind == Some(InspectType::Container),
    )
}

/// docker's "No such image" names the reference it looked for, tag included.
pub(crate) fn resolve_named(store: &Store, name: &str) -> anyhow::Result<ImageRecord> {
    store.resolve_image(name).map_err(|e| match e {
        kiln_store::Error::ImageNotFound(_) => match ImageRef::parse_named(name) {
            Ok(r) if r.tag().is_none() && r.digest().is_none() => {
                anyhow::anyhow!("No such image: {name}:latest")
            }
            _ => anyhow::anyhow!("No such image: {name}"),
        },
        other => other.into(),
    })
}

pub(crate) fn history(store: &Store, a: HistoryArgs) -> anyhow::Result<()> {
    let img = resolve_named(store, &a.image)?;
    let config = store.image_config(&img.id)?;
    let layers = store.layer_sizes(&img.id)?;
    let mut entries: Vec<Value> = config["history"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        // No history recorded: one anonymous entry per layer, as docker shows them.
        entries = layers.iter().map(|_| json!({})).collect();
    }
    let mut layer_sizes = layers.iter().copied();
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
