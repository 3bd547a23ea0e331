//! Traffic management on the local mesh, with real Envoy on loopback: a 90/10 canary counted two
//! ways (the app's own `/info` version and `deployer stats`), a header match, fault injection,
//! a route timeout, circuit breaking and outlier detection, each rule on a service of its own in
//! one mesh file. Rates are checked against binomial 99.9 % bounds, not exact counts.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use meshtally_tests::binomial_bounds;
use meshtally_tests::envoy::validate;
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

fn mesh_file(ports: &[u16]) -> String {
    format!(
        "services:
  - name: canary
    port: {}
    versions: [{{name: v1, weight: 90}}, {{name: v2, weight: 10}}]
    match: [{{header: x-user-group, value: beta, version: v2}}]
  - name: faulty
    port: {}
    retries: {{attempts: 0}}
    fault:
      delay: {{fixed: 300ms, percent: 50}}
      abort: {{status: 503, percent: 25}}
  - name: slow
    port: {}
    timeout: 500ms
    retries: {{attempts: 0}}
  - name: breaker
    port: {}
    retries: {{attempts: 0}}
    circuit_breaker: {{max_connections: 1, max_pending: 1, max_requests: 1}}
  - name: flaky
    port: {}
    versions: [{{name: v1}}, {{name: v2, fail_status: 500}}]
    retries: {{attempts: 0}}
    circuit_breaker: {{consecutive_5xx: 3, interval: 1s, base_ejection: 30s, max_ejection_percent: 100}}
  - name: caller
    port: {}
",
        ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
    )
}

/// `n` GETs of `path` through the gateway, `threads` at a time: each response's status, the
/// version its body names (if any) and how long it took.
fn burst(
    port: u16,
    path: &str,
    headers: &[(&str, &[u8])],
    n: usize,
    threads: usize,
) -> Vec<(u16, Option<String>, Duration)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out = std::sync::Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut mine = Vec::new();
                while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < n {
                    let start = Instant::now();
                    let r = http::get(port, path, headers);
                    let took = start.elapsed();
                    mine.push(match r {
                        Ok(r) => {
                            let version = r
                                .json()
                                .ok()
                                .and_then(|b| b["version"].as_str().map(str::to_owned));
                            (r.status, version, took)
                        }
                        Err(_) => (0, None, took),
                    });
                }
                out.lock().map(|mut all| all.extend(mine)).ok();
            });
        }
    });
    out.into_inner().unwrap_or_default()
}

/// Inbound calls per (destination, version) from `deployer stats --json`.
fn inbound_by_version(m: &LocalMesh) -> Result<BTreeMap<(String, String), u64>> {
    let out = m.run("stats", &["--json"]);
    ensure!(
        out.status.success(),
        "stats: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout)?;
    let mut map = BTreeMap::new();
    for r in rows.as_array().into_iter().flatten() {
        if r["direction"] != "inbound" {
            continue;
        }
        let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        *map.entry((s("destination"), s("destination_version")))
            .or_default() += r["count"].as_u64().unwrap_or(0);
    }
    Ok(map)
}

fn outbound_5xx(m: &LocalMesh, source: &str, dest: &str) -> Result<u64> {
    let out = m.run("stats", &["--json"]);
    let rows: Value = serde_json::from_slice(&out.stdout)?;
    Ok(rows
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["direction"] == "outbound"
                && r["source"] == source
                && r["destination"] == dest
                && r["response_code_class"] == "5xx"
        })
        .map(|r| r["count"].as_u64().unwrap_or(0))
        .sum())
}

