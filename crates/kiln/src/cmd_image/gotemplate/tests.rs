//! Expected strings are docker 20.10's output for the same template over the same data
//! (`docker inspect -f` / `docker ps --format`, run on this machine).

use super::*;
use serde_json::json;

fn r(t: &str, v: &Value) -> String {
    Template::parse(t).unwrap().render(v, Mode::Data).unwrap()
}

fn err(t: &str, v: &Value) -> String {
    match Template::parse(t) {
        Err(e) => e.to_string(),
        Ok(t) => t.render(v, Mode::Data).unwrap_err().to_string(),
    }
}

/// The container `docker run --name uxt --label a=1 --label b=two busybox sh -c 'sleep 300'`
/// as its inspect document has it (the parts the tests use).
fn ctr() -> Value {
    json!({
        "Name": "/uxt",
        "State": {"Status": "running", "Running": true, "Pid": 42, "ExitCode": 0},
        "Config": {"Cmd": ["sh", "-c", "sleep 300"], "Labels": {"a": "1", "b": "two"},
                   "Entrypoint": nil_slice(), "Volumes": nil_map(), "Healthcheck": null},
        "HostConfig": {"RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                       "LogConfig": {"Type": "json-file", "Config": {}}, "Memory": 0},
        "Mounts": []
    })
}

#[test]
fn control_structures_with_else() {
    let v = ctr();
    assert_eq!(
        r("{{with .Config.Labels.a}}got {{.}}{{else}}none{{end}}", &v),
        "got 1"
    );
    assert_eq!(
        r("{{with .Config.Labels.zz}}got {{.}}{{else}}none{{end}}", &v),
        "none"
    );
    assert_eq!(
        r("{{range .Mounts}}m{{else}}nomounts{{end}}", &v),
        "nomounts"
    );
    assert_eq!(
        r(
            r#"{{if eq .Name "a"}}A{{else if eq .Name "/uxt"}}U{{else}}Z{{end}}"#,
            &v
        ),
        "U"
    );
    assert_eq!(r("{{with $x := .Name}}{{$x}}{{end}}", &v), "/uxt");
    assert_eq!(
        r(
            "{{if and .State.Running (eq .State.ExitCode 0)}}ok{{end}}",
            &v
        ),
        "ok"
    );
    assert_eq!(
        r(
            "{{with .Nope2}}{{else with .Name}}{{.}}{{end}}",
            &json!({"Name": "n", "nope2": 0})
        )
        .len(),
        1
    );
}

#[test]
fn variables_and_range_declarations() {
    let v = ctr();
    assert_eq!(
        r(
            "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
            &v
        ),
        "a=1;b=two;"
    );
    assert_eq!(
        r("{{range $i, $e := .Config.Cmd}}{{$i}}:{{$e}} {{end}}", &v),
        "0:sh 1:-c 2:sleep 300 "
    );
    assert_eq!(
        r(r#"{{$x := .Name}}{{$x}} {{printf "%s-%d" .Name 5}}"#, &v),
        "/uxt /uxt-5"
    );
    assert_eq!(r(r#"{{$x := 1}}{{$x = 2}}{{$x}}"#, &v), "2");
    assert_eq!(
        r("{{range .Config.Cmd}}{{$.Name}}{{end}}", &v),
        "/uxt/uxt/uxt"
    );
    assert_eq!(
        err("{{$x}}", &v),
        r#"template parsing error: template: :1: undefined variable "$x""#
    );
    // A variable declared inside a block ends with it.
    assert!(Template::parse("{{if 1}}{{$y := 1}}{{end}}{{$y}}").is_err());
}

#[test]
fn builtins_as_docker_prints_them() {
    let v = ctr();
    assert_eq!(
        r(
            "{{len .Config.Cmd}} {{index .Config.Cmd 2}} {{slice .Config.Cmd 1 2}} {{slice .Name 1}}",
            &v
        ),
        "3 sleep 300 [-c] uxt"
    );
    assert_eq!(
        r(
            r#"{{eq .State.Status "running"}} {{ne 1 2}} {{lt 1 2}} {{ge 3 3}} {{and 1 0}} {{or 0 "x"}} {{not ""}}"#,
            &v
        ),
        "true true true true 0 x true"
    );
    assert_eq!(
        r(
            r#"{{printf "%v %q %5s|%-5s|%x %t" .Config.Cmd .Name "a" "b" 255 true}}"#,
            &v
        ),
        r#"[sh -c sleep 300] "/uxt"     a|b    |ff true"#
    );
    assert_eq!(r(r#"{{.State.Pid | printf "%T"}}"#, &v), "int");
    assert_eq!(
        r(r#"{{printf "%v" .Config.Labels}} {{println "x"}}"#, &v),
        "map[a:1 b:two] x\n"
    );
    assert_eq!(r(r#"{{print 1 2 "a" "b" 3}}"#, &v), "1 2ab3");
    assert_eq!(
        r(r#"{{printf "%d %s" "x"}}"#, &v),
        "%!d(string=x) %!s(MISSING)"
    );
    assert_eq!(
        r(r#"{{printf "%05.1f|%e|%g" 3.14159 1234.5 0.000012}}"#, &v),
        "003.1|1.234500e+03|1.2e-05"
    );
    assert_eq!(r(r#"{{printf "%v" 1000000.0}}"#, &v), "1e+06");
    assert_eq!(
        r(r#"{{len .Name}} {{index .Config.Labels "a"}}"#, &v),
        "4 1"
    );
    assert_eq!(r(r#"{{eq .Config.Labels.zz ""}}"#, &v), "false");
    assert_eq!(r(r#"{{eq 2 1 2}}"#, &v), "true");
}

#[test]
fn dockers_functions() {
    let v = ctr();
    assert_eq!(
        r(
            r#"{{json .Config.Labels}} {{join .Config.Cmd "+"}} {{split .Name "x"}} {{title "hello world"}} {{upper "a"}} {{pad "x" 1 2}}| {{truncate "abcdef" 3}}"#,
            &v
        ),
        r#"{"a":"1","b":"two"} sh+-c+sleep 300 [/u t] Hello World A  x  | abc"#
    );
    assert_eq!(r(r#"{{json "<&>"}}"#, &v), r#""\u003c\u0026\u003e""#);
    assert_eq!(r(r#"{{lower "AbC"}}"#, &v), "abc");
}

#[test]
fn missing_keys_print_no_value_nil_types_print_as_go() {
    let v = ctr();
    // A missing key of a Go map prints `<no value>`; `index` gives the element's zero value.
    assert_eq!(r("{{.Config.Labels.zz}}", &v), "<no value>");
    assert_eq!(
        r("{{.Labels.zz}} {{.Labels.Zz}}", &json!({"Labels": {}})),
        "<no value> <no value>"
    );
    assert_eq!(r(r#"{{index .Config.Labels "zz"}}"#, &v), "");
    assert_eq!(r(r#"{{index .Config.Volumes "zz"}}"#, &v), "");
    // Nil pointers, slices and maps.
    assert_eq!(r("{{.Config.Healthcheck}}", &v), "<nil>");
    assert_eq!(
        r("{{.Config.Entrypoint}} {{json .Config.Entrypoint}}", &v),
        "[] null"
    );
    assert_eq!(
        r("{{.Config.Volumes}} {{json .Config.Volumes}}", &v),
        "map[] null"
    );
    // Structs print as `{field field}`.
    assert_eq!(r("{{.HostConfig.RestartPolicy}}", &v), "{no 0}");
    assert_eq!(r("{{.HostConfig.LogConfig}}", &v), "{json-file map[]}");
    assert_eq!(r("{{.HostConfig.Memory}}", &v), "0");
}

#[test]
fn errors_read_as_gos() {
    let v = ctr();
    assert_eq!(
        err("{{.Nope}}", &v),
        r#"template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope""#
    );
    assert_eq!(
        err("{{.Config.Nope}}", &v),
        r#"template: :1:9: executing "" at <.Config.Nope>: map has no entry for key "Nope""#
    );
    assert_eq!(
        err("{{.State.Health.Status}}", &v),
        r#"template: :1:8: executing "" at <.State.Health.Status>: map has no entry for key "Health""#
    );
    assert_eq!(
        err("{{index .Config.Cmd 9}}", &v),
        r#"template: :1:2: executing "" at <index .Config.Cmd 9>: error calling index: index out of range: 9"#
    );
    assert_eq!(
        err(r#"{{lt 1 "a"}}"#, &v),
        r#"template: :1:2: executing "" at <lt 1 "a">: error calling lt: incompatible types for comparison"#
    );
    assert_eq!(
        err(r#"{{print 1}}{{len 3}}"#, &v),
        r#"template: :1:13: executing "" at <len 3>: error calling len: len of type int"#
    );
    assert_eq!(
        err("{{.Config.Labels.a.b}}", &v),
        r#"template: :1:9: executing "" at <.Config.Labels.a.b>: can't evaluate field b in type string"#
    );
    assert_eq!(
        err("{{nosuch .Name}}", &v),
        r#"template parsing error: template: :1: function "nosuch" not defined"#
    );
    assert_eq!(
        err("{{.Name", &v),
        "template parsing error: template: :1: unclosed action"
    );
    assert!(Template::parse("{{if .X}}a").is_err());
    assert!(Template::parse("{{end}}").is_err());
    assert!(Template::parse("{{range}}{{end}}").is_err());
    let ps = Template::parse("{{.Nope}}")
        .unwrap()
        .with_missing(Missing::Struct("*formatter.ContainerContext".into()));
    assert_eq!(
        ps.render(&json!({"ID": "x"}), Mode::Data)
            .unwrap_err()
            .to_string(),
        r#"template: :1:2: executing "" at <.Nope>: can't evaluate field Nope in type *formatter.ContainerContext"#
    );
}

#[test]
fn trimming_and_comments() {
    let v = ctr();
    assert_eq!(r(r#"{{/* comment */}}a {{- " b " -}} c"#, &v), "a b c");
    assert_eq!(r("{{ .Name }} {{- /* c */ -}} x", &v), "/uxtx");
    assert_eq!(r("a\n  {{- .Name}}\n", &v), "a/uxt\n");
    assert_eq!(r("{{/* a\nmultiline }} comment */}}z", &v), "z");
    assert_eq!(r("{{-3}}", &v), "-3");
}

#[test]
fn methods_with_an_argument() {
    let mut labels = serde_json::Map::new();
    labels.insert("a".into(), json!("1"));
    let row = json!({"Names": "uxt", "Label": method(labels)});
    assert_eq!(
        r(r#"{{.Label "a"}}|{{.Label "zz"}}|{{.Names}}"#, &row),
        "1||uxt"
    );
    let header = json!({"Names": "NAMES", "Label": method(serde_json::Map::new())});
    let t = Template::parse(r#"{{.Label "com.foo-bar_x"}}	{{.Names}}	{{json .Names}}"#).unwrap();
    assert_eq!(
        t.render(&header, Mode::Header).unwrap(),
        "foo bar x\tNAMES\t"
    );
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
    assert_eq!(r("{{.Config.Cmd | json}}", &v), r#"["sh","-c"]"#);
    assert_eq!(r("{{index .RepoTags 1}}", &v), "y:2");
    assert_eq!(r(r#"{{join .RepoTags ", "}}"#, &v), "x:1, y:2");
    assert_eq!(r("{{len .RepoTags}} {{.Size}}", &v), "2 12");
    assert_eq!(r("{{upper .Id}}", &v), "SHA256:AB");
    assert_eq!(r("{{range .RepoTags}}<{{.}}>{{end}}", &v), "<x:1><y:2>");
    assert_eq!(r("{{if .Config.Env}}yes{{else}}no{{end}}", &v), "no");
    assert_eq!(r("a {{- .Size -}} b", &v), "a12b");
    assert_eq!(
        r("{{(index .Config.Labels \"a\") | printf \"%s!\"}}", &v),
        "1!"
    );
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
fn header_mode_blanks_functions() {
    let t = Template::parse("{{.ID}}\t{{json .}}").unwrap();
    assert_eq!(
        t.render(&json!({"ID": "IMAGE ID"}), Mode::Header).unwrap(),
        "IMAGE ID\t"
    );
}

#[test]
fn nil_pointers_docker_omits() {
    let mut v = json!({"State": {"OOMKilled": false, "Status": "running"}});
    go_typed_nils(&mut v);
    assert_eq!(r("{{.State.Health}}", &v), "<nil>");
    assert_eq!(
        r("{{json .State}}", &v),
        r#"{"OOMKilled":false,"Status":"running"}"#
    );
    assert_eq!(
        err("{{.State.Health.Status}}", &v),
        r#"template: :1:8: executing "" at <.State.Health.Status>: map has no entry for key "Health""#
    );
}
