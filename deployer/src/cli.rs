//! The command line: clap structures only. Each subcommand turns its flags into a checked plan
//! (see `commands`) before anything runs. [`MeshArgs`] is shared, so later subcommands that
//! need the mesh (`up`, `apply`, …) flatten the same flags and read the same mesh file.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::model::{FailStrategy, Mesh, MeshInput, MtlsMode, ServiceChoice};

#[derive(Debug, Parser)]
#[command(
    name = "deployer",
    version = env!("MESHTALLY_LONG_VERSION"),
    about = "The meshtally demo mesh: N services calling each other through Istio, with mTLS, \
             per-service authorization and the meshtally filter - rendered for Kubernetes, or run \
             on this machine with real Envoy sidecars."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render the Kubernetes and Istio manifests, to stdout or to a folder.
    Render(RenderArgs),
    /// Run the mesh on this machine: one demo-service and one real Envoy sidecar (running the
    /// filter) per service, over mTLS, behind a gateway.
    Up(UpArgs),
    /// Stop the local mesh running in the state dir; nothing of it is left running.
    Down(StateArgs),
    /// Change the running local mesh without restarting a process: apply the traffic rules of
    /// the mesh file again (the one `up` read, or -f), or load a new filter module into every
    /// sidecar (--wasm). Each proxy gets the change as a new xDS config version.
    Reload(ReloadArgs),
    /// What runs in the state dir: every process with its pid, ports, URLs, health and
    /// restarts.
    Status(StatusArgs),
    /// Set a service's version weights, e.g. `shift service-a v1=50,v2=50`, without restarting
    /// anything: in every sidecar and the gateway of the local mesh (a new xDS config version,
    /// confirmed in each), or with --kubectl in the cluster's VirtualServices (patched in place).
    Shift(ShiftArgs),
    /// Call every ordered pair through the gateway and check the tags; prints an N×N matrix
    /// and exits non-zero on any failure.
    Verify(VerifyArgs),
    /// Read every sidecar's meshtally counters and print the call-count matrix.
    Stats(StatsArgs),
    /// The golden signals of every caller → callee edge over a window: requests per second,
    /// success rate, p50/p95/p99 latency and the mTLS share, with a summary per service.
    Top(TopArgs),
    /// Every caller → callee edge the callees logged, with the caller's identity as the callee
    /// saw it: the verified SPIFFE ID, or why there is none.
    Edges(EdgesArgs),
    /// Stream the requests crossing the mesh, one line each, as the callees log them
    /// (Ctrl-C stops).
    Tap(TapArgs),
    /// Serve a live map of the mesh on 127.0.0.1 (Kiali's graph without a cluster): services
    /// as nodes, calls as edges labelled with rps, success rate and p99, a lock on verified
    /// edges; refreshed every second.
    Dashboard(DashboardArgs),
    /// Print the dashboard's graph once, measured over a window, as dot, mermaid or JSON.
    Graph(GraphArgs),
    /// Render the mesh and apply it to the cluster kubectl points at (server-side apply, field
    /// manager `meshtally`), wait for every rollout and say how to reach the ingress gateway.
    Apply(ApplyArgs),
    /// Delete from the cluster what `apply` created: objects labelled
    /// app.kubernetes.io/managed-by=meshtally in the mesh's namespace, and the namespace itself
    /// when meshtally alone manages it.
    Delete(DeleteArgs),
    /// Pack the built filter module as a Wasm OCI image (Istio's compat layout) and push it,
    /// printing the digest-pinned url for --wasm-url; or, with --service-image, build the
    /// demo-service image and push it, printing its digest.
    Push(PushArgs),
    /// The supervisor of a detached `up` (started by `up --detach`).
    #[command(hide = true)]
    Supervise(StateArgs),
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Render(args) => commands::render::plan(args)?.run(),
            Command::Up(args) => commands::local::up(args),
            Command::Down(args) => commands::local::down(args),
            Command::Reload(args) => commands::local::reload(args),
            Command::Status(args) => commands::local::status(args),
            Command::Shift(args) => commands::shift::shift(args),
            Command::Verify(args) => commands::observe::verify(args),
            Command::Stats(args) => commands::observe::stats(args),
            Command::Top(args) => commands::observe::top(args),
            Command::Edges(args) => commands::observe::edges(args),
            Command::Tap(args) => commands::observe::tap(args),
            Command::Dashboard(args) => commands::dashboard::dashboard(args),
            Command::Graph(args) => commands::dashboard::graph(args),
            Command::Apply(args) => commands::cluster::apply(args),
            Command::Delete(args) => commands::cluster::delete(args),
            Command::Push(args) => commands::cluster::push(args),
            Command::Supervise(args) => commands::local::supervise(args),
        }
    }
}

