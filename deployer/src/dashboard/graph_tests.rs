//! The graph's rules: which nodes, which edges, which colour and lock, and what the user is
//! told when there is nothing to draw.

use super::*;
use crate::observe::signals::{Edge as Pair, Signals};

pub(crate) fn figures(
    source: &str,
    destination: &str,
    requests: u64,
    success: f64,
    mtls: f64,
) -> EdgeRow {
    EdgeRow {
        edge: Pair {
            source: source.into(),
            destination: destination.into(),
            destination_version: None,
        },
        signals: Signals {
            requests,
            rps: requests as f64 / 2.0,
            success_rate: (requests > 0).then_some(success),
            p50_ms: Some(3.0),
            p95_ms: Some(9.0),
            p99_ms: Some(12.4),
            mtls_share: (requests > 0).then_some(mtls),
        },
    }
}

fn observed() -> Observed {
    Observed {
        services: vec!["service-a".into(), "service-b".into()],
        gateway: Some("gateway".into()),
        unreachable: BTreeSet::new(),
        total: vec![
            figures("gateway", "service-a", 100, 1.0, 1.0),
            figures("service-a", "service-b", 50, 1.0, 1.0),
            figures("service-b", "service-a", 20, 1.0, 0.5),
        ],
        window: vec![
            figures("gateway", "service-a", 10, 1.0, 1.0),
            figures("service-a", "service-b", 10, 0.7, 1.0),
        ],
        window_s: 2.0,
    }
}

fn find<'a>(graph: &'a Graph, id: &str) -> &'a Edge {
    graph
        .edges
        .iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("no edge {id} in {:?}", graph.edges))
}

#[test]
fn every_observed_pair_is_an_edge_coloured_by_its_last_window() {
    let graph = Graph::build(7, &observed(), "deployer verify");
    assert_eq!(graph.seq, 7);
    assert_eq!(graph.state, State::Ok);
    let ids: Vec<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["gateway", "service-a", "service-b"]);
    assert_eq!(graph.nodes[0].kind, "gateway");
    assert_eq!(graph.edges.len(), 3);
    let gw = find(&graph, "gateway->service-a");
    assert_eq!(
        (gw.health, gw.verified, gw.requests),
        (Health::Ok, true, 10)
    );
    assert_eq!(gw.label, "5.0 rps · 100.0% · p99 12ms");
    let ab = find(&graph, "service-a->service-b");
    assert_eq!(ab.health, Health::Failing);
    let ba = find(&graph, "service-b->service-a");
    assert_eq!((ba.health, ba.verified), (Health::Idle, false));
    assert_eq!(ba.total_requests, 20);
    assert_eq!(ba.label, "0.0 rps · - · p99 -");
}

#[test]
fn success_rate_thresholds() {
    let mut o = observed();
    for (rate, health) in [
        (1.0, Health::Ok),
        (0.999, Health::Ok),
        (0.99, Health::Degraded),
        (0.80, Health::Degraded),
        (0.79, Health::Failing),
        (0.0, Health::Failing),
    ] {
        o.window[1].signals.success_rate = Some(rate);
        let graph = Graph::build(1, &o, "x");
        assert_eq!(
            find(&graph, "service-a->service-b").health,
            health,
            "{rate}"
        );
    }
}

#[test]
fn a_service_with_several_versions_gets_a_node_per_version() {
    let mut o = observed();
    let mut v1 = figures("service-a", "service-b", 30, 1.0, 1.0);
    v1.edge.destination_version = Some("v1".into());
    let mut v2 = figures("service-a", "service-b", 20, 1.0, 1.0);
    v2.edge.destination_version = Some("v2".into());
    o.total = vec![v1.clone(), v2];
    o.window = vec![v1];
    let graph = Graph::build(1, &o, "x");
    let ids: Vec<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(
        ids,
        ["gateway", "service-a", "service-b@v1", "service-b@v2"]
    );
    assert!(graph.nodes[2..].iter().all(|n| n.service == "service-b"));
    let tos: Vec<&str> = graph.edges.iter().map(|e| e.to.as_str()).collect();
    assert_eq!(tos, ["service-b@v1", "service-b@v2"]);
    assert_eq!(graph.edges[1].health, Health::Idle);
}

#[test]
fn an_unreachable_sidecar_is_marked_and_the_rest_still_drawn() {
    let mut o = observed();
    o.unreachable.insert("service-b".into());
    let graph = Graph::build(1, &o, "x");
    assert_eq!(graph.state, State::Ok);
    let b = graph.nodes.iter().find(|n| n.id == "service-b").unwrap();
    assert!(!b.reachable);
    assert_eq!(find(&graph, "service-a->service-b").health, Health::Unknown);
    assert_eq!(find(&graph, "gateway->service-a").health, Health::Ok);
    assert!(graph.hint.unwrap().contains("cannot read service-b"));
}

#[test]
fn no_traffic_yet_shows_the_nodes_and_a_hint() {
    let mut o = observed();
    o.total.clear();
    o.window.clear();
    let graph = Graph::build(1, &o, "deployer verify --state-dir x");
    assert_eq!(graph.state, State::NoTraffic);
    assert_eq!(graph.nodes.len(), 3);
    assert!(graph.edges.is_empty());
    assert_eq!(
        graph.hint.as_deref(),
        Some("no calls yet: send some traffic (deployer verify --state-dir x)")
    );
}

#[test]
fn a_caller_outside_the_model_gets_a_node() {
    let mut o = observed();
    o.total.push(figures("tester", "service-b", 3, 1.0, 0.0));
    let graph = Graph::build(1, &o, "x");
    let tester = graph.nodes.iter().find(|n| n.id == "tester").unwrap();
    assert_eq!(tester.kind, "client");
}

#[test]
fn a_mesh_that_cannot_be_read_has_no_nodes_and_says_why() {
    let graph = Graph::not_running(3, "no local mesh in .meshtally".into());
    assert_eq!(graph.state, State::NotRunning);
    assert!(graph.nodes.is_empty());
    let json = serde_json::to_value(&graph).unwrap();
    assert_eq!(json["state"], "not-running");
    assert_eq!(json["hint"], "no local mesh in .meshtally");
}
