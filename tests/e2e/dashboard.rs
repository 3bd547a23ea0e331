//! `deployer dashboard` in a real browser: the dashboard on a port the OS picks, started before
//! the mesh; a local mesh (permissive mTLS, so a plain-HTTP client can call a sidecar too);
//! known traffic through the gateway and from that client; and Debian's headless Chromium
//! driven by playwright-core (`tests/dashboard/dashboard.test.mjs`) asserting from the DOM: the
//! page saying no mesh runs, then the nodes and a hint while there is no traffic, then one node per service, one
//! edge per pair the traffic makes (a → c and c → a among them) with the labels `/api/graph`
//! gives, locks on exactly the certificate-proved edges, no edge label over another or over a
//! node, arrowheads on their callee's outline and under no label; then a killed service's node
//! `restarting` within 2 s, its edges red within 3 s and attributed to it. The screenshots go
//! to `target/test-output/dashboard/` (`dashboard.png`, with traffic both ways, is the one in
//! the docs).
//!
//! Needs `make setup` (chromium from Debian, `npm ci` in tests/dashboard); without them the
//! test fails and says so. Everything it starts (mesh, traffic, dashboard, node and its
//! browser, as one process group) is stopped when it ends, also on failure.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use meshtally_testkit::process::Guarded;
use meshtally_tests::mesh::{binary, LocalMesh};
use meshtally_tests::workspace_root;

/// Fixed like the other mesh tests' (28100–28900 are theirs): the mesh's ports must be
/// consecutive; the dashboard's comes from the OS.
const BASE_PORT: u16 = 29410;
const GATEWAY_PORT: u16 = 29480;
const GATEWAY_CALLER: &str = "istio-ingressgateway-service-account";
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";

pub(crate) fn tools() -> Result<PathBuf> {
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

/// Calls until `stop`: gateway → a → b, gateway → b → c, a → c and c → a (both ways between
/// two services, the pair whose curves and labels must stay apart), and a plain-HTTP caller
/// that names itself `tester` straight into c's sidecar (no certificate: an edge without a
/// lock).
fn traffic(mesh: &LocalMesh, stop: &AtomicBool) {
    let gateway = mesh.gateway();
    let c = mesh.port("service-c");
    while !stop.load(Ordering::SeqCst) {
        let _ = meshtally_tests::http::get(gateway, "/service-a/call/service-b", &[]);
        let _ = meshtally_tests::http::get(gateway, "/service-b/call/service-c", &[]);
        let _ = meshtally_tests::http::get(gateway, "/service-a/call/service-c", &[]);
        let _ = meshtally_tests::http::get(gateway, "/service-c/call/service-a", &[]);
        let _ = meshtally_tests::http::get(c, "/info", &[("x-mesh-source", b"tester")]);
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// Starts `deployer dashboard` on `state` and reads the url it prints.
pub(crate) fn dashboard(state: &Path, out: &Path) -> Result<(Guarded, String)> {
    let mut command = Command::new(binary("deployer"));
    command
        .args(["dashboard", "--port", "0", "--state-dir"])
        .arg(state)
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

/// Waits until the browser test writes `name` into `out` (it is ready for the next step).
fn wait_for(node: &mut Guarded, out: &Path, name: &str, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !out.join(name).exists() {
        if let Some(status) = node.exited()? {
            bail!(
                "the browser test ended ({status}) before {name}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!("no {name} from the browser test within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[test]
fn the_dashboard_draws_the_local_mesh_in_chromium() -> Result<()> {
    let dir = tools()?;
    let out = workspace_root().join("target/test-output/dashboard");
    std::fs::create_dir_all(&out)?;
    for stale in ["no-mesh-seen", "no-traffic-seen"] {
        let _ = std::fs::remove_file(out.join(stale));
    }
    let scratch = tempfile::tempdir()?;
    let state = scratch.path().join("state");
    // The dashboard first, with no mesh running yet.
    let (_dashboard, url) = dashboard(&state, &out)?;
    let verified = [
        format!("{GATEWAY_CALLER}>service-a"),
        format!("{GATEWAY_CALLER}>service-b"),
        format!("{GATEWAY_CALLER}>service-c"),
        "service-a>service-b".into(),
        "service-a>service-c".into(),
        "service-b>service-c".into(),
        "service-c>service-a".into(),
    ];
    let mut expected = verified.to_vec();
    expected.push("tester>service-c".into());
    expected.sort();
    let log = out.join("node.log");
    let log_file = std::fs::File::create(&log)?;
    let mut command = Command::new("node");
    command
        .arg("dashboard.test.mjs")
        .current_dir(&dir)
        .env("DASHBOARD_URL", &url)
        .env("OUT_DIR", &out)
        .env("STATE_DIR", &state)
        .env("SERVICES", "service-a,service-b,service-c")
        .env("EXPECTED_EDGES", expected.join(","))
        .env("VERIFIED_EDGES", verified.join(","))
        .env("KILL", "service-c")
        .env("GATEWAY", GATEWAY_CALLER)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    let mut node = Guarded::spawn_group(command, "node dashboard.test.mjs")?;
    wait_for(&mut node, &out, "no-mesh-seen", &log)?;
    let mesh = LocalMesh::up_in(
        scratch,
        3,
        BASE_PORT,
        GATEWAY_PORT,
        &["--mtls", "permissive"],
    )?;
    wait_for(&mut node, &out, "no-traffic-seen", &log)?;
    let stop = AtomicBool::new(false);
    let status = std::thread::scope(|scope| {
        scope.spawn(|| traffic(&mesh, &stop));
        let status = node.wait_bounded(Duration::from_secs(180));
        stop.store(true, Ordering::SeqCst);
        status
    })?;
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!("{said}");
    if !status.success() {
        bail!(
            "the browser test failed ({status}):\n{said}\ndashboard log:\n{}",
            meshtally_testkit::tail(&out.join("dashboard.log"), 20)
        );
    }
    for shot in [
        "dashboard-no-traffic.png",
        "dashboard.png",
        "dashboard-killed.png",
    ] {
        let bytes = std::fs::read(out.join(shot))?;
        assert!(bytes.starts_with(b"\x89PNG"), "{shot} is not a PNG");
    }
    Ok(())
}
