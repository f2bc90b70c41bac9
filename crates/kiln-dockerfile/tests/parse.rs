//! Instruction-by-instruction parser tests: every instruction, flag, directive and form.

use kiln_dockerfile::*;

fn df(src: &str) -> Dockerfile {
    parse(src).unwrap_or_else(|e| panic!("{}", e.render(src)))
}

/// The first instruction after `FROM base`.
fn one(body: &str) -> Instruction {
    let d = df(&format!("FROM base\n{body}"));
    d.stages[0].instructions[0].clone()
}

fn err(src: &str) -> Error {
    parse(src).expect_err("expected an error")
}

#[test]
fn from_forms() {
    let d = df("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\nFROM build\nFROM scratch");
    let f = d.stages[0].from_cmd();
    assert_eq!(f.image, "golang:1.22");
    assert_eq!(f.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(d.stages[0].name.as_deref(), Some("build"));
    assert_eq!(d.stages[1].name, None);
    assert_eq!(d.stages[1].display_name(), "stage-1");
    assert_eq!(d.stages.len(), 3);
    assert_eq!(d.stages[2].span, Span::new(3, 1, 4));
}

#[test]
fn instruction_names_are_case_insensitive_and_keep_keyword() {
    let i = one("   rUn echo hi");
    assert_eq!(i.name(), "RUN");
    assert_eq!(i.keyword, "rUn");
    assert_eq!(i.span, Span::new(2, 4, 3));
}

#[test]
fn run_shell_and_exec() {
    match one("RUN echo \"$HOME\" && ls").command {
        Command::Run(r) => assert_eq!(r.cmd, CommandLine::Shell("echo \"$HOME\" && ls".into())),
        c => panic!("{c:?}"),
    }
    match one(r#"RUN ["sh", "-c", "echo \\ hi"]"#).command {
        Command::Run(r) => assert_eq!(
            r.cmd,
            CommandLine::Exec(vec!["sh".into(), "-c".into(), "echo \\ hi".into()])
        ),
        c => panic!("{c:?}"),
    }
}

#[test]
fn invalid_json_falls_back_to_shell() {
    match one("CMD ['single', 'quotes']").command {
        Command::Cmd(c) => assert_eq!(c.cmd, CommandLine::Shell("['single', 'quotes']".into())),
        c => panic!("{c:?}"),
    }
    match one("ENTRYPOINT [\"unterminated\"").command {
        Command::Entrypoint(c) => assert!(!c.cmd.is_exec()),
        c => panic!("{c:?}"),
    }
    assert_eq!(err("FROM a\nCMD [\"a\", [\"b\"]]").kind, ErrorKind::Json);
}

#[test]
fn run_flags() {
    let i = one(
        "RUN --mount=type=cache,target=/root/.cache,sharing=locked --mount=type=secret,id=tok,env=TOKEN \\\n    --network=none --security=insecure make",
    );
    let Command::Run(r) = &i.command else {
        panic!()
    };
    assert_eq!(r.mounts.len(), 2);
    let m0 = r.mounts[0].resolved.clone().unwrap();
    assert_eq!(m0.kind, MountType::Cache);
    assert_eq!(m0.sharing, Some(Sharing::Locked));
    assert_eq!(
        r.mounts[1].resolved.as_ref().unwrap().env.as_deref(),
        Some("TOKEN")
    );
    assert_eq!(r.network, Some(NetworkMode::None));
    assert_eq!(r.security, Some(SecurityMode::Insecure));
    assert_eq!(r.cmd, CommandLine::Shell("make".into()));
    // Flag spans point at the flag, also across a continuation.
    assert_eq!(i.flags[0].span, Span::new(2, 5, 53));
    assert_eq!(i.flags[2].span.line, 3);
    assert_eq!(i.flags[2].span.col, 5);
    assert_eq!(i.end_line, 3);
}

#[test]
fn run_flag_errors() {
    let e = err("FROM a\nRUN --networks=none x");
    assert_eq!(e.message, "unknown flag: --networks");
    assert_eq!(e.hint.as_deref(), Some("did you mean --network?"));
    assert_eq!(e.span, Span::new(2, 5, 15));
    assert!(
        err("FROM a\nRUN --network=bridge x")
            .message
            .contains("unsupported network mode")
    );
    assert!(
        err("FROM a\nRUN --security=x y")
            .message
            .contains("unsupported security mode")
    );
    assert!(
        err("FROM a\nRUN --network x")
            .message
            .contains("missing a value")
    );
    assert!(
        err("FROM a\nRUN --network=none --network=host x")
            .message
            .contains("duplicate flag")
    );
    assert!(
        err("FROM a\nRUN --mount=type=cache,target=/a --mount=type=cache,target=/a x")
            .message
            .contains("more than once")
    );
    assert!(
        err("FROM a\nRUN []")
            .message
            .contains("RUN requires at least one argument")
    );
    // As BuildKit: a bare RUN is `/bin/sh -c ""`.
    assert!(matches!(
        one("RUN").command,
        Command::Run(Run { cmd: CommandLine::Shell(ref s), .. }) if s.is_empty()
    ));
}

#[test]
fn cmd_entrypoint_shell() {
    assert!(matches!(
        one("CMD [\"node\", \"app.js\"]").command,
        Command::Cmd(CmdLine {
            cmd: CommandLine::Exec(_)
        })
    ));
    assert!(matches!(
        one("ENTRYPOINT /bin/app --flag").command,
        Command::Entrypoint(CmdLine {
            cmd: CommandLine::Shell(_)
        })
    ));
    match one("SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]").command {
        Command::Shell(s) => assert_eq!(s.shell.len(), 4),
        c => panic!("{c:?}"),
    }
    assert!(
        err("FROM a\nSHELL /bin/bash -c")
            .message
            .contains("JSON form")
    );
    assert!(err("FROM a\nSHELL []").message.contains("at least one"));
}

#[test]
fn env_and_label_forms() {
    match one("ENV A=1 B=\"two words\" C=three\\ words").command {
        Command::Env(kv) => {
            let got: Vec<_> = kv
                .pairs
                .iter()
                .map(|p| (p.key.as_str(), p.value.as_str(), p.legacy))
                .collect();
            assert_eq!(
                got,
                [
                    ("A", "1", false),
                    ("B", "\"two words\"", false),
                    ("C", "three\\ words", false)
                ]
            );
        }
        c => panic!("{c:?}"),
    }
    match one("ENV PATH /usr/local/bin:$PATH and more").command {
        Command::Env(kv) => {
            assert_eq!(kv.pairs[0].key, "PATH");
            assert_eq!(kv.pairs[0].value, "/usr/local/bin:$PATH and more");
            assert!(kv.pairs[0].legacy);
        }
        c => panic!("{c:?}"),
    }
    match one(
        "LABEL \"com.example.vendor\"=\"ACME\" version=1.0 \\\n  description=\"multi\nline\""
            .replace("\nline", " line")
            .as_str(),
    )
    .command
    {
        Command::Label(kv) => assert_eq!(kv.pairs.len(), 3),
        c => panic!("{c:?}"),
    }
    assert!(
        err("FROM a\nENV ONLYNAME")
            .message
            .contains("ENV must have two arguments")
    );
    assert!(err("FROM a\nENV A=1 B").message.contains("can't find ="));
    assert!(
        err("FROM a\nENV =x")
            .message
            .contains("names can not be blank")
    );
    assert!(
        err("FROM a\nLABEL")
            .message
            .contains("LABEL requires at least one argument")
    );
}

#[test]
fn simple_one_argument_instructions() {
    assert!(
        matches!(one("MAINTAINER Jane <j@x>").command, Command::Maintainer(m) if m.name == "Jane <j@x>")
    );
    assert!(matches!(one("WORKDIR /app dir").command, Command::Workdir(w) if w.path == "/app dir"));
    assert!(matches!(one("USER app:app").command, Command::User(u) if u.user == "app:app"));
    assert!(
        matches!(one("STOPSIGNAL SIGTERM").command, Command::Stopsignal(s) if s.signal == "SIGTERM")
    );
    for i in ["WORKDIR", "USER", "MAINTAINER", "STOPSIGNAL"] {
        assert_eq!(
            err(&format!("FROM a\n{i}")).message,
            format!("{i} requires exactly one argument")
        );
    }
}

#[test]
fn expose_and_volume() {
    assert!(
        matches!(one("EXPOSE 80/tcp 53/udp 8000-8010").command, Command::Expose(e) if e.ports.len() == 3)
    );
    assert!(
        matches!(one("VOLUME [\"/data\", \"/logs\"]").command, Command::Volume(v) if v.paths == ["/data", "/logs"])
    );
    assert!(matches!(one("VOLUME /a /b").command, Command::Volume(v) if v.paths == ["/a", "/b"]));
    assert!(
        err("FROM a\nVOLUME [\"\"]")
            .message
            .contains("empty string")
    );
    assert!(
        err("FROM a\nEXPOSE")
            .message
            .contains("EXPOSE requires at least one argument")
    );
}

#[test]
fn copy_and_add_flags() {
    let i = one(
        "COPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=tmp/ a b /dst/",
    );
    let Command::Copy(c) = &i.command else {
        panic!()
    };
    assert_eq!(c.sources, ["a", "b"]);
    assert_eq!(c.dest, "/dst/");
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.chown.as_deref(), Some("app:app"));
    assert_eq!(c.chmod.as_deref(), Some("0755"));
    assert!(c.link && c.parents);
    assert_eq!(c.exclude, ["*.md", "tmp/"]);
    let i = one(
        "ADD --checksum=sha256:abc --keep-git-dir=true --link=false --unpack https://x/y.tar.gz /z",
    );
    let Command::Add(a) = &i.command else {
        panic!()
    };
    assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
    assert_eq!(a.keep_git_dir, Some(true));
    assert!(!a.link);
    assert_eq!(a.unpack, Some(true));
    let i = one("COPY [\"my file.txt\", \"/dest dir/\"]");
    let Command::Copy(c) = &i.command else {
        panic!()
    };
    assert!(c.json);
    assert_eq!(c.sources, ["my file.txt"]);
    assert_eq!(c.dest, "/dest dir/");
}

