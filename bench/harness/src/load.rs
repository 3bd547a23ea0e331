//! The load generator: oha (crates.io, installed into `.tools/` by `bench/setup.sh`). It was
//! chosen because it does all three things the benchmark needs in one tool: closed-loop runs
//! for saturation throughput, open-loop runs at a fixed rate (`-q`, with coordinated-omission
//! correction) for latency, and TLS with a client certificate (`--cert/--key`) for mTLS.
//! Every run is bounded: oha stops itself after `-z`, and the harness kills it past a deadline.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::certs::Pki;
use crate::variants::{CLAIMED_SOURCE, CLIENT_HOPS};
use meshtally_testkit::process::Guarded;

/// oha from `--oha`, then `OHA_BIN`, then `.tools/bin/oha` (where `bench/setup.sh` puts it),
/// then `PATH`.
pub fn find_oha(explicit: Option<&Path>, root: &Path) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    if let Some(bin) = std::env::var_os("OHA_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let tools = root.join(".tools/bin/oha");
    if tools.is_file() {
        return Ok(tools);
    }
    meshtally_envoy::locate::Places::here()
        .on_path("oha")
        .context(
            "oha not found: run bench/setup.sh (cargo install --root .tools oha), or pass --oha",
        )
}

pub fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Where and how to send requests: the same URL, headers and connection count for every
/// variant; mTLS variants add the client certificate.
pub struct Target<'a> {
    pub port: u16,
    pub mtls: Option<&'a Pki>,
}

/// What the requests look like: the authority names a mesh service (so meshtally's outbound
/// side derives a realistic destination), and the client claims a source and a hop count.
pub const AUTHORITY: &str = "service-b.bench.svc.cluster.local:8000";

impl Target<'_> {
    fn base_args(&self, command: &mut Command) {
        let scheme = if self.mtls.is_some() { "https" } else { "http" };
        command
            .arg(format!("{scheme}://127.0.0.1:{}/", self.port))
            .args(["--host", AUTHORITY])
            .args(["-H", &format!("x-mesh-source: {CLAIMED_SOURCE}")])
            .args(["-H", &format!("x-mesh-hops: {CLIENT_HOPS}")])
            // Plain keep-alive HTTP/1.1 with nothing compressed, like a sidecar's traffic.
            .args(["--http-version", "1.1", "--disable-compression"]);
        if let Some(pki) = self.mtls {
            command
                .arg("--cacert")
                .arg(&pki.ca)
                .arg("--cert")
                .arg(&pki.client.cert)
                .arg("--key")
                .arg(&pki.client.key);
        }
    }
}

/// How one run loads the proxy.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Closed loop: `connections` keep one request each in flight, as fast as the proxy answers.
    Saturate { connections: u32 },
    /// Open loop at `rps` requests per second, latency corrected for coordinated omission.
    FixedRate { rps: u32, connections: u32 },
}

