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

mod prometheus;
mod streams;

use prometheus::{prometheus_agrees, query};
use streams::{
    tap_ends_when_its_reader_goes, tap_keeps_up, top_watch_prints_a_window_after_another,
};

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