#[test]
fn copy_errors() {
    assert!(
        err("FROM a\nCOPY onlyone")
            .message
            .contains("at least two arguments")
    );
    assert!(
        err("FROM a\nCOPY --from=$X a b")
            .message
            .contains("variable expansion is not supported for --from")
    );
    assert!(
        err("FROM a\nADD --from=x a b")
            .message
            .contains("unknown flag: --from")
    );
    assert!(
        err("FROM a\nCOPY --checksum=x a b")
            .message
            .contains("unknown flag: --checksum")
    );
    assert!(
        err("FROM a\nCOPY --link=maybe a b")
            .message
            .contains("expecting boolean")
    );
    assert!(
        err("FROM a\nCOPY a <<EOF\nx\nEOF")
            .message
            .contains("heredoc as a destination")
    );
}

#[test]
fn arg_forms() {
    let d = df("ARG A B=2 C=\"x y\"\nFROM a\nARG D\n");
    let Command::Arg(a) = &d.meta_args[0].command else {
        panic!()
    };
    let got: Vec<_> = a
        .args
        .iter()
        .map(|d| (d.name.as_str(), d.default.as_deref()))
        .collect();
    assert_eq!(got, [("A", None), ("B", Some("2")), ("C", Some("\"x y\""))]);
    assert!(
        err("FROM a\nARG")
            .message
            .contains("ARG requires at least one argument")
    );
    assert!(
        err("FROM a\nARG =x")
            .message
            .contains("names can not be blank")
    );
}

