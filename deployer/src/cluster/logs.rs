//! A cluster's sidecar access logs, as `tap --cluster` and `edges --cluster` read them: the
//! istio-proxy container's output through `kubectl logs` (the rendered
//! `monitoring/access-log.yaml` EnvoyFilter makes the sidecars log each request there, in the
//! local proxies' JSON format). Lines that are not such records (the agent's own logs) are
//! skipped by the readers.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::sidecars::{pods, ClusterSidecars, PARALLEL, SIDECAR};
use crate::observe::tap::Tapped;

/// Kills the followers when dropped, however the tap ends.
struct Followers(Vec<Child>);

impl Drop for Followers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Tapped for ClusterSidecars {
    fn follow(
        &self,
        stop: &AtomicBool,
        ready: &mut dyn FnMut(usize),
        each: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        let pods = pods(&self.kubectl, &self.namespace)?;
        let (send, receive) = mpsc::channel::<String>();
        let mut followers = Followers(Vec::new());
        for pod in &pods {
            let args = [
                "logs",
                "-f",
                "--since=1s",
                "-n",
                &self.namespace,
                pod,
                "-c",
                SIDECAR,
            ];
            let mut child = self
                .kubectl
                .command(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("following the sidecar log of pod {pod}"))?;
            let stdout = child.stdout.take().context("kubectl logs has no stdout")?;
            followers.0.push(child);
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        drop(send);
        ready(pods.len());
        while !stop.load(Ordering::SeqCst) {
            match receive.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => each(&line)?,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // Every follower ended (the pods went away).
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(())
    }

    fn history(&self, each: &mut dyn FnMut(&str) -> Result<()>) -> Result<()> {
        let pods = pods(&self.kubectl, &self.namespace)?;
        let logs = meshtally_mesh::parallel::map(&pods, PARALLEL, |pod| {
            self.kubectl
                .run(&["logs", "-n", &self.namespace, pod, "-c", SIDECAR], None)
                .with_context(|| format!("reading the sidecar log of pod {pod}"))
        });
        for log in logs {
            for line in String::from_utf8_lossy(&log?).lines() {
                each(line)?;
            }
        }
        Ok(())
    }
}
