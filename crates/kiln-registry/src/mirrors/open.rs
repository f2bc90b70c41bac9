//! Opening a pull at the first Docker Hub mirror that serves the image (see `super`).

use kiln_image::ImageRef;

use super::is_docker_hub;
use crate::client::{Session, Settings};
use crate::error::{Error, Result};
use crate::manifest::{self, Fetched};

/// The session a pull of `reference` reads from, and its top manifest (`wanted`: a tag or
/// digest; `scopes`: the pull's): the first Docker Hub mirror that serves it, else the
/// image's own registry.
/// `opened` runs once, when the top manifest has been fetched.
pub(crate) fn open_for_pull(
    settings: &Settings,
    reference: &ImageRef,
    wanted: &str,
    scopes: &[String],
    opened: &dyn Fn(),
) -> Result<(Session, Fetched)> {
    let repo = reference.path();
    let familiar = reference.familiar();
    if is_docker_hub(reference.domain()) {
        if let Some(e) = &settings.mirrors.invalid {
            return Err(Error::Invalid {
                what: "registry mirrors".into(),
                reason: e.clone(),
            });
        }
        for m in &settings.mirrors.endpoints {
            // A mirror's own login, if any (never Docker Hub's credentials).
            let host = m.split_once("://").map_or(m.as_str(), |(_, h)| h);
            let creds = settings.credentials.get(host).ok().flatten();
            let attempt = Session::open_at(settings, reference.domain(), m, scopes, creds)
                .and_then(|s| manifest::fetch(&s, repo, wanted, &familiar).map(|f| (s, f)));
            // As docker: any failure of a mirror falls back to the next endpoint.
            if let Ok(found) = attempt {
                opened();
                return Ok(found);
            }
        }
    }
    let sess = Session::open(settings, reference.domain(), scopes)?;
    let top = manifest::fetch(&sess, repo, wanted, &familiar).map_err(|e| match e {
        // The session is authorized, yet the manifest is refused: docker's words (what Docker
        // Hub answers for a repository that does not exist, or one the login cannot read).
        Error::Unauthorized { message, .. } => Error::Denied {
            repository: reference.name_only().familiar(),
            message,
        },
        e => e,
    })?;
    // After the manifest, as docker: a missing tag prints its error and nothing else.
    opened();
    Ok((sess, top))
}
