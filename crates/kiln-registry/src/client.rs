//! One authenticated session with a registry: endpoint choice (HTTPS, plain HTTP only for
//! insecure hosts), TLS roots (`certs.d`), the `/v2/` ping and the auth challenge (basic, or
//! a bearer token for the repository scopes the session needs).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use ureq::Body;
use ureq::http::{Request, Response};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::credentials::{CredentialStore, Credentials};
use crate::error::{Error, Result};
use crate::mirrors::Mirrors;

/// Where and how kiln reaches registries.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Per-host CA directories, docker's layout: `DIR/HOST[:PORT]/*.crt`.
    pub certs_d: PathBuf,
    /// Hosts reached over plain HTTP when HTTPS fails (besides localhost and 127.0.0.0/8).
    pub insecure: Vec<String>,
    /// Where credentials are.
    pub credentials: CredentialStore,
    /// Docker Hub's mirrors and endpoint (see [`crate::mirrors`]).
    pub mirrors: Mirrors,
}

impl Settings {
    /// From the environment: `KILN_CERTS_D` (default `/etc/docker/certs.d`),
    /// `KILN_INSECURE_REGISTRIES` (comma-separated `host[:port]`), `DOCKER_CONFIG`.
    pub fn from_env() -> Settings {
        let certs_d = std::env::var_os("KILN_CERTS_D")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/etc/docker/certs.d"));
        let insecure = std::env::var("KILN_INSECURE_REGISTRIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Settings {
            certs_d,
            insecure,
            credentials: CredentialStore::from_env(),
            mirrors: Mirrors::from_env(),
        }
    }

    /// Whether `host` (`host[:port]`) may be reached over plain HTTP: localhost, loopback
    /// addresses (docker treats 127.0.0.0/8 as insecure) and the configured list.
    pub fn is_insecure(&self, host: &str) -> bool {
        let name = host_without_port(host);
        if name == "localhost" {
            return true;
        }
        if let Ok(ip) = name.trim_matches(['[', ']']).parse::<IpAddr>()
            && ip.is_loopback()
        {
            return true;
        }
        self.insecure.iter().any(|h| h == host || h == name)
    }
}

fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// The API host of a reference's domain (Docker Hub's is not `docker.io`).
pub fn api_host(domain: &str) -> &str {
    match domain {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        d => d,
    }
}

/// A connection to one registry, authorized for a set of scopes.
pub struct Session {
    agent: ureq::Agent,
    base: String,
    /// The registry as references name it (`127.0.0.1:5000`, `docker.io`).
    pub registry: String,
    creds: Option<Credentials>,
    authorization: Mutex<Option<String>>,
    /// The bearer challenge and scopes, to fetch a new token when one expires mid-transfer
    /// (Docker Hub's last five minutes).
    bearer: Mutex<Option<BearerScope>>,
    /// The registry asked for basic auth and there are no credentials: requests go
    /// anonymous, and one refused says so as docker does (`no basic auth credentials`).
    basic_without_credentials: AtomicBool,
}

/// A bearer challenge's realm and service, and the scopes a session asked for.
type BearerScope = (String, Option<String>, Vec<String>);

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("base", &self.base).finish()
    }
}

/// `WWW-Authenticate` as sent by registries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut s = rest;
    while !s.is_empty() {
        s = s.trim_start_matches([' ', ',']);
        let Some((k, v)) = s.split_once('=') else {
            break;
        };
        let (value, tail) = if let Some(q) = v.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = v.find(',').unwrap_or(v.len());
            (&v[..end], &v[end..])
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value.to_string()),
            "service" => service = Some(value.to_string()),
            _ => {}
        }
        s = tail;
    }
    Some(Challenge::Bearer {
        realm: realm?,
        service,
    })
}

