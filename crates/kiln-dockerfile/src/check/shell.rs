//! What the rules read in words and RUN lines: variable references, and the simple commands
//! of a shell line (`apt-get install …`, `npm ci`), without running a shell.

use crate::ast::{CommandLine, Run};

/// A `$NAME` / `${NAME}` reference; `guarded` when written with a modifier
/// (`${NAME:-default}`, `${NAME:+x}`, `${NAME?}`): the author expected it may be unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VarRef {
    pub name: String,
    pub guarded: bool,
}

/// Variable references in a word (escapes and single quotes respected). The text inside a
/// modifier (`${A:-$B}`) is skipped: it is read only when `A` is missing.
pub(crate) fn var_refs(word: &str, escape: char) -> Vec<VarRef> {
    let mut out = Vec::new();
    let chars: Vec<char> = word.chars().collect();
    let mut i = 0;
    let mut in_single = false;
    while i < chars.len() {
        let c = chars[i];
        if c == escape && !in_single {
            i += 2;
            continue;
        }
        if c == '\'' {
            in_single = !in_single;
        } else if c == '$' && !in_single {
            let braced = chars.get(i + 1) == Some(&'{');
            let start = if braced { i + 2 } else { i + 1 };
            let mut j = start;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            if j > start {
                let mut guarded = false;
                if braced && chars.get(j) != Some(&'}') {
                    guarded = true;
                    // Skip to the matching brace.
                    let mut depth = 1;
                    while j < chars.len() && depth > 0 {
                        match chars[j] {
                            '{' => depth += 1,
                            '}' => depth -= 1,
                            _ => {}
                        }
                        j += 1;
                    }
                }
                out.push(VarRef {
                    name: chars[start..j.min(chars.len())]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                        .collect(),
                    guarded,
                });
            }
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
    out
}

/// The full text a RUN runs: its command line and its here-document bodies.
pub(crate) fn run_text(run: &Run) -> String {
    let mut s = match &run.cmd {
        CommandLine::Shell(s) => s.clone(),
        CommandLine::Exec(v) => v.join(" "),
    };
    for h in &run.heredocs {
        s.push('\n');
        s.push_str(&h.content);
    }
    s
}

/// The simple commands of a shell text, each as its words: split at `&&`, `||`, `;`, `|`,
/// `&` and newlines; line continuations joined; quotes removed from words; leading
/// `sudo`, `env`, variable assignments dropped.
pub(crate) fn simple_commands(text: &str) -> Vec<Vec<String>> {
    let text = text.replace("\\\n", " ");
    let mut cmds = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let flush_word = |word: &mut String, cur: &mut Vec<String>| {
        if !word.is_empty() {
            cur.push(std::mem::take(word));
        }
    };
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None => match c {
                '\'' | '"' => quote = Some(c),
                '&' | '|' | ';' | '\n' | '(' | ')' => {
                    flush_word(&mut word, &mut cur);
                    if !cur.is_empty() {
                        cmds.push(std::mem::take(&mut cur));
                    }
                }
                c if c.is_whitespace() => flush_word(&mut word, &mut cur),
                c => word.push(c),
            },
        }
    }
    flush_word(&mut word, &mut cur);
    if !cur.is_empty() {
        cmds.push(cur);
    }
    for cmd in &mut cmds {
        while let Some(first) = cmd.first() {
            let drop = matches!(first.as_str(), "sudo" | "env" | "exec" | "then" | "do")
                || (first.contains('=') && !first.starts_with('-'));
            if !drop {
                break;
            }
            cmd.remove(0);
        }
    }
    cmds.retain(|c| !c.is_empty());
    cmds
}

/// The program name of a command (`/usr/bin/apt-get` → `apt-get`).
pub(crate) fn program(cmd: &[String]) -> &str {
    cmd.first()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .unwrap_or("")
}

/// The first word of `cmd` after the program that is not an option.
pub(crate) fn subcommand(cmd: &[String]) -> Option<&str> {
    cmd.iter()
        .skip(1)
        .find(|w| !w.starts_with('-'))
        .map(String::as_str)
}

/// A dependency install: `npm ci`, `yarn`, `pip install -r …`, `go mod download`, ….
pub(crate) fn is_dependency_install(cmd: &[String]) -> bool {
    let sub = subcommand(cmd);
    // A global install (`npm install -g pm2`) installs a named tool, not the project's
    // dependencies: it reads no manifest.
    let global = cmd.iter().any(|w| w == "-g" || w == "--global");
    match program(cmd) {
        "npm" | "pnpm" | "yarn" if global => false,
        "npm" => matches!(sub, Some("install" | "i" | "ci")),
        "yarn" => matches!(sub, None | Some("install")),
        "pnpm" => matches!(sub, Some("install" | "i")),
        "pip" | "pip3" => {
            sub == Some("install")
                && cmd
                    .iter()
                    .any(|w| w == "-r" || w.starts_with("--requirement") || w == "." || w == "-e")
        }
        "poetry" | "pipenv" | "bundle" | "composer" => sub == Some("install"),
        "go" => sub == Some("mod") && cmd.iter().any(|w| w == "download"),
        _ => false,
    }
}

/// An install of the project itself from its sources (`pip install .`, `pip install -e .`):
/// it needs the sources, so it comes after they are copied. With `-r` it reads a manifest too.
pub(crate) fn installs_project(cmd: &[String]) -> bool {
    matches!(program(cmd), "pip" | "pip3")
        && subcommand(cmd) == Some("install")
        && cmd.iter().skip(2).any(|w| w == "." || w == "./")
        && !cmd
            .iter()
            .any(|w| w == "-r" || w.starts_with("--requirement"))
}

/// A build of the application's output: `npm run build`, `go build`, `cargo build`, ….
pub(crate) fn is_compile(cmd: &[String]) -> bool {
    let sub = subcommand(cmd);
    let run_build = || {
        cmd.iter()
            .skip_while(|w| *w != "run")
            .nth(1)
            .is_some_and(|s| s == "build")
    };
    match program(cmd) {
        "npm" => sub == Some("run") && run_build(),
        "yarn" | "pnpm" => sub == Some("build") || (sub == Some("run") && run_build()),
        "go" | "cargo" => sub == Some("build"),
        "mvn" | "mvnw" => cmd.iter().any(|w| w == "package" || w == "install"),
        "gradle" | "gradlew" => cmd.iter().any(|w| w == "build" || w == "assemble"),
        "dotnet" => matches!(sub, Some("build" | "publish")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_guards() {
        let r = var_refs("${A:-$B}/$C '$D' \\$E", '\\');
        let names: Vec<(&str, bool)> = r.iter().map(|v| (v.name.as_str(), v.guarded)).collect();
        assert_eq!(names, [("A", true), ("C", false)]);
    }

    #[test]
    fn commands_split() {
        let c = simple_commands(
            "apt-get update && DEBIAN_FRONTEND=x apt-get install -y \\\n curl; rm -rf /x",
        );
        assert_eq!(c.len(), 3);
        assert_eq!(program(&c[1]), "apt-get");
        assert_eq!(subcommand(&c[1]), Some("install"));
        assert!(is_dependency_install(&simple_commands("npm ci")[0]));
        assert!(is_compile(&simple_commands("npm run build")[0]));
        assert!(!is_compile(&simple_commands("npm run test")[0]));
    }
}