#[test]
fn onbuild() {
    let i = one("ONBUILD COPY --chown=1 . /app");
    let Command::Onbuild(o) = &i.command else {
        panic!()
    };
    assert_eq!(o.expression, "COPY --chown=1 . /app");
    assert_eq!(o.trigger.name(), "COPY");
    assert!(
        err("FROM a\nONBUILD ONBUILD RUN x")
            .message
            .contains("Chaining ONBUILD")
    );
    assert!(
        err("FROM a\nONBUILD FROM x")
            .message
            .contains("FROM isn't allowed as an ONBUILD trigger")
    );
    assert!(
        err("FROM a\nONBUILD maintainer x")
            .message
            .contains("MAINTAINER isn't allowed")
    );
    assert!(
        err("FROM a\nONBUILD")
            .message
            .contains("ONBUILD requires at least one argument")
    );
    let i = one("ONBUILD RUN <<EOF\necho hi\nEOF");
    let Command::Onbuild(o) = &i.command else {
        panic!()
    };
    assert_eq!(o.expression, "RUN <<EOF\necho hi\nEOF");
    assert!(matches!(&o.trigger.command, Command::Run(r) if r.heredocs.len() == 1));
}

#[test]
fn healthcheck() {
    let i = one(
        "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=5s --start-interval=500ms --retries=3 CMD curl -f http://localhost/",
    );
    let Command::Healthcheck(Healthcheck::Cmd(h)) = &i.command else {
        panic!()
    };
    assert_eq!(h.interval, Some(30_000_000_000));
    assert_eq!(h.timeout, Some(90_000_000_000));
    assert_eq!(h.start_interval, Some(500_000_000));
    assert_eq!(h.retries, Some(3));
    assert!(matches!(h.cmd, CommandLine::Shell(_)));
    assert!(
        matches!(one("HEALTHCHECK CMD [\"true\"]").command, Command::Healthcheck(Healthcheck::Cmd(h)) if h.cmd.is_exec())
    );
    assert!(matches!(
        one("HEALTHCHECK none").command,
        Command::Healthcheck(Healthcheck::None)
    ));
    assert!(
        err("FROM a\nHEALTHCHECK NONE x")
            .message
            .contains("takes no arguments")
    );
    assert!(
        err("FROM a\nHEALTHCHECK CMD")
            .message
            .contains("Missing command")
    );
    assert!(
        err("FROM a\nHEALTHCHECK RUN x")
            .message
            .contains("Unknown type \"RUN\"")
    );
    assert!(
        err("FROM a\nHEALTHCHECK --retries=-1 CMD x")
            .message
            .contains("cannot be negative")
    );
    assert!(
        err("FROM a\nHEALTHCHECK --interval=10 CMD x")
            .message
            .contains("invalid duration")
    );
    assert!(
        err("FROM a\nHEALTHCHECK --interval=10ns CMD x")
            .message
            .contains("less than 1ms")
    );
    assert!(
        err("FROM a\nHEALTHCHECK --intervall=1s CMD x")
            .hint
            .as_deref()
            == Some("did you mean --interval?")
    );
}

