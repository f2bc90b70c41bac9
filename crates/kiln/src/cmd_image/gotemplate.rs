//! Go's `text/template` as docker's `--format` flags use it, evaluated over JSON values:
//! fields and chains (`{{.A.B}}`, `{{(index .M "k").X}}`), variables (`{{$x := .A}}`, `$`,
//! `{{range $k, $v := .M}}`), `if`/`with`/`range` with `else` and `else if`/`else with`,
//! pipelines, comments, `{{-`/`-}}` trimming, Go's builtins (`and or not len index slice
//! print printf println eq ne lt le gt ge`) and docker's (`json join split title lower upper
//! pad truncate`). Values print as Go prints them: lists `[a b]`, maps `map[k:v]`, a nil
//! pointer `<nil>`, a missing map key `<no value>`; the Go types JSON loses come back through
//! markers the caller sets ([`nil_map`], [`nil_slice`], [`method`]).
//!
//! Errors read as Go's: `template: :1:2: executing "" at <.Nope>: ...`, parse errors
//! `template: :1: function "x" not defined` (functions and variables are checked at parse
//! time, as Go does).

use serde_json::Value;

mod printf;

pub use printf::sprintf;

/// A template that failed to parse or to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template text is malformed (Go's message, `template: :1: ...`).
    #[error("template parsing error: {0}")]
    Parse(String),
    /// Evaluation failed (Go's message, `template: :1:2: executing "" at <...>: ...`).
    #[error("{0}")]
    Exec(String),
}

type Result<T> = std::result::Result<T, TemplateError>;

/// How to evaluate: with data, or to render a table header (docker's header functions print
/// nothing, fields print their header names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Normal evaluation.
    Data,
    /// Header rendering, as docker's `HeaderFunctions` do.
    Header,
}

/// What a missing field of a struct-like object does: docker's `ps`/`images` contexts are Go
/// structs (an unknown field is an error naming the type), `inspect` falls back to a map
/// with `missingkey=error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// `can't evaluate field X in type T`.
    Struct(String),
    /// `map has no entry for key "X"`.
    MapError,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
struct Pipe {
    decl: Vec<String>,
    /// `=` rather than `:=`.
    assign: bool,
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone, PartialEq)]
struct Cmd {
    args: Vec<Arg>,
    /// Byte offset and Go's rendering of the node, for error messages.
    pos: usize,
    text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// `.`, `.A.B` (fields of dot).
    Field(Vec<String>, usize),
    /// `$x.A.B`.
    Var(String, Vec<String>, usize),
    /// `(pipeline).A.B`.
    Sub(Box<Pipe>, Vec<String>),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Func(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
    src: String,
    missing: Missing,
}

const FUNCS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge", "html", "js", "urlquery", "json", "join", "split", "title", "lower", "upper",
    "pad", "truncate",
];

/// docker's header functions: they print nothing in a table's header.
const HEADER_BLANK: &[&str] = &[
    "json", "join", "split", "title", "lower", "upper", "pad", "truncate",
];

impl Template {
    /// Parses template text (unknown fields fail as `inspect`'s map fallback does).
    pub fn parse(src: &str) -> Result<Template> {
        let tokens = lex(src)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            src,
            vars: vec!["$".to_string()],
        };
        let (nodes, end) = p.list()?;
        if let Some(kw) = end {
            return Err(perr(src, p.last_pos(), &format!("unexpected {{{{{kw}}}}}")));
        }
        Ok(Template {
            nodes,
            src: src.to_string(),
            missing: Missing::MapError,
        })
    }

    /// The same template, with missing fields reported as `missing` says.
    pub fn with_missing(mut self, missing: Missing) -> Template {
        self.missing = missing;
        self
    }

    /// Renders the template against `data`.
    pub fn render(&self, data: &Value, mode: Mode) -> Result<String> {
        let mut st = State {
            t: self,
            mode,
            vars: vec![("$".into(), Some(data.clone()))],
            out: String::new(),
        };
        st.nodes(&self.nodes, &Some(data.clone()))?;
        Ok(st.out)
    }
}

// ---- lexing: text and actions, trim markers, comments ----

#[derive(Debug)]
enum Token {
    Text(String),
    /// Action text (without delimiters and trim markers) and its byte offset in the source.
    Action(String, usize),
}

fn lex(src: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut at = 0;
    let mut trim_next = false;
    while let Some(rel) = src[at..].find("{{") {
        let start = at + rel;
        let mut text = &src[at..start];
        if trim_next {
            text = text.trim_start_matches(is_space);
        }
        let mut inner = start + 2;
        let b = src.as_bytes();
        let trim_left =
            b.get(inner) == Some(&b'-') && b.get(inner + 1).is_some_and(|c| is_space(*c as char));
        if trim_left {
            text = text.trim_end_matches(is_space);
            inner += 1;
        }
        tokens.push(Token::Text(text.to_string()));
        let Some(end_rel) = find_action_end(&src[inner..]) else {
            return Err(perr(src, start, "unclosed action"));
        };
        let mut end = inner + end_rel;
        let next = end + 2;
        trim_next = false;
        if end > inner && b[end - 1] == b'-' && end - 1 > inner && is_space(b[end - 2] as char) {
            end -= 1;
            trim_next = true;
        }
        let body = &src[inner..end];
        let lead = body.len() - body.trim_start().len();
        let body_t = body.trim();
        if body_t.starts_with("/*") {
            if !body_t.ends_with("*/") {
                return Err(perr(src, start, "unclosed comment"));
            }
        } else {
            tokens.push(Token::Action(body_t.to_string(), inner + lead));
        }
        at = next;
    }
    let mut text = &src[at..];
    if trim_next {
        text = text.trim_start_matches(is_space);
    }
    tokens.push(Token::Text(text.to_string()));
    Ok(tokens)
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Finds the closing `}}`, skipping string literals and comments.
fn find_action_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let t = s.trim_start();
    if t.starts_with("/*") {
        let off = s.len() - t.len();
        let close = t.find("*/")?;
        return s[off + close..].find("}}").map(|e| off + close + e);
    }
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// `template: :LINE: msg`, as Go's parser reports.
fn perr(src: &str, pos: usize, msg: &str) -> TemplateError {
    let line = src[..pos.min(src.len())].matches('\n').count() + 1;
    TemplateError::Parse(format!("template: :{line}: {msg}"))
}

// ---- parsing ----

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    src: &'a str,
    /// Variables in scope (Go checks them at parse time).
    vars: Vec<String>,
}

