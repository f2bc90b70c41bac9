//! `kiln build -`: the build context on standard input, detected as docker detects it — a tar
//! archive (plain, gzip, bzip2, xz or zstd) is the context; anything else is a Dockerfile, with
//! an empty context.

use std::io::{self, Read};
use std::path::Path;

use super::remote::{ContextInput, RemoteContextError, unpack};

/// Reads `input` into `spool` (a file path in the store's tmp/: archives need random access),
/// then extracts it into the existing, empty directory `dir` if it is a tar archive. Archive
/// entries are extracted as ADD extracts them: resolved inside `dir`, never outside it.
pub fn read_stdin_context(
    mut input: impl Read,
    spool: &Path,
    dir: &Path,
) -> Result<ContextInput, RemoteContextError> {
    let io_err = |action, e| RemoteContextError::Io {
        action,
        path: spool.to_path_buf(),
        source: e,
    };
    let mut f = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(spool)
        .map_err(|e| io_err("creating", e))?;
    io::copy(&mut input, &mut f).map_err(|e| io_err("reading standard input into", e))?;
    drop(f);
    unpack(spool, dir, "standard input", true)
}
