//! Runs the local mesh's processes as a kubelet would: starts them, waits until each is ready,
//! restarts any that dies (with backoff, reporting the tail of its log) and stops them all on
//! SIGINT/SIGTERM — SIGTERM first, so Envoy and the apps drain, SIGKILL after a grace period.

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::layout::GATEWAY;
use super::live;
use super::process::{ProcessSpec, Ready};
use super::state::{tail, StateDir};
use meshtally_envoy::admin::Admin;
use meshtally_envoy::module;

/// Like a kubelet's crash-loop backoff, scaled down for a laptop: 1 s, doubling, at most 10 s.
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A process that stayed up this long has its backoff reset.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
const GRACE: Duration = Duration::from_secs(3);
/// How long `down` waits for in-flight requests: through the gateway, then straight to sidecars.
/// With the grace period this keeps `down` within 10 s.
const DRAIN_GATEWAY: Duration = Duration::from_secs(4);
const DRAIN_SIDECARS: Duration = Duration::from_secs(2);

struct Proc {
    spec: ProcessSpec,
    child: Option<Child>,
    started: Instant,
    /// Restarts in a row, for the backoff (reset once the process stays up).
    restarts: u32,
    /// Every restart since `up`, for `deployer status`.
    total_restarts: u32,
    restart_at: Option<Instant>,
}

pub struct Supervisor {
    procs: Vec<Proc>,
    state: StateDir,
    stop: Arc<AtomicBool>,
    /// The module `up` was given, reloaded into the sidecars when it is replaced.
    module: Option<module::Watch>,
}