#[test]
fn heredocs() {
    let d = df(
        "FROM a\nRUN <<EOF\necho one\n\techo two\nEOF\nRUN <<-EOT bash\n\tindented\n\tEOT\nCOPY <<\"A\" <<'B' /dst/\n$NOEXPAND\nA\nb\nB\nRUN 3<<X cat <&3 && cat <<Y\nx\nX\ny\nY\n",
    );
    let ins = &d.stages[0].instructions;
    let Command::Run(r) = &ins[0].command else {
        panic!()
    };
    assert_eq!(r.heredocs[0].content, "echo one\n\techo two\n");
    assert_eq!(r.heredocs[0].body_line, 3);
    assert!(r.heredocs[0].expand);
    assert_eq!(ins[0].end_line, 5);
    let Command::Run(r) = &ins[1].command else {
        panic!()
    };
    assert_eq!(r.heredocs[0].content, "indented\n");
    assert!(r.heredocs[0].chomp);
    assert_eq!(r.cmd, CommandLine::Shell("<<-EOT bash".into()));
    let Command::Copy(c) = &ins[2].command else {
        panic!()
    };
    assert!(c.sources.is_empty());
    assert_eq!(c.inline.len(), 2);
    assert_eq!(
        (c.inline[0].name.as_str(), c.inline[0].expand),
        ("A", false)
    );
    assert_eq!(c.inline[1].content, "b\n");
    let Command::Run(r) = &ins[3].command else {
        panic!()
    };
    assert_eq!(
        r.heredocs
            .iter()
            .map(|h| (h.fd, h.name.as_str()))
            .collect::<Vec<_>>(),
        [(3, "X"), (0, "Y")]
    );
    // Not heredocs: quoted, JSON form, other instructions.
    let d = df("FROM a\nRUN echo \"<<EOF\"\nRUN [\"cat\", \"<<EOF\"]\nLABEL a=<<EOF\n");
    assert_eq!(d.stages[0].instructions.len(), 3);
}

#[test]
fn unterminated_heredoc() {
    let e = err("FROM a\nRUN <<EOF\necho\n");
    assert_eq!(e.message, "unterminated heredoc");
    assert_eq!(e.span.line, 2);
}

