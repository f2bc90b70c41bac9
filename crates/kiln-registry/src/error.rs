//! kiln-registry's errors. The messages follow docker's where docker has one.

/// What went wrong talking to a registry or moving an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reference does not parse.
    #[error("{0}")]
    Reference(#[from] kiln_image::ReferenceError),
    /// The registry has no such manifest (docker's wording).
    #[error("manifest for {reference} not found: manifest unknown: {message}")]
    ManifestUnknown {
        /// The reference as the user wrote it (familiar form).
        reference: String,
        /// The registry's message.
        message: String,
    },
    /// The registry has no such repository, or refuses to say (docker's wording).
    #[error(
        "pull access denied for {repository}, repository does not exist or may require 'docker login': denied: {message}"
    )]
    Denied {
        /// The repository (familiar form).
        repository: String,
        /// The registry's message.
        message: String,
    },
    /// The credentials were refused.
    #[error("{url}: unauthorized: {message}")]
    Unauthorized {
        /// What was asked.
        url: String,
        /// The registry's (or token server's) message.
        message: String,
    },
    /// The registry answered 401 to the credentials it was given (docker prints the
    /// registry's error as `unauthorized: authentication required`, without the URL).
    #[error("unauthorized: {message}")]
    CredentialsRefused {
        /// What was asked (`kiln login` names it, as docker's `login attempt to URL`).
        url: String,
        /// The status line's code and reason (`401 Unauthorized`).
        status: String,
        /// The registry's message.
        message: String,
    },
    /// A registry that asks for basic auth, and no credentials for it (docker's wording:
    /// `Get "URL": no basic auth credentials` for a pull, the bare words for a push).
    #[error("{}no basic auth credentials", go_request(.request))]
    NoBasicAuthCredentials {
        /// The request refused (`HEAD`, URL), or None where docker names none (push).
        request: Option<(&'static str, String)>,
    },
    /// `kiln login` with credentials the registry refused (docker's wording).
    #[error("login attempt to {url} failed with status: {status}")]
    LoginFailed {
        /// The `/v2/` endpoint asked.
        url: String,
        /// `401 Unauthorized`.
        status: String,
    },
    /// Any other unexpected HTTP status.
    #[error("{method} {url}: unexpected status {status}: {message}")]
    Status {
        /// The HTTP method.
        method: &'static str,
        /// What was asked.
        url: String,
        /// The status code.
        status: u16,
        /// The registry's message, or the start of the body.
        message: String,
    },
    /// The connection failed (after retries, where retried). Go's form, as docker's
    /// messages carry it: `Get "URL": WHY`.
    #[error("{}{source}", go_prefix(.method, .url))]
    Http {
        /// The HTTP method.
        method: &'static str,
        /// What was asked.
        url: String,
        /// The transport error.
        source: ureq::Error,
    },
    /// Reading a response body failed.
    #[error("reading {what}: {source}")]
    Read {
        /// What was being read.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A blob download that failed every attempt (the last failure says why).
    #[error("{what}: gave up after {attempts} attempts{}: {last}", resumed_text(.resumed))]
    GaveUp {
        /// What was downloaded.
        what: String,
        /// How many attempts were made.
        attempts: u32,
        /// The offsets the attempts after the first resumed at (with `Range`).
        resumed: Vec<u64>,
        /// The last attempt's failure.
        last: Box<Error>,
    },
    /// A manifest larger than the limit.
    #[error("manifest {reference} is {size} bytes, more than the {limit}-byte limit")]
    ManifestTooLarge {
        /// The manifest's reference.
        reference: String,
        /// Its announced or read size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Content did not match its digest (or size).
    #[error("{what}: content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was downloaded.
        what: String,
        /// The announced digest.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// A document that is not what the registry said it is.
    #[error("{what}: {reason}")]
    Invalid {
        /// What was read.
        what: String,
        /// Why it was refused.
        reason: String,
    },
    /// An image index without the asked platform (docker's wording).
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform {
        /// The platform asked for.
        platform: String,
    },
    /// `push` of a name the store does not have (docker's wording).
    #[error("An image does not exist locally with the tag: {0}")]
    NoSuchLocalImage(String),
    /// Credentials configuration (`config.json`, credential helpers).
    #[error("{what}: {reason}")]
    Credentials {
        /// The file or helper.
        what: String,
        /// What failed.
        reason: String,
    },
    /// TLS setup (`certs.d`).
    #[error("{path}: {reason}")]
    Tls {
        /// The certificate file.
        path: std::path::PathBuf,
        /// What failed.
        reason: String,
    },
    /// A signal stopped the transfer.
    #[error("cancelled")]
    Cancelled,
    /// The store.
    #[error(transparent)]
    Store(#[from] kiln_store::Error),
}

/// Go's `url.Error` prefix, as docker's messages carry it: `Head "URL": `.
fn go_request(request: &Option<(&'static str, String)>) -> String {
    match request {
        Some((method, url)) => go_prefix(method, url),
        None => String::new(),
    }
}

fn go_prefix(method: &str, url: &str) -> String {
    let mut m = method.to_ascii_lowercase();
    m[..1].make_ascii_uppercase();
    format!("{m} \"{url}\": ")
}

fn resumed_text(at: &[u64]) -> String {
    if at.is_empty() {
        return String::new();
    }
    let at: Vec<String> = at.iter().map(u64::to_string).collect();
    format!(" (resumed with Range at bytes {})", at.join(", "))
}

/// kiln-registry's result type.
pub type Result<T> = std::result::Result<T, Error>;
