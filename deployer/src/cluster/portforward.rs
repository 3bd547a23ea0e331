//! A `kubectl port-forward` that lives as long as its guard: `verify --cluster` reaches the
//! ingress gateway through one, and the child is killed when the guard drops, on success,
//! error or panic alike.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::kubectl::Kubectl;

/// How long kubectl may take to set the forward up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct PortForward {
    child: Child,
    /// The local port on 127.0.0.1.
    pub port: u16,
}

impl PortForward {
    /// Forwards a free local port to `target`'s `remote_port` (e.g. `svc/istio-ingressgateway`,
    /// 80). The local side is given as `:PORT`'s empty form, so kubectl binds a free port itself
    /// and reports it: no window in which another process could take a port picked here.
    pub fn start(
        kubectl: &Kubectl,
        namespace: &str,
        target: &str,
        remote_port: u16,
    ) -> Result<PortForward> {
        let ports = format!(":{remote_port}");
        let args = [
            "port-forward",
            "-n",
            namespace,
            target,
            &ports,
            "--address",
            "127.0.0.1",
        ];
        let mut child = kubectl
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", kubectl.bin.display()))?;
        // kubectl's stderr, whole, once it exits: why it failed, if it does.
        let (stderr_tx, stderr_rx) = mpsc::channel();
        if let Some(mut pipe) = child.stderr.take() {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                let _ = stderr_tx.send(text);
            });
        }
        let (tx, rx) = mpsc::channel();
        if let Some(pipe) = child.stdout.take() {
            // Reads on after the port is known, so kubectl never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(port) = forwarded_port(&line) {
                        let _ = tx.send(port);
                    }
                }
            });
        }
        // The guard exists from here on, so every early return below kills the child.
        let mut forward = PortForward { child, port: 0 };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(port) => {
                forward.port = port;
                Ok(forward)
            }
            Err(_) => {
                let exited = forward.child.try_wait().ok().flatten().is_some();
                drop(forward);
                let text = stderr_rx
                    .recv_timeout(Duration::from_secs(2))
                    .unwrap_or_default();
                let reason = text
                    .lines()
                    .map(str::trim)
                    .rfind(|l| !l.is_empty())
                    .map(|l| l.strip_prefix("error: ").unwrap_or(l).to_owned());
                match (exited, reason) {
                    (_, Some(reason)) => bail!("`{}` failed: {reason}", kubectl.display(&args)),
                    (true, None) => bail!("`{}` exited without forwarding", kubectl.display(&args)),
                    (false, None) => bail!(
                        "`{}` did not start forwarding within {}s",
                        kubectl.display(&args),
                        READY_TIMEOUT.as_secs()
                    ),
                }
            }
        }
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The local port in kubectl's `Forwarding from 127.0.0.1:41234 -> 8080` line.
fn forwarded_port(line: &str) -> Option<u16> {
    let rest = line.trim().strip_prefix("Forwarding from 127.0.0.1:")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_port() {
        assert_eq!(
            forwarded_port("Forwarding from 127.0.0.1:41234 -> 8080"),
            Some(41234)
        );
        assert_eq!(forwarded_port("Forwarding from [::1]:41234 -> 8080"), None);
        assert_eq!(forwarded_port("Handling connection for 41234"), None);
    }
}