impl Supervisor {
    /// Installs the signal handlers and records this process as the dir's supervisor.
    pub fn new(state: StateDir, specs: Vec<ProcessSpec>) -> Result<Supervisor> {
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, stop.clone())
                .context("installing signal handlers")?;
        }
        // A detached supervisor outlives the terminal that started it.
        signal_hook::flag::register(
            signal_hook::consts::SIGHUP,
            Arc::new(AtomicBool::new(false)),
        )?;
        state.record_supervisor()?;
        let procs = specs
            .into_iter()
            .map(|spec| Proc {
                spec,
                child: None,
                started: Instant::now(),
                restarts: 0,
                total_restarts: 0,
                restart_at: None,
            })
            .collect();
        Ok(Supervisor {
            procs,
            state,
            stop,
            module: None,
        })
    }

    /// Reloads the module at `path` into every sidecar whenever the file is replaced (a
    /// `make wasm` while the mesh runs).
    pub fn watch_module(&mut self, path: &std::path::Path) {
        self.module = Some(module::Watch::new(path));
    }

    fn reload_if_replaced(&mut self, report: &mut impl FnMut(&str)) {
        let Some(watch) = self.module.as_mut() else {
            return;
        };
        if !watch.changed() {
            return;
        }
        let path = watch.path().to_path_buf();
        match live::reload_module(&self.state, &path) {
            Ok(live::Published::Confirmed {
                layout,
                version,
                took,
                ..
            }) => report(&format!(
                "module {} reloaded: {} in every sidecar (config version {version}, {} ms)",
                path.display(),
                layout.module_sha256.as_deref().unwrap_or_default(),
                took.as_millis()
            )),
            Ok(live::Published::Unchanged) => {}
            Err(e) => report(&format!(
                "module {} changed but was not reloaded: {e:#}",
                path.display()
            )),
        }
    }

    /// How many processes it runs.
    pub fn process_count(&self) -> usize {
        self.procs.len()
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Starts everything and waits until every process is ready, calling `progress` as each
    /// one becomes ready. On failure everything started is stopped again.
    pub fn start(
        &mut self,
        timeout: Duration,
        mut progress: impl FnMut(&str, usize, usize, Duration),
    ) -> Result<()> {
        let begin = Instant::now();
        let result = self.start_inner(begin, timeout, &mut progress);
        if result.is_err() {
            self.stop_all();
        }
        result
    }

    fn start_inner(
        &mut self,
        begin: Instant,
        timeout: Duration,
        progress: &mut impl FnMut(&str, usize, usize, Duration),
    ) -> Result<()> {
        for p in &mut self.procs {
            p.child = Some(p.spec.spawn()?);
            p.started = Instant::now();
        }
        self.write_pids()?;
        let total = self.procs.len();
        let mut ready = vec![false; total];
        while ready.iter().any(|r| !r) {
            if self.stopping() {
                bail!("interrupted while starting");
            }
            if begin.elapsed() > timeout {
                let waiting: Vec<&str> = self
                    .procs
                    .iter()
                    .zip(&ready)
                    .filter(|(_, r)| !**r)
                    .map(|(p, _)| p.spec.name.as_str())
                    .collect();
                bail!("not ready after {:?}: {}", timeout, waiting.join(", "));
            }
            for i in 0..total {
                let (Some(p), Some(false)) = (self.procs.get_mut(i), ready.get(i).copied()) else {
                    continue;
                };
                if let Some(status) = p.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    bail!(
                        "{} exited during start-up ({status}): {} (its log: {})",
                        p.spec.name,
                        super::state::last_error(&p.spec.log),
                        p.spec.log.display()
                    );
                }
                if p.spec.is_ready() {
                    if let Some(r) = ready.get_mut(i) {
                        *r = true;
                    }
                    progress(&p.spec.name, ready_count(&ready), total, begin.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        std::fs::write(self.state.ready_path(), b"ready\n")?;
        Ok(())
    }

    /// Watches the processes until SIGINT/SIGTERM, restarting any that dies; then stops all.
    pub fn run(&mut self, mut report: impl FnMut(&str)) {
        while !self.stopping() {
            let mut changed = false;
            for p in &mut self.procs {
                if let Some(at) = p.restart_at {
                    if Instant::now() >= at {
                        p.restart_at = None;
                        match p.spec.spawn() {
                            Ok(child) => {
                                report(&format!(
                                    "{}: restarted (restart #{})",
                                    p.spec.name, p.restarts
                                ));
                                p.child = Some(child);
                                p.started = Instant::now();
                                changed = true;
                            }
                            Err(e) => {
                                report(&format!("{}: restart failed: {e:#}", p.spec.name));
                                p.restart_at = Some(Instant::now() + BACKOFF_MAX);
                            }
                        }
                    }
                    continue;
                }
                let exited = p.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                if let Some(status) = exited {
                    p.child = None;
                    if p.started.elapsed() > HEALTHY_AFTER {
                        p.restarts = 0;
                    }
                    let delay = BACKOFF_START
                        .saturating_mul(1 << p.restarts.min(5))
                        .min(BACKOFF_MAX);
                    p.restarts += 1;
                    p.total_restarts += 1;
                    p.restart_at = Some(Instant::now() + delay);
                    report(&format!(
                        "{} exited ({status}); restarting in {} ms; last log lines:\n{}",
                        p.spec.name,
                        delay.as_millis(),
                        indent(&tail(&p.spec.log, 5))
                    ));
                    changed = true;
                }
            }
            if changed {
                let _ = self.write_pids();
            }
            self.reload_if_replaced(&mut report);
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop_all();
    }

    /// Stops the mesh without dropping a request it accepted: the gateway stops accepting and
    /// finishes what it has, then the sidecars do the same, and only then do processes get
    /// SIGTERM (apps drain on it) — SIGKILL for any still running after the grace period.
    pub fn stop_all(&mut self) {
        let envoys: Vec<(bool, Admin)> = self
            .procs
            .iter()
            .filter(|p| p.child.is_some())
            .filter_map(|p| match p.spec.ready {
                Ready::Envoy(admin) => Some((p.spec.name == GATEWAY, admin)),
                Ready::Healthz(_) | Ready::Prometheus(_) | Ready::Zipkin(_) => None,
            })
            .collect();
        for gateway_first in [true, false] {
            let stage: Vec<Admin> = envoys
                .iter()
                .filter(|(g, _)| *g == gateway_first)
                .map(|(_, a)| *a)
                .collect();
            for admin in &stage {
                let _ = admin.drain_listeners();
            }
            let deadline = Instant::now()
                + if gateway_first {
                    DRAIN_GATEWAY
                } else {
                    DRAIN_SIDECARS
                };
            while Instant::now() < deadline
                && stage
                    .iter()
                    .any(|a| a.active_requests().is_ok_and(|n| n > 0))
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.terminate_all();
    }

    fn terminate_all(&mut self) {
        for p in &mut self.procs {
            if let Some(child) = &p.child {
                let _ = super::signal::terminate(child.id() as i32);
            }
        }
        let deadline = Instant::now() + GRACE;
        for p in &mut self.procs {
            if let Some(mut child) = p.child.take() {
                while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.state.clear_run();
    }

    fn write_pids(&self) -> Result<()> {
        let pids: BTreeMap<String, u32> = self
            .procs
            .iter()
            .filter_map(|p| Some((p.spec.name.clone(), p.child.as_ref()?.id())))
            .collect();
        self.state.write_pids(&pids)?;
        let restarts: BTreeMap<String, u32> = self
            .procs
            .iter()
            .map(|p| (p.spec.name.clone(), p.total_restarts))
            .collect();
        self.state.write_restarts(&restarts)
    }
}

fn ready_count(ready: &[bool]) -> usize {
    ready.iter().filter(|r| **r).count()
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
