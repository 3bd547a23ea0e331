//! Reliability under load: exact counts with 64 concurrent connections, faults (kill -9 of an
//! app and of a sidecar) while traffic flows, and a graceful `down` that loses no request it
//! had accepted. Bounded in count and time; loopback only.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use meshtally_tests::http;
use meshtally_tests::load::{Load, Outcome};
use meshtally_tests::mesh::{all_gone, LocalMesh};
use serde_json::Value;

type Key = (String, String, String, String);

/// Every meshtally counter of the mesh, by (source, destination, direction, class).
fn counters(m: &LocalMesh) -> Result<BTreeMap<Key, u64>> {
    let out = m.run("stats", &["--json"]);
    ensure!(
        out.status.success(),
        "stats failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout)?;
    let mut map = BTreeMap::new();
    for r in rows.as_array().into_iter().flatten() {
        let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        let key = (
            s("source"),
            s("destination"),
            s("direction"),
            s("response_code_class"),
        );
        *map.entry(key).or_default() += r["count"].as_u64().unwrap_or(0);
    }
    Ok(map)
}

fn key(source: &str, dest: &str, direction: &str, class: &str) -> Key {
    (source.into(), dest.into(), direction.into(), class.into())
}

fn app_stats(m: &LocalMesh, service: &str) -> Result<Value> {
    let port = m.layout.service(service).map_or(0, |s| s.app_port);
    http::get(port, "/stats", &[])?.json()
}

fn ordered_pairs(names: &[String]) -> Vec<(String, String)> {
    names
        .iter()
        .flat_map(|a| {
            names
                .iter()
                .filter(move |b| *b != a)
                .map(move |b| (a.clone(), b.clone()))
        })
        .collect()
}

#[test]
fn twenty_thousand_requests_counted_exactly() -> Result<()> {
    const TOTAL: usize = 20_000;
    let m = LocalMesh::up(4, 28500, 28590, &[])?;
    let names: Vec<String> = m.layout.services.iter().map(|s| s.name.clone()).collect();
    let pairs = ordered_pairs(&names);
    // Every 10th request asks for a peer that does not exist: a 404 from the app, so the
    // class split is exercised too.
    let plan: Vec<(String, Option<String>)> = (0..TOTAL)
        .map(|i| {
            let (from, to) = &pairs[i % pairs.len()];
            (from.clone(), (i % 10 != 9).then(|| to.clone()))
        })
        .collect();
    let paths: Vec<String> = plan
        .iter()
        .map(|(from, to)| format!("/{from}/call/{}", to.as_deref().unwrap_or("nope")))
        .collect();

    let begin = Instant::now();
    let outcomes = Load {
        port: m.gateway(),
        connections: 64,
        paths: &paths,
        stop: None,
        deadline: Duration::from_secs(240),
        keep_alive: true,
    }
    .run();
    let elapsed = begin.elapsed();
    assert_eq!(outcomes.len(), TOTAL, "every request was sent");
    let mut sent_ok: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut sent_404: BTreeMap<String, u64> = BTreeMap::new();
    for o in &outcomes {
        let (from, to) = &plan[o.index];
        match (to, o.status) {
            (Some(to), Some(200)) => *sent_ok.entry((from.clone(), to.clone())).or_default() += 1,
            (None, Some(404)) => *sent_404.entry(from.clone()).or_default() += 1,
            (to, status) => panic!("request {} /{from}/call/{to:?} got {status:?}", o.index),
        }
    }
    eprintln!(
        "{TOTAL} requests over {} pairs in {:.1} s ({:.0} req/s)",
        pairs.len(),
        elapsed.as_secs_f64(),
        TOTAL as f64 / elapsed.as_secs_f64()
    );

    let c = counters(&m)?;
    let get = |k: Key| c.get(&k).copied().unwrap_or(0);
    let mut expected_total = 0;
    for (from, to) in &pairs {
        let n = sent_ok[&(from.clone(), to.clone())];
        // Both ends of the hop, exactly.
        assert_eq!(
            get(key(from, to, "outbound", "2xx")),
            n,
            "{from} → {to} outbound"
        );
        assert_eq!(
            get(key(from, to, "inbound", "2xx")),
            n,
            "{from} → {to} inbound"
        );
        expected_total += n;
    }
    for name in &names {
        let ok: u64 = pairs
            .iter()
            .filter(|(f, _)| f == name)
            .map(|(f, t)| sent_ok[&(f.clone(), t.clone())])
            .sum();
        let nope = sent_404[name];
        // The callee counts gateway traffic under the gateway's identity; the gateway itself
        // runs no meshtally filter (the WasmPlugin selects only the mesh's workloads), so
        // nothing counts it outbound.
        let gateway = "istio-ingressgateway-service-account";
        assert_eq!(
            get(key(gateway, name, "inbound", "2xx")),
            ok,
            "gateway → {name} inbound"
        );
        assert_eq!(
            get(key(gateway, name, "inbound", "4xx")),
            nope,
            "gateway → {name} inbound 4xx"
        );
        assert_eq!(
            get(key(gateway, name, "outbound", "2xx")),
            0,
            "the gateway counted {name} outbound"
        );
        // The apps' own counts agree with the sidecars'.
        let stats = app_stats(&m, name)?;
        assert_eq!(
            stats["served"]["call"].as_u64(),
            Some(ok + nope),
            "{name} served"
        );
        for other in names.iter().filter(|o| *o != name) {
            let n = sent_ok[&(name.clone(), other.clone())];
            assert_eq!(
                stats["calls"][other]["200"].as_u64(),
                Some(n),
                "{name} app's calls to {other}"
            );
            let seen = app_stats(&m, other)?["seen_sources"][name].as_u64();
            assert_eq!(seen, Some(n), "{other} app saw {name}");
        }
    }
    // Nothing counted that was not sent: no unknown callers, no stray classes.
    let total: u64 = c.values().sum();
    // Each in-mesh call counts at both ends; each gateway request only at the callee.
    let expected = 2 * expected_total + TOTAL as u64;
    assert_eq!(total, expected, "all counters together: {c:?}");
    assert!(
        !c.keys()
            .any(|k| k.0 == "unknown" || k.3 == "5xx" || k.3 == "none"),
        "{c:?}"
    );
    Ok(())
}

/// Sends a steady mix over every pair until `stop`, returning the outcomes with their paths.
fn background_load<'a>(m: &LocalMesh, paths: &'a [String], stop: &'a AtomicBool) -> Load<'a> {
    Load {
        port: m.gateway(),
        connections: 8,
        paths,
        stop: Some(stop),
        deadline: Duration::from_secs(60),
        keep_alive: true,
    }
}

fn pair_of(path: &str) -> (String, String) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    (parts[0].to_owned(), parts[2].to_owned())
}

