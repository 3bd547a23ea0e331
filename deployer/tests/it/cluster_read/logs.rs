//! `tap --kubectl`, `edges --kubectl` and `graph --kubectl`: the sidecars' access logs through
//! `kubectl logs`, and the map drawn from every pod.

use super::*;

/// `tap --kubectl` and `edges --kubectl`: every pod's istio-proxy log through `kubectl logs`
/// (followed for tap), the agent's own lines skipped, the callees' records shown.
#[test]
fn tap_and_edges_read_the_sidecar_logs() {
    let standin = StandIn::new();
    let logs = standin.dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let pods = standin.dir.path().join("pods.json");
    std::fs::write(
        &pods,
        r#"{"items":[{"metadata":{"name":"service-a-1"}},{"metadata":{"name":"service-b-1"}}]}"#,
    )
    .unwrap();
    let record = |source: &str, destination: &str, direction: &str, status: u16, tls: bool| {
        serde_json::json!({
            "time": "2026-12-01T01:02:03.004Z", "proxy": format!("{destination}-1"),
            "direction": direction, "version": null, "source": source,
            "destination": destination, "authority": destination, "method": "GET",
            "path": "/info", "status": status, "duration_ms": 2,
            "verified": if tls { "true" } else { "false" },
            "peer_identity": tls.then(|| format!("spiffe://cluster.local/ns/shop/sa/{source}")),
            "tls_version": tls.then_some("TLSv1.3"), "hops": "1", "served_by": destination,
            "response_flags": "-", "request_id": "r",
        })
        .to_string()
    };
    std::fs::write(
        logs.join("service-a-1.log"),
        format!(
            "2026-12-01T01:02:03.000000Z\tinfo\tEnvoy proxy is ready\n{}\n{}\n",
            record("service-b", "service-a", "inbound", 200, true),
            record("service-a", "service-b", "outbound", 200, false)
        ),
    )
    .unwrap();
    std::fs::write(
        logs.join("service-b-1.log"),
        format!(
            "{}\n{}\n",
            record("service-a", "service-b", "inbound", 503, true),
            record("tester", "service-b", "inbound", 200, false)
        ),
    )
    .unwrap();
    let standin = standin
        .env("STANDIN_PODS_JSON", &pods)
        .env("STANDIN_LOGS_DIR", &logs);
    let script = standin::script();
    let cluster = [
        "--kubectl",
        &*script.to_string_lossy(),
        "--context",
        standin::CONTEXT,
        "--namespace",
        "shop",
    ]
    .map(str::to_owned);
    let run = |cmd: &str, extra: &[&str]| {
        let mut args: Vec<&str> = vec![cmd];
        args.extend(cluster.iter().map(String::as_str));
        args.extend(extra);
        let out = standin.run(&args);
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // The stand-in's logs end, so tap ends once every follower has.
    let tapped = run("tap", &["--json", "--status", "5xx"]);
    let lines: Vec<serde_json::Value> = tapped
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{tapped}");
    assert_eq!(lines[0]["source"], "service-a");
    assert_eq!(lines[0]["status"], 503);
    assert_eq!(lines[0]["verified"], true);
    let follows = standin
        .calls()
        .iter()
        .filter(|c| c.contains(&"-f".to_owned()) && c.contains(&"logs".to_owned()))
        .count();
    assert_eq!(follows, 2, "{:?}", standin.calls());

    let edges: serde_json::Value = serde_json::from_str(&run("edges", &["--json"])).unwrap();
    let got: Vec<(String, Option<String>)> = edges
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap().to_owned(),
                e["identity"]
                    .as_str()
                    .or(e["reason"].as_str())
                    .map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "service-a".to_owned(),
                Some("spiffe://cluster.local/ns/shop/sa/service-a".to_owned())
            ),
            (
                "service-b".to_owned(),
                Some("spiffe://cluster.local/ns/shop/sa/service-b".to_owned())
            ),
            (
                "tester".to_owned(),
                Some("plain text: no TLS, so no certificate".to_owned())
            ),
        ]
    );
}

/// `graph --kubectl`: the dashboard's graph of a cluster mesh, each pod read twice through
/// `pilot-agent`, the pods named by their `app` label (one node per service, its replicas
/// summed), a pod that cannot be read marked and the rest still drawn.
#[test]
fn graph_draws_the_cluster_mesh_from_every_pod() {
    let pod = |name: &str, app: &str| {
        format!(r#"{{"metadata":{{"name":"{name}","labels":{{"app":"{app}"}}}}}}"#)
    };
    let gateway = "istio-ingressgateway-service-account";
    // service-c's pod has no stats: its reads fail.
    let standin = reading_twice(
        &format!(
            r#"{{"items":[{},{},{}]}}"#,
            pod("service-b-7d4b9c8f5-abcde", "service-b"),
            pod("service-b-7d4b9c8f5-fghij", "service-b"),
            pod("service-c-5f6d7c8b9-klmno", "service-c"),
        ),
        &[
            (
                "service-b-7d4b9c8f5-abcde",
                prom_line("service-a", "service-b", "2xx", "mutual_tls", 20),
                prom_line("service-a", "service-b", "2xx", "mutual_tls", 30),
            ),
            (
                "service-b-7d4b9c8f5-fghij",
                prom_line(gateway, "service-b", "2xx", "mutual_tls", 4),
                prom_line(gateway, "service-b", "2xx", "mutual_tls", 9),
            ),
        ],
    );
    let out = standin.run(&[
        "graph",
        "--kubectl",
        &standin::script().to_string_lossy(),
        "--context",
        standin::CONTEXT,
        "--namespace",
        "shop",
        "--window",
        "100ms",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let graph: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes: Vec<(&str, &str, bool)> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap(),
                n["kind"].as_str().unwrap(),
                n["reachable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        nodes,
        [
            ("istio-ingressgateway-service-account", "gateway", true),
            ("service-b", "service", true),
            ("service-c", "service", false),
            ("service-a", "client", true),
        ],
        "{graph}"
    );
    let edges: Vec<(&str, u64, u64, bool)> = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap(),
                e["requests"].as_u64().unwrap(),
                e["total_requests"].as_u64().unwrap(),
                e["verified"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        edges,
        [
            (
                "istio-ingressgateway-service-account->service-b",
                5,
                9,
                true
            ),
            ("service-a->service-b", 10, 30, true),
        ],
        "{graph}"
    );
    assert!(
        graph["hint"]
            .as_str()
            .unwrap()
            .contains("cannot read service-c"),
        "{graph}"
    );
}
