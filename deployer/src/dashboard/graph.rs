//! The mesh as the dashboard draws it and `deployer graph` prints it: nodes (each service, one
//! per version when it runs several, and the gateway) and edges (each caller → callee pair ever
//! observed), with the `top` figures of the last window on each edge and the colour they earn.
//! Everything the page shows is decided here, so the page is a plain client of `/api/graph`
//! and the export formats say the same thing.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::observe::signals::EdgeRow;

/// Below this success rate an edge is failing (red); below [`DEGRADED_BELOW`], degraded
/// (amber). Kiali's defaults: failure at 20 % errors, degraded at 0.1 %.
pub(crate) const FAILING_BELOW: f64 = 0.80;
pub(crate) const DEGRADED_BELOW: f64 = 0.999;

/// What the mesh looked like at one read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    /// The services the mesh runs, in the order they are drawn.
    pub services: Vec<String>,
    /// The gateway's name as callees see the caller, when the mesh has one.
    pub gateway: Option<String>,
    /// Proxies that could not be read this time (service names, or the gateway's).
    pub unreachable: BTreeSet<String>,
    /// `top`'s rows since the sidecars started (cumulative counts; the rate is not used).
    pub total: Vec<EdgeRow>,
    /// `top`'s rows of the last window.
    pub window: Vec<EdgeRow>,
    pub window_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum State {
    /// Nodes and edges with traffic.
    Ok,
    /// Nodes, and no call observed yet.
    NoTraffic,
    /// Nothing to draw: the mesh could not be read at all.
    NotRunning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Health {
    Ok,
    Degraded,
    Failing,
    /// No call in the last window.
    Idle,
    /// The callee's sidecar could not be read: its figures are unknown.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Node {
    pub id: String,
    pub service: String,
    pub version: Option<String>,
    /// `service` or `gateway`.
    pub kind: &'static str,
    pub reachable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Edge {
    pub id: String,
    pub source: String,
    pub destination: String,
    pub destination_version: Option<String>,
    /// The node ids the edge joins.
    pub from: String,
    pub to: String,
    /// Requests since the sidecars started.
    pub total_requests: u64,
    /// The last window's figures.
    pub requests: u64,
    pub rps: f64,
    pub success_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Every call so far was proved by a certificate (Istio's `mutual_tls`).
    pub verified: bool,
    pub mtls_share: Option<f64>,
    pub health: Health,
    /// The label the page writes on the edge.
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Graph {
    /// Counts up with every read, so a client can ask for the graph it drew.
    pub seq: u64,
    pub state: State,
    /// One line for the user: why nothing is drawn, or what to do next.
    pub hint: Option<String>,
    pub window_s: f64,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

impl Graph {
    /// A mesh that could not be read: no nodes, and `why`.
    pub(crate) fn not_running(seq: u64, why: String) -> Graph {
        Graph {
            seq,
            state: State::NotRunning,
            hint: Some(why),
            window_s: 0.0,
            nodes: Vec::new(),
            edges: Vec::new(),
        }
    }

    /// The graph of one read. `hint` is what to do when there is no traffic yet.
    pub(crate) fn build(seq: u64, observed: &Observed, traffic_hint: &str) -> Graph {
        let versions = versions(observed);
        let node_id = |service: &str, version: Option<&str>| match version {
            Some(v) if versions.get(service).is_some_and(|vs| vs.len() > 1) => {
                format!("{service}@{v}")
            }
            _ => service.to_owned(),
        };
        let mut nodes = Vec::new();
        if let Some(gateway) = &observed.gateway {
            nodes.push(Node {
                id: gateway.clone(),
                service: gateway.clone(),
                version: None,
                kind: "gateway",
                reachable: !observed.unreachable.contains(gateway),
            });
        }
        let mut callers: BTreeSet<&str> = observed
            .total
            .iter()
            .map(|r| r.edge.source.as_str())
            .collect();
        for service in &observed.services {
            callers.remove(service.as_str());
            let reachable = !observed.unreachable.contains(service);
            match versions.get(service.as_str()) {
                Some(vs) if vs.len() > 1 => nodes.extend(vs.iter().map(|v| Node {
                    id: node_id(service, Some(v)),
                    service: service.clone(),
                    version: Some((*v).to_owned()),
                    kind: "service",
                    reachable,
                })),
                vs => nodes.push(Node {
                    id: service.clone(),
                    service: service.clone(),
                    version: vs.and_then(|vs| vs.first()).map(|v| (*v).to_owned()),
                    kind: "service",
                    reachable,
                }),
            }
        }
        // A caller outside the model (a test client, another gateway) still gets its node, so
        // no edge hangs in the air.
        for caller in callers {
            if observed.gateway.as_deref() != Some(caller) {
                nodes.push(Node {
                    id: caller.to_owned(),
                    service: caller.to_owned(),
                    version: None,
                    kind: "client",
                    reachable: true,
                });
            }
        }
        let window: BTreeMap<(&str, &str, Option<&str>), &EdgeRow> =
            observed.window.iter().map(|r| (key(r), r)).collect();
        let mut edges: Vec<Edge> = observed
            .total
            .iter()
            .map(|total| {
                let now = window.get(&key(total)).copied();
                let unknown = observed.unreachable.contains(&total.edge.destination);
                edge(total, now, unknown, &node_id)
            })
            .collect();
        edges.sort_by(|a, b| a.id.cmp(&b.id));
        let state = if edges.is_empty() {
            State::NoTraffic
        } else {
            State::Ok
        };
        let hint = match state {
            State::NoTraffic => Some(format!("no calls yet: send some traffic ({traffic_hint})")),
            _ if !observed.unreachable.is_empty() => Some(format!(
                "cannot read {}: marked, their figures are unknown",
                observed
                    .unreachable
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => None,
        };
        Graph {
            seq,
            state,
            hint,
            window_s: observed.window_s,
            nodes,
            edges,
        }
    }
}

fn key(r: &EdgeRow) -> (&str, &str, Option<&str>) {
    (
        r.edge.source.as_str(),
        r.edge.destination.as_str(),
        r.edge.destination_version.as_deref(),
    )
}

/// Each service's versions seen on edges into it.
fn versions(observed: &Observed) -> BTreeMap<&str, Vec<&str>> {
    let mut seen: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in &observed.total {
        if let Some(v) = &r.edge.destination_version {
            seen.entry(r.edge.destination.as_str())
                .or_default()
                .insert(v.as_str());
        }
    }
    seen.into_iter()
        .map(|(s, vs)| (s, vs.into_iter().collect()))
        .collect()
}

fn edge(
    total: &EdgeRow,
    now: Option<&EdgeRow>,
    unknown: bool,
    node_id: &dyn Fn(&str, Option<&str>) -> String,
) -> Edge {
    let (e, all) = (&total.edge, &total.signals);
    let now = now.map(|n| &n.signals);
    let from = node_id(&e.source, None);
    let to = node_id(&e.destination, e.destination_version.as_deref());
    let requests = now.map_or(0, |n| n.requests);
    let success_rate = now.and_then(|n| n.success_rate);
    let health = if unknown {
        Health::Unknown
    } else if requests == 0 {
        Health::Idle
    } else {
        match success_rate {
            Some(s) if s < FAILING_BELOW => Health::Failing,
            Some(s) if s < DEGRADED_BELOW => Health::Degraded,
            _ => Health::Ok,
        }
    };
    let rps = now.map_or(0.0, |n| n.rps);
    let p99_ms = now.and_then(|n| n.p99_ms);
    Edge {
        id: format!("{from}->{to}"),
        source: e.source.clone(),
        destination: e.destination.clone(),
        destination_version: e.destination_version.clone(),
        label: label(rps, success_rate, p99_ms),
        from,
        to,
        total_requests: all.requests,
        requests,
        rps,
        success_rate,
        p50_ms: now.and_then(|n| n.p50_ms),
        p99_ms,
        verified: all.mtls_share.is_some_and(|s| s >= 1.0),
        mtls_share: all.mtls_share,
        health,
    }
}

/// `12.0 rps · 99.5% · p99 8.2ms` (`p99 120ms` from 10 ms on); `-` where there is no figure.
pub(crate) fn label(rps: f64, success_rate: Option<f64>, p99_ms: Option<f64>) -> String {
    let success = success_rate.map_or("-".to_owned(), |s| format!("{:.1}%", s * 100.0));
    let p99 = p99_ms.map_or("-".to_owned(), |p| {
        if p < 10.0 {
            format!("{p:.1}ms")
        } else {
            format!("{p:.0}ms")
        }
    });
    format!("{rps:.1} rps · {success} · p99 {p99}")
}

#[cfg(test)]
#[path = "graph_tests.rs"]
pub(crate) mod tests;
