//! The `kiln` executable is linked at a fixed address (`-no-pie`), not position-independent.
//!
//! A PIE of this size carries ~30,000 relative relocations: at every start ld.so rewrites
//! them, which copies on write each page of `.data.rel.ro` and `.got` it touches (130 page
//! faults of the 520 a no-op rebuild takes). kiln is a short-lived command (a no-op rebuild is
//! a few milliseconds), so that start-up cost was 11-15% of a no-op's CPU time and a quarter
//! of its wall time (bench/README.md, "No-op rebuilds, second pass"). The price: the
//! executable's own code and data are not at a random address (ASLR still randomises the
//! stack, heap, mmap and shared libraries).
//!
//! Only the `kiln` binary: test executables and the libraries are unchanged (their objects
//! stay position-independent code, which links into a fixed-address executable as it is).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