/// `/a/call/b` over every ordered pair in turn, more than any bounded run can send.
fn round_robin_calls(m: &LocalMesh) -> Vec<String> {
    let names: Vec<String> = m.layout.services.iter().map(|s| s.name.clone()).collect();
    let pairs = ordered_pairs(&names);
    (0..200_000)
        .map(|i| {
            let (a, b) = &pairs[i % pairs.len()];
            format!("/{a}/call/{b}")
        })
        .collect()
}

/// Runs load while `fault` happens; returns outcomes per pair.
fn under_load(m: &LocalMesh, fault: impl FnOnce()) -> Vec<(Outcome, (String, String))> {
    let paths = round_robin_calls(m);
    let stop = AtomicBool::new(false);
    let outcomes = std::thread::scope(|scope| {
        let load = background_load(m, &paths, &stop);
        let handle = scope.spawn(move || load.run());
        std::thread::sleep(Duration::from_millis(500));
        fault();
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::SeqCst);
        handle.join().unwrap_or_default()
    });
    outcomes
        .into_iter()
        .map(|o| {
            let p = pair_of(&paths[o.index]);
            (o, p)
        })
        .collect()
}

#[test]
fn faults_under_load_hit_only_the_broken_service() -> Result<()> {
    let m = LocalMesh::up(3, 28600, 28690, &[])?;
    let kill9 = |pid: u32| {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    };

    // An app dies: only its pairs fail, and each failure is counted as 5xx for that pair.
    let before = counters(&m)?;
    let b_app = m.pids()["service-b"];
    let results = under_load(&m, || kill9(b_app));
    let mut failed: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (o, (from, to)) in &results {
        let involves_b = from == "service-b" || to == "service-b";
        if !involves_b {
            assert_eq!(
                o.status,
                Some(200),
                "{from} → {to} failed while only service-b was down"
            );
        } else if o.status != Some(200) {
            *failed.entry((from.clone(), to.clone())).or_default() += 1;
        }
    }
    assert!(
        !failed.is_empty(),
        "killing service-b caused no failure at all: the fault was not exercised"
    );
    eprintln!(
        "app kill: {} requests, failures per pair: {failed:?}",
        results.len()
    );
    let after = counters(&m)?;
    for caller in ["service-a", "service-c"] {
        let k = key(caller, "service-b", "outbound", "5xx");
        let counted = after.get(&k).copied().unwrap_or(0) - before.get(&k).copied().unwrap_or(0);
        let seen = failed
            .get(&(caller.to_owned(), "service-b".to_owned()))
            .copied()
            .unwrap_or(0);
        assert_eq!(
            counted, seen,
            "{caller} → service-b 5xx counted vs failed calls"
        );
    }
    m.wait_until_verified("service-b's app", Duration::from_secs(30))?;

    // A sidecar dies: the gateway keeps serving the other services, then traffic recovers.
    let c_sidecar = m.pids()["service-c-sidecar"];
    let results = under_load(&m, || kill9(c_sidecar));
    for (o, (from, to)) in &results {
        if from != "service-c" && to != "service-c" {
            assert_eq!(
                o.status,
                Some(200),
                "{from} → {to} failed while only service-c's sidecar was down"
            );
        }
    }
    m.wait_until_verified("service-c's sidecar", Duration::from_secs(30))?;
    assert!(m.log("supervisor").contains("service-c-sidecar exited"));
    Ok(())
}

