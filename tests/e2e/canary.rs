//! `deployer canary` rehearsed on a real local mesh (real Envoy sidecars and gateway, the built
//! filter, demo-service versions that misbehave as the mesh file says): a healthy v2 promoted
//! with every step's evidence, a v2 failing 5 % of calls, one 100 ms slower and one failing
//! only for one caller each rolled back at the first step and confirmed in every proxy, no
//! traffic inconclusive with nothing moved (then `--load` proceeds), and the bad inputs each
//! refused in one line. Short intervals and modest minimums keep each mesh's run to seconds.

use std::net::TcpListener;
use std::process::Output;

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

/// service-a with v1 taking every call and `v2` (its misbehaviour as given) none, and two
/// callers.
fn mesh(v2: &str) -> Result<LocalMesh> {
    let p = free_ports(4);
    let file = format!(
        "services:
  - name: service-a
    port: {}
    versions: [{{name: v1, weight: 100}}, {{name: v2, weight: 0{v2}}}]
  - name: service-b
    port: {}
  - name: service-c
    port: {}
",
        p[0], p[1], p[2]
    );
    LocalMesh::up_file(&file, p[3], &[])
}

/// The common flags: steps 25 and 50 (then 100), reads every 500 ms, a minute at most for a
/// step's calls.
const FAST: [&str; 6] = [
    "--steps",
    "25,50",
    "--interval",
    "500ms",
    "--max-wait",
    "60s",
];

fn canary(m: &LocalMesh, extra: &[&str]) -> Output {
    let mut args = vec!["service-a", "--to", "v2"];
    args.extend(FAST);
    args.extend_from_slice(extra);
    m.run("canary", &args)
}

