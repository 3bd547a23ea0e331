//! What the local mesh runs: one [`ProcessSpec`] per app, sidecar, gateway and Prometheus, from
//! the plan, with how to start each and how to tell it is ready. The supervisor runs them.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use meshtally_wire::app::env;

use super::layout::{sidecar_name, Layout, GATEWAY};
use super::state::StateDir;
use meshtally_envoy::admin::Admin;
use meshtally_envoy::http;

#[derive(Debug, Clone)]
pub enum Ready {
    /// Envoy's admin `/ready` answers 200 (listeners bound, filter configured).
    Envoy(Admin),
    /// The app's `/healthz` answers 200.
    Healthz(u16),
    /// Prometheus's `/-/ready` answers 200.
    Prometheus(u16),
    /// Zipkin's `/health` answers 200.
    Zipkin(u16),
}

#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    pub ready: Ready,
    pub log: PathBuf,
}

impl ProcessSpec {
    pub(super) fn is_ready(&self) -> bool {
        match &self.ready {
            Ready::Envoy(admin) => admin.ready(),
            Ready::Healthz(port) => http::get(
                &format!("http://127.0.0.1:{port}/healthz"),
                Duration::from_millis(500),
            )
            .is_ok_and(|r| r.status == 200),
            Ready::Prometheus(port) => http::get(
                &format!("http://127.0.0.1:{port}/-/ready"),
                Duration::from_millis(500),
            )
            .is_ok_and(|r| r.status == 200),
            Ready::Zipkin(port) => http::get(
                &format!("http://127.0.0.1:{port}/health"),
                Duration::from_millis(500),
            )
            .is_ok_and(|r| r.status == 200),
        }
    }

    pub(super) fn spawn(&self) -> Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C in the terminal reaches the supervisor only,
            // which then stops the children in order.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.program.display()))
    }
}

/// Every process of a local mesh, in start order: apps first, then sidecars, then the gateway,
/// then Prometheus and Zipkin when asked for.
pub fn processes(layout: &Layout, state: &StateDir) -> Vec<ProcessSpec> {
    let envoy = |name: &str, admin: u16| ProcessSpec {
        name: name.to_owned(),
        program: layout.envoy.clone(),
        args: [
            "-c".into(),
            state.envoy_config(name).into_os_string(),
            // One worker: a sidecar serves one app, and every worker holds its own Wasm VM.
            "--concurrency".into(),
            "1".into(),
            "--disable-hot-restart".into(),
            "-l".into(),
            "warning".into(),
            // The filter's configure line names the module it runs (the VM id carries its
            // digest): a reload can be seen in every sidecar's log.
            "--component-log-level".into(),
            "wasm:info".into(),
            "--drain-time-s".into(),
            "2".into(),
            "--file-flush-interval-msec".into(),
            meshtally_envoy::bootstrap::ACCESS_LOG_FLUSH_MS
                .to_string()
                .into(),
        ]
        .into(),
        env: Vec::new(),
        ready: Ready::Envoy(Admin(admin)),
        log: state.log(name),
    };
    let mut specs = Vec::new();
    for s in &layout.services {
        for i in s.instances() {
            let mut env = vec![
                (env::SERVICE_NAME.into(), s.name.clone()),
                (env::BIND.into(), "127.0.0.1".into()),
                (env::PORT.into(), i.app_port.to_string()),
                (env::VERSION.into(), i.version.clone()),
                (env::PEERS.into(), layout.peers_env(s)),
                (env::EXTERNAL.into(), layout.external_env()),
                (
                    env::MESH_PROXY.into(),
                    format!("http://127.0.0.1:{}", i.outbound_port),
                ),
            ];
            // The version's misbehaviour (a failing share, one failing caller, a delay) as
            // the mesh file gave it; a layout saved before these knew only `fail_status`.
            match s.traffic.versions.iter().find(|v| v.name == i.version) {
                Some(v) => env.extend(v.app_env().into_iter().map(|(k, v)| (k.into(), v))),
                None => {
                    if let Some(status) = i.fail_status {
                        env.push((env::FAIL_STATUS.into(), status.to_string()));
                    }
                }
            }
            specs.push(ProcessSpec {
                name: i.name.clone(),
                program: layout.service_bin.clone(),
                args: Vec::new(),
                env,
                ready: Ready::Healthz(i.app_port),
                log: state.log(&i.name),
            });
        }
    }
    // The outside world: not in the mesh (no sidecar, no PEERS), started with the apps.
    for e in &layout.external {
        let name = e.server_name();
        specs.push(ProcessSpec {
            name: name.clone(),
            program: layout.service_bin.clone(),
            args: Vec::new(),
            env: vec![
                (env::SERVICE_NAME.into(), e.entry.name.clone()),
                (env::BIND.into(), "127.0.0.1".into()),
                (env::PORT.into(), e.server_port.to_string()),
                (env::VERSION.into(), "outside".into()),
            ],
            ready: Ready::Healthz(e.server_port),
            log: state.log(&name),
        });
        if let Some(t) = &e.tls {
            specs.push(envoy(&e.tls_name(), t.admin_port));
        }
    }
    for s in &layout.services {
        for i in s.instances() {
            specs.push(envoy(&sidecar_name(&i.name), i.admin_port));
        }
    }
    specs.push(envoy(GATEWAY, layout.gateway.admin_port));
    if let Some(p) = &layout.prometheus {
        specs.push(ProcessSpec {
            name: PROMETHEUS.to_owned(),
            program: p.bin.clone(),
            args: super::prometheus::args(&state.root, p.port),
            env: Vec::new(),
            ready: Ready::Prometheus(p.port),
            log: state.log(PROMETHEUS),
        });
    }
    if let Some(t) = &layout.tracing {
        specs.push(ProcessSpec {
            name: super::tracing::ZIPKIN.to_owned(),
            program: t.java.clone(),
            args: t.args(),
            env: t.env(),
            ready: Ready::Zipkin(t.port),
            log: state.log(super::tracing::ZIPKIN),
        });
    }
    // Each carries the mesh's marker: how `down` and `status` know it for this mesh's own.
    let root = state.root.to_string_lossy().into_owned();
    for spec in &mut specs {
        spec.env
            .push((super::state::MARKER.to_owned(), root.clone()));
    }
    specs
}

/// The local Prometheus's process name.
pub const PROMETHEUS: &str = "prometheus";
