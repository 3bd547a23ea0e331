//! The mesh a canary works on, local or on a cluster, behind one trait: its versions, `shift`'s
//! one engine for the weights (`local::live::shift`, confirmed in every proxy; `cluster::shift`
//! or `cluster::shift_routes` on a cluster), the sidecars' counters as `top` reads them, the
//! lock that refuses a second canary on the same service, and the loopback load `--load` sends
//! through the gateway.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use crate::cli::TargetArgs;
use crate::cluster::kubectl::Kubectl;
use crate::cluster::sidecars::{ClusterGateway, ClusterSidecars};
use crate::cluster::{shift as vs_shift, shift_routes};
use crate::commands::target::{services, Target};
use crate::local::live;
use crate::local::observed::LocalReader;
use crate::local::state::StateDir;
use crate::observe::signals::Snapshot;
use crate::observe::{Counted, Gateway, Reachable};
use meshtally_mesh::model::Api;

/// What a canary needs of a mesh.
pub(crate) trait CanaryMesh {
    /// `local STATE_DIR` or `cluster NAMESPACE`, for the report.
    fn name(&self) -> String;
    /// The service's versions and their weights now (0 for a version without one).
    fn versions(&self, service: &str) -> Result<Vec<(String, u32)>>;
    /// Sets the weights through `shift`'s engine; says what was published and confirmed.
    fn shift(&self, service: &str, weights: &[(String, u32)]) -> Result<String>;
    /// One read of every sidecar's meshtally metrics.
    fn read(&self) -> Result<Snapshot>;
    /// How long after a confirmed publication the counters hold only new calls: one stats
    /// flush of the sidecars.
    fn settle(&self) -> Duration;
    /// Refuses when a canary already runs on the service; held while this one runs.
    fn lock(&self, service: &str, baseline: &str, canary: &str) -> Result<Lock>;
    /// The baseline and canary the canary in progress on the service runs, if any.
    fn held(&self, service: &str) -> Option<(String, String)>;
    /// `--abort`: stops the canary running on the service, if one does; its pid.
    fn stop_running(&self, service: &str) -> Result<Option<u32>>;
    /// The gateway to send `--load` through, and the mesh's services.
    fn gateway(&self) -> Result<LoadTarget>;
    /// The local mesh's gateway URL, for `--pre`'s smoke test; `None` on a cluster.
    fn local_gateway(&self) -> Option<String> {
        None
    }
    /// How to retire the baseline after a promotion.
    fn retire_hint(&self, service: &str, baseline: &str) -> String;
}

/// Where `--load` sends its calls: the gateway, the mesh's services, and what keeps the
/// gateway reachable while the load runs (a cluster's port-forward).
pub(crate) struct LoadTarget {
    gateway: Gateway,
    services: Vec<String>,
    keep: Option<Box<dyn Reachable>>,
}

/// Opens the mesh the flags name; with a Prometheus URL, its counts are read there.
pub(crate) fn open(
    target: TargetArgs,
    api: Option<Api>,
    prometheus: Option<String>,
) -> Result<Box<dyn CanaryMesh>> {
    let mesh = open_target(target, api)?;
    Ok(match prometheus {
        Some(url) => {
            if !url.starts_with("http://") {
                bail!("--prometheus {url:?}: give its http:// URL, e.g. http://127.0.0.1:9090");
            }
            crate::observe::promql::read(&url)?;
            Box::new(Prometheus { mesh, url })
        }
        None => mesh,
    })
}

fn open_target(target: TargetArgs, api: Option<Api>) -> Result<Box<dyn CanaryMesh>> {
    match Target::resolve(target)? {
        Target::Local(state) => {
            if api.is_some() {
                bail!("--api names how a cluster's mesh was applied: add --cluster (or --context CTX), or leave it out for the local mesh");
            }
            LocalReader::open(&state)?;
            Ok(Box::new(Local { state }))
        }
        Target::Cluster {
            kubectl,
            namespace,
            file,
        } => {
            let api = match api {
                Some(api) => api,
                None => crate::meshfile::read(file.as_deref())?
                    .api
                    .unwrap_or_default(),
            };
            let services = services(None, None, file.as_deref())?;
            Ok(Box::new(Cluster {
                kubectl,
                namespace,
                api,
                services,
            }))
        }
    }
}

/// A mesh whose counts are read from a Prometheus server; everything else is the mesh's.
struct Prometheus {
    mesh: Box<dyn CanaryMesh>,
    url: String,
}

