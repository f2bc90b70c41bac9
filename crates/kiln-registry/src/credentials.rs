//! Credentials as docker keeps them: `$DOCKER_CONFIG/config.json` (default
//! `~/.docker/config.json`) with `auths` (base64 `user:password`), `credsStore` and
//! `credHelpers` naming `docker-credential-<name>` helpers (`get`/`store`/`erase`, JSON on
//! standard input and output). `kiln login` writes there, so docker and kiln share logins.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// The key docker uses for Docker Hub in `config.json`.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or identity token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The `config.json` key of a registry host: Docker Hub's is its v1 URL, the others are
/// `host[:port]` as written.
pub fn server_key(host: &str) -> String {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_string(),
        h => h.to_string(),
    }
}

/// docker's credential store: `config.json` under one directory.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    dir: PathBuf,
}

impl CredentialStore {
    /// `$DOCKER_CONFIG`, else `$HOME/.docker`.
    pub fn from_env() -> CredentialStore {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
                Path::new(&home).join(".docker")
            });
        CredentialStore { dir }
    }

    /// A store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> CredentialStore {
        CredentialStore { dir: dir.into() }
    }

    /// The `config.json` path.
    pub fn path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    fn read(&self) -> Result<Map<String, Value>> {
        let path = self.path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(e) => {
                return Err(Error::Credentials {
                    what: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(&text) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(Error::Credentials {
                what: path.display().to_string(),
                reason: "not a JSON object".into(),
            }),
            Err(e) => Err(Error::Credentials {
                what: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }

    fn write(&self, config: &Map<String, Value>) -> Result<()> {
        let path = self.path();
        let fail = |e: std::io::Error| Error::Credentials {
            what: path.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(&self.dir).map_err(fail)?;
        let tmp = self
            .dir
            .join(format!(".config.json.{}", std::process::id()));
        let mut text = serde_json::to_vec_pretty(&Value::Object(config.clone()))
            .expect("a JSON value serializes");
        text.push(b'\n');
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(fail)?;
            f.write_all(&text).map_err(fail)?;
            f.sync_all().map_err(fail)?;
        }
        std::fs::rename(&tmp, &path).map_err(fail)
    }

    /// The helper that holds `key`'s credentials, if any (`credHelpers`, then `credsStore`).
    fn helper_for(config: &Map<String, Value>, key: &str) -> Option<String> {
        config
            .get("credHelpers")
            .and_then(|h| h.get(key))
            .and_then(Value::as_str)
            .or_else(|| config.get("credsStore").and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// The credentials for registry `host`, if any are configured.
    pub fn get(&self, host: &str) -> Result<Option<Credentials>> {
        let key = server_key(host);
        let config = self.read()?;
        if let Some(helper) = Self::helper_for(&config, &key) {
            return helper_get(&helper, &key);
        }
        let Some(entry) = config.get("auths").and_then(|a| a.get(&key)) else {
            return Ok(None);
        };
        let what = || format!("{}: auths.{key}", self.path().display());
        if let Some(token) = entry.get("identitytoken").and_then(Value::as_str)
            && !token.is_empty()
        {
            // docker sends an identity token as a refresh token; basic auth with the
            // `<token>` user is what registries accept for it too.
            return Ok(Some(Credentials {
                username: "<token>".into(),
                password: token.to_string(),
            }));
        }
        let Some(auth) = entry.get("auth").and_then(Value::as_str) else {
            return Ok(None);
        };
        if auth.is_empty() {
            return Ok(None);
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| Error::Credentials {
                what: what(),
                reason: format!("invalid base64: {e}"),
            })?;
        let text = String::from_utf8(raw).map_err(|_| Error::Credentials {
            what: what(),
            reason: "not UTF-8".into(),
        })?;
        let Some((user, pass)) = text.split_once(':') else {
            return Err(Error::Credentials {
                what: what(),
                reason: "not \"user:password\"".into(),
            });
        };
        Ok(Some(Credentials {
            username: user.to_string(),
            password: pass.to_string(),
        }))
    }

    /// Stores credentials for `host` as `docker login` does. Returns whether they went into
    /// the file (base64, unencrypted) rather than a helper.
    pub fn store(&self, host: &str, creds: &Credentials) -> Result<bool> {
        let key = server_key(host);
        let mut config = self.read()?;
        let helper = Self::helper_for(&config, &key);
        let auths = config
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let auths = auths.as_object_mut().expect("an object");
        let in_file = match &helper {
            Some(h) => {
                helper_store(h, &key, creds)?;
                auths.insert(key.clone(), json!({}));
                false
            }
            None => {
                let auth = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", creds.username, creds.password));
                auths.insert(key.clone(), json!({ "auth": auth }));
                true
            }
        };
        self.write(&config)?;
        Ok(in_file)
    }

    /// Removes `host`'s credentials; false if there were none.
    pub fn erase(&self, host: &str) -> Result<bool> {
        let key = server_key(host);
        let mut config = self.read()?;
        let helper = Self::helper_for(&config, &key);
        let had = config
            .get_mut("auths")
            .and_then(Value::as_object_mut)
            .and_then(|a| a.remove(&key))
            .is_some();
        if let Some(h) = helper {
            helper_erase(&h, &key)?;
        }
        if had {
            self.write(&config)?;
        }
        Ok(had)
    }
}

fn run_helper(helper: &str, verb: &str, input: &[u8]) -> Result<(bool, Vec<u8>)> {
    let program = format!("docker-credential-{helper}");
    let fail = |reason: String| Error::Credentials {
        what: format!("{program} {verb}"),
        reason,
    };
    let mut child = Command::new(&program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let mut text = out.stdout;
    text.extend_from_slice(&out.stderr);
    Ok((out.status.success(), text))
}

fn helper_get(helper: &str, key: &str) -> Result<Option<Credentials>> {
    let (ok, out) = run_helper(helper, "get", key.as_bytes())?;
    if !ok {
        let msg = String::from_utf8_lossy(&out).trim().to_string();
        if msg.contains("credentials not found") {
            return Ok(None);
        }
        return Err(Error::Credentials {
            what: format!("docker-credential-{helper} get"),
            reason: msg,
        });
    }
    let v: Value = serde_json::from_slice(&out).map_err(|e| Error::Credentials {
        what: format!("docker-credential-{helper} get"),
        reason: format!("invalid answer: {e}"),
    })?;
    let username = v.get("Username").and_then(Value::as_str).unwrap_or("");
    let secret = v.get("Secret").and_then(Value::as_str).unwrap_or("");
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: username.to_string(),
        password: secret.to_string(),
    }))
}

fn helper_store(helper: &str, key: &str, creds: &Credentials) -> Result<()> {
    let input = json!({"ServerURL": key, "Username": creds.username, "Secret": creds.password});
    let (ok, out) = run_helper(helper, "store", input.to_string().as_bytes())?;
    if !ok {
        return Err(Error::Credentials {
            what: format!("docker-credential-{helper} store"),
            reason: String::from_utf8_lossy(&out).trim().to_string(),
        });
    }
    Ok(())
}

fn helper_erase(helper: &str, key: &str) -> Result<()> {
    let (ok, out) = run_helper(helper, "erase", key.as_bytes())?;
    let msg = String::from_utf8_lossy(&out).trim().to_string();
    if !ok && !msg.contains("credentials not found") {
        return Err(Error::Credentials {
            what: format!("docker-credential-{helper} erase"),
            reason: msg,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_round_trip_and_keep_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"psFormat":"x","auths":{}}"#,
        )
        .unwrap();
        let store = CredentialStore::new(dir.path());
        let c = Credentials {
            username: "u".into(),
            password: "p:w".into(),
        };
        assert!(store.store("127.0.0.1:5000", &c).unwrap());
        assert_eq!(store.get("127.0.0.1:5000").unwrap(), Some(c));
        let v: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(v["psFormat"], "x");
        assert_eq!(v["auths"]["127.0.0.1:5000"]["auth"], "dTpwOnc=");
        assert!(store.erase("127.0.0.1:5000").unwrap());
        assert!(!store.erase("127.0.0.1:5000").unwrap());
        assert_eq!(store.get("127.0.0.1:5000").unwrap(), None);
        assert_eq!(server_key("docker.io"), DOCKER_HUB_KEY);
    }
}
