//! kiln's own rules: the "build fat, ship thin" practices of multi-stage builds. Each fires
//! only where a reviewer would agree: package-cache rules only in the stages the final image
//! is made of, root only when nothing says otherwise, "fat" only when the final stage ships
//! the toolchain or the dependency tree. docs/check.md has a section per rule.

use std::collections::BTreeMap;

use super::shell::{
    installs_project, is_compile, is_dependency_install, program, run_text, simple_commands,
    subcommand,
};
use super::{ContextInfo, Input, Out};
use crate::ast::{Command, Dockerfile, Instruction, Stage};
use crate::expand::Lexer;

pub(super) fn run(input: &Input<'_>, out: &mut Out) {
    let df = input.df;
    let Some(last) = final_stage(df, input.target) else {
        return;
    };
    let shipped = chain(df, last);
    let base_images = resolved_bases(df);
    for st in &df.stages {
        unpinned_base_image(df, st, &base_images, out);
        source_before_install(st, out);
        for ins in &st.instructions {
            add_instead_of_copy(ins, out);
            secret_file_copied(ins, input.context, out);
        }
    }
    for st in &shipped {
        for ins in &st.instructions {
            package_cache_rules(ins, out);
        }
    }
    final_stage_runs_as_root(&shipped, out);
    fat_final_stage(df, &shipped, out);
    if let Some(ctx) = input.context {
        missing_dockerignore(df, ctx, out);
    }
}

/// The stage being built: `target`, else the last.
fn final_stage<'a>(df: &'a Dockerfile, target: Option<&str>) -> Option<&'a Stage> {
    match target {
        Some(t) => df
            .stages
            .iter()
            .find(|s| s.name.as_deref() == Some(t.to_lowercase().as_str())),
        None => df.stages.last(),
    }
}

/// The earlier stage `st` is built FROM, if it names one.
fn parent<'a>(df: &'a Dockerfile, st: &Stage) -> Option<&'a Stage> {
    let image = st.from_cmd().image.to_lowercase();
    df.stages[..st.index]
        .iter()
        .rev()
        .find(|p| p.name.as_deref() == Some(image.as_str()))
}

/// `st` and the stages it is built on, from `st` down to the one on an image.
fn chain<'a>(df: &'a Dockerfile, st: &'a Stage) -> Vec<&'a Stage> {
    let mut v = vec![st];
    while let Some(p) = parent(df, v[v.len() - 1]) {
        v.push(p);
    }
    v
}

/// The stage a `COPY --from=` value names (a name or an index), if it names one.
fn stage_ref<'a>(df: &'a Dockerfile, from: &str, before: usize) -> Option<&'a Stage> {
    if let Ok(i) = from.parse::<usize>() {
        return df.stages.get(i).filter(|s| s.index < before);
    }
    let from = from.to_lowercase();
    df.stages[..before]
        .iter()
        .rev()
        .find(|s| s.name.as_deref() == Some(from.as_str()))
}

/// Each stage's base image (through the stage chain), `$VARS` expanded with the global ARGs'
/// defaults; `None` when it cannot be expanded.
fn resolved_bases(df: &Dockerfile) -> Vec<Option<String>> {
    let lexer = Lexer::new(df.escape);
    let mut env = BTreeMap::new();
    for ins in &df.meta_args {
        if let Command::Arg(a) = &ins.command {
            for d in &a.args {
                if let Some(v) = &d.default
                    && let Ok(x) = lexer.process_word(v, &env)
                {
                    env.insert(d.name.clone(), x.value);
                }
            }
        }
    }
    let mut out: Vec<Option<String>> = Vec::new();
    for st in &df.stages {
        let base = match parent(df, st) {
            Some(p) => out[p.index].clone(),
            None => lexer
                .process_word(&st.from_cmd().image, &env)
                .ok()
                .map(|x| x.value)
                .filter(|v| !v.is_empty()),
        };
        out.push(base);
    }
    out
}

/// `(repository, tag, digest)` of an image reference.
fn split_ref(r: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match r.split_once('@') {
        Some((a, d)) => (a, Some(d)),
        None => (r, None),
    };
    match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..]), digest),
        _ => (rest, None, digest),
    }
}

