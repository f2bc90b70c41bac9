//! Evaluation: variable expansion with BuildKit's ARG/ENV scoping. The build engine drives
//! it instruction by instruction: `Evaluator` holds the global scope (platform ARGs, ARGs
//! before the first FROM, `--build-arg`s); `StageEval` holds one stage's ENV and ARGs.
//!
//! Rules (BuildKit `dockerfile2llb`):
//! - global ARGs reach only FROM lines, unless a stage re-declares them with a bare `ARG NAME`;
//! - `--build-arg` overrides ARG defaults, but only for declared ARGs;
//! - ENV wins over an earlier ARG of the same name; an ARG with a value declared after the ENV
//!   wins for RUN and expansion (the config keeps the ENV value);
//! - one instruction sees the variables as they were before it (`ENV a=bye b=$a` reads the old a);
//! - ADD COPY ENV EXPOSE LABEL STOPSIGNAL USER VOLUME WORKDIR, `--chown`/`--chmod`/`--checksum`
//!   and `--mount` values (except `from`) are expanded; RUN/CMD/ENTRYPOINT are left to the shell.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::ast::*;
use crate::error::{Error, ErrorKind};
use crate::expand::{ExpandError, Lexer, Lookup};
use crate::limits::{MAX_EXPANDED_BYTES, human};
use crate::span::Span;

/// `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
        }
    }
}

impl Platform {
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_lowercase(),
                arch: arch.to_lowercase(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: os.to_lowercase(),
                arch: arch.to_lowercase(),
                variant: Some(v.to_lowercase()),
            }),
            _ => Err(format!(
                "invalid platform {s:?}: expected os/arch[/variant], e.g. linux/amd64"
            )),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Inputs to evaluation that come from the command line.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    pub build_args: BTreeMap<String, String>,
    pub target_platform: Platform,
    pub build_platform: Platform,
}

/// The predefined proxy ARGs: usable by RUN without an ARG line.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// An instruction with its words expanded, and the build args it read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expansion {
    pub instruction: Instruction,
    /// ARG names whose values the expanded instruction depends on (for cache keys). For RUN:
    /// every ARG in scope, since they reach the command as environment.
    pub used_args: BTreeSet<String>,
}

/// A FROM line expanded with the global scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedFrom {
    pub image: String,
    pub platform: Option<String>,
    pub used_args: BTreeSet<String>,
}

/// Ordered variables where a later set replaces the value in place. The index (name → first
/// position) keeps `get`/`set` O(1): a scan per ENV made 100k ENV lines take minutes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Vars {
    list: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Vars {
    /// From pairs that may repeat a name (an image's `Env`); the first one counts, as a scan
    /// from the front would find it.
    fn from_pairs(pairs: &[(String, String)]) -> Vars {
        let mut index = HashMap::with_capacity(pairs.len());
        for (i, (k, _)) in pairs.iter().enumerate() {
            index.entry(k.clone()).or_insert(i);
        }
        Vars {
            list: pairs.to_vec(),
            index,
        }
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.index.get(k).map(|&i| self.list[i].1.as_str())
    }
    fn set(&mut self, k: &str, v: String) {
        match self.index.get(k) {
            Some(&i) => self.list[i].1 = v,
            None => {
                self.index.insert(k.to_string(), self.list.len());
                self.list.push((k.to_string(), v));
            }
        }
    }
}

