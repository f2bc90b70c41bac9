//! What a pull or push reports while it runs. The library never prints; the CLI renders
//! these as docker's lines.

use kiln_image::Digest;

/// A pull's or push's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `latest: Pulling from library/busybox`.
    PullingFrom {
        /// The tag, or the familiar `NAME@DIGEST` of a digest reference (docker's).
        tag: String,
        /// The repository path (`library/busybox`).
        repository: String,
    },
    /// `The push refers to repository [127.0.0.1:5000/x]`.
    PushRefersTo {
        /// The repository's full familiar name.
        repository: String,
    },
    /// One layer's state changed.
    Layer {
        /// The layer's blob digest (as it is on the wire).
        digest: Digest,
        /// What happened.
        status: LayerStatus,
    },
}

/// One layer's step, in docker's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerStatus {
    /// The store has it (`Already exists`).
    AlreadyExists,
    /// `Pulling fs layer`.
    PullingFsLayer,
    /// `Waiting`: queued behind the transfers already running (pull and push).
    Waiting,
    /// `Downloading` (bytes so far, total).
    Downloading(u64, u64),
    /// The connection dropped or the body ended short; the next attempt resumes at this
    /// offset after a pause.
    Retrying {
        /// Bytes kept.
        offset: u64,
        /// The attempt about to be made (2 for the first retry).
        attempt: u32,
        /// Attempts in all before the pull gives up.
        of: u32,
        /// The pause before it.
        delay: std::time::Duration,
    },
    /// `Verifying Checksum`.
    Verifying,
    /// `Download complete`.
    DownloadComplete,
    /// `Extracting` (compressed bytes unpacked so far, total): after `Download complete`,
    /// while the unpack that ran beside the download finishes.
    Extracting(u64, u64),
    /// `Pull complete`: verified, and its snapshot (the unpacked layer) committed.
    PullComplete,
    /// `Preparing` (push).
    Preparing,
    /// Compressing a layer for the wire (push; once per layer and compression).
    Compressing,
    /// `Pushing` (bytes so far, total).
    Pushing(u64, u64),
    /// `Pushed`.
    Pushed,
    /// `Layer already exists`.
    LayerAlreadyExists,
    /// `Mounted from REPO`.
    MountedFrom(String),
}

impl LayerStatus {
    /// docker's text for a plain (non-terminal) line, or None for pure progress.
    pub fn text(&self) -> Option<String> {
        Some(match self {
            LayerStatus::AlreadyExists => "Already exists".into(),
            LayerStatus::PullingFsLayer => "Pulling fs layer".into(),
            LayerStatus::Waiting => "Waiting".into(),
            LayerStatus::Downloading(..)
            | LayerStatus::Extracting(..)
            | LayerStatus::Pushing(..)
            | LayerStatus::Compressing => {
                return None;
            }
            LayerStatus::Retrying {
                offset,
                attempt,
                of,
                delay,
            } => format!(
                "Retrying in {:.2} seconds (attempt {attempt} of {of}, resuming at byte {offset})",
                delay.as_secs_f64()
            ),
            LayerStatus::Verifying => "Verifying Checksum".into(),
            LayerStatus::DownloadComplete => "Download complete".into(),
            LayerStatus::PullComplete => "Pull complete".into(),
            LayerStatus::Preparing => "Preparing".into(),
            LayerStatus::Pushed => "Pushed".into(),
            LayerStatus::LayerAlreadyExists => "Layer already exists".into(),
            LayerStatus::MountedFrom(r) => format!("Mounted from {r}"),
        })
    }
}

/// Receives events; called from several threads.
pub trait Progress: Sync {
    /// One event.
    fn event(&self, e: Event);
}

/// Discards events.
pub struct Quiet;

impl Progress for Quiet {
    fn event(&self, _: Event) {}
}

impl<F: Fn(Event) + Sync> Progress for F {
    fn event(&self, e: Event) {
        self(e)
    }
}