fn load_roots(settings: &Settings, host: &str) -> Result<Option<RootCerts>> {
    let dir = settings.certs_d.join(host);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "crt"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Ok(None);
    }
    // docker adds these to the system pool: so do we (Debian's bundle), then the host's CAs.
    let mut certs: Vec<Certificate<'static>> = Vec::new();
    let system = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    if let Ok(pem) = std::fs::read(system) {
        for item in ureq::tls::parse_pem(&pem).flatten() {
            if let ureq::tls::PemItem::Certificate(c) = item {
                certs.push(c);
            }
        }
    }
    for p in paths {
        let pem = std::fs::read(&p).map_err(|e| Error::Tls {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        let mut n = 0;
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => {
                    certs.push(c);
                    n += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(Error::Tls {
                        path: p.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        if n == 0 {
            return Err(Error::Tls {
                path: p,
                reason: "no PEM certificate in it".into(),
            });
        }
    }
    Ok(Some(RootCerts::new_with_certs(&certs)))
}

/// How long the `/v2/` ping may take, whole: a registry (or mirror, or cache source) that
/// accepts and never answers costs this, not the transfers' two-minute read timeout.
const PING_TIMEOUT: Duration = Duration::from_secs(15);

fn ping(agent: &ureq::Agent, url: &str) -> std::result::Result<Response<Body>, ureq::Error> {
    agent
        .get(url)
        .config()
        .timeout_global(Some(PING_TIMEOUT))
        .build()
        .call()
}

fn agent(roots: Option<RootCerts>) -> ureq::Agent {
    let mut tls = TlsConfig::builder();
    if let Some(r) = roots {
        tls = tls.root_certs(r);
    }
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls.build())
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .max_idle_connections_per_host(16)
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// The registry's error message from a response body (`{"errors":[{"code","message"}]}`).
pub(crate) fn error_message(body: &[u8]) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct Errs {
        errors: Vec<Err>,
    }
    #[derive(serde::Deserialize)]
    struct Err {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errs>(body)
        && let Some(first) = e.errors.first()
    {
        return (first.code.clone(), first.message.clone());
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(300)])
        .trim()
        .to_string();
    (String::new(), text)
}

pub(crate) fn read_small(resp: Response<Body>, limit: u64, what: &str) -> Result<Vec<u8>> {
    resp.into_body()
        .into_with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| Error::Read {
            what: what.to_string(),
            source: std::io::Error::other(e),
        })
}

impl Session {
    /// Connects to the registry of `domain` and authorizes `scopes`
    /// (`repository:NAME:pull[,push]`) with the stored credentials.
    pub fn open(settings: &Settings, domain: &str, scopes: &[String]) -> Result<Session> {
        let creds = settings.credentials.get(domain)?;
        Self::open_with(settings, domain, scopes, creds)
    }

    /// Like [`Session::open`] with explicit credentials (`kiln login` checks them so).
    pub fn open_with(
        settings: &Settings,
        domain: &str,
        scopes: &[String],
        creds: Option<Credentials>,
    ) -> Result<Session> {
        if let Some(base) = settings.mirrors.endpoint_override(domain) {
            return Self::open_at(settings, domain, base, scopes, creds);
        }
        let host = api_host(domain).to_string();
        let roots = load_roots(settings, domain)?;
        let agent = agent(roots);
        let https = format!("https://{host}");
        let (base, ping) = match ping(&agent, &format!("{https}/v2/")) {
            Ok(r) => (https, r),
            Err(e) if settings.is_insecure(domain) => {
                let http = format!("http://{host}");
                // Only a registry answer counts: a TLS port answers plain HTTP with a 400.
                match ping(&agent, &format!("{http}/v2/")) {
                    Ok(r) if matches!(r.status().as_u16(), 200 | 401) => (http, r),
                    // Nothing answers either way: the last attempt's error, as docker's.
                    Err(e2) => {
                        return Err(Error::Http {
                            method: "GET",
                            url: format!("{http}/v2/"),
                            source: e2,
                        });
                    }
                    Ok(_) => {
                        return Err(Error::Http {
                            method: "GET",
                            url: format!("{https}/v2/"),
                            source: e,
                        });
                    }
                }
            }
            Err(e) => {
                return Err(Error::Http {
                    method: "GET",
                    url: format!("{https}/v2/"),
                    source: e,
                });
            }
        };
        let session = Session {
            agent,
            base,
            registry: domain.to_string(),
            creds,
            authorization: Mutex::new(None),
            bearer: Mutex::new(None),
            basic_without_credentials: AtomicBool::new(false),
        };
        session.authorize(ping, scopes)?;
        Ok(session)
    }

    /// A session with the registry `domain` names, reached at `base` (`http(s)://host[:port]`,
    /// as given: a mirror, or a replaced endpoint), CAs from `certs.d/HOST[:PORT]`.
    pub(crate) fn open_at(
        settings: &Settings,
        domain: &str,
        base: &str,
        scopes: &[String],
        creds: Option<Credentials>,
    ) -> Result<Session> {
        let host = base.split_once("://").map_or(base, |(_, h)| h);
        let agent = agent(load_roots(settings, host)?);
        let url = format!("{base}/v2/");
        let ping = ping(&agent, &url).map_err(|e| Error::Http {
            method: "GET",
            url: url.clone(),
            source: e,
        })?;
        let session = Session {
            agent,
            base: base.to_string(),
            registry: domain.to_string(),
            creds,
            authorization: Mutex::new(None),
            bearer: Mutex::new(None),
            basic_without_credentials: AtomicBool::new(false),
        };
        session.authorize(ping, scopes)?;
        Ok(session)
    }

    /// Answers the ping's challenge, if any.
    fn authorize(&self, ping: Response<Body>, scopes: &[String]) -> Result<()> {
        let url = format!("{}/v2/", self.base);
        let status = ping.status().as_u16();
        if status == 200 {
            return Ok(());
        }
        if status != 401 {
            let body = read_small(ping, 1 << 16, &url).unwrap_or_default();
            return Err(Error::Status {
                method: "GET",
                url,
                status,
                message: error_message(&body).1,
            });
        }
        let challenge = ping
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(parse_challenge)
            .next();
        let body = read_small(ping, 1 << 16, &url).unwrap_or_default();
        match challenge {
            Some(Challenge::Basic) => {
                let Some(c) = &self.creds else {
                    // As docker: the session opens, and the first request refused fails.
                    self.basic_without_credentials
                        .store(true, Ordering::Relaxed);
                    return Ok(());
                };
                let auth = basic(c);
                // Check the credentials once, so a wrong password fails here, clearly.
                let resp = self
                    .agent
                    .get(&url)
                    .header("Authorization", &auth)
                    .call()
                    .map_err(|e| Error::Http {
                        method: "GET",
                        url: url.clone(),
                        source: e,
                    })?;
                if resp.status() == 401 {
                    let status = format!(
                        "401 {}",
                        resp.status().canonical_reason().unwrap_or("Unauthorized")
                    );
                    let body = read_small(resp, 1 << 16, &url).unwrap_or_default();
                    return Err(Error::CredentialsRefused {
                        url,
                        status,
                        message: non_empty(error_message(&body).1, "authentication required"),
                    });
                }
                *self.authorization.lock().unwrap() = Some(auth);
                Ok(())
            }
            Some(Challenge::Bearer { realm, service }) => {
                let token = self.fetch_token(&realm, service.as_deref(), scopes)?;
                *self.authorization.lock().unwrap() = Some(format!("Bearer {token}"));
                *self.bearer.lock().unwrap() = Some((realm, service, scopes.to_vec()));
                Ok(())
            }
            None => Err(Error::Unauthorized {
                url,
                message: non_empty(
                    error_message(&body).1,
                    "no usable WWW-Authenticate challenge",
                ),
            }),
        }
    }

    fn fetch_token(&self, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<String> {
        let mut req = self.agent.get(realm);
        if let Some(s) = service {
            req = req.query("service", s);
        }
        for s in scopes {
            req = req.query("scope", s);
        }
        if let Some(c) = &self.creds {
            req = req.header("Authorization", &basic(c));
        }
        let resp = req.call().map_err(|e| Error::Http {
            method: "GET",
            url: realm.to_string(),
            source: e,
        })?;
        let status = resp.status().as_u16();
        let body = read_small(resp, 1 << 20, realm)?;
        if status == 401 || status == 403 {
            return Err(Error::Unauthorized {
                url: realm.to_string(),
                message: non_empty(error_message(&body).1, "token request refused"),
            });
        }
        if status != 200 {
            return Err(Error::Status {
                method: "GET",
                url: realm.to_string(),
                status,
                message: error_message(&body).1,
            });
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_slice(&body).map_err(|e| Error::Invalid {
            what: realm.to_string(),
            reason: format!("token response: {e}"),
        })?;
        t.token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Invalid {
                what: realm.to_string(),
                reason: "token response without a token".into(),
            })
    }

    /// `BASE/v2/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.base)
    }

    /// Resolves an upload `Location` (absolute or relative) against the base URL.
    pub fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        }
    }

    /// Sends a request with the session's authorization. A bodiless request (`GET`,
    /// `HEAD`, `DELETE`) answered 401 under a bearer token gets a new token and one retry:
    /// tokens expire during long transfers. A request with a body is not re-sent (its body
    /// is gone); the caller sees the 401.
    pub fn send(
        &self,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
        body: impl ureq::AsSendBody,
    ) -> Result<Response<Body>> {
        let resp = self.send_once(method, url, headers, body)?;
        if resp.status() != 401 {
            return Ok(resp);
        }
        if self.basic_without_credentials.load(Ordering::Relaxed) {
            return Err(Error::NoBasicAuthCredentials {
                request: Some((method, url.to_string())),
            });
        }
        let bearer = self.bearer.lock().unwrap().clone();
        let body_bytes = read_small(resp, 1 << 16, url).unwrap_or_default();
        let unauthorized = |b: &[u8]| Error::Unauthorized {
            url: url.to_string(),
            message: non_empty(error_message(b).1, "authentication required"),
        };
        match bearer {
            Some((realm, service, scopes)) if matches!(method, "GET" | "HEAD" | "DELETE") => {
                let token = self.fetch_token(&realm, service.as_deref(), &scopes)?;
                *self.authorization.lock().unwrap() = Some(format!("Bearer {token}"));
                let resp = self.send_once(method, url, headers, ())?;
                if resp.status() == 401 {
                    let b = read_small(resp, 1 << 16, url).unwrap_or_default();
                    return Err(unauthorized(&b));
                }
                Ok(resp)
            }
            _ => Err(unauthorized(&body_bytes)),
        }
    }

    /// A `HEAD` with the session's authorization, answered as it comes (a 401 too: the
    /// caller asks again with `GET` for the registry's words, as docker's client does),
    /// except that a registry wanting basic auth from a session without credentials is
    /// docker's `Head "URL": no basic auth credentials`.
    pub fn head(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response<Body>> {
        let resp = self.send_once("HEAD", url, headers, ())?;
        if resp.status() == 401 && self.basic_without_credentials.load(Ordering::Relaxed) {
            return Err(Error::NoBasicAuthCredentials {
                request: Some(("HEAD", url.to_string())),
            });
        }
        Ok(resp)
    }

    fn send_once(
        &self,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
        body: impl ureq::AsSendBody,
    ) -> Result<Response<Body>> {
        let mut b = Request::builder().method(method).uri(url);
        if let Some(a) = self.authorization.lock().unwrap().as_deref() {
            b = b.header("Authorization", a);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(body).map_err(|e| Error::Invalid {
            what: url.to_string(),
            reason: e.to_string(),
        })?;
        self.agent.run(req).map_err(|e| Error::Http {
            method,
            url: url.to_string(),
            source: e,
        })
    }
}

fn non_empty(s: String, default: &str) -> String {
    if s.is_empty() { default.to_string() } else { s }
}

fn basic(c: &Credentials) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn loopback_and_listed_hosts_are_insecure() {
        let s = Settings {
            certs_d: "/nonexistent".into(),
            insecure: vec!["reg.example:5000".into()],
            credentials: CredentialStore::new("/nonexistent"),
            mirrors: Mirrors::default(),
        };
        assert!(s.is_insecure("127.0.0.1:5000"));
        assert!(s.is_insecure("127.3.4.5"));
        assert!(s.is_insecure("localhost:5000"));
        assert!(s.is_insecure("[::1]:5000"));
        assert!(s.is_insecure("reg.example:5000"));
        assert!(!s.is_insecure("docker.io"));
        assert!(!s.is_insecure("10.0.0.1:5000"));
    }
}