impl Lookup for Vars {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

/// Global scope of one build.
#[derive(Debug, Clone)]
pub struct Evaluator {
    opts: EvalOptions,
    lexer: Lexer,
    /// Platform ARGs and meta ARGs with their values (unset meta ARGs are absent).
    global: Vars,
    /// Names declared by ARGs before the first FROM.
    declared_global: BTreeSet<String>,
    /// Global ARGs whose last declaration has no value (and no `--build-arg`): BuildKit's
    /// global scope then holds an unset value that hides an earlier one, the automatic
    /// platform ARGs' included (FROM sees it empty, a stage's `ARG NAME` inherits nothing).
    bare_global: BTreeSet<String>,
    /// Bytes of expanded words so far, for [`MAX_EXPANDED_BYTES`]; shared by the stages.
    expanded: Expanded,
    /// The file errors name ([`Dockerfile::file`]).
    file: String,
}

/// A byte counter that can be bumped through `&Evaluator` (stages borrow it shared).
#[derive(Debug, Default)]
struct Expanded(AtomicUsize);

impl Clone for Expanded {
    fn clone(&self) -> Self {
        Expanded(AtomicUsize::new(self.0.load(Ordering::Relaxed)))
    }
}

fn expand_err(e: ExpandError, span: Span) -> Error {
    Error::new(ErrorKind::Expansion, span, e.message)
}

impl Evaluator {
    /// Evaluate the global ARGs of `df` with `opts`.
    pub fn new(df: &Dockerfile, opts: EvalOptions) -> Result<Evaluator, Error> {
        let mut global = Vars::default();
        let t = &opts.target_platform;
        let b = &opts.build_platform;
        for (k, v) in [
            ("TARGETPLATFORM", t.to_string()),
            ("TARGETOS", t.os.clone()),
            ("TARGETARCH", t.arch.clone()),
            ("TARGETVARIANT", t.variant.clone().unwrap_or_default()),
            ("BUILDPLATFORM", b.to_string()),
            ("BUILDOS", b.os.clone()),
            ("BUILDARCH", b.arch.clone()),
            ("BUILDVARIANT", b.variant.clone().unwrap_or_default()),
        ] {
            global.set(k, v);
        }
        let mut ev = Evaluator {
            opts,
            lexer: Lexer::new(df.escape),
            global,
            declared_global: BTreeSet::new(),
            bare_global: BTreeSet::new(),
            expanded: Expanded::default(),
            file: df.file.clone(),
        };
        ev.eval_meta_args(df).map_err(|e| e.in_file(&df.file))?;
        Ok(ev)
    }

    fn eval_meta_args(&mut self, df: &Dockerfile) -> Result<(), Error> {
        let ev = self;
        for ins in &df.meta_args {
            let Command::Arg(a) = &ins.command else {
                continue;
            };
            for d in &a.args {
                ev.declared_global.insert(d.name.clone());
                ev.bare_global.remove(&d.name);
                if let Some(v) = ev.opts.build_args.get(&d.name) {
                    let v = v.clone();
                    ev.global.set(&d.name, v);
                } else if d.default.is_none() {
                    ev.bare_global.insert(d.name.clone());
                    if ev.global.get(&d.name).is_some() {
                        ev.global.set(&d.name, String::new());
                    }
                } else if let Some(def) = &d.default {
                    // Errors point at the value, as they do for a stage's ARG.
                    let at = word_span(ins, def);
                    let v = ev
                        .lexer
                        .process_word(def, &ev.global)
                        .map_err(|e| expand_err(e, at))?
                        .value;
                    ev.charge(v.len(), at)?;
                    ev.global.set(&d.name, v);
                }
            }
        }
        Ok(())
    }

    pub fn options(&self) -> &EvalOptions {
        &self.opts
    }

    /// Count `n` expanded bytes against [`MAX_EXPANDED_BYTES`]; `span` is the instruction
    /// that passes it.
    fn charge(&self, n: usize, span: Span) -> Result<(), Error> {
        let total = self
            .expanded
            .0
            .fetch_add(n, Ordering::Relaxed)
            .saturating_add(n);
        if total > MAX_EXPANDED_BYTES {
            return Err(Error::new(
                ErrorKind::Expansion,
                span,
                format!(
                    "expansion too large: the Dockerfile's expanded words add up to more than {} (kiln's limit)",
                    human(MAX_EXPANDED_BYTES as u64)
                ),
            )
            .with_hint(Some(
                "the limit stops ARG/ENV values from multiplying; see \"Limits\" in docs/dockerfile.md".into(),
            )));
        }
        Ok(())
    }

    /// The global scope (platform ARGs and meta ARGs with values).
    pub fn global_args(&self) -> BTreeMap<String, String> {
        self.global.list.iter().cloned().collect()
    }

    /// Expand a stage's FROM line (image and `--platform`) with the global scope.
    pub fn resolve_from(&self, stage: &Stage) -> Result<ResolvedFrom, Error> {
        self.resolve_from_in(stage)
            .map_err(|e| e.in_file(&self.file))
    }

