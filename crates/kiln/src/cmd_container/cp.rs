//! `cp`: files between a container and the host, both ways, `-` for a tar stream, as docker's
//! `cp`. The container's root is its live root (`/proc/PID/root`, volumes included) while it
//! runs, else its overlay mounted in this process's private mount namespace. Every path in
//! the container is opened inside that root (`openat2` with `RESOLVE_IN_ROOT`: a symlink in the
//! container never leads to the host); what comes in is written by kiln-snapshot's hardened
//! extraction beneath the opened directory, owned by root unless `-a`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::rootfs::open_in_root;
use anyhow::{Context, bail};
use clap::Args;
use kiln_store::Store;

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// SRC_PATH, CONTAINER:SRC_PATH or - (a tar stream on stdin)
    #[arg(value_name = "SRC", allow_hyphen_values = true)]
    pub src: String,
    /// DEST_PATH, CONTAINER:DEST_PATH or - (a tar stream on stdout)
    #[arg(value_name = "DEST", allow_hyphen_values = true)]
    pub dest: String,
}

/// `NAME:PATH` when the part before the first `:` names a container (not a path).
fn split(arg: &str) -> Option<(&str, &str)> {
    let (name, path) = arg.split_once(':')?;
    (!name.is_empty() && !name.contains('/') && !name.starts_with('.')).then_some((name, path))
}

/// (parent directory, last component) of a path in the container; "." for `/` or `dir/.`.
fn parent_and_name(path: &str) -> (String, String) {
    let p = path.trim_end_matches('/');
    if p.is_empty() {
        return ("/".into(), ".".into());
    }
    match p.rsplit_once('/') {
        Some((parent, name)) => (
            if parent.is_empty() {
                "/".into()
            } else {
                parent.to_string()
            },
            name.to_string(),
        ),
        None => (".".into(), p.to_string()),
    }
}

/// A path other processes can use for `fd`.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        fd.as_raw_fd()
    ))
}

/// The container's root: its live root while it runs, else its overlay mounted here (the
/// mount lives in this process's private namespace and goes with it).
fn container_root(
    store: &Store,
    c: &kiln_store::ContainerRecord,
) -> anyhow::Result<(OwnedFd, Option<kiln_snapshot::ActiveSnapshot>)> {
    let open_dir = |p: &Path| -> anyhow::Result<OwnedFd> {
        let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
        Ok(f.into())
    };
    if c.state.is_live() && c.pid != 0 {
        return Ok((open_dir(Path::new(&format!("/proc/{}/root", c.pid)))?, None));
    }
    kiln_build::namespace::enter_private_mount_namespace()
        .context("kiln cp of a stopped container needs root (a private mount namespace)")?;
    let (lease, layers) = super::rootfs::image_layers(store, &c.image)?;
    let lowers: Vec<PathBuf> = layers.iter().map(|(_, d)| d.clone()).collect();
    let (mount, root) = super::rootfs::mount_rootfs(store, &c.id, &lowers, false)?;
    drop(lease);
    Ok((open_dir(&root)?, Some(mount)))
}

pub fn cp(store: &Store, a: CpArgs) -> anyhow::Result<()> {
    match (split(&a.src), split(&a.dest)) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
        (Some((name, path)), None) => copy_out(store, name, path, &a.dest, a.follow_link),
        (None, Some((name, path))) => copy_in(store, &a.src, name, path, a.archive, a.follow_link),
    }
}

/// GNU tar's option that renames the first component of every member to `name` (symlink
/// targets left alone: `S`).
fn rename_first_component(name: &str) -> String {
    let esc = name
        .replace('\\', "\\\\")
        .replace('&', "\\&")
        .replace('|', "\\|");
    format!("--transform=s|^[^/]*|{esc}|S")
}

/// What `parent/leaf` in the container finally names once every symlink it is (the last
/// component, then the targets' last components) is followed, each target resolved inside the
/// root as the container would see it (`-L`).
fn follow_in_root(root: &OwnedFd, parent: &str, leaf: &str) -> anyhow::Result<(String, String)> {
    let (mut parent, mut leaf) = (parent.to_string(), leaf.to_string());
    for _ in 0..40 {
        if leaf == "." || leaf == ".." {
            return Ok((parent, leaf));
        }
        let dir = open_in_root(root, &parent, libc::O_PATH | libc::O_DIRECTORY)?;
        match rustix::fs::readlinkat(&dir, leaf.as_str(), Vec::new()) {
            Ok(target) => {
                let target = target.to_string_lossy().into_owned();
                let full = if target.starts_with('/') {
                    target
                } else {
                    format!("{parent}/{target}")
                };
                (parent, leaf) = parent_and_name(&full);
            }
            // Not a link (or missing: the caller's check reports it).
            Err(_) => return Ok((parent, leaf)),
        }
    }
    bail!("too many levels of symbolic links")
}

