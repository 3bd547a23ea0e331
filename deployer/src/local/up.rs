//! `deployer up` and `deployer down`: the checked plan (tools found, ports free, no mesh already
//! running) first, then the state dir, then the supervisor — in this process, or detached.

use crate::output::{out, outln};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::layout::{FilterPlan, FilterState, Layout, LocalPrometheus, Tools, GATEWAY};
use super::process::processes;
use super::state::{alive, tail, StateDir};
use super::supervisor::Supervisor;
use meshtally_envoy::locate::Places;
use meshtally_mesh::model::{FailStrategy, Mesh};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything `up` was asked for, before any check.
#[derive(Debug, Clone)]
pub struct UpRequest {
    pub gateway_port: u16,
    pub detach: bool,
    pub state_dir: PathBuf,
    pub envoy: Option<PathBuf>,
    pub wasm: Option<PathBuf>,
    pub service_bin: Option<PathBuf>,
    pub plugin_config: Option<String>,
    /// Run a Prometheus on this loopback port.
    pub prometheus: Option<u16>,
    /// Run a Zipkin server on this loopback port, and trace.
    pub tracing: Option<u16>,
    /// `--sampling` was given (it means nothing without `--tracing`).
    pub sampling_given: bool,
    /// The mesh file, if the mesh came from one (kept for `deployer reload`).
    pub mesh_file: Option<PathBuf>,
}

/// A checked `up`: tools found, ports free, state dir free.
pub struct UpPlan {
    layout: Layout,
    state: StateDir,
    detach: bool,
}

pub fn plan(mesh: &Mesh, req: UpRequest) -> Result<UpPlan> {
    let state = StateDir::new(&req.state_dir);
    state.refuse_if_running()?;
    let places = Places::here();
    let envoy = places.envoy(req.envoy.as_deref())?;
    let service_bin = places.demo_service(req.service_bin.as_deref())?;
    let mut plugin_config: serde_json::Value = match &req.plugin_config {
        Some(text) => serde_json::from_str(text).context("--plugin-config is not valid JSON")?,
        None => serde_json::json!({}),
    };
    // The hosts outside the mesh and the outbound policy, as the rendered WasmPlugins carry
    // them: the mesh file's, over any the flag gave.
    if let Some(fields) = plugin_config.as_object_mut() {
        use meshtally_mesh::render::filter::{external_config, outbound_policy_config};
        let external = external_config(mesh);
        if !external.is_empty() {
            fields.insert("external".to_owned(), serde_json::to_value(external)?);
        }
        if let Some(policy) = outbound_policy_config(mesh) {
            fields.insert("outbound_policy".to_owned(), serde_json::to_value(policy)?);
        }
    }
    // Module and config problems are found here, with the filter's own config rules, so a
    // fail-open or fail-close mesh behaves as Istio would instead of Envoy refusing to start.
    let module = places.module(req.wasm.as_deref());
    // Each side of a sidecar has its own filter, its direction set here, as each rendered
    // WasmPlugin carries its own: a direction given for both could only be wrong for one.
    if plugin_config.get("direction").is_some() {
        bail!("--plugin-config: leave `direction` out: up sets it for each side of a sidecar");
    }
    let config_problem = mesh.services.iter().find_map(|s| {
        let node = meshtally_core::NodeMetadata {
            workload_name: Some(s.name.clone().into_bytes()),
            ..meshtally_core::NodeMetadata::default()
        };
        ["inbound", "outbound"].into_iter().find_map(|side| {
            let config = super::proxies::plugin_config_for(&plugin_config, "v1", side);
            meshtally_core::Config::parse(config.to_string().as_bytes(), &node).err()
        })
    });
    let problem = match (&module, config_problem) {
        (Err(e), _) => Some(format!("{e:#}")),
        (Ok(_), Some(e)) => Some(format!("--plugin-config rejected by the filter: {e}")),
        (Ok(_), None) => None,
    };
    // No fail strategy chosen: a module or config that cannot load is an error before anything
    // starts, rather than a mesh that silently runs without its filter.
    let filter_state = match (problem, mesh.fail_strategy) {
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
        fail_open: FailStrategy::or_default(mesh.fail_strategy) == FailStrategy::FailOpen,
    };
    let wasm = module.unwrap_or_default();
    let prometheus = match req.prometheus {
        Some(port) => Some(LocalPrometheus {
            bin: places.prometheus()?,
            port,
        }),
        None => None,
    };
    let tracing = match req.tracing {
        Some(port) => {
            let (jar, java) = places.zipkin()?;
            Some(super::tracing::LocalTracing {
                jar,
                java,
                port,
                sampling: mesh.sampling,
            })
        }
        None if req.sampling_given => {
            bail!("--sampling sets the share of requests traced: add --tracing to run a trace backend")
        }
        None => None,
    };
    let mut layout = Layout::plan(
        mesh,
        req.gateway_port,
        mesh.mtls,
        Tools {
            envoy,
            wasm,
            service_bin,
        },
        filter,
        super::state::mesh_holding,
    )?;
    if let Some(p) = &prometheus {
        if std::net::TcpListener::bind(("127.0.0.1", p.port)).is_err() {
            bail!(
                "port {} (prometheus) is already in use: stop what holds it, or pick another with --prometheus=PORT",
                p.port
            );
        }
    }
    layout.prometheus = prometheus;
    if let Some(t) = &tracing {
        let taken = layout.prometheus.as_ref().is_some_and(|p| p.port == t.port);
        if taken || std::net::TcpListener::bind(("127.0.0.1", t.port)).is_err() {
            bail!(
                "port {} (zipkin) is already in use: stop what holds it, or pick another with --tracing=PORT",
                t.port
            );
        }
    }
    layout.tracing = tracing;
    layout.up_command = super::layout::UpCommand::this();
    layout.mesh_file = req
        .mesh_file
        .as_deref()
        .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.to_path_buf()));
    // The file alone, without the flags merged over it: what a later `deployer reload` of the
    // same file is compared with. A file that only checks with the flags has nothing to keep.
    layout.file_mesh = match &layout.mesh_file {
        Some(file) => {
            crate::meshfile::merged(meshtally_mesh::model::MeshInput::default(), Some(file)).ok()
        }
        None => None,
    };
    Ok(UpPlan {
        layout,
        state,
        detach: req.detach,
    })
}