/// UnpinnedBaseImage: `FROM node` or `FROM node:latest`.
fn unpinned_base_image(df: &Dockerfile, st: &Stage, bases: &[Option<String>], out: &mut Out) {
    if parent(df, st).is_some() {
        return;
    }
    let Some(image) = &bases[st.index] else {
        return;
    };
    // An image of this machine's own (`localhost/…`) is not pulled: no registry moves it.
    let host = image.split('/').next().unwrap_or("");
    let local = image.contains('/') && (host == "localhost" || host.starts_with("localhost:"));
    // `FROM 0` names a stage by index (buildah); an invalid name is InvalidDefaultArgInFrom's.
    let stage_index = image.bytes().all(|b| b.is_ascii_digit());
    if image == "scratch" || local || stage_index || !super::buildkit::valid_reference(image) {
        return;
    }
    let (_, tag, digest) = split_ref(image);
    if digest.is_some() {
        return;
    }
    let msg = match tag {
        None => format!(
            "Base image '{image}' has no tag, so it means '{image}:latest' and changes under you: pin a version"
        ),
        Some("latest") => {
            format!(
                "Base image '{image}' uses the 'latest' tag, which changes under you: pin a version"
            )
        }
        Some(_) => return,
    };
    out.push("UnpinnedBaseImage", st.span, msg);
}

/// A COPY or ADD of the whole context (`COPY . .`, `COPY ./ /app`, `ADD * ./`).
fn broad_context_copy(ins: &Instruction) -> Option<&str> {
    let sources = match &ins.command {
        Command::Copy(c) if c.from.is_none() => &c.sources,
        Command::Add(a) => &a.sources,
        _ => return None,
    };
    sources
        .iter()
        .find(|s| matches!(s.as_str(), "." | "./" | "*" | "./*" | "/" | "./."))
        .map(String::as_str)
}

/// The first dependency-install command of a RUN, as text (`npm ci`); an install of the
/// project itself from its sources (`pip install .`) is not one.
fn dependency_install(ins: &Instruction) -> Option<String> {
    let Command::Run(r) = &ins.command else {
        return None;
    };
    simple_commands(&run_text(r))
        .into_iter()
        .find(|c| is_dependency_install(c) && !installs_project(c))
        .map(|c| c.iter().take(3).cloned().collect::<Vec<_>>().join(" "))
}

/// The first compile command of a RUN, as text (`npm run build`).
fn compile(ins: &Instruction) -> Option<String> {
    let Command::Run(r) = &ins.command else {
        return None;
    };
    simple_commands(&run_text(r))
        .into_iter()
        .find(|c| is_compile(c))
        .map(|c| c.iter().take(3).cloned().collect::<Vec<_>>().join(" "))
}

/// SourceCopiedBeforeDependencyInstall: `COPY . .` and then `RUN npm ci` in one stage. A stage
/// that installed its dependencies before copying the sources (the manifest first) is left
/// alone: a later install (`npm ci --omit=dev` to prune) is not the pattern.
fn source_before_install(st: &Stage, out: &mut Out) {
    let mut copy: Option<&Instruction> = None;
    for ins in &st.instructions {
        if broad_context_copy(ins).is_some() {
            copy.get_or_insert(ins);
            continue;
        }
        let Some(install) = dependency_install(ins) else {
            continue;
        };
        let Some(c) = copy else {
            // Installed before any source copy: the stage follows the practice.
            return;
        };
        out.push(
            "SourceCopiedBeforeDependencyInstall",
            c.span,
            format!(
                "The sources are copied before the dependency install on line {} (`{install}`): every source edit re-runs it; copy the dependency manifest first",
                ins.span.line
            ),
        );
        return;
    }
}

fn is_root_user(u: &str) -> bool {
    let user = u.split(':').next().unwrap_or("");
    user == "root" || user == "0"
}

/// FinalStageRunsAsRoot: no USER (or USER root last) in the final stage and the stages it
/// is built on, when the Dockerfile says what the image runs (CMD, ENTRYPOINT or EXPOSE:
/// an application image, not a base or data image). A base made to run unprivileged
/// (`…nonroot…`, `…unprivileged…`, `…rootless…`) is left alone.
fn final_stage_runs_as_root(shipped: &[&Stage], out: &mut Out) {
    let last = shipped[0];
    let mut user: Option<&Instruction> = None;
    let mut runs_something = false;
    for st in shipped.iter().rev() {
        for ins in &st.instructions {
            match &ins.command {
                Command::User(_) => user = Some(ins),
                Command::Cmd(_) | Command::Entrypoint(_) | Command::Expose(_) => {
                    runs_something = true
                }
                _ => {}
            }
        }
    }
    let root = shipped[shipped.len() - 1];
    let base = root.from_cmd().image.to_lowercase();
    if !runs_something {
        return;
    }
    match user {
        Some(ins) => {
            if let Command::User(u) = &ins.command
                && is_root_user(&u.user)
            {
                out.push(
                    "FinalStageRunsAsRoot",
                    ins.span,
                    format!(
                        "The final stage's last USER is {}: the container runs as root",
                        u.user
                    ),
                );
            }
        }
        None => {
            let unprivileged_base = ["nonroot", "unprivileged", "rootless"]
                .iter()
                .any(|w| base.contains(w));
            if unprivileged_base {
                return;
            }
            out.push(
                "FinalStageRunsAsRoot",
                last.span,
                format!(
                    "The final stage '{}' sets no USER: its process runs as root unless the base image '{}' sets a user",
                    last.display_name(),
                    root.from_cmd().image
                ),
            );
        }
    }
}

