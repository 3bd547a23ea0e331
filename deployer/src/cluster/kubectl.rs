//! Running `kubectl`: found once (from `--kubectl` or PATH), then every call gets the same
//! `--context` so one command never talks to two clusters, and every failure is reduced to the
//! one line of kubectl's stderr that says what went wrong.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use meshtally_envoy::shell::shell_line;

#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    #[error(
        "kubectl not found on PATH: install it (https://kubernetes.io/docs/tasks/tools/) \
         or pass --kubectl PATH"
    )]
    NotOnPath,
    #[error("kubectl {} does not exist or is not an executable file", .0.display())]
    NotExecutable(PathBuf),
    #[error("cannot run {}", path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {reason}")]
    Failed { command: String, reason: String },
}

/// A kubectl binary and the context every call uses.
#[derive(Debug, Clone)]
pub struct Kubectl {
    pub bin: PathBuf,
    pub context: Option<String>,
}

impl Kubectl {
    /// `--kubectl PATH` if given (it must be an executable file), else `kubectl` on PATH.
    pub fn find(flag: Option<&Path>, context: Option<String>) -> Result<Kubectl, KubectlError> {
        let bin = match flag {
            Some(path) if path.components().count() == 1 && !path.exists() => {
                // A bare name (`--kubectl kubectl-1.31`) is looked up on PATH like a shell would.
                on_path(path.as_os_str()).ok_or_else(|| KubectlError::NotExecutable(path.into()))?
            }
            Some(path) if meshtally_envoy::locate::is_executable(path) => path.to_owned(),
            Some(path) => return Err(KubectlError::NotExecutable(path.to_owned())),
            None => on_path("kubectl".as_ref()).ok_or(KubectlError::NotOnPath)?,
        };
        Ok(Kubectl { bin, context })
    }

    /// The full argument list of a call: `--context` first, then `args`.
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = Vec::with_capacity(args.len() + 2);
        if let Some(context) = &self.context {
            argv.push("--context".to_owned());
            argv.push(context.clone());
        }
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }

    /// The call as a shell command line, for `--dry-run` and error messages.
    pub fn display(&self, args: &[&str]) -> String {
        shell_line(&self.bin.to_string_lossy(), &self.argv(args))
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command.args(self.argv(args));
        command
    }

    /// Runs a call to completion, feeding `stdin` if given.
    pub fn output(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Output, KubectlError> {
        let spawn_err = |source| KubectlError::Spawn {
            path: self.bin.clone(),
            source,
        };
        let mut child = self
            .command(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        // Written from a thread: a large stream would otherwise deadlock against kubectl
        // filling its stdout pipe before it has read all of its input.
        let writer = match (stdin, child.stdin.take()) {
            (Some(bytes), Some(mut pipe)) => {
                let bytes = bytes.to_vec();
                Some(std::thread::spawn(move || pipe.write_all(&bytes)))
            }
            _ => None,
        };
        let output = child.wait_with_output().map_err(spawn_err)?;
        if let Some(writer) = writer {
            // kubectl may exit before reading everything (it failed early); its stderr says why,
            // so a broken pipe here is not the error to report.
            let _ = writer.join();
        }
        Ok(output)
    }

    /// Runs a call that must succeed and returns its stdout.
    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, KubectlError> {
        let output = self.output(args, stdin)?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(KubectlError::Failed {
                command: self.display(args),
                reason: reason(&output),
            })
        }
    }
}

/// The line of a failed call's output that says what went wrong: kubectl's own `error:` line
/// or the server's `Error from server …`, else the last plain line (for an unreachable cluster,
/// "The connection to the server … was refused"), else the message of the last klog line.
pub fn reason(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines
        .iter()
        .find(|l| l.starts_with("error:") || l.starts_with("Error from server"))
        .or_else(|| lines.iter().rev().find(|l| klog_message(l).is_none()))
        .or(lines.last())
        .copied();
    match line {
        Some(l) => {
            let l = klog_message(l).unwrap_or(l);
            l.strip_prefix("error: ").unwrap_or(l).to_owned()
        }
        None => format!("{} and no output", output.status),
    }
}

/// The message of a klog line (`E1125 08:00:00.000000   12 memcache.go:265] message`).
fn klog_message(line: &str) -> Option<&str> {
    let bytes = line.as_bytes();
    let header = bytes.len() > 6
        && b"EWIF".contains(&bytes[0])
        && bytes[1..5].iter().all(u8::is_ascii_digit)
        && bytes[5] == b' ';
    if header {
        line.split_once("] ").map(|(_, message)| message)
    } else {
        None
    }
}

fn on_path(name: &std::ffi::OsStr) -> Option<PathBuf> {
    meshtally_envoy::locate::Places::here().on_path(&name.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn failed(stderr: &str) -> Output {
        Output {
            status: std::process::ExitStatus::from_raw(1 << 8),
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn context_goes_first_on_every_call() {
        let k = Kubectl {
            bin: "kubectl".into(),
            context: Some("kind-mesh".into()),
        };
        assert_eq!(
            k.argv(&["get", "ns"]),
            ["--context", "kind-mesh", "get", "ns"]
        );
        let plain = Kubectl {
            context: None,
            ..k.clone()
        };
        assert_eq!(plain.argv(&["get", "ns"]), ["get", "ns"]);
        assert_eq!(
            k.display(&["wait", "--for=jsonpath={.status.phase}=Active"]),
            "kubectl --context kind-mesh wait '--for=jsonpath={.status.phase}=Active'"
        );
    }

    #[test]
    fn reasons() {
        let conflict = failed(
            "error: Apply failed with 1 conflict: conflict with \"kubectl-edit\"\nPlease review the fields above\n",
        );
        assert_eq!(
            reason(&conflict),
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\""
        );
        let server =
            failed("Warning: x\nError from server (NotFound): namespaces \"x\" not found\n");
        assert_eq!(
            reason(&server),
            "Error from server (NotFound): namespaces \"x\" not found"
        );
        let refused = failed("E1125 10:00:00.000000  12 memcache.go:265] couldn't get current server API group list: connection refused\nThe connection to the server 127.0.0.1:6443 was refused\n");
        assert_eq!(
            reason(&refused),
            "The connection to the server 127.0.0.1:6443 was refused"
        );
        let klog = failed("E1125 10:00:00.000000  12 memcache.go:265] couldn't get current server API group list\n");
        assert_eq!(reason(&klog), "couldn't get current server API group list");
        assert_eq!(reason(&failed("just this\n")), "just this");
        assert!(reason(&failed("")).contains("no output"));
    }

    #[test]
    fn finding() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("kubectl");
        assert!(matches!(
            Kubectl::find(Some(&missing), None),
            Err(KubectlError::NotExecutable(_))
        ));
        std::fs::write(&missing, "#!/bin/sh\n").unwrap();
        assert!(matches!(
            Kubectl::find(Some(&missing), None),
            Err(KubectlError::NotExecutable(_))
        ));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&missing, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(Kubectl::find(Some(&missing), None).unwrap().bin, missing);
    }
}