impl Parser<'_> {
    fn last_pos(&self) -> usize {
        self.tokens[..self.pos]
            .iter()
            .rev()
            .find_map(|t| match t {
                Token::Action(_, p) => Some(*p),
                Token::Text(_) => None,
            })
            .unwrap_or(0)
    }

    /// Nodes up to `{{end}}` or `{{else ...}}` (returned: "end", or "else" plus its rest).
    fn list(&mut self) -> Result<(Vec<Node>, Option<String>)> {
        let mut nodes = Vec::new();
        while self.pos < self.tokens.len() {
            let (a, at) = match &self.tokens[self.pos] {
                Token::Text(s) => {
                    if !s.is_empty() {
                        nodes.push(Node::Text(s.clone()));
                    }
                    self.pos += 1;
                    continue;
                }
                Token::Action(a, at) => (a.clone(), *at),
            };
            self.pos += 1;
            let (kw, rest) = match a.find(|c: char| is_space(c) || c == '(') {
                Some(i) => (&a[..i], a[i..].trim_start()),
                None => (a.as_str(), ""),
            };
            let rest_at = at + (a.len() - rest.len());
            match kw {
                "end" | "else" => return Ok((nodes, Some(a.clone()))),
                "if" | "with" | "range" => nodes.push(self.control(kw, rest, rest_at)?),
                "define" | "template" | "block" | "break" | "continue" => {
                    return Err(perr(
                        self.src,
                        at,
                        &format!("{{{{{kw}}}}} is not supported"),
                    ));
                }
                _ => nodes.push(Node::Action(self.pipe(&a, at, false)?)),
            }
        }
        Ok((nodes, None))
    }

    fn control(&mut self, kw: &str, rest: &str, at: usize) -> Result<Node> {
        let depth = self.vars.len();
        let pipe = self.pipe(rest, at, kw == "range")?;
        let (body, end) = self.list()?;
        let els = match end.as_deref() {
            Some("end") => Vec::new(),
            Some("else") => {
                let (e, end2) = self.list()?;
                if end2.as_deref() != Some("end") {
                    return Err(perr(
                        self.src,
                        self.last_pos(),
                        &format!("missing {{{{end}}}} for {kw}"),
                    ));
                }
                e
            }
            Some(other) => {
                // `{{else if ...}}` / `{{else with ...}}`: a nested control that shares the end.
                let inner = other["else".len()..].trim_start();
                let (kw2, rest2) = inner
                    .split_once(|c: char| is_space(c) || c == '(')
                    .map_or((inner, ""), |(k, r)| (k, r));
                if kw2 != "if" && kw2 != "with" {
                    return Err(perr(
                        self.src,
                        self.last_pos(),
                        &format!("unexpected {other:?} in {kw}"),
                    ));
                }
                let rest_at = self.last_pos() + (other.len() - rest2.len());
                let rest2 = if inner.len() > kw2.len() && inner.as_bytes()[kw2.len()] == b'(' {
                    &inner[kw2.len()..]
                } else {
                    rest2
                };
                vec![self.control(kw2, rest2, rest_at)?]
            }
            None => {
                return Err(perr(
                    self.src,
                    self.src.len(),
                    &format!("unexpected EOF in {kw}"),
                ));
            }
        };
        self.vars.truncate(depth);
        Ok(match kw {
            "if" => Node::If(pipe, body, els),
            "with" => Node::With(pipe, body, els),
            _ => Node::Range(pipe, body, els),
        })
    }

    /// A pipeline, with its variable declaration if any (`range` allows two).
    fn pipe(&mut self, s: &str, at: usize, range: bool) -> Result<Pipe> {
        let mut decl = Vec::new();
        let mut assign = false;
        let mut body = s;
        let mut body_at = at;
        if s.starts_with('$') {
            let ops = [":=", "="];
            if let Some((i, op)) = ops
                .iter()
                .filter_map(|op| s.find(op).map(|i| (i, *op)))
                .min_by_key(|(i, _)| *i)
            {
                let names: Vec<&str> = s[..i].split(',').map(str::trim).collect();
                let valid = names.iter().all(|n| {
                    n.starts_with('$') && n[1..].chars().all(|c| c.is_alphanumeric() || c == '_')
                });
                if valid && !s[..i].contains('.') && !s[..i].contains('(') {
                    if names.len() > if range { 2 } else { 1 } {
                        return Err(perr(self.src, at, "too many declarations"));
                    }
                    assign = op == "=";
                    for n in &names {
                        if assign && !self.vars.iter().any(|v| v == n) {
                            return Err(perr(self.src, at, &format!("undefined variable {n:?}")));
                        }
                        decl.push(n.to_string());
                    }
                    body = s[i + op.len()..].trim_start();
                    body_at = at + (s.len() - body.len());
                }
            }
        }
        let cmds = self.cmds(body, body_at)?;
        if !assign {
            self.vars.extend(decl.iter().cloned());
        }
        Ok(Pipe { decl, assign, cmds })
    }

    fn cmds(&self, s: &str, at: usize) -> Result<Vec<Cmd>> {
        let chars: Vec<(usize, char)> = s.char_indices().collect();
        let mut cmds = Vec::new();
        let mut cur: Vec<Arg> = Vec::new();
        let mut cur_pos = None;
        let mut cur_start = 0;
        let mut i = 0;
        let finish = |cur: &mut Vec<Arg>,
                      cur_pos: &mut Option<usize>,
                      start: usize,
                      end: usize,
                      cmds: &mut Vec<Cmd>| {
            if !cur.is_empty() {
                cmds.push(Cmd {
                    args: std::mem::take(cur),
                    pos: cur_pos.take().unwrap_or(at),
                    text: s[start..end].trim().to_string(),
                });
            }
        };
        while i < chars.len() {
            let (off, c) = chars[i];
            if is_space(c) {
                i += 1;
                continue;
            }
            if c == '|' {
                if cur.is_empty() {
                    return Err(perr(self.src, at + off, "missing command"));
                }
                finish(&mut cur, &mut cur_pos, cur_start, off, &mut cmds);
                i += 1;
                continue;
            }
            if cur.is_empty() {
                cur_start = off;
            }
            let tok_at = at + off;
            let (arg, next, arg_pos) = self.arg(s, &chars, i, tok_at, at)?;
            if cur.is_empty() {
                cur_pos = Some(arg_pos);
            }
            cur.push(arg);
            i = next;
        }
        finish(&mut cur, &mut cur_pos, cur_start, s.len(), &mut cmds);
        if cmds.is_empty() {
            return Err(perr(self.src, at, "missing value for command"));
        }
        for (n, c) in cmds.iter().enumerate() {
            if n > 0 && !matches!(c.args[0], Arg::Func(_)) && c.args.len() == 1 {
                // Go: a non-function after `|` cannot take the piped value.
                if !matches!(c.args[0], Arg::Field(..) | Arg::Var(..) | Arg::Sub(..)) {
                    return Err(perr(
                        self.src,
                        c.pos,
                        &format!("non executable command in pipeline stage {}", n + 1),
                    ));
                }
            }
        }
        Ok(cmds)
    }

    /// One operand at `chars[i]`: the operand, the index after it, and its position for errors.
    fn arg(
        &self,
        s: &str,
        chars: &[(usize, char)],
        mut i: usize,
        tok_at: usize,
        at: usize,
    ) -> Result<(Arg, usize, usize)> {
        let (off, c) = chars[i];
        let end_of = |j: usize| chars.get(j).map_or(s.len(), |x| x.0);
        match c {
            '"' => {
                let mut lit = String::new();
                i += 1;
                loop {
                    let Some(&(_, ch)) = chars.get(i) else {
                        return Err(perr(self.src, tok_at, "unterminated quoted string"));
                    };
                    i += 1;
                    match ch {
                        '"' => break,
                        '\\' => {
                            let Some(&(_, e)) = chars.get(i) else {
                                return Err(perr(self.src, tok_at, "unterminated quoted string"));
                            };
                            i += 1;
                            lit.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '0' => '\0',
                                other => other,
                            });
                        }
                        other => lit.push(other),
                    }
                }
                Ok((Arg::Str(lit), i, tok_at))
            }
            '`' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i].1 != '`' {
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(perr(self.src, tok_at, "unterminated raw quoted string"));
                }
                Ok((
                    Arg::Str(s[end_of(start)..chars[i].0].to_string()),
                    i + 1,
                    tok_at,
                ))
            }
            '(' => {
                let mut depth = 1;
                let start = i + 1;
                i += 1;
                while i < chars.len() && depth > 0 {
                    match chars[i].1 {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        '"' => {
                            i += 1;
                            while i < chars.len() && chars[i].1 != '"' {
                                if chars[i].1 == '\\' {
                                    i += 1;
                                }
                                i += 1;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                if depth != 0 {
                    return Err(perr(self.src, tok_at, "unclosed left paren"));
                }
                let inner = &s[end_of(start)..chars[i - 1].0];
                let mut p = Parser {
                    tokens: Vec::new(),
                    pos: 0,
                    src: self.src,
                    vars: self.vars.clone(),
                };
                let pipe = p.pipe(inner, at + end_of(start), false)?;
                let (fields, next) = field_chain(s, chars, i);
                Ok((Arg::Sub(Box::new(pipe), fields), next, tok_at))
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !is_space(chars[i].1)
                    && !matches!(chars[i].1, '|' | '(' | ')')
                {
                    i += 1;
                }
                let word = &s[off..end_of(i)];
                let arg = self.word(word, tok_at)?;
                // Go reports a chain at its second element.
                let pos = match &arg {
                    Arg::Field(f, _) | Arg::Var(_, f, _)
                        if f.len() > 1 || matches!(arg, Arg::Var(..)) && !f.is_empty() =>
                    {
                        tok_at + word[1..].find('.').map_or(0, |p| p + 1)
                    }
                    _ => tok_at,
                };
                let _ = start;
                Ok((arg, i, pos))
            }
        }
    }

    fn word(&self, w: &str, at: usize) -> Result<Arg> {
        if w == "." {
            return Ok(Arg::Field(Vec::new(), at));
        }
        if let Some(path) = w.strip_prefix('.') {
            let f: Vec<String> = path.split('.').map(str::to_string).collect();
            if f.iter()
                .any(|x| x.is_empty() || !x.chars().all(|c| c.is_alphanumeric() || c == '_'))
            {
                return Err(perr(self.src, at, &format!("bad character in field {w:?}")));
            }
            return Ok(Arg::Field(f, at));
        }
        if w.starts_with('$') {
            let (name, fields) = match w.find('.') {
                Some(i) => (&w[..i], w[i + 1..].split('.').map(str::to_string).collect()),
                None => (w, Vec::new()),
            };
            if !self.vars.iter().any(|v| v == name) {
                return Err(perr(self.src, at, &format!("undefined variable {name:?}")));
            }
            return Ok(Arg::Var(name.to_string(), fields, at));
        }
        match w {
            "true" => return Ok(Arg::Bool(true)),
            "false" => return Ok(Arg::Bool(false)),
            "nil" => return Ok(Arg::Nil),
            _ => {}
        }
        if w.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.') {
            if let Some(n) = parse_int(w) {
                return Ok(Arg::Int(n));
            }
            if let Ok(f) = w.parse::<f64>() {
                return Ok(Arg::Float(f));
            }
            return Err(perr(self.src, at, &format!("bad number syntax: {w:?}")));
        }
        if w.starts_with('\'') && w.ends_with('\'') && w.chars().count() == 3 {
            return Ok(Arg::Int(w.chars().nth(1).map_or(0, |c| c as i64)));
        }
        if w.chars().all(|c| c.is_alphanumeric() || c == '_') {
            if !FUNCS.contains(&w) {
                return Err(perr(self.src, at, &format!("function {w:?} not defined")));
            }
            return Ok(Arg::Func(w.to_string()));
        }
        Err(perr(self.src, at, &format!("unexpected {w:?} in operand")))
    }
}

