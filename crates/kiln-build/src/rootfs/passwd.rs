//! Users and groups of an image root: `/etc/passwd` and `/etc/group` read inside the root
//! (symlinks never leave it), for `COPY --chown` and `USER` of RUN steps.

use std::io::Read;
use std::path::Path;

use crate::rootfs::path::{self as rootpath, Root};

/// BuildKit refuses user files larger than this.
const MAX_FILE: u64 = 10 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("unable to find user {name}: no matching entries in passwd file")]
    NoUser { name: String },
    #[error("unable to find group {name}: no matching entries in group file")]
    NoGroup { name: String },
    #[error("invalid user specification {spec:?}: {why}")]
    BadSpec { spec: String, why: &'static str },
    #[error("reading {path} in the image: {message}")]
    Read { path: String, message: String },
}

/// A user resolved for a RUN step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the groups that list the user by name.
    pub additional_gids: Vec<u32>,
}

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

fn parse_id(s: &str) -> Option<u32> {
    // -1 (u32::MAX) means "unchanged" to chown(2); refuse it.
    s.parse::<u32>().ok().filter(|v| *v != u32::MAX)
}

/// Read a file inside `root` (missing → `None`).
fn read_in_root(root: &Path, path: &str) -> Result<Option<String>, PasswdError> {
    let err = |message: String| PasswdError::Read {
        path: path.to_string(),
        message,
    };
    let r = match Root::open(root) {
        Ok(r) => r,
        Err(e) => return Err(err(e.to_string())),
    };
    let res = rootpath::resolve(r.fd(), path.as_bytes(), true, &|_| true);
    let res = match res {
        Ok(res) if res.exists => res,
        Ok(_) | Err(rootpath::ResolveError::NotDir { .. }) => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    let fd = match rootpath::open_file(r.fd(), &res.rel) {
        Ok(fd) => fd,
        Err(e) => return Err(err(e.to_string())),
    };
    let f = std::fs::File::from(fd);
    let meta = f.metadata().map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    let mut buf = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| err(e.to_string()))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(err(format!("exceeds {MAX_FILE} bytes")));
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Parse `/etc/passwd` text (malformed lines are skipped, as libc does).
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: parse_id(f.get(2)?)?,
                gid: parse_id(f.get(3)?)?,
                home: f.get(5).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// Parse `/etc/group` text.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: parse_id(f.get(2)?)?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The users of the image at `root` (empty when it has no `/etc/passwd`).
pub fn users(root: &Path) -> Result<Vec<PasswdEntry>, PasswdError> {
    Ok(read_in_root(root, "/etc/passwd")?
        .map(|t| parse_passwd(&t))
        .unwrap_or_default())
}

/// The groups of the image at `root`.
pub fn groups(root: &Path) -> Result<Vec<GroupEntry>, PasswdError> {
    Ok(read_in_root(root, "/etc/group")?
        .map(|t| parse_group(&t))
        .unwrap_or_default())
}

fn split_spec(spec: &str) -> Result<(&str, Option<&str>), PasswdError> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if u.is_empty() {
        return Err(PasswdError::BadSpec {
            spec: spec.to_string(),
            why: "empty user",
        });
    }
    Ok((u, g))
}

/// `COPY --chown=user[:group]` → (uid, gid). Numeric ids need no files (a uid alone gives
/// gid = uid); names go through the image's `/etc/passwd` (its primary group) and
/// `/etc/group`. An empty user or group (`user:`, `:group`, `:` — unset variables) means id 0,
/// as BuildKit reads them.
pub fn resolve_chown(root: &Path, spec: &str) -> Result<(u32, u32), PasswdError> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, mut gid) = match parse_id(u) {
        _ if u.is_empty() => (0, 0),
        Some(uid) => (uid, uid),
        None => {
            let e = users(root)?
                .into_iter()
                .find(|e| e.name == u)
                .ok_or_else(|| PasswdError::NoUser {
                    name: u.to_string(),
                })?;
            (e.uid, e.gid)
        }
    };
    if let Some(g) = g {
        gid = match (g.is_empty(), parse_id(g)) {
            (true, _) => 0,
            (false, Some(gid)) => gid,
            (false, None) => group_id(root, g)?,
        };
    }
    Ok((uid, gid))
}

fn group_id(root: &Path, name: &str) -> Result<u32, PasswdError> {
    groups(root)?
        .into_iter()
        .find(|e| e.name == name)
        .map(|e| e.gid)
        .ok_or_else(|| PasswdError::NoGroup {
            name: name.to_string(),
        })
}

/// `USER user[:group]` for a RUN step, as runc resolves it: a numeric uid missing from
/// `/etc/passwd` is fine (gid 0 unless given), a missing name is an error; supplementary
/// groups are those listing the user by name (none when a group is given explicitly).
pub fn resolve_user(root: &Path, spec: &str) -> Result<Identity, PasswdError> {
    // No user: uid 0, whether or not /etc/passwd names it (runc's and BuildKit's default;
    // an image without /etc/passwd runs as root, while `USER root` needs the entry).
    let spec = if spec.is_empty() { "0" } else { spec };
    let (u, g) = split_spec(spec)?;
    let all = users(root)?;
    let entry = match parse_id(u) {
        Some(uid) => all
            .iter()
            .find(|e| e.uid == uid)
            .cloned()
            .or(Some(PasswdEntry {
                name: String::new(),
                uid,
                gid: 0,
                home: "/".into(),
            })),
        None => all.iter().find(|e| e.name == u).cloned(),
    }
    .ok_or_else(|| PasswdError::NoUser {
        name: u.to_string(),
    })?;
    let mut user = Identity {
        uid: entry.uid,
        gid: entry.gid,
        additional_gids: Vec::new(),
    };
    match g {
        Some(g) if !g.is_empty() => {
            user.gid = match parse_id(g) {
                Some(gid) => gid,
                None => group_id(root, g)?,
            };
        }
        _ => {
            if !entry.name.is_empty() {
                user.additional_gids = groups(root)?
                    .into_iter()
                    .filter(|gr| gr.members.contains(&entry.name))
                    .map(|gr| gr.gid)
                    .filter(|gid| *gid != user.gid)
                    .collect();
            }
        }
    }
    Ok(user)
}