#[test]
fn down_during_load_drains_accepted_requests() -> Result<()> {
    let m = LocalMesh::up(3, 28700, 28790, &[])?;
    let paths = round_robin_calls(&m);
    let pids = m.pids();
    let stop = AtomicBool::new(false);
    let begin = Instant::now();
    let (outcomes, down_started, down_took) = std::thread::scope(|scope| {
        // One connection per request: a request is "accepted" once written on a connection
        // the gateway accepted before shutdown began.
        let load = Load {
            port: m.gateway(),
            connections: 16,
            paths: &paths,
            stop: Some(&stop),
            deadline: Duration::from_secs(60),
            keep_alive: false,
        };
        let handle = scope.spawn(move || load.run());
        std::thread::sleep(Duration::from_millis(1000));
        let started = begin.elapsed();
        let t = Instant::now();
        let out = m.run("down", &[]);
        let took = t.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stop.store(true, Ordering::SeqCst);
        (handle.join().unwrap_or_default(), started, took)
    });
    let accepted: Vec<&Outcome> = outcomes.iter().filter(|o| o.sent < down_started).collect();
    let lost: Vec<&&Outcome> = accepted.iter().filter(|o| o.status != Some(200)).collect();
    eprintln!(
        "down during load: {} requests sent before shutdown began, {} lost, down took {:.2} s",
        accepted.len(),
        lost.len(),
        down_took.as_secs_f64()
    );
    assert!(
        accepted.len() > 50,
        "too little load to judge: {}",
        accepted.len()
    );
    assert!(
        lost.is_empty(),
        "requests accepted before shutdown were lost: {lost:?}"
    );
    assert!(
        down_took < Duration::from_secs(10),
        "down took {down_took:?}"
    );
    assert!(all_gone(pids.values().copied()), "left running: {pids:?}");
    Ok(())
}

fn one_error_line(out: &std::process::Output) -> Result<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "it succeeded: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    ensure!(
        errors.len() == 1 && stderr.lines().last() == errors.first().copied(),
        "not one error line at the end: {stderr}"
    );
    Ok(errors[0].to_owned())
}

