//! The bench's ways of starting Envoy, on the one runner of `meshtally-testkit`: pinned to a
//! core, or under valgrind, with the binary `--envoy` chose; and the check that the process
//! measured through `/proc` is Envoy itself.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::Value;

pub use meshtally_testkit::envoy::{Envoy, Launch};

/// Envoy as `deployer up` finds it: `--envoy`, then `ENVOY_BIN`, then `PATH`, then the
/// workspace's `.venv`.
pub fn find_envoy(explicit: Option<&Path>) -> Result<PathBuf> {
    meshtally_testkit::envoy::find(explicit)
}

/// The first line of `envoy --version`, for the report.
pub fn version(bin: &Path) -> Result<String> {
    let out = Command::new(bin).arg("--version").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    // "envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL" -> "1.40.0 (<sha>, RELEASE, BoringSSL)"
    let tail = line.split("version:").nth(1).unwrap_or(line).trim();
    let parts: Vec<&str> = tail.split('/').collect();
    Ok(match parts.as_slice() {
        [sha, ver, _, kind, ssl, ..] => format!("{ver} ({kind}, {ssl}, {sha:.12})"),
        _ => tail.to_owned(),
    })
}

/// The bench's launch: `bin`, warning-level logs (logging costs nothing per request), 30 s to
/// become ready, pinned to `cpu` with `taskset` when there is more than one CPU and taskset is
/// at hand.
pub fn pinned(bin: &Path, cpu: Option<usize>) -> Launch {
    Launch {
        bin: Some(bin.to_owned()),
        prefix: crate::procfs::pin_prefix(cpu),
        ready_within: Duration::from_secs(30),
        log_level: "warning",
    }
}

/// Starts Envoy as `launch` says and checks that the child is Envoy: CPU and memory are read
/// from `/proc/<pid>`, so it must not be a wrapper that starts Envoy as a grandchild (PyPI's
/// `envoy` shim execs, so it passes). Under valgrind the child is valgrind, on purpose.
pub fn start(dir: &Path, name: &str, config: &Value, launch: &Launch) -> Result<Envoy> {
    let envoy = Envoy::start_with(dir, name, config, launch)?;
    if !launch.prefix.iter().any(|p| p.contains("valgrind")) {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", envoy.pid()))?;
        if !comm.trim().starts_with("envoy") {
            bail!(
                "process {} is {:?}, not envoy: pass the real binary with --envoy or ENVOY_BIN",
                envoy.pid(),
                comm.trim()
            );
        }
    }
    Ok(envoy)
}
