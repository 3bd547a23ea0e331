//! Seeing the mesh on a real local mesh with a real Prometheus: a known workload (N calls per
//! ordered pair through the gateway, a known number failing because a callee's app was killed,
//! one caller in plain text), then `top --json`, Prometheus's HTTP API (per-pair sums, the
//! rendered dashboard's every query, checked by promtool first), `edges`, `status` and
//! `tap --json` are held to it. Ports come from `deployer status --json`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use meshtally_tests::http;
use meshtally_tests::load::Load;
use meshtally_tests::mesh::{binary, LocalMesh};
use serde_json::Value;

const SERVICES: [&str; 3] = ["service-a", "service-b", "service-c"];
const GATEWAY_ID: &str = "istio-ingressgateway-service-account";
/// Calls per ordered pair.
const N: u64 = 20;
/// Calls into service-b while its app is down.
const FAILED: u64 = 5;
/// Plain-text calls into service-c claiming to come from `tester`.
const PLAIN: u64 = 10;
/// Between rounds of calls: the workload spans several 1 s scrapes, so Prometheus sees every
/// series grow and its rates are not zero.
const ROUND_GAP: Duration = Duration::from_millis(150);

/// A `deployer` run in the background, killed on drop.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(
    m: &LocalMesh,
    cmd: &str,
    args: &[&str],
) -> Result<(Background, BufReader<std::process::ChildStderr>)> {
    let state = m.state_dir();
    let mut child = Command::new(binary("deployer"))
        .arg(cmd)
        .arg("--state-dir")
        .arg(&state)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = BufReader::new(child.stderr.take().context("stderr")?);
    Ok((Background(child), stderr))
}

/// Waits for the line that says the command is reading (its first read is done).
fn wait_for(stderr: &mut BufReader<std::process::ChildStderr>, what: &str) -> Result<()> {
    let mut line = String::new();
    stderr.read_line(&mut line)?;
    ensure!(line.contains(what), "expected {what:?}, got {line:?}");
    Ok(())
}