impl CanaryMesh for Prometheus {
    fn name(&self) -> String {
        format!(
            "{}, counted by Prometheus at {}",
            self.mesh.name(),
            self.url
        )
    }
    fn versions(&self, service: &str) -> Result<Vec<(String, u32)>> {
        self.mesh.versions(service)
    }
    fn shift(&self, service: &str, weights: &[(String, u32)]) -> Result<String> {
        self.mesh.shift(service, weights)
    }
    fn read(&self) -> Result<Snapshot> {
        crate::observe::promql::read(&self.url)
    }
    fn settle(&self) -> Duration {
        // A scrape after the sidecars' flush: `up --prometheus` scrapes every second.
        self.mesh.settle() + Duration::from_secs(2)
    }
    fn lock(&self, service: &str, baseline: &str, canary: &str) -> Result<Lock> {
        self.mesh.lock(service, baseline, canary)
    }
    fn held(&self, service: &str) -> Option<(String, String)> {
        self.mesh.held(service)
    }
    fn stop_running(&self, service: &str) -> Result<Option<u32>> {
        self.mesh.stop_running(service)
    }
    fn gateway(&self) -> Result<LoadTarget> {
        self.mesh.gateway()
    }
    fn local_gateway(&self) -> Option<String> {
        self.mesh.local_gateway()
    }
    fn retire_hint(&self, service: &str, baseline: &str) -> String {
        self.mesh.retire_hint(service, baseline)
    }
}

/// A canary's hold on its service; released on drop.
pub(crate) struct Lock {
    release: Option<Box<dyn FnOnce()>>,
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

/// The local mesh of a state dir.
struct Local {
    state: StateDir,
}

impl Local {
    fn lock_path(&self, service: &str) -> std::path::PathBuf {
        self.state.root.join(format!("canary-{service}.lock"))
    }
}

impl CanaryMesh for Local {
    fn name(&self) -> String {
        format!("local {}", self.state.root.display())
    }

    fn versions(&self, service: &str) -> Result<Vec<(String, u32)>> {
        let layout = self.state.read_layout()?;
        let Some(s) = layout.service(service) else {
            let names: Vec<&str> = layout.services.iter().map(|s| s.name.as_str()).collect();
            bail!(
                "no service {service} in this mesh (its services: {})",
                names.join(", ")
            );
        };
        Ok(s.traffic
            .versions
            .iter()
            .map(|v| (v.name.clone(), v.weight.unwrap_or(0)))
            .collect())
    }

    fn shift(&self, service: &str, weights: &[(String, u32)]) -> Result<String> {
        let published = live::shift(&self.state, service, weights)?;
        let split: Vec<String> = weights.iter().map(|(v, w)| format!("{v}={w}")).collect();
        Ok(published.line(
            &format!("{service} {}", split.join(",")),
            &format!("{service} already runs {}", split.join(",")),
        ))
    }

    fn read(&self) -> Result<Snapshot> {
        let texts = LocalReader::open(&self.state)?.expositions()?;
        Ok(Snapshot::from_expositions(
            texts.iter().map(|(n, t)| (n.as_str(), t.as_str())),
        ))
    }

    fn settle(&self) -> Duration {
        // The local bootstrap flushes stats every 0.2 s.
        Duration::from_millis(300)
    }

