//! Expansion and ARG/ENV scoping, as the build engine drives it.

use std::collections::BTreeMap;

use kiln_dockerfile::*;

fn opts(args: &[(&str, &str)]) -> EvalOptions {
    EvalOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..EvalOptions::default()
    }
}

type Vars = Vec<(String, String)>;

/// Expand every instruction of stage `idx`, returning the expanded instructions and the state.
fn run_stage(src: &str, args: &[(&str, &str)], idx: usize) -> (Vec<Expansion>, Vars, Vars) {
    let df = parse(src).unwrap();
    let ev = Evaluator::new(&df, opts(args)).unwrap();
    let mut st = ev.stage(&[("PATH".into(), "/usr/bin".into())]);
    let out = df.stages[idx]
        .instructions
        .iter()
        .map(|i| st.expand_instruction(i).unwrap())
        .collect();
    (out, st.env().to_vec(), st.args())
}

fn env_of(e: &Expansion) -> Vec<(String, String)> {
    match &e.instruction.command {
        Command::Env(kv) | Command::Label(kv) => kv
            .pairs
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
        c => panic!("{c:?}"),
    }
}

#[test]
fn global_args_reach_from_only_unless_redeclared() {
    let src = "ARG REG=localhost TAG=1\nFROM ${REG}/busybox:$TAG AS a\nENV X=\"[$TAG]\"\nARG TAG\nENV Y=\"[$TAG]\"\n";
    let df = parse(src).unwrap();
    let ev = Evaluator::new(&df, opts(&[("TAG", "2")])).unwrap();
    let from = ev.resolve_from(&df.stages[0]).unwrap();
    assert_eq!(from.image, "localhost/busybox:2");
    assert_eq!(from.used_args.iter().collect::<Vec<_>>(), ["REG", "TAG"]);
    let (out, env, _) = run_stage(src, &[("TAG", "2")], 0);
    assert_eq!(env_of(&out[0]), [("X".to_string(), "[]".to_string())]);
    assert_eq!(env_of(&out[2]), [("Y".to_string(), "[2]".to_string())]);
    assert!(out[2].used_args.contains("TAG"));
    assert_eq!(env.len(), 3);
}

#[test]
fn build_args_need_declaration_and_override_defaults() {
    let src = "FROM a\nARG V=default\nARG W=$V-w\nLABEL v=$V w=$W u=${UNDECLARED:-none}\n";
    let (out, _, args) = run_stage(src, &[("V", "cli"), ("UNDECLARED", "x")], 0);
    assert_eq!(
        env_of(&out[2]),
        [
            ("v".into(), "cli".into()),
            ("w".into(), "cli-w".into()),
            ("u".into(), "none".into())
        ]
    );
    assert_eq!(
        args,
        [
            ("V".to_string(), "cli".to_string()),
            ("W".to_string(), "cli-w".to_string())
        ]
    );
    let (out, _, _) = run_stage(src, &[], 0);
    assert_eq!(env_of(&out[2])[0].1, "default");
}

#[test]
fn env_in_one_instruction_sees_old_values() {
    let src = "FROM a\nENV A=1\nENV A=2 D=$A\nENV PATH=/opt/bin:$PATH\n";
    let (out, env, _) = run_stage(src, &[], 0);
    assert_eq!(
        env_of(&out[1]),
        [
            ("A".to_string(), "2".to_string()),
            ("D".to_string(), "1".to_string())
        ]
    );
    assert!(env.contains(&("PATH".to_string(), "/opt/bin:/usr/bin".to_string())));
    assert!(env.contains(&("D".to_string(), "1".to_string())));
}

#[test]
fn env_overrides_an_earlier_arg_and_a_later_arg_overrides_env() {
    let src = "FROM a\nARG X=arg\nENV X=env\nLABEL x=$X\n";
    let (out, _, args) = run_stage(src, &[], 0);
    assert_eq!(env_of(&out[2]), [("x".to_string(), "env".to_string())]);
    assert!(
        args.is_empty(),
        "ARG shadowed by ENV is not passed separately: {args:?}"
    );
    // Checked against dockerd 20.10's BuildKit: an ARG with a value declared after the ENV
    // wins for expansion and RUN; the config keeps the ENV value.
    let src = "FROM a\nARG X=arg\nENV X=env\nARG X=again\nLABEL x=$X\n";
    let (out, env, args) = run_stage(src, &[], 0);
    assert_eq!(env_of(&out[3]), [("x".to_string(), "again".to_string())]);
    assert_eq!(args, [("X".to_string(), "again".to_string())]);
    assert!(env.contains(&("X".to_string(), "env".to_string())));
    // A bare ARG after the ENV (no value anywhere) changes nothing.
    let src = "FROM a\nENV X=env\nARG X\nLABEL x=$X\n";
    let (out, _, args) = run_stage(src, &[], 0);
    assert_eq!(env_of(&out[2]), [("x".to_string(), "env".to_string())]);
    assert!(args.is_empty(), "{args:?}");
}