fn status(m: &LocalMesh) -> Result<Value> {
    let out = m.run("status", &["--json"]);
    ensure!(
        out.status.success(),
        "status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn process<'a>(status: &'a Value, name: &str) -> Result<&'a Value> {
    status["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .with_context(|| format!("{name} missing from status: {status}"))
}

fn port(status: &Value, name: &str, port: &str) -> Result<u16> {
    let p = process(status, name)?["ports"][port].as_u64();
    Ok(u16::try_from(
        p.with_context(|| format!("no {port} port for {name}"))?,
    )?)
}

/// The known workload; returns nothing but fails if any call did not answer as planned.
fn workload(m: &LocalMesh, st: &Value) -> Result<()> {
    let gateway = port(st, "ingress-gateway", "gateway")?;
    let c = port(st, "service-c-sidecar", "inbound")?;
    for round in 0..N {
        for from in SERVICES {
            for to in SERVICES.iter().filter(|t| **t != from) {
                let r = http::get(gateway, &format!("/{from}/call/{to}"), &[])?;
                ensure!(r.status == 200, "{from}→{to}: {} {}", r.status, r.text());
            }
        }
        if round % (N / PLAIN) == 0 {
            let r = http::get_host(c, "service-c", "/info", &[("x-mesh-source", b"tester")])?;
            ensure!(r.status == 200, "plain call: {}", r.status);
        }
        std::thread::sleep(ROUND_GAP);
    }
    // Kill service-b's app: its sidecar answers 503 until the supervisor restarts it (1 s).
    let pid = process(st, "service-b")?["pid"]
        .as_u64()
        .context("service-b pid")?;
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(2);
    while meshtally_deployer::local_mesh::alive(pid as i32) {
        ensure!(Instant::now() < deadline, "service-b's app did not die");
        std::thread::sleep(Duration::from_millis(5));
    }
    for _ in 0..FAILED {
        let r = http::get(gateway, "/service-b/info", &[])?;
        ensure!(
            r.status == 503,
            "with its app down, service-b answered {}",
            r.status
        );
    }
    // Back after the restart, and status counted it.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let st = status(m)?;
        let b = process(&st, "service-b")?;
        if b["healthy"] == true {
            ensure!(b["restarts"] == 1, "restarts: {b}");
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "service-b did not come back: {b}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

type Edge = (String, String);

fn edge(rows: &Value, source: &str, destination: &str) -> Result<Value> {
    rows.as_array()
        .into_iter()
        .flatten()
        .find(|r| r["source"] == source && r["destination"] == destination)
        .cloned()
        .with_context(|| format!("no edge {source}→{destination} in {rows}"))
}

#[test]
fn top_edges_status_and_tap_tell_the_known_workload() -> Result<()> {
    let prometheus_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let flag = format!("--prometheus={prometheus_port}");
    let m = LocalMesh::up_on_free_ports(3, &["--mtls", "permissive", &flag])?;
    let st = status(&m)?;
    for p in st["processes"].as_array().context("processes")? {
        ensure!(
            p["running"] == true && p["healthy"] == true && p["restarts"] == 0,
            "{p}"
        );
    }
    ensure!(st["processes"].as_array().map(Vec::len) == Some(8), "{st}");
    ensure!(
        process(&st, "prometheus")?["urls"]["prometheus"]
            == format!("http://127.0.0.1:{prometheus_port}/"),
        "{st}"
    );

    // Prometheus scrapes its targets a few seconds after it is ready (its discovery updates
    // every 5 s): wait until every proxy was scraped once, so the workload is seen growing.
    let prom = port(&st, "prometheus", "http")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while query(prom, "count(up == 1)")?
        .first()
        .and_then(|s| s["value"][1].as_str())
        != Some("4")
    {
        ensure!(
            Instant::now() < deadline,
            "Prometheus never scraped every proxy"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let (mut top, mut top_err) = spawn(&m, "top", &["--json", "--window", "12s"])?;
    wait_for(&mut top_err, "counting calls")?;
    let begun = Instant::now();
    workload(&m, &st)?;
    ensure!(
        begun.elapsed() < Duration::from_secs(11),
        "the workload outran the window"
    );
    let mut stdout = Vec::new();
    std::io::Read::read_to_end(&mut top.0.stdout.take().context("top stdout")?, &mut stdout)?;
    ensure!(top.0.wait()?.success(), "top failed");
    let rows: Value = serde_json::from_slice(&stdout)?;

    // Expected per edge: (requests, success rate, mTLS share).
    let mut want: BTreeMap<Edge, (u64, f64, f64)> = BTreeMap::new();
    for s in SERVICES {
        let extra = if s == "service-b" { FAILED } else { 0 };
        let total = 2 * N + extra;
        want.insert(
            (GATEWAY_ID.into(), s.into()),
            (total, (2 * N) as f64 / total as f64, 1.0),
        );
        for t in SERVICES.iter().filter(|t| **t != s) {
            want.insert((s.into(), (*t).into()), (N, 1.0, 1.0));
        }
    }
    want.insert(("tester".into(), "service-c".into()), (PLAIN, 1.0, 0.0));
    ensure!(
        rows.as_array().map(Vec::len) == Some(want.len()),
        "{rows:#}"
    );
    for ((source, destination), (requests, success, mtls)) in &want {
        let row = edge(&rows, source, destination)?;
        ensure!(
            row["requests"] == *requests,
            "{source}→{destination}: {row}"
        );
        let got = row["success_rate"].as_f64().context("success_rate")?;
        ensure!(
            format!("{got:.3}") == format!("{success:.3}"),
            "{source}→{destination}: {row}"
        );
        ensure!(
            row["mtls_share"].as_f64() == Some(*mtls),
            "{source}→{destination}: {row}"
        );
        // Every service runs its one default version, which the callee's sidecar labels.
        ensure!(row["destination_version"] == "v1", "{row}");
        for q in ["p50_ms", "p95_ms", "p99_ms"] {
            ensure!(row[q].as_f64().is_some_and(|v| v >= 0.0), "{q}: {row}");
        }
    }

    prometheus_agrees(&m, prom, &rows)?;

    // edges: verified identities for mesh calls, the reason for the plain one.
    let out = m.run("edges", &["--json"]);
    ensure!(
        out.status.success(),
        "edges: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let edges: Value = serde_json::from_slice(&out.stdout)?;
    let a_b = edge(&edges, "service-a", "service-b")?;
    ensure!(
        a_b["identity"] == "spiffe://cluster.local/ns/istio-demo/sa/service-a"
            && a_b["requests"] == N,
        "{a_b}"
    );
    let plain = edge(&edges, "tester", "service-c")?;
    ensure!(plain["identity"].is_null(), "{plain}");
    ensure!(
        plain["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("plain text")),
        "{plain}"
    );
    let text = String::from_utf8(m.run("edges", &[]).stdout)?;
    ensure!(text.contains("plain text: no TLS"), "{text}");

    let gateway = port(&st, "ingress-gateway", "gateway")?;
    top_watch_prints_a_window_after_another(&m, gateway)?;
    tap_ends_when_its_reader_goes(&m, gateway)?;
    tap_keeps_up(&m, gateway)?;

    // `down` stops every process status listed, Prometheus included.
    let pids: Vec<u32> = status(&m)?["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["pid"].as_u64().and_then(|p| u32::try_from(p).ok()))
        .collect();
    ensure!(pids.len() == 8, "{pids:?}");
    ensure!(m.run("down", &[]).status.success(), "down failed");
    ensure!(
        meshtally_tests::mesh::all_gone(pids.clone()),
        "left running: {pids:?}"
    );
    Ok(())
}

/// An instant query through Prometheus's HTTP API: the result vector.
fn query(port: u16, promql: &str) -> Result<Vec<Value>> {
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
fn prometheus_agrees(m: &LocalMesh, prom: u16, top: &Value) -> Result<()> {
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

/// `top --watch --json`: one array per window, each over the calls of that window only.
fn top_watch_prints_a_window_after_another(m: &LocalMesh, gateway: u16) -> Result<()> {
    let (mut top, mut err) = spawn(m, "top", &["--watch", "--json", "--window", "1s"])?;
    wait_for(&mut err, "counting calls")?;
    let mut lines = BufReader::new(top.0.stdout.take().context("top stdout")?).lines();
    let mut windows = Vec::new();
    for calls in [3, 0] {
        for _ in 0..calls {
            ensure!(http::get(gateway, "/service-c/info", &[])?.status == 200);
        }
        let line = lines.next().context("top --watch ended")??;
        windows.push(serde_json::from_str::<Value>(&line)?);
    }
    // The calls fell into the first window (or, late, the second), once.
    let counted: u64 = windows
        .iter()
        .flat_map(|w| w.as_array().cloned().unwrap_or_default())
        .filter(|r| r["destination"] == "service-c" && r["source"] == GATEWAY_ID)
        .map(|r| r["requests"].as_u64().unwrap_or(0))
        .sum();
    ensure!(counted == 3, "{windows:?}");
    ensure!(top.0.try_wait()?.is_none(), "top --watch stopped by itself");
    Ok(())
}

/// `deployer tap | head -1`: once the reader is gone, the next line ends tap quietly, exit 0.
fn tap_ends_when_its_reader_goes(m: &LocalMesh, gateway: u16) -> Result<()> {
    let (mut tap, mut tap_err) = spawn(m, "tap", &[])?;
    wait_for(&mut tap_err, "tapping")?;
    let mut stdout = BufReader::new(tap.0.stdout.take().context("tap stdout")?);
    ensure!(http::get(gateway, "/service-a/info", &[])?.status == 200);
    let mut first = String::new();
    stdout.read_line(&mut first)?;
    ensure!(first.contains("-> service-a"), "{first}");
    drop(stdout);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = tap.0.try_wait()? {
            break status;
        }
        ensure!(Instant::now() < deadline, "tap kept running with no reader");
        http::get(gateway, "/service-a/info", &[])?;
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut tap_err, &mut rest)?;
    ensure!(
        status.success() && rest.is_empty(),
        "tap ended with {status}: {rest}"
    );
    Ok(())
}

/// `tap --json` during 10 s of ≥ 1,000 req/s through the gateway: one line per request.
fn tap_keeps_up(m: &LocalMesh, gateway: u16) -> Result<()> {
    let (mut tap, mut tap_err) = spawn(m, "tap", &["--json", "--to", "service-a"])?;
    wait_for(&mut tap_err, "tapping")?;
    let stdout = tap.0.stdout.take().context("tap stdout")?;
    let reader = std::thread::spawn(move || -> Vec<String> {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect()
    });
    let paths: Vec<String> = (0..40_000)
        .map(|i| format!("/service-a/info?n={i}"))
        .collect();
    let stop = AtomicBool::new(false);
    let load = Load {
        port: gateway,
        connections: 16,
        paths: &paths,
        stop: Some(&stop),
        deadline: Duration::from_secs(10),
        keep_alive: true,
    };
    let begun = Instant::now();
    let outcomes = load.run();
    let took = begun.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let sent = outcomes.len();
    let ok = outcomes.iter().filter(|o| o.status == Some(200)).count();
    let rate = sent as f64 / took;
    eprintln!("tap: {sent} requests in {took:.1} s ({rate:.0} req/s), {ok} answered 200");
    ensure!(ok == sent, "{} of {sent} requests failed", sent - ok);
    ensure!(rate >= 1000.0, "only {rate:.0} req/s");
    // Envoy writes its access log every 0.1 s; then Ctrl-C, and tap ends cleanly.
    std::thread::sleep(Duration::from_millis(600));
    let pid = tap.0.id();
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()?;
    let status = tap.0.wait()?;
    ensure!(status.success(), "tap ended with {status}");
    let lines = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))?;
    ensure!(
        lines.len() == sent,
        "{} lines for {sent} requests",
        lines.len()
    );
    let sample: Value = serde_json::from_str(&lines[lines.len() / 2])?;
    ensure!(sample["source"] == GATEWAY_ID, "{sample}");
    ensure!(sample["destination"] == "service-a", "{sample}");
    ensure!(sample["version"] == "v1", "{sample}");
    ensure!(sample["method"] == "GET", "{sample}");
    ensure!(
        sample["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/info?n=")),
        "{sample}"
    );
    ensure!(sample["status"] == 200, "{sample}");
    ensure!(sample["verified"] == true, "{sample}");
    ensure!(sample["latency_ms"].is_u64(), "{sample}");
    ensure!(
        sample["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{sample}"
    );
    // Every request seen exactly once.
    let mut seen: Vec<u64> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["path"].as_str()?.strip_prefix("/info?n=")?.parse().ok())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    ensure!(seen.len() == sent, "{} distinct of {sent}", seen.len());
    Ok(())
}
