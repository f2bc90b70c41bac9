//! Registry mirrors for Docker Hub, as docker's `registry-mirrors`: a pull of a `docker.io`
//! image asks each mirror in turn (`MIRROR/v2/library/x/manifests/TAG`) and takes the first
//! that serves the manifest; the rest of that pull (index entry, config, layers) comes from
//! the same mirror. A mirror that cannot be reached or lacks the image is skipped; after the
//! last one, Docker Hub itself. Pushes and other registries never use mirrors.
//!
//! Where the list comes from: `KILN_REGISTRY_MIRRORS` (comma-separated URLs; set and empty
//! means none), else `registry-mirrors` in docker's `/etc/docker/daemon.json`.
//! `KILN_DOCKER_HUB_ENDPOINT` replaces Docker Hub's API endpoint (`https://registry-1.docker.io`)
//! for every request, pulls and pushes: an air-gapped site's stand-in, and how the tests keep
//! Docker Hub out of reach.

use std::path::Path;

pub(crate) mod open;

/// docker's daemon configuration file, where `registry-mirrors` is read.
pub const DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// Docker Hub's mirrors and endpoint.
#[derive(Debug, Clone, Default)]
pub struct Mirrors {
    /// Base URLs (`https://mirror.example`, `http://127.0.0.1:5001`) tried in order.
    pub endpoints: Vec<String>,
    /// Replaces `https://registry-1.docker.io` (None: Docker Hub).
    pub hub_endpoint: Option<String>,
    /// A configured entry that is not a URL: pulls from Docker Hub fail with it rather than
    /// skip the mirror silently.
    pub invalid: Option<String>,
}

/// `http(s)://host[:port]` without a trailing slash, or why not (docker's rule: a scheme, and
/// no path).
fn endpoint(raw: &str, what: &str) -> std::result::Result<String, String> {
    let s = raw.trim().trim_end_matches('/');
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("{what} {raw:?}: must start with http:// or https://"))?;
    if rest.is_empty() || rest.contains('/') {
        return Err(format!(
            "{what} {raw:?}: give scheme://host[:port], without a path"
        ));
    }
    Ok(s.to_string())
}

impl Mirrors {
    /// From `KILN_REGISTRY_MIRRORS`, else [`DAEMON_JSON`]; and `KILN_DOCKER_HUB_ENDPOINT`.
    pub fn from_env() -> Mirrors {
        let mut m = match std::env::var("KILN_REGISTRY_MIRRORS") {
            Ok(list) => Mirrors::from_list(list.split(',').filter(|s| !s.trim().is_empty())),
            Err(_) => Mirrors::from_daemon_json(Path::new(DAEMON_JSON)),
        };
        if let Some(hub) = std::env::var("KILN_DOCKER_HUB_ENDPOINT")
            .ok()
            .filter(|v| !v.is_empty())
        {
            match endpoint(&hub, "KILN_DOCKER_HUB_ENDPOINT") {
                Ok(e) => m.hub_endpoint = Some(e),
                Err(e) => m.invalid = Some(e),
            }
        }
        m
    }

    /// Mirrors from a list of URLs.
    pub fn from_list<'a>(list: impl IntoIterator<Item = &'a str>) -> Mirrors {
        let mut m = Mirrors::default();
        for raw in list {
            match endpoint(raw, "registry mirror") {
                Ok(e) => m.endpoints.push(e),
                Err(e) => m.invalid = Some(e),
            }
        }
        m
    }

    /// `registry-mirrors` of a docker `daemon.json` (none when the file does not exist; an
    /// unreadable or malformed file makes Docker Hub pulls fail, naming it).
    pub fn from_daemon_json(path: &Path) -> Mirrors {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Mirrors::default(),
            Err(e) => {
                return Mirrors {
                    invalid: Some(format!("{}: {e}", path.display())),
                    ..Default::default()
                };
            }
        };
        #[derive(serde::Deserialize)]
        struct Daemon {
            #[serde(default, rename = "registry-mirrors")]
            registry_mirrors: Vec<String>,
        }
        match serde_json::from_slice::<Daemon>(&bytes) {
            Ok(d) => Mirrors::from_list(d.registry_mirrors.iter().map(String::as_str)),
            Err(e) => Mirrors {
                invalid: Some(format!("{}: {e}", path.display())),
                ..Default::default()
            },
        }
    }
}

/// Whether `domain` is Docker Hub's.
pub(crate) fn is_docker_hub(domain: &str) -> bool {
    matches!(domain, "docker.io" | "index.docker.io")
}

impl Mirrors {
    /// The endpoint that replaces `domain`'s (`KILN_DOCKER_HUB_ENDPOINT` for Docker Hub).
    pub(crate) fn endpoint_override(&self, domain: &str) -> Option<&str> {
        if is_docker_hub(domain) {
            self.hub_endpoint.as_deref()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_urls_need_a_scheme_and_no_path() {
        let m = Mirrors::from_list(["https://mirror.example/", "http://127.0.0.1:5001"]);
        assert_eq!(
            m.endpoints,
            ["https://mirror.example", "http://127.0.0.1:5001"]
        );
        assert!(m.invalid.is_none());
        let m = Mirrors::from_list(["mirror.example"]);
        assert!(m.invalid.unwrap().contains("http:// or https://"));
        let m = Mirrors::from_list(["https://mirror.example/v2/x"]);
        assert!(m.invalid.unwrap().contains("without a path"));
    }

    #[test]
    fn daemon_json_registry_mirrors_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("daemon.json");
        assert!(Mirrors::from_daemon_json(&p).endpoints.is_empty());
        std::fs::write(
            &p,
            r#"{"registry-mirrors": ["https://a.example", "http://127.0.0.1:5001/"], "debug": true}"#,
        )
        .unwrap();
        let m = Mirrors::from_daemon_json(&p);
        assert_eq!(m.endpoints, ["https://a.example", "http://127.0.0.1:5001"]);
        std::fs::write(&p, "{").unwrap();
        assert!(Mirrors::from_daemon_json(&p).invalid.is_some());
    }
}