#[derive(Debug, Args)]
pub struct StateArgs {
    /// Where the local mesh keeps its plan, configs, certificates, logs and pids.
    #[arg(long, value_name = "DIR", default_value = ".meshtally")]
    pub state_dir: PathBuf,
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
    pub state: StateArgs,

    /// Shift on the cluster kubectl points at instead: patch the VirtualServices that split
    /// traffic to the service. Takes the kubectl binary to use [default: kubectl on PATH]
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    pub kubectl: Option<Option<PathBuf>>,

    /// With --kubectl: the kubeconfig context to use.
    #[arg(long, value_name = "CTX", requires = "kubectl")]
    pub context: Option<String>,

    /// With --kubectl: the mesh's namespace [default: istio-demo]
    #[arg(long, value_name = "NS", requires = "kubectl")]
    pub namespace: Option<String>,

    /// With --kubectl: take the namespace from this mesh file.
    #[arg(short, long, value_name = "PATH", requires = "kubectl")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateArgs,

    /// Print JSON: {state_dir, supervisor_pid, processes: [{name, kind, pid, running, healthy,
    /// restarts, ports, urls}]}.
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
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("cluster").args(["gateway", "kubectl"]))]
pub struct VerifyArgs {
    #[command(flatten)]
    pub state: StateArgs,

    /// Verify a cluster's mesh through its ingress gateway (http://HOST[:PORT]) instead of
    /// the local one; the services are then taken from --services/--names/--file.
    #[arg(long, value_name = "URL")]
    pub gateway: Option<String>,

    /// Verify the cluster mesh kubectl points at: port-forward to
    /// istio-system/istio-ingressgateway for the checks, then stop the forward. Takes the
    /// kubectl binary to use [default: kubectl on PATH]
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    pub kubectl: Option<Option<PathBuf>>,

    /// With --kubectl: the kubeconfig context to use.
    #[arg(long, value_name = "CTX", requires = "kubectl")]
    pub context: Option<String>,

    /// With --gateway or --kubectl: number of services (service-a, service-b, …) [default: 3]
    #[arg(long, value_name = "N", requires = "cluster", conflicts_with = "names")]
    pub services: Option<u64>,

    /// With --gateway or --kubectl: the service names, comma-separated.
    #[arg(
        long,
        value_name = "A,B,…",
        value_delimiter = ',',
        requires = "cluster"
    )]
    pub names: Option<Vec<String>>,

    /// With --gateway or --kubectl: take the services from this mesh file.
    #[arg(short, long, value_name = "PATH", requires = "cluster")]
    pub file: Option<PathBuf>,

    /// Per-call timeout in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub timeout_ms: u64,

    /// Print the results as JSON instead of a matrix.
    #[arg(long)]
    pub json: bool,
}

/// Where `stats`, `top`, `edges` and `tap` read the sidecars: the local mesh of a state dir, or
/// a cluster's through kubectl.
#[derive(Debug, Args)]
pub struct SidecarArgs {
    #[command(flatten)]
    pub state: StateArgs,

    /// Read the cluster mesh kubectl points at: every running meshtally pod's sidecar, through
    /// `kubectl exec … -c istio-proxy -- pilot-agent request GET stats…` (`tap` and `edges`:
    /// `kubectl logs`, once `monitoring/access-log.yaml` from `render` is applied).
    /// Takes the kubectl binary to use [default: kubectl on PATH]
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    pub kubectl: Option<Option<PathBuf>>,

    /// With --kubectl: the kubeconfig context to use.
    #[arg(long, value_name = "CTX", requires = "kubectl")]
    pub context: Option<String>,