#[test]
fn platform_args() {
    let src = "FROM --platform=$BUILDPLATFORM a AS build\nLABEL before=\"$TARGETARCH\"\nARG TARGETOS TARGETARCH\nLABEL os=$TARGETOS arch=$TARGETARCH\n";
    let df = parse(src).unwrap();
    let mut o = opts(&[]);
    o.target_platform = Platform::parse("linux/arm64/v8").unwrap();
    let ev = Evaluator::new(&df, o).unwrap();
    assert_eq!(
        ev.resolve_from(&df.stages[0]).unwrap().platform.as_deref(),
        Some("linux/amd64")
    );
    let mut st = ev.stage(&[]);
    let out: Vec<_> = df.stages[0]
        .instructions
        .iter()
        .map(|i| st.expand_instruction(i).unwrap())
        .collect();
    assert_eq!(env_of(&out[0]), [("before".to_string(), String::new())]);
    assert_eq!(
        env_of(&out[2]),
        [
            ("os".to_string(), "linux".to_string()),
            ("arch".to_string(), "arm64".to_string())
        ]
    );
    assert_eq!(ev.global_args()["TARGETPLATFORM"], "linux/arm64/v8");
    assert!(Platform::parse("linux").is_err());
}

#[test]
fn which_instructions_expand() {
    let src = "FROM a\nARG D=/data U=app P=8080 M=0755\nWORKDIR $D\nUSER $U\nVOLUME $D/v\nSTOPSIGNAL SIG${U:+TERM}\nEXPOSE $P ${P:+9090/udp}\nCOPY --chown=$U --chmod=$M --from=build $D/x $D/\nADD --chown=$U src/$U.txt $D/\nRUN echo $D\nCMD echo $D\n";
    let (out, _, _) = run_stage(src, &[], 0);
    let show: Vec<String> = out
        .iter()
        .map(|e| serde_json::to_string(&e.instruction.command).unwrap())
        .collect();
    assert!(show[1].contains("\"/data\""), "{}", show[1]);
    assert!(show[2].contains("\"app\""));
    assert!(show[3].contains("/data/v"));
    assert!(show[4].contains("SIGTERM"));
    assert!(
        matches!(&out[5].instruction.command, Command::Expose(e) if e.ports == ["8080", "9090/udp"])
    );
    let Command::Copy(c) = &out[6].instruction.command else {
        panic!()
    };
    assert_eq!(
        (c.chown.as_deref(), c.chmod.as_deref(), c.from.as_deref()),
        (Some("app"), Some("0755"), Some("build"))
    );
    assert_eq!(
        (c.sources[0].as_str(), c.dest.as_str()),
        ("/data/x", "/data/")
    );
    assert_eq!(out[6].used_args.iter().collect::<Vec<_>>(), ["D", "M", "U"]);
    assert!(show[7].contains("src/app.txt"));
    // RUN and CMD are left to the shell; RUN still depends on every ARG in scope.
    assert!(
        matches!(&out[8].instruction.command, Command::Run(r) if r.cmd == CommandLine::Shell("echo $D".into()))
    );
    assert_eq!(out[8].used_args.len(), 4);
    assert!(show[9].contains("echo $D"));
}

#[test]
fn run_mounts_expand_except_from() {
    let src = "FROM a\nARG CACHE=/root/.cache ID=pip\nRUN --mount=type=cache,target=$CACHE,id=$ID --mount=type=bind,from=build,target=/src make\n";
    let (out, _, _) = run_stage(src, &[], 0);
    let Command::Run(r) = &out[1].instruction.command else {
        panic!()
    };
    let m = r.mounts[0].resolved.as_ref().unwrap();
    assert_eq!(
        (m.target.as_deref(), m.id.as_deref()),
        (Some("/root/.cache"), Some("pip"))
    );
    assert_eq!(
        r.mounts[1].resolved.as_ref().unwrap().from.as_deref(),
        Some("build")
    );
}