impl UpPlan {
    pub fn run(self) -> Result<()> {
        let begin = Instant::now();
        let layout = self.state.prepare(&self.layout)?;
        let this = UpPlan { layout, ..self };
        this.run_prepared(begin)
    }

    fn run_prepared(self, begin: Instant) -> Result<()> {
        if self.detach {
            return self.run_detached(begin);
        }
        let specs = processes(&self.layout, &self.state);
        let mut sup = Supervisor::new(self.state.clone(), specs)?;
        watch_module(&mut sup, &self.layout);
        eprintln!("starting {} processes…", sup.process_count());
        sup.start(READY_TIMEOUT, progress)?;
        let shown = print_table(&self.layout, &self.state, begin.elapsed())
            .and_then(|()| Ok(outln!("Ctrl-C stops the mesh.")?));
        if let Err(err) = shown {
            // Nobody reads the output any more (`up | head -1`): an end like Ctrl-C's, not
            // sidecars left running without a supervisor.
            sup.stop_all();
            return Err(err);
        }
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
            .env(super::state::MARKER, &self.state.root)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting the detached supervisor")?;
        eprintln!(
            "starting {} processes (detached)…",
            processes(&self.layout, &self.state).len()
        );
        let deadline = Instant::now() + READY_TIMEOUT + Duration::from_secs(5);
        while !self.state.ready_path().exists() {
            if let Some(status) = child.try_wait()? {
                // The supervisor stopped whatever it had started; its last error says why.
                bail!(
                    "the mesh did not start ({status}): {} (see {})",
                    super::state::last_error(&log_path),
                    log_path.display()
                );
            }
            if Instant::now() > deadline {
                let _ = super::signal::terminate(child.id() as i32);
                bail!("the mesh was not ready in time:\n{}", tail(&log_path, 12));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        print_table(&self.layout, &self.state, begin.elapsed())?;
        outln!(
            "Running in the background; `{}` stops it.",
            self.state.cmd("down")
        )?;
        Ok(())
    }
}

/// The hidden `supervise` subcommand: a detached `up`'s supervisor.
pub fn supervise(state_dir: &Path) -> Result<()> {
    let state = StateDir::new(state_dir);
    let layout = state.read_layout()?;
    let mut sup = Supervisor::new(state.clone(), processes(&layout, &state))?;
    watch_module(&mut sup, &layout);
    sup.start(READY_TIMEOUT, progress)?;
    sup.run(|line| eprintln!("{line}"));
    Ok(())
}

/// A mesh running the filter reloads it when the module `up` was given is replaced.
fn watch_module(sup: &mut Supervisor, layout: &Layout) {
    if layout.filter == FilterState::Loaded {
        sup.watch_module(&layout.wasm);
    }
}

/// `deployer down`: stops the supervisor (which stops its children) and makes sure nothing of
/// the mesh is left running.
pub fn down(state_dir: &Path) -> Result<()> {
    let state = StateDir::new(state_dir);
    let supervisor = state.running_supervisor();
    // The mesh's own processes, by their marker: a pid file that now names a stranger is never
    // signalled, and one that was damaged or deleted hides none of them.
    let own = state.own_processes();
    if supervisor.is_none() && own.is_empty() {
        outln!("no mesh running in {}", state.root.display())?;
        state.clear_run();
        return Ok(());
    }
    let begin = Instant::now();
    if let Some(pid) = supervisor {
        let _ = super::signal::terminate(pid);
        let deadline = Instant::now() + Duration::from_secs(9);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(25));
        }
        if alive(pid) {
            let _ = super::signal::kill(pid);
        }
    }
    // Whatever the supervisor could not stop (or a supervisor killed with -9 left behind).
    let mut killed = 0;
    for pid in state.own_processes() {
        if super::signal::kill(pid) {
            killed += 1;
        }
    }
    state.clear_run();
    let stopped = own.len() + usize::from(supervisor.is_some_and(|s| !own.contains(&s)));
    outln!(
        "mesh stopped in {:.1} s ({} processes{})",
        begin.elapsed().as_secs_f64(),
        stopped,
        if killed > 0 {
            format!(", {killed} killed")
        } else {
            String::new()
        }
    )?;
    Ok(())
}

