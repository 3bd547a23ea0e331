//! Calls that leave the mesh, on a real local mesh: `up` runs an outside server per external
//! entry (demo-service, behind a TLS front for TLS origination, its certificate from the
//! outside CA the sidecars trust), and the declared host reaches it through the caller's
//! sidecar on loopback. Held here: a declared host answers (plain, and with the sidecar
//! originating TLS with the declared SNI); an undeclared host is refused under `registry_only`
//! (502, never reaching the server) and passes under `allow_any`; the entry's timeout turns a
//! slow answer into the sidecar's 504; a caller left out of `callers` is refused; a server
//! whose certificate the trusted CA did not sign is a prompt 503, tapped; and every call is
//! counted exactly, with the entry's name (or the BlackHoleCluster / PassthroughCluster) as
//! its destination and `destination_version="external"`.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use meshtally_tests::http;
use meshtally_tests::mesh::LocalMesh;
use serde_json::Value;

fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect()
}

const PAYMENTS: &str = "api.payments.example";
const WEATHER: &str = "weather.example.org";

fn mesh_file(ports: &[u16], policy: &str, callers: bool, extra: &str) -> String {
    let callers = if callers { ", callers: [buyer]" } else { "" };
    format!(
        "services:
  - name: buyer
    port: {}
  - name: clerk
    port: {}
outbound_policy: {policy}
external:
  - {{name: payments, host: {PAYMENTS}, port: 443, protocol: https, tls_origination: true, timeout: 500ms{callers}{extra}}}
  - {{name: weather, host: {WEATHER}, port: 8080, protocol: http, timeout: 800ms}}
",
        ports[0], ports[1]
    )
}

/// An outbound series: (source, destination, destination_version, response class).
type Series = (String, String, String, String);