fn parse_int(w: &str) -> Option<i64> {
    let (neg, d) = match w.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, w.strip_prefix('+').unwrap_or(w)),
    };
    let d = d.replace('_', "");
    let v = if let Some(h) = d.strip_prefix("0x").or_else(|| d.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = d.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if d.len() > 1 && d.starts_with('0') && d.chars().all(|c| c.is_ascii_digit()) {
        i64::from_str_radix(&d[1..], 8).ok()?
    } else {
        d.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

/// `.A.B` right after a parenthesized pipeline.
fn field_chain(s: &str, chars: &[(usize, char)], mut i: usize) -> (Vec<String>, usize) {
    let mut fields = Vec::new();
    while i < chars.len() && chars[i].1 == '.' {
        let start = i + 1;
        i = start;
        while i < chars.len() && (chars[i].1.is_alphanumeric() || chars[i].1 == '_') {
            i += 1;
        }
        let end = chars.get(i).map_or(s.len(), |x| x.0);
        fields.push(s[chars[start.min(chars.len() - 1)].0..end].to_string());
    }
    (fields, i)
}

// ---- evaluation ----

/// A value, or Go's invalid value (a missing map key): `None` prints `<no value>`.
type V = Option<Value>;

struct State<'a> {
    t: &'a Template,
    mode: Mode,
    vars: Vec<(String, V)>,
    out: String,
}

/// An error inside a command, before it is placed (`at <...>`).
struct Fail(String);

impl State<'_> {
    fn nodes(&mut self, nodes: &[Node], dot: &V) -> Result<()> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&print_v(&v));
                    }
                }
                Node::If(p, body, els) | Node::With(p, body, els) => {
                    let depth = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let is_with = matches!(n, Node::With(..));
                    if truthy_v(&v) {
                        self.nodes(body, if is_with { &v } else { dot })?;
                    } else {
                        self.nodes(els, dot)?;
                    }
                    self.vars.truncate(depth);
                }
                Node::Range(p, body, els) => self.range(p, body, els, dot)?,
            }
        }
        Ok(())
    }

    fn range(&mut self, p: &Pipe, body: &[Node], els: &[Node], dot: &V) -> Result<()> {
        let depth = self.vars.len();
        let plain = Pipe {
            decl: Vec::new(),
            assign: false,
            cmds: p.cmds.clone(),
        };
        let v = self.pipe(&plain, dot)?;
        let items: Vec<(Value, Value)> = match &v {
            None => Vec::new(),
            Some(v) if is_marker(v) => Vec::new(),
            Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, x)| (Value::from(i), x.clone()))
                .collect(),
            Some(Value::Object(m)) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                keys.into_iter()
                    .map(|k| (Value::String(k.clone()), m[k].clone()))
                    .collect()
            }
            Some(Value::Number(n)) if n.as_i64().is_some() => (0..n.as_i64().unwrap_or(0))
                .map(|i| (Value::from(i), Value::from(i)))
                .collect(),
            Some(other) => {
                return Err(self.at(
                    &p.cmds[0],
                    Fail(format!("range can't iterate over {}", print_value(other))),
                ));
            }
        };
        if items.is_empty() {
            self.nodes(els, dot)?;
        }
        for (k, item) in items {
            match p.decl.len() {
                1 => self.vars.push((p.decl[0].clone(), Some(item.clone()))),
                2 => {
                    self.vars.push((p.decl[0].clone(), Some(k)));
                    self.vars.push((p.decl[1].clone(), Some(item.clone())));
                }
                _ => {}
            }
            self.nodes(body, &Some(item))?;
            self.vars.truncate(depth);
        }
        Ok(())
    }

    fn at(&self, c: &Cmd, f: Fail) -> TemplateError {
        let src = &self.t.src;
        let pos = c.pos.min(src.len());
        let line_start = src[..pos].rfind('\n').map_or(0, |i| i + 1);
        let line = src[..pos].matches('\n').count() + 1;
        TemplateError::Exec(format!(
            "template: :{line}:{}: executing \"\" at <{}>: {}",
            pos - line_start,
            c.text,
            f.0
        ))
    }

    fn pipe(&mut self, p: &Pipe, dot: &V) -> Result<V> {
        let mut prev: Option<V> = None;
        for c in &p.cmds {
            let v = self.cmd(c, dot, prev.take()).map_err(|f| self.at(c, f))?;
            prev = Some(v);
        }
        let v = prev.unwrap_or(None);
        if p.assign {
            if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| *n == p.decl[0]) {
                slot.1 = v.clone();
            }
        } else {
            for d in &p.decl {
                self.vars.push((d.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn cmd(&mut self, c: &Cmd, dot: &V, piped: Option<V>) -> std::result::Result<V, Fail> {
        match &c.args[0] {
            Arg::Func(name) => {
                if name == "and" || name == "or" {
                    return self.and_or(name, c, dot, piped);
                }
                let mut args = Vec::new();
                for a in &c.args[1..] {
                    args.push(self.operand(a, dot)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                if self.mode == Mode::Header && HEADER_BLANK.contains(&name.as_str()) {
                    return Ok(Some(Value::String(String::new())));
                }
                call(name, args).map_err(|e| Fail(format!("error calling {name}: {}", e.0)))
            }
            Arg::Field(path, _) if c.args.len() > 1 || piped.is_some() => {
                // A method with arguments (docker's `.Label "k"`).
                let recv = self.walk(dot.clone(), &path[..path.len().saturating_sub(1)])?;
                let name = path.last().cloned().unwrap_or_default();
                let m = self.get(&recv, &name)?;
                let mut args = Vec::new();
                for a in &c.args[1..] {
                    args.push(self.operand(a, dot)?);
                }
                args.extend(piped);
                match m {
                    Some(v) if method_table(&v).is_some() => {
                        let key = args
                            .first()
                            .cloned()
                            .flatten()
                            .map(|k| print_value(&k))
                            .unwrap_or_default();
                        if self.mode == Mode::Header {
                            return Ok(Some(Value::String(label_header(&key))));
                        }
                        Ok(Some(
                            method_table(&v)
                                .and_then(|t| t.get(&key).cloned())
                                .unwrap_or(Value::String(String::new())),
                        ))
                    }
                    _ => Err(Fail(format!("{name} is not a method but has arguments"))),
                }
            }
            first => {
                if c.args.len() > 1 || piped.is_some() {
                    return Err(Fail(format!(
                        "can't give argument to non-function {}",
                        c.text.split_whitespace().next().unwrap_or("")
                    )));
                }
                self.operand(first, dot)
            }
        }
    }

    fn and_or(
        &mut self,
        name: &str,
        c: &Cmd,
        dot: &V,
        piped: Option<V>,
    ) -> std::result::Result<V, Fail> {
        let n = c.args.len() - 1 + usize::from(piped.is_some());
        if n == 0 {
            return Err(Fail(format!(
                "wrong number of args for {name}: want at least 1 got 0"
            )));
        }
        let mut last = None;
        for a in &c.args[1..] {
            let v = self.operand(a, dot)?;
            let t = truthy_v(&v);
            last = v;
            if (name == "and" && !t) || (name == "or" && t) {
                return Ok(last);
            }
        }
        if let Some(p) = piped {
            last = p;
        }
        Ok(last)
    }

    fn operand(&mut self, a: &Arg, dot: &V) -> std::result::Result<V, Fail> {
        match a {
            Arg::Field(path, _) => {
                let v = self.walk(dot.clone(), path)?;
                // A method with no arguments called as a field: docker's `.Label` needs one.
                if v.as_ref().and_then(method_table).is_some() {
                    return Err(Fail(format!(
                        "wrong number of args for {}: want 1 got 0",
                        path.last().map_or("", |s| s)
                    )));
                }
                Ok(v)
            }
            Arg::Var(name, fields, _) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or(None);
                self.walk(v, fields)
            }
            Arg::Sub(p, fields) => {
                let v = self.pipe(p, dot).map_err(|e| match e {
                    TemplateError::Exec(m) | TemplateError::Parse(m) => Fail(m),
                })?;
                self.walk(v, fields)
            }
            Arg::Str(s) => Ok(Some(Value::String(s.clone()))),
            Arg::Int(n) => Ok(Some(Value::from(*n))),
            Arg::Float(f) => Ok(Some(
                serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            )),
            Arg::Bool(b) => Ok(Some(Value::Bool(*b))),
            Arg::Nil => Err(Fail("nil is not a command".into())),
            Arg::Func(f) => {
                if self.mode == Mode::Header && HEADER_BLANK.contains(&f.as_str()) {
                    return Ok(Some(Value::String(String::new())));
                }
                call(f, Vec::new()).map_err(|e| Fail(format!("error calling {f}: {}", e.0)))
            }
        }
    }

    fn walk(&self, mut v: V, path: &[String]) -> std::result::Result<V, Fail> {
        for (i, name) in path.iter().enumerate() {
            // A nil pointer inside an inspect document: docker's typed pass fails and its
            // map fallback, where the pointer is omitted, names the pointer's key.
            if i > 0 && v == Some(Value::Null) && self.t.missing == Missing::MapError {
                return Err(Fail(format!("map has no entry for key {:?}", path[i - 1])));
            }
            v = self.get(&v, name)?;
        }
        Ok(v)
    }

    /// One field of `v`: a struct-like object's missing field fails (as the template's
    /// [`Missing`] says); a Go map's (marked, or with a key Go could not have as a field)
    /// missing key is `<no value>`.
    fn get(&self, v: &V, name: &str) -> std::result::Result<V, Fail> {
        let Some(v) = v else {
            return Ok(None);
        };
        match v {
            v if is_nil_map(v) => Ok(None),
            v if method_table(v).is_some() => {
                Err(Fail(format!("can't evaluate field {name} in type string")))
            }
            Value::Object(m) => match m.get(name) {
                Some(x) => Ok(Some(x.clone())),
                // An empty object is an empty map here (docker's structs are never empty).
                None if is_go_map(m)
                    || m.is_empty()
                    || !name.starts_with(|c: char| c.is_ascii_uppercase()) =>
                {
                    Ok(None)
                }
                None => Err(Fail(match &self.t.missing {
                    Missing::Struct(t) => format!("can't evaluate field {name} in type {t}"),
                    Missing::MapError => format!("map has no entry for key {name:?}"),
                })),
            },
            Value::Null => Err(Fail(format!(
                "nil pointer evaluating interface {{}}.{name}"
            ))),
            other => Err(Fail(format!(
                "can't evaluate field {name} in type {}",
                go_type(other)
            ))),
        }
    }
}

/// A struct's fields start with a capital letter; an object with any other key is a Go map.
fn is_go_map(m: &serde_json::Map<String, Value>) -> bool {
    m.keys()
        .any(|k| !k.starts_with(|c: char| c.is_ascii_uppercase()))
}

/// docker's header for `.Label "com.x.some-name"`: the last part, `-`/`_` as spaces.
fn label_header(key: &str) -> String {
    key.rsplit('.')
        .next()
        .unwrap_or(key)
        .replace(['-', '_'], " ")
}

fn call(name: &str, args: Vec<V>) -> std::result::Result<V, Fail> {
    let arity = |n: usize| -> std::result::Result<(), Fail> {
        if args.len() != n {
            return Err(Fail(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            )));
        }
        Ok(())
    };
    let sv = |v: &V| print_v(v);
    let int = |v: &V| -> std::result::Result<i64, Fail> {
        match v {
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64().unwrap_or(0)),
            other => Err(Fail(format!(
                "cannot index slice/array with type {}",
                go_type_v(other)
            ))),
        }
    };
    let string_arg = |v: &V| -> std::result::Result<String, Fail> {
        match v {
            Some(Value::String(s)) => Ok(s.clone()),
            other => Err(Fail(format!(
                "wrong type for value; expected string; got {}",
                go_type_v(other)
            ))),
        }
    };
    Ok(Some(match name {
        "not" => {
            arity(1)?;
            Value::Bool(!truthy_v(&args[0]))
        }
        "len" => {
            arity(1)?;
            let n = match &args[0] {
                Some(v) if is_marker(v) => 0,
                Some(Value::Array(a)) => a.len(),
                Some(Value::Object(m)) => m.len(),
                Some(Value::String(x)) => x.len(),
                other => return Err(Fail(format!("len of type {}", go_type_v(other)))),
            };
            Value::from(n)
        }
        "index" => {
            if args.is_empty() {
                return Err(Fail(
                    "wrong number of args for index: want at least 1 got 0".into(),
                ));
            }
            let mut v = args[0].clone();
            for k in &args[1..] {
                v = match &v {
                    Some(x) if is_nil_map(x) => Some(Value::String(String::new())),
                    Some(Value::Object(m)) => match m.get(&sv(k)) {
                        Some(x) => Some(x.clone()),
                        // The zero value of the map's element type: "" for docker's
                        // map[string]string fields, nil (`<no value>`) for interface maps.
                        None if m.values().all(Value::is_string) => {
                            Some(Value::String(String::new()))
                        }
                        None => None,
                    },
                    Some(Value::Array(a)) => {
                        let i = int(k)?;
                        if i < 0 || i as usize >= a.len() {
                            return Err(Fail(format!("index out of range: {i}")));
                        }
                        Some(a[i as usize].clone())
                    }
                    Some(Value::String(s)) => {
                        let i = int(k)?;
                        if i < 0 || i as usize >= s.len() {
                            return Err(Fail(format!("index out of range: {i}")));
                        }
                        Some(Value::from(s.as_bytes()[i as usize]))
                    }
                    None => return Err(Fail("index of untyped nil".into())),
                    Some(other) => {
                        return Err(Fail(format!("can't index item of type {}", go_type(other))));
                    }
                };
            }
            return Ok(v);
        }
        "slice" => {
            if args.is_empty() || args.len() > 4 {
                return Err(Fail(format!(
                    "wrong number of args for slice: want 1-4 got {}",
                    args.len()
                )));
            }
            let idx: Vec<i64> = args[1..]
                .iter()
                .map(int)
                .collect::<std::result::Result<_, _>>()?;
            let len = match &args[0] {
                Some(Value::String(s)) => s.len(),
                Some(Value::Array(a)) => a.len(),
                Some(v) if is_nil_slice(v) => 0,
                other => {
                    return Err(Fail(format!(
                        "can't slice item of type {}",
                        go_type_v(other)
                    )));
                }
            } as i64;
            let lo = idx.first().copied().unwrap_or(0);
            let hi = idx.get(1).copied().unwrap_or(len);
            if lo < 0 || hi < lo || hi > len {
                return Err(Fail(format!(
                    "index out of range: {}",
                    if lo < 0 || lo > len { lo } else { hi }
                )));
            }
            match &args[0] {
                Some(Value::String(s)) => {
                    if matches!(args[0], Some(Value::String(_))) && idx.len() == 3 {
                        return Err(Fail("cannot 3-index slice a string".into()));
                    }
                    Value::String(
                        String::from_utf8_lossy(&s.as_bytes()[lo as usize..hi as usize])
                            .into_owned(),
                    )
                }
                Some(Value::Array(a)) => Value::Array(a[lo as usize..hi as usize].to_vec()),
                _ => nil_slice(),
            }
        }
        "print" => {
            let mut out = String::new();
            for (i, a) in args.iter().enumerate() {
                let is_str = |v: &V| matches!(v, Some(Value::String(_)));
                if i > 0 && !is_str(a) && !is_str(&args[i - 1]) {
                    out.push(' ');
                }
                out.push_str(&sprint_arg(a));
            }
            Value::String(out)
        }
        "println" => {
            Value::String(args.iter().map(sprint_arg).collect::<Vec<_>>().join(" ") + "\n")
        }
        "printf" => {
            if args.is_empty() {
                return Err(Fail(
                    "wrong number of args for printf: want at least 1 got 0".into(),
                ));
            }
            Value::String(sprintf(&string_arg(&args[0])?, &args[1..]))
        }
        "eq" => {
            if args.len() < 2 {
                return Err(Fail("missing argument for comparison".into()));
            }
            let mut any = false;
            for b in &args[1..] {
                if compare(&args[0], b, true)? == Some(std::cmp::Ordering::Equal) {
                    any = true;
                }
            }
            Value::Bool(any)
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            arity(2)?;
            use std::cmp::Ordering::*;
            let o = compare(&args[0], &args[1], name == "ne")?;
            Value::Bool(match name {
                "ne" => o != Some(Equal),
                "lt" => o == Some(Less),
                "le" => matches!(o, Some(Less | Equal)),
                "gt" => o == Some(Greater),
                _ => matches!(o, Some(Greater | Equal)),
            })
        }
        "html" | "js" | "urlquery" => {
            let s: String = args.iter().map(sprint_arg).collect();
            Value::String(match name {
                "html" => s
                    .replace('&', "&amp;")
                    .replace('\'', "&#39;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
                    .replace('"', "&#34;"),
                "js" => s
                    .replace('\\', "\\\\")
                    .replace('\'', "\\'")
                    .replace('"', "\\\"")
                    .replace('<', "\\u003C")
                    .replace('>', "\\u003E"),
                _ => s
                    .bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                            (b as char).to_string()
                        } else if b == b' ' {
                            "+".into()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect(),
            })
        }
        // docker's template functions (cli/templates).
        "json" => {
            arity(1)?;
            Value::String(match &args[0] {
                None => "null".into(),
                Some(v) => go_json(v),
            })
        }
        "upper" | "lower" | "title" => {
            arity(1)?;
            let s = string_arg(&args[0])?;
            Value::String(match name {
                "upper" => s.to_uppercase(),
                "lower" => s.to_lowercase(),
                _ => {
                    let mut out = String::with_capacity(s.len());
                    let mut start = true;
                    for c in s.chars() {
                        if start {
                            out.extend(c.to_uppercase());
                        } else {
                            out.push(c);
                        }
                        start = !(c.is_alphanumeric() || c == '_' || c == '\'');
                    }
                    out
                }
            })
        }
        "join" => {
            arity(2)?;
            let items: Vec<String> = match &args[0] {
                Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
                    a.iter().map(print_value).collect()
                }
                Some(v) if is_nil_slice(v) => Vec::new(),
                other => {
                    return Err(Fail(format!(
                        "wrong type for value; expected []string; got {}",
                        go_type_v(other)
                    )));
                }
            };
            Value::String(items.join(&string_arg(&args[1])?))
        }
        "split" => {
            arity(2)?;
            let s = string_arg(&args[0])?;
            let sep = string_arg(&args[1])?;
            if sep.is_empty() {
                Value::Array(s.chars().map(|c| Value::String(c.to_string())).collect())
            } else {
                Value::Array(
                    s.split(sep.as_str())
                        .map(|p| Value::String(p.to_string()))
                        .collect(),
                )
            }
        }
        "truncate" => {
            arity(2)?;
            let s = string_arg(&args[0])?;
            let n = int(&args[1])?.max(0) as usize;
            // Go slices bytes; a cut inside a character is replaced as Go's printing would.
            Value::String(if s.len() <= n {
                s
            } else {
                String::from_utf8_lossy(&s.as_bytes()[..n]).into_owned()
            })
        }
        "pad" => {
            arity(3)?;
            let s = string_arg(&args[0])?;
            let l = int(&args[1])?.max(0) as usize;
            let r = int(&args[2])?.max(0) as usize;
            Value::String(format!("{}{s}{}", " ".repeat(l), " ".repeat(r)))
        }
        other => return Err(Fail(format!("function {other:?} not defined"))),
    }))
}

/// Go's `eq`/`lt` on basic kinds: ints and floats each with their own, strings, bools (only
/// `eq`/`ne`); anything else is an error. A missing value equals nothing.
fn compare(a: &V, b: &V, eq_only: bool) -> std::result::Result<Option<std::cmp::Ordering>, Fail> {
    let (Some(a), Some(b)) = (a, b) else {
        return Ok(None);
    };
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => Ok(Some(i.cmp(&j))),
            (None, None) => Ok(x.as_f64().partial_cmp(&y.as_f64())),
            _ => Err(Fail("incompatible types for comparison".into())),
        },
        (Value::String(x), Value::String(y)) => Ok(Some(x.cmp(y))),
        (Value::Bool(x), Value::Bool(y)) if eq_only => Ok(Some(x.cmp(y))),
        (Value::Bool(_), Value::Bool(_)) => Err(Fail("invalid type for comparison".into())),
        (Value::Null, Value::Null) if eq_only => Ok(Some(std::cmp::Ordering::Equal)),
        (Value::Array(_) | Value::Object(_) | Value::Null, _)
        | (_, Value::Array(_) | Value::Object(_) | Value::Null) => {
            Err(Fail("invalid type for comparison".into()))
        }
        _ => Err(Fail("incompatible types for comparison".into())),
    }
}

