//! `kiln build -`: the build context on standard input, detected as docker detects it — a tar
//! archive (plain, gzip, bzip2, xz or zstd) is the context; anything else is a Dockerfile, with
//! an empty context.

use std::io::{self, Read};
use std::path::Path;

use crate::copy::CopyStats;
use crate::copy::archive;
use crate::error::{BuildError, Result};

use super::rootpath::Root;

/// What standard input held.
#[derive(Debug)]
pub enum StdinInput {
    /// A tar archive, now extracted into the directory given.
    Context,
    /// A Dockerfile (the context is the empty directory given).
    Dockerfile(String),
}

/// Reads `input` into `spool` (a file path in the store's tmp/: archives need random access),
/// then extracts it into the existing, empty directory `dir` if it is a tar archive. Archive
/// entries are extracted as ADD extracts them: resolved inside `dir`, never outside it.
pub fn read_stdin_context(mut input: impl Read, spool: &Path, dir: &Path) -> Result<StdinInput> {
    let mut f = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(spool)
        .map_err(|e| BuildError::io("creating", spool, e))?;
    io::copy(&mut input, &mut f)
        .map_err(|e| BuildError::io("reading standard input into", spool, e))?;
    let reopen = || std::fs::File::open(spool).map_err(|e| BuildError::io("opening", spool, e));
    if let Some(tar) = archive::open_archive(reopen()?) {
        let root = Root::open(dir).map_err(|e| BuildError::io("opening", dir, e))?;
        archive::extract(
            tar,
            &root,
            Path::new(""),
            None,
            "<stdin>",
            &mut CopyStats::default(),
        )
        .map_err(|e| BuildError::Other(format!("the context on standard input: {e}")))?;
        return Ok(StdinInput::Context);
    }
    let text = super::read_capped(
        spool,
        kiln_dockerfile::limits::MAX_DOCKERFILE_BYTES,
        "the Dockerfile on standard input",
    )
    .map_err(|e| BuildError::io("reading", "standard input", e))?;
    let text = String::from_utf8(text).map_err(|_| {
        BuildError::Other("standard input is neither a tar archive nor a UTF-8 Dockerfile".into())
    })?;
    Ok(StdinInput::Dockerfile(text))
}
