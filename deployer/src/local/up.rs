//! `deployer up` and `deployer down`: the checked plan (tools found, ports free, no mesh already
//! running) first, then the state dir, then the supervisor — in this process, or detached.

use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::envoy;
use super::layout::{FailStrategy, FilterPlan, FilterState, Layout, MtlsMode, Tools, GATEWAY};
use super::state::{alive, tail, StateDir};
use super::supervisor::{processes, Supervisor};
use crate::model::Mesh;

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything `up` was asked for, before any check.
#[derive(Debug, Clone)]
pub struct UpRequest {
    pub gateway_port: u16,
    pub mtls: MtlsMode,
    pub detach: bool,
    pub state_dir: PathBuf,
    pub envoy: Option<PathBuf>,
    pub wasm: Option<PathBuf>,
    pub service_bin: Option<PathBuf>,
    /// `None`: a module or config that cannot load is an error before anything starts.
    pub fail_strategy: Option<FailStrategy>,
    pub plugin_config: Option<String>,
}

/// A checked `up`: tools found, ports free, state dir free.
pub struct UpPlan {
    layout: Layout,
    state: StateDir,
    detach: bool,
}

pub fn plan(mesh: &Mesh, req: UpRequest) -> Result<UpPlan> {
    let state = StateDir::new(&req.state_dir);
    if let Some(pid) = state.running_supervisor() {
        bail!(
            "a mesh is already running in {} (supervisor pid {pid}): stop it with `deployer down` first",
            state.root.display()
        );
    }
    let envoy = envoy::find(req.envoy.as_deref())?;
    let service_bin = demo_service(req.service_bin)?;
    let plugin_config = match &req.plugin_config {
        Some(text) => serde_json::from_str(text).context("--plugin-config is not valid JSON")?,
        None => serde_json::json!({}),
    };
    // Module and config problems are found here, with the filter's own config rules, so a
    // fail-open or fail-close mesh behaves as Istio would instead of Envoy refusing to start.
    let module = filter_module(req.wasm);
    let config_problem = mesh.services.iter().find_map(|s| {
        let node = meshtally_core::NodeMetadata {
            workload_name: Some(s.name.clone().into_bytes()),
            app_label: None,
        };
        meshtally_core::Config::parse(plugin_config.to_string().as_bytes(), &node).err()
    });
    let problem = match (&module, config_problem) {
        (Err(e), _) => Some(format!("{e:#}")),
        (Ok(_), Some(e)) => Some(format!("--plugin-config rejected by the filter: {e}")),
        (Ok(_), None) => None,
    };
    let filter_state = match (problem, req.fail_strategy) {
        (None, _) => FilterState::Loaded,
        (Some(p), None) => bail!("{p}"),
        (Some(p), Some(FailStrategy::FailOpen)) => {
            eprintln!("warning: {p}; fail-open: the sidecars run without the filter (traffic flows, untagged and uncounted)");
            FilterState::Skipped(p)
        }
        (Some(p), Some(FailStrategy::FailClose)) => {
            eprintln!("warning: {p}; fail-close: the sidecars deny all traffic");
            FilterState::DenyAll(p)
        }
    };
    let filter = FilterPlan {
        state: filter_state,
        plugin_config,
        fail_open: req.fail_strategy != Some(FailStrategy::FailClose),
    };
    let wasm = module.unwrap_or_default();
    let layout = Layout::plan(
        mesh,
        req.gateway_port,
        req.mtls,
        Tools {
            envoy,
            wasm,
            service_bin,
        },
        filter,
    )?;
    Ok(UpPlan {
        layout,
        state,
        detach: req.detach,
    })
}

impl UpPlan {
    pub fn run(self) -> Result<()> {
        let begin = Instant::now();
        self.state.prepare(&self.layout)?;
        if self.detach {
            return self.run_detached(begin);
        }
        let specs = processes(&self.layout, &self.state);
        let mut sup = Supervisor::new(self.state.clone(), specs)?;
        eprintln!("starting {} processes…", self.layout.services.len() * 2 + 1);
        sup.start(READY_TIMEOUT, progress)?;
        print_table(&self.layout, begin.elapsed());
        println!("Ctrl-C stops the mesh.");
        let _ = std::io::stdout().flush();
        sup.run(|line| eprintln!("{line}"));
        eprintln!("mesh stopped");
        Ok(())
    }

    fn run_detached(self, begin: Instant) -> Result<()> {
        let exe = std::env::current_exe().context("finding the deployer executable")?;
        let log_path = self.state.log("supervisor");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(exe)
            .arg("supervise")
            .arg("--state-dir")
            .arg(&self.state.root)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting the detached supervisor")?;
        eprintln!(
            "starting {} processes (detached)…",
            self.layout.services.len() * 2 + 1
        );
        let deadline = Instant::now() + READY_TIMEOUT + Duration::from_secs(5);
        while !self.state.ready_path().exists() {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the mesh did not start ({status}):\n{}",
                    tail(&log_path, 12)
                );
            }
            if Instant::now() > deadline {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
                bail!("the mesh was not ready in time:\n{}", tail(&log_path, 12));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        print_table(&self.layout, begin.elapsed());
        println!("Running in the background; `deployer down` stops it.");
        Ok(())
    }
}

/// The hidden `supervise` subcommand: a detached `up`'s supervisor.
pub fn supervise(state_dir: &Path) -> Result<()> {
    let state = StateDir::new(state_dir);
    let layout = state.read_layout()?;
    let mut sup = Supervisor::new(state.clone(), processes(&layout, &state))?;
    sup.start(READY_TIMEOUT, progress)?;
    sup.run(|line| eprintln!("{line}"));
    Ok(())
}

