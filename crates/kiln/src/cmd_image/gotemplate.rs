//! The subset of Go's `text/template` that docker's `--format` flags use, evaluated over
//! JSON values: `{{.Field.Sub}}`, `{{.}}`, `{{json .}}`, `{{index .M "k"}}`, `{{join .L ","}}`,
//! `{{upper}}`/`{{lower}}`/`{{title}}`/`{{len}}`/`{{println}}`/`{{split}}`, pipelines
//! (`{{.X | json}}`), `{{if}}`/`{{else}}`/`{{end}}`, `{{range}}`, and `{{-`/`-}}` trimming.
//! Values print as Go prints them: lists as `[a b]`, maps as `map[k:v]`.

use serde_json::Value;

/// A template that failed to parse or to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template text is malformed.
    #[error("template parsing error: {0}")]
    Parse(String),
    /// Evaluation failed (unknown field, bad function arguments).
    #[error("template: {0}")]
    Exec(String),
}

type Result<T> = std::result::Result<T, TemplateError>;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
}

type Pipeline = Vec<Command>;
type Command = Vec<Operand>;

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Field(Vec<String>),
    Str(String),
    Num(f64),
    Func(String),
    Sub(Pipeline),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

/// How to evaluate: with data, or to render a table header (functions print nothing,
/// fields print their header names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Normal evaluation.
    Data,
    /// Header rendering, as docker's `HeaderFunctions` do.
    Header,
}

impl Template {
    /// Parses template text.
    pub fn parse(src: &str) -> Result<Template> {
        let tokens = lex(src)?;
        let mut pos = 0;
        let (nodes, end) = parse_nodes(&tokens, &mut pos)?;
        if let Some(kw) = end {
            return Err(TemplateError::Parse(format!("unexpected {{{{{kw}}}}}")));
        }
        Ok(Template { nodes })
    }

    /// Renders the template against `data`.
    pub fn render(&self, data: &Value, mode: Mode) -> Result<String> {
        let mut out = String::new();
        exec_nodes(&self.nodes, data, mode, &mut out)?;
        Ok(out)
    }
}

enum Token {
    Text(String),
    Action(String),
}

fn lex(src: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut rest = src;
    let mut trim_next_text = false;
    while let Some(start) = rest.find("{{") {
        let mut text = rest[..start].to_string();
        if trim_next_text {
            text = text.trim_start().to_string();
        }
        let after = &rest[start + 2..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            text = text.trim_end().to_string();
        }
        tokens.push(Token::Text(text));
        let inner_start = if trim_left { 1 } else { 0 };
        let Some(end) = find_action_end(&after[inner_start..]) else {
            return Err(TemplateError::Parse("unclosed action".into()));
        };
        let mut inner = &after[inner_start..inner_start + end];
        trim_next_text = false;
        if inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-") {
            inner = &inner[..inner.len() - 1];
            trim_next_text = true;
        }
        tokens.push(Token::Action(inner.trim().to_string()));
        rest = &after[inner_start + end + 2..];
    }
    let mut text = rest.to_string();
    if trim_next_text {
        text = text.trim_start().to_string();
    }
    tokens.push(Token::Text(text));
    Ok(tokens)
}

/// Finds the closing `}}`, skipping string literals.
fn find_action_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
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

