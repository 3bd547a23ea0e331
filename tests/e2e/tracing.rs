//! Traces on a real local mesh with a real Zipkin (`up --tracing`): every call through the
//! gateway to service-c, then service-a (a 90/10 canary), then service-b is one trace whose
//! spans chain by parent id with the kinds, statuses and meshtally's tags the client's view
//! implies; Zipkin's dependency links equal `deployer edges` and the sidecars' counters; at
//! `--sampling 10` the traced share is binomial; and a backend SIGKILLed under load loses no
//! request and no count, then takes spans again once the supervisor brings it back.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use meshtally_tests::binomial_bounds;
use meshtally_tests::http;
use meshtally_tests::load::Load;
use meshtally_tests::mesh::LocalMesh;
use serde_json::Value;

const GATEWAY_ID: &str = "istio-ingressgateway-service-account";
const CHAIN: &str = "/service-c/call/service-a/call/service-b";

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A mesh of a, b, c (a split 90/10) with a Zipkin on its own port.
fn traced_mesh(extra: &[&str]) -> Result<(LocalMesh, u16)> {
    let (base, gateway) = meshtally_tests::mesh::free_ports(3)?;
    let zipkin = free_port()?;
    let file = format!(
        "services:
  - name: service-a
    port: {base}
    versions: [{{name: v1, weight: 90}}, {{name: v2, weight: 10}}]
  - {{name: service-b, port: {}}}
  - {{name: service-c, port: {}}}
",
        base + 1,
        base + 2
    );
    let tracing = format!("--tracing={zipkin}");
    let mut args = vec![tracing.as_str()];
    args.extend_from_slice(extra);
    Ok((LocalMesh::up_file(&file, gateway, &args)?, zipkin))
}

fn zipkin_get(port: u16, path: &str) -> Result<(u16, Value)> {
    let r = http::get(port, path, &[])?;
    let status = r.status;
    Ok((
        status,
        if status == 200 {
            r.json()?
        } else {
            Value::Null
        },
    ))
}

/// A trace id the client chooses (b3), so each request's trace is known.
fn trace_id(i: usize) -> String {
    format!("{:016x}{:016x}", 0x6d65_7368_7461_6c6c_u64, i as u64 + 1)
}

fn tag<'a>(span: &'a Value, name: &str) -> &'a str {
    span["tags"][name].as_str().unwrap_or_default()
}

/// Calls per (source, destination), and per destination version.
type Counts = (BTreeMap<(String, String), u64>, BTreeMap<String, u64>);