/// The operand as `fmt.Sprint` prints it (`<nil>` for a missing value, as Go's print
/// functions see nil).
fn sprint_arg(v: &V) -> String {
    match v {
        None => "<nil>".into(),
        Some(v) => print_value(v),
    }
}

fn go_type_v(v: &V) -> String {
    v.as_ref().map_or_else(|| "<nil>".into(), go_type)
}

/// A Go type name for messages and `%T`.
pub(crate) fn go_type(v: &Value) -> String {
    match v {
        v if is_nil_map(v) => "map[string]string".into(),
        v if is_nil_slice(v) => "[]string".into(),
        v if method_table(v).is_some() => "func(string) string".into(),
        Value::Null => "<nil>".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(n) if n.as_i64().is_some() || n.as_u64().is_some() => "int".into(),
        Value::Number(_) => "float64".into(),
        Value::String(_) => "string".into(),
        Value::Array(a) if a.iter().all(Value::is_string) => "[]string".into(),
        Value::Array(_) => "[]interface {}".into(),
        Value::Object(m) if m.values().all(Value::is_string) => "map[string]string".into(),
        Value::Object(_) => "map[string]interface {}".into(),
    }
}

// ---- Go types JSON loses: markers ----

/// The key that marks a nil Go map ([`nil_map`]); no JSON document has it.
const NIL_MAP: &str = "\u{0}nil-map";
/// A nil Go slice ([`nil_slice`]).
const NIL_SLICE: &str = "\u{0}nil-slice";
/// A method taking a key ([`method`]).
const METHOD: &str = "\u{0}method";