/// What oha reported for one run.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Responses received, any status.
    pub completed: u64,
    /// Responses with status 200.
    pub ok: u64,
    /// Requests that failed without a response (connection errors, timeouts, aborts).
    pub errors: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Outcome {
    pub fn throughput(&self) -> f64 {
        if self.seconds > 0.0 {
            self.completed as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Sends exactly `requests` requests over one keep-alive connection, one at a time: the fixed
/// workload the instruction counts are taken over.
pub fn fixed_count(oha: &Path, target: &Target<'_>, requests: u32) -> Result<Outcome> {
    let mut command = crate::procfs::pinned_command(oha, Some(crate::procfs::LOAD_CPU));
    target.base_args(&mut command);
    command
        .args([
            "--no-tui",
            "--output-format",
            "json",
            "-c",
            "1",
            "-t",
            "60s",
        ])
        .arg("-n")
        .arg(requests.to_string());
    report(command, "oha -n", Duration::from_secs(600))
}

/// Runs oha once against `target` for `seconds` and parses its JSON report.
pub fn run(oha: &Path, target: &Target<'_>, mode: Mode, seconds: f64) -> Result<Outcome> {
    let mut command = crate::procfs::pinned_command(oha, Some(crate::procfs::LOAD_CPU));
    target.base_args(&mut command);
    command
        .args(["--no-tui", "--output-format", "json"])
        .arg("-z")
        .arg(format!("{}ms", (seconds * 1000.0).round() as u64))
        // Let requests in flight at the deadline finish, so every request the proxy saw is one
        // oha counted (the smoke test compares this with meshtally's own counters).
        .arg("--wait-ongoing-requests-after-deadline")
        .args(["-t", "10s"])
        // Two async threads: one core for the generator, one for the proxy, on a 2-core box.
        .args(["--worker-threads", "2"]);
    match mode {
        Mode::Saturate { connections } => {
            command.arg("-c").arg(connections.to_string());
        }
        Mode::FixedRate { rps, connections } => {
            command
                .arg("-c")
                .arg(connections.to_string())
                .arg("-q")
                .arg(rps.to_string())
                .arg("--latency-correction");
        }
    }
    report(command, "oha", Duration::from_secs_f64(seconds + 30.0))
}

/// Runs a prepared oha command with its JSON report written to a temporary file, bounded by
/// `limit`, and parses the report.
fn report(mut command: Command, what: &str, limit: Duration) -> Result<Outcome> {
    let out_path = tempfile::NamedTempFile::new()?.into_temp_path();
    command
        .arg("-o")
        .arg(&out_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut process = Guarded::spawn(command, what)?;
    let status = process.wait_bounded(limit)?;
    if !status.success() {
        bail!("{what} exited with {status}");
    }
    let text = std::fs::read_to_string(&out_path).context("reading oha's JSON report")?;
    parse(&text)
}

fn parse(text: &str) -> Result<Outcome> {
    let json: Value = serde_json::from_str(text).context("parsing oha's JSON report")?;
    let codes = json["statusCodeDistribution"]
        .as_object()
        .context("no statusCodeDistribution")?;
    let completed = codes.values().filter_map(Value::as_u64).sum();
    let ok = codes.get("200").and_then(Value::as_u64).unwrap_or(0);
    let errors = json["errorDistribution"]
        .as_object()
        .map_or(0, |e| e.values().filter_map(Value::as_u64).sum());
    let seconds = json["summary"]["total"]
        .as_f64()
        .context("no summary.total")?;
    let pct = |p: &str| {
        json["latencyPercentiles"][p]
            .as_f64()
            .map_or(f64::NAN, |s| s * 1e3)
    };
    Ok(Outcome {
        completed,
        ok,
        errors,
        seconds,
        p50_ms: pct("p50"),
        p99_ms: pct("p99"),
    })
}

/// One request with `oha --debug`, which prints the response's headers: used to check that a
/// variant tags requests as expected before it is measured. Returns the response headers.
pub fn probe(oha: &Path, target: &Target<'_>) -> Result<Vec<(String, String)>> {
    let mut command = Command::new(oha);
    target.base_args(&mut command);
    command
        .arg("--debug")
        .args(["-t", "5s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = command.output().context("running oha --debug")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let Some((_, response)) = text.split_once("Response {") else {
        bail!(
            "oha --debug got no response:\n{text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    Ok(debug_headers(response))
}

/// Header lines of oha's debug dump look like `"name": "value",`.
fn debug_headers(response: &str) -> Vec<(String, String)> {
    response
        .lines()
        .filter_map(|line| {
            let (name, value) = line.trim().trim_end_matches(',').split_once("\": \"")?;
            Some((
                name.trim_start_matches('"').to_owned(),
                value.trim_end_matches('"').to_owned(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_report() {
        let text = r#"{"summary": {"total": 2.0}, "latencyPercentiles": {"p50": 0.0005, "p99": 0.002},
            "statusCodeDistribution": {"200": 90, "503": 10}, "errorDistribution": {"aborted": 1}}"#;
        let o = parse(text).unwrap();
        assert_eq!((o.completed, o.ok, o.errors), (100, 90, 1));
        assert_eq!(o.throughput(), 50.0);
        assert!((o.p50_ms - 0.5).abs() < 1e-9 && (o.p99_ms - 2.0).abs() < 1e-9);
    }

    #[test]
    fn reads_debug_headers() {
        let dump = "Response {\n    status: 200,\n    headers: {\n        \"x-echo-hops\": \"2\",\n        \"server\": \"envoy\",\n    },\n";
        let h = debug_headers(dump);
        assert!(h.contains(&("x-echo-hops".to_owned(), "2".to_owned())));
        assert!(h.contains(&("server".to_owned(), "envoy".to_owned())));
    }
}
