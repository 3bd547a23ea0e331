//! Live changes to a running local mesh, under load: a new filter module, loaded by `deployer
//! reload --wasm` and by replacing the file `up` was given (what `make wasm` does), reaches
//! every sidecar without restarting a process and without failing a request. Meshes here take
//! ports the OS says are free.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use meshtally_envoy::admin::Admin;
use meshtally_tests::http;
use meshtally_tests::load::{Load, Outcome};
use meshtally_tests::mesh::{free_ports, LocalMesh};
use sha2::{Digest, Sha256};

/// The built filter with a custom section appended: a different module (another digest) that
/// behaves the same.
fn variant(src: &Path, dst: &Path, tag: &str) -> Result<String> {
    let mut bytes = std::fs::read(src)?;
    let payload = [&[tag.len() as u8][..], tag.as_bytes()].concat();
    bytes.push(0); // custom section id
    bytes.push(payload.len() as u8);
    bytes.extend_from_slice(&payload);
    std::fs::write(dst, &bytes)?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The line each sidecar's filter logs on configure with the module `sha256` loaded.
fn configured_line(sha256: &str) -> String {
    format!("meshtally@sha256:{}: meshtally: configured", &sha256[..16])
}

fn sidecars(m: &LocalMesh) -> Vec<String> {
    m.layout
        .services
        .iter()
        .map(|s| format!("{}-sidecar", s.name))
        .collect()
}

fn wait_for_log(m: &LocalMesh, sidecar: &str, line: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !m.log(sidecar).contains(line) {
        ensure!(
            Instant::now() < deadline,
            "{sidecar} never logged {line:?}:\n{}",
            m.log("supervisor")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn summary(outcomes: &[Outcome], took: Duration) -> (usize, f64, Vec<String>) {
    let failed = outcomes
        .iter()
        .filter(|o| o.status != Some(200))
        .map(|o| format!("#{} at {:?}: {:?}", o.index, o.sent, o.status))
        .collect();
    (
        outcomes.len(),
        outcomes.len() as f64 / took.as_secs_f64(),
        failed,
    )
}

#[test]
fn a_new_module_reaches_every_sidecar_under_load_without_a_failed_request() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let built = meshtally_tests::filter_wasm();
    // `up` watches the file it was given: a copy this test may replace.
    let watched = scratch.path().join("meshtally_filter.wasm");
    std::fs::copy(&built, &watched)?;
    let watched_arg = watched.to_string_lossy().into_owned();
    let m = LocalMesh::up_on_free_ports(3, &["--wasm", &watched_arg])?;
    let pids = m.pids();
    let reloaded = scratch.path().join("reloaded.wasm");
    let by_reload = variant(&built, &reloaded, "by-reload")?;
    let replaced = scratch.path().join("replaced.wasm");
    let by_replace = variant(&built, &replaced, "by-replace")?;

    // Every pair, through the gateway: each request crosses two sidecars' filters.
    let names: Vec<String> = m.layout.services.iter().map(|s| s.name.clone()).collect();
    let pairs: Vec<String> = names
        .iter()
        .flat_map(|a| names.iter().filter(move |b| *b != a).map(move |b| (a, b)))
        .map(|(a, b)| format!("/{a}/call/{b}"))
        .collect();
    let paths: Vec<String> = pairs.iter().cycle().take(200_000).cloned().collect();
    let stop = AtomicBool::new(false);
    let begin = Instant::now();
    let (outcomes, reload_out) = std::thread::scope(|scope| {
        let load = Load {
            port: m.gateway(),
            connections: 8,
            paths: &paths,
            stop: Some(&stop),
            deadline: Duration::from_secs(90),
            keep_alive: true,
        };
        let handle = scope.spawn(move || load.run());
        std::thread::sleep(Duration::from_secs(1));
        let reload = m.run("reload", &["--wasm", reloaded.to_str().unwrap_or_default()]);
        let logged = sidecars(&m)
            .iter()
            .try_for_each(|s| wait_for_log(&m, s, &configured_line(&by_reload)));
        // Replaced by a rename, as `make wasm`'s wasm-opt step does.
        let swapped = std::fs::rename(&replaced, &watched);
        let logged_again = sidecars(&m)
            .iter()
            .try_for_each(|s| wait_for_log(&m, s, &configured_line(&by_replace)));
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::SeqCst);
        let outcomes = handle.join().unwrap_or_default();
        (outcomes, (reload, logged, swapped, logged_again))
    });
    let took = begin.elapsed();
    let (reload, logged, swapped, logged_again) = reload_out;
    ensure!(
        reload.status.success(),
        "deployer reload failed: {}",
        String::from_utf8_lossy(&reload.stderr)
    );
    let said = String::from_utf8_lossy(&reload.stdout);
    ensure!(
        said.contains(&by_reload) && said.contains("running in 4 proxies"),
        "{said}"
    );
    logged?;
    swapped?;
    logged_again?;
    let (sent, rate, failed) = summary(&outcomes, took);
    eprintln!(
        "{sent} requests in {:.1} s ({rate:.0} req/s) across two module reloads",
        took.as_secs_f64()
    );
    ensure!(
        failed.is_empty(),
        "{} of {sent} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(10)]
    );
    ensure!(sent > 1000, "too little load to show anything: {sent}");
    // No process was restarted: the same pids, and the supervisor reported the reload.
    ensure!(m.pids() == pids, "a process was restarted");
    let supervisor = m.log("supervisor");
    ensure!(
        supervisor.contains(&format!("reloaded: {by_replace}")),
        "{supervisor}"
    );
    // Every sidecar's filter resource is at the last version; the gateway has no filter.
    for (proxy, port) in m
        .layout
        .services
        .iter()
        .map(|s| (format!("{}-sidecar", s.name), s.admin_port))
    {
        let versions = Admin(port).config_versions()?;
        ensure!(
            versions.filter.as_deref() == Some("3"),
            "{proxy}: {versions:?}"
        );
    }
    Ok(())
}

#[test]
fn a_module_envoy_refuses_is_not_published() -> Result<()> {
    let m = LocalMesh::up_on_free_ports(2, &[])?;
    let scratch = tempfile::tempdir()?;
    let broken = scratch.path().join("broken.wasm");
    // A Wasm header and then garbage: past the deployer's own check, refused by Envoy's.
    std::fs::write(&broken, [0, b'a', b's', b'm', 1, 0, 0, 0, 0xff, 0xff, 0xff])?;
    let out = m.run("reload", &["--wasm", broken.to_str().unwrap_or_default()]);
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "a broken module was accepted");
    ensure!(err.contains("envoy --mode validate"), "{err}");
    let text = scratch.path().join("text.wasm");
    std::fs::write(&text, "not a module")?;
    let out = m.run("reload", &["--wasm", text.to_str().unwrap_or_default()]);
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && err.contains("not a Wasm module"),
        "{err}"
    );
    // Nothing was published: every proxy is still at the version `up` wrote, and serving.
    for s in &m.layout.services {
        let versions = Admin(s.admin_port).config_versions()?;
        ensure!(versions.filter.as_deref() == Some("1"), "{versions:?}");
    }
    ensure!(
        m.run("verify", &[]).status.success(),
        "the mesh stopped working"
    );
    Ok(())
}