/// A Go map field that is nil: a template prints it as `map[]` and `json` as `null`; it is
/// empty to `len`, `range`, `if` and field access.
pub fn nil_map() -> Value {
    marker(NIL_MAP)
}

/// A Go slice field that is nil: prints `[]`, `json` prints `null`.
pub fn nil_slice() -> Value {
    marker(NIL_SLICE)
}

/// A method of one string argument, as docker's `{{.Label "k"}}`: the key's value in
/// `table`, "" for a missing key.
pub fn method(table: serde_json::Map<String, Value>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(METHOD.into(), Value::Object(table));
    Value::Object(m)
}

fn marker(key: &str) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(key.into(), Value::Bool(true));
    Value::Object(m)
}

fn is_nil_map(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.len() == 1 && m.contains_key(NIL_MAP))
}

fn is_nil_slice(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.len() == 1 && m.contains_key(NIL_SLICE))
}

fn method_table(v: &Value) -> Option<&serde_json::Map<String, Value>> {
    v.as_object()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.get(METHOD))
        .and_then(Value::as_object)
}

fn is_marker(v: &Value) -> bool {
    is_nil_map(v) || is_nil_slice(v) || method_table(v).is_some()
}

/// The fields of docker's structs that `inspect` shows, in declaration order: Go's JSON
/// writes a struct's fields in that order (and a map's keys sorted), `fmt` prints a struct
/// as `{v1 v2}`.
const DOCKER_STRUCTS: &[&[&str]] = &[
    // container.Config
    &[
        "Hostname",
        "Domainname",
        "User",
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "ExposedPorts",
        "Tty",
        "OpenStdin",
        "StdinOnce",
        "Env",
        "Cmd",
        "Healthcheck",
        "ArgsEscaped",
        "Image",
        "Volumes",
        "WorkingDir",
        "Entrypoint",
        "NetworkDisabled",
        "MacAddress",
        "OnBuild",
        "Labels",
        "StopSignal",
        "StopTimeout",
        "Shell",
    ],
    // types.ImageInspect
    &[
        "Id",
        "RepoTags",
        "RepoDigests",
        "Parent",
        "Comment",
        "Created",
        "Container",
        "ContainerConfig",
        "DockerVersion",
        "Author",
        "Config",
        "Architecture",
        "Variant",
        "Os",
        "OsVersion",
        "Size",
        "VirtualSize",
        "GraphDriver",
        "RootFS",
        "Metadata",
    ],
    // container.HealthConfig
    &["Test", "Interval", "Timeout", "StartPeriod", "Retries"],
    // types.GraphDriverData, types.RootFS
    &["Data", "Name"],
    &["Type", "Layers", "BaseLayer"],
    // container.RestartPolicy, container.LogConfig
    &["Name", "MaximumRetryCount"],
    &["Type", "Config"],
];

