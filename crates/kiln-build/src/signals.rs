//! Ctrl-C: the first SIGINT, SIGTERM or SIGHUP sets the build's cancel flag, so running steps
//! kill their containers, an export in progress stops writing, and the build unwinds
//! (unmounting, removing temporary directories and partial blobs); a second one exits at once
//! (the private mount namespace and PDEATHSIG still clean up, and the next `kiln` removes the
//! temp files of a dead process).
//!
//! The flag the handler sets is `'static` (leaked, one byte per build), so the handler can
//! never see a dangling pointer, whatever way the build returns; the [`SignalGuard`] only
//! unregisters it.

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

static FLAG: AtomicPtr<AtomicBool> = AtomicPtr::new(std::ptr::null_mut());

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn on_signal(_sig: libc::c_int) {
    let p = FLAG.load(Ordering::SeqCst);
    if p.is_null() {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
    // SAFETY: FLAG only ever holds null or a pointer to a leaked ('static) AtomicBool.
    let flag = unsafe { &*p };
    if flag.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

/// Routes SIGINT, SIGTERM and SIGHUP to [`SignalGuard::flag`] while it lives.
#[derive(Debug)]
pub struct SignalGuard {
    flag: &'static AtomicBool,
}

impl SignalGuard {
    /// Set by the first signal.
    pub fn flag(&self) -> &'static AtomicBool {
        self.flag
    }
}

/// Installs the handlers for a new cancel flag. The newest guard wins; dropping an older one
/// leaves the newer one in place.
pub fn install() -> SignalGuard {
    let flag: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    FLAG.store(
        flag as *const AtomicBool as *mut AtomicBool,
        Ordering::SeqCst,
    );
    for sig in SIGNALS {
        // SAFETY: installing a handler that only touches atomics and calls _exit.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
    SignalGuard { flag }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        let me = self.flag as *const AtomicBool as *mut AtomicBool;
        // With no build to cancel, the handler exits at once (as the default action would).
        let _ = FLAG.compare_exchange(me, std::ptr::null_mut(), Ordering::SeqCst, Ordering::SeqCst);
    }
}