#[test]
fn traffic_rules_on_the_local_mesh() -> Result<()> {
    let ports = free_ports(7);
    let m = LocalMesh::up_file(&mesh_file(&ports), ports[6], &["--mtls", "permissive"])?;
    let gw = m.gateway();

    // Every generated config is one Envoy accepts: each bootstrap, and each with its xDS files
    // (the routes and clusters these rules make) inlined.
    let configs = m.envoy_configs();
    ensure!(configs.len() == 9, "{configs:?}");
    let scratch = tempfile::tempdir()?;
    std::thread::scope(|scope| {
        let checks: Vec<_> = configs
            .iter()
            .map(|c| {
                let scratch = scratch.path();
                scope.spawn(move || -> Result<()> {
                    validate(c).with_context(|| c.display().to_string())?;
                    let bootstrap: Value = serde_json::from_slice(&std::fs::read(c)?)?;
                    let whole = meshtally_envoy::xds::inline(&bootstrap)?;
                    let path = scratch.join(c.file_name().unwrap_or_default());
                    std::fs::write(&path, serde_json::to_vec(&whole)?)?;
                    validate(&path).with_context(|| format!("{} with its xDS files", c.display()))
                })
            })
            .collect();
        checks
            .into_iter()
            .try_for_each(|h| h.join().expect("validate thread"))
    })?;

    canary(&m, gw)?;
    header_match(gw)?;
    faults(gw)?;
    timeout(gw)?;
    circuit_breaking(&m, gw)?;
    outlier_detection(gw)?;
    Ok(())
}

