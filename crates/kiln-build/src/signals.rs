//! Ctrl-C: the first SIGINT/SIGTERM sets the build's cancel flag so running steps kill their
//! containers and the build unwinds (unmounting, removing temporary directories); a second
//! one exits at once (the private mount namespace and PDEATHSIG still clean up).

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

static FLAG: AtomicPtr<AtomicBool> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_signal(_sig: libc::c_int) {
    let p = FLAG.load(Ordering::SeqCst);
    if p.is_null() {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
    // SAFETY: `install` stores a pointer to an AtomicBool that outlives the handler's
    // installation (`uninstall` clears it before the flag is dropped).
    let flag = unsafe { &*p };
    if flag.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

/// Route SIGINT and SIGTERM to `flag` until [`uninstall`].
pub fn install(flag: &AtomicBool) {
    FLAG.store(
        flag as *const AtomicBool as *mut AtomicBool,
        Ordering::SeqCst,
    );
    // SAFETY: installing a handler that only touches atomics and calls _exit.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

pub fn uninstall() {
    FLAG.store(std::ptr::null_mut(), Ordering::SeqCst);
}
