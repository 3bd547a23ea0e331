//! The mesh as the dashboard draws it and `deployer graph` prints it: nodes (each service, one
//! per version when it runs several, and the gateway) and edges (each caller → callee pair ever
//! observed), with the `top` figures of the last window on each edge and the colour they earn.
//! Everything the page shows is decided here, so the page is a plain client of `/api/graph`
//! and the export formats say the same thing.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::local::status::Process;
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
    /// Processes that are not up (a local mesh's apps and proxies, from `deployer status`'s
    /// checks); empty where the mesh's processes cannot be seen (a cluster).
    pub down: Vec<Down>,
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

/// A process of a node that is not up: its pid is gone, or it does not answer its health
/// check. On a local mesh the supervisor restarts such a process, hence "restarting".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Down {
    /// The service it belongs to (the gateway's caller name for the gateway).
    pub service: String,
    /// The version its instance runs; `None` for the gateway.
    pub version: Option<String>,
    /// What is wrong, for the user: `app not running, restarted 3 times`.
    pub why: String,
}

/// Which node a local process belongs to: `(process name, service, version)`, from the plan.
pub(crate) type Owner = (String, String, Option<String>);

/// The processes of `status` that are not up, each named by the node it belongs to. Processes
/// no node stands for (Prometheus) are left out.
pub(crate) fn down(processes: &[Process], owners: &[Owner]) -> Vec<Down> {
    processes
        .iter()
        .filter(|p| !(p.running && p.healthy))
        .filter_map(|p| {
            let (_, service, version) = owners.iter().find(|(name, _, _)| *name == p.name)?;
            let what = match p.kind {
                "app" => "app",
                "sidecar" => "sidecar",
                "gateway" => "gateway proxy",
                _ => return None,
            };
            let state = if p.running {
                // Alive but not answering: starting up again, or hung.
                "not answering its health check"
            } else {
                "not running"
            };
            let restarts = match p.restarts {
                0 => String::new(),
                1 => ", restarted once".to_owned(),
                n => format!(", restarted {n} times"),
            };
            Some(Down {
                service: service.clone(),
                version: version.clone(),
                why: format!("{what} {state}{restarts}"),
            })
        })
        .collect()
}

/// A node's own state, drawn on it: edges say how calls went, this says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum NodeHealth {
    Up,
    /// One of its processes is down and the supervisor is bringing it back.
    Restarting,
    /// Its proxy cannot be read (and nothing says why).
    Unreachable,
}

