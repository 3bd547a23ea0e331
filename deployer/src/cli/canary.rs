//! The flags of `canary`: the service and its versions, the steps and how each is judged, the
//! load it may send, and the mesh it works on (the same [`TargetArgs`] as `shift`).

use clap::Args;

use super::observe::parse_window;
use super::TargetArgs;

#[derive(Debug, Args)]
pub struct CanaryArgs {
    /// The service whose new version takes traffic step by step.
    #[arg(value_name = "SERVICE")]
    pub service: String,

    /// The new version (the canary). Required unless --abort.
    #[arg(long, value_name = "VERSION", required_unless_present = "abort")]
    pub to: Option<String>,

    /// The version it is judged against and that a rollback returns every call to [default:
    /// the service's one other version]
    #[arg(long, value_name = "VERSION")]
    pub from: Option<String>,

    /// The canary's share of the calls at each step, in percent, increasing; the last is 100
    /// (the promotion, which is not judged: no baseline is left to compare with).
    #[arg(long, value_name = "PERCENT,…", default_value = "5,25,50,100")]
    pub steps: String,

    /// How often a step's calls are read; a step lasts until it has a verdict (`500ms`, `30s`).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_window)]
    pub interval: std::time::Duration,

    /// Calls to the canary a step needs before it is judged; until then it is inconclusive.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub min_requests: u64,

    /// Calls to the canary from one caller before that caller's calls are judged on their own.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub min_caller_requests: u64,

    /// The largest rise of the error rate (5xx or no answer) over the baseline's that passes,
    /// in percent; a larger rise fails only when the test finds it significant.
    #[arg(long, value_name = "PERCENT", default_value = "1%")]
    pub max_error_increase: String,

    /// The largest rise of p99 over the baseline's that passes (`50ms`).
    #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = parse_window)]
    pub max_p99_increase: std::time::Duration,

    /// The confidence level of the error tests, in percent.
    #[arg(long, value_name = "PERCENT", default_value = "99%")]
    pub confidence: String,

    /// How long a step may stay inconclusive for want of calls before the canary stops, left
    /// at its last confirmed step (never rolled back for lack of data) [default: 10 intervals, at
    /// least 1m]
    #[arg(long, value_name = "DURATION", value_parser = parse_window)]
    pub max_wait: Option<std::time::Duration>,

    /// Send this many calls per second (at most 1000) through the gateway while the canary
    /// runs, from every other service to SERVICE (`/CALLER/call/SERVICE`) and straight to it:
    /// loopback load for a mesh without traffic of its own.
    #[arg(long, value_name = "RPS")]
    pub load: Option<u32>,

    /// Judge on the meshtally series of this Prometheus server (`http://HOST:PORT`, its HTTP
    /// API) instead of reading every sidecar: a cluster's Prometheus that scrapes the sidecars
    /// (`render`'s monitoring objects), or `up --prometheus`'s.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,

    /// A smoke test before the first step: `sh -c CMD`, with CANARY_SERVICE, CANARY_BASELINE,
    /// CANARY_VERSION and (on the local mesh) CANARY_GATEWAY (`http://127.0.0.1:PORT`) set. If
    /// it fails, nothing moves (exit 2).
    #[arg(long, value_name = "CMD")]
    pub pre: Option<String>,

    /// Wait for Enter on the terminal before the last step to 100 % (Ctrl-C rolls back).
    #[arg(long)]
    pub confirm: bool,

    /// End the canary in progress on SERVICE (the running `deployer canary` is stopped) and
    /// return every call to the baseline.
    #[arg(long)]
    pub abort: bool,

    /// Print the whole report as JSON at the end: {service, baseline, canary, outcome,
    /// steps: [{percent, weights, verdict, evidence, …}], final_weights, …}.
    #[arg(long)]
    pub json: bool,

    /// On a cluster: the API the mesh was applied in [default: the mesh file's, else istio]
    #[arg(long, value_enum, value_name = "API")]
    pub api: Option<meshtally_mesh::model::Api>,

    #[command(flatten)]
    pub target: TargetArgs,
}
