//! The collection lock: builds hold it shared, whatever deletes build-cache records holds it
//! exclusive.
//!
//! A build that takes a step from the cache starts using that record's snapshot and blob at
//! once. Protecting them with a lease row per hit would cost a write transaction per cached
//! step (half of a no-op rebuild's time); instead a build holds `gc.lock` shared for its
//! whole life, so a prune that removes cache records waits until no build runs (or, for the
//! automatic trim after a build, skips). Content a build writes is still protected by its
//! lease until a cache record or image references it. The kernel drops the lock with the
//! process, so a crashed build never blocks a prune.

use std::fs::{File, OpenOptions};

use crate::Store;
use crate::error::{IoContext, Result};

/// Held by a running build: cache records cannot be removed meanwhile.
#[derive(Debug)]
pub struct BuildGuard {
    _file: File,
}

/// Held while cache records are removed and their content collected.
#[derive(Debug)]
pub(crate) struct CollectGuard {
    _file: File,
}

impl Store {
    fn open_gc_lock(&self) -> Result<File> {
        let p = self.layout().gc_lock_path();
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx("opening", &p)
    }

    /// Takes the collection lock shared for a build (waits while a prune runs).
    pub fn build_guard(&self) -> Result<BuildGuard> {
        let f = self.open_gc_lock()?;
        let p = self.layout().gc_lock_path();
        f.lock_shared().ctx("locking", &p)?;
        Ok(BuildGuard { _file: f })
    }

    /// Takes the collection lock exclusively: waits for running builds when `wait`, else
    /// returns None if one runs.
    pub(crate) fn collect_guard(&self, wait: bool) -> Result<Option<CollectGuard>> {
        let f = self.open_gc_lock()?;
        let p = self.layout().gc_lock_path();
        if wait {
            f.lock().ctx("locking", &p)?;
        } else {
            match f.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(e).ctx("locking", &p),
            }
        }
        Ok(Some(CollectGuard { _file: f }))
    }

    /// Is a build holding the collection lock (a prune would wait)?
    pub fn builds_running(&self) -> bool {
        matches!(self.collect_guard(false), Ok(None))
    }
}