fn report(out: &Output) -> Result<Value> {
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "not a JSON report: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// service-a's weights in the saved plan (what every proxy was confirmed to run).
fn saved_weights(m: &LocalMesh) -> Result<Vec<(String, u32)>> {
    let layout = m.state().read_layout()?;
    let s = layout.service("service-a").context("service-a")?;
    Ok(s.traffic
        .versions
        .iter()
        .map(|v| (v.name.clone(), v.weight.unwrap_or(0)))
        .collect())
}

fn weights(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
    pairs.iter().map(|(v, w)| ((*v).to_owned(), *w)).collect()
}

/// Every route to service-a (the gateway's and each caller's sidecar's) sends all of 30 calls
/// to `version`: the weights are in force in every proxy, not only in the saved plan.
fn every_proxy_routes_to(m: &LocalMesh, version: &str) -> Result<()> {
    let gw = m.gateway();
    for path in [
        "/service-a/info",
        "/service-b/call/service-a",
        "/service-c/call/service-a",
    ] {
        for _ in 0..30 {
            let r = http::get(gw, path, &[])?;
            let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            // `/info` names its version; `/call` wraps the callee's answer in `body`.
            let served = body["body"]["version"]
                .as_str()
                .or(body["version"].as_str())
                .unwrap_or_default()
                .to_owned();
            ensure!(served == version, "{path} was served by {served:?}: {body}");
        }
    }
    Ok(())
}

fn step(report: &Value, i: usize) -> &Value {
    &report["steps"][i]
}

/// No traffic: after one interval with no call into service-a the canary ends inconclusive
/// (exit 2) and nothing moved. With `--load` the same canary proceeds: each step judged on
/// its own calls with its evidence, then promoted to 100 % (exit 0), every proxy routing to v2.
#[test]
fn no_traffic_is_inconclusive_then_load_promotes_a_healthy_v2() -> Result<()> {
    let m = mesh("")?;
    let version_before = std::fs::read_to_string(m.state().xds_version_path()).unwrap_or_default();
    let out = canary(&m, &["--json"]);
    ensure!(out.status.code() == Some(2), "exit {:?}", out.status);
    let r = report(&out)?;
    ensure!(r["outcome"] == "inconclusive", "{r}");
    ensure!(r["calls_before_start"] == 0, "{r}");
    ensure!(r["steps"].as_array().is_some_and(Vec::is_empty), "{r}");
    let said = String::from_utf8_lossy(&out.stderr);
    ensure!(
        said.trim().lines().count() == 1
            && said.contains("nothing moved")
            && said.contains("--load"),
        "{said}"
    );
    ensure!(saved_weights(&m)? == weights(&[("v1", 100), ("v2", 0)]));
    ensure!(
        std::fs::read_to_string(m.state().xds_version_path()).unwrap_or_default() == version_before,
        "no new config was published"
    );

    // With a smoke test first (`--pre`), which sees the canary's names and the gateway.
    let pre = r#"test "$CANARY_VERSION" = v2 && test "$CANARY_BASELINE" = v1 && test -n "$CANARY_GATEWAY""#;
    let out = canary(
        &m,
        &[
            "--json",
            "--load",
            "200",
            "--min-requests",
            "150",
            "--pre",
            pre,
        ],
    );
    let r = report(&out)?;
    ensure!(out.status.code() == Some(0), "exit {:?}: {r}", out.status);
    ensure!(r["outcome"] == "promoted", "{r}");
    ensure!(r["pre"]["exit"] == 0, "{r}");
    let steps = r["steps"].as_array().context("steps")?;
    ensure!(steps.len() == 3, "{r}");
    for (i, percent) in [25, 50].into_iter().enumerate() {
        let s = step(&r, i);
        ensure!(s["percent"] == percent && s["verdict"] == "pass", "{s}");
        ensure!(
            s["published"]
                .as_str()
                .is_some_and(|p| p.contains("running in 5 proxies")),
            "{s}"
        );
        let e = &s["evidence"];
        ensure!(e["canary"]["requests"].as_u64() >= Some(150), "{e}");
        ensure!(e["baseline"]["requests"].as_u64() > Some(0), "{e}");
        ensure!(e["errors"]["comparison"]["test"].is_string(), "{e}");
        ensure!(
            e["canary"]["p99_ms"].is_number() && e["canary"]["p99_bucket_ms"].is_array(),
            "{e}"
        );
        ensure!(
            e["latency"]["verdict"] == "pass" && e["errors"]["verdict"] == "pass",
            "{e}"
        );
    }
    ensure!(step(&r, 2)["percent"] == 100 && step(&r, 2)["judged"] == false);
    ensure!(
        r["retire"].as_str().is_some_and(|h| h.contains("v1")),
        "{r}"
    );
    ensure!(saved_weights(&m)? == weights(&[("v1", 0), ("v2", 100)]));
    every_proxy_routes_to(&m, "v2")
}

/// The rollback: the outcome, exit 1, the weights back to v1=100 in the saved plan and in every
/// proxy's routes.
fn rolled_back_at_the_first_step(m: &LocalMesh, out: &Output) -> Result<Value> {
    let r = report(out)?;
    ensure!(out.status.code() == Some(1), "exit {:?}: {r}", out.status);
    ensure!(r["outcome"] == "rolled_back", "{r}");
    ensure!(
        r["steps"].as_array().map(Vec::len) == Some(1),
        "rolled back at the first step: {r}"
    );
    ensure!(step(&r, 0)["verdict"] == "fail", "{r}");
    ensure!(
        r["rollback"]
            .as_str()
            .is_some_and(|l| l.contains("running in 5 proxies")),
        "{r}"
    );
    ensure!(saved_weights(m)? == weights(&[("v1", 100), ("v2", 0)]));
    every_proxy_routes_to(m, "v1")?;
    Ok(r)
}

/// A v2 failing 5 % of its calls (demo-service's FAIL_PERCENT) is rolled back at the first step
/// with enough calls, on the error test.
#[test]
fn five_percent_errors_roll_back_at_the_first_step() -> Result<()> {
    let m = mesh(", fail_status: 500, fail_percent: 5")?;
    let out = canary(&m, &["--json", "--load", "250", "--min-requests", "300"]);
    let r = rolled_back_at_the_first_step(&m, &out)?;
    let e = &step(&r, 0)["evidence"];
    ensure!(e["errors"]["verdict"] == "fail", "{e}");
    ensure!(e["canary"]["requests"].as_u64() >= Some(300), "{e}");
    ensure!(
        e["errors"]["comparison"]["p_value"].as_f64() < e["errors"]["alpha"].as_f64(),
        "{e}"
    );
    // The rate seen is 5 %, within the binomial 99.9 % interval of the calls counted.
    let (n, errors) = (
        e["canary"]["requests"].as_u64().unwrap_or(0) as usize,
        e["canary"]["errors"].as_u64().unwrap_or(0) as f64,
    );
    let (low, high) = meshtally_tests::binomial_bounds(n, 0.05);
    ensure!(
        (low..=high).contains(&errors),
        "{errors} of {n}: outside [{low:.1}, {high:.1}]"
    );
    Ok(())
}

/// A v2 100 ms slower (DELAY_MS) is rolled back on p99, its bucket stated.
#[test]
fn a_slower_v2_rolls_back_on_latency() -> Result<()> {
    let m = mesh(", delay: 100ms")?;
    let out = canary(&m, &["--json", "--load", "200", "--min-requests", "150"]);
    let r = rolled_back_at_the_first_step(&m, &out)?;
    let e = &step(&r, 0)["evidence"];
    ensure!(e["latency"]["verdict"] == "fail", "{e}");
    ensure!(e["errors"]["verdict"] == "pass", "{e}");
    ensure!(
        e["canary"]["p99_bucket_ms"][0].as_f64() >= Some(100.0),
        "{e}"
    );
    // p99 or p50 up by more than 50 ms, with significantly more of v2's calls slower than
    // v1's bucket bound; on a loaded machine v1's own tail can hide a 100 ms rise at p99, never
    // at p50.
    let failed: Vec<&Value> = ["p99", "p50"]
        .iter()
        .map(|q| &e["latency"][q])
        .filter(|q| q["verdict"] == "fail")
        .collect();
    ensure!(!failed.is_empty(), "{e}");
    for q in failed {
        ensure!(q["increase_ms"].as_f64() > Some(50.0), "{q}");
        let share = |key: &str| {
            let pair = q[key].as_array().cloned().unwrap_or_default();
            let (slow, n) = (
                pair[0].as_f64().unwrap_or(0.0),
                pair[1].as_f64().unwrap_or(0.0),
            );
            slow / n.max(1.0)
        };
        // Envoy's histogram records 100.x ms as 100, so not every call of v2 counts as
        // slower than a 100 ms bound; a fifth at least does, far more than of v1's.
        ensure!(
            share("canary_slower") > 0.2 && share("canary_slower") > 2.0 * share("baseline_slower"),
            "{q}"
        );
    }
    Ok(())
}

/// A v2 failing only the calls from service-b (FAIL_FROM) is rolled back and the report names
/// service-b, and only it.
#[test]
fn a_v2_failing_one_caller_is_rolled_back_naming_it() -> Result<()> {
    let m = mesh(", fail_status: 500, fail_from: service-b")?;
    let out = canary(
        &m,
        &[
            "--load",
            "200",
            "--min-requests",
            "150",
            "--min-caller-requests",
            "30",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.code() == Some(1),
        "exit {:?}: {text}",
        out.status
    );
    ensure!(text.contains("failing for: service-b ("), "{text}");
    ensure!(text.contains("calls from service-b fail on v2"), "{text}");
    ensure!(!text.contains("calls from service-c fail"), "{text}");
    let said = String::from_utf8_lossy(&out.stderr);
    ensure!(
        said.trim().lines().count() == 1 && said.starts_with("canary rolled back: "),
        "{said}"
    );
    ensure!(saved_weights(&m)? == weights(&[("v1", 100), ("v2", 0)]));
    every_proxy_routes_to(&m, "v1")
}

/// Bad inputs, each one line naming the fault, exit 2, nothing moved; a canary already in
/// progress is refused and `--abort` ends it and rolls back.
#[test]
fn bad_inputs_are_refused_in_one_line_and_abort_rolls_back() -> Result<()> {
    let m = mesh("")?;
    let version_before = std::fs::read_to_string(m.state().xds_version_path()).unwrap_or_default();
    for (args, says) in [
        (
            &["service-z", "--to", "v2"][..],
            "no service service-z in this mesh",
        ),
        (
            &["service-a", "--to", "v3"][..],
            "--to v3: service-a has no version v3 (its versions: v1, v2)",
        ),
        (
            &["service-b", "--to", "v2"][..],
            "--to v2: service-b has no version v2",
        ),
        (
            &["service-a", "--to", "v2", "--from", "v2"][..],
            "--to v2 is the baseline too",
        ),
        (
            &["service-a", "--to", "v2", "--steps", "50,25"][..],
            "--steps \"50,25\": the steps must increase",
        ),
        (
            &["service-a", "--to", "v2", "--steps", "50,150"][..],
            "\"150\" is not a percent from 1 to 100",
        ),
        (
            &["service-a", "--to", "v2", "--confirm"][..],
            "--confirm waits for Enter on a terminal, and stdin is not one",
        ),
        (
            &["service-a", "--to", "v2", "--pre", "echo broken >&2; exit 3"][..],
            "the smoke test `echo broken >&2; exit 3` failed (exit 3: broken): nothing moved (service-a stays at v1=100,v2=0)",
        ),
        (
            &["service-a", "--to", "v2", "--max-error-increase", "lots"][..],
            "--max-error-increase \"lots\"",
        ),
    ] {
        let out = m.run("canary", args);
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.code() == Some(2),
            "{args:?}: exit {:?}",
            out.status
        );
        ensure!(
            err.trim().lines().count() == 1 && err.contains(says),
            "{args:?}: {err}"
        );
    }
    // A canary in progress: its lock names a live process.
    let mut holder = std::process::Command::new("sleep").arg("60").spawn()?;
    let lock = m.state_dir().join("canary-service-a.lock");
    std::fs::write(
        &lock,
        format!(
            "{{\"pid\": {}, \"baseline\": \"v1\", \"canary\": \"v2\"}}",
            holder.id()
        ),
    )?;
    let out = canary(&m, &["--load", "50"]);
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.code() == Some(2), "exit {:?}", out.status);
    ensure!(
        err.trim().lines().count() == 1
            && err.contains(&format!(
                "a canary of service-a is already in progress (pid {})",
                holder.id()
            ))
            && err.contains("--abort"),
        "{err}"
    );
    ensure!(
        std::fs::read_to_string(m.state().xds_version_path()).unwrap_or_default() == version_before,
        "nothing moved"
    );
    let out = m.run("canary", &["service-a", "--abort", "--json"]);
    let r = report(&out)?;
    ensure!(out.status.code() == Some(0), "exit {:?}: {r}", out.status);
    ensure!(
        r["outcome"] == "aborted" && r["final_weights"] == "v1=100,v2=0",
        "{r}"
    );
    ensure!(
        holder.wait()?.code().is_none(),
        "the running canary was signalled"
    );
    ensure!(!lock.exists(), "the lock is gone");
    ensure!(saved_weights(&m)? == weights(&[("v1", 100), ("v2", 0)]));
    Ok(())
}