    fn lock(&self, service: &str, baseline: &str, canary: &str) -> Result<Lock> {
        let path = self.lock_path(service);
        let record =
            serde_json::json!({"pid": std::process::id(), "baseline": baseline, "canary": canary});
        let mut file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let held = std::fs::read_to_string(&path).unwrap_or_default();
                let pid = serde_json::from_str::<serde_json::Value>(&held)
                    .ok()
                    .and_then(|v| v["pid"].as_i64())
                    .unwrap_or(0);
                if pid > 0 && crate::local::state::alive(pid as i32) {
                    bail!(
                        "a canary of {service} is already in progress (pid {pid}): wait for it, or end it with `{}`",
                        self.state.cmd(&format!("canary {service} --abort"))
                    );
                }
                // Its process is gone (killed): the lock is stale.
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing the stale {}", path.display()))?;
                return self.lock(service, baseline, canary);
            }
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        };
        use std::io::Write as _;
        file.write_all(record.to_string().as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Lock {
            release: Some(Box::new(move || {
                let _ = std::fs::remove_file(&path);
            })),
        })
    }

    fn held(&self, service: &str) -> Option<(String, String)> {
        let text = std::fs::read_to_string(self.lock_path(service)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some((
            v["baseline"].as_str()?.to_owned(),
            v["canary"].as_str()?.to_owned(),
        ))
    }

    fn stop_running(&self, service: &str) -> Result<Option<u32>> {
        let path = self.lock_path(service);
        let Ok(held) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let pid = serde_json::from_str::<serde_json::Value>(&held)
            .ok()
            .and_then(|v| v["pid"].as_i64())
            .unwrap_or(0) as i32;
        if pid <= 0 || !crate::local::state::alive(pid) {
            let _ = std::fs::remove_file(&path);
            return Ok(None);
        }
        if let Some(p) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
        }
        // It rolls back and removes its lock as it ends.
        let deadline = Instant::now() + Duration::from_secs(30);
        while path.exists() && crate::local::state::alive(pid) {
            if Instant::now() > deadline {
                bail!("the canary of {service} (pid {pid}) did not end within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Killed before it could roll back, its lock is left: the rollback that follows is
        // this command's.
        let _ = std::fs::remove_file(&path);
        Ok(Some(pid as u32))
    }

    fn gateway(&self) -> Result<LoadTarget> {
        let reader = LocalReader::open(&self.state)?;
        Ok(LoadTarget {
            gateway: reader.gateway()?,
            services: reader.services()?,
            keep: None,
        })
    }

    fn local_gateway(&self) -> Option<String> {
        let layout = self.state.read_layout().ok()?;
        Some(format!("http://127.0.0.1:{}", layout.gateway.port))
    }

    fn retire_hint(&self, service: &str, baseline: &str) -> String {
        format!(
            "{baseline} takes no calls now; remove it from {service}'s versions in the mesh file (and its weight), then restart the mesh (`{}`, then `up -f FILE`)",
            self.state.cmd("down")
        )
    }
}

/// A cluster's mesh through kubectl.
struct Cluster {
    kubectl: Kubectl,
    namespace: String,
    api: Api,
    services: Vec<String>,
}

impl Cluster {
    fn lock_name(service: &str) -> String {
        format!("meshtally-canary-{service}")
    }
}

impl CanaryMesh for Cluster {
    fn name(&self) -> String {
        format!("cluster namespace {}", self.namespace)
    }

    fn versions(&self, service: &str) -> Result<Vec<(String, u32)>> {
        let versions = match self.api {
            Api::Istio => vs_shift::weights(&self.kubectl, &self.namespace, service)?,
            Api::GatewayApi => shift_routes::versions(&self.kubectl, &self.namespace, service)?
                .into_iter()
                .map(|v| (v, 0))
                .collect(),
        };
        if versions.is_empty() {
            bail!(
                "no service {service} with versions in namespace {}: apply the mesh first (`deployer apply`)",
                self.namespace
            );
        }
        Ok(versions)
    }

    fn shift(&self, service: &str, weights: &[(String, u32)]) -> Result<String> {
        let (patched, kind) = match self.api {
            Api::Istio => (
                vs_shift::shift(&self.kubectl, &self.namespace, service, weights)?,
                "virtualservice",
            ),
            Api::GatewayApi => (
                shift_routes::shift(&self.kubectl, &self.namespace, service, weights)?,
                "httproute",
            ),
        };
        let names: Vec<String> = patched
            .iter()
            .map(|p| format!("{kind}/{}", p.name))
            .collect();
        Ok(if names.is_empty() {
            "the cluster already has these weights".to_owned()
        } else {
            format!(
                "applied by field manager {}: {}",
                shift_routes::FIELD_MANAGER,
                names.join(", ")
            )
        })
    }

    fn read(&self) -> Result<Snapshot> {
        let sidecars = ClusterSidecars::open(self.kubectl.clone(), self.namespace.clone())?;
        let texts = sidecars.expositions()?;
        Ok(Snapshot::from_expositions(
            texts.iter().map(|(n, t)| (n.as_str(), t.as_str())),
        ))
    }

    fn settle(&self) -> Duration {
        // Istio's sidecars flush stats every 5 s.
        Duration::from_secs(5)
    }

    fn lock(&self, service: &str, baseline: &str, canary: &str) -> Result<Lock> {
        let name = Self::lock_name(service);
        let created = self.kubectl.run(
            &[
                "create",
                "configmap",
                &name,
                "-n",
                &self.namespace,
                &format!("--from-literal=baseline={baseline}"),
                &format!("--from-literal=canary={canary}"),
                &format!("--from-literal=pid={}", std::process::id()),
            ],
            None,
        );
        if let Err(e) = created {
            if e.to_string().contains("AlreadyExists") || e.to_string().contains("already exists") {
                bail!(
                    "a canary of {service} is already in progress (configmap/{name} in {}): wait for it, or end it with `deployer canary {service} --abort --cluster`",
                    self.namespace
                );
            }
            return Err(e).context("creating the canary's lock");
        }
        let (kubectl, namespace) = (self.kubectl.clone(), self.namespace.clone());
        Ok(Lock {
            release: Some(Box::new(move || {
                let _ = kubectl.run(
                    &[
                        "delete",
                        "configmap",
                        &name,
                        "-n",
                        &namespace,
                        "--ignore-not-found",
                    ],
                    None,
                );
            })),
        })
    }

    fn held(&self, service: &str) -> Option<(String, String)> {
        let out = self
            .kubectl
            .run(
                &[
                    "get",
                    "configmap",
                    &Self::lock_name(service),
                    "-n",
                    &self.namespace,
                    "-o",
                    "json",
                ],
                None,
            )
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out).ok()?;
        Some((
            v["data"]["baseline"].as_str()?.to_owned(),
            v["data"]["canary"].as_str()?.to_owned(),
        ))
    }

    fn stop_running(&self, service: &str) -> Result<Option<u32>> {
        // The running canary may be on another machine: its lock goes, and the rollback that
        // follows sets the weights; a canary still running stops at its next step's shift.
        self.kubectl.run(
            &[
                "delete",
                "configmap",
                &Self::lock_name(service),
                "-n",
                &self.namespace,
                "--ignore-not-found",
            ],
            None,
        )?;
        Ok(None)
    }

    fn gateway(&self) -> Result<LoadTarget> {
        let forward = ClusterGateway::open(&self.kubectl, self.services.clone())?;
        let gateway = forward.gateway()?;
        Ok(LoadTarget {
            gateway,
            services: self.services.clone(),
            keep: Some(Box::new(forward)),
        })
    }

    fn retire_hint(&self, service: &str, baseline: &str) -> String {
        format!(
            "{baseline} takes no calls now; remove it from {service}'s versions in the mesh file, then `deployer apply` and delete its Deployment"
        )
    }
}

/// `--load`: calls at a steady rate through the gateway, from every other service to the
/// canary's service (`/CALLER/call/SERVICE`) and straight to it, until stopped.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// Keeps a cluster's port-forward open while the load runs.
    _forward: Option<Box<dyn Reachable>>,
}