fn struct_fields(m: &serde_json::Map<String, Value>) -> Option<&'static [&'static str]> {
    if m.is_empty() || is_go_map(m) {
        return None;
    }
    DOCKER_STRUCTS
        .iter()
        .copied()
        .find(|f| m.keys().all(|k| f.contains(&k.as_str())))
}

/// Compact JSON as Go's encoder writes the value: an object whose keys all belong to one of
/// docker's structs in that struct's field order, any other object (a Go map) sorted;
/// `<`, `>`, `&` escaped.
pub fn go_json(v: &Value) -> String {
    match v {
        v if is_nil_map(v) || is_nil_slice(v) => "null".into(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_json).collect::<Vec<_>>().join(",")),
        Value::Object(m) => {
            // Methods are not data: Go's encoder never calls them.
            let mut keys: Vec<&String> = m
                .keys()
                .filter(|k| method_table(&m[*k]).is_none())
                .filter(|k| !(OMITTED_NIL.contains(&k.as_str()) && m[*k].is_null()))
                .collect();
            keys.sort();
            if let Some(fields) = struct_fields(m) {
                keys.sort_by_key(|k| fields.iter().position(|f| f == k));
            }
            let body: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        go_json(&Value::String(k.to_string())),
                        go_json(&m[k.as_str()])
                    )
                })
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Value::String(_) => v
            .to_string()
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026"),
        other => other.to_string(),
    }
}