/// Parses nodes until `{{end}}`/`{{else}}` (returned) or the end of input.
fn parse_nodes(tokens: &[Token], pos: &mut usize) -> Result<(Vec<Node>, Option<String>)> {
    let mut nodes = Vec::new();
    while *pos < tokens.len() {
        let t = &tokens[*pos];
        *pos += 1;
        match t {
            Token::Text(s) => {
                if !s.is_empty() {
                    nodes.push(Node::Text(s.clone()));
                }
            }
            Token::Action(a) => {
                let a = a.as_str();
                if a == "end" || a == "else" {
                    return Ok((nodes, Some(a.to_string())));
                }
                if a.starts_with("/*") {
                    continue;
                }
                let (kw, rest) = match a.split_once(char::is_whitespace) {
                    Some((k, r)) => (k, r.trim()),
                    None => (a, ""),
                };
                match kw {
                    "if" | "range" => {
                        let pipe = parse_pipeline(rest)?;
                        let (body, end) = parse_nodes(tokens, pos)?;
                        let else_body = match end.as_deref() {
                            Some("else") => {
                                let (e, end2) = parse_nodes(tokens, pos)?;
                                if end2.as_deref() != Some("end") {
                                    return Err(TemplateError::Parse(format!(
                                        "missing {{{{end}}}} for {kw}"
                                    )));
                                }
                                e
                            }
                            Some("end") => Vec::new(),
                            _ => {
                                return Err(TemplateError::Parse(format!(
                                    "missing {{{{end}}}} for {kw}"
                                )));
                            }
                        };
                        nodes.push(if kw == "if" {
                            Node::If(pipe, body, else_body)
                        } else {
                            Node::Range(pipe, body, else_body)
                        });
                    }
                    _ => nodes.push(Node::Action(parse_pipeline(a)?)),
                }
            }
        }
    }
    Ok((nodes, None))
}

fn parse_pipeline(s: &str) -> Result<Pipeline> {
    let mut cmds = Vec::new();
    let mut cur = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '|' {
            if cur.is_empty() {
                return Err(TemplateError::Parse(format!("missing command in {s:?}")));
            }
            cmds.push(std::mem::take(&mut cur));
            i += 1;
        } else if c == '"' {
            let mut lit = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                    lit.push(match chars[i] {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                } else {
                    lit.push(chars[i]);
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err(TemplateError::Parse(format!(
                    "unterminated string in {s:?}"
                )));
            }
            i += 1;
            cur.push(Operand::Str(lit));
        } else if c == '`' {
            let start = i + 1;
            i = start;
            while i < chars.len() && chars[i] != '`' {
                i += 1;
            }
            cur.push(Operand::Str(
                chars[start..i.min(chars.len())].iter().collect(),
            ));
            i += 1;
        } else if c == '(' {
            let mut depth = 1;
            let start = i + 1;
            i += 1;
            while i < chars.len() && depth > 0 {
                match chars[i] {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                i += 1;
            }
            if depth != 0 {
                return Err(TemplateError::Parse(format!("unclosed '(' in {s:?}")));
            }
            let inner: String = chars[start..i - 1].iter().collect();
            cur.push(Operand::Sub(parse_pipeline(&inner)?));
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '|' && chars[i] != ')'
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            cur.push(parse_word(&word)?);
        }
    }
    if !cur.is_empty() {
        cmds.push(cur);
    }
    if cmds.is_empty() {
        return Err(TemplateError::Parse("empty action".into()));
    }
    Ok(cmds)
}

fn parse_word(w: &str) -> Result<Operand> {
    if w == "." {
        return Ok(Operand::Field(Vec::new()));
    }
    if let Some(path) = w.strip_prefix('.') {
        return Ok(Operand::Field(
            path.split('.').map(str::to_string).collect(),
        ));
    }
    if let Ok(n) = w.parse::<f64>() {
        return Ok(Operand::Num(n));
    }
    if w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Ok(Operand::Func(w.to_string()));
    }
    Err(TemplateError::Parse(format!("unexpected {w:?}")))
}

fn exec_nodes(nodes: &[Node], dot: &Value, mode: Mode, out: &mut String) -> Result<()> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => out.push_str(&print_value(&eval_pipeline(p, dot, mode)?)),
            Node::If(p, body, els) => {
                if truthy(&eval_pipeline(p, dot, mode)?) {
                    exec_nodes(body, dot, mode, out)?;
                } else {
                    exec_nodes(els, dot, mode, out)?;
                }
            }
            Node::Range(p, body, els) => {
                let v = eval_pipeline(p, dot, mode)?;
                let items: Vec<Value> = match v {
                    v if is_nil_map(&v) => Vec::new(),
                    Value::Array(a) => a,
                    Value::Object(m) => m.into_iter().map(|(_, v)| v).collect(),
                    Value::Null => Vec::new(),
                    other => {
                        return Err(TemplateError::Exec(format!(
                            "range can't iterate over {}",
                            print_value(&other)
                        )));
                    }
                };
                if items.is_empty() {
                    exec_nodes(els, dot, mode, out)?;
                }
                for item in &items {
                    exec_nodes(body, item, mode, out)?;
                }
            }
        }
    }
    Ok(())
}

