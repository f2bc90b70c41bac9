//! The build's signal handling: a signal sets the cancel flag of the newest guard and the
//! process lives on; after every guard is gone (however the build returned) the handler has
//! no flag to touch, so it exits as the default action would. One test: signals are
//! process-wide.

use std::sync::atomic::Ordering;

use kiln_build::signals;

#[test]
fn signals_set_the_guarded_flag_and_guards_unregister_on_any_return() {
    fn early_return() -> Result<(), ()> {
        let _g = signals::install();
        let failed: Result<(), ()> = Err(());
        failed?;
        Ok(())
    }
    // A guard dropped by an early `?` return leaves nothing dangling.
    assert!(early_return().is_err());

    let outer = signals::install();
    let inner = signals::install();
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        inner.flag().store(false, Ordering::SeqCst);
        // SAFETY: raising a signal whose handler only stores to an atomic.
        assert_eq!(unsafe { libc::raise(sig) }, 0);
        assert!(inner.flag().load(Ordering::SeqCst), "signal {sig}");
        assert!(!outer.flag().load(Ordering::SeqCst), "signal {sig}");
    }
    // Dropping the older guard does not unregister the newer one.
    drop(outer);
    inner.flag().store(false, Ordering::SeqCst);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::raise(libc::SIGINT) }, 0);
    assert!(inner.flag().load(Ordering::SeqCst));
    drop(inner);
    // With no guard left a signal would end the process: check it in a child.
    // SAFETY: fork in a test process; the child only calls async-signal-safe functions.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: raise and _exit are async-signal-safe.
        unsafe {
            libc::raise(libc::SIGINT);
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for the child just forked.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status));
    assert_eq!(libc::WEXITSTATUS(status), 130, "exits as after Ctrl-C");
}