    /// With --kubectl: the mesh's namespace [default: istio-demo]
    #[arg(long, value_name = "NS", requires = "kubectl")]
    pub namespace: Option<String>,

    /// With --kubectl: take the namespace from this mesh file.
    #[arg(short, long, value_name = "PATH", requires = "kubectl")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub from: SidecarArgs,

    /// Print a JSON array of {source, destination, destination_version, direction, response_code_class, count}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub from: SidecarArgs,

    /// How long to count: every sidecar is read at the start and at the end (`500ms`, `10s`,
    /// `1m`).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_window)]
    pub window: std::time::Duration,

    /// Keep going, one window after the other, redrawn in place on a terminal.
    #[arg(long)]
    pub watch: bool,

    /// Print a JSON array with one row per edge: {source, destination, destination_version,
    /// requests, rps, success_rate, p50_ms, p95_ms, p99_ms, mtls_share} (with --watch, one
    /// array per line and window).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EdgesArgs {
    #[command(flatten)]
    pub from: SidecarArgs,

    /// Print a JSON array of {source, destination, identity, reason, requests}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TapArgs {
    #[command(flatten)]
    pub mesh: SidecarArgs,

    /// Only calls from this service (as the callee named the caller).
    #[arg(long, value_name = "SERVICE")]
    pub from: Option<String>,

    /// Only calls into this service.
    #[arg(long, value_name = "SERVICE")]
    pub to: Option<String>,

    /// Only this status code (503) or class (5xx).
    #[arg(long, value_name = "CODE")]
    pub status: Option<String>,

    /// One JSON object per line: {time, source, destination, version, method, path, status,
    /// latency_ms, verified}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub from: SidecarArgs,

    /// Port on 127.0.0.1 (0: one the OS picks; the url is printed).
    #[arg(long, value_name = "PORT", default_value_t = 8090)]
    pub port: u16,

    /// The window the rates, success rates and latencies are measured over (`2s`, `1m`).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_window)]
    pub window: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub from: SidecarArgs,

    /// Graphviz (`| dot -Tsvg`), a Mermaid flowchart, or the dashboard's `/api/graph` JSON.
    #[arg(long, value_enum, default_value = "dot")]
    pub format: crate::dashboard::export::Format,

    /// How long to count: every proxy is read at the start and at the end.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_window)]
    pub window: std::time::Duration,
}