/// A process that is not the mesh's: `sleep`, in its own session.
fn stranger() -> Result<std::process::Child> {
    Ok(std::process::Command::new("setsid")
        .args(["sleep", "120"])
        .spawn()?)
}

/// The state dir damaged while the mesh runs: the plan truncated, then deleted; the pid files
/// pointing at a stranger. `status` says what is wrong in one line, `up` refuses to start over
/// the live mesh, and `down` stops exactly the mesh's processes (the stranger lives on).
#[test]
fn a_damaged_state_dir_never_costs_a_strangers_process_or_a_live_mesh() -> Result<()> {
    let m = LocalMesh::up_on_free_ports(2, &[])?;
    let state = m.state();
    let own: Vec<u32> = m.pids().values().copied().collect();
    ensure!(own.len() == 5, "{own:?}");
    let mut stranger = stranger()?;
    let stranger_pid = stranger.id();

    // The plan truncated: status names it and the processes that still run.
    let plan = std::fs::read(state.layout_path())?;
    std::fs::write(state.layout_path(), &plan[..plan.len() / 2])?;
    let line = one_error_line(&m.run("status", &[]))?;
    ensure!(
        line.contains("state.json is damaged")
            && line.contains("processes of this mesh still run")
            && line.contains("deployer down"),
        "{line}"
    );
    // The pid files pointing at the stranger.
    let mut pids = m.pids();
    let first = pids.keys().next().cloned().unwrap_or_default();
    pids.insert(first, stranger_pid);
    std::fs::write(state.pids_path(), serde_json::to_vec(&pids)?)?;
    std::fs::write(state.supervisor_pid_path(), format!("{stranger_pid}\n"))?;
    // The plan deleted.
    std::fs::remove_file(state.layout_path())?;
    let line = one_error_line(&m.run("status", &[]))?;
    eprintln!("status without its plan: {line}");
    ensure!(
        line.contains("state.json is missing") && line.contains("processes of this mesh still run"),
        "{line}"
    );

    // `up` over it is refused, and starts nothing.
    let (base, gateway) = meshtally_tests::mesh::free_ports(2)?;
    let state_dir = m.state_dir();
    let up = meshtally_tests::mesh::deployer(&[
        "up",
        "--detach",
        "--services",
        "2",
        "--base-port",
        &base.to_string(),
        "--gateway-port",
        &gateway.to_string(),
        "--state-dir",
        state_dir.to_str().unwrap_or_default(),
        "--wasm",
        meshtally_tests::filter_wasm().to_str().unwrap_or_default(),
    ]);
    let line = one_error_line(&up)?;
    eprintln!("up over the damaged live mesh: {line}");
    ensure!(line.contains("already running in"), "{line}");

    // `down` stops the mesh's own processes, never the stranger.
    let down = m.run("down", &[]);
    ensure!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !all_gone(own.iter().copied()) {
        ensure!(Instant::now() < deadline, "the mesh's processes still run");
        std::thread::sleep(Duration::from_millis(50));
    }
    ensure!(
        state.own_processes().is_empty(),
        "left running: {:?}",
        state.own_processes()
    );
    let alive = stranger.try_wait()?.is_none();
    let _ = stranger.kill();
    let _ = stranger.wait();
    ensure!(alive, "down killed a process that was not the mesh's");
    Ok(())
}