impl NodeHealth {
    fn word(self) -> &'static str {
        match self {
            NodeHealth::Up => "up",
            NodeHealth::Restarting => "restarting",
            NodeHealth::Unreachable => "unreachable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Node {
    pub id: String,
    pub service: String,
    pub version: Option<String>,
    /// `service`, `gateway`, `client` (a caller outside the model), `external` (a service
    /// outside the mesh, or the PassthroughCluster) or `blocked` (the BlackHoleCluster).
    pub kind: &'static str,
    pub reachable: bool,
    pub health: NodeHealth,
    /// Why it is not up: `app not running, restarted 2 times`, `sidecar cannot be read`.
    pub health_detail: Option<String>,
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
    /// Why the edge may fail, when a node on its path is not up: its callee
    /// (`service-c is restarting: app not running`) or, for a callee that is up, a callee of
    /// that callee whose failing calls it passes back (`service-a's callee service-c is …`).
    pub cause: Option<String>,
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
                health: NodeHealth::Up,
                health_detail: None,
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
                    health: NodeHealth::Up,
                    health_detail: None,
                })),
                vs => nodes.push(Node {
                    id: service.clone(),
                    service: service.clone(),
                    version: vs.and_then(|vs| vs.first()).map(|v| (*v).to_owned()),
                    kind: "service",
                    reachable,
                    health: NodeHealth::Up,
                    health_detail: None,
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
                    health: NodeHealth::Up,
                    health_detail: None,
                });
            }
        }
        // The calls that left the mesh end at nodes of their own: Kiali draws ServiceEntry
        // hosts apart, and the calls a sidecar refused at the BlackHoleCluster.
        let outside: BTreeSet<&str> = observed
            .total
            .iter()
            .filter(|r| {
                r.edge.destination_version.as_deref()
                    == Some(meshtally_wire::metrics::EXTERNAL_VERSION)
            })
            .map(|r| r.edge.destination.as_str())
            .collect();
        for to in outside {
            if nodes.iter().any(|n| n.id == to) {
                continue;
            }
            let kind = if to == meshtally_wire::metrics::BLACKHOLE {
                "blocked"
            } else {
                "external"
            };
            nodes.push(Node {
                id: to.to_owned(),
                service: to.to_owned(),
                version: None,
                kind,
                reachable: true,
                health: NodeHealth::Up,
                health_detail: None,
            });
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
        for n in &mut nodes {
            (n.health, n.health_detail) = node_health(n, observed);
        }
        attribute(&mut edges, &nodes);
        let state = if edges.is_empty() {
            State::NoTraffic
        } else {
            State::Ok
        };
        let restarting: Vec<String> = nodes
            .iter()
            .filter(|n| n.health == NodeHealth::Restarting)
            .map(|n| {
                format!(
                    "{} ({})",
                    n.id,
                    n.health_detail.as_deref().unwrap_or("down")
                )
            })
            .collect();
        let hint = match state {
            State::NoTraffic => Some(format!("no calls yet: send some traffic ({traffic_hint})")),
            _ => {
                let mut said = Vec::new();
                if !restarting.is_empty() {
                    let (them, they) = match restarting.len() {
                        1 => ("it", "it is"),
                        _ => ("them", "they are"),
                    };
                    said.push(format!(
                        "restarting: {}; calls into {them} fail until {they} back",
                        restarting.join(", ")
                    ));
                }
                if !observed.unreachable.is_empty() {
                    said.push(format!(
                        "cannot read {}: marked, their figures are unknown",
                        observed
                            .unreachable
                            .iter()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                (!said.is_empty()).then(|| said.join(" · "))
            }
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

/// A node's health: a process of it that is down says more than a proxy that cannot be read
/// (a killed sidecar is both, and "restarting" tells what happens next), so it comes first.
fn node_health(node: &Node, observed: &Observed) -> (NodeHealth, Option<String>) {
    let versioned = node.id != node.service;
    let why: Vec<&str> = observed
        .down
        .iter()
        .filter(|d| d.service == node.service)
        // A node per version stands for its own instance only; a service's single node, for
        // every instance of it.
        .filter(|d| !versioned || d.version == node.version)
        .map(|d| d.why.as_str())
        .collect();
    if !why.is_empty() {
        (NodeHealth::Restarting, Some(why.join(", ")))
    } else if !node.reachable {
        let proxy = if node.kind == "gateway" {
            "gateway proxy"
        } else {
            "sidecar"
        };
        (
            NodeHealth::Unreachable,
            Some(format!("{proxy} cannot be read")),
        )
    } else {
        (NodeHealth::Up, None)
    }
}

/// Names, on each edge, the node that makes its calls fail: the callee when it is not up, or
/// else a callee of the callee that is not up on an edge that fails (the caller's 50 % then
/// has its reason).
fn attribute(edges: &mut [Edge], nodes: &[Node]) {
    let not_up = |id: &str| {
        nodes
            .iter()
            .find(|n| n.id == id && n.health != NodeHealth::Up)
            .map(|n| {
                format!(
                    "{} is {}{}",
                    n.id,
                    n.health.word(),
                    n.health_detail
                        .as_deref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                )
            })
    };
    let downstream: Vec<(String, String)> = edges
        .iter()
        .filter(|e| {
            matches!(
                e.health,
                Health::Failing | Health::Degraded | Health::Unknown
            )
        })
        .filter_map(|e| not_up(&e.to).map(|why| (e.from.clone(), why)))
        .collect();
    for e in edges.iter_mut() {
        e.cause = not_up(&e.to).or_else(|| {
            if !matches!(e.health, Health::Failing | Health::Degraded) {
                return None;
            }
            downstream
                .iter()
                .find(|(from, _)| *from == e.to)
                .map(|(_, why)| format!("{}'s callee {why}", e.to))
        });
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
        cause: None,
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
pub(crate) mod tests;
