//! Two images compared: files added, removed and changed in their final filesystems, and the
//! config fields that differ.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::image::LoadedImage;
use crate::layer::{Kind, Meta};
use crate::merge::Merged;
use crate::units::human;

/// What differs about one changed path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    /// File type.
    Type,
    /// Content length.
    Size,
    /// Permission bits.
    Mode,
    /// uid:gid.
    Owner,
    /// Same length, other bytes.
    Content,
    /// Symlink target.
    Link,
}

/// One path that differs.
#[derive(Clone, Debug, Serialize)]
pub struct FileDiff {
    /// `A`, `D` or `C`.
    pub change: char,
    /// The path.
    pub path: String,
    /// In the first image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Meta>,
    /// In the second image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Meta>,
    /// For `C`: what changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
}

/// One config difference.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigDiff {
    /// The config field (`Env`, `User`...).
    pub field: String,
    /// For lists and maps: the item's key (`PATH` of `Env`, `80/tcp` of `ExposedPorts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Before (`null` when absent).
    pub old: Value,
    /// After (`null` when absent).
    pub new: Value,
}

/// Counts and bytes of a diff (`--stat`).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Stat {
    /// Paths added.
    pub added: u64,
    /// Bytes of the files added.
    pub added_bytes: u64,
    /// Paths removed.
    pub removed: u64,
    /// Bytes of the files removed.
    pub removed_bytes: u64,
    /// Paths changed.
    pub changed: u64,
    /// Bytes of the changed files in the first image.
    pub changed_old_bytes: u64,
    /// Bytes of the changed files in the second image.
    pub changed_new_bytes: u64,
    /// Config differences.
    pub config: u64,
}

/// The whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct ImageDiff {
    /// First image as named, and its ID.
    pub from: (String, String),
    /// Second image as named, and its ID.
    pub to: (String, String),
    /// Paths that differ, sorted.
    pub files: Vec<FileDiff>,
    /// Config fields that differ, in field order.
    pub config: Vec<ConfigDiff>,
    /// Totals.
    pub stat: Stat,
}

impl ImageDiff {
    /// Whether the images differ at all.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.config.is_empty()
    }
}

fn fields_of(a: &Meta, b: &Meta) -> Vec<Field> {
    let mut f = Vec::new();
    if a.kind != b.kind {
        f.push(Field::Type);
    }
    if a.kind == Kind::File && b.kind == Kind::File {
        if a.size != b.size {
            f.push(Field::Size);
        } else if a.digest != b.digest {
            f.push(Field::Content);
        }
    }
    if a.mode != b.mode {
        f.push(Field::Mode);
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        f.push(Field::Owner);
    }
    if a.kind == Kind::Symlink && b.kind == Kind::Symlink && a.link != b.link {
        f.push(Field::Link);
    }
    f
}

