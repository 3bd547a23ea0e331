//! The flags of the local mesh's commands: `up`, `down`, `reload`, `shift`, `status`.

use std::path::PathBuf;

use clap::Args;

use super::MeshShapeArgs;
use crate::local::state::{StateDir, DEFAULT};

#[derive(Debug, Args)]
pub struct StateArgs {
    /// Where the local mesh keeps its plan, configs, certificates, logs and pids [default:
    /// `up` makes .meshtally in the current folder; the other commands find the nearest
    /// .meshtally in the current folder or above it, as git finds .git]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl StateArgs {
    /// The state dir `up` makes: the flag's, else `.meshtally` in the current folder.
    pub fn for_up(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| DEFAULT.into())
    }

    /// The mesh every other command acts on: the flag's, else the nearest `.meshtally` that
    /// holds a mesh's plan, in the current folder or above it, else `.meshtally` here.
    pub fn find(&self) -> StateDir {
        match &self.state_dir {
            Some(dir) => StateDir::new(dir),
            None => StateDir::find_from_cwd(),
        }
    }
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub state: StateArgs,

    /// Filter module to load into every sidecar (copied into the state dir first, so it may be
    /// rebuilt at once). A mesh also reloads the module it was started with whenever that file
    /// is replaced, e.g. by `make wasm`.
    #[arg(long, value_name = "PATH")]
    pub wasm: Option<PathBuf>,

    /// Mesh file whose services' traffic rules (weights, matches, timeout, retries, fault,
    /// circuit breaker) to apply [default: the file `up` read; with --wasm alone, none]. A
    /// service or version added or removed cannot apply live: that is an error saying to
    /// restart.
    #[arg(short, long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ShiftArgs {
    /// The service whose traffic is split between its versions.
    #[arg(value_name = "SERVICE")]
    pub service: String,

    /// Weight per version, integers summing to 100, e.g. v1=90,v2=10. On the local mesh a
    /// version left out gets 0; versions at 0 get no traffic (header matches still reach them).
    #[arg(value_name = "VERSION=WEIGHT,…")]
    pub weights: String,

    #[command(flatten)]
    pub target: super::TargetArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateArgs,

    /// Print JSON: {state_dir, supervisor_pid, processes: [{name, kind, pid, running, stranger,
    /// healthy, restarts, ports, urls}], problems}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub mesh: MeshShapeArgs,

    /// Port of the gateway: `/<service>/…` is routed to that service with the prefix stripped.
    #[arg(long, value_name = "PORT", default_value_t = 8080)]
    pub gateway_port: u16,

    /// Return once everything is ready and keep the mesh running in the background;
    /// `deployer down` stops it.
    #[arg(long)]
    pub detach: bool,

    #[command(flatten)]
    pub state: StateArgs,

    /// Envoy binary [default: $ENVOY_BIN, then envoy on PATH, then <prefix>/lib/meshtally/envoy
    /// when installed, then the checkout's .venv from `make setup`]
    #[arg(long, value_name = "PATH")]
    pub envoy: Option<PathBuf>,

    /// Filter module [default: $MESHTALLY_WASM, then <prefix>/share/meshtally/meshtally_filter.wasm
    /// when installed, then the release build of the checkout (`make wasm`); never built here]
    #[arg(long, value_name = "PATH")]
    pub wasm: Option<PathBuf>,

    /// demo-service binary [default: the one next to this deployer executable, where `make
    /// install` and cargo put it]
    #[arg(long, value_name = "PATH")]
    pub service_bin: Option<PathBuf>,

    /// The WasmPlugin's pluginConfig (JSON) given to every sidecar's filter [default: {}]
    #[arg(long, value_name = "JSON")]
    pub plugin_config: Option<String>,

    /// Also run Prometheus (Debian's `prometheus` on PATH, or $PROMETHEUS_BIN) on
    /// 127.0.0.1:PORT, scraping every sidecar and the gateway [default port: 9090]
    #[arg(long, value_name = "PORT", num_args = 0..=1, require_equals = true, default_missing_value = "9090")]
    pub prometheus: Option<u16>,

    /// Also run a trace backend, the Zipkin server (its jar from `make setup`, or $ZIPKIN_JAR,
    /// run with Java 17+), on 127.0.0.1:PORT with its web UI; every sidecar and the gateway
    /// send it spans tagged with the caller, mTLS and the version that answered (`deployer
    /// trace` lists them). --sampling sets the share traced [default port: 9411]
    #[arg(long, value_name = "PORT", num_args = 0..=1, require_equals = true, default_missing_value = "9411")]
    pub tracing: Option<u16>,
}