fn cache_mount_on(ins: &Instruction, dir: &str) -> bool {
    let Command::Run(r) = &ins.command else {
        return false;
    };
    r.mounts
        .iter()
        .any(|m| m.raw.contains("type=cache") && m.raw.contains(dir))
}

/// AptInstallWithoutCleanup and ApkAddWithoutNoCache, in the stages the final image is made
/// of (a build stage's caches are left behind anyway).
fn package_cache_rules(ins: &Instruction, out: &mut Out) {
    let Command::Run(r) = &ins.command else {
        return;
    };
    let text = run_text(r);
    let cmds = simple_commands(&text);
    for c in &cmds {
        let prog = program(c);
        if (prog == "apt-get" || prog == "apt") && subcommand(c) == Some("install") {
            let recommends = c
                .iter()
                .any(|w| w == "--no-install-recommends" || w.contains("Install-Recommends=false"));
            let cleaned =
                text.contains("/var/lib/apt/lists") || cache_mount_on(ins, "/var/lib/apt");
            let missing: Vec<&str> = [
                (!recommends).then_some("--no-install-recommends"),
                (!cleaned).then_some("rm -rf /var/lib/apt/lists/*"),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !missing.is_empty() {
                out.push(
                    "AptInstallWithoutCleanup",
                    ins.span,
                    format!(
                        "{prog} install without {} in the same RUN: recommended packages and the package lists stay in the image",
                        missing.join(" and ")
                    ),
                );
            }
            break;
        }
        if prog == "apk" && subcommand(c) == Some("add") {
            let ok = c.iter().any(|w| w == "--no-cache")
                || text.contains("/var/cache/apk")
                || cache_mount_on(ins, "/var/cache/apk");
            if !ok {
                out.push(
                    "ApkAddWithoutNoCache",
                    ins.span,
                    "apk add without --no-cache: the package index stays in the image".into(),
                );
            }
            break;
        }
    }
}

const ARCHIVE_SUFFIXES: [&str; 12] = [
    ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".tar.zst", ".gz",
    ".bz2", ".xz",
];

/// AddInsteadOfCopy: ADD of local files that are not archives, with no ADD-only flag.
fn add_instead_of_copy(ins: &Instruction, out: &mut Out) {
    let Command::Add(a) = &ins.command else {
        return;
    };
    if a.sources.is_empty()
        || !a.inline.is_empty()
        || a.checksum.is_some()
        || a.keep_git_dir.is_some()
        || a.unpack.is_some()
    {
        return;
    }
    let local = a.sources.iter().all(|s| {
        let l = s.to_lowercase();
        !l.contains("://")
            && !l.starts_with("git@")
            && !s.contains('$')
            && !ARCHIVE_SUFFIXES.iter().any(|x| l.ends_with(x))
    });
    if local {
        out.push(
            "AddInsteadOfCopy",
            ins.span,
            "ADD of local files that are not archives does what COPY does: use COPY".into(),
        );
    }
}

/// Whether a file name looks like a secret: `.env` files, SSH private keys, credential
/// files, key stores.
fn secret_like(path: &str) -> bool {
    let name = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path);
    let lower = name.to_lowercase();
    let env_file = lower == ".env"
        || (lower.starts_with(".env.")
            && ![
                "example", "sample", "template", "dist", "defaults", "schema",
            ]
            .iter()
            .any(|s| lower.ends_with(s)));
    env_file
        || matches!(
            lower.as_str(),
            "id_rsa"
                | "id_dsa"
                | "id_ecdsa"
                | "id_ed25519"
                | ".netrc"
                | ".git-credentials"
                | ".pypirc"
        )
        || path.ends_with(".aws/credentials")
        || [".key", ".p12", ".pfx"].iter().any(|x| lower.ends_with(x))
}

/// Secret-looking files listed in a message.
const SECRETS_LISTED: usize = 3;

