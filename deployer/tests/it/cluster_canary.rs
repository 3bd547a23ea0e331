//! `deployer canary --cluster` on the loopback control plane: the VirtualServices' weights move
//! step by step by server-side apply under the field manager `meshtally-shift`, nothing else
//! in them changes, and a rollback restores the starting weights. The control plane's pods are
//! kwok's (no sidecar runs), so the counts come from `--prometheus`: a real Prometheus scraping
//! a real local mesh of the same services (`up --prometheus`), where v2 takes half the calls
//! and fails those from service-c, and calls come from service-b alone (a healthy canary,
//! promoted) or from service-c too (a failing one, rolled back).

use crate::common;
use crate::controlplane::{shared_state, ControlPlane};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

const NS: &str = "live-canary";

fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A local mesh started with `up --detach`, stopped on drop.
struct Local {
    state: PathBuf,
}

impl Local {
    fn up(work: &Path, file: &str, gateway: u16, prometheus: u16) -> Local {
        let root = common::workspace();
        let state = work.join("state");
        let path = work.join("local.yaml");
        std::fs::write(&path, file).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_deployer"))
            .args(["up", "--detach", "-f"])
            .arg(&path)
            .arg("--state-dir")
            .arg(&state)
            .args(["--gateway-port", &gateway.to_string()])
            .arg(format!("--prometheus={prometheus}"))
            .arg("--service-bin")
            .arg(root.join("target/debug/demo-service"))
            .arg("--wasm")
            .arg(root.join(meshtally_envoy::locate::WORKSPACE_MODULE))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "up: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        Local { state }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_deployer"))
            .arg("down")
            .arg("--state-dir")
            .arg(&self.state)
            .output();
    }
}

/// Sets the flag when dropped, a failing assertion included.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn virtual_service(cp: &ControlPlane, name: &str) -> Value {
    let json = cp.kubectl_ok(
        &[
            "get",
            "virtualservice",
            name,
            "-n",
            NS,
            "--show-managed-fields",
            "-o",
            "json",
        ],
        None,
    );
    serde_json::from_str(&json).unwrap()
}

/// (subset, weight) of each version with calls.
type Split = Vec<(String, u64)>;

/// (subset, weight) of service-a's weighted route in a VirtualService, versions at 0 left out.
fn split(vs: &Value) -> Split {
    let route = vs["spec"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "service-a")
        .unwrap();
    route["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["destination"]["subset"].as_str().unwrap().to_owned(),
                d["weight"].as_u64().unwrap_or(100),
            )
        })
        .filter(|(_, w)| *w > 0)
        .collect()
}

/// The object without what an apply of its weights may change: its routes and the metadata
/// the server keeps (resourceVersion, generation, managed fields).
fn all_but_routes(vs: &Value) -> Value {
    let mut out = vs.clone();
    out["spec"]["http"] = Value::Null;
    for key in ["resourceVersion", "generation", "managedFields"] {
        out["metadata"][key] = Value::Null;
    }
    out
}

