//! `deployer dashboard` in a real browser: a local mesh (permissive mTLS, so a plain-HTTP
//! client can call a sidecar too), known traffic through the gateway and from that client, the
//! dashboard on a port the OS picks, and Debian's headless Chromium driven by playwright-core
//! (`tests/dashboard/dashboard.test.mjs`) asserting from the DOM: one node per service, one
//! edge per pair the traffic makes with the labels `/api/graph` gives, locks on exactly the
//! certificate-proved edges, and a killed service's edges red within 3 s. The screenshots go
//! to `target/test-output/dashboard/`.
//!
//! Needs `make setup` (chromium from Debian, `npm ci` in tests/dashboard); without them the
//! test fails and says so. Everything it starts (mesh, traffic, dashboard, node and its
//! browser, as one process group) is stopped when it ends, also on failure.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use meshtally_testkit::process::Guarded;
use meshtally_tests::mesh::{binary, LocalMesh};
use meshtally_tests::workspace_root;

/// Fixed like the other mesh tests' (28100–28900 are theirs): the mesh's ports must be
/// consecutive; the dashboard's comes from the OS.
const BASE_PORT: u16 = 29410;
const GATEWAY_PORT: u16 = 29480;
const GATEWAY_CALLER: &str = "istio-ingressgateway-service-account";
const CHROMIUM: &str = "/usr/bin/chromium";

fn tools() -> Result<PathBuf> {
    let dir = workspace_root().join("tests/dashboard");
    if !dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        bail!("playwright-core is missing in tests/dashboard: run `make setup` (npm ci there)");
    }
    if !Path::new(CHROMIUM).is_file() {
        bail!("{CHROMIUM} is missing: run `make setup` (apt-get install chromium)");
    }
    Ok(dir)
}

/// Calls until `stop`: gateway → a → b, gateway → b → c, and a plain-HTTP caller that names
/// itself `tester` straight into c's sidecar (no certificate: an edge without a lock).
fn traffic(mesh: &LocalMesh, stop: &AtomicBool) {
    let gateway = mesh.gateway();
    let c = mesh.port("service-c");
    while !stop.load(Ordering::SeqCst) {
        let _ = meshtally_tests::http::get(gateway, "/service-a/call/service-b", &[]);
        let _ = meshtally_tests::http::get(gateway, "/service-b/call/service-c", &[]);
        let _ = meshtally_tests::http::get(c, "/info", &[("x-mesh-source", b"tester")]);
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// Starts `deployer dashboard` and reads the url it prints.
fn dashboard(mesh: &LocalMesh, out: &Path) -> Result<(Guarded, String)> {
    let mut command = Command::new(binary("deployer"));
    command
        .args(["dashboard", "--port", "0", "--state-dir"])
        .arg(mesh.state_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(out.join("dashboard.log"))?);
    let mut process = Guarded::spawn(command, "deployer dashboard")?;
    let stdout = process.take_stdout().context("dashboard stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .with_context(|| format!("no url in the dashboard's first line {line:?}"))?
        .to_owned();
    Ok((process, url))
}

#[test]
fn the_dashboard_draws_the_local_mesh_in_chromium() -> Result<()> {
    let dir = tools()?;
    let out = workspace_root().join("target/test-output/dashboard");
    std::fs::create_dir_all(&out)?;
    let mesh = LocalMesh::up(3, BASE_PORT, GATEWAY_PORT, &["--mtls", "permissive"])?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| traffic(&mesh, &stop));
        let run = || -> Result<()> {
            let (_dashboard, url) = dashboard(&mesh, &out)?;
            let verified = [
                format!("{GATEWAY_CALLER}>service-a"),
                format!("{GATEWAY_CALLER}>service-b"),
                "service-a>service-b".into(),
                "service-b>service-c".into(),
            ];
            let mut expected = verified.to_vec();
            expected.push("tester>service-c".into());
            expected.sort();
            let log = out.join("node.log");
            let log_file = std::fs::File::create(&log)?;
            let mut node = Command::new("node");
            node.arg("dashboard.test.mjs")
                .current_dir(&dir)
                .env("DASHBOARD_URL", &url)
                .env("OUT_DIR", &out)
                .env("STATE_DIR", mesh.state_dir())
                .env("SERVICES", "service-a,service-b,service-c")
                .env("EXPECTED_EDGES", expected.join(","))
                .env("VERIFIED_EDGES", verified.join(","))
                .env("KILL", "service-c")
                .env("CHROMIUM", CHROMIUM)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file);
            let status = Guarded::spawn_group(node, "node dashboard.test.mjs")?
                .wait_bounded(Duration::from_secs(180))?;
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            eprintln!("{said}");
            if !status.success() {
                bail!(
                    "the browser test failed ({status}):\n{said}\ndashboard log:\n{}",
                    meshtally_testkit::tail(&out.join("dashboard.log"), 20)
                );
            }
            for shot in ["dashboard.png", "dashboard-killed.png"] {
                let bytes = std::fs::read(out.join(shot))?;
                assert!(bytes.starts_with(b"\x89PNG"), "{shot} is not a PNG");
            }
            Ok(())
        };
        let result = run();
        stop.store(true, Ordering::SeqCst);
        result
    })
}