#[test]
fn directives() {
    let d = df(
        "# syntax=docker/dockerfile:1.7\n# check=skip=JSONArgsRecommended\n# escape=`\nFROM a\nRUN echo a `\n  b\n",
    );
    let names: Vec<_> = d
        .directives
        .iter()
        .map(|d| (d.name.as_str(), d.value.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("syntax", "docker/dockerfile:1.7"),
            ("check", "skip=JSONArgsRecommended"),
            ("escape", "`")
        ]
    );
    assert_eq!(d.escape, '`');
    assert!(
        matches!(&d.stages[0].instructions[0].command, Command::Run(r) if r.cmd == CommandLine::Shell("echo a   b".into()))
    );
    // After the first instruction or comment, a directive is just a comment.
    let d = df("FROM a\n# escape=`\nRUN x \\\n y");
    assert_eq!(d.escape, '\\');
    assert_eq!(d.stages[0].instructions.len(), 1);
    // Case-insensitive keys.
    assert_eq!(df("# ESCAPE = `\nFROM a").escape, '`');
    assert_eq!(
        err("# escape=`\n# Escape=\\\nFROM a").kind,
        ErrorKind::Directive
    );
    assert!(
        err("# escape=|\nFROM a")
            .message
            .contains("invalid escape token")
    );
}

#[test]
fn comments_continuations_whitespace() {
    let d = df(
        "\u{feff}# comment\n\n  FROM a\n\t# indented comment\nRUN apt-get update \\\n  # comment inside\n\n  && apt-get install -y curl \\\n  && rm -rf /var/lib/apt/lists/*\nRUN echo # not a comment\n",
    );
    let ins = &d.stages[0].instructions;
    assert!(
        matches!(&ins[0].command, Command::Run(r) if r.cmd == CommandLine::Shell("apt-get update   && apt-get install -y curl   && rm -rf /var/lib/apt/lists/*".into()))
    );
    assert_eq!(ins[0].span.line, 5);
    assert_eq!(ins[0].end_line, 9);
    assert!(
        matches!(&ins[1].command, Command::Run(r) if r.cmd == CommandLine::Shell("echo # not a comment".into()))
    );
    assert_eq!(d.parse_warnings.len(), 1);
    // Continuation at end of file.
    assert_eq!(df("FROM a\nRUN x \\").stages[0].instructions.len(), 1);
}

#[test]
fn structure_errors() {
    let e = err("");
    assert_eq!(e.message, "file with no instructions");
    assert_eq!(
        err("# only a comment\n\n").message,
        "file with no instructions"
    );
    assert!(err("RUN x\nFROM a").message.contains("no build stage"));
    assert!(err("ARG X\n").message.contains("no stages"));
    let e = err("FROM a AS x\nFROM b AS X\n");
    assert!(e.message.contains("duplicate stage name"));
    assert_eq!(e.span, Span::new(2, 11, 1));
    assert!(
        err("FROM a AS 1x")
            .message
            .contains("invalid name for build stage")
    );
    assert!(err("FROM a b").message.contains("one or three arguments"));
    assert!(err("FROM --platfrom=x a").hint.as_deref() == Some("did you mean --platform?"));
    assert!(
        err("FROM a\nENV --x=1 A=b")
            .message
            .contains("unknown flag: --x")
    );
}

#[test]
fn unknown_instruction_suggests() {
    let e = err("FROM a\n\nRUNN echo hi\n");
    assert_eq!(e.kind, ErrorKind::UnknownInstruction);
    assert_eq!(e.message, "unknown instruction: RUNN");
    assert_eq!(e.hint.as_deref(), Some("did you mean RUN?"));
    assert_eq!(e.span, Span::new(3, 1, 4));
    assert_eq!(
        e.render("FROM a\n\nRUNN echo hi\n"),
        "error: unknown instruction: RUNN\n --> Dockerfile:3:1\n  |\n3 | RUNN echo hi\n  | ^^^^\n  = hint: did you mean RUN?\n"
    );
    assert_eq!(
        err("FROM a\ncopyy a b").hint.as_deref(),
        Some("did you mean COPY?")
    );
    assert_eq!(
        parse_named("FROM a\nXYZZY", "sub/Dockerfile.dev")
            .unwrap_err()
            .file,
        "sub/Dockerfile.dev"
    );
}

#[test]
fn json_serialization_is_stable() {
    let d = df("FROM a AS b\nRUN --mount=type=cache,target=/c make\n");
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(
        v["stages"][0]["instructions"][0]["command"]["instruction"],
        "RUN"
    );
    assert_eq!(
        v["stages"][0]["instructions"][0]["command"]["mounts"][0]["resolved"]["type"],
        "cache"
    );
    assert_eq!(v["stages"][0]["span"]["line"], 1);
}