/// SecretFileCopied: a secret-looking file named by COPY/ADD, or sent by `COPY . .` or by a
/// COPY of a directory (`COPY config/ /app/config/`) when the context holds one under it that
/// .dockerignore does not exclude.
fn secret_file_copied(ins: &Instruction, ctx: Option<&ContextInfo>, out: &mut Out) {
    let sources = match &ins.command {
        Command::Copy(c) if c.from.is_none() => &c.sources,
        Command::Add(a) => &a.sources,
        _ => return,
    };
    let mut found: Vec<String> = sources
        .iter()
        .filter(|s| !s.contains('$') && secret_like(s))
        .cloned()
        .collect();
    if let Some(ctx) = ctx {
        // The context directories the sources send whole ("" for the whole context).
        let dirs: Vec<String> = if broad_context_copy(ins).is_some() {
            vec![String::new()]
        } else {
            sources
                .iter()
                .filter(|s| !s.contains(['$', '*', '?', '[']))
                .map(|s| {
                    let s = s.trim_start_matches("./").trim_start_matches('/');
                    format!("{}/", s.trim_end_matches('/'))
                })
                .filter(|d| d != "/" && ctx.entries.iter().any(|e| e == d))
                .collect()
        };
        for e in &ctx.entries {
            if !e.ends_with('/')
                && dirs.iter().any(|d| e.starts_with(d.as_str()))
                && secret_like(e)
                && ctx
                    .dockerignore
                    .as_ref()
                    .is_none_or(|d| !d.is_excluded(e.as_str()))
                && !found.contains(e)
            {
                found.push(e.clone());
            }
        }
    }
    if found.is_empty() {
        return;
    }
    let mut list = found
        .iter()
        .take(SECRETS_LISTED)
        .map(|f| format!("'{f}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if found.len() > SECRETS_LISTED {
        let more = found.len() - SECRETS_LISTED;
        list.push_str(&format!(
            " and {more} more file{}",
            if more == 1 { "" } else { "s" }
        ));
    }
    out.push(
        "SecretFileCopied",
        ins.span,
        format!(
            "{} copies {list} into the image, where anyone with the image can read it",
            ins.name()
        ),
    );
}

/// Directories a context should not send: dependency trees, VCS data, build output (the
/// last only where a manifest says what builds it).
fn heavy_entries(ctx: &ContextInfo) -> Vec<&str> {
    let has = |e: &str| ctx.entries.iter().any(|x| x == e);
    let mut v = Vec::new();
    for d in ["node_modules/", ".git/", ".venv/", "__pycache__/"] {
        if has(d) {
            v.push(d);
        }
    }
    if has("Cargo.toml") && has("target/") {
        v.push("target/");
    }
    if has("package.json") {
        for d in ["dist/", "build/", ".next/"] {
            if has(d) {
                v.push(d);
            }
        }
    }
    v
}

/// MissingDockerignore: `COPY . .` with node_modules, .git or build output in the context
/// and no .dockerignore excluding them.
fn missing_dockerignore(df: &Dockerfile, ctx: &ContextInfo, out: &mut Out) {
    let Some(copy) = df
        .stages
        .iter()
        .flat_map(|s| s.instructions.iter())
        .find(|i| broad_context_copy(i).is_some())
    else {
        return;
    };
    let uncovered: Vec<&str> = heavy_entries(ctx)
        .into_iter()
        .filter(|e| {
            ctx.dockerignore
                .as_ref()
                .is_none_or(|d| !d.is_excluded(e.trim_end_matches('/')))
        })
        .collect();
    if uncovered.is_empty() {
        return;
    }
    let why = if ctx.dockerignore.is_some() {
        "the .dockerignore does not exclude them"
    } else {
        "there is no .dockerignore"
    };
    out.push(
        "MissingDockerignore",
        copy.span,
        format!(
            "{} copies the whole context, which holds {}: {why}",
            copy.name(),
            uncovered.join(", ")
        ),
    );
}

/// A language toolchain image in its full (not slim or runtime-only) variant.
fn fat_toolchain(image: &str) -> bool {
    let (repo, tag, _) = split_ref(image);
    let name = repo.rsplit('/').next().unwrap_or(repo);
    let toolchain = matches!(
        name,
        "node"
            | "golang"
            | "rust"
            | "maven"
            | "gradle"
            | "openjdk"
            | "eclipse-temurin"
            | "gcc"
            | "buildpack-deps"
            | "python"
            | "ruby"
            | "sdk"
    );
    let thin = tag.is_some_and(|t| {
        ["slim", "alpine", "distroless", "jre", "runtime", "minimal"]
            .iter()
            .any(|w| t.contains(w))
    });
    toolchain && !thin
}

/// Where (WORKDIR) each dependency install of a stage chain ran: `(dir, line, command)`.
fn install_dirs(chain: &[&Stage]) -> Vec<(String, usize, String)> {
    let mut v = Vec::new();
    let mut wd = String::from("/");
    for st in chain.iter().rev() {
        for ins in &st.instructions {
            match &ins.command {
                Command::Workdir(w) if !w.path.contains('$') => {
                    wd = if w.path.starts_with('/') {
                        w.path.clone()
                    } else {
                        format!("{}/{}", wd.trim_end_matches('/'), w.path)
                    };
                }
                _ => {
                    if let Some(c) = dependency_install(ins) {
                        v.push((wd.clone(), ins.span.line, c));
                    }
                }
            }
        }
    }
    v
}

/// `dir` is `path` or inside it.
fn within(dir: &str, path: &str) -> bool {
    let p = path.trim_end_matches('/');
    let d = dir.trim_end_matches('/');
    p.is_empty() || d == p || d.starts_with(&format!("{p}/"))
}

/// FatFinalStage: the final stage compiles (a single-stage build ships its toolchain),
/// copies a whole directory holding a dependency tree out of a build stage, or is FROM the
/// same full toolchain image as the build stage it copies from.
fn fat_final_stage(df: &Dockerfile, shipped: &[&Stage], out: &mut Out) {
    let last = shipped[0];
    let bases = resolved_bases(df);
    // 1. The build runs in the final image itself.
    for st in shipped.iter().rev() {
        for ins in &st.instructions {
            if let Some(c) = compile(ins) {
                let deps = install_dirs(shipped);
                let what = if deps.is_empty() {
                    "the toolchain and the sources".to_string()
                } else {
                    format!(
                        "the toolchain, the sources and the dependencies (`{}`, line {})",
                        deps[0].2, deps[0].1
                    )
                };
                out.push(
                    "FatFinalStage",
                    last.span,
                    format!(
                        "The final stage runs the build itself (`{c}`, line {}): {what} ship in the image; build in an earlier stage and COPY --from only the output",
                        ins.span.line
                    ),
                );
                return;
            }
        }
    }
    // 2. A whole directory with a dependency tree copied out of a build stage.
    let mut copied_from: Vec<&Stage> = Vec::new();
    for ins in &last.instructions {
        let Command::Copy(c) = &ins.command else {
            continue;
        };
        let Some(src) = c.from.as_deref().and_then(|f| stage_ref(df, f, last.index)) else {
            continue;
        };
        copied_from.push(src);
        let src_chain = chain(df, src);
        let dirs = install_dirs(&src_chain);
        for s in &c.sources {
            if s.contains(['$', '*', '?']) {
                continue;
            }
            if let Some((dir, line, cmd)) = dirs.iter().find(|(d, _, _)| within(d, s)) {
                out.push(
                    "FatFinalStage",
                    ins.span,
                    format!(
                        "COPY --from={} {s} copies the whole of {dir}, where `{cmd}` (line {line}) installed the dependencies: they ship with the sources; copy only the build output",
                        src.display_name()
                    ),
                );
                return;
            }
        }
    }
    // 3. The final stage is FROM the full toolchain image its build stage used.
    let Some(base) = bases[last.index].as_deref() else {
        return;
    };
    if !fat_toolchain(base) || parent(df, last).is_some() {
        return;
    }
    if let Some(src) = copied_from
        .iter()
        .find(|s| bases[s.index].as_deref() == Some(base))
    {
        out.push(
            "FatFinalStage",
            last.span,
            format!(
                "The final stage is FROM '{base}', the full toolchain image the build stage '{}' uses: ship on a runtime image (a slim or distroless variant)",
                src.display_name()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split() {
        assert_eq!(split_ref("node"), ("node", None, None));
        assert_eq!(
            split_ref("localhost:5000/a/node:18@sha256:x"),
            ("localhost:5000/a/node", Some("18"), Some("sha256:x"))
        );
        assert_eq!(
            split_ref("localhost:5000/a"),
            ("localhost:5000/a", None, None)
        );
    }

    #[test]
    fn secrets_and_toolchains() {
        assert!(secret_like(".env"));
        assert!(secret_like("conf/.env.production"));
        assert!(!secret_like(".env.example"));
        assert!(secret_like("id_ed25519"));
        assert!(!secret_like("id_ed25519.pub"));
        assert!(fat_toolchain("golang:1.22"));
        assert!(!fat_toolchain("node:20-slim"));
        assert!(!fat_toolchain("nginx:1.27"));
    }
}