/// Inbound calls per (source, destination) and per destination version, from `deployer stats`.
fn inbound_counts(m: &LocalMesh) -> Result<Counts> {
    let out = m.run("stats", &["--json"]);
    ensure!(
        out.status.success(),
        "stats: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut pairs, mut versions) = (BTreeMap::new(), BTreeMap::new());
    for r in serde_json::from_slice::<Value>(&out.stdout)?
        .as_array()
        .into_iter()
        .flatten()
    {
        if r["direction"] != "inbound" {
            continue;
        }
        let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        let n = r["count"].as_u64().unwrap_or(0);
        *pairs.entry((s("source"), s("destination"))).or_default() += n;
        if s("destination") == "service-a" {
            *versions.entry(s("destination_version")).or_default() += n;
        }
    }
    Ok((pairs, versions))
}

#[test]
fn every_call_is_one_trace_chained_and_tagged_as_the_client_saw_it() -> Result<()> {
    const N: usize = 300;
    let (m, zipkin) = traced_mesh(&[])?;
    let gw = m.gateway();
    // The client starts each trace (b3 headers), so every request's trace id is known.
    let next = AtomicUsize::new(0);
    let seen = std::sync::Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                while let i @ 0..N = next.fetch_add(1, Ordering::SeqCst) {
                    let id = trace_id(i);
                    let span = format!("{:016x}", i + 1);
                    let r = http::get(
                        gw,
                        CHAIN,
                        &[
                            ("x-b3-traceid", id.as_bytes()),
                            ("x-b3-spanid", span.as_bytes()),
                            ("x-b3-sampled", b"1"),
                        ],
                    );
                    // c's answer holds a's, which names a's version.
                    let outcome = r.ok().map(|r| {
                        let version = r
                            .json()
                            .ok()
                            .and_then(|b| b["body"]["version"].as_str().map(str::to_owned));
                        (r.status, version)
                    });
                    seen.lock().map(|mut s| s.insert(id, outcome)).ok();
                }
            });
        }
    });
    let seen = seen.into_inner().map_err(|_| anyhow::anyhow!("poisoned"))?;
    ensure!(seen.len() == N, "{} of {N} requests recorded", seen.len());

    // Envoy's Zipkin tracer flushes every 5 s (or 5 spans): poll until every trace is whole.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut v2 = 0;
    for (id, outcome) in &seen {
        let (status, version) = outcome.clone().context("a request failed outright")?;
        ensure!(status == 200, "{id}: the client got {status}");
        let spans = loop {
            let (code, spans) = zipkin_get(zipkin, &format!("/api/v2/trace/{id}"))?;
            let n = spans.as_array().map_or(0, Vec::len);
            if code == 200 && n >= 7 {
                break spans;
            }
            ensure!(
                Instant::now() < deadline,
                "trace {id}: {n} spans of 7 after 30 s"
            );
            std::thread::sleep(Duration::from_millis(250));
        };
        let spans = spans.as_array().context("spans")?;
        ensure!(spans.len() == 7, "trace {id}: {} spans", spans.len());
        // gateway SERVER → gateway CLIENT → c SERVER → c CLIENT → a SERVER → a CLIENT → b SERVER,
        // each the parent of the next.
        let want = [
            ("SERVER", "istio-ingressgateway.istio-system"),
            ("CLIENT", "istio-ingressgateway.istio-system"),
            ("SERVER", "service-c.istio-demo"),
            ("CLIENT", "service-c.istio-demo"),
            ("SERVER", "service-a.istio-demo"),
            ("CLIENT", "service-a.istio-demo"),
            ("SERVER", "service-b.istio-demo"),
        ];
        let mut parent = format!(
            "{:016x}",
            id.get(16..)
                .map_or(0, |s| u64::from_str_radix(s, 16).unwrap_or(0))
        );
        let mut chain = Vec::new();
        for (kind, service) in want {
            let span = spans
                .iter()
                .find(|s| s["parentId"] == parent.as_str() && s["kind"] == kind)
                .with_context(|| {
                    format!("trace {id}: no {kind} span of {service} under {parent}: {spans:#?}")
                })?;
            ensure!(
                span["localEndpoint"]["serviceName"] == service,
                "trace {id}: {span}"
            );
            ensure!(tag(span, "http.status_code") == "200", "trace {id}: {span}");
            parent = span["id"].as_str().unwrap_or_default().to_owned();
            chain.push(span);
        }
        // The callee's verified caller and the certificate flag on each SERVER span.
        for (i, caller) in [(2, GATEWAY_ID), (4, "service-c"), (6, "service-a")] {
            ensure!(
                tag(chain[i], "mesh.source") == caller,
                "trace {id}: {}",
                chain[i]
            );
            ensure!(
                tag(chain[i], "mesh.peer_verified") == "true",
                "trace {id}: {}",
                chain[i]
            );
        }
        // The version that answered: service-a's SERVER span names the one whose answer c got.
        let served = tag(chain[4], "istio.canonical_revision");
        ensure!(
            Some(served) == version.as_deref(),
            "trace {id}: span says {served}, the answer {version:?}"
        );
        v2 += usize::from(served == "v2");
    }
    let (lo, hi) = binomial_bounds(N, 0.10);
    ensure!(
        (lo..=hi).contains(&(v2 as f64)),
        "v2 answered {v2} of {N}, outside [{lo:.0}, {hi:.0}]"
    );

    // Zipkin's dependency links: the same pairs as `deployer edges`, and at 100 % sampling the
    // same call counts as the callees' counters.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let (_, links) = zipkin_get(
        zipkin,
        &format!("/api/v2/dependencies?endTs={now_ms}&lookback=3600000"),
    )?;
    let short = |s: &str| match s.split('.').next().unwrap_or(s) {
        "istio-ingressgateway" => GATEWAY_ID.to_owned(),
        other => other.to_owned(),
    };
    let zipkin_pairs: BTreeMap<(String, String), u64> = links
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let key = (
                short(l["parent"].as_str().unwrap_or_default()),
                short(l["child"].as_str().unwrap_or_default()),
            );
            (key, l["callCount"].as_u64().unwrap_or(0))
        })
        .collect();
    let edges = m.run("edges", &["--json"]);
    ensure!(
        edges.status.success(),
        "edges: {}",
        String::from_utf8_lossy(&edges.stderr)
    );
    let edge_pairs: BTreeSet<(String, String)> = serde_json::from_slice::<Value>(&edges.stdout)?
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["source"].as_str().unwrap_or_default().to_owned(),
                e["destination"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    ensure!(
        zipkin_pairs.keys().cloned().collect::<BTreeSet<_>>() == edge_pairs,
        "zipkin's links {zipkin_pairs:?} != deployer edges {edge_pairs:?}"
    );
    let (counted, versions) = inbound_counts(&m)?;
    ensure!(
        zipkin_pairs == counted,
        "zipkin's call counts {zipkin_pairs:?} != the sidecars' {counted:?}"
    );
    ensure!(
        versions.get("v2").copied() == Some(v2 as u64),
        "service-a v2: counted {versions:?}, traced {v2}"
    );

    // `deployer trace` shows one of them as its call tree.
    let id = seen.keys().next().context("a trace")?;
    let out = m.run("trace", &[id.as_str(), "--json"]);
    ensure!(
        out.status.success(),
        "trace {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: Value = serde_json::from_slice(&out.stdout)?;
    let calls: Vec<(String, String, bool)> = t["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["source"].as_str().unwrap_or_default().to_owned(),
                c["destination"].as_str().unwrap_or_default().to_owned(),
                c["mtls"] == true,
            )
        })
        .collect();
    ensure!(
        calls
            == [
                (
                    "istio-ingressgateway".to_owned(),
                    "service-c".to_owned(),
                    true
                ),
                ("service-c".to_owned(), "service-a".to_owned(), true),
                ("service-a".to_owned(), "service-b".to_owned(), true)
            ],
        "{t:#}"
    );

    // Bad input: one line each, non-zero.
    for (args, says) in [
        (
            &["--service", "nope"][..],
            "--service nope: not a service of this mesh",
        ),
        (
            &["0123456789abcdef0123456789abcdef"][..],
            "no trace 0123456789abcdef0123456789abcdef",
        ),
        (&["not-hex"][..], "is not 16 or 32 hex digits"),
    ] {
        let out = m.run("trace", args);
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && err.contains(says) && err.trim().lines().count() == 1,
            "trace {args:?}: {err}"
        );
    }

    // The dashboard's edge details list that edge's recent traces, each linking to Zipkin's page.
    let mut command = std::process::Command::new(meshtally_tests::mesh::binary("deployer"));
    command
        .args(["dashboard", "--port", "0", "--state-dir"])
        .arg(m.state_dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut dashboard = meshtally_testkit::process::Guarded::spawn(command, "deployer dashboard")?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(dashboard.take_stdout().context("stdout")?),
        &mut line,
    )?;
    let port: u16 = line
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.trim().trim_end_matches('/').split('/').next())
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("no url in {line:?}"))?;
    let listed = http::get(
        port,
        "/api/traces?source=service-c&destination=service-a",
        &[],
    )?
    .json()?;
    let links = listed["traces"].as_array().context("traces")?;
    ensure!(!links.is_empty() && links.len() <= 5, "{listed}");
    for l in links {
        let id = l["trace_id"].as_str().unwrap_or_default();
        ensure!(
            seen.contains_key(id),
            "the dashboard lists {id}, not one of ours"
        );
        let url = l["url"].as_str().unwrap_or_default();
        ensure!(
            url == format!("http://127.0.0.1:{zipkin}/zipkin/traces/{id}"),
            "{url}"
        );
        ensure!(
            http::get(zipkin, &format!("/zipkin/traces/{id}"), &[])?.status == 200,
            "{url}"
        );
    }
    Ok(())
}