/// 90/10: v2's share of 4,000 gateway calls within the binomial 99.9 % interval, counted from
/// the app's `/info` and from `deployer stats`, which agree exactly.
fn canary(m: &LocalMesh, gw: u16) -> Result<()> {
    const N: usize = 4000;
    let before = inbound_by_version(m)?;
    let replies = burst(gw, "/canary/info", &[], N, 24);
    let mut by_app: BTreeMap<String, u64> = BTreeMap::new();
    for (status, version, _) in &replies {
        ensure!(*status == 200, "a canary call failed: {status}");
        *by_app
            .entry(version.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let v2 = by_app.get("v2").copied().unwrap_or(0);
    let (lo, hi) = binomial_bounds(N, 0.10);
    ensure!(
        (lo..=hi).contains(&(v2 as f64)),
        "v2 served {v2} of {N}, outside [{lo:.0}, {hi:.0}]: {by_app:?}"
    );
    // The callees' counters settle within a stats flush.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let after = inbound_by_version(m)?;
        let delta = |v: &str| {
            let key = ("canary".to_owned(), v.to_owned());
            after.get(&key).copied().unwrap_or(0) - before.get(&key).copied().unwrap_or(0)
        };
        let by_stats: BTreeMap<String, u64> = [("v1", delta("v1")), ("v2", delta("v2"))]
            .into_iter()
            .map(|(v, n)| (v.to_owned(), n))
            .collect();
        if by_stats == by_app {
            eprintln!(
                "canary: {by_app:?} by /info and by deployer stats (bounds [{lo:.0}, {hi:.0}])"
            );
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "deployer stats {by_stats:?} disagrees with /info {by_app:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// With the header every request lands on v2; without it, the 90/10 split (some v1).
fn header_match(gw: u16) -> Result<()> {
    let beta = burst(gw, "/canary/info", &[("x-user-group", b"beta")], 200, 8);
    ensure!(
        beta.iter()
            .all(|(s, v, _)| *s == 200 && v.as_deref() == Some("v2")),
        "a beta request missed v2: {:?}",
        beta.iter().find(|(_, v, _)| v.as_deref() != Some("v2"))
    );
    let other = burst(gw, "/canary/info", &[("x-user-group", b"alpha")], 200, 8);
    let v1 = other
        .iter()
        .filter(|(_, v, _)| v.as_deref() == Some("v1"))
        .count();
    ensure!(v1 > 100, "without the header only {v1} of 200 reached v1");
    Ok(())
}

/// Abort 25 % with 503 and delay 300 ms at 50 %: both rates within 99.9 % bounds, and the
/// delayed requests measurably late.
fn faults(gw: u16) -> Result<()> {
    const N: usize = 800;
    let replies = burst(gw, "/faulty/info", &[], N, 48);
    let aborted = replies.iter().filter(|(s, _, _)| *s == 503).count();
    let ok = replies.iter().filter(|(s, _, _)| *s == 200).count();
    ensure!(
        aborted + ok == N,
        "other statuses: {} of {N}",
        N - aborted - ok
    );
    let delayed: Vec<Duration> = replies
        .iter()
        .map(|(_, _, took)| *took)
        .filter(|t| *t >= Duration::from_millis(290))
        .collect();
    let (alo, ahi) = binomial_bounds(N, 0.25);
    let (dlo, dhi) = binomial_bounds(N, 0.50);
    ensure!(
        (alo..=ahi).contains(&(aborted as f64)),
        "{aborted} of {N} aborted, outside [{alo:.0}, {ahi:.0}]"
    );
    ensure!(
        (dlo..=dhi).contains(&(delayed.len() as f64)),
        "{} of {N} delayed, outside [{dlo:.0}, {dhi:.0}]",
        delayed.len()
    );
    let mean = delayed.iter().sum::<Duration>() / delayed.len().max(1) as u32;
    ensure!(
        mean < Duration::from_millis(600),
        "delayed requests took {mean:?} on average"
    );
    eprintln!(
        "faults: {aborted}/{N} aborted (bounds [{alo:.0}, {ahi:.0}]), {}/{N} delayed (bounds [{dlo:.0}, {dhi:.0}]), mean delayed latency {mean:?}",
        delayed.len()
    );
    Ok(())
}

/// A 2 s slow app behind a 500 ms route timeout: 504 within 0.5-0.8 s (to Envoy's millisecond).
fn timeout(gw: u16) -> Result<()> {
    let start = Instant::now();
    let r = http::get(gw, "/slow/delay/2000", &[])?;
    let took = start.elapsed();
    ensure!(r.status == 504, "{} {}", r.status, r.text());
    // Envoy's timers run on a millisecond-grained clock, so "0.5 s" may read as 499.9 ms.
    ensure!(
        (Duration::from_millis(495)..=Duration::from_millis(800)).contains(&took),
        "504 after {took:?}"
    );
    eprintln!("timeout: 504 after {took:?}");
    Ok(())
}

/// At most 1 connection and 1 pending request: a burst of concurrent calls from `caller` gets
/// 503s (Envoy's overflow), and caller's sidecar counts exactly those as 5xx.
fn circuit_breaking(m: &LocalMesh, gw: u16) -> Result<()> {
    let before = outbound_5xx(m, "caller", "breaker")?;
    let replies = burst(gw, "/caller/call/breaker/delay/300", &[], 20, 20);
    let overflowed = replies.iter().filter(|(s, _, _)| *s == 503).count() as u64;
    let served = replies.iter().filter(|(s, _, _)| *s == 200).count() as u64;
    ensure!(
        overflowed > 0 && served > 0 && overflowed + served == 20,
        "statuses: {:?}",
        replies.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while outbound_5xx(m, "caller", "breaker")? - before != overflowed {
        ensure!(
            Instant::now() < deadline,
            "caller counted {} 5xx to breaker, the burst got {overflowed} 503s",
            outbound_5xx(m, "caller", "breaker")? - before
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("circuit breaking: {overflowed} of 20 got 503, {served} served");
    Ok(())
}

/// v2 answers 500: after 3 consecutive 5xx it is ejected and every later call lands on v1.
fn outlier_detection(gw: u16) -> Result<()> {
    let mut seen = Vec::new();
    for _ in 0..60 {
        let r = http::get(gw, "/flaky/info", &[])?;
        let version = r
            .json()
            .ok()
            .and_then(|b| b["version"].as_str().map(str::to_owned));
        seen.push((r.status, version));
    }
    let failures = seen.iter().filter(|(s, _)| *s == 500).count();
    ensure!(
        (3..=6).contains(&failures),
        "{failures} failures before ejection: {seen:?}"
    );
    let tail = &seen[20..];
    ensure!(
        tail.iter()
            .all(|(s, v)| *s == 200 && v.as_deref() == Some("v1")),
        "after ejection traffic should stay on v1: {seen:?}"
    );
    eprintln!("outlier detection: v2 ejected after {failures} 500s; the last 40 calls all on v1");
    Ok(())
}