/// The version that served a call, from the demo app's own answer: `/info` directly, or the
/// callee's `/info` inside a `/call/…` answer.
fn served_version(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let info = if v.get("body").is_some() {
        &v["body"]
    } else {
        &v
    };
    info["version"].as_str().map(str::to_owned)
}

/// (route table, version) pairs of one proxy.
type RouteVersions = Vec<(String, String)>;

/// Every proxy's route table versions, by proxy.
fn route_versions(m: &LocalMesh) -> Result<Vec<(String, RouteVersions)>> {
    m.layout
        .proxies()
        .into_iter()
        .map(|(name, port)| Ok((name, Admin(port).config_versions()?.routes)))
        .collect()
}

#[test]
fn a_weight_shift_under_load_reaches_every_proxy_and_fails_no_request() -> Result<()> {
    let (base, gateway) = free_ports(3)?;
    let base = base.to_string();
    let m = LocalMesh::up_file(
        "services:\n  - name: service-a\n  - name: service-b\n    versions:\n      - {name: v1, weight: 100}\n      - {name: v2, weight: 0}\n  - name: service-c\n",
        gateway,
        &["--base-port", &base],
    )?;
    // `up_file` wrote the mesh file into the mesh's own dir.
    let file = m.dir.path().join("mesh.yaml");
    let pids = m.pids();
    // service-b from the gateway, and from service-a's and service-c's sidecars.
    let paths: Vec<String> = [
        "/service-b/info",
        "/service-a/call/service-b",
        "/service-c/call/service-b",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .cycle()
    .take(500_000)
    .collect();
    let sample = |want: &str| -> Result<()> {
        for path in &paths[..30] {
            let r = http::get_host(m.gateway(), "localhost", path, &[])?;
            ensure!(r.status == 200, "{path}: {}", r.status);
            let got = served_version(&r.body);
            ensure!(
                got.as_deref() == Some(want),
                "{path} served by {got:?}, not {want}"
            );
        }
        Ok(())
    };
    sample("v1")?;
    let before = route_versions(&m)?;
    let steps = ["v1=75,v2=25", "v1=50,v2=50", "v1=25,v2=75", "v1=0,v2=100"];
    let stop = AtomicBool::new(false);
    let begin = Instant::now();
    let (outcomes, shifts) = std::thread::scope(|scope| {
        let load = Load {
            port: m.gateway(),
            connections: 8,
            paths: &paths,
            stop: Some(&stop),
            deadline: Duration::from_secs(120),
            keep_alive: true,
        };
        let handle = scope.spawn(move || load.run());
        let mut shifts = Vec::new();
        for step in steps {
            std::thread::sleep(Duration::from_millis(1500));
            let t = Instant::now();
            let out = m.run("shift", &["service-b", step]);
            shifts.push((step, out, t.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::SeqCst);
        (handle.join().unwrap_or_default(), shifts)
    });
    let took = begin.elapsed();
    for (step, out, elapsed) in &shifts {
        let said = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "shift {step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // "… running in N proxies after M ms": every proxy confirmed it within a second.
        let ms: u64 = said
            .rsplit("after ")
            .next()
            .and_then(|t| t.trim().trim_end_matches(" ms").parse().ok())
            .unwrap_or(u64::MAX);
        eprintln!(
            "shift {step}: every proxy after {ms} ms (command {} ms)",
            elapsed.as_millis()
        );
        ensure!(
            ms < 1000,
            "shift {step} took {ms} ms to reach every proxy: {said}"
        );
    }
    let (sent, rate, failed) = summary(&outcomes, took);
    eprintln!(
        "{sent} requests in {:.1} s ({rate:.0} req/s) across {} shifts",
        took.as_secs_f64(),
        steps.len()
    );
    ensure!(
        failed.is_empty(),
        "{} of {sent} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(10)]
    );
    ensure!(rate >= 200.0, "the load was {rate:.0} req/s, under 200");
    sample("v2")?;
    ensure!(m.pids() == pids, "a process was restarted");
    // What the shifts wrote is valid Envoy config too: every bootstrap with its xDS files.
    ensure!(m.validate_configs()? == m.layout.proxies().len());
    // Every proxy's config version changed: each route table is at the last shift's version.
    let after = route_versions(&m)?;
    let last = (1 + steps.len()).to_string();
    for ((proxy, old), (_, new)) in before.iter().zip(&after) {
        ensure!(old != new, "{proxy}: config version unchanged: {old:?}");
        ensure!(
            !new.is_empty() && new.iter().all(|(_, v)| *v == last),
            "{proxy}: {new:?}, not version {last}"
        );
    }

    // The same rule edited in the mesh file takes effect through `deployer reload`.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)?
            .replace("weight: 100}", "weight: 10}")
            .replace("weight: 0}", "weight: 90}"),
    )?;
    let out = m.run("reload", &[]);
    ensure!(
        out.status.success(),
        "reload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut served = std::collections::BTreeMap::<String, usize>::new();
    for path in paths.iter().take(300) {
        let r = http::get_host(m.gateway(), "localhost", path, &[])?;
        ensure!(r.status == 200, "{path}: {}", r.status);
        *served
            .entry(served_version(&r.body).unwrap_or_default())
            .or_default() += 1;
    }
    // 10 % of 300 is 30; the binomial 99.9 % interval is about 13–47.
    let v1 = served.get("v1").copied().unwrap_or(0);
    ensure!((13..=47).contains(&v1), "after reload 10/90: {served:?}");
    // A field other than the traffic rules is refused, not ignored: one line naming it.
    let rules = std::fs::read_to_string(&file)?;
    std::fs::write(&file, format!("namespace: elsewhere\n{rules}"))?;
    let out = m.run("reload", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success()
            && err.lines().count() == 1
            && err.contains("the namespace changed (istio-demo -> elsewhere)")
            && err.contains("restart"),
        "{err}"
    );
    std::fs::write(&file, rules)?;
    // A change that needs new processes is refused in one line that says to restart.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)? + "  - name: service-d\n",
    )?;
    let out = m.run("reload", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && err.lines().count() == 1 && err.contains("restart"),
        "{err}"
    );
    Ok(())
}

/// A sidecar that keeps dying through a `shift` (SIGKILLed each time the supervisor brings it
/// back): the shift fails in one line naming it; every other proxy runs the new generation
/// (never a mix); once left alone, the supervisor's restart comes back on that generation and
/// the mesh serves the new split from every caller.
#[test]
fn a_sidecar_dying_mid_shift_is_named_and_comes_back_on_the_new_generation() -> Result<()> {
    let (base, gateway) = free_ports(3)?;
    let base = base.to_string();
    let m = LocalMesh::up_file(
        "services:\n  - name: service-a\n  - name: service-b\n    versions:\n      - {name: v1, weight: 100}\n      - {name: v2, weight: 0}\n  - name: service-c\n",
        gateway,
        &["--base-port", &base],
    )?;
    let victim = "service-a-sidecar";
    let state = m.state();
    let stop = AtomicBool::new(false);
    let (out, kills) = std::thread::scope(|scope| {
        let killer = scope.spawn(|| {
            let mut kills = 0;
            while !stop.load(Ordering::SeqCst) {
                if let Some(pid) = state.read_pids().get(victim) {
                    if state.owns(*pid as i32) {
                        let _ = std::process::Command::new("kill")
                            .args(["-KILL", &pid.to_string()])
                            .status();
                        kills += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            kills
        });
        std::thread::sleep(Duration::from_millis(300));
        let out = m.run("shift", &["service-b", "v1=0,v2=100"]);
        stop.store(true, Ordering::SeqCst);
        (out, killer.join().unwrap_or(0))
    });
    ensure!(kills > 0, "the sidecar was never killed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "the shift succeeded: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    ensure!(errors.len() == 1, "not one error line: {stderr}");
    ensure!(
        errors[0].contains(&format!("{victim} does not answer"))
            && errors[0].contains("every other proxy runs version 2"),
        "{stderr}"
    );
    // The saved plan and version are the published ones, so the next change starts from them.
    let saved = state.read_layout()?;
    let weights: Vec<(String, Option<u32>)> = saved
        .services
        .iter()
        .find(|s| s.name == "service-b")
        .map(|s| {
            s.traffic
                .versions
                .iter()
                .map(|v| (v.name.clone(), v.weight))
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        weights == [("v1".to_owned(), Some(0)), ("v2".to_owned(), Some(100))],
        "saved plan: {weights:?}"
    );
    // Every other proxy: the new generation in every route table.
    for (proxy, port) in m.layout.proxies() {
        if proxy == victim {
            continue;
        }
        let routes = Admin(port).config_versions()?.routes;
        ensure!(
            !routes.is_empty() && routes.iter().all(|(_, v)| v == "2"),
            "{proxy}: {routes:?}"
        );
    }
    // Left alone, the victim comes back on that generation.
    let port = m
        .layout
        .proxies()
        .into_iter()
        .find(|(p, _)| p == victim)
        .map(|(_, port)| port)
        .unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Ok(v) = Admin(port).config_versions() {
            if !v.routes.is_empty() && v.routes.iter().all(|(_, v)| v == "2") {
                break;
            }
        }
        ensure!(
            Instant::now() < deadline,
            "{victim} did not come back on version 2:\n{}",
            m.log("supervisor")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for path in [
        "/service-a/call/service-b",
        "/service-c/call/service-b",
        "/service-b/info",
    ] {
        for _ in 0..10 {
            let r = http::get_host(m.gateway(), "localhost", path, &[])?;
            ensure!(r.status == 200, "{path}: {}", r.status);
            let got = served_version(&r.body);
            ensure!(got.as_deref() == Some("v2"), "{path} served by {got:?}");
        }
    }
    ensure!(m.validate_configs()? == m.layout.proxies().len());
    Ok(())
}

/// The hints `shift` prints when a version needs new processes run exactly as printed (from
/// another folder, no deployer on PATH): on the demo (no mesh file) they restart the mesh from
/// the checkout's `examples/canary.yaml` on the same ports, after which the same shift works;
/// on a mesh from a file they repeat the exact `up` that started it.
#[test]
fn shift_hints_run_as_printed() -> Result<()> {
    let elsewhere = tempfile::tempdir()?;
    let run_hints = |line: &str| -> Result<()> {
        let commands: Vec<&str> = line.split('`').skip(1).step_by(2).collect();
        ensure!(commands.len() >= 2, "no commands in: {line}");
        for command in &commands[commands.len() - 2..] {
            meshtally_tests::mesh::run_hint(elsewhere.path(), command)?;
        }
        Ok(())
    };
    let error_line = |out: &std::process::Output| -> Result<String> {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        ensure!(!out.status.success(), "it succeeded: {stderr}");
        Ok(stderr.trim().to_owned())
    };

    // The demo: generated services, no mesh file.
    let m = LocalMesh::up_on_free_ports(3, &[])?;
    let line = error_line(&m.run("shift", &["service-a", "v1=50,v2=50"]))?;
    ensure!(line.contains("examples/canary.yaml"), "{line}");
    run_hints(&line)?;
    let out = m.run("shift", &["service-a", "v1=50,v2=50"]);
    ensure!(
        out.status.success(),
        "after the hints: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(m);

    // A mesh from a file: the exact up again.
    let (base, gateway) = free_ports(2)?;
    let base = base.to_string();
    let m = LocalMesh::up_file(
        "services:\n  - name: service-a\n    versions: [{name: v1, weight: 100}, {name: v2, weight: 0}]\n  - service-b\n",
        gateway,
        &["--base-port", &base],
    )?;
    let line = error_line(&m.run("shift", &["service-a", "v1=50,v3=50"]))?;
    ensure!(line.contains(" up --detach --gateway-port "), "{line}");
    run_hints(&line)?;
    let status = m.run("status", &[]);
    ensure!(
        status.status.success() && !String::from_utf8_lossy(&status.stdout).contains("stopped"),
        "not running again after the hints: {}",
        String::from_utf8_lossy(&status.stdout)
    );
    Ok(())
}
