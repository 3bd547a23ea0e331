//! The state dir (`.meshtally` by default): the plan, generated configs and certificates, logs
//! and pids of a local mesh. A new generation is written beside it and renamed into place, so
//! the dir is never left half-written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::layout::{FilterState, Layout, MODULES};
use super::module;

/// The state dir `up` and the others use without `--state-dir`.
pub const DEFAULT: &str = ".meshtally";

#[derive(Debug, Clone)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    /// Relative roots are made absolute: Envoy configs name certificates by path.
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        let root = root.into();
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir()
                .map(|d| d.join(&root))
                .unwrap_or(root)
        };
        StateDir { root }
    }

    pub fn layout_path(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub fn envoy_config(&self, proxy: &str) -> PathBuf {
        self.root.join("envoy").join(format!("{proxy}.json"))
    }
    pub fn log(&self, name: &str) -> PathBuf {
        self.root.join("logs").join(format!("{name}.log"))
    }
    /// A proxy's JSON access log (`tap`, `edges`).
    pub fn access_log(&self, proxy: &str) -> PathBuf {
        access_log_in(&self.root, proxy)
    }
    pub fn supervisor_pid_path(&self) -> PathBuf {
        self.root.join("supervisor.pid")
    }
    pub fn pids_path(&self) -> PathBuf {
        self.root.join("pids.json")
    }
    /// How often the supervisor restarted each process (`deployer status`).
    pub fn restarts_path(&self) -> PathBuf {
        self.root.join("restarts.json")
    }
    pub fn ready_path(&self) -> PathBuf {
        self.root.join("ready")
    }
    /// Held while a new generation of xDS files is written (the supervisor's module watch and
    /// `shift`/`reload` may publish at once).
    pub fn xds_lock_path(&self) -> PathBuf {
        self.root.join("xds").join(".lock")
    }
    /// The version of the xDS files last published.
    pub fn xds_version_path(&self) -> PathBuf {
        self.root.join("xds").join("version")
    }

    /// The pid of a live supervisor of this dir, if any.
    pub fn running_supervisor(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.supervisor_pid_path())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        alive(pid).then_some(pid)
    }

    /// The supervisor, or any process it started, is still alive.
    pub fn is_running(&self) -> bool {
        self.running_supervisor().is_some()
            || self.read_pids().values().any(|pid| alive(*pid as i32))
    }

    /// What a printed `deployer …` hint must add to reach this state dir: nothing for the
    /// default `.meshtally` of the current folder, else ` --state-dir <absolute path>`, quoted
    /// for the shell, so the hint works when pasted from any folder.
    pub fn flag(&self) -> String {
        let default = std::env::current_dir().map(|d| d.join(DEFAULT));
        if default.is_ok_and(|d| d == self.root) {
            return String::new();
        }
        format!(
            " --state-dir {}",
            crate::shell::quote(&self.root.to_string_lossy())
        )
    }

    pub fn read_layout(&self) -> Result<Layout> {
        let path = self.layout_path();
        let text = std::fs::read(&path).with_context(|| {
            format!(
                "no local mesh in {}: start one with `deployer up{}`",
                self.root.display(),
                self.flag()
            )
        })?;
        serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a meshtally state file", path.display()))
    }

    /// Writes a fresh generation (plan, the module, certificates, Envoy configs, empty logs)
    /// and swaps it in; returns the plan as saved (with the module the sidecars run).
    pub fn prepare(&self, layout: &Layout) -> Result<Layout> {
        if let Some(pid) = self.running_supervisor() {
            bail!(
                "a mesh is already running in {} (supervisor pid {pid}): stop it with `deployer down{}` first",
                self.root.display(),
                self.flag()
            );
        }
        let parent = match self.root.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)?;
        let tmp = tempfile::Builder::new()
            .prefix(".meshtally-new-")
            .tempdir_in(&parent)
            .with_context(|| format!("creating a temporary dir in {}", parent.display()))?;
        let fresh = StateDir::new(tmp.path());
        std::fs::create_dir_all(tmp.path().join("logs"))?;
        let mut layout = layout.clone();
        if layout.filter == FilterState::Loaded {
            let installed = module::install(&layout.wasm, &tmp.path().join(MODULES))?;
            layout.module = Some(installed.sha256);
        }
        layout.write_configs(tmp.path(), &self.root)?;
        write_atomic(&fresh.layout_path(), &serde_json::to_vec_pretty(&layout)?)?;
        if self.root.exists() {
            std::fs::remove_dir_all(&self.root)
                .with_context(|| format!("removing old {}", self.root.display()))?;
        }
        let kept = tmp.keep();
        std::fs::rename(&kept, &self.root)
            .with_context(|| format!("moving the new state into {}", self.root.display()))?;
        Ok(layout)
    }

    pub fn write_pids(&self, pids: &BTreeMap<String, u32>) -> Result<()> {
        write_atomic(&self.pids_path(), &serde_json::to_vec_pretty(pids)?)
    }

    pub fn read_pids(&self) -> BTreeMap<String, u32> {
        read_map(&self.pids_path())
    }

    pub fn write_restarts(&self, restarts: &BTreeMap<String, u32>) -> Result<()> {
        write_atomic(&self.restarts_path(), &serde_json::to_vec_pretty(restarts)?)
    }

    pub fn read_restarts(&self) -> BTreeMap<String, u32> {
        read_map(&self.restarts_path())
    }

    /// Removes the run markers (pids, ready) and the workload private keys, but keeps the
    /// plan, configs, certificates and logs for inspection.
    pub fn clear_run(&self) {
        for path in [
            self.pids_path(),
            self.restarts_path(),
            self.ready_path(),
            self.supervisor_pid_path(),
        ] {
            let _ = std::fs::remove_file(path);
        }
        super::certs::remove_keys(&self.root.join("certs"));
    }
}

/// A JSON map file, empty when missing or unreadable.
fn read_map(path: &Path) -> BTreeMap<String, u32> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// `logs/<proxy>.access.log` under a state dir's root.
pub fn access_log_in(root: &Path, proxy: &str) -> PathBuf {
    root.join("logs").join(format!("{proxy}.access.log"))
}

/// A process exists and is not a zombie (an exited child whose parent has not reaped it yet).
pub fn alive(pid: i32) -> bool {
    if pid <= 0 || !super::signal::exists(pid) {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state letter follows the parenthesised command name.
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    !matches!(state, Some('Z') | Some('X'))
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The last `n` lines of a log file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
