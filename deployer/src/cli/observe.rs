//! The flags of the commands that read a running mesh, local or on a cluster: `verify`,
//! `stats`, `top`, `edges`, `tap`, `dashboard`, `graph` (each flattens [`TargetArgs`]), and the
//! window they share.

use clap::Args;

use super::TargetArgs;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Verify a cluster's mesh through its ingress gateway (http://HOST[:PORT]) instead of
    /// the local one; the services are then taken from --services/--names/--file.
    #[arg(long, value_name = "URL", conflicts_with = "on_cluster")]
    pub gateway: Option<String>,

    /// On a cluster: number of services (service-a, service-b, …) [default: 3]
    #[arg(long, value_name = "N", conflicts_with = "names")]
    pub services: Option<u64>,

    /// On a cluster: the service names, comma-separated.
    #[arg(long, value_name = "A,B,…", value_delimiter = ',')]
    pub names: Option<Vec<String>>,

    /// Per-call timeout in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub timeout_ms: u64,

    /// Print the results as JSON instead of a matrix.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub from: TargetArgs,

    /// Print a JSON array of {source, destination, destination_version, direction, response_code_class, count}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub from: TargetArgs,

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
    pub from: TargetArgs,

    /// Print a JSON array of {source, destination, identity, reason, requests}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TapArgs {
    #[command(flatten)]
    pub mesh: TargetArgs,

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
pub struct TraceArgs {
    /// Show this one trace (its id, 32 or 16 hex digits) instead of a list.
    #[arg(value_name = "ID")]
    pub id: Option<String>,

    #[command(flatten)]
    pub state: super::StateArgs,

    /// A cluster's Zipkin API, port-forwarded (`kubectl -n istio-system port-forward
    /// svc/zipkin 9411`, then http://127.0.0.1:9411) [default: the local mesh's, from `up
    /// --tracing`]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// With --url: the mesh's namespace (Zipkin names services <service>.<namespace>)
    /// [default: istio-demo]
    #[arg(long, value_name = "NS", requires = "url")]
    pub namespace: Option<String>,

    /// Only traces through this service.
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,

    /// How many traces, newest first.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub last: usize,

    /// Only traces with a span at least this long (`100ms`, `1s`).
    #[arg(long, value_name = "DURATION", value_parser = parse_window)]
    pub min_duration: Option<std::time::Duration>,

    /// Only traces with a call of this status code (503) or class (5xx).
    #[arg(long, value_name = "CODE")]
    pub status: Option<String>,

    /// Print JSON: an array of {trace_id, entry, method, url, status, duration_ms, start_us,
    /// spans, calls: [{depth, source, destination, version, status, duration_ms, mtls,
    /// verified_caller, span_id}]} (one object for an ID).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub from: TargetArgs,

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
    pub from: TargetArgs,

    /// Graphviz (`| dot -Tsvg`), a Mermaid flowchart, or the dashboard's `/api/graph` JSON.
    #[arg(long, value_enum, default_value = "dot")]
    pub format: crate::dashboard::export::Format,

    /// How long to count: every proxy is read at the start and at the end.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_window)]
    pub window: std::time::Duration,
}

/// `500ms`, `10s`, `2m`: a positive window of at most an hour.
pub(crate) fn parse_window(text: &str) -> Result<std::time::Duration, String> {
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