fn eval_pipeline(p: &Pipeline, dot: &Value, mode: Mode) -> Result<Value> {
    let mut prev: Option<Value> = None;
    for cmd in p {
        prev = Some(eval_command(cmd, dot, mode, prev.take())?);
    }
    Ok(prev.unwrap_or(Value::Null))
}

fn eval_operand(o: &Operand, dot: &Value, mode: Mode) -> Result<Value> {
    match o {
        Operand::Field(path) => field(dot, path),
        Operand::Str(s) => Ok(Value::String(s.clone())),
        Operand::Num(n) => Ok(serde_json::Number::from_f64(*n)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        Operand::Sub(p) => eval_pipeline(p, dot, mode),
        Operand::Func(f) => call(f, Vec::new(), mode),
    }
}

fn eval_command(cmd: &Command, dot: &Value, mode: Mode, piped: Option<Value>) -> Result<Value> {
    match &cmd[0] {
        Operand::Func(name) => {
            let mut args = Vec::new();
            for o in &cmd[1..] {
                args.push(eval_operand(o, dot, mode)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            call(name, args, mode)
        }
        first => {
            if cmd.len() > 1 || piped.is_some() {
                return Err(TemplateError::Exec(format!(
                    "can't give arguments to non-function {first:?}"
                )));
            }
            eval_operand(first, dot, mode)
        }
    }
}

fn field(dot: &Value, path: &[String]) -> Result<Value> {
    let mut v = dot;
    for (i, name) in path.iter().enumerate() {
        match v {
            Value::Object(_) if is_nil_map(v) => return Ok(Value::Null),
            Value::Object(m) => match m.get(name) {
                Some(next) => v = next,
                None if i == 0 => {
                    return Err(TemplateError::Exec(format!("can't evaluate field {name}")));
                }
                // Go prints a missing map key as "<no value>".
                None => return Ok(Value::Null),
            },
            Value::Null => return Ok(Value::Null),
            other => {
                return Err(TemplateError::Exec(format!(
                    "can't evaluate field {name} in {}",
                    print_value(other)
                )));
            }
        }
    }
    Ok(v.clone())
}

fn call(name: &str, args: Vec<Value>, mode: Mode) -> Result<Value> {
    let arity = |n: usize| -> Result<()> {
        if args.len() != n {
            return Err(TemplateError::Exec(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            )));
        }
        Ok(())
    };
    let s = |v: &Value| print_value(v);
    // Docker's header functions print nothing for formatting helpers.
    if mode == Mode::Header
        && matches!(
            name,
            "json" | "join" | "split" | "upper" | "lower" | "title" | "truncate" | "pad"
        )
    {
        return Ok(Value::String(String::new()));
    }
    Ok(match name {
        "json" => {
            arity(1)?;
            Value::String(go_json(&nil_maps_to_null(&args[0])))
        }
        "upper" => {
            arity(1)?;
            Value::String(s(&args[0]).to_uppercase())
        }
        "lower" => {
            arity(1)?;
            Value::String(s(&args[0]).to_lowercase())
        }
        "title" => {
            arity(1)?;
            let t = s(&args[0]);
            let mut out = String::with_capacity(t.len());
            let mut start = true;
            for c in t.chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = !c.is_alphanumeric();
            }
            Value::String(out)
        }
        "len" => {
            arity(1)?;
            let n = match &args[0] {
                v if is_nil_map(v) => 0,
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::String(x) => x.len(),
                Value::Null => 0,
                other => return Err(TemplateError::Exec(format!("len of {}", s(other)))),
            };
            Value::from(n)
        }
        "join" => {
            arity(2)?;
            let items: Vec<String> = match &args[0] {
                Value::Array(a) => a.iter().map(s).collect(),
                Value::Null => Vec::new(),
                other => vec![s(other)],
            };
            Value::String(items.join(&s(&args[1])))
        }
        "split" => {
            arity(2)?;
            Value::Array(
                s(&args[0])
                    .split(&s(&args[1]))
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            )
        }
        "index" => {
            if args.is_empty() {
                return Err(TemplateError::Exec("index needs arguments".into()));
            }
            let mut v = args[0].clone();
            for k in &args[1..] {
                v = match (&v, k) {
                    (Value::Object(m), key) => m.get(&s(key)).cloned().unwrap_or(Value::Null),
                    (Value::Array(a), Value::Number(n)) => {
                        let i = n.as_f64().unwrap_or(-1.0);
                        if i < 0.0 || i as usize >= a.len() {
                            return Err(TemplateError::Exec(format!("index out of range: {i}")));
                        }
                        a[i as usize].clone()
                    }
                    (Value::Null, _) => Value::Null,
                    (other, _) => {
                        return Err(TemplateError::Exec(format!(
                            "can't index item of type {}",
                            s(other)
                        )));
                    }
                };
            }
            v
        }
        "println" => Value::String(args.iter().map(s).collect::<Vec<_>>().join(" ") + "\n"),
        "print" => Value::String(args.iter().map(s).collect::<Vec<_>>().join("")),
        "not" => {
            arity(1)?;
            Value::Bool(!truthy(&args[0]))
        }
        "eq" => {
            if args.len() < 2 {
                return Err(TemplateError::Exec("eq needs two arguments".into()));
            }
            Value::Bool(args[1..].iter().any(|a| s(a) == s(&args[0])))
        }
        "ne" => {
            arity(2)?;
            Value::Bool(s(&args[0]) != s(&args[1]))
        }
        "truncate" => {
            arity(2)?;
            let n = args[1].as_f64().unwrap_or(0.0) as usize;
            Value::String(s(&args[0]).chars().take(n).collect())
        }
        "pad" => {
            arity(3)?;
            let l = args[1].as_f64().unwrap_or(0.0) as usize;
            let r = args[2].as_f64().unwrap_or(0.0) as usize;
            Value::String(format!("{}{}{}", " ".repeat(l), s(&args[0]), " ".repeat(r)))
        }
        other => {
            return Err(TemplateError::Exec(format!(
                "function {other:?} not defined"
            )));
        }
    })
}

/// The key that marks a nil Go map (see [`nil_map`]); no JSON document has it.
const NIL_MAP: &str = "\u{0}nil-map";

/// A Go map field that is nil: a template prints it as `map[]` and `json` as `null`; it is
/// empty to `len`, `range`, `if` and field access.
pub fn nil_map() -> Value {
    let mut m = serde_json::Map::new();
    m.insert(NIL_MAP.into(), Value::Bool(true));
    Value::Object(m)
}

fn is_nil_map(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.len() == 1 && m.contains_key(NIL_MAP))
}