/// `500ms`, `10s`, `2m`: a positive window of at most an hour.
fn parse_window(text: &str) -> Result<std::time::Duration, String> {
    let (digits, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s, 500ms or 1m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s or m")),
    };
    if !(0.05..=3600.0).contains(&seconds) {
        return Err(format!("{text:?}: the window must be between 50ms and 60m"));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

/// Which kubectl, talking to which cluster.
#[derive(Debug, Args)]
pub struct KubectlArgs {
    /// kubectl binary [default: kubectl on PATH]
    #[arg(long, value_name = "PATH")]
    pub kubectl: Option<PathBuf>,

    /// kubeconfig context, passed to every kubectl call as --context [default: the current one]
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub mesh: MeshArgs,

    #[command(flatten)]
    pub cluster: KubectlArgs,

    /// Print the documents that would be applied (exactly what `deployer render` prints with
    /// the same flags) and touch nothing: kubectl is not run.
    #[arg(long)]
    pub dry_run: bool,

    /// Seconds to wait for the namespace and all rollouts together.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,

    /// Take back fields another field manager has since changed (server-side apply's
    /// --force-conflicts); without it such a conflict stops the apply and is reported.
    #[arg(long)]
    pub force_conflicts: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Namespace the mesh was applied to [default: istio-demo]
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,

    /// Take the namespace from this mesh file (the one given to `apply`).
    #[arg(short, long, value_name = "PATH")]
    pub file: Option<PathBuf>,

    #[command(flatten)]
    pub cluster: KubectlArgs,

    /// Print the kubectl commands delete would run and run none.
    #[arg(long)]
    pub dry_run: bool,

    /// Seconds each delete may wait for its objects (and the workloads' pods) to be gone.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["image", "service_image"])))]
pub struct PushArgs {
    /// Push the filter to REGISTRY/REPO:TAG, e.g. localhost:5001/meshtally/filter:dev
    #[arg(long, value_name = "REGISTRY/REPO:TAG")]
    pub image: Option<String>,

    /// Built filter module [default: target/wasm32-wasip1/release/meshtally_filter.wasm]
    #[arg(long, value_name = "PATH", conflicts_with = "service_image")]
    pub wasm: Option<PathBuf>,

    /// Build the demo-service image (static binary, non-root, no Docker) and push it to
    /// REGISTRY/REPO:TAG, e.g. localhost:5001/meshtally/demo-service:0.1.0
    #[arg(long, value_name = "REGISTRY/REPO:TAG", conflicts_with = "image")]
    pub service_image: Option<String>,

    /// A static demo-service binary to pack [default: the checkout's build for
    /// x86_64-unknown-linux-musl, from `cargo build --release -p demo-service --target
    /// x86_64-unknown-linux-musl`]
    #[arg(long, value_name = "PATH", requires = "service_image")]
    pub service_bin: Option<PathBuf>,

    /// Talk plain HTTP to the registry (a local registry without TLS).
    #[arg(long)]
    pub insecure: bool,

    /// The registry as the cluster reaches it, when that differs from where this machine
    /// pushes (kind's local registry: push to localhost:5001, pods pull from
    /// kind-registry:5000). Changes only the printed --wasm-url or --image.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub pull_registry: Option<String>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub mesh: MeshArgs,

    /// Write one file per concern into DIR (with kustomization.yaml, for `kubectl apply -k
    /// DIR`) instead of one YAML stream to stdout. DIR is replaced as a whole, atomically;
    /// an existing DIR must be empty or a previous render.
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

/// Which services, on which ports, in which namespace: what every renderer of the mesh needs,
/// `up` included. No clap defaults: a flag given overrides the file, and the defaults (shown in
/// the help) apply last, in `Mesh::from_input`.
#[derive(Debug, Args)]
pub struct MeshShapeArgs {
    /// Mesh file (YAML) with any of: services (a count, or a list of names or {name, port}),
    /// names, namespace, base_port, replicas, image, wasm_url, wasm_sha256, wasm_file (relative
    /// to the file). Unknown fields are refused. Flags override its fields.
    #[arg(short, long, value_name = "PATH")]
    pub file: Option<PathBuf>,

    /// Number of services, named service-a … service-z, then service-aa, service-ab, …
    /// (at most 1000) [default: 3]
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "names",
        allow_negative_numbers = true
    )]
    pub services: Option<u64>,

    /// Service names instead of generated ones, comma-separated (DNS-1035 labels).
    #[arg(long, value_name = "A,B,…", value_delimiter = ',')]
    pub names: Option<Vec<String>>,

    /// Namespace for everything; created with sidecar injection on [default: istio-demo]
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,

    /// Port of the first service; service i listens on BASE + i. Ports 15000-15090 belong to
    /// the Istio sidecar and are refused [default: 8000]
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub base_port: Option<u64>,

    /// mTLS between sidecars (Istio's PeerAuthentication mode). strict: plain HTTP to a
    /// sidecar is refused; permissive: it is accepted from outside the mesh [default: strict]
    #[arg(long, value_enum, value_name = "MODE")]
    pub mtls: Option<MtlsMode>,

    /// The WasmPlugin's failStrategy. fail-open: a module or plugin config that cannot load is
    /// skipped and traffic flows untagged; fail-close: all traffic is denied, as Istio does.
    /// Unset, `render` writes FAIL_OPEN, and `up` refuses to start a mesh whose filter cannot
    /// load. Envoy's failure_policy for the filter follows it.
    #[arg(long, value_enum, value_name = "STRATEGY")]
    pub fail_strategy: Option<FailStrategy>,
}

/// The mesh as a cluster gets it: its shape, plus what only Kubernetes uses (pods per service,
/// the demo image, how the filter module is shipped). `up` takes only the shape, so these
/// flags are refused there rather than silently ignored.
#[derive(Debug, Args)]
pub struct MeshArgs {
    #[command(flatten)]
    pub shape: MeshShapeArgs,

    /// Pods per service [default: 2]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub replicas: Option<u64>,

    /// Demo service image, as `deployer push --service-image` pushed it
    /// [default: localhost:5001/meshtally/demo-service:<deployer's version>]
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,

    /// Published filter module, oci://… or https://…; an oci://…@sha256:<hex> url carries its
    /// digest. Without it, the module from --wasm-file is shipped in a ConfigMap.
    #[arg(long, value_name = "URL")]
    pub wasm_url: Option<String>,

    /// Digest Istio checks the --wasm-url download against (64 lowercase hex digits): for
    /// oci:// the image's manifest digest (what `deployer push` prints), for https:// the
    /// module's sha256.
    #[arg(long, value_name = "HEX", requires = "wasm_url")]
    pub wasm_sha256: Option<String>,

    /// Built filter module to ship in the `meshtally-filter` ConfigMap when there is no
    /// --wasm-url (at most 1 MiB; `make wasm` builds it)
    /// [default: target/wasm32-wasip1/release/meshtally_filter.wasm]
    #[arg(long, value_name = "PATH", conflicts_with = "wasm_url")]
    pub wasm_file: Option<PathBuf>,
}

impl MeshShapeArgs {
    /// The flags as a mesh input, before the file is merged in.
    fn flags(&self) -> MeshInput {
        MeshInput {
            services: ServiceChoice::from_flags(self.services, self.names.as_deref()),
            namespace: self.namespace.clone(),
            base_port: self.base_port,
            mtls: self.mtls,
            fail_strategy: self.fail_strategy,
            ..MeshInput::default()
        }
    }

    /// Reads the mesh file if any, merges the flags over it, and checks the result.
    pub fn mesh(&self) -> anyhow::Result<Mesh> {
        merged(self.flags(), self.file.as_deref())
    }
}

impl MeshArgs {
    /// The flags as a mesh input, before the file is merged in.
    fn flags(&self) -> MeshInput {
        MeshInput {
            replicas: self.replicas,
            image: self.image.clone(),
            wasm_url: self.wasm_url.clone(),
            wasm_sha256: self.wasm_sha256.clone(),
            wasm_file: self.wasm_file.clone(),
            ..self.shape.flags()
        }
    }

    /// Reads the mesh file if any, merges the flags over it, and checks the result.
    pub fn mesh(&self) -> anyhow::Result<Mesh> {
        let mut input = self.flags().over(read_file(self.shape.file.as_deref())?);
        if input.wasm_url.is_none() && input.wasm_file.is_none() {
            // The built module wherever `deployer` finds it (install prefix, its own build,
            // the checkout around the current folder); else the model's workspace default.
            input.wasm_file = crate::locate::Places::here().find_module();
        }
        Mesh::from_input(input).context("invalid mesh")
    }
}

fn read_file(file: Option<&std::path::Path>) -> anyhow::Result<MeshInput> {
    Ok(match file {
        Some(path) => MeshInput::from_file(path)?,
        None => MeshInput::default(),
    })
}

/// A mesh from flags over a mesh file, checked.
pub(crate) fn merged(flags: MeshInput, file: Option<&std::path::Path>) -> anyhow::Result<Mesh> {
    Mesh::from_input(flags.over(read_file(file)?)).context("invalid mesh")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn windows() {
        assert_eq!(parse_window("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_window("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_window("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_window("2"), Ok(Duration::from_secs(2)));
        for bad in ["", "10x", "s", "10ms", "2h", "61m", "-1s"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prometheus_port_is_optional() {
        let port = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Up(up) => up.prometheus,
            other => panic!("{other:?}"),
        };
        assert_eq!(port(&["deployer", "up"]), None);
        assert_eq!(port(&["deployer", "up", "--prometheus"]), Some(9090));
        assert_eq!(port(&["deployer", "up", "--prometheus=9191"]), Some(9191));
        // `--prometheus 9191` would read 9191 as another argument: `=` is required.
        assert!(Cli::try_parse_from(["deployer", "up", "--prometheus", "9191"]).is_err());
    }
}