    fn resolve_from_in(&self, stage: &Stage) -> Result<ResolvedFrom, Error> {
        let f = stage.from_cmd();
        let img = self
            .lexer
            .process_word(&f.image, &self.global)
            .map_err(|e| expand_err(e, stage.span))?;
        self.charge(img.value.len(), stage.span)?;
        if img.value.is_empty() {
            return Err(Error::new(
                ErrorKind::Expansion,
                stage.span,
                format!("base name ({}) should not be blank", f.image),
            )
            .with_hint(Some(
                "give the ARG used in FROM a default or pass it with --build-arg".into(),
            )));
        }
        let mut used = img.used;
        let platform = match &f.platform {
            None => None,
            Some(p) => {
                let e = self
                    .lexer
                    .process_word(p, &self.global)
                    .map_err(|e| expand_err(e, stage.span))?;
                self.charge(e.value.len(), stage.span)?;
                if e.value.is_empty() {
                    return Err(Error::new(
                        ErrorKind::Expansion,
                        stage.span,
                        format!("empty platform value from expression {p}"),
                    ));
                }
                Platform::parse(&e.value)
                    .map_err(|m| Error::new(ErrorKind::Expansion, stage.span, m))?;
                used.extend(e.used);
                Some(e.value)
            }
        };
        used.retain(|n| self.global.get(n).is_some());
        Ok(ResolvedFrom {
            image: img.value,
            platform,
            used_args: used,
        })
    }

    /// Start evaluating a stage whose base image (or parent stage) has environment `base_env`.
    pub fn stage(&self, base_env: &[(String, String)]) -> StageEval<'_> {
        StageEval {
            ev: self,
            env: Vars::from_pairs(base_env),
            args: Vec::new(),
            latest_arg: HashMap::new(),
            arg_after_env: HashSet::new(),
        }
    }
}

/// Evaluation state of one stage: its ENV (seeded from the base) and declared ARGs.
#[derive(Debug, Clone)]
pub struct StageEval<'a> {
    ev: &'a Evaluator,
    env: Vars,
    /// Declared ARGs in order, with their value (None = declared without a value).
    args: Vec<(String, Option<String>)>,
    /// Name → position in `args` of its latest declaration (the one a lookup sees).
    latest_arg: HashMap<String, usize>,
    /// Names set by ENV whose latest ARG declaration with a value came after that ENV: for
    /// RUN and expansion the ARG's value wins (BuildKit keeps one environment that ENV and
    /// ARG both write in order); the image config keeps the ENV value.
    arg_after_env: HashSet<String>,
}

/// ENV first (it overrides an earlier ARG), then the latest declaration of an ARG, if it has a
/// value; an ARG with a value declared after an ENV of its name wins.
struct Scope<'s> {
    env: &'s Vars,
    args: &'s [(String, Option<String>)],
    latest_arg: &'s HashMap<String, usize>,
    arg_after_env: &'s HashSet<String>,
}

impl Scope<'_> {
    fn arg(&self, name: &str) -> Option<&str> {
        self.latest_arg
            .get(name)
            .and_then(|&i| self.args[i].1.as_deref())
    }
}

impl Lookup for Scope<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        if self.arg_after_env.contains(name)
            && let Some(v) = self.arg(name)
        {
            return Some(v);
        }
        self.env.get(name).or_else(|| self.arg(name))
    }
}