#[test]
fn heredoc_bodies() {
    let src = "FROM a\nARG NAME=world\nCOPY <<EOF <<'RAW' /dst/\nhello \"$NAME\" 'x'\nEOF\nkeep $NAME\nRAW\n";
    let (out, _, _) = run_stage(src, &[], 0);
    let Command::Copy(c) = &out[1].instruction.command else {
        panic!()
    };
    assert_eq!(c.inline[0].content, "hello \"world\" 'x'\n");
    assert_eq!(c.inline[1].content, "keep $NAME\n");
}

#[test]
fn expansion_errors_have_locations() {
    let df = parse("FROM a\nARG V\nWORKDIR ${V:?V must be set}\n").unwrap();
    let ev = Evaluator::new(&df, opts(&[])).unwrap();
    let mut st = ev.stage(&[]);
    st.expand_instruction(&df.stages[0].instructions[0])
        .unwrap();
    let e = st
        .expand_instruction(&df.stages[0].instructions[1])
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Expansion);
    assert!(e.message.contains("V must be set"), "{}", e.message);
    assert_eq!(e.span.line, 3);
    let df = parse("FROM a\nEXPOSE 80/tcpx\n").unwrap();
    let ev = Evaluator::new(&df, opts(&[])).unwrap();
    assert!(
        ev.stage(&[])
            .expand_instruction(&df.stages[0].instructions[0])
            .unwrap_err()
            .message
            .contains("invalid proto")
    );
    let df = parse("ARG B\nFROM $B\n").unwrap();
    let ev = Evaluator::new(&df, opts(&[])).unwrap();
    assert!(
        ev.resolve_from(&df.stages[0])
            .unwrap_err()
            .message
            .contains("should not be blank")
    );
}

#[test]
fn run_env_has_proxies_without_declaration() {
    let df = parse("FROM a\nARG A=1\n").unwrap();
    let ev = Evaluator::new(
        &df,
        opts(&[("HTTP_PROXY", "http://p:3128"), ("OTHER", "x")]),
    )
    .unwrap();
    let mut st = ev.stage(&[("PATH".into(), "/bin".into())]);
    st.expand_instruction(&df.stages[0].instructions[0])
        .unwrap();
    let env = st.run_env();
    assert_eq!(
        env,
        [
            ("PATH".to_string(), "/bin".to_string()),
            ("A".to_string(), "1".to_string()),
            ("HTTP_PROXY".to_string(), "http://p:3128".to_string())
        ]
    );
}

/// dockerd 20.10's BuildKit (and later ones): a global `ARG NAME` without a value hides the
/// value NAME had, the automatic platform ARGs' included; a later value or `--build-arg` wins.
/// The conformance case `platform-arg-global` checks the same against BuildKit.
#[test]
fn a_bare_global_arg_hides_the_automatic_value() {
    let src = "ARG TARGETARCH\nARG BUILDOS=custom\nARG V=1\nARG V\nFROM --platform=$TARGETPLATFORM a\nARG TARGETARCH BUILDOS TARGETOS V\nLABEL t=\"[$TARGETARCH]\" b=\"[$BUILDOS]\" o=\"[$TARGETOS]\" v=\"[${V-unset}]\"\n";
    let df = parse(src).unwrap();
    let ev = Evaluator::new(&df, opts(&[])).unwrap();
    assert_eq!(
        ev.resolve_from(&df.stages[0]).unwrap().platform.as_deref(),
        Some("linux/amd64")
    );
    assert_eq!(ev.global_args()["TARGETARCH"], "");
    let (out, _, _) = run_stage(src, &[], 0);
    let labels = env_of(&out[1]);
    let get = |k: &str| labels.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(get("t"), "[]");
    assert_eq!(get("b"), "[custom]");
    assert_eq!(get("o"), "[linux]");
    assert_eq!(get("v"), "[unset]");
    // A --build-arg still gives the bare declaration its value.
    let (out, _, _) = run_stage(src, &[("TARGETARCH", "x")], 0);
    assert!(env_of(&out[1]).contains(&("t".to_string(), "[x]".to_string())));
}
