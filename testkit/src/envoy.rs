//! The tests' one Envoy runner: a real Envoy on loopback, its config validated first, the ports
//! it bound read back (every listener asks for port 0, so parallel tests never clash), killed
//! on drop. (`deployer up`'s supervisor is the production runner.)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use meshtally_deployer::envoy::Admin;
use serde_json::Value;

/// Envoy as `deployer up` finds it (`ENVOY_BIN`, then `PATH`, then the workspace's `.venv`).
pub fn envoy_bin() -> Result<PathBuf> {
    let mut places = meshtally_deployer::locate::Places::here();
    places.cwd = crate::workspace_root();
    places.envoy(None)
}

/// Runs `envoy --mode validate` on a config file.
pub fn validate(config: &Path) -> Result<()> {
    meshtally_deployer::envoy::validate(&envoy_bin()?, config)
}

/// A running Envoy, killed on drop.
pub struct Envoy {
    child: Child,
    pub admin: u16,
    pub log: PathBuf,
    dir: PathBuf,
}

impl Envoy {
    /// Writes `config` into `dir` as `<name>.json`, validates it, starts Envoy and waits until
    /// every listener is bound.
    pub fn start(dir: &Path, name: &str, config: &Value) -> Result<Envoy> {
        let config_path = dir.join(format!("{name}.json"));
        std::fs::write(&config_path, serde_json::to_vec_pretty(config)?)?;
        validate(&config_path)?;
        let child = Self::spawn(dir, name, &config_path)?;
        let mut envoy = Envoy {
            child,
            admin: 0,
            log: dir.join(format!("{name}.log")),
            dir: dir.to_owned(),
        };
        envoy.admin = envoy.wait_admin(name)?;
        envoy.wait_ready()?;
        Ok(envoy)
    }

    /// Starts Envoy expecting it to refuse its config; returns its log.
    pub fn start_expect_failure(dir: &Path, name: &str, config: &Value) -> Result<String> {
        let config_path = dir.join(format!("{name}.json"));
        std::fs::write(&config_path, serde_json::to_vec_pretty(config)?)?;
        let mut child = Self::spawn(dir, name, &config_path)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(dir.join(format!("{name}.log")))?;
                if status.success() {
                    bail!("envoy exited 0 for a config it should refuse:\n{log}");
                }
                return Ok(log);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("envoy kept running with a config it should refuse");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn spawn(dir: &Path, name: &str, config: &Path) -> Result<Child> {
        // A stale admin-address file from an earlier Envoy of the same name would be read as ours.
        let _ = std::fs::remove_file(dir.join(format!("{name}.admin")));
        let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
        Command::new(envoy_bin()?)
            .arg("-c")
            .arg(config)
            .args(["--concurrency", "1", "-l", "info", "--use-dynamic-base-id"])
            .arg("--admin-address-path")
            .arg(dir.join(format!("{name}.admin")))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting envoy")
    }

    fn wait_admin(&mut self, name: &str) -> Result<u16> {
        let path = self.dir.join(format!("{name}.admin"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("envoy {name} exited with {status}:\n{}", self.log_tail());
            }
            if let Ok(text) = std::fs::read_to_string(&path) {
                if let Some(port) = text.trim().rsplit(':').next().and_then(|p| p.parse().ok()) {
                    return Ok(port);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "envoy {name} did not write its admin address:\n{}",
            self.log_tail()
        )
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if Admin(self.admin).ready() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("envoy never became ready:\n{}", self.log_tail())
    }

    /// The port Envoy bound for a named listener.
    pub fn listener_port(&self, listener: &str) -> Result<u16> {
        Admin(self.admin).listener_port(listener)
    }

    /// The value of one counter from `/stats`, 0 when it does not exist yet.
    pub fn counter(&self, name: &str) -> Result<u64> {
        Admin(self.admin).counter(name)
    }

    /// The whole Prometheus exposition.
    pub fn prometheus(&self) -> Result<String> {
        Admin(self.admin).prometheus()
    }

    /// The last 40 lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        crate::tail(&self.log, 40)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
