//! The typed Dockerfile: stages of instructions, every one with its source location. Words are
//! kept raw (unexpanded, quotes included) as written; `eval` expands them.

use serde::Serialize;

use crate::mount::MountSpec;
use crate::span::Span;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dockerfile {
    /// Parser directives found at the top (`syntax`, `escape`, `check`), names lowercased.
    pub directives: Vec<Directive>,
    /// The escape character in effect (`\` or `` ` ``).
    pub escape: char,
    /// `ARG` instructions before the first `FROM` (global scope: they reach only FROM lines).
    pub meta_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
    /// Things BuildKit accepts but warns about while parsing (empty continuation lines).
    pub parse_warnings: Vec<ParseWarning>,
    /// The file name errors name: `Dockerfile`, or what [`crate::parse_named`] was given.
    /// Expansion and stage errors found after parsing (evaluation, the stage graph) use it.
    #[serde(skip)]
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    pub name: String,
    pub value: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParseWarning {
    pub rule: String,
    pub message: String,
    pub span: Span,
}

/// One build stage: a FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    pub index: usize,
    /// The `AS` name, lowercased as BuildKit does.
    pub name: Option<String>,
    /// The FROM instruction (its `command` is always `Command::From`).
    pub from: Instruction,
    pub instructions: Vec<Instruction>,
    /// Span of the FROM keyword.
    pub span: Span,
}

impl Stage {
    /// The FROM details of this stage.
    pub fn from_cmd(&self) -> &From {
        match &self.from.command {
            Command::From(f) => f,
            // Construction guarantees a FROM; keep a harmless fallback instead of a panic.
            _ => &FALLBACK_FROM,
        }
    }

    /// `name` if given, else `stage-N` as BuildKit names unnamed stages.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", self.index))
    }
}

static FALLBACK_FROM: From = From {
    image: String::new(),
    platform: None,
    name: None,
};

/// One instruction with its location and the text it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instruction {
    /// Span of the instruction keyword.
    pub span: Span,
    /// Last physical line of the instruction (heredoc bodies included).
    pub end_line: usize,
    /// The keyword as written (`run`, `RUN`, `Run`).
    pub keyword: String,
    /// The assembled logical line (continuations joined, comments removed).
    pub original: String,
    /// `--flags` as written (quotes removed), with their spans.
    pub flags: Vec<Flag>,
    pub command: Command,
}

impl Instruction {
    /// The canonical upper-case instruction name.
    pub fn name(&self) -> &'static str {
        self.command.name()
    }
}

/// A `--name[=value]` builder flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub name: String,
    pub value: Option<String>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "instruction", rename_all = "UPPERCASE")]
pub enum Command {
    From(From),
    Run(Run),
    Cmd(CmdLine),
    Label(KeyValues),
    Maintainer(Maintainer),
    Expose(Expose),
    Env(KeyValues),
    Add(Add),
    Copy(Copy),
    Entrypoint(CmdLine),
    Volume(Volume),
    User(User),
    Workdir(Workdir),
    Arg(Arg),
    Onbuild(Onbuild),
    Stopsignal(StopSignal),
    Healthcheck(Healthcheck),
    Shell(Shell),
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::From(_) => "FROM",
            Command::Run(_) => "RUN",
            Command::Cmd(_) => "CMD",
            Command::Label(_) => "LABEL",
            Command::Maintainer(_) => "MAINTAINER",
            Command::Expose(_) => "EXPOSE",
            Command::Env(_) => "ENV",
            Command::Add(_) => "ADD",
            Command::Copy(_) => "COPY",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Volume(_) => "VOLUME",
            Command::User(_) => "USER",
            Command::Workdir(_) => "WORKDIR",
            Command::Arg(_) => "ARG",
            Command::Onbuild(_) => "ONBUILD",
            Command::Stopsignal(_) => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Shell(_) => "SHELL",
        }
    }
}

/// All instruction names, for suggestions.
pub const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct From {
    /// Base image word (raw; may hold `$VARS` from global ARGs).
    pub image: String,
    pub platform: Option<String>,
    /// Stage name, lowercased.
    pub name: Option<String>,
}

/// Exec form (JSON array, no shell) or shell form (run through SHELL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", content = "value", rename_all = "lowercase")]
pub enum CommandLine {
    Exec(Vec<String>),
    Shell(String),
}

impl CommandLine {
    pub fn is_exec(&self) -> bool {
        matches!(self, CommandLine::Exec(_))
    }
    pub fn is_empty(&self) -> bool {
        match self {
            CommandLine::Exec(v) => v.is_empty(),
            CommandLine::Shell(s) => s.trim().is_empty(),
        }
    }
}

/// CMD and ENTRYPOINT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CmdLine {
    pub cmd: CommandLine,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    Sandbox,
    Insecure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub cmd: CommandLine,
    pub mounts: Vec<MountSpec>,
    pub network: Option<NetworkMode>,
    pub security: Option<SecurityMode>,
    /// Here-documents named on the line, in order (`<<EOF`).
    pub heredocs: Vec<Heredoc>,
}

/// A here-document body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// Delimiter word with quotes removed (`EOF`).
    pub name: String,
    /// False when the delimiter was quoted: the body is then taken literally.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from body lines (already applied to `content`).
    pub chomp: bool,
    /// File descriptor prefix (`3<<EOF`), 0 when none.
    pub fd: u32,
    /// The body, every line ending in a newline.
    pub content: String,
    /// First line of the body.
    pub body_line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// The legacy `KEY value` form (no `=`).
    pub legacy: bool,
}

/// LABEL and ENV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValues {
    pub pairs: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Maintainer {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expose {
    pub ports: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    /// Context (or `--from`) paths, raw.
    pub sources: Vec<String>,
    /// Inline files from here-documents (`COPY <<EOF /dest`).
    pub inline: Vec<Heredoc>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    /// Written in JSON form.
    pub json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Add {
    pub sources: Vec<String>,
    pub inline: Vec<Heredoc>,
    pub dest: String,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub keep_git_dir: Option<bool>,
    pub checksum: Option<String>,
    pub unpack: Option<bool>,
    pub exclude: Vec<String>,
    pub json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workdir {
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    pub name: String,
    /// Raw default (`ARG V=x`), expanded only when no build arg overrides it.
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Arg {
    pub args: Vec<ArgDecl>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Onbuild {
    /// The trigger text as stored in the image config (heredoc bodies appended).
    pub expression: String,
    /// The trigger, parsed.
    pub trigger: Box<Instruction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StopSignal {
    pub signal: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum Healthcheck {
    None,
    Cmd(HealthcheckCmd),
}

/// Durations are kept in nanoseconds (as the image config stores them); `None` = not given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthcheckCmd {
    pub cmd: CommandLine,
    pub interval: Option<u64>,
    pub timeout: Option<u64>,
    pub start_period: Option<u64>,
    pub start_interval: Option<u64>,
    pub retries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shell {
    pub shell: Vec<String>,
}