impl StageEval<'_> {
    /// The stage's environment so far (what the image config will hold).
    pub fn env(&self) -> &[(String, String)] {
        &self.env.list
    }

    /// The stage's environment at the end, without copying it.
    pub fn into_env(self) -> Vec<(String, String)> {
        self.env.list
    }

    /// ENV is set for `name` and no later ARG with a value overrides it.
    fn env_shadows(&self, name: &str) -> bool {
        self.env.get(name).is_some() && !self.arg_after_env.contains(name)
    }

    /// Declared ARGs with values, not shadowed by ENV: what RUN sees besides ENV. A name
    /// declared with a value more than once appears once, with its last value, at the
    /// position of that declaration.
    pub fn args(&self) -> Vec<(String, String)> {
        // From the back, so that the last declaration of a name is the one kept (a
        // `retain` per declaration was quadratic).
        let mut seen = HashSet::new();
        let mut out: Vec<(String, String)> = Vec::new();
        for (n, v) in self.args.iter().rev() {
            if let Some(v) = v
                && !self.env_shadows(n)
                && seen.insert(n.as_str())
            {
                out.push((n.clone(), v.clone()));
            }
        }
        out.reverse();
        out
    }

    /// The environment a RUN gets: ENV (an ARG declared after it replaces its value in
    /// place), then ARGs, then proxy build args not declared.
    pub fn run_env(&self) -> Vec<(String, String)> {
        let mut out = self.env.list.clone();
        for (k, v) in self.args() {
            match self.env.index.get(&k) {
                Some(&i) => out[i].1 = v,
                None => out.push((k, v)),
            }
        }
        for p in PROXY_ARGS {
            if out.iter().all(|(k, _)| k != p)
                && let Some(v) = self.ev.opts.build_args.get(p)
            {
                out.push((p.to_string(), v.clone()));
            }
        }
        out
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            env: &self.env,
            args: &self.args,
            latest_arg: &self.latest_arg,
            arg_after_env: &self.arg_after_env,
        }
    }

    /// Names in `used` that resolved to an ARG (not ENV).
    fn arg_uses(&self, used: BTreeSet<String>) -> BTreeSet<String> {
        used.into_iter()
            .filter(|n| !self.env_shadows(n) && self.latest_arg.contains_key(n))
            .collect()
    }

    /// Expand `ins` with the current scope and apply its ENV/ARG effects.
    pub fn expand_instruction(&mut self, ins: &Instruction) -> Result<Expansion, Error> {
        let file = &self.ev.file;
        self.expand_instruction_in(ins).map_err(|e| e.in_file(file))
    }

    fn expand_instruction_in(&mut self, ins: &Instruction) -> Result<Expansion, Error> {
        let ev = self.ev;
        let lexer = ev.lexer;
        let span = ins.span;
        let mut used = BTreeSet::new();
        let mut out = ins.clone();
        {
            let scope = self.scope();
            let mut word = |w: &str| -> Result<String, Error> {
                let e = lexer
                    .process_word(w, &scope)
                    .map_err(|e| expand_err(e, word_span(ins, w)))?;
                ev.charge(e.value.len(), word_span(ins, w))?;
                used.extend(e.used);
                Ok(e.value)
            };
            match &mut out.command {
                Command::Env(kv) | Command::Label(kv) => {
                    for p in &mut kv.pairs {
                        p.key = word(&p.key)?;
                        p.value = word(&p.value)?;
                    }
                }
                Command::Workdir(w) => w.path = word(&w.path)?,
                Command::User(u) => u.user = word(&u.user)?,
                Command::Stopsignal(s) => s.signal = word(&s.signal)?,
                Command::Volume(v) => {
                    for p in &mut v.paths {
                        *p = word(p)?;
                        if p.trim().is_empty() {
                            return Err(Error::new(
                                ErrorKind::Arguments,
                                span,
                                "VOLUME specified can not be an empty string",
                            ));
                        }
                    }
                }
                Command::Copy(c) => {
                    for s in &mut c.sources {
                        *s = word(s)?;
                    }
                    c.dest = word(&c.dest)?;
                    if let Some(v) = &mut c.chown {
                        *v = word(v)?;
                    }
                    if let Some(v) = &mut c.chmod {
                        *v = word(v)?;
                    }
                    for h in &mut c.inline {
                        expand_heredoc(h, &scope, &mut used, span)?;
                        ev.charge(h.content.len(), span)?;
                    }
                }
                Command::Add(c) => {
                    for s in &mut c.sources {
                        *s = word(s)?;
                    }
                    c.dest = word(&c.dest)?;
                    for v in [&mut c.chown, &mut c.chmod, &mut c.checksum]
                        .into_iter()
                        .flatten()
                    {
                        *v = word(v)?;
                    }
                    for h in &mut c.inline {
                        expand_heredoc(h, &scope, &mut used, span)?;
                        ev.charge(h.content.len(), span)?;
                    }
                }
                Command::Expose(e) => {
                    let mut ports = Vec::new();
                    for p in &e.ports {
                        let x = lexer
                            .process_words(p, &scope)
                            .map_err(|e| expand_err(e, span))?;
                        ev.charge(x.value.iter().map(String::len).sum(), span)?;
                        used.extend(x.used);
                        ports.extend(x.value);
                    }
                    for p in &ports {
                        validate_port(p).map_err(|m| Error::new(ErrorKind::Arguments, span, m))?;
                    }
                    e.ports = ports;
                }
                Command::Run(r) => {
                    for m in &mut r.mounts {
                        let mut total = 0;
                        let mut expand = |v: &str| -> Result<String, String> {
                            let e = lexer.process_word(v, &scope).map_err(|e| e.message)?;
                            used.extend(e.used);
                            total += e.value.len();
                            Ok(e.value)
                        };
                        let resolved = m
                            .resolve(&mut expand)
                            .map_err(|msg| Error::new(ErrorKind::Flag, m.span, msg))?;
                        ev.charge(total, m.span)?;
                        m.resolved = Some(resolved);
                    }
                }
                // ARG is applied below; the rest is not expanded by the builder.
                _ => {}
            }
        }
        let mut used_args = self.arg_uses(used);
        match &out.command {
            Command::Env(kv) => {
                for p in &kv.pairs {
                    self.env.set(&p.key, p.value.clone());
                    self.arg_after_env.remove(&p.key);
                }
            }
            Command::Arg(a) => {
                let mut decls = Vec::new();
                for d in &a.args {
                    let mut at = span;
                    let value = if let Some(v) = self.ev.opts.build_args.get(&d.name) {
                        Some(v.clone())
                    } else if let Some(def) = &d.default {
                        at = word_span(ins, def);
                        let e = lexer
                            .process_word(def, &self.scope())
                            .map_err(|e| expand_err(e, at))?;
                        used_args.extend(self.arg_uses(e.used));
                        Some(e.value)
                    } else if self.ev.bare_global.contains(&d.name) {
                        None
                    } else if self.ev.declared_global.contains(&d.name) || is_platform_arg(&d.name)
                    {
                        self.ev.global.get(&d.name).map(str::to_string)
                    } else {
                        None
                    };
                    if let Some(v) = &value {
                        self.ev.charge(v.len(), at)?;
                        if self.env.get(&d.name).is_some() {
                            self.arg_after_env.insert(d.name.clone());
                        }
                    }
                    used_args.insert(d.name.clone());
                    self.latest_arg.insert(d.name.clone(), self.args.len());
                    self.args.push((d.name.clone(), value.clone()));
                    decls.push(ArgDecl {
                        name: d.name.clone(),
                        default: value,
                    });
                }
                out.command = Command::Arg(Arg { args: decls });
            }
            // The names of `args()`, without copying the values.
            Command::Run(_) => {
                for (n, v) in &self.args {
                    if v.is_some() && !self.env_shadows(n) && !used_args.contains(n) {
                        used_args.insert(n.clone());
                    }
                }
            }
            _ => {}
        }
        Ok(Expansion {
            instruction: out,
            used_args,
        })
    }
}

