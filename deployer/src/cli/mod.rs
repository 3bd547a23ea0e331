//! The command line: clap structures only, dispatched by `commands`. Each subcommand turns its
//! flags into a checked plan (see `commands`) before anything runs. [`MeshArgs`] is shared, so later subcommands that
//! need the mesh (`up`, `apply`, …) flatten the same flags and read the same mesh file.

mod canary;
mod cluster;
mod local;
mod mesh;
mod observe;
mod target;

use clap::{Parser, Subcommand};

pub use canary::CanaryArgs;
pub use cluster::{ApplyArgs, DeleteArgs, PushArgs, RenderArgs};
pub use local::{ReloadArgs, ShiftArgs, StateArgs, StatusArgs, UpArgs};
pub use mesh::{MeshArgs, MeshShapeArgs};
pub use observe::{
    DashboardArgs, EdgesArgs, GraphArgs, StatsArgs, TapArgs, TopArgs, TraceArgs, VerifyArgs,
};
pub use target::TargetArgs;

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
    /// confirmed in each), or with --cluster in the cluster's VirtualServices (patched in place).
    Shift(ShiftArgs),
    /// Move traffic to a new version step by step (`canary service-a --to v2`), judging each
    /// step on the sidecars' own counts: errors of the new version against the old by a
    /// significance test, overall and per caller, and p99 from the duration histogram. Passes
    /// go on to 100 %; a fail returns every call to the old version, confirmed in every proxy.
    /// Exit 0 promoted, 1 rolled back, 2 anything else (an error, or no verdict).
    Canary(CanaryArgs),
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
    /// Recent traces from the mesh's trace backend (`up --tracing`, or a cluster's Zipkin with
    /// --url) as call trees: who called whom, the version that answered, status, duration and
    /// whether a certificate proved the caller; `deployer trace ID` shows one.
    Trace(TraceArgs),
    /// Serve a live map of the mesh on 127.0.0.1 (Kiali's graph without a cluster): services
    /// as nodes, calls as edges labelled with rps, success rate and p99, a lock on verified
    /// edges; refreshed every second.
    Dashboard(DashboardArgs),
    /// Print the dashboard's graph once, measured over a window, as dot, mermaid or JSON.
    Graph(GraphArgs),
    /// Render the mesh and apply it to the cluster kubectl points at (server-side apply, field
    /// manager `meshtally`), wait for every rollout, prune what an earlier apply made that this
    /// render has not (by meshtally's label), and say how to reach the ingress gateway.
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let tracing = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Up(up) => up.tracing,
            _ => unreachable!(),
        };
        // Zipkin's own port, which Istio's addons use too.
        assert_eq!(
            tracing(&["deployer", "up", "--tracing"]),
            Some(meshtally_wire::trace::ZIPKIN_PORT)
        );
        assert_eq!(tracing(&["deployer", "up", "--tracing=19411"]), Some(19411));
    }

    #[test]
    fn a_cluster_is_chosen_explicitly_and_kubectl_only_names_the_binary() {
        let target = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Command::Stats(stats)) => Ok(stats.from),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.kind()),
        };
        assert!(!target(&["deployer", "stats"]).unwrap().on_cluster());
        assert!(target(&["deployer", "stats", "--cluster"])
            .unwrap()
            .on_cluster());
        let ctx = target(&["deployer", "stats", "--context", "kind-a"]).unwrap();
        assert!(ctx.on_cluster(), "--context implies --cluster");
        let bin = target(&["deployer", "stats", "--cluster", "--kubectl", "k"]).unwrap();
        assert_eq!(bin.kubectl.as_deref(), Some(std::path::Path::new("k")));
        // Alone, --kubectl would silently pick a mode: it needs --cluster or --context.
        assert_eq!(
            target(&["deployer", "stats", "--kubectl", "k"]).unwrap_err(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        // A bare --kubectl (the old mode switch) now wants its PATH.
        assert!(target(&["deployer", "stats", "--cluster", "--kubectl"]).is_err());
        for args in [
            &["deployer", "verify", "--gateway", "http://h", "--cluster"][..],
            &[
                "deployer",
                "verify",
                "--gateway",
                "http://h",
                "--context",
                "c",
            ][..],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
