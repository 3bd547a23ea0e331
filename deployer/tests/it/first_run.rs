//! The rough edges a new user hit on a first run, through the binary: a closed stdout pipe
//! (`render`, `verify`, `stats`, `apply`, `delete`; `push` in `push_registry.rs`), a
//! mistyped flag, a render-only flag given to `up`, and a render to a terminal. Each test here
//! failed before its fix.

use crate::common;
use crate::standin;

use std::process::{Command, Stdio};

use common::{deployer_in, fake_module};
use meshtally_core::metrics::{metric_name, CodeClass, Security, REQUESTS_TOTAL};
use meshtally_core::Direction;
use standin::StandIn;

/// Runs `command` with a stdout whose reader is already gone, as in `deployer … | head -c 0`:
/// the first write fails with EPIPE.
fn with_closed_stdout(mut command: Command) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command
        .stdout(writer)
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A closed pipe is a normal end: no panic, no error line, success.
fn ends_quietly(out: &std::process::Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{what} panicked: {stderr}");
    assert!(!stderr.contains("error"), "{what}: {stderr}");
    assert_eq!(out.status.code(), Some(0), "{what}: {stderr}");
}

#[test]
fn verify_into_a_closed_pipe_ends_quietly() {
    // Nothing listens on the gateway port: every pair fails, and the report is still written.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway = format!("http://127.0.0.1:{port}");
    for json in [true, false] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_deployer"));
        command.args([
            "verify",
            "--gateway",
            &gateway,
            "--services",
            "2",
            "--timeout-ms",
            "500",
        ]);
        if json {
            command.arg("--json");
        }
        ends_quietly(&with_closed_stdout(command), "verify");
    }
}

#[test]
fn stats_into_a_closed_pipe_ends_quietly() {
    let standin = StandIn::new();
    let stats = standin.dir.path().join("stats");
    std::fs::create_dir(&stats).unwrap();
    let pods = standin.dir.path().join("pods.json");
    std::fs::write(&pods, r#"{"items":[{"metadata":{"name":"service-a-1"}}]}"#).unwrap();
    let name = metric_name(
        REQUESTS_TOTAL,
        "service-b",
        "service-a",
        "v1",
        Direction::Inbound,
        CodeClass::C2xx,
        Security::MutualTls,
    );
    std::fs::write(
        stats.join("service-a-1.json"),
        format!(r#"{{"stats":[{{"name":"{name}","value":7}}]}}"#),
    )
    .unwrap();
    let standin = standin
        .env("STANDIN_PODS_JSON", &pods)
        .env("STANDIN_STATS_DIR", &stats);
    let script = standin::script();
    for json in [true, false] {
        let mut args = vec![
            "stats",
            "--kubectl",
            script.to_str().unwrap(),
            "--context",
            standin::CONTEXT,
        ];
        if json {
            args.push("--json");
        }
        ends_quietly(&with_closed_stdout(standin.command(&args)), "stats");
    }
}

#[test]
fn render_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    fake_module(dir.path());
    let mut command = Command::new(env!("CARGO_BIN_EXE_deployer"));
    command
        .args(["render", "--wasm-file", "meshtally_filter.wasm"])
        .current_dir(dir.path());
    ends_quietly(&with_closed_stdout(command), "render");
}

#[test]
fn apply_and_delete_into_a_closed_pipe_end_quietly() {
    let standin = StandIn::new();
    let flags = standin.kubectl_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut apply = vec!["apply", "--wasm-file", "meshtally_filter.wasm"];
    apply.extend(&flags);
    ends_quietly(&with_closed_stdout(standin.command(&apply)), "apply");
    // The stand-in saw the whole apply: the summary is the last thing apply does.
    assert!(
        standin
            .calls()
            .iter()
            .any(|c| c.contains(&"rollout".to_owned())),
        "{:?}",
        standin.calls()
    );
    let mut delete = vec!["delete"];
    delete.extend(&flags);
    ends_quietly(&with_closed_stdout(standin.command(&delete)), "delete");
    let mut dry_run = vec!["delete", "--dry-run"];
    dry_run.extend(&flags);
    ends_quietly(
        &with_closed_stdout(standin.command(&dry_run)),
        "delete --dry-run",
    );
}

/// Runs `deployer args…` and returns its one error line, checking the failure's shape: that
/// line (with a tip, if any), then clap's usage line and its `--help` hint.
fn usage_error(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = deployer_in(dir.path(), args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 3, "{args:?}: {stderr:?}");
    assert!(
        lines[lines.len() - 2].starts_with("Usage: deployer"),
        "{stderr:?}"
    );
    assert_eq!(
        lines[lines.len() - 1],
        "For more information, try '--help'.",
        "{stderr:?}"
    );
    lines[..lines.len() - 2]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn a_mistyped_flag_or_command_gets_a_suggestion() {
    let err = usage_error(&["render", "--servics", "3"]);
    assert_eq!(
        err,
        "error: unexpected argument '--servics' found tip: a similar argument exists: '--services'\n"
    );
    let err = usage_error(&["rendr"]);
    assert_eq!(
        err,
        "error: unrecognized subcommand 'rendr' tip: some similar subcommands exist: 'reload', 'render'\n"
    );
    // Without a near name, no tip.
    let err = usage_error(&["render", "--bogus"]);
    assert_eq!(err, "error: unexpected argument '--bogus' found\n");
    // Other tools' words for meshtally's commands.
    let err = usage_error(&["start"]);
    assert_eq!(
        err,
        "error: unrecognized subcommand 'start'\ntip: to start the local mesh, use 'deployer up'\n"
    );
    let err = usage_error(&["stop"]);
    assert!(
        err.ends_with("tip: to stop the local mesh, use 'deployer down'\n"),
        "{err}"
    );
}

#[test]
fn up_refuses_the_flags_only_a_cluster_uses() {
    for (flag, value) in [
        ("--replicas", "3"),
        ("--image", "demo:1"),
        ("--wasm-url", "oci://ghcr.io/x/f"),
        ("--wasm-sha256", "0"),
        ("--wasm-file", "f.wasm"),
    ] {
        let err = usage_error(&["up", flag, value]);
        assert!(
            err.starts_with(&format!("error: unexpected argument '{flag}' found")),
            "{err}"
        );
    }
}

#[test]
fn render_to_a_terminal_leaves_out_the_module() {
    let dir = tempfile::tempdir().unwrap();
    fake_module(dir.path());
    // `script` runs the command on a pseudo-terminal, as a user's shell would.
    let deployer = env!("CARGO_BIN_EXE_deployer");
    let out = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{deployer} render --wasm-file meshtally_filter.wasm"
        ))
        .arg("/dev/null")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("running script (util-linux)");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("kind: WasmPlugin"), "{shown}");
    assert!(!shown.contains("binaryData"), "{shown}");
    assert!(
        shown.contains("the filter ConfigMap (1 KiB of base64) is not shown on a terminal"),
        "{shown}"
    );
    // Into a pipe, every document, the ConfigMap included.
    let piped = deployer_in(
        dir.path(),
        &["render", "--wasm-file", "meshtally_filter.wasm"],
    );
    assert!(String::from_utf8_lossy(&piped.stdout).contains("binaryData"));
    assert!(piped.stderr.is_empty());
}
