//! Live changes to a running local mesh, under load: a new filter module, loaded by `deployer
//! reload --wasm` and by replacing the file `up` was given (what `make wasm` does), reaches
//! every sidecar without restarting a process and without failing a request. Meshes here take
//! ports the OS says are free.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use meshtally_deployer::envoy::Admin;
use meshtally_tests::load::{Load, Outcome};
use meshtally_tests::mesh::LocalMesh;
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
