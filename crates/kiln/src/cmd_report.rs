//! `kiln report IMAGE`: what an image ships (sizes, layers, leftovers, wasted and duplicated
//! bytes, the build's stages when it was built here), optionally against another image, as
//! text, JSON or a self-contained HTML page (kiln-report does the work).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use kiln_store::Store;

use crate::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Report what an image ships: sizes, layers, build leftovers, wasted bytes
    Report(ReportArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// For a terminal.
    Text,
    /// One JSON document.
    Json,
    /// A self-contained HTML page (inline CSS and SVG).
    Html,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Compare with another image (e.g. the single-stage build of the same app)
    #[arg(long, value_name = "OTHER")]
    pub compare: Option<String>,
    /// Directory levels of the size tree
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub depth: u32,
    /// Entries listed per level and per list
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub top: u32,
    /// Write to a file instead of STDOUT ('-' is STDOUT)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The image.
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

pub fn run(cmd: Command, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let Command::Report(a) = cmd;
    let store = Store::open(global.store_root())?;
    let mut names = vec![a.image.as_str()];
    if let Some(o) = &a.compare {
        names.push(o.as_str());
    }
    let images = kiln_report::load_images(&store, &names)?;
    let record = store.latest_build_record(&images[0].record.id)?;
    let opts = kiln_report::report::Options {
        depth: a.depth as usize,
        top: a.top as usize,
    };
    let r = kiln_report::report::report(&images[0], record.as_ref(), images.get(1), &opts);
    let out = render(&r, a.format)?;
    match a.output.as_deref() {
        None => write_stdout(&out)?,
        Some(p) if p == Path::new("-") => write_stdout(&out)?,
        Some(p) => write_file(p, out.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln build --report`: the report of the image a build just stored, to standard output
/// or (when that carries the build's ID or archive) standard error.
pub fn report_built(
    root: &Path,
    image_id: &str,
    name: Option<&str>,
    format: ReportFormat,
    to_stderr: bool,
) -> anyhow::Result<()> {
    let store = Store::open(root)?;
    let id = kiln_store::Digest::parse(image_id)
        .with_context(|| format!("--report: image ID {image_id:?}"))?;
    if store.image(&id)?.is_none() {
        anyhow::bail!(
            "--report: the image {image_id} was exported (--output) and not kept in the image store; nothing to report"
        );
    }
    let mut images = kiln_report::load_images(&store, &[image_id])?;
    if let Some(n) = name {
        // Named as the build tagged it; loaded by ID, which no concurrent tag can move.
        images[0].name = n.to_string();
    }
    let record = store.latest_build_record(&images[0].record.id)?;
    let r = kiln_report::report::report(&images[0], record.as_ref(), None, &Default::default());
    let out = render(&r, format)?;
    if to_stderr {
        let mut e = std::io::stderr().lock();
        e.write_all(out.as_bytes())?;
        e.flush()?;
        Ok(())
    } else {
        Ok(write_stdout(&out)?)
    }
}

fn render(r: &kiln_report::report::Report, format: ReportFormat) -> anyhow::Result<String> {
    Ok(match format {
        ReportFormat::Text => kiln_report::text::render(r),
        ReportFormat::Json => serde_json::to_string_pretty(r)? + "\n",
        ReportFormat::Html => kiln_report::html::render(r),
    })
}

fn write_stdout(s: &str) -> std::io::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(s.as_bytes())?;
    o.flush()
}

/// A regular file is replaced whole (temp file + rename); anything else (a device, a FIFO) is
/// written in place.
fn write_file(dest: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let in_place = std::fs::metadata(dest).is_ok_and(|m| !m.is_file());
    if in_place {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(dest)
            .with_context(|| format!("opening {}", dest.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("writing {}", dest.display()))?;
        return Ok(());
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // 0666 less the umask, as any file a command creates.
    let mut tmp = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.persist(dest)
        .with_context(|| format!("writing {}", dest.display()))?;
    Ok(())
}