fn progress(name: &str, done: usize, total: usize, elapsed: Duration) {
    eprintln!(
        "  [{done:>2}/{total}] {name:<24} ready  {:>6.2} s",
        elapsed.as_secs_f64()
    );
}

fn print_table(layout: &Layout, state: &StateDir, elapsed: Duration) -> Result<()> {
    let filter = match &layout.filter {
        FilterState::Loaded => "filter loaded".to_owned(),
        FilterState::Skipped(why) => format!("FILTER SKIPPED (fail-open): {why}"),
        FilterState::DenyAll(why) => format!("ALL TRAFFIC DENIED (fail-close): {why}"),
    };
    outln!(
        "\nmesh ready in {:.2} s (mTLS {:?}, {filter})\n",
        elapsed.as_secs_f64(),
        layout.mtls
    )?;
    let g = &layout.gateway;
    // Under STRICT mTLS a sidecar refuses plain HTTP (a plain curl is reset), so the URL to try
    // is the gateway's route to the service; the sidecar's port is shown as mTLS-only.
    let strict = layout.mtls == meshtally_mesh::model::MtlsMode::Strict;
    let mut t = crate::table::Table::new(
        ["SERVICE", "URL", "SIDECAR", "APP PORT", "ADMIN"]
            .map(String::from)
            .to_vec(),
    );
    for s in &layout.services {
        for i in s.instances() {
            let sidecar = format!("127.0.0.1:{}", i.port);
            t.row(vec![
                i.name.clone(),
                if strict {
                    format!("http://127.0.0.1:{}/{}/", g.port, s.name)
                } else {
                    format!("http://{sidecar}/")
                },
                if strict {
                    format!("{sidecar} (mTLS only)")
                } else {
                    sidecar
                },
                i.app_port.to_string(),
                format!("http://127.0.0.1:{}", i.admin_port),
            ]);
        }
    }
    t.row(vec![
        GATEWAY.to_owned(),
        format!("http://127.0.0.1:{}/", g.port),
        "-".into(),
        "-".into(),
        format!("http://127.0.0.1:{}", g.admin_port),
    ]);
    if let Some(p) = &layout.prometheus {
        t.row(vec![
            super::process::PROMETHEUS.to_owned(),
            format!("http://127.0.0.1:{}/", p.port),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
    }
    if let Some(z) = &layout.tracing {
        t.row(vec![
            super::tracing::ZIPKIN.to_owned(),
            z.ui(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
    }
    out!("{}", t.render())?;
    if !layout.external.is_empty() {
        // The services outside the mesh: the host an app calls, and the outside server `up`
        // runs for it (on loopback; the declared name reaches it only through a sidecar).
        let mut x = crate::table::Table::new(
            ["EXTERNAL", "APPS CALL", "OUTSIDE SERVER", "CALLERS"]
                .map(String::from)
                .to_vec(),
        );
        for e in &layout.external {
            x.row(vec![
                e.entry.name.clone(),
                meshtally_wire::app::external_url(&e.entry.host, e.entry.app_port()),
                match &e.tls {
                    Some(tls) => format!("127.0.0.1:{} (TLS, SNI {})", tls.port, e.entry.host),
                    None => format!("127.0.0.1:{}", e.server_port),
                },
                e.entry
                    .callers
                    .as_ref()
                    .map_or_else(|| "every service".to_owned(), |c| c.join(", ")),
            ]);
        }
        out!(
            "\noutbound policy: {}\n{}",
            layout.outbound_policy.istio().to_lowercase(),
            x.render()
        )?;
    }
    let (first, last) = (
        &layout.services[0].name,
        &layout.services[layout.services.len() - 1].name,
    );
    // The hints name this deployer and this state dir, so pasting them anywhere reaches this
    // mesh and no other.
    let external = layout
        .external
        .iter()
        .find(|e| e.entry.admits(last))
        .map(|e| {
            format!(
                "\n  curl -s localhost:{}/{last}/call-external/{}",
                g.port, e.entry.name
            )
        })
        .unwrap_or_default();
    outln!(
        "\ntry:\n  curl -sv localhost:{}/{last}/call/{first}{external}\n  {}\n  {}{}\n",
        g.port,
        state.cmd("verify"),
        state.cmd("stats"),
        if layout.tracing.is_some() {
            format!("\n  {}", state.cmd("trace"))
        } else {
            String::new()
        }
    )?;
    Ok(())
}
