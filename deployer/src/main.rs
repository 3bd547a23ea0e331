//! `deployer`: parses the command line, runs it, and reports any failure as one line on stderr
//! with a non-zero exit, so scripts and tests can rely on the shape of an error.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser as _;
use meshtally_deployer::{Cli, Finished};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and succeed; a bare `deployer` shows the full help.
            if !e.use_stderr() || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
            }
            let rendered = e.render().to_string();
            match synonym_tip(&e) {
                // Our word for it, instead of clap's near spellings (`start` is not `status`).
                Some(tip) => eprintln!("{}\n{tip}", rendered.lines().next().unwrap_or("error")),
                None => eprintln!("{}", one_line(&rendered)),
            }
            // Then clap's usage and `--help` lines, as git, kubectl and cargo end theirs.
            for line in rendered
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("Usage:") || l.starts_with("For more information"))
            {
                eprintln!("{line}");
            }
            return ExitCode::from(2);
        }
    };
    match meshtally_deployer::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped reading (`deployer stats --json | head -c 100`) is a normal
        // end, as for any Unix tool: nothing more to say, and no error.
        Err(e) if closed_stdout(&e) => ExitCode::SUCCESS,
        // A command whose exit code says more (`canary`: 1 rolled back, 2 undecided).
        Err(e) if e.downcast_ref::<Finished>().is_some() => {
            let finished = e.downcast_ref::<Finished>();
            let (code, message) = finished.map_or((1, ""), |f| (f.code, f.message.as_str()));
            if !message.is_empty() {
                eprintln!("{message}");
            }
            ExitCode::from(code)
        }
        Err(e) => {
            let chain: Vec<String> = e
                .chain()
                .map(|cause| cause.to_string().replace('\n', " "))
                .collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

/// clap's error as one line: what is wrong (at times over two lines, "…not provided:" then the
/// argument), then its "did you mean" tips ("tip: a similar argument exists: '--services'"),
/// without the usage or the other tips.
fn one_line(text: &str) -> String {
    let mut lines = text.lines().map(str::trim);
    let mut parts: Vec<&str> = lines.by_ref().take_while(|l| !l.is_empty()).collect();
    parts.extend(lines.filter(|l| l.starts_with("tip:") && l.contains("similar")));
    if parts.is_empty() {
        return "error: bad arguments".to_owned();
    }
    parts.join(" ")
}

/// For a subcommand other tools spell differently (`start`, `stop`, `deploy`, …), the one
/// meshtally has.
fn synonym_tip(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    if e.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(typed)) = e.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    let (ours, what) = match typed.as_str() {
        "start" | "run" | "launch" | "serve" => ("up", "start the local mesh"),
        "stop" | "halt" | "kill" | "teardown" => ("down", "stop the local mesh"),
        "deploy" | "install" | "create" => ("apply", "put the mesh on a cluster"),
        "uninstall" | "remove" | "destroy" => ("delete", "take it off a cluster"),
        "ps" | "list" | "ls" => ("status", "list the local mesh's processes"),
        "check" | "test" => ("verify", "check every pair of services"),
        "logs" | "watch" => ("tap", "see the requests crossing the mesh"),
        _ => return None,
    };
    Some(format!("tip: to {what}, use 'deployer {ours}'"))
}

/// The error is stdout's reader having gone away (EPIPE).
fn closed_stdout(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
