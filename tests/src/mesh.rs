//! A local mesh for tests: `deployer up --detach` in a temporary state dir, and `deployer down`
//! (then SIGKILL to anything left) on drop, so a failing test leaves nothing running.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Result};
use meshtally_deployer::local_mesh::{alive, Layout, StateDir};

/// A workspace binary built by `make e2e` (`cargo build -p meshtally-deployer -p demo-service`).
pub fn binary(name: &str) -> PathBuf {
    let path = crate::workspace_root().join("target/debug").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `make e2e` (it builds the deployer and demo-service first)",
        path.display()
    );
    path
}

/// Runs `deployer` with the test's Envoy and filter.
pub fn deployer(args: &[&str]) -> Output {
    let envoy = crate::envoy::envoy_bin().expect("envoy");
    Command::new(binary("deployer"))
        .args(args)
        .env("ENVOY_BIN", envoy)
        .output()
        .expect("running deployer")
}

pub struct LocalMesh {
    pub dir: tempfile::TempDir,
    pub layout: Layout,
    pub up_stdout: String,
}

impl LocalMesh {
    /// Starts a mesh of `services` on `base_port…` with the gateway on `gateway_port`.
    pub fn up(
        services: usize,
        base_port: u16,
        gateway_port: u16,
        extra: &[&str],
    ) -> Result<LocalMesh> {
        LocalMesh::up_in(
            tempfile::tempdir()?,
            services,
            base_port,
            gateway_port,
            extra,
        )
    }

    /// [`LocalMesh::up`] with its state in `dir/state` (`state_dir`), for a test that names
    /// the state dir before the mesh runs.
    pub fn up_in(
        dir: tempfile::TempDir,
        services: usize,
        base_port: u16,
        gateway_port: u16,
        extra: &[&str],
    ) -> Result<LocalMesh> {
        let (n, base) = (services.to_string(), base_port.to_string());
        let mut args = vec!["--services", n.as_str(), "--base-port", base.as_str()];
        args.extend_from_slice(extra);
        LocalMesh::start(dir, gateway_port, &args)
    }

    /// Starts the mesh a mesh file describes (its services, ports and traffic rules), with the
    /// gateway on `gateway_port`.
    pub fn up_file(mesh_file: &str, gateway_port: u16, extra: &[&str]) -> Result<LocalMesh> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("mesh.yaml");
        std::fs::write(&file, mesh_file)?;
        let file = file.to_string_lossy().into_owned();
        let mut args = vec!["--file", file.as_str()];
        args.extend_from_slice(extra);
        LocalMesh::start(dir, gateway_port, &args)
    }

    fn start(dir: tempfile::TempDir, gateway_port: u16, extra: &[&str]) -> Result<LocalMesh> {
        let state = dir.path().join("state");
        let gw = gateway_port.to_string();
        let wasm = crate::filter_wasm();
        let demo = binary("demo-service");
        let mut args = vec![
            "up",
            "--detach",
            "--gateway-port",
            &gw,
            "--state-dir",
            state.to_str().unwrap_or_default(),
            "--service-bin",
            demo.to_str().unwrap_or_default(),
        ];
        if !extra.contains(&"--wasm") {
            args.extend(["--wasm", wasm.to_str().unwrap_or_default()]);
        }
        args.extend_from_slice(extra);
        let out = deployer(&args);
        let up_stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "deployer up failed: {}{}",
                String::from_utf8_lossy(&out.stderr),
                up_stdout
            );
        }
        let layout = StateDir::new(&state).read_layout()?;
        Ok(LocalMesh {
            dir,
            layout,
            up_stdout,
        })
    }

    /// Like [`LocalMesh::up`], on ports the OS says are free: `services` consecutive ones for
    /// the services, one for the gateway.
    pub fn up_on_free_ports(services: usize, extra: &[&str]) -> Result<LocalMesh> {
        let (base, gateway) = free_ports(services)?;
        LocalMesh::up(services, base, gateway, extra)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn state(&self) -> StateDir {
        StateDir::new(self.state_dir())
    }

    pub fn pids(&self) -> BTreeMap<String, u32> {
        self.state().read_pids()
    }

    /// `deployer <cmd> --state-dir <ours> <args…>`.
    pub fn run(&self, cmd: &str, args: &[&str]) -> Output {
        let state = self.state_dir();
        let mut all = vec![cmd, "--state-dir", state.to_str().unwrap_or_default()];
        all.extend_from_slice(args);
        deployer(&all)
    }

    pub fn port(&self, service: &str) -> u16 {
        self.layout.service(service).map_or(0, |s| s.port)
    }

    pub fn gateway(&self) -> u16 {
        self.layout.gateway.port
    }

    pub fn envoy_configs(&self) -> Vec<PathBuf> {
        let dir = self.state_dir().join("envoy");
        let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Runs `envoy --mode validate` on every proxy's bootstrap, and on the same bootstrap with
    /// its xDS files' routes, clusters and filter put back in place (validate mode reads no
    /// xDS file, so this is how the files meet Envoy's rules). Returns how many were checked.
    pub fn validate_configs(&self) -> Result<usize> {
        let configs = self.envoy_configs();
        let scratch = tempfile::tempdir()?;
        for config in &configs {
            crate::envoy::validate(config)?;
            let bootstrap: serde_json::Value = serde_json::from_slice(&std::fs::read(config)?)?;
            let whole = meshtally_envoy::xds::inline(&bootstrap)?;
            let path = scratch.path().join(config.file_name().unwrap_or_default());
            std::fs::write(&path, serde_json::to_vec(&whole)?)?;
            crate::envoy::validate(&path)?;
        }
        Ok(configs.len())
    }

    /// Waits until `verify` passes, at most `within`; the error names `what` did not recover
    /// and shows the supervisor's log.
    pub fn wait_until_verified(&self, what: &str, within: std::time::Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + within;
        while !self.run("verify", &[]).status.success() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "{what} did not recover:\n{}",
                self.log("supervisor")
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        Ok(())
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.state().log(name)).unwrap_or_default()
    }
}

impl Drop for LocalMesh {
    fn drop(&mut self) {
        let pids = self.pids();
        let supervisor =
            std::fs::read_to_string(self.state().supervisor_pid_path()).unwrap_or_default();
        let _ = self.run("down", &[]);
        for pid in pids.values().map(|p| *p as i32).chain(
            supervisor
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok()),
        ) {
            if alive(pid) {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        }
    }
}

/// A run of `n` consecutive free loopback ports and one more free port, found by asking the OS
/// for a port and checking its successors.
/// Runs a hint the deployer printed as a newcomer's shell would: `sh -c HINT` in `cwd`, with
/// PATH holding only the system's folders; fails with its output unless it succeeds.
pub fn run_hint(cwd: &Path, hint: &str) -> Result<()> {
    let out = std::process::Command::new("sh")
        .args(["-c", hint])
        .current_dir(cwd)
        .env("PATH", "/usr/bin:/bin")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "`{hint}` failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

pub fn free_ports(n: usize) -> Result<(u16, u16)> {
    use std::net::TcpListener;
    for _ in 0..50 {
        let first = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let Some(last) = first.checked_add(n as u16) else {
            continue;
        };
        let held: Vec<TcpListener> = (first..last)
            .filter_map(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == n {
            let gateway = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            return Ok((first, gateway));
        }
    }
    bail!("no run of {n} free loopback ports found")
}

/// True when nothing listed is still running.
pub fn all_gone(pids: impl IntoIterator<Item = u32>) -> bool {
    pids.into_iter().all(|p| !alive(p as i32))
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}
