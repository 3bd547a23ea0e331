//! The one Envoy runner of the tests and the bench: a real Envoy on loopback, its config
//! validated first, started through an optional command prefix (`taskset`, valgrind), the ports
//! it bound read back (every listener asks for port 0, so parallel runs never clash), killed on
//! drop. (`deployer up`'s supervisor is the production runner.)

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use meshtally_envoy::admin::Admin;
use serde_json::Value;

use crate::process::Guarded;

/// Envoy as `deployer up` finds it (`ENVOY_BIN`, then `PATH`, then the workspace's `.venv`).
pub fn envoy_bin() -> Result<PathBuf> {
    find(None)
}

/// Envoy as `deployer up` finds it, `explicit` (a `--envoy` flag) first.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf> {
    let mut places = meshtally_envoy::locate::Places::here();
    places.cwd = crate::workspace_root();
    places.envoy(explicit)
}

/// Runs `envoy --mode validate` on a config file.
pub fn validate(config: &Path) -> Result<()> {
    meshtally_envoy::validate::validate(&envoy_bin()?, config)
}

/// How to start an Envoy. The default is the tests' Envoy: the one [`envoy_bin`] finds, run
/// directly, `info` logs, 20 s to become ready.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The binary; `None` is [`envoy_bin`].
    pub bin: Option<PathBuf>,
    /// A command that execs Envoy in the same process (so the child's pid is Envoy's):
    /// `taskset -c 1`, `valgrind --tool=callgrind …`. The working directory is the run's folder
    /// (callgrind takes its commands from there).
    pub prefix: Vec<String>,
    pub ready_within: Duration,
    /// Envoy's `-l`: the bench logs at `warning` so logging costs nothing per request.
    pub log_level: &'static str,
}

impl Default for Launch {
    fn default() -> Launch {
        Launch {
            bin: None,
            prefix: Vec::new(),
            ready_within: Duration::from_secs(20),
            log_level: "info",
        }
    }
}

/// A running Envoy with one worker thread, killed on drop.
pub struct Envoy {
    process: Guarded,
    pub name: String,
    pub admin: u16,
    pub log: PathBuf,
}

impl Envoy {
    /// Writes `config` into `dir` as `<name>.json`, validates it, starts Envoy and waits until
    /// every listener is bound.
    pub fn start(dir: &Path, name: &str, config: &Value) -> Result<Envoy> {
        Envoy::start_with(dir, name, config, &Launch::default())
    }

    /// [`Envoy::start`] as `launch` says.
    pub fn start_with(dir: &Path, name: &str, config: &Value, launch: &Launch) -> Result<Envoy> {
        let bin = match &launch.bin {
            Some(bin) => bin.clone(),
            None => envoy_bin()?,
        };
        let config_path = write_config(dir, name, config)?;
        meshtally_envoy::validate::validate(&bin, &config_path)?;
        let process = Guarded::spawn(command(&bin, dir, name, launch)?, &format!("envoy {name}"))?;
        let mut envoy = Envoy {
            process,
            name: name.to_owned(),
            admin: 0,
            log: dir.join(format!("{name}.log")),
        };
        envoy.admin = envoy.wait_admin(&dir.join(format!("{name}.admin")), launch.ready_within)?;
        envoy.wait_ready(launch.ready_within)?;
        Ok(envoy)
    }

    /// Starts Envoy expecting it to refuse its config; returns its log.
    pub fn start_expect_failure(dir: &Path, name: &str, config: &Value) -> Result<String> {
        write_config(dir, name, config)?;
        let launch = Launch::default();
        let mut process = Guarded::spawn(
            command(&envoy_bin()?, dir, name, &launch)?,
            &format!("envoy {name}"),
        )?;
        let status = process
            .wait_bounded(launch.ready_within)
            .map_err(|e| e.context("envoy kept running with a config it should refuse"))?;
        let log = std::fs::read_to_string(dir.join(format!("{name}.log")))?;
        if status.success() {
            bail!("envoy exited 0 for a config it should refuse:\n{log}");
        }
        Ok(log)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn wait_admin(&mut self, path: &Path, within: Duration) -> Result<u16> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            self.fail_if_exited()?;
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
            if Admin(self.admin).ready() {
                return Ok(());
            }
            self.fail_if_exited()?;
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "envoy {} never became ready:\n{}",
            self.name,
            self.log_tail()
        )
    }

    fn fail_if_exited(&mut self) -> Result<()> {
        if let Some(status) = self.process.exited()? {
            bail!(
                "envoy {} exited with {status}:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Its admin endpoint.
    pub fn admin(&self) -> Admin {
        Admin(self.admin)
    }

    /// The port Envoy bound for a named listener.
    pub fn listener_port(&self, listener: &str) -> Result<u16> {
        self.admin().listener_port(listener)
    }

    /// The value of one counter from `/stats`, 0 when it does not exist yet.
    pub fn counter(&self, name: &str) -> Result<u64> {
        self.admin().counter(name)
    }

    /// Every counter and gauge of `/stats`, by full (untagged) name.
    pub fn stats(&self) -> Result<Vec<(String, u64)>> {
        self.admin().counters("")
    }

    /// The whole Prometheus exposition.
    pub fn prometheus(&self) -> Result<String> {
        self.admin().prometheus()
    }

    /// The last 40 lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        crate::tail(&self.log, 40)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn write_config(dir: &Path, name: &str, config: &Value) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(config)?)?;
    Ok(path)
}

/// `[prefix…] envoy -c <dir>/<name>.json`, one worker, logging into `<dir>/<name>.log`, the
/// admin address written to `<dir>/<name>.admin`.
fn command(bin: &Path, dir: &Path, name: &str, launch: &Launch) -> Result<Command> {
    // Envoy runs in `dir`, so every path it is given must not depend on where we are.
    let dir = &std::path::absolute(dir)?;
    // A stale admin-address file from an earlier Envoy of the same name would be read as ours.
    let admin_path = dir.join(format!("{name}.admin"));
    let _ = std::fs::remove_file(&admin_path);
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
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
        .arg(dir.join(format!("{name}.json")))
        .args(["--concurrency", "1", "-l", launch.log_level])
        .arg("--use-dynamic-base-id")
        .arg("--admin-address-path")
        .arg(admin_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(command)
}
