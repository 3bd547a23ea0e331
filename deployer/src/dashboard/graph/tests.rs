//! The graph's rules: which nodes, which edges, which colour and lock, and what the user is
//! told when there is nothing to draw.

use super::*;
use crate::local::status::Process;
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
        down: Vec::new(),
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

fn process(name: &str, kind: &'static str, running: bool, healthy: bool, restarts: u32) -> Process {
    Process {
        name: name.into(),
        kind,
        pid: running.then_some(4242),
        running,
        stranger: false,
        healthy,
        restarts,
        ports: Default::default(),
        urls: Default::default(),
    }
}

fn owners() -> Vec<Owner> {
    let v1 = Some("v1".to_owned());
    vec![
        ("service-a".into(), "service-a".into(), v1.clone()),
        ("service-a-sidecar".into(), "service-a".into(), v1.clone()),
        ("service-b".into(), "service-b".into(), v1.clone()),
        ("service-b-sidecar".into(), "service-b".into(), v1),
        ("istio-ingressgateway".into(), "gateway".into(), None),
    ]
}

#[test]
fn processes_that_are_not_up_are_named_by_their_node_and_why() {
    let processes = [
        process("service-a", "app", true, true, 0),
        process("service-a-sidecar", "sidecar", true, true, 0),
        process("service-b", "app", false, false, 3),
        process("service-b-sidecar", "sidecar", true, false, 1),
        process("istio-ingressgateway", "gateway", true, true, 0),
        process("prometheus", "prometheus", false, false, 0),
    ];
    let down = down(&processes, &owners());
    assert_eq!(
        down,
        [
            Down {
                service: "service-b".into(),
                version: Some("v1".into()),
                why: "app not running, restarted 3 times".into(),
            },
            Down {
                service: "service-b".into(),
                version: Some("v1".into()),
                why: "sidecar not answering its health check, restarted once".into(),
            },
        ]
    );
    // Everything up: nothing down (Prometheus, which no node stands for, is never named).
    let up = [
        process("service-a", "app", true, true, 0),
        process("prometheus", "prometheus", false, false, 0),
    ];
    assert!(super::down(&up, &owners()).is_empty());
}

fn health_of<'a>(graph: &'a Graph, id: &str) -> (NodeHealth, Option<&'a str>) {
    let n = graph
        .nodes
        .iter()
        .find(|n| n.id == id)
        .unwrap_or_else(|| panic!("no node {id}"));
    (n.health, n.health_detail.as_deref())
}

#[test]
fn node_health_up_restarting_unreachable() {
    let mut o = observed();
    o.total.push(figures("tester", "service-b", 3, 1.0, 0.0));
    let graph = Graph::build(1, &o, "x");
    for id in ["gateway", "service-a", "service-b", "tester"] {
        assert_eq!(health_of(&graph, id), (NodeHealth::Up, None), "{id}");
    }
    assert!(graph.hint.is_none());

    // A sidecar that cannot be read, with nothing known about its processes (a cluster).
    o.unreachable.insert("service-a".into());
    let graph = Graph::build(2, &o, "x");
    assert_eq!(
        health_of(&graph, "service-a"),
        (NodeHealth::Unreachable, Some("sidecar cannot be read"))
    );

    // Its app killed, its sidecar unreadable as well: what is known wins, "restarting".
    o.down = vec![Down {
        service: "service-a".into(),
        version: Some("v1".into()),
        why: "app not running".into(),
    }];
    let graph = Graph::build(3, &o, "x");
    assert_eq!(
        health_of(&graph, "service-a"),
        (NodeHealth::Restarting, Some("app not running"))
    );
    assert_eq!(health_of(&graph, "service-b"), (NodeHealth::Up, None));
    let hint = graph.hint.unwrap();
    assert!(
        hint.starts_with("restarting: service-a (app not running);"),
        "{hint}"
    );
    assert!(hint.contains("cannot read service-a"), "{hint}");
    let json = serde_json::to_value(&graph.nodes[1]).unwrap();
    assert_eq!(json["health"], "restarting");
    assert_eq!(json["health_detail"], "app not running");

    // The gateway's proxy down: the gateway's node.
    o.unreachable.clear();
    o.down = vec![Down {
        service: "gateway".into(),
        version: None,
        why: "gateway proxy not running".into(),
    }];
    let graph = Graph::build(4, &o, "x");
    assert_eq!(health_of(&graph, "gateway").0, NodeHealth::Restarting);
    assert_eq!(health_of(&graph, "service-a").0, NodeHealth::Up);
}

