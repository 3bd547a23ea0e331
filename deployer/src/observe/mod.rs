//! What a running mesh shows, wherever it runs: `verify` (every ordered pair called through the
//! gateway, tags checked), `stats` (every sidecar's meshtally counters as matrices) and `top`
//! (the golden signals per edge over a window). They read the mesh through the traits below, which the local state dir
//! (`crate::local::observed`) and a cluster through kubectl (`crate::cluster::sidecars`)
//! implement, so the checks and the numbers shown are computed here once.

pub(crate) mod edges;
pub(crate) mod exposition;
pub(crate) mod judge;
pub(crate) mod promql;
pub(crate) mod quantile;
pub(crate) mod signals;
pub(crate) mod significance;
pub(crate) mod stats;
pub(crate) mod tap;
pub(crate) mod top;
pub(crate) mod trace;
pub(crate) mod verify;

use anyhow::Result;

pub(crate) use verify::Gateway;

/// What every meshtally metric name starts with: the stats filter `top` reads through.
pub(crate) const METRIC_PREFIX: &str = "meshtally_";

/// A mesh that can be called through its gateway.
pub(crate) trait Reachable {
    /// Where the gateway answers, for as long as `self` lives (a port-forward, say).
    fn gateway(&self) -> Result<Gateway>;
    /// The services, in the order the matrix shows them.
    fn services(&self) -> Result<Vec<String>>;
}

/// A mesh whose sidecars can be read.
pub(crate) trait Counted {
    /// Every sidecar's `meshtally_requests_total` counters, as (Envoy stat name, value); the
    /// same labels from several sidecars are summed by [`stats::merge`].
    fn counters(&self) -> Result<Vec<(String, u64)>>;
    /// Every proxy's meshtally metrics in Prometheus's text format (`/stats/prometheus`,
    /// labels extracted), each read on its own, so one that cannot be read leaves the others
    /// (the dashboard marks it and draws the rest). Names stay the same between reads, so a
    /// sidecar's restart is seen as a counter reset.
    fn proxies(&self) -> Result<Vec<ProxyRead>>;

    /// Every proxy's exposition, as (proxy name, text); the first that cannot be read fails
    /// the whole read (`top` shows all of the mesh or says why not).
    fn expositions(&self) -> Result<Vec<(String, String)>> {
        self.proxies()?
            .into_iter()
            .map(|p| Ok((p.proxy, p.exposition?)))
            .collect()
    }
}

/// One proxy's read: its name (a local sidecar's, a pod's), the service it fronts (`None` for
/// the gateway) and its exposition.
pub(crate) struct ProxyRead {
    pub proxy: String,
    pub service: Option<String>,
    pub exposition: Result<String>,
}

pub(crate) use meshtally_envoy::admin::parse_envoy_stats;