/// `up` on a full filesystem (a 64 KiB tmpfs: the filter module alone is larger under the state dir's parent) and `up` whose
/// gateway port a stranger takes while the apps start: one line each, no process of the mesh
/// left running, no half-written state (no state dir, no temporary generation, no run markers).
#[test]
fn up_out_of_disk_or_out_of_ports_leaves_nothing_behind() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let full = tmp.path().join("full");
    std::fs::create_dir(&full)?;
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&full)
        .status()?;
    ensure!(
        mounted.success(),
        "mounting a tmpfs (the test runs as root, as CI does)"
    );
    /// Stops a mesh that started after all (a failing test), then unmounts.
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let state = self.0.join("state");
            let _ = meshtally_tests::mesh::deployer(&[
                "down",
                "--state-dir",
                state.to_str().unwrap_or_default(),
            ]);
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(full.clone());
    let wasm = meshtally_tests::filter_wasm();
    let up = |state: &std::path::Path| {
        let (base, gateway) = meshtally_tests::mesh::free_ports(2).unwrap_or((0, 0));
        let (base, gateway) = (base.to_string(), gateway.to_string());
        let args = vec![
            "up",
            "--detach",
            "--services",
            "2",
            "--base-port",
            &base,
            "--gateway-port",
            &gateway,
            "--state-dir",
            state.to_str().unwrap_or_default(),
            "--wasm",
            wasm.to_str().unwrap_or_default(),
        ];
        meshtally_tests::mesh::deployer(&args)
    };
    let nothing_left = |state: &std::path::Path| -> Result<()> {
        let dir = meshtally_deployer::local_mesh::StateDir::new(state);
        ensure!(
            dir.own_processes().is_empty(),
            "left running: {:?}",
            dir.own_processes()
        );
        for marker in ["pids.json", "supervisor.pid", "ready"] {
            ensure!(
                !state.join(marker).exists(),
                "{marker} left in {}",
                state.display()
            );
        }
        Ok(())
    };

    // The disk is full: the new generation cannot be written.
    let state = full.join("state");
    let out = up(&state);
    let line = one_error_line(&out)?;
    eprintln!("full disk: {line}");
    ensure!(line.contains("No space left on device"), "{line}");
    ensure!(!state.exists(), "a state dir was left: {}", state.display());
    let leftovers: Vec<_> = std::fs::read_dir(&full)?.filter_map(|e| e.ok()).collect();
    ensure!(leftovers.is_empty(), "half-written: {leftovers:?}");
    nothing_left(&state)?;

    // A stranger takes the gateway's port once the plan has checked it: an Envoy wrapper hands
    // it to a process of its own session, bound, before the gateway's Envoy starts.
    let wrapper = tmp.path().join("envoy.sh");
    let (taken, bound) = (tmp.path().join("taken"), tmp.path().join("bound"));
    let (base, gateway) = meshtally_tests::mesh::free_ports(2)?;
    let real_envoy = meshtally_tests::envoy::envoy_bin()?;
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\
             case \"$*\" in *ingress-gateway.json*)\n\
               if mkdir {taken} 2>/dev/null; then\n\
                 env -u MESHTALLY_STATE_DIR setsid python3 -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\", {gateway})); s.listen(); open(\"{bound}\", \"w\").close(); time.sleep(60)' &\n\
                 echo $! > {holder}\n\
                 while [ ! -e {bound} ]; do sleep 0.01; done\n\
               fi;;\n\
             esac\n\
             exec {real} \"$@\"\n",
            taken = taken.display(),
            bound = bound.display(),
            holder = tmp.path().join("holder").display(),
            real = real_envoy.display(),
        ),
    )?;
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()?;
    let state = tmp.path().join("state");
    let out = meshtally_tests::mesh::deployer(&[
        "up",
        "--detach",
        "--services",
        "2",
        "--base-port",
        &base.to_string(),
        "--gateway-port",
        &gateway.to_string(),
        "--state-dir",
        state.to_str().unwrap_or_default(),
        "--wasm",
        wasm.to_str().unwrap_or_default(),
        "--envoy",
        wrapper.to_str().unwrap_or_default(),
    ]);
    let holder: Option<u32> = std::fs::read_to_string(tmp.path().join("holder"))
        .ok()
        .and_then(|p| p.trim().parse().ok());
    let line = one_error_line(&out);
    if let Some(pid) = holder {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    let line = line?;
    eprintln!("port taken: {line}");
    ensure!(holder.is_some(), "the stranger never took the port");
    ensure!(
        line.contains("gateway") && line.contains("ddress already in use"),
        "{line}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !meshtally_deployer::local_mesh::StateDir::new(&state)
        .own_processes()
        .is_empty()
    {
        ensure!(Instant::now() < deadline, "the mesh's processes still run");
        std::thread::sleep(Duration::from_millis(50));
    }
    nothing_left(&state)?;
    Ok(())
}