#[test]
fn a_version_down_marks_its_own_node_only() {
    let mut o = observed();
    let mut v1 = figures("service-a", "service-b", 30, 1.0, 1.0);
    v1.edge.destination_version = Some("v1".into());
    let mut v2 = figures("service-a", "service-b", 20, 1.0, 1.0);
    v2.edge.destination_version = Some("v2".into());
    o.total = vec![v1.clone(), v2.clone()];
    o.window = vec![v1, v2];
    o.down = vec![Down {
        service: "service-b".into(),
        version: Some("v2".into()),
        why: "app not running".into(),
    }];
    let graph = Graph::build(1, &o, "x");
    assert_eq!(health_of(&graph, "service-b@v1").0, NodeHealth::Up);
    assert_eq!(health_of(&graph, "service-b@v2").0, NodeHealth::Restarting);
    assert_eq!(find(&graph, "service-a->service-b@v1").cause, None);
    assert_eq!(
        find(&graph, "service-a->service-b@v2").cause.as_deref(),
        Some("service-b@v2 is restarting: app not running")
    );
}

#[test]
fn a_failure_is_attributed_to_the_callee_that_is_down() {
    // gateway → a → b: b's app is killed, so a → b fails and a, which is up, answers the
    // gateway with errors too.
    let mut o = observed();
    o.window = vec![
        figures("gateway", "service-a", 10, 0.5, 1.0),
        figures("service-a", "service-b", 10, 0.0, 1.0),
    ];
    o.down = vec![Down {
        service: "service-b".into(),
        version: Some("v1".into()),
        why: "app not running, restarted 2 times".into(),
    }];
    let graph = Graph::build(1, &o, "x");
    let ab = find(&graph, "service-a->service-b");
    assert_eq!(ab.health, Health::Failing);
    assert_eq!(
        ab.cause.as_deref(),
        Some("service-b is restarting: app not running, restarted 2 times")
    );
    let ga = find(&graph, "gateway->service-a");
    assert_eq!(ga.health, Health::Failing);
    assert_eq!(
        ga.cause.as_deref(),
        Some("service-a's callee service-b is restarting: app not running, restarted 2 times")
    );
    // b → a is idle, and a is up: nothing to attribute.
    assert_eq!(find(&graph, "service-b->service-a").cause, None);

    // Everything up again: no cause anywhere, even on an edge that fails for its own reasons.
    o.down.clear();
    let graph = Graph::build(2, &o, "x");
    assert!(graph.edges.iter().all(|e| e.cause.is_none()));
    assert_eq!(find(&graph, "gateway->service-a").health, Health::Failing);
}

/// Calls that left the mesh end at nodes of their own: an external host (a diamond on the
/// page) and the BlackHoleCluster (blocked).
#[test]
fn external_hosts_and_blocked_calls_get_their_own_nodes() {
    let mut o = observed();
    let external = |to: &str, requests, success| {
        let mut r = figures("service-a", to, requests, success, 0.0);
        r.edge.destination_version = Some(meshtally_wire::metrics::EXTERNAL_VERSION.into());
        r
    };
    o.total.push(external("payments", 9, 1.0));
    o.total.push(external("BlackHoleCluster", 2, 0.0));
    o.window.push(external("BlackHoleCluster", 2, 0.0));
    let graph = Graph::build(1, &o, "deployer verify");
    let kind = |id: &str| graph.nodes.iter().find(|n| n.id == id).map(|n| n.kind);
    assert_eq!(kind("payments"), Some("external"));
    assert_eq!(kind("BlackHoleCluster"), Some("blocked"));
    assert_eq!(find(&graph, "service-a->payments").to, "payments");
    assert_eq!(
        find(&graph, "service-a->BlackHoleCluster").health,
        Health::Failing
    );
}