/// The fields of docker's structs that `inspect` shows, in declaration order: Go's JSON
/// writes a struct's fields in that order (and a map's keys sorted).
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
];

/// Compact JSON as Go's encoder writes the value: an object whose keys all belong to one of
/// docker's structs in that struct's field order, any other object (a Go map) sorted.
fn go_json(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("[{}]", a.iter().map(go_json).collect::<Vec<_>>().join(",")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            if let Some(fields) = DOCKER_STRUCTS
                .iter()
                .find(|f| keys.iter().all(|k| f.contains(&k.as_str())))
            {
                keys.sort_by_key(|k| fields.iter().position(|f| f == k));
            }
            let body: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        Value::String(k.to_string()),
                        go_json(&m[k.as_str()])
                    )
                })
                .collect();
            format!("{{{}}}", body.join(","))
        }
        other => other.to_string(),
    }
}

/// The value as JSON would encode the Go value: nil maps are `null`.
fn nil_maps_to_null(v: &Value) -> Value {
    match v {
        v if is_nil_map(v) => Value::Null,
        Value::Array(a) => Value::Array(a.iter().map(nil_maps_to_null).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), nil_maps_to_null(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn truthy(v: &Value) -> bool {
    if is_nil_map(v) {
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

/// Prints a value as Go's `fmt.Print` prints the matching Go value.
pub fn print_value(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(print_inner).collect::<Vec<_>>().join(" ")
        ),
        v if is_nil_map(v) => "map[]".into(),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", print_inner(&m[*k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

fn print_inner(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        other => print_value(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v, Mode::Data).unwrap()
    }

    #[test]
    fn json_writes_docker_structs_in_field_order_and_maps_sorted() {
        let v = json!({"Config": {"Labels": {"b": "2", "Hostname": "h"}, "Cmd": ["x"],
                       "ArgsEscaped": true, "Hostname": ""}});
        assert_eq!(
            r("{{json .Config}}", &v),
            r#"{"Hostname":"","Cmd":["x"],"ArgsEscaped":true,"Labels":{"Hostname":"h","b":"2"}}"#
        );
        assert_eq!(r("{{json .}}", &json!({})), "{}");
    }

    #[test]
    fn fields_functions_and_pipelines() {
        let v = json!({"Id": "sha256:ab", "Config": {"Cmd": ["sh", "-c"], "Labels": {"b": "2", "a": "1"}, "Env": null},
                       "RepoTags": ["x:1", "y:2"], "Size": 12});
        assert_eq!(r("{{.Id}}", &v), "sha256:ab");
        assert_eq!(r("{{.Config.Cmd}}", &v), "[sh -c]");
        assert_eq!(r("{{.Config.Labels}}", &v), "map[a:1 b:2]");
        assert_eq!(r("{{json .Config.Cmd}}", &v), r#"["sh","-c"]"#);
        assert_eq!(r("{{.Config.Cmd | json}}", &v), r#"["sh","-c"]"#);
        assert_eq!(r(r#"{{index .Config.Labels "a"}}"#, &v), "1");
        assert_eq!(r("{{index .RepoTags 1}}", &v), "y:2");
        assert_eq!(r(r#"{{join .RepoTags ", "}}"#, &v), "x:1, y:2");
        assert_eq!(r("{{len .RepoTags}} {{.Size}}", &v), "2 12");
        assert_eq!(r("{{upper .Id}}", &v), "SHA256:AB");
        assert_eq!(r("{{range .RepoTags}}<{{.}}>{{end}}", &v), "<x:1><y:2>");
        assert_eq!(r("{{if .Config.Env}}yes{{else}}no{{end}}", &v), "no");
        assert_eq!(r("a {{- .Size -}} b", &v), "a12b");
        assert_eq!(r("{{.Config.Missing}}", &v), "<no value>");
    }

    #[test]
    fn nil_maps_print_as_go_prints_them() {
        let v = json!({"Config": {"Labels": nil_map(), "Env": ["A=1"]}});
        assert_eq!(r("{{.Config.Labels}}", &v), "map[]");
        assert_eq!(r("{{json .Config.Labels}}", &v), "null");
        assert_eq!(
            r("{{json .Config}}", &v),
            r#"{"Env":["A=1"],"Labels":null}"#
        );
        assert_eq!(r("{{len .Config.Labels}}", &v), "0");
        assert_eq!(r("{{if .Config.Labels}}y{{else}}n{{end}}", &v), "n");
        assert_eq!(r("{{range .Config.Labels}}x{{end}}", &v), "");
    }

    #[test]
    fn errors_are_reported_not_panicked() {
        assert!(Template::parse("{{.Id").is_err());
        assert!(Template::parse("{{if .X}}a").is_err());
        assert!(Template::parse("{{end}}").is_err());
        let t = Template::parse("{{.Nope}}").unwrap();
        assert!(t.render(&json!({"Id": 1}), Mode::Data).is_err());
        let t = Template::parse("{{nosuchfunc .Id}}").unwrap();
        assert!(t.render(&json!({"Id": 1}), Mode::Data).is_err());
    }

    #[test]
    fn header_mode_blanks_functions() {
        let t = Template::parse("{{.ID}}\t{{json .}}").unwrap();
        assert_eq!(
            t.render(&json!({"ID": "IMAGE ID"}), Mode::Header).unwrap(),
            "IMAGE ID\t"
        );
    }
}