/// Compares two final filesystems.
pub fn diff_files(a: &Merged, b: &Merged) -> Vec<FileDiff> {
    let mut out = Vec::new();
    let mut ia = a.files.iter().peekable();
    let mut ib = b.files.iter().peekable();
    loop {
        let ord = match (ia.peek(), ib.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        match ord {
            std::cmp::Ordering::Less => {
                let (p, n) = ia.next().expect("peeked");
                out.push(FileDiff {
                    change: 'D',
                    path: p.clone(),
                    old: Some(n.meta.clone()),
                    new: None,
                    fields: Vec::new(),
                });
            }
            std::cmp::Ordering::Greater => {
                let (p, n) = ib.next().expect("peeked");
                out.push(FileDiff {
                    change: 'A',
                    path: p.clone(),
                    old: None,
                    new: Some(n.meta.clone()),
                    fields: Vec::new(),
                });
            }
            std::cmp::Ordering::Equal => {
                let (p, na) = ia.next().expect("peeked");
                let (_, nb) = ib.next().expect("peeked");
                let fields = fields_of(&na.meta, &nb.meta);
                if !fields.is_empty() {
                    out.push(FileDiff {
                        change: 'C',
                        path: p.clone(),
                        old: Some(na.meta.clone()),
                        new: Some(nb.meta.clone()),
                        fields,
                    });
                }
            }
        }
    }
    out
}

/// Config fields compared, in this order.
pub const CONFIG_FIELDS: [&str; 9] = [
    "Env",
    "Entrypoint",
    "Cmd",
    "User",
    "WorkingDir",
    "ExposedPorts",
    "Labels",
    "Volumes",
    "StopSignal",
];

fn is_absent(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Items of a keyed field: `Env` by variable name, `Labels` by key, ports and volumes by name.
fn keyed(field: &str, v: &Value) -> Option<BTreeMap<String, Value>> {
    match field {
        "Env" => Some(
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str())
                        .map(|e| {
                            let k = e.split_once('=').map_or(e, |(k, _)| k);
                            (k.to_string(), Value::String(e.to_string()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        "Labels" | "ExposedPorts" | "Volumes" => Some(
            v.as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, val)| {
                            let shown = if field == "Labels" {
                                val.clone()
                            } else {
                                Value::String(k.clone())
                            };
                            (k.clone(), shown)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => None,
    }
}

/// Compares two configs (`config` objects of the image configs).
pub fn diff_config(a: &Value, b: &Value) -> Vec<ConfigDiff> {
    let mut out = Vec::new();
    for field in CONFIG_FIELDS {
        let va = a.get(field).unwrap_or(&Value::Null);
        let vb = b.get(field).unwrap_or(&Value::Null);
        if let (Some(ma), Some(mb)) = (keyed(field, va), keyed(field, vb)) {
            let keys: std::collections::BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
            for k in keys {
                let (x, y) = (ma.get(k), mb.get(k));
                if x != y {
                    out.push(ConfigDiff {
                        field: field.to_string(),
                        key: Some(k.clone()),
                        old: x.cloned().unwrap_or(Value::Null),
                        new: y.cloned().unwrap_or(Value::Null),
                    });
                }
            }
            continue;
        }
        if va != vb && !(is_absent(va) && is_absent(vb)) {
            out.push(ConfigDiff {
                field: field.to_string(),
                key: None,
                old: va.clone(),
                new: vb.clone(),
            });
        }
    }
    out
}

fn file_bytes(m: &Option<Meta>) -> u64 {
    m.as_ref().map_or(0, |m| m.own_bytes())
}

/// The whole comparison of two loaded images.
pub fn diff_images(a: &LoadedImage, b: &LoadedImage) -> ImageDiff {
    let files = diff_files(&a.merged, &b.merged);
    let config = diff_config(a.runtime_config(), b.runtime_config());
    let mut stat = Stat {
        config: config.len() as u64,
        ..Stat::default()
    };
    for f in &files {
        match f.change {
            'A' => {
                stat.added += 1;
                stat.added_bytes += file_bytes(&f.new);
            }
            'D' => {
                stat.removed += 1;
                stat.removed_bytes += file_bytes(&f.old);
            }
            _ => {
                stat.changed += 1;
                stat.changed_old_bytes += file_bytes(&f.old);
                stat.changed_new_bytes += file_bytes(&f.new);
            }
        }
    }
    ImageDiff {
        from: (a.name.clone(), a.record.id.to_string()),
        to: (b.name.clone(), b.record.id.to_string()),
        files,
        config,
        stat,
    }
}

fn short(d: &Option<kiln_image::Digest>) -> String {
    d.map_or("?".into(), |d| format!("sha256:{}", &d.hex()[..12]))
}

/// `(size 1234 → 1290, mode 0644 → 0755)`: what changed, old → new.
pub fn describe(f: &FileDiff) -> String {
    let (Some(a), Some(b)) = (&f.old, &f.new) else {
        return String::new();
    };
    let parts: Vec<String> = f
        .fields
        .iter()
        .map(|x| match x {
            Field::Type => format!("type {} → {}", a.kind.word(), b.kind.word()),
            Field::Size => format!("size {} → {}", a.size, b.size),
            Field::Content => format!("content {} → {}", short(&a.digest), short(&b.digest)),
            Field::Mode => format!("mode {:04o} → {:04o}", a.mode, b.mode),
            Field::Owner => format!("owner {}:{} → {}:{}", a.uid, a.gid, b.uid, b.gid),
            Field::Link => format!(
                "link {} → {}",
                a.link.as_deref().unwrap_or(""),
                b.link.as_deref().unwrap_or("")
            ),
        })
        .collect();
    format!("({})", parts.join(", "))
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "unset".into(),
        Value::String(s) if s.is_empty() => "unset".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One config difference as a line: `C config User (root → app)`, `A config Env B=2`.
pub fn config_line(c: &ConfigDiff) -> String {
    match (&c.key, c.old.is_null(), c.new.is_null()) {
        (Some(_), true, false) => format!("A config {} {}", c.field, item(c, &c.new)),
        (Some(_), false, true) => format!("D config {} {}", c.field, item(c, &c.old)),
        (Some(k), _, _) if c.field == "Labels" => {
            format!("C config Labels {k} ({} → {})", show(&c.old), show(&c.new))
        }
        (Some(_), _, _) => format!("C config {} ({} → {})", c.field, show(&c.old), show(&c.new)),
        (None, _, _) => format!("C config {} ({} → {})", c.field, show(&c.old), show(&c.new)),
    }
}

fn item(c: &ConfigDiff, v: &Value) -> String {
    match (&c.key, c.field.as_str()) {
        (Some(k), "Labels") => format!("{k}={}", show(v)),
        _ => show(v),
    }
}

/// The text output: one line per path, sorted, then the config lines.
pub fn render_text(d: &ImageDiff) -> String {
    let mut s = String::new();
    for f in &d.files {
        s.push(f.change);
        s.push(' ');
        s.push_str(&f.path);
        if f.change == 'C' {
            s.push(' ');
            s.push_str(&describe(f));
        }
        s.push('\n');
    }
    for c in &d.config {
        s.push_str(&config_line(c));
        s.push('\n');
    }
    s
}

/// The `--stat` text.
pub fn render_stat(d: &ImageDiff) -> String {
    let st = &d.stat;
    format!(
        "{} added ({} bytes, {})\n{} removed ({} bytes, {})\n{} changed ({} → {} bytes)\n{} config changes\n",
        st.added,
        st.added_bytes,
        human(st.added_bytes),
        st.removed,
        st.removed_bytes,
        human(st.removed_bytes),
        st.changed,
        st.changed_old_bytes,
        st.changed_new_bytes,
        st.config
    )
}