/// Traces whose root is a gateway request for `path`.
fn traced_requests(zipkin: u16, path: &str) -> Result<usize> {
    let (_, traces) = zipkin_get(
        zipkin,
        "/api/v2/traces?serviceName=istio-ingressgateway.istio-system&limit=100000&lookback=3600000",
    )?;
    Ok(traces
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            t.as_array()
                .into_iter()
                .flatten()
                .any(|s| s["kind"] == "SERVER" && tag(s, "http.url").ends_with(path))
        })
        .count())
}

#[test]
fn sampling_is_binomial_and_a_dead_backend_loses_no_request() -> Result<()> {
    const N: usize = 2000;
    let (m, zipkin) = traced_mesh(&["--sampling", "10"])?;
    let sampled_path = "/service-b/info?phase=sampled".to_owned();
    let paths = vec![sampled_path.clone(); N];
    let load = Load {
        port: m.gateway(),
        connections: 8,
        paths: &paths,
        stop: None,
        deadline: Duration::from_secs(120),
        keep_alive: true,
    };
    let outcomes = load.run();
    ensure!(
        outcomes.len() == N && outcomes.iter().all(|o| o.status == Some(200)),
        "sampling phase: {} of {N} ok",
        outcomes.iter().filter(|o| o.status == Some(200)).count()
    );
    // Spans are flushed within 5 s; the count stops moving once all are in.
    let (lo, hi) = binomial_bounds(N, 0.10);
    let mut traced = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        let now = traced_requests(zipkin, "phase=sampled")?;
        if now == traced && now > 0 {
            break;
        }
        traced = now;
    }
    ensure!(
        (lo..=hi).contains(&(traced as f64)),
        "{traced} of {N} traced at 10 %, outside [{lo:.0}, {hi:.0}]"
    );
    eprintln!("sampling 10 %: {traced} of {N} traced (bounds [{lo:.0}, {hi:.0}])");

    // SIGKILL the backend under load: every request still succeeds, every one is counted.
    let before = inbound_counts(&m)?.0;
    let pid = *m.pids().get("zipkin").context("zipkin's pid")?;
    let stop = AtomicBool::new(false);
    let load_paths = vec!["/service-c/call/service-a".to_owned(); 200_000];
    let outcomes = std::thread::scope(|scope| {
        let load = Load {
            port: m.gateway(),
            connections: 8,
            paths: &load_paths,
            stop: Some(&stop),
            deadline: Duration::from_secs(60),
            keep_alive: true,
        };
        let handle = scope.spawn(move || load.run());
        std::thread::sleep(Duration::from_millis(700));
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(2500));
        stop.store(true, Ordering::SeqCst);
        handle.join().unwrap_or_default()
    });
    let sent = outcomes.len() as u64;
    let failed = outcomes.iter().filter(|o| o.status != Some(200)).count();
    ensure!(
        sent > 100 && failed == 0,
        "{failed} of {sent} requests failed with the backend killed"
    );
    let want = |pairs: &BTreeMap<(String, String), u64>, s: &str, d: &str| {
        pairs
            .get(&(s.to_owned(), d.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let after = inbound_counts(&m)?.0;
        let into_c = want(&after, GATEWAY_ID, "service-c") - want(&before, GATEWAY_ID, "service-c");
        let c_to_a =
            want(&after, "service-c", "service-a") - want(&before, "service-c", "service-a");
        if into_c == sent && c_to_a == sent {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "sent {sent}, counted {into_c} into c and {c_to_a} c→a"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // While it is down, `deployer trace` says so in one line (the supervisor may already be
    // bringing it back: then it answers, which is fine too).
    let out = m.run("trace", &[]);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            err.contains(&format!(
                "cannot reach the trace backend at http://127.0.0.1:{zipkin}"
            )) && err.trim().lines().count() == 1,
            "{err}"
        );
    }
    // The supervisor brings the backend back; forced-sampled requests are traced again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while zipkin_get(zipkin, "/health").map(|(s, _)| s).unwrap_or(0) != 200 {
        ensure!(
            Instant::now() < deadline,
            "zipkin did not come back:\n{}",
            m.log("supervisor")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for i in 0..10 {
        let id = trace_id(1_000_000 + i);
        let r = http::get(
            m.gateway(),
            "/service-a/info?phase=resumed",
            &[
                ("x-b3-traceid", id.as_bytes()),
                ("x-b3-spanid", b"00000000000000aa"),
                ("x-b3-sampled", b"1"),
            ],
        )?;
        ensure!(r.status == 200, "after the restart: {}", r.status);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while traced_requests(zipkin, "phase=resumed")? < 10 {
        ensure!(
            Instant::now() < deadline,
            "spans did not resume after the backend came back"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}
