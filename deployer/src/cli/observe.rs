//! The flags of the commands that read a running mesh, local or on a cluster: `verify`,
//! `stats`, `top`, `edges`, `tap`, `dashboard`, `graph`, and the window they share.

use std::path::PathBuf;

use clap::Args;

use super::StateArgs;

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

    #[command(flatten)]
    pub cluster: ClusterMeshArgs,
}

/// A mesh on the cluster kubectl points at, instead of the local one (`stats`, `top`, `edges`,
/// `tap`, `graph`, `dashboard`, `shift`).
#[derive(Debug, Args)]
pub struct ClusterMeshArgs {
    /// Work on the cluster mesh kubectl points at. Reads go to every running meshtally pod's
    /// sidecar, through `kubectl exec … -c istio-proxy -- pilot-agent request GET stats…`
    /// (`tap` and `edges`: `kubectl logs`, once `monitoring/access-log.yaml` from `render` is
    /// applied); `shift` patches the VirtualServices that split traffic to the service.
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
}
