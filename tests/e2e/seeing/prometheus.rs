//! Prometheus held to the known workload: its per-pair sums agree with `top`, and every query
//! of the rendered Grafana dashboard (checked by promtool first) answers on the local scrape.

use super::*;

/// An instant query through Prometheus's HTTP API: the result vector.
pub(super) fn query(port: u16, promql: &str) -> Result<Vec<Value>> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let r = http::get(port, &format!("/api/v1/query?query={encoded}"), &[])?;
    let body = r.json()?;
    ensure!(body["status"] == "success", "{promql}: {body}");
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// (source, destination) → value of each series of a result.
fn by_edge(result: &[Value]) -> BTreeMap<Edge, f64> {
    result
        .iter()
        .filter_map(|s| {
            let m = &s["metric"];
            let v: f64 = s["value"][1].as_str()?.parse().ok()?;
            Some((
                (
                    m["source"].as_str()?.to_owned(),
                    m["destination"].as_str()?.to_owned(),
                ),
                v,
            ))
        })
        .collect()
}

/// Prometheus scraped the same numbers the sidecars count, and every dashboard query parses
/// (promtool) and returns the expected series.
pub(super) fn prometheus_agrees(m: &LocalMesh, prom: u16, top: &Value) -> Result<()> {
    // Per-pair sums equal the sidecars' own counters, once a scrape after the workload is in.
    let out = m.run("stats", &["--json"]);
    ensure!(out.status.success(), "stats failed");
    let mut counted: BTreeMap<Edge, f64> = BTreeMap::new();
    for r in serde_json::from_slice::<Value>(&out.stdout)?
        .as_array()
        .into_iter()
        .flatten()
    {
        if r["direction"] == "inbound" {
            let key = (
                r["source"].as_str().unwrap_or_default().to_owned(),
                r["destination"].as_str().unwrap_or_default().to_owned(),
            );
            *counted.entry(key).or_default() += r["count"].as_f64().unwrap_or(0.0);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sums = by_edge(&query(
            prom,
            "sum by (source, destination) (meshtally_requests_total{direction=\"inbound\"})",
        )?);
        if sums == counted {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "Prometheus {sums:?} != sidecars {counted:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // top's quantiles are Prometheus's histogram_quantile over the same buckets.
    for (source, destination) in [("service-a", "service-b"), (GATEWAY_ID, "service-b")] {
        let row = edge(top, source, destination)?;
        for (q, key) in [(0.5, "p50_ms"), (0.99, "p99_ms")] {
            let promql = format!("histogram_quantile({q}, sum by (le) (meshtally_request_duration_milliseconds_bucket{{direction=\"inbound\",source=\"{source}\",destination=\"{destination}\"}}))");
            let got = query(prom, &promql)?;
            let theirs: f64 = got
                .first()
                .and_then(|s| s["value"][1].as_str())
                .context("no quantile")?
                .parse()?;
            let ours = row[key].as_f64().context(key)?;
            ensure!(
                (theirs - ours).abs() < 1e-9,
                "{source}→{destination} {key}: top {ours}, Prometheus {theirs}"
            );
        }
    }
    dashboard_queries(prom)
}

/// Every query of the rendered Grafana dashboard: parsed by promtool, then run.
fn dashboard_queries(prom: u16) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("render");
    let wasm = meshtally_tests::filter_wasm();
    let r = meshtally_tests::mesh::deployer(&[
        "render",
        "--wasm-file",
        wasm.to_str().unwrap_or_default(),
        "--output",
        out.to_str().unwrap_or_default(),
    ]);
    ensure!(
        r.status.success(),
        "render: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(
        out.join("monitoring/grafana-dashboard.json"),
    )?)?;
    // Grafana's $__rate_interval becomes a window that holds several of our 1 s scrapes.
    let exprs: Vec<(String, String)> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| {
                    (
                        p["title"].as_str().unwrap_or_default().to_owned(),
                        t["expr"]
                            .as_str()
                            .unwrap_or_default()
                            .replace("$__rate_interval", "1m"),
                    )
                })
        })
        .collect();
    ensure!(exprs.len() == 5, "{dashboard}");
    let rules = serde_json::json!({"groups": [{"name": "dashboard", "rules": exprs.iter().enumerate().map(|(i, (_, e))| serde_json::json!({"record": format!("dashboard:query{i}"), "expr": e})).collect::<Vec<_>>()}]});
    let rules_file = dir.path().join("rules.yml");
    std::fs::write(&rules_file, serde_json::to_string(&rules)?)?;
    let check = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules_file)
        .output()
        .context("running promtool (make setup installs it)")?;
    ensure!(
        check.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let mut edges: Vec<Edge> = Vec::new();
    for s in SERVICES {
        edges.push((GATEWAY_ID.into(), s.into()));
        edges.extend(
            SERVICES
                .iter()
                .filter(|t| **t != s)
                .map(|t| (s.to_owned(), (*t).to_owned())),
        );
    }
    edges.push(("tester".into(), "service-c".into()));
    edges.sort();
    for (title, expr) in &exprs {
        let result = query(prom, expr)?;
        if title.contains("version") {
            let mut got: Vec<(String, String)> = result
                .iter()
                .map(|s| {
                    (
                        s["metric"]["destination"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        s["metric"]["version"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect();
            got.sort();
            let want: Vec<(String, String)> = SERVICES
                .iter()
                .map(|s| ((*s).to_owned(), "v1".to_owned()))
                .collect();
            ensure!(got == want, "{title}: {got:?}");
            continue;
        }
        let series = by_edge(&result);
        ensure!(
            series.keys().cloned().collect::<Vec<_>>() == edges,
            "{title}: {series:?}"
        );
        if title.starts_with("mTLS") {
            ensure!(
                series[&("tester".to_owned(), "service-c".to_owned())] == 0.0,
                "{title}: {series:?}"
            );
            ensure!(
                series[&("service-a".to_owned(), "service-b".to_owned())] == 1.0,
                "{title}: {series:?}"
            );
        }
        if title.starts_with("Success") {
            // The failures came in one burst: a rate may or may not see them, so only the
            // edges without any are exact.
            for (source, destination) in [(GATEWAY_ID, "service-c"), ("service-a", "service-b")] {
                let v = series[&(source.to_owned(), destination.to_owned())];
                ensure!(
                    v == 1.0,
                    "{title}: {series:?}\n{}",
                    raw(prom, source, destination)?
                );
            }
        }
        if !title.starts_with("p99") {
            ensure!(
                series.values().all(|v| v.is_finite() && *v >= 0.0),
                "{title}: {series:?}"
            );
        }
    }
    Ok(())
}

/// An edge's raw samples over the last minute, for failure messages.
fn raw(prom: u16, source: &str, destination: &str) -> Result<String> {
    let q = format!("meshtally_requests_total{{direction=\"inbound\",source=\"{source}\",destination=\"{destination}\"}}[1m]");
    Ok(serde_json::to_string(&query(prom, &q)?)?)
}
