//! `--cache-from` and `--cache-to` as BuildKit (buildx) reads them: CSV `key=value` fields,
//! or a bare reference for `type=registry,ref=REF`. kiln's extension is `cache-mounts=true`
//! (the contents of `RUN --mount=type=cache` directories exported as layers, restored on
//! import). Every attribute is honoured or refused; none is accepted and ignored.

use std::path::PathBuf;

use kiln_image::Compression;

/// Where a cache is read from (`--cache-from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheImport {
    /// `type=registry,ref=REF` or a bare `REF`: a cache artifact (or an image with inline cache
    /// metadata) in a registry.
    Registry { reference: String },
    /// `type=local,src=DIR[,tag=T]`: an OCI image layout directory.
    Local { src: PathBuf, tag: String },
}

/// `mode=`: which steps a cache export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// The steps of the exported image (BuildKit's default).
    #[default]
    Min,
    /// Every step of every stage the build ran.
    Max,
}

impl CacheMode {
    pub fn name(self) -> &'static str {
        match self {
            CacheMode::Min => "min",
            CacheMode::Max => "max",
        }
    }
}

/// Where a cache is written (`--cache-to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheDest {
    /// `type=registry,ref=REF`: pushed as an OCI artifact under REF's tag.
    Registry { reference: String },
    /// `type=local,dest=DIR[,tag=T]`: an OCI image layout directory.
    Local { dest: PathBuf, tag: String },
    /// `type=inline`: the records in the image's config (mode=min only, as BuildKit).
    Inline,
}

/// One `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheExport {
    pub dest: CacheDest,
    pub mode: CacheMode,
    /// The layers' compression on the way out (gzip unless `compression=` says otherwise).
    pub compression: Compression,
    pub compression_level: Option<i32>,
    /// `ignore-error=true`: a failed export is a warning, not a failed build.
    pub ignore_error: bool,
    /// kiln's `cache-mounts=true`: export the build's `RUN --mount=type=cache` directories.
    pub cache_mounts: bool,
}

impl CacheImport {
    /// Parses one `--cache-from` value.
    pub fn parse(s: &str) -> Result<CacheImport, String> {
        let fields = fields(s)?;
        let mut kind = "registry".to_string();
        let (mut reference, mut src, mut tag) = (None, None, None);
        for (k, v) in fields {
            match k.as_str() {
                "type" => kind = v,
                "ref" => reference = Some(v),
                "src" => src = Some(v),
                "tag" => tag = Some(v),
                // A `--cache-to` with the same CSV is often copied to `--cache-from`.
                "mode" | "compression" | "compression-level" | "oci-mediatypes"
                | "image-manifest" | "ignore-error" | "cache-mounts" => {
                    return Err(format!(
                        "{k}= is a --cache-to attribute (an import reads whatever the cache holds)"
                    ));
                }
                _ => return Err(format!("unknown attribute {k:?}")),
            }
        }
        match kind.as_str() {
            "registry" => {
                no_field("src", &src)?;
                no_field("tag", &tag)?;
                let reference = reference
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| "type=registry needs ref=".to_string())?;
                Ok(CacheImport::Registry { reference })
            }
            "local" => {
                no_field("ref", &reference)?;
                let src = src
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| "type=local needs src=".to_string())?;
                Ok(CacheImport::Local {
                    src: PathBuf::from(src),
                    tag: tag.unwrap_or_else(|| "latest".into()),
                })
            }
            other => Err(unsupported_type(other)),
        }
    }
}