/// The mesh stopped mid-canary: the canary cannot confirm a rollback in proxies that are gone,
/// so it names its last confirmed step and what the saved plan holds for the next `up` (exit
/// 2, one line).
#[test]
fn a_mesh_stopped_mid_canary_is_left_at_the_last_confirmed_step_and_said_so() -> Result<()> {
    let m = mesh("")?;
    let state = m.state_dir();
    let child = std::process::Command::new(meshtally_tests::mesh::binary("deployer"))
        .args([
            "canary",
            "service-a",
            "--to",
            "v2",
            "--steps",
            "25,50",
            "--interval",
            "500ms",
        ])
        .args([
            "--min-requests",
            "1000000",
            "--max-wait",
            "60s",
            "--load",
            "50",
        ])
        .arg("--state-dir")
        .arg(&state)
        .env("ENVOY_BIN", meshtally_tests::envoy::envoy_bin()?)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while saved_weights(&m)? != weights(&[("v1", 75), ("v2", 25)]) {
        ensure!(
            std::time::Instant::now() < deadline,
            "the first step was never published"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let down = m.run("down", &[]);
    ensure!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let out = child.wait_with_output()?;
    let said = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.code() == Some(2),
        "exit {:?}: {said}",
        out.status
    );
    // Its last confirmed step is named; whether the rollback reached the saved plan before
    // the proxies went depends on when `down` struck, and the line says which: the weights a
    // restart runs are the saved ones.
    ensure!(
        said.trim().lines().count() == 1
            && said.contains("the mesh stopped mid-canary")
            && (said.contains("left at the last confirmed step v1=75,v2=25")
                || said.contains("its last confirmed step was v1=75,v2=25; the rollback to v1=100,v2=0 was saved but not confirmed")),
        "{said}"
    );
    let runs = said
        .rsplit("started again, the mesh runs ")
        .next()
        .unwrap_or_default()
        .trim();
    let saved = saved_weights(&m)?
        .iter()
        .map(|(v, w)| format!("{v}={w}"))
        .collect::<Vec<_>>()
        .join(",");
    ensure!(runs == saved, "said {runs:?}, saved {saved}");
    ensure!(
        !state.join("canary-service-a.lock").exists(),
        "its lock is gone"
    );
    Ok(())
}

/// `--abort` on a canary really in progress: the running one is stopped, rolls back (exit 1,
/// confirmed in every proxy) and lets go of its lock; `--abort` itself succeeds.
#[test]
fn abort_ends_a_running_canary_which_rolls_back() -> Result<()> {
    let m = mesh("")?;
    let state = m.state_dir();
    let child = std::process::Command::new(meshtally_tests::mesh::binary("deployer"))
        .args([
            "canary",
            "service-a",
            "--to",
            "v2",
            "--steps",
            "25,50",
            "--interval",
            "500ms",
        ])
        .args([
            "--min-requests",
            "1000000",
            "--max-wait",
            "60s",
            "--load",
            "50",
            "--json",
        ])
        .arg("--state-dir")
        .arg(&state)
        .env("ENVOY_BIN", meshtally_tests::envoy::envoy_bin()?)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while saved_weights(&m)? != weights(&[("v1", 75), ("v2", 25)]) {
        ensure!(
            std::time::Instant::now() < deadline,
            "the first step was never published"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let aborted = m.run("canary", &["service-a", "--abort", "--json"]);
    let r = report(&aborted)?;
    ensure!(
        aborted.status.code() == Some(0),
        "exit {:?}: {r}",
        aborted.status
    );
    ensure!(r["outcome"] == "aborted", "{r}");
    ensure!(
        r["message"].as_str().is_some_and(
            |m| m.contains("the canary of service-a (pid") && m.contains("was stopped")
        ),
        "{r}"
    );
    let out = child.wait_with_output()?;
    let running = report(&out)?;
    ensure!(
        out.status.code() == Some(1),
        "exit {:?}: {running}",
        out.status
    );
    ensure!(running["outcome"] == "rolled_back", "{running}");
    ensure!(
        running["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("stopped by a signal")),
        "{running}"
    );
    ensure!(
        !state.join("canary-service-a.lock").exists(),
        "its lock is gone"
    );
    ensure!(saved_weights(&m)? == weights(&[("v1", 100), ("v2", 0)]));
    every_proxy_routes_to(&m, "v1")
}