/// Outbound calls per series from `stats --json`.
fn outbound(m: &LocalMesh) -> Result<BTreeMap<Series, u64>> {
    let out = m.run("stats", &["--json"]);
    ensure!(
        out.status.success(),
        "stats: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout)?;
    let mut map = BTreeMap::new();
    for r in rows.as_array().into_iter().flatten() {
        if r["direction"] != "outbound" {
            continue;
        }
        let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        *map.entry((
            s("source"),
            s("destination"),
            s("destination_version"),
            s("response_code_class"),
        ))
        .or_default() += r["count"].as_u64().unwrap_or(0);
    }
    Ok(map)
}

fn key(source: &str, destination: &str, class: &str) -> Series {
    (
        source.into(),
        destination.into(),
        "external".into(),
        class.into(),
    )
}

/// Waits until the counters say `want` for every key given (a stats flush is 0.2 s).
fn counted(m: &LocalMesh, want: &[(Series, u64)]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = outbound(m)?;
        let wrong: Vec<String> = want
            .iter()
            .filter(|(k, n)| got.get(k).copied().unwrap_or(0) != *n)
            .map(|(k, n)| format!("{k:?}: want {n}, got {:?}", got.get(k)))
            .collect();
        if wrong.is_empty() {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "counts: {}; all outbound: {got:?}",
            wrong.join("; ")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How many `/info` requests an outside server's app served (its own `/stats`, which counts
/// no read of itself).
fn served(port: u16) -> Result<u64> {
    let stats = http::get(port, "/stats", &[])?.json()?;
    stats["served"]["info"].as_u64().context("served.info")
}

/// Calls `/call-external/<entry><rest>` of `service` through the gateway.
fn call(gw: u16, service: &str, entry: &str, rest: &str) -> Result<(u16, Value)> {
    let r = http::get(gw, &format!("/{service}/call-external/{entry}{rest}"), &[])?;
    let body = r.json().unwrap_or(Value::Null);
    Ok((r.status, body))
}

#[test]
fn external_services_under_registry_only() -> Result<()> {
    let ports = free_ports(3);
    let m = LocalMesh::up_file(&mesh_file(&ports, "registry_only", true, ""), ports[2], &[])?;
    let gw = m.gateway();
    // Every config `up` wrote passes Envoy's validation: the sidecars' (with the egress
    // clusters, routes and the block_all catch-all) and the outside TLS front's.
    let checked = m.validate_configs()?;
    ensure!(checked == 4, "validated {checked} configs");
    let weather_server = m
        .layout
        .external
        .iter()
        .find(|e| e.entry.name == "weather")
        .context("weather in the plan")?
        .server_port;
    const N: u64 = 20;

    // TLS origination: the app speaks plain HTTP to port 80; the outside server saw TLS, with
    // the declared SNI (its TLS front admits no other name).
    for _ in 0..N {
        let (status, body) = call(gw, "buyer", "payments", "")?;
        ensure!(status == 200, "payments: {status} {body}");
        let seen = &body["body"]["request_headers"];
        ensure!(body["body"]["service"] == "payments", "{body}");
        ensure!(seen["x-outside-sni"] == PAYMENTS, "SNI: {body}");
        ensure!(
            seen["x-outside-tls-version"]
                .as_str()
                .is_some_and(|v| v.starts_with("TLSv1.")),
            "TLS: {body}"
        );
        ensure!(seen["host"] == PAYMENTS, "{body}");
    }
    // Plain HTTP to a declared host, from both services (no callers list).
    for service in ["buyer", "clerk"] {
        for _ in 0..N {
            let (status, body) = call(gw, service, "weather", "")?;
            ensure!(status == 200, "weather from {service}: {status} {body}");
            ensure!(body["body"]["service"] == "weather", "{body}");
            ensure!(
                body["body"]["request_headers"]["host"] == format!("{WEATHER}:8080"),
                "{body}"
            );
        }
    }
    // A caller left out of `callers` is refused by its own sidecar: the BlackHoleCluster's 502.
    for _ in 0..5 {
        let (status, body) = call(gw, "clerk", "payments", "")?;
        ensure!(status == 502, "clerk → payments: {status} {body}");
        ensure!(body["response_headers"]["server"] == "envoy", "{body}");
    }
    // An undeclared host (the weather server by its address, which the mesh does not know):
    // refused by the sidecar, and the server never sees the request.
    let before = served(weather_server)?;
    let buyer = m.layout.service("buyer").context("buyer")?;
    for _ in 0..5 {
        let r = http::get_host(
            buyer.outbound_port,
            &format!("127.0.0.1:{weather_server}"),
            "/info",
            &[("x-mesh-hops", b"0")],
        )?;
        ensure!(
            r.status == 502,
            "undeclared host: {} {}",
            r.status,
            r.text()
        );
    }
    ensure!(
        served(weather_server)? == before,
        "the undeclared calls reached the server"
    );
    // The entry's timeout: a 1.5 s answer becomes the sidecar's 504 at 0.5 s.
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = call(gw, "buyer", "payments", "/delay/1500")?;
        let took = started.elapsed();
        ensure!(status == 504, "slow payments: {status} {body}");
        ensure!(body["body"] == "upstream request timeout", "{body}");
        ensure!(
            (Duration::from_millis(480)..Duration::from_millis(900)).contains(&took),
            "the 504 came after {took:?}, not at the 500ms timeout"
        );
    }
    counted(
        &m,
        &[
            (key("buyer", "payments", "2xx"), N),
            (key("buyer", "payments", "5xx"), 3),
            (key("buyer", "weather", "2xx"), N),
            (key("clerk", "weather", "2xx"), N),
            (key("clerk", "BlackHoleCluster", "5xx"), 5),
            (key("buyer", "BlackHoleCluster", "5xx"), 5),
        ],
    )?;
    // `edges` shows the calls that left the mesh from their callers' records, blocked ones as
    // the BlackHoleCluster's, with why no callee saw them (the access logs are flushed every
    // 0.1 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let edges = m.run("edges", &["--json"]);
        ensure!(edges.status.success(), "edges failed");
        let edges: Value = serde_json::from_slice(&edges.stdout)?;
        let edge = |s: &str, d: &str| {
            edges
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["source"] == s && e["destination"] == d)
                .and_then(|e| e["requests"].as_u64())
        };
        if edge("buyer", "payments") == Some(N + 3) && edge("clerk", "BlackHoleCluster") == Some(5)
        {
            break;
        }
        if Instant::now() >= deadline {
            let log = std::fs::read_to_string(
                m.state_dir().join("logs").join("buyer-sidecar.access.log"),
            )
            .unwrap_or_default();
            let to_payments: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("\"direction\":\"outbound\"") && l.contains(PAYMENTS))
                .collect();
            anyhow::bail!("edges: {edges}; buyer's outbound records to payments: {to_payments:#?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

#[test]
fn undeclared_hosts_pass_under_allow_any() -> Result<()> {
    let ports = free_ports(3);
    let m = LocalMesh::up_file(&mesh_file(&ports, "allow_any", false, ""), ports[2], &[])?;
    ensure!(m.validate_configs()? == 4);
    let weather_server = m
        .layout
        .external
        .iter()
        .find(|e| e.entry.name == "weather")
        .context("weather in the plan")?
        .server_port;
    let buyer = m.layout.service("buyer").context("buyer")?;
    let before = served(weather_server)?;
    for _ in 0..5 {
        let r = http::get_host(
            buyer.outbound_port,
            &format!("127.0.0.1:{weather_server}"),
            "/info",
            &[],
        )?;
        ensure!(r.status == 200, "passthrough: {} {}", r.status, r.text());
        ensure!(r.json()?["service"] == "weather", "{}", r.text());
    }
    ensure!(
        served(weather_server)? == before + 5,
        "the passed-through calls reached the server"
    );
    // Declared hosts are still routed by their entries, callers or not.
    let (status, body) = call(m.gateway(), "clerk", "payments", "")?;
    ensure!(status == 200, "{status} {body}");
    counted(
        &m,
        &[
            (key("buyer", "PassthroughCluster", "2xx"), 5),
            (key("clerk", "payments", "2xx"), 1),
        ],
    )?;
    Ok(())
}

/// A TLS-origination target whose certificate the trusted roots did not sign: the sidecar
/// refuses the handshake, the call is a prompt 503 in `tap`, counted as such.
#[test]
fn an_unsigned_server_certificate_is_a_prompt_503() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Roots that never signed the outside server's certificate.
    let foreign = meshtally_envoy::pki::Ca::new(dir.path(), "foreign")?;
    let extra = format!(", ca_certificates: {}", foreign.cert_path.display());
    let ports = free_ports(3);
    let m = LocalMesh::up_file(
        &mesh_file(&ports, "registry_only", false, &extra),
        ports[2],
        &[],
    )?;
    // Guarded: stopped when the test ends, also on failure.
    let mut command = std::process::Command::new(meshtally_tests::mesh::binary("deployer"));
    command
        .args(["tap", "--json", "--to", "payments", "--state-dir"])
        .arg(m.state_dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut tap = meshtally_testkit::process::Guarded::spawn(command, "deployer tap")?;
    let stdout = tap.take_stdout().context("tap's stdout")?;
    let lines = std::thread::spawn(move || {
        use std::io::BufRead as _;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take(3)
            .collect::<Vec<String>>()
    });
    // tap follows the logs from the moment it is ready.
    std::thread::sleep(Duration::from_millis(800));
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = call(m.gateway(), "buyer", "payments", "")?;
        ensure!(status == 503, "unsigned server: {status} {body}");
        let text = body["body"].as_str().unwrap_or_default();
        ensure!(text.starts_with("upstream connect error"), "{body}");
        ensure!(
            started.elapsed() < Duration::from_secs(2),
            "no hang: {:?}",
            started.elapsed()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lines.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(tap);
    let lines = lines.join().unwrap_or_default();
    ensure!(lines.len() == 3, "tap showed {lines:?}");
    for line in &lines {
        let t: Value = serde_json::from_str(line)?;
        ensure!(
            t["source"] == "buyer" && t["destination"] == "payments" && t["version"] == "external",
            "{line}"
        );
        ensure!(
            t["failure"]
                .as_str()
                .is_some_and(|f| f.contains("CERTIFICATE_VERIFY_FAILED")),
            "tap says why: {line}"
        );
    }
    counted(&m, &[(key("buyer", "payments", "5xx"), 3)])?;
    Ok(())
}

/// Bad entries are refused before anything starts, in one line naming the entry and field.
#[test]
fn a_bad_entry_starts_nothing() -> Result<()> {
    let ports = free_ports(3);
    let bad = mesh_file(&ports, "allow_any", true, "");
    let err = match LocalMesh::up_file(&bad, ports[2], &[]) {
        Ok(_) => anyhow::bail!("up started a mesh whose entry names callers under allow_any"),
        Err(e) => e.to_string(),
    };
    ensure!(
        err.contains(
            "external[0].callers: external `payments`: under outbound_policy: allow_any a caller left out passes through anyway"
        ),
        "{err}"
    );
    let missing = mesh_file(
        &ports,
        "registry_only",
        false,
        ", ca_certificates: /nonexistent/ca.pem",
    );
    let err = match LocalMesh::up_file(&missing, ports[2], &[]) {
        Ok(_) => anyhow::bail!("up started with roots that are not there"),
        Err(e) => e.to_string(),
    };
    ensure!(
        err.contains(
            "external `payments`: ca_certificates: /nonexistent/ca.pem is not a file here"
        ),
        "{err}"
    );
    for port in [ports[0], ports[1], ports[2]] {
        ensure!(
            TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is held"
        );
    }
    Ok(())
}

/// The dashboard, in Chromium, draws an external host and the BlackHoleCluster as nodes of
/// their own (diamonds, where a service is a circle), with the edges into them, the blocked one
/// failing (`tests/dashboard/external.test.mjs`).
#[test]
fn the_dashboard_draws_external_hosts_apart() -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = crate::dashboard::tools()?;
    let out = meshtally_tests::workspace_root().join("target/test-output/dashboard");
    std::fs::create_dir_all(&out)?;
    let ports = free_ports(3);
    let m = LocalMesh::up_file(&mesh_file(&ports, "registry_only", true, ""), ports[2], &[])?;
    let (_dashboard, url) = crate::dashboard::dashboard(&m.state_dir(), &out)?;
    let log = out.join("node-external.log");
    let log_file = std::fs::File::create(&log)?;
    let mut command = std::process::Command::new("node");
    command
        .arg("external.test.mjs")
        .current_dir(&dir)
        .env("DASHBOARD_URL", &url)
        .env("OUT_DIR", &out)
        .env("EXTERNAL", "payments")
        .env("CALLER", "buyer")
        .env("BLOCKED", "clerk")
        .env("CHROMIUM", crate::dashboard::CHROMIUM)
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    let mut node =
        meshtally_testkit::process::Guarded::spawn_group(command, "node external.test.mjs")?;
    let stop = AtomicBool::new(false);
    let gw = m.gateway();
    let status = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let _ = call(gw, "buyer", "payments", "");
                let _ = call(gw, "clerk", "payments", "");
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let status = node.wait_bounded(Duration::from_secs(90));
        stop.store(true, Ordering::SeqCst);
        status
    })?;
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    ensure!(
        status.success(),
        "the browser test failed ({status}):\n{said}"
    );
    eprintln!("{said}");
    Ok(())
}