impl CacheExport {
    /// Parses one `--cache-to` value.
    pub fn parse(s: &str) -> Result<CacheExport, String> {
        let fields = fields(s)?;
        let mut kind = "registry".to_string();
        let (mut reference, mut dest, mut tag) = (None, None, None);
        let mut out = CacheExport {
            dest: CacheDest::Inline,
            mode: CacheMode::Min,
            compression: Compression::Gzip,
            compression_level: None,
            ignore_error: false,
            cache_mounts: false,
        };
        let mut mode_given = false;
        for (k, v) in fields {
            match k.as_str() {
                "type" => kind = v,
                "ref" => reference = Some(v),
                "dest" => dest = Some(v),
                "tag" => tag = Some(v),
                "mode" => {
                    mode_given = true;
                    out.mode = match v.as_str() {
                        "min" => CacheMode::Min,
                        "max" => CacheMode::Max,
                        _ => {
                            return Err(format!("invalid mode {v:?}: use min or max"));
                        }
                    }
                }
                "compression" => {
                    out.compression = match v.as_str() {
                        "gzip" => Compression::Gzip,
                        "zstd" => Compression::Zstd,
                        "uncompressed" => Compression::None,
                        _ => {
                            return Err(format!(
                                "unsupported compression type {v}: use gzip, zstd or uncompressed"
                            ));
                        }
                    };
                }
                "compression-level" => {
                    out.compression_level = Some(
                        v.parse()
                            .map_err(|_| format!("invalid compression-level {v:?}"))?,
                    );
                }
                "oci-mediatypes" | "image-manifest" => {
                    if !bool_value(&k, &v)? {
                        return Err(format!(
                            "{k}=false is not supported: kiln's cache is an OCI image manifest with OCI media types (see docs/cache-sharing.md)"
                        ));
                    }
                }
                "ignore-error" => out.ignore_error = bool_value(&k, &v)?,
                "cache-mounts" => out.cache_mounts = bool_value(&k, &v)?,
                _ => return Err(format!("unknown attribute {k:?}")),
            }
        }
        if let Some(l) = out.compression_level {
            let max = match out.compression {
                Compression::Gzip => 9,
                Compression::Zstd => 22,
                Compression::None => {
                    return Err("compression-level needs compression=gzip or zstd".into());
                }
            };
            if !(0..=max).contains(&l) {
                return Err(format!(
                    "compression-level {l} is out of range: use 0-{max} for this compression"
                ));
            }
        }
        out.dest = match kind.as_str() {
            "registry" => {
                no_field("dest", &dest)?;
                no_field("tag", &tag)?;
                let reference = reference
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| "type=registry needs ref=".to_string())?;
                CacheDest::Registry { reference }
            }
            "local" => {
                no_field("ref", &reference)?;
                let dest = dest
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| "type=local needs dest=".to_string())?;
                CacheDest::Local {
                    dest: PathBuf::from(dest),
                    tag: tag.unwrap_or_else(|| "latest".into()),
                }
            }
            "inline" => {
                no_field("ref", &reference)?;
                no_field("dest", &dest)?;
                if mode_given && out.mode == CacheMode::Max {
                    return Err("inline cache supports mode=min only (the image carries its own layers); use type=registry for mode=max".to_string());
                }
                if out.cache_mounts {
                    return Err("cache-mounts=true needs type=registry or type=local (an image has no place for them)".to_string());
                }
                CacheDest::Inline
            }
            other => return Err(unsupported_type(other)),
        };
        Ok(out)
    }
}

/// `a=b,c=d` (a value without `=` is a bare registry reference).
fn fields(s: &str) -> Result<Vec<(String, String)>, String> {
    if !s.contains('=') {
        if s.is_empty() {
            return Err("empty cache reference".into());
        }
        return Ok(vec![("ref".into(), s.to_string())]);
    }
    s.split(',')
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.to_string()))
                .ok_or_else(|| format!("invalid field {f:?}: want key=value"))
        })
        .collect()
}

fn no_field(name: &str, v: &Option<String>) -> Result<(), String> {
    match v {
        Some(_) => Err(format!("{name}= does not apply to this cache type")),
        None => Ok(()),
    }
}

fn bool_value(k: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" | "1" | "True" | "TRUE" | "t" | "T" => Ok(true),
        "false" | "0" | "False" | "FALSE" | "f" | "F" => Ok(false),
        _ => Err(format!("invalid {k}={v:?}: use true or false")),
    }
}

fn unsupported_type(t: &str) -> String {
    match t {
        "gha" | "s3" | "azblob" => {
            format!("cache type {t} is not supported by kiln: use registry, local or inline")
        }
        _ => format!("unknown cache type {t:?}: use registry, local or inline"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_parse_as_buildx_reads_them() {
        assert_eq!(
            CacheImport::parse("reg:5000/app:cache").unwrap(),
            CacheImport::Registry {
                reference: "reg:5000/app:cache".into()
            }
        );
        assert_eq!(
            CacheImport::parse("type=registry,ref=r/app").unwrap(),
            CacheImport::Registry {
                reference: "r/app".into()
            }
        );
        assert_eq!(
            CacheImport::parse("type=local,src=/c").unwrap(),
            CacheImport::Local {
                src: "/c".into(),
                tag: "latest".into()
            }
        );
        assert!(CacheImport::parse("type=gha").unwrap_err().contains("gha"));
        assert!(CacheImport::parse("type=registry").is_err());
        assert!(CacheImport::parse("type=local,src=/c,bogus=1").is_err());
    }

    #[test]
    fn exports_parse_every_attribute_or_refuse_it() {
        let e = CacheExport::parse(
            "type=registry,ref=r/app:c,mode=max,compression=zstd,oci-mediatypes=true,cache-mounts=true",
        )
        .unwrap();
        assert_eq!(e.mode, CacheMode::Max);
        assert_eq!(e.compression, Compression::Zstd);
        assert!(e.cache_mounts);
        let e = CacheExport::parse("type=local,dest=/d").unwrap();
        assert_eq!(e.mode, CacheMode::Min);
        assert_eq!(e.compression, Compression::Gzip);
        assert_eq!(
            CacheExport::parse("type=inline").unwrap().dest,
            CacheDest::Inline
        );
        assert!(CacheExport::parse("type=inline,mode=max").is_err());
        assert!(CacheExport::parse("type=registry,ref=r,oci-mediatypes=false").is_err());
        assert!(CacheExport::parse("type=registry,ref=r,mode=all").is_err());
        assert!(CacheExport::parse("type=registry,ref=r,colour=blue").is_err());
        assert!(CacheExport::parse("type=local").is_err());
    }
}
