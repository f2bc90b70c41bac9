//! Limits on hostile input: how large a Dockerfile or `.dockerignore` may be, and how much text
//! variable expansion may produce. Each is far above what real files need, and each turns what
//! would be an out-of-memory abort into an error that says what and where.
//!
//! BuildKit documents none of these. Its frontend receives the Dockerfile (and the
//! `.dockerignore`) over gRPC, whose messages it caps at 16 MiB
//! (`received message larger than max (… vs. 16777216)`), so a larger file cannot be built
//! there either. Its shell lexer has no bound on expansion: `ARG A1=${A}${A}` doubled 40 times
//! exhausts its memory as it did kiln's.

/// Largest Dockerfile read or parsed (BuildKit's gRPC message limit).
pub const MAX_DOCKERFILE_BYTES: u64 = 16 << 20;

/// Largest `.dockerignore` (or `<Dockerfile>.dockerignore`) read; the same transport limit.
pub const MAX_DOCKERIGNORE_BYTES: u64 = 16 << 20;

/// How much text expanding one word may produce beyond the word's own length: its result plus
/// the intermediate results of nested `${v:-…}`, `${v/…/…}` (counted, so nesting cannot
/// multiply the work). A word of `N` bytes expands to at most `N` + 1 MiB. Linux refuses a
/// single argument or environment string over 128 KiB (`MAX_ARG_STRLEN`) anyway; the length
/// of the word is allowed on top so that a large here-document still expands.
pub const MAX_WORD_GROWTH: usize = 1 << 20;

/// How much text expanding a whole Dockerfile may produce (every word of every instruction,
/// summed, in one build or `kiln parse`), so that many words each under
/// [`MAX_WORD_GROWTH`] cannot add up to gigabytes.
pub const MAX_EXPANDED_BYTES: usize = 64 << 20;

/// How much environment the RUN instructions of one build get, summed over the RUNs (each
/// `K=V` counted with its `=` and terminating NUL, as `execve` sees it). Every RUN carries its whole
/// environment (as BuildKit's exec ops do), so a file that alternates new ENV variables and
/// RUNs is quadratic in memory: 12,500 ENV + 12,500 RUN lines took 24 GB to plan.
pub const MAX_RUN_ENV_BYTES: usize = 64 << 20;

/// `16 MiB` for the limits above (all are whole MiB).
pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}
