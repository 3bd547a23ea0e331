//! `envoy --mode validate`: the check every Envoy config meshtally writes passes, run by the
//! real Envoy binary.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Runs `envoy --mode validate` on a config file.
pub fn validate(envoy: &Path, config: &Path) -> Result<()> {
    let out = Command::new(envoy)
        .args(["--mode", "validate", "-l", "error", "-c"])
        .arg(config)
        .output()
        .with_context(|| format!("running {} --mode validate", envoy.display()))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        let reason = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        bail!(
            "envoy --mode validate rejected {}: {reason}",
            config.display()
        );
    }
    Ok(())
}
