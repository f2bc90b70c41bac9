//! kiln-registry: images between the store and OCI distribution registries.
//!
//! It owns the registry protocol (a small client on `ureq` with rustls: no async runtime, as
//! nowhere else in kiln), authentication (anonymous, basic, bearer tokens per repository
//! scope; docker's `config.json` and credential helpers), and the two transfers:
//! [`pull`] (index → platform manifest → digest-verified blobs → an image record) and
//! [`push`] (layers compressed for the wire once, skipped or mounted when the registry has
//! them, then the manifest). It never prints: progress goes to a [`Progress`].
//!
//! ```no_run
//! let store = kiln_store::Store::open("/var/lib/kiln")?;
//! let settings = kiln_registry::Settings::from_env();
//! let r = kiln_image::ImageRef::parse("127.0.0.1:5000/app:1")?;
//! let pulled = kiln_registry::pull(&store, &r, &kiln_registry::PullOptions {
//!     settings: &settings,
//!     platform: kiln_image::Platform::host(),
//!     progress: &kiln_registry::Quiet,
//! })?;
//! println!("{}", pulled.image.id);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod blobs;
mod client;
pub mod credentials;
mod error;
pub mod manifest;
pub mod mirrors;
mod progress;
mod pull;
mod push;

pub use client::{Session, Settings, api_host};
pub use credentials::{CredentialStore, Credentials};
pub use error::{Error, Result};
pub use mirrors::Mirrors;
pub use progress::{Event, LayerStatus, Progress, Quiet};
pub use pull::{PullOptions, Pulled, PulledAll, pull, pull_all};
pub use push::{PushOptions, Pushed, push, push_image};

/// Checks `creds` against the registry of `domain` (a `/v2/` ping answered with them) and,
/// if they work, stores them as `docker login` does. Returns whether they went into the
/// file unencrypted (docker then warns).
pub fn login(settings: &Settings, domain: &str, creds: &Credentials) -> Result<bool> {
    Session::open_with(settings, domain, &[], Some(creds.clone())).map_err(|e| match e {
        // docker's words for a basic-auth registry that refuses the password.
        Error::CredentialsRefused { url, status, .. } => Error::LoginFailed { url, status },
        e => e,
    })?;
    settings.credentials.store(domain, creds)
}