/// Where `word` sits in the instruction (first physical line only), else the keyword.
fn word_span(ins: &Instruction, word: &str) -> Span {
    let first = ins.original.lines().next().unwrap_or("");
    match (
        ins.end_line == ins.span.line || !ins.original.contains('\n'),
        first.find(word),
    ) {
        (_, Some(i)) if !word.is_empty() => Span::new(
            ins.span.line,
            ins.span.col + first[..i].chars().count(),
            word.chars().count(),
        ),
        _ => ins.span,
    }
}

fn is_platform_arg(n: &str) -> bool {
    matches!(
        n,
        "TARGETPLATFORM"
            | "TARGETOS"
            | "TARGETARCH"
            | "TARGETVARIANT"
            | "BUILDPLATFORM"
            | "BUILDOS"
            | "BUILDARCH"
            | "BUILDVARIANT"
    )
}

/// Heredoc bodies are expanded without quote processing (BuildKit `SkipProcessQuotes`): every
/// unescaped quote is escaped first so the lexer keeps it.
fn expand_heredoc(
    h: &mut Heredoc,
    scope: &dyn Lookup,
    used: &mut BTreeSet<String>,
    span: Span,
) -> Result<(), Error> {
    if !h.expand {
        return Ok(());
    }
    let mut protected = String::with_capacity(h.content.len() + 8);
    let mut it = h.content.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => {
                protected.push('\\');
                protected.extend(it.next());
            }
            '\'' | '"' => {
                protected.push('\\');
                protected.push(c);
            }
            _ => protected.push(c),
        }
    }
    let e = Lexer::new('\\')
        .process_word(&protected, scope)
        .map_err(|e| expand_err(e, span))?;
    used.extend(e.used);
    h.content = e.value;
    Ok(())
}

/// `80`, `80/tcp`, `8000-8010/udp`, as docker's nat.ParsePortSpecs accepts them.
fn validate_port(p: &str) -> Result<(), String> {
    let (port, proto) = match p.split_once('/') {
        Some((a, b)) => (a, b),
        None => (p, "tcp"),
    };
    if !matches!(proto.to_lowercase().as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto} (in EXPOSE {p})"));
    }
    let num = |s: &str| s.parse::<u16>().ok();
    let ok = match port.split_once('-') {
        Some((a, b)) => matches!((num(a), num(b)), (Some(x), Some(y)) if x <= y),
        None => num(port).is_some(),
    };
    if !ok {
        return Err(format!("invalid containerPort: {port} (in EXPOSE {p})"));
    }
    Ok(())
}