fn copy_out(store: &Store, name: &str, path: &str, dest: &str, follow: bool) -> anyhow::Result<()> {
    let c = store.find_container(name)?;
    let (root, mount) = container_root(store, &c)?;
    let (parent, leaf) = parent_and_name(path);
    let missing = || anyhow::anyhow!("No such container:path: {name}:{path}");
    // -L: copy what the link names, under the link's own name (docker's rebase).
    let shown = leaf.clone();
    let (parent, leaf) = if follow {
        follow_in_root(&root, &parent, &leaf).map_err(|_| missing())?
    } else {
        (parent, leaf)
    };
    let dir =
        open_in_root(&root, &parent, libc::O_PATH | libc::O_DIRECTORY).map_err(|_| missing())?;
    if leaf != "." {
        let c_leaf = std::ffi::CString::new(leaf.as_str())?;
        // SAFETY: fstatat on an fd we own, a NUL-terminated name, a local stat buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe {
            libc::fstatat(
                dir.as_raw_fd(),
                c_leaf.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        } != 0
        {
            return Err(missing());
        }
    }
    let status = if dest == "-" {
        let mut tar = Command::new("tar");
        tar.arg("-C").arg(fd_path(&dir)).args(["-cf", "-"]);
        if shown != leaf {
            tar.arg(rename_first_component(&shown));
        }
        tar.args(["--", &leaf])
            .stdin(Stdio::null())
            .status()
            .context("running tar")?
    } else if shown != leaf {
        // Followed: the copy is named as the link was (into DEST when it is a directory).
        let target = if Path::new(dest).is_dir() {
            Path::new(dest).join(&shown)
        } else {
            PathBuf::from(dest)
        };
        Command::new("cp")
            .args(["-a", "-T", "--"])
            .arg(fd_path(&dir).join(&leaf))
            .arg(target)
            .status()
            .context("running cp")?
    } else {
        // cp -a copies links as links: nothing in the container is followed out of it.
        Command::new("cp")
            .arg("-a")
            .arg("--")
            .arg(fd_path(&dir).join(&leaf))
            .arg(dest)
            .status()
            .context("running cp")?
    };
    drop(mount);
    if !status.success() {
        bail!("copying {name}:{path} to {dest} failed");
    }
    Ok(())
}

fn copy_in(
    store: &Store,
    src: &str,
    name: &str,
    path: &str,
    archive: bool,
    follow: bool,
) -> anyhow::Result<()> {
    let c = store.find_container(name)?;
    if src != "-" && std::fs::symlink_metadata(src).is_err() {
        bail!("lstat {src}: no such file or directory");
    }
    // -L: what the link names on the host, copied under the link's name (docker's
    // `filepath.EvalSymlinks` + rebase).
    let names_contents = matches!(parent_and_name(src).1.as_str(), "." | "..");
    let resolved = if follow && src != "-" && !names_contents {
        let r = std::fs::canonicalize(src).with_context(|| format!("following the link {src}"))?;
        Some(r.to_string_lossy().into_owned())
    } else {
        None
    };
    let (root, mount) = container_root(store, &c)?;
    // Into DEST when it is a directory; else DEST names the copy, in its parent.
    let (dir, rename) = match open_in_root(&root, path, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(d) => (d, None),
        Err(_) if src == "-" => {
            bail!("Could not find the file {path} in container {name}")
        }
        Err(_) => {
            let (parent, leaf) = parent_and_name(path);
            let d =
                open_in_root(&root, &parent, libc::O_PATH | libc::O_DIRECTORY).map_err(|_| {
                    anyhow::anyhow!("Could not find the file {parent} in container {name}")
                })?;
            (d, Some(leaf))
        }
    };
    let opts = kiln_snapshot::ExtractOptions {
        same_owner: archive,
        ..Default::default()
    };
    let target = fd_path(&dir);
    let result = if src == "-" {
        kiln_snapshot::apply_layer(std::io::stdin().lock(), &target, &opts)
            .map(|_| ())
            .map_err(anyhow::Error::from)
    } else {
        let (_, shown) = parent_and_name(src);
        let (sparent, sleaf) = parent_and_name(resolved.as_deref().unwrap_or(src));
        let mut tar = Command::new("tar");
        tar.arg("-C").arg(&sparent).arg("-cf").arg("-");
        let name = rename.clone().unwrap_or(shown);
        if name != sleaf {
            tar.arg(rename_first_component(&name));
        }
        let mut child = tar
            .arg("--")
            .arg(&sleaf)
            .stdout(Stdio::piped())
            .spawn()
            .context("running tar")?;
        let out = child.stdout.take().context("tar's output")?;
        let r = kiln_snapshot::apply_layer(out, &target, &opts);
        let st = child.wait()?;
        match r {
            Err(e) => Err(e.into()),
            Ok(_) if !st.success() => Err(anyhow::anyhow!("tar of {src} failed")),
            Ok(_) => Ok(()),
        }
    };
    drop(mount);
    result.with_context(|| format!("copying {src} to {name}:{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_refs_and_paths_split_as_docker() {
        assert_eq!(split("web:/etc/x"), Some(("web", "/etc/x")));
        assert_eq!(split("/tmp/a:b"), None);
        assert_eq!(split("./a:b"), None);
        assert_eq!(split("file"), None);
        assert_eq!(
            parent_and_name("/etc/passwd"),
            ("/etc".into(), "passwd".into())
        );
        assert_eq!(parent_and_name("/etc/"), ("/".into(), "etc".into()));
        assert_eq!(parent_and_name("/"), ("/".into(), ".".into()));
        assert_eq!(parent_and_name("rel"), (".".into(), "rel".into()));
    }
}
