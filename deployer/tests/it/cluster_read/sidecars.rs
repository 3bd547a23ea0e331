//! `stats --kubectl` and `top --kubectl`: each pod's sidecar read through `kubectl exec`, the
//! counters merged, and for `top` read twice so the gain over the window is shown.

use super::*;

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