/// `deployer down`: stops the supervisor (which stops its children) and makes sure nothing of
/// the mesh is left running.
pub fn down(state_dir: &Path) -> Result<()> {
    let state = StateDir::new(state_dir);
    let supervisor = state.running_supervisor();
    let pids = state.read_pids();
    if supervisor.is_none() && pids.values().all(|p| !alive(*p as i32)) {
        println!("no mesh running in {}", state.root.display());
        state.clear_run();
        return Ok(());
    }
    let begin = Instant::now();
    if let Some(pid) = supervisor {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(9);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(25));
        }
        if alive(pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    // Whatever the supervisor could not stop (or a supervisor killed with -9 left behind).
    let mut killed = 0;
    for pid in pids.values() {
        let pid = *pid as i32;
        if alive(pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            killed += 1;
        }
    }
    state.clear_run();
    println!(
        "mesh stopped in {:.1} s ({} processes{})",
        begin.elapsed().as_secs_f64(),
        pids.len(),
        if killed > 0 {
            format!(", {killed} killed")
        } else {
            String::new()
        }
    );
    Ok(())
}

fn progress(name: &str, done: usize, total: usize, elapsed: Duration) {
    eprintln!(
        "  [{done:>2}/{total}] {name:<24} ready  {:>6.2} s",
        elapsed.as_secs_f64()
    );
}

fn print_table(layout: &Layout, elapsed: Duration) {
    let width = layout
        .services
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0)
        .max(GATEWAY.len());
    let filter = match &layout.filter {
        FilterState::Loaded => "filter loaded".to_owned(),
        FilterState::Skipped(why) => format!("FILTER SKIPPED (fail-open): {why}"),
        FilterState::DenyAll(why) => format!("ALL TRAFFIC DENIED (fail-close): {why}"),
    };
    println!(
        "\nmesh ready in {:.2} s (mTLS {:?}, {filter})\n",
        elapsed.as_secs_f64(),
        layout.mtls
    );
    println!(
        "{:<width$}  {:<24}  {:<10}  ADMIN",
        "SERVICE", "URL", "APP PORT"
    );
    for s in &layout.services {
        println!(
            "{:<width$}  {:<24}  {:<10}  http://127.0.0.1:{}",
            s.name,
            format!("http://127.0.0.1:{}", s.port),
            s.app_port,
            s.admin_port
        );
    }
    let g = &layout.gateway;
    println!(
        "{:<width$}  {:<24}  {:<10}  http://127.0.0.1:{}",
        GATEWAY,
        format!("http://127.0.0.1:{}", g.port),
        "-",
        g.admin_port
    );
    let (first, last) = (
        &layout.services[0].name,
        &layout.services[layout.services.len() - 1].name,
    );
    println!("\ntry:\n  curl -sv localhost:{}/{last}/call/{first}\n  deployer verify\n  deployer stats\n", g.port);
}

/// The filter module: `--wasm`, or the workspace build (built now if missing).
fn filter_module(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(path) = flag {
        return absolute(&path)
            .with_context(|| format!("filter module {} not found (--wasm)", path.display()));
    }
    let default = PathBuf::from(crate::model::DEFAULT_WASM_FILE);
    if default.is_file() {
        return absolute(&default);
    }
    // Inside the workspace (from any of its folders): the workspace's build, built now if missing.
    let Some(target) = cargo_target_dir() else {
        bail!(
            "filter module {} not found: build it with `make wasm`, or pass --wasm PATH",
            default.display()
        );
    };
    let built = target.join("wasm32-wasip1/release/meshtally_filter.wasm");
    if !built.is_file() {
        eprintln!("filter module not built yet: building it (cargo build --release --target wasm32-wasip1 -p meshtally-filter)…");
        let status = Command::new("cargo")
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip1",
                "-p",
                "meshtally-filter",
            ])
            .status()
            .context("running cargo to build the filter")?;
        if !status.success() || !built.is_file() {
            bail!(
                "filter module {} is not built and building it failed: run `make wasm`",
                built.display()
            );
        }
    }
    absolute(&built)
}

/// Where the built filter is expected when no path is given: the default relative path if it
/// exists, else the build of the cargo workspace around the current dir (which may not exist).
pub fn default_module_path() -> PathBuf {
    let default = PathBuf::from(crate::model::DEFAULT_WASM_FILE);
    if default.is_file() {
        return default;
    }
    cargo_target_dir().map_or(default, |t| {
        t.join("wasm32-wasip1/release/meshtally_filter.wasm")
    })
}

/// The target dir of the cargo workspace around the current dir, if there is one that holds
/// the filter.
fn cargo_target_dir() -> Option<PathBuf> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let has_filter = meta["packages"]
        .as_array()?
        .iter()
        .any(|p| p["name"] == "meshtally-filter");
    has_filter.then(|| PathBuf::from(meta["target_directory"].as_str().unwrap_or_default()))
}

/// `demo-service`: `--service-bin`, or the one built next to this executable.
fn demo_service(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(path) = flag {
        return absolute(&path).with_context(|| {
            format!(
                "demo-service binary {} not found (--service-bin)",
                path.display()
            )
        });
    }
    let exe = std::env::current_exe().context("finding the deployer executable")?;
    let sibling = exe.with_file_name("demo-service");
    if sibling.is_file() {
        return Ok(sibling);
    }
    bail!(
        "demo-service binary not found next to {}: build it with `cargo build --release -p demo-service`, or pass --service-bin PATH",
        exe.display()
    )
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if !path.is_file() {
        bail!("no such file");
    }
    Ok(std::fs::canonicalize(path)?)
}