fn w(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(v, w)| ((*v).to_owned(), *w)).collect()
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON report: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn canary_moves_the_weights_by_server_side_apply_and_rolls_back() {
    let _state = shared_state();
    let cp = ControlPlane::shared();
    let work = tempfile::tempdir().unwrap();
    common::fake_module(work.path());
    std::fs::write(
        work.path().join("canary.yaml"),
        "services:\n  - name: service-a\n    versions:\n      - {name: v1, weight: 100}\n      - {name: v2, weight: 0}\n  - service-b\n  - service-c\n",
    )
    .unwrap();
    let out = cp.deployer(
        work.path(),
        &[
            "apply",
            "--wasm-file",
            "meshtally_filter.wasm",
            "--timeout",
            "180",
            "-f",
            "canary.yaml",
            "--namespace",
            NS,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start: Vec<Value> = ["service-a", "meshtally-ingress"]
        .iter()
        .map(|n| virtual_service(&cp, n))
        .collect();
    assert_eq!(split(&start[0]), w(&[("v1", 100)]));

    let p = free_ports(5);
    let local = format!(
        "services:\n  - name: service-a\n    port: {}\n    versions:\n      - {{name: v1, weight: 50}}\n      - {{name: v2, weight: 50, fail_status: 500, fail_from: service-c}}\n  - name: service-b\n    port: {}\n  - name: service-c\n    port: {}\n",
        p[0], p[1], p[2]
    );
    let _mesh = Local::up(work.path(), &local, p[3], p[4]);
    let prometheus = format!("http://127.0.0.1:{}", p[4]);

    // Calls from service-b (and, once `failing` is set, from service-c), and every split the
    // in-mesh VirtualService shows, in order.
    let stop = Arc::new(AtomicBool::new(false));
    // Stops the threads below however the test ends.
    let _stop_on_drop = StopOnDrop(stop.clone());
    let failing = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Split>>> = Arc::default();
    let traffic = {
        let (stop, failing, gateway) = (stop.clone(), failing.clone(), p[3]);
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let caller = if failing.load(Ordering::SeqCst) && i.is_multiple_of(2) {
                    "service-c"
                } else {
                    "service-b"
                };
                let _ = meshtally_envoy::http::get(
                    &format!("http://127.0.0.1:{gateway}/{caller}/call/service-a"),
                    Duration::from_secs(5),
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let watcher = {
        // Not the control plane itself: a thread still holding it when a failed test ends
        // would keep it from being stopped.
        let (stop, seen) = (stop.clone(), seen.clone());
        let kubeconfig = cp.kubeconfig.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                let out = Command::new(crate::controlplane::kubectl_bin())
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["get", "virtualservice", "service-a", "-n", NS, "-o", "json"])
                    .output();
                let Some(vs) = out
                    .ok()
                    .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
                else {
                    continue;
                };
                let now = split(&vs);
                let mut seen = seen.lock().unwrap();
                if seen.last() != Some(&now) {
                    seen.push(now);
                }
                drop(seen);
            }
        })
    };
    // Prometheus has scraped calls into service-a before the first canary looks.
    let query = format!("{prometheus}/api/v1/query?query=meshtally_requests_total");
    let scraped = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        meshtally_envoy::http::get(&query, Duration::from_secs(5))
            .ok()
            .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .is_some_and(|v| {
                v["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
            })
    });
    assert!(
        scraped,
        "Prometheus at {prometheus} scraped no meshtally counter in 30 s"
    );
    let canary = |extra: &[&str]| {
        let mut args = vec![
            "canary",
            "service-a",
            "--cluster",
            "--namespace",
            NS,
            "-f",
            "canary.yaml",
            "--prometheus",
            &prometheus,
            "--interval",
            "1s",
            "--min-requests",
            "40",
            "--min-caller-requests",
            "15",
            "--json",
        ];
        args.extend_from_slice(extra);
        cp.deployer(work.path(), &args)
    };

    let promoted = canary(&["--to", "v2", "--steps", "25,50"]);
    let r = report(&promoted);
    assert_eq!(promoted.status.code(), Some(0), "{r}");
    assert_eq!(r["outcome"], "promoted", "{r}");
    for s in r["steps"].as_array().unwrap() {
        let published = s["published"].as_str().unwrap();
        assert!(
            published.contains("field manager meshtally-shift")
                && published.contains("virtualservice/service-a")
                && published.contains("virtualservice/meshtally-ingress"),
            "{published}"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let steps = seen.lock().unwrap().clone();
    assert_eq!(
        steps,
        [
            w(&[("v1", 100)]),
            w(&[("v1", 75), ("v2", 25)]),
            w(&[("v1", 50), ("v2", 50)]),
            w(&[("v2", 100)])
        ],
        "the weights, step by step"
    );
    for (before, name) in start.iter().zip(["service-a", "meshtally-ingress"]) {
        let after = virtual_service(&cp, name);
        assert_eq!(
            all_but_routes(before),
            all_but_routes(&after),
            "{name}: only its routes changed"
        );
        let managers = after["metadata"]["managedFields"].as_array().unwrap();
        let shift = managers
            .iter()
            .find(|m| m["manager"] == "meshtally-shift")
            .unwrap_or_else(|| panic!("{name}: no meshtally-shift manager in {managers:?}"));
        assert_eq!(shift["operation"], "Apply");
        assert!(
            shift["fieldsV1"]["f:spec"].get("f:http").is_some(),
            "{shift}"
        );
        assert_eq!(split(&after), w(&[("v2", 100)]));
    }

    // Back to the start (--abort is the same rollback), then a canary whose v2 fails the calls
    // from service-c: rolled back at its first step, to the starting weights.
    let aborted = canary(&["--abort", "--from", "v1"]);
    assert_eq!(aborted.status.code(), Some(0), "{}", report(&aborted));
    assert_eq!(split(&virtual_service(&cp, "service-a")), w(&[("v1", 100)]));
    failing.store(true, Ordering::SeqCst);
    let rolled_back = canary(&["--to", "v2", "--steps", "25,50"]);
    let r = report(&rolled_back);
    assert_eq!(rolled_back.status.code(), Some(1), "{r}");
    assert_eq!(r["outcome"], "rolled_back", "{r}");
    assert_eq!(
        r["failing_callers"],
        serde_json::json!(["service-c"]),
        "{r}"
    );
    stop.store(true, Ordering::SeqCst);
    traffic.join().unwrap();
    watcher.join().unwrap();
    for (before, name) in start.iter().zip(["service-a", "meshtally-ingress"]) {
        let after = virtual_service(&cp, name);
        assert_eq!(split(&after), split(before), "{name}: the starting weights");
        assert_eq!(all_but_routes(before), all_but_routes(&after), "{name}");
    }
    // No lock is left behind.
    let locks = cp.kubectl_ok(&["get", "configmaps", "-n", NS, "-o", "name"], None);
    assert!(!locks.contains("meshtally-canary"), "{locks}");
}
