//! The state dir (`.meshtally` by default): the plan, generated configs and certificates, logs
//! and pids of a local mesh. A new generation is written beside it and renamed into place, so
//! the dir is never left half-written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub use meshtally_envoy::logs::tail;

use super::layout::{FilterState, Layout, MODULES};
use meshtally_envoy::module;

/// The state dir `up` and the others use without `--state-dir`.
pub const DEFAULT: &str = ".meshtally";

/// The variable every process of a local mesh (and a detached supervisor) starts with, naming
/// its state dir. It is how `down`, `status` and `up` tell the mesh's own processes from any
/// other whatever the pid files say: a pid the kernel has since given to a stranger never
/// carries it, and a damaged or deleted pid file hides no process of the mesh.
pub const MARKER: &str = "MESHTALLY_STATE_DIR";

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

    /// The nearest `.meshtally` holding a mesh's plan, in the current folder or above it (as
    /// git finds `.git`), else `.meshtally` in the current folder.
    pub fn find_from_cwd() -> StateDir {
        let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        here.ancestors()
            .map(|dir| dir.join(DEFAULT))
            .find(|dir| dir.join("state.json").is_file())
            .map(StateDir::new)
            .unwrap_or_else(|| StateDir::new(here.join(DEFAULT)))
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

    /// The pid of a live supervisor of this dir, if any: the one `supervisor.pid` names when
    /// that process is still the one that wrote it (same start time), else the parent of the
    /// mesh's processes (a foreground `up` whose pid file was damaged).
    pub fn running_supervisor(&self) -> Option<i32> {
        let recorded = std::fs::read_to_string(self.supervisor_pid_path()).unwrap_or_default();
        let mut fields = recorded.split_whitespace().map(str::parse::<u64>);
        match (fields.next(), fields.next()) {
            (Some(Ok(pid)), Some(Ok(start))) => {
                let pid = i32::try_from(pid).unwrap_or(0);
                if alive(pid) && start_time(pid) == Some(start) {
                    return Some(pid);
                }
            }
            // A pid alone: written by a deployer before start times were kept, whose mesh may
            // still run; taken only when it is a deployer.
            (Some(Ok(pid)), None) => {
                let pid = i32::try_from(pid).unwrap_or(0);
                if is_supervisor(pid) {
                    return Some(pid);
                }
            }
            _ => {}
        }
        let own = self.own_processes();
        // A detached supervisor carries the marker itself; a foreground one is the parent of
        // the processes it started.
        own.iter()
            .copied()
            .find(|pid| is_supervisor(*pid))
            .or_else(|| {
                own.iter()
                    .filter_map(|pid| parent(*pid))
                    .find(|ppid| is_supervisor(*ppid))
            })
    }

    /// Records this process as the dir's supervisor: its pid and start time.
    pub fn record_supervisor(&self) -> Result<()> {
        let pid = std::process::id();
        let start = start_time(pid as i32).unwrap_or(0);
        write_atomic(
            &self.supervisor_pid_path(),
            format!("{pid} {start}\n").as_bytes(),
        )
    }

    /// Whether `pid` is a live process of this mesh: started with its marker.
    pub fn owns(&self, pid: i32) -> bool {
        alive(pid) && marker_of(pid).is_some_and(|root| root == self.root.as_os_str())
    }

    /// Every live process started with this mesh's marker, found in /proc whatever the pid
    /// files say.
    pub fn own_processes(&self) -> Vec<i32> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut pids: Vec<i32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|pid| *pid as u32 != std::process::id() && self.owns(*pid))
            .collect();
        pids.sort_unstable();
        pids
    }

    /// The supervisor, or any process of the mesh, is still alive.
    pub fn is_running(&self) -> bool {
        self.running_supervisor().is_some() || !self.own_processes().is_empty()
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
            meshtally_envoy::shell::quote(&self.root.to_string_lossy())
        )
    }

    /// `up` never starts over a live mesh, whatever its pid files say.
    pub fn refuse_if_running(&self) -> Result<()> {
        let own = self.own_processes();
        match self.running_supervisor() {
            Some(pid) => bail!(
                "a mesh is already running in {} (supervisor pid {pid}): stop it with `{}` first",
                self.root.display(),
                self.cmd("down")
            ),
            None if !own.is_empty() => bail!(
                "{} processes of a mesh still run in {} (pids {}): stop them with `{}` first",
                own.len(),
                self.root.display(),
                own.iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                self.cmd("down")
            ),
            None => Ok(()),
        }
    }

    /// A deployer command on this mesh, to print as a hint that runs when pasted anywhere: this
    /// executable (by name when it is the one on PATH), `args`, then `--state-dir` unless the
    /// mesh is the current folder's.
    pub fn cmd(&self, args: &str) -> String {
        format!(
            "{} {args}{}",
            meshtally_envoy::locate::Places::here().deployer_command(),
            self.flag()
        )
    }

    pub fn read_layout(&self) -> Result<Layout> {
        let path = self.layout_path();
        let text = std::fs::read(&path).with_context(|| {
            let elsewhere: Vec<String> = running_meshes()
                .into_iter()
                .filter(|dir| *dir != self.root)
                .map(|dir| {
                    let dir = meshtally_envoy::shell::quote(&dir.to_string_lossy());
                    format!("a mesh is running in {dir}: cd there or pass --state-dir {dir}")
                })
                .collect();
            if elsewhere.is_empty() {
                format!(
                    "no local mesh in {}: start one with `{}`",
                    self.root.display(),
                    self.cmd("up")
                )
            } else {
                format!(
                    "no local mesh in {} ({})",
                    self.root.display(),
                    elsewhere.join("; ")
                )
            }
        })?;
        serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a meshtally state file", path.display()))
    }

    /// Writes a fresh generation (plan, the module, certificates, Envoy configs, empty logs)
    /// and swaps it in; returns the plan as saved (with the module the sidecars run).
    pub fn prepare(&self, layout: &Layout) -> Result<Layout> {
        self.refuse_if_running()?;
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
            layout.module_sha256 = Some(installed.sha256);
        }
        layout.write_configs(tmp.path(), &self.root)?;
        // Before the old state is replaced: a mesh this user cannot start leaves nothing behind.
        super::inotify::check(&tmp.path().join("xds"))?;
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
        meshtally_envoy::pki::remove_keys(&self.root.join("certs"));
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