fn truthy_v(v: &V) -> bool {
    v.as_ref().is_some_and(truthy)
}

fn truthy(v: &Value) -> bool {
    if is_nil_map(v) || is_nil_slice(v) {
        return false;
    }
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn print_v(v: &V) -> String {
    match v {
        None => "<no value>".into(),
        Some(v) => print_value(v),
    }
}

/// Prints a value as Go's `fmt.Print` prints the matching Go value (a JSON null is a nil
/// pointer: `<nil>`).
pub fn print_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => printf::go_float_v(f),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(print_value).collect::<Vec<_>>().join(" ")
        ),
        v if is_nil_map(v) => "map[]".into(),
        v if is_nil_slice(v) => "[]".into(),
        v if method_table(v).is_some() => "0x0".into(),
        Value::Object(m) => {
            if let Some(fields) = struct_fields(m) {
                let parts: Vec<String> = fields
                    .iter()
                    .filter_map(|f| m.get(*f))
                    .map(print_value)
                    .collect();
                return format!("{{{}}}", parts.join(" "));
            }
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", print_value(&m[*k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests;

/// docker's slice-typed fields: a `null` there is a nil slice (`[]`).
const SLICE_FIELDS: &[&str] = &[
    "Entrypoint",
    "Cmd",
    "OnBuild",
    "Shell",
    "Env",
    "Binds",
    "VolumesFrom",
    "CapAdd",
    "CapDrop",
    "ExtraHosts",
    "SecurityOpt",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "Devices",
    "Ulimits",
    "GroupAdd",
    "Links",
    "RepoTags",
    "RepoDigests",
    "Layers",
    "Mounts",
    "DeviceRequests",
    "DeviceCgroupRules",
    "BlkioWeightDevice",
    "MaskedPaths",
    "ReadonlyPaths",
    "Args",
];

/// docker's map-typed fields: a `null` there is a nil map (`map[]`).
const MAP_FIELDS: &[&str] = &[
    "Volumes",
    "ExposedPorts",
    "Labels",
    "Tmpfs",
    "Sysctls",
    "StorageOpt",
    "PortBindings",
    "Ports",
    "Data",
    "Options",
    "DriverOpts",
];

/// docker's `omitempty` pointers: absent from JSON when nil.
const OMITTED_NIL: &[&str] = &["Health", "Healthcheck"];

/// An inspect document as Go typed it: `null` in slice and map fields becomes
/// [`nil_slice`]/[`nil_map`], so a template prints `[]`/`map[]` as docker does.
pub fn go_typed_nils(v: &mut Value) {
    match v {
        Value::Object(m) => {
            // Pointers docker omits from JSON when nil, which a template prints as `<nil>`.
            if m.contains_key("OOMKilled") && !m.contains_key("Health") {
                m.insert("Health".into(), Value::Null);
            }
            if m.contains_key("AttachStdin") && !m.contains_key("Healthcheck") {
                m.insert("Healthcheck".into(), Value::Null);
            }
            for (k, x) in m.iter_mut() {
                if x.is_null() {
                    if SLICE_FIELDS.contains(&k.as_str()) {
                        *x = nil_slice();
                    } else if MAP_FIELDS.contains(&k.as_str()) {
                        *x = nil_map();
                    }
                } else {
                    go_typed_nils(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(go_typed_nils),
        _ => {}
    }
}
