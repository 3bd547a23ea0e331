//! `verify --kubectl` and `stats --kubectl` through the kubectl stand-in. The stand-in's
//! port-forward points at a gateway this test serves, so verify's real checks run against real
//! HTTP answers; the forward must be gone when verify returns, pass or fail. stats reads each
//! pod's sidecar through `kubectl exec` and merges the counters. These stay on the stand-in:
//! `port-forward` and `exec` need a kubelet and a running sidecar, which the loopback control
//! plane (kwok plays its node) does not have.

mod standin;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;

use standin::{one_line_failure, without_context, StandIn};

/// A gateway answering `/<from>/call/<to>` as a tagged mesh does, except for `broken` (from, to)
/// pairs, which get a 503. Returns its port.
fn gateway(broken: Option<(&'static str, &'static str)>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&request);
            let path = text.split_whitespace().nth(1).unwrap_or("/");
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let (from, to) = (parts[0], parts.get(2).copied().unwrap_or(""));
            let (status, body) = if broken == Some((from, to)) {
                (
                    "503 Service Unavailable",
                    r#"{"error":"upstream"}"#.to_owned(),
                )
            } else {
                (
                    "200 OK",
                    format!(
                        r#"{{"from":"{from}","to":"{to}","status":200,"body":{{"request_headers":{{"x-mesh-source":"{from}","x-mesh-peer-verified":"true"}}}}}}"#
                    ),
                )
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nx-mesh-served-by: {from}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn forward_is_gone(standin: &StandIn) {
    let pid = std::fs::read_to_string(standin.dir.path().join("port-forward.pid"))
        .expect("the port-forward ran");
    let proc = Path::new("/proc").join(pid.trim());
    assert!(!proc.exists(), "port-forward {} still running", pid.trim());
}

fn verify(standin: &StandIn, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["verify".to_owned(), "--kubectl".to_owned()];
    args.push(standin::script().to_string_lossy().into_owned());
    args.extend(["--context".to_owned(), standin::CONTEXT.to_owned()]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    standin.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn verify_port_forwards_checks_every_pair_and_stops_the_forward() {
    let port = gateway(None);
    let standin = StandIn::new().env("STANDIN_FORWARD_PORT", port.to_string());
    let out = verify(&standin, &["--services", "3", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let calls = standin.calls();
    let args: Vec<Vec<&str>> = calls.iter().map(|c| without_context(c)).collect();
    assert_eq!(args[0], ["get", "--raw=/readyz", "--request-timeout=10s"]);
    assert_eq!(
        args[1],
        [
            "port-forward",
            "-n",
            "istio-system",
            "svc/istio-ingressgateway",
            ":80",
            "--address",
            "127.0.0.1"
        ]
    );
    assert_eq!(args.len(), 2);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["pairs"].as_array().unwrap().len(), 6);
    assert!(
        stderr.contains(&format!("port-forwarding 127.0.0.1:{port}")),
        "{stderr}"
    );
    forward_is_gone(&standin);
}

#[test]
fn a_failed_verify_also_stops_the_forward() {
    let port = gateway(Some(("web", "api")));
    let standin = StandIn::new().env("STANDIN_FORWARD_PORT", port.to_string());
    let out = verify(&standin, &["--names", "web,api"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("web → api: status 503"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: 1 of 2 pairs failed"), "{stderr}");
    forward_is_gone(&standin);
}

#[test]
fn verify_without_a_gateway_is_one_line() {
    let standin = StandIn::new().env("STANDIN_FORWARD_FAIL", "1");
    let out = verify(&standin, &[]);
    one_line_failure(&out, "cannot port-forward to Istio's ingress gateway: `");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed: services \"istio-ingressgateway\" not found"),
        "{stderr}"
    );
    let unreachable = StandIn::new().env("STANDIN_UNREACHABLE", "1");
    one_line_failure(&verify(&unreachable, &[]), "cannot reach the cluster");
    assert_eq!(unreachable.calls().len(), 1);
}

fn stat(src: &str, dst: &str, dir: &str, class: &str, value: u64) -> String {
    format!(
        r#"{{"name":"wasmcustom.source=.={src};.;destination=.={dst};.;destination_version=.=v1;.;direction=.={dir};.;response_code_class=.={class};.;connection_security_policy=.=mutual_tls;.;meshtally_requests_total","value":{value}}}"#
    )
}

#[test]
fn stats_reads_every_sidecar_and_merges() {
    let standin = StandIn::new();
    let stats = standin.dir.path().join("stats");
    std::fs::create_dir(&stats).unwrap();
    let pods = standin.dir.path().join("pods.json");
    std::fs::write(
        &pods,
        r#"{"items":[{"metadata":{"name":"service-a-1"}},{"metadata":{"name":"service-b-1"}}]}"#,
    )
    .unwrap();
    std::fs::write(
        stats.join("service-a-1.json"),
        format!(
            r#"{{"stats":[{},{},{{"histograms":{{}}}}]}}"#,
            stat("service-a", "service-b", "outbound", "2xx", 4),
            stat("service-b", "service-a", "inbound", "2xx", 2)
        ),
    )
    .unwrap();
    std::fs::write(
        stats.join("service-b-1.json"),
        format!(
            r#"{{"stats":[{},{}]}}"#,
            stat("service-a", "service-b", "inbound", "2xx", 3),
            stat("service-a", "service-b", "inbound", "5xx", 1)
        ),
    )
    .unwrap();
    let standin = standin
        .env("STANDIN_PODS_JSON", &pods)
        .env("STANDIN_STATS_DIR", &stats);
    let out = standin.run(&[
        "stats",
        "--kubectl",
        &standin::script().to_string_lossy(),
        "--context",
        standin::CONTEXT,
        "--namespace",
        "shop",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<(String, String, String, String, u64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["source"].as_str().unwrap().to_owned(),
                r["destination"].as_str().unwrap().to_owned(),
                r["direction"].as_str().unwrap().to_owned(),
                r["response_code_class"].as_str().unwrap().to_owned(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let row = |s: &str, d: &str, dir: &str, c: &str, n| {
        (s.to_owned(), d.to_owned(), dir.to_owned(), c.to_owned(), n)
    };
    assert_eq!(
        got,
        [
            row("service-a", "service-b", "inbound", "2xx", 3),
            row("service-a", "service-b", "inbound", "5xx", 1),
            row("service-a", "service-b", "outbound", "2xx", 4),
            row("service-b", "service-a", "inbound", "2xx", 2),
        ]
    );

    let calls = standin.calls();
    let mut args: Vec<Vec<&str>> = calls.iter().map(|c| without_context(c)).collect();
    assert_eq!(args[0], ["get", "--raw=/readyz", "--request-timeout=10s"]);
    assert_eq!(
        args[1],
        [
            "get",
            "pods",
            "-n",
            "shop",
            "-l",
            "app.kubernetes.io/part-of=meshtally",
            "--field-selector=status.phase=Running",
            "-o",
            "json"
        ]
    );
    // The sidecars are read in parallel, so in any order.
    let mut execs = args.split_off(2);
    execs.sort();
    for (exec, pod) in execs.iter().zip(["service-a-1", "service-b-1"]) {
        assert_eq!(
            exec,
            &[
                "exec",
                "-n",
                "shop",
                pod,
                "-c",
                "istio-proxy",
                "--",
                "pilot-agent",
                "request",
                "GET",
                "stats?format=json&filter=meshtally_requests_total"
            ]
        );
    }
    assert_eq!(execs.len(), 2);

    // The same rows as the matrix the local stats prints.
    let out = standin.run(&[
        "stats",
        "--kubectl",
        &standin::script().to_string_lossy(),
        "--context",
        standin::CONTEXT,
        "--namespace",
        "shop",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("calls counted by the callee (inbound):"),
        "{text}"
    );
    assert!(text.contains("4 (1 non-2xx)"), "{text}");
}

#[test]
fn stats_without_pods_says_to_apply() {
    let standin = StandIn::new();
    let pods = standin.dir.path().join("pods.json");
    std::fs::write(&pods, r#"{"items":[]}"#).unwrap();
    let standin = standin.env("STANDIN_PODS_JSON", &pods);
    let out = standin.run(&[
        "stats",
        "--kubectl",
        &standin::script().to_string_lossy(),
        "--context",
        standin::CONTEXT,
    ]);
    one_line_failure(
        &out,
        "no running meshtally pods in namespace istio-demo: apply the mesh first",
    );
}

/// `top --kubectl`: every pod's sidecar read twice through `pilot-agent request GET
/// stats/prometheus`, the calls in between shown per edge.
#[test]
fn top_reads_every_sidecar_twice_and_shows_the_gain() {
    let line =
        |class: &str, policy: &str, n: u64| prom_line("service-a", "service-b", class, policy, n);
    // Two replicas of service-b: 10 more calls on one (2 of them 5xx), 5 more plain-text ones
    // on the other.
    let standin = reading_twice(
        r#"{"items":[{"metadata":{"name":"service-b-1"}},{"metadata":{"name":"service-b-2"}}]}"#,
        &[
            (
                "service-b-1",
                line("2xx", "mutual_tls", 20),
                line("2xx", "mutual_tls", 28) + &line("5xx", "mutual_tls", 2),
            ),
            (
                "service-b-2",
                line("2xx", "none", 1),
                line("2xx", "none", 6),
            ),
        ],
    );
    let out = standin.run(&[
        "top",
        "--kubectl",
        &standin::script().to_string_lossy(),
        "--context",
        standin::CONTEXT,
        "--namespace",
        "shop",
        "--window",
        "100ms",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    let row = &rows[0];
    assert_eq!(row["source"], "service-a");
    assert_eq!(row["requests"], 15);
    assert_eq!(row["success_rate"].as_f64().unwrap(), 13.0 / 15.0);
    assert_eq!(row["mtls_share"].as_f64().unwrap(), 10.0 / 15.0);
    let asked = standin
        .calls()
        .iter()
        .filter(|c| c.last().map(String::as_str) == Some("stats/prometheus?filter=meshtally_"))
        .count();
    assert_eq!(asked, 4, "{:?}", standin.calls());
}

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

/// One inbound `meshtally_requests_total` sample as a sidecar's `/stats/prometheus` shows it.
fn prom_line(source: &str, destination: &str, class: &str, policy: &str, n: u64) -> String {
    format!("meshtally_requests_total{{source=\"{source}\",destination=\"{destination}\",direction=\"inbound\",response_code_class=\"{class}\",connection_security_policy=\"{policy}\"}} {n}\n")
}

/// A stand-in listing `pods_json` as the running pods, each pod's sidecar answering its first
/// and second `stats/prometheus` read as given (a pod not listed there cannot be read).
fn reading_twice(pods_json: &str, reads: &[(&str, String, String)]) -> StandIn {
    let standin = StandIn::new();
    let stats = standin.dir.path().join("stats");
    std::fs::create_dir(&stats).unwrap();
    let pods = standin.dir.path().join("pods.json");
    std::fs::write(&pods, pods_json).unwrap();
    for (pod, first, second) in reads {
        std::fs::write(stats.join(format!("{pod}.prom.1")), first).unwrap();
        std::fs::write(stats.join(format!("{pod}.prom.2")), second).unwrap();
    }
    standin
        .env("STANDIN_PODS_JSON", &pods)
        .env("STANDIN_STATS_DIR", &stats)
}