/// The state dirs of every local mesh running on this machine (of this user), from the marker
/// its processes carry.
pub fn running_meshes() -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut roots: Vec<PathBuf> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| alive(*pid))
        .filter_map(marker_of)
        .map(PathBuf::from)
        .collect();
    roots.sort();
    roots.dedup();
    roots
}

/// The state dir of the running local mesh one of whose public ports (a service's, the
/// gateway's, Prometheus's, Zipkin's) is `port`.
pub fn mesh_holding(port: u16) -> Option<PathBuf> {
    running_meshes().into_iter().find(|root| {
        StateDir::new(root).read_layout().is_ok_and(|layout| {
            layout.services.iter().any(|s| s.port == port)
                || layout.gateway.port == port
                || layout.prometheus.as_ref().is_some_and(|p| p.port == port)
                || layout.tracing.as_ref().is_some_and(|t| t.port == port)
        })
    })
}

/// When a process started, in clock ticks after boot (`/proc/PID/stat`'s 22nd field): with the
/// pid, it names one process for good.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start with the 3rd, the state.
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// The state dir a process was started for (its [`MARKER`] variable), if any.
fn marker_of(pid: i32) -> Option<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt as _;
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{MARKER}=");
    environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(prefix.as_bytes()))
        .map(|root| std::ffi::OsStr::from_bytes(root).to_owned())
}

fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// A live `deployer` process (a supervisor is `deployer up` or `deployer supervise`).
fn is_supervisor(pid: i32) -> bool {
    alive(pid)
        && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
            exe.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("deployer"))
        })
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

/// The line of a log that says why a process stopped, for a one-line error: Envoy's last
/// `[error]` line (the listener and the cause, where its `[critical]` line wraps), else its last
/// `[critical]` line, else a last `error:` line (a Rust program's), else the last line; without
/// Envoy's bracketed prefixes.
pub fn last_error(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let last_with = |needle: &str| lines.iter().rev().find(|l| l.contains(needle)).copied();
    let line = last_with("][error][")
        .or_else(|| last_with("][critical]["))
        .or_else(|| lines.iter().rev().find(|l| l.starts_with("error")).copied())
        .or(lines.last().copied())
        .unwrap_or("its log is empty");
    // `[2026-…][12][critical][main] [source/server/server.cc:…] message`: the message.
    let mut message = line;
    while let Some(rest) = message.strip_prefix('[') {
        match rest.split_once(']') {
            Some((_, after)) => message = after.trim_start(),
            None => break,
        }
    }
    message
        .strip_prefix("error: ")
        .unwrap_or(message)
        .to_owned()
}
