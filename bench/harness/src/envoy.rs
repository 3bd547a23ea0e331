//! Runs Envoy on loopback for the benchmark: finds the binary, writes and validates each config
//! (`envoy --mode validate`) before starting it, waits for readiness and reads the ports it
//! bound. Every listener asks for port 0, so nothing clashes with other work on the machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::admin;
use crate::guard::Guarded;

/// Envoy as `deployer up` finds it: `--envoy`, then `ENVOY_BIN`, then `PATH`, then the
/// workspace's `.venv` (the bench runs from the workspace root).
pub fn find_envoy(explicit: Option<&Path>, root: &Path) -> Result<PathBuf> {
    let mut places = meshtally_deployer::locate::Places::here();
    places.cwd = root.to_path_buf();
    places.envoy(explicit)
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

/// Runs `envoy --mode validate` on a config file.
pub fn validate(bin: &Path, config: &Path) -> Result<()> {
    let out = Command::new(bin)
        .args(["--mode", "validate", "-l", "error", "-c"])
        .arg(config)
        .output()
        .context("running envoy --mode validate")?;
    if !out.status.success() {
        bail!(
            "envoy --mode validate rejected {}:\n{}{}",
            config.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// How to start an Envoy: what runs it (nothing, `taskset` to pin it to a core, or valgrind)
/// and how long it may take to become ready.
#[derive(Debug, Clone)]
pub struct Launch {
    /// A command that execs Envoy in the same process (so its pid is Envoy's).
    pub prefix: Vec<String>,
    pub ready_within: Duration,
}

impl Default for Launch {
    fn default() -> Launch {
        Launch {
            prefix: Vec::new(),
            ready_within: Duration::from_secs(30),
        }
    }
}

impl Launch {
    /// Pinned to one CPU with `taskset`, when there is more than one and taskset is at hand.
    pub fn pinned(cpu: Option<usize>) -> Launch {
        Launch {
            prefix: crate::procfs::pin_prefix(cpu),
            ..Launch::default()
        }
    }
}

/// A running Envoy with one worker thread, killed on drop.
pub struct Envoy {
    process: Guarded,
    pub name: String,
    pub admin: u16,
    log: PathBuf,
}

impl Envoy {
    /// Writes `config` to `<dir>/<name>.json`, validates it, starts Envoy and waits until it is
    /// ready.
    pub fn start(bin: &Path, dir: &Path, name: &str, config: &Value) -> Result<Envoy> {
        Envoy::start_with(bin, dir, name, config, &Launch::default())
    }

    /// [`Envoy::start`] through `launch`'s prefix; the working directory is `dir` (callgrind
    /// takes its commands from there).
    pub fn start_with(
        bin: &Path,
        dir: &Path,
        name: &str,
        config: &Value,
        launch: &Launch,
    ) -> Result<Envoy> {
        let config_path = dir.join(format!("{name}.json"));
        std::fs::write(&config_path, serde_json::to_vec_pretty(config)?)?;
        validate(bin, &config_path)?;
        let admin_path = dir.join(format!("{name}.admin"));
        let log = dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log)?;
        let mut command = match launch.prefix.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(bin);
                command
            }
            None => Command::new(bin),
        };
        command
            .current_dir(dir)
            .arg("-c")
            .arg(&config_path)
            // One worker, as the issue asks; warning level so logging costs nothing per request.
            .args([
                "--concurrency",
                "1",
                "-l",
                "warning",
                "--use-dynamic-base-id",
            ])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let process = Guarded::spawn(command, &format!("envoy {name}"))?;
        let mut envoy = Envoy {
            process,
            name: name.to_owned(),
            admin: 0,
            log,
        };
        envoy.admin = envoy.wait_admin(&admin_path, launch.ready_within)?;
        envoy.wait_ready(launch.ready_within)?;
        if !launch.prefix.iter().any(|p| p.contains("valgrind")) {
            envoy.check_is_envoy()?;
        }
        Ok(envoy)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// CPU and memory are read from `/proc/<pid>`, so the child must be Envoy itself, not a
    /// wrapper that starts it as a grandchild (PyPI's `envoy` shim execs, so it passes).
    fn check_is_envoy(&self) -> Result<()> {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", self.pid()))?;
        if !comm.trim().starts_with("envoy") {
            bail!(
                "process {} is {:?}, not envoy: pass the real binary with --envoy or ENVOY_BIN",
                self.pid(),
                comm.trim()
            );
        }
        Ok(())
    }

    fn wait_admin(&mut self, path: &Path, within: Duration) -> Result<u16> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.process.exited()? {
                bail!(
                    "envoy {} exited with {status}:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if let Ok(text) = std::fs::read_to_string(path) {
                if let Some(port) = text.trim().rsplit(':').next().and_then(|p| p.parse().ok()) {
                    return Ok(port);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "envoy {} wrote no admin address:\n{}",
            self.name,
            self.log_tail()
        )
    }

    fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok((200, _)) = admin::get(self.admin, "/ready") {
                return Ok(());
            }
            if let Some(status) = self.process.exited()? {
                bail!(
                    "envoy {} exited with {status}:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "envoy {} never became ready:\n{}",
            self.name,
            self.log_tail()
        )
    }

    /// The port Envoy bound for a named listener.
    pub fn listener_port(&self, listener: &str) -> Result<u16> {
        meshtally_deployer::envoy::Admin(self.admin).listener_port(listener)
    }

    pub fn stats(&self) -> Result<Vec<(String, u64)>> {
        admin::stats(self.admin)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .get(lines.len().saturating_sub(30)..)
            .unwrap_or_default()
            .join("\n")
    }
}