/// Calls in flight at most: enough for a slow version at the highest rate.
const LOAD_WORKERS: u32 = 32;

impl Load {
    pub(crate) fn start(mesh: &dyn CanaryMesh, service: &str, rps: u32) -> Result<Load> {
        let LoadTarget {
            gateway,
            services,
            keep: forward,
        } = mesh.gateway()?;
        let mut paths: Vec<String> = services
            .iter()
            .filter(|s| *s != service)
            .map(|caller| format!("/{caller}/call/{service}"))
            .collect();
        paths.push(format!("/{service}/info"));
        let base = format!("http://{}:{}", gateway.host, gateway.port);
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(0));
        let begun = Instant::now();
        let period = Duration::from_secs_f64(1.0 / rps as f64);
        let workers = (0..LOAD_WORKERS.min(rps.max(4)))
            .map(|_| {
                let (stop, sent, next) = (stop.clone(), sent.clone(), next.clone());
                let (paths, base) = (paths.clone(), base.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let slot = next.fetch_add(1, Ordering::SeqCst);
                        let at = begun + period * (slot as u32);
                        let now = Instant::now();
                        if at > now {
                            std::thread::sleep(at - now);
                        }
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let path = &paths[slot as usize % paths.len()];
                        let _ = meshtally_envoy::http::get(
                            &format!("{base}{path}"),
                            Duration::from_secs(5),
                        );
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        Ok(Load {
            stop,
            sent,
            workers,
            _forward: forward,
        })
    }

    /// Stops the load; how many calls it sent.
    pub(crate) fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers {
            let _ = w.join();
        }
        self.sent.load(Ordering::SeqCst)
    }
}
