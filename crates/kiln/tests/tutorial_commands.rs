//! The tutorial's build and image commands, run unchanged with docker 20.10 and with kiln
//! (`scripts/tutorial-commands.sh --compare`: only the word changes), must print the same
//! summary: tags, sizes, history, inspect fields, the saved archive. The script starts a
//! private dockerd of its own; this fails loudly without root or docker.

mod support;
use support::*;

#[test]
fn the_tutorials_commands_print_the_same_with_docker_and_kiln() {
    require_root();
    require_command("dockerd", "docker.io");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/tutorial-commands.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("--compare")
        .env("KILN", bin())
        .env_remove("DOCKER_HOST")
        .output()
        .expect("running tutorial-commands.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the summaries differ:\n{text}");
    assert!(text.contains("same summary with docker and kiln"), "{text}");
}
