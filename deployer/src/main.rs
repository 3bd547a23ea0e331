//! `deployer`: parses the command line, runs it, and reports any failure as one line on stderr
//! with a non-zero exit, so scripts and tests can rely on the shape of an error.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser as _;
use meshtally_deployer::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and succeed; a bare `deployer` shows the full help.
            if !e.use_stderr() || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
            }
            // clap adds usage and tips after a blank line; what is wrong comes before it, at
            // times over two lines ("…not provided:" then the argument), joined here.
            let text = e.render().to_string();
            let what: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!(
                "{}",
                if what.is_empty() {
                    "error: bad arguments".to_owned()
                } else {
                    what.join(" ")
                }
            );
            return ExitCode::from(2);
        }
    };
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
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
