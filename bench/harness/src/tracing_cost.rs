//! What tracing costs the sidecars: three local meshes started by the release `deployer up`,
//! without tracing and with `--tracing` (a real Zipkin) at 100 % and 1 % sampling, the same calls
//! (`/service-a/call/service-b` through the gateway) sent to each in alternating rounds, and the
//! CPU time of the proxies on the path (service-a's and service-b's sidecars, and the gateway)
//! read from /proc (every thread's schedstat). The table gives CPU per call and the ratio of
//! on to off from the same run; Zipkin's own CPU is not the sidecars' and is left out.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::hooks::{Context, Extra};
use crate::procfs;
use crate::summary::{self, Spread};
use crate::table::Table;
use meshtally_testkit::http::Connection;

/// The proxies a call crosses, by their names in the mesh's pids.json.
const SIDECARS: [&str; 2] = ["service-a-sidecar", "service-b-sidecar"];
const GATEWAY: &str = "ingress-gateway";
const PATH: &str = "/service-a/call/service-b";
/// Keep-alive connections the calls are spread over.
const CONNECTIONS: usize = 4;

/// A running local mesh, stopped on drop.
struct Mesh<'a> {
    deployer: &'a Path,
    dir: tempfile::TempDir,
    gateway: u16,
}

impl Mesh<'_> {
    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("mesh")
    }

    fn pids(&self) -> Result<std::collections::BTreeMap<String, u32>> {
        Ok(serde_json::from_slice(&std::fs::read(
            self.state().join("pids.json"),
        )?)?)
    }

    /// CPU ns of the sidecars on the path, and of the gateway.
    fn cpu(&self) -> Result<(u64, u64)> {
        let pids = self.pids()?;
        let pid = |name: &str| {
            pids.get(name)
                .copied()
                .with_context(|| format!("no {name}"))
        };
        let mut sidecars = 0;
        for name in SIDECARS {
            sidecars += procfs::cpu_ns(pid(name)?)?;
        }
        Ok((sidecars, procfs::cpu_ns(pid(GATEWAY)?)?))
    }

    /// `calls` calls through the gateway, all answered 200.
    fn load(&self, calls: usize) -> Result<()> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| -> Result<()> {
            let workers: Vec<_> = (0..CONNECTIONS)
                .map(|_| {
                    scope.spawn(|| -> Result<()> {
                        let mut conn = Connection::open(self.gateway, Duration::from_secs(10))?;
                        while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < calls {
                            conn.write_request("localhost", PATH, &[], false)?;
                            let r = conn.read_response()?;
                            anyhow::ensure!(r.status == 200, "{PATH}: {}", r.status);
                        }
                        Ok(())
                    })
                })
                .collect();
            for w in workers {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
            }
            Ok(())
        })
    }
}

impl Drop for Mesh<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.deployer)
            .args(["down", "--state-dir"])
            .arg(self.state())
            .output();
    }
}

/// A 2-service mesh on `base…`, traced at `tracing`'s sampling to a Zipkin on its port.
fn up<'a>(
    deployer: &'a Path,
    module: &Path,
    base: u16,
    tracing: Option<(u16, &str)>,
) -> Result<Mesh<'a>> {
    let mesh = Mesh {
        deployer,
        dir: tempfile::tempdir()?,
        gateway: base + 90,
    };
    let mut command = Command::new(deployer);
    command
        .args(["up", "--detach", "--services", "2", "--base-port"])
        .arg(base.to_string())
        .arg("--gateway-port")
        .arg(mesh.gateway.to_string())
        .arg("--state-dir")
        .arg(mesh.state())
        .arg("--wasm")
        .arg(module);
    if let Some((port, sampling)) = tracing {
        command
            .arg(format!("--tracing={port}"))
            .args(["--sampling", sampling]);
    }
    let out = command.output()?;
    anyhow::ensure!(
        out.status.success(),
        "deployer up{} failed: {}",
        if tracing.is_some() { " --tracing" } else { "" },
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(mesh)
}

pub fn tracing_cost(ctx: &Context<'_>) -> Result<Option<Extra>> {
    let deployer = ctx.root.join("target/release/deployer");
    let module = ctx
        .root
        .join("target/wasm32-wasip1/release/meshtally_filter.wasm");
    let (rounds, calls) = if ctx.quick { (2, 300) } else { (6, 1500) };
    // Ports below Linux's ephemeral range (32768 up), where no outgoing connection of a
    // concurrent mesh can be holding one, and above `up`'s private ports (10000-19999).
    let meshes = [
        ("off", up(&deployer, &module, 21300, None)?),
        (
            "on, 100 % sampled",
            up(&deployer, &module, 21400, Some((21499, "100")))?,
        ),
        (
            "on, 1 % sampled",
            up(&deployer, &module, 21500, Some((21599, "1")))?,
        ),
    ];
    // Warm every mesh (connection pools, the filter's metric cache, Zipkin's JIT).
    for (_, mesh) in &meshes {
        mesh.load(200)?;
    }
    let mut per_call: [[Vec<f64>; 2]; 3] = Default::default();
    for _ in 0..rounds {
        for (i, (_, mesh)) in meshes.iter().enumerate() {
            let before = mesh.cpu()?;
            mesh.load(calls)?;
            let after = mesh.cpu()?;
            per_call[i][0].push((after.0 - before.0) as f64 / 1e3 / calls as f64);
            per_call[i][1].push((after.1 - before.1) as f64 / 1e3 / calls as f64);
        }
    }
    let median = |v: &[f64]| Spread::of(v).map_or(f64::NAN, |s| s.median);
    let mut table = Table::new(&[
        "tracing",
        "sidecars µs CPU per call",
        "gateway µs CPU per call",
        "sidecars on/off",
        "gateway on/off",
    ]);
    for (i, (label, _)) in meshes.iter().enumerate() {
        let ratio = |k: usize| median(&per_call[i][k]) / median(&per_call[0][k]);
        table.row(vec![
            (*label).to_owned(),
            summary::show(Spread::of(&per_call[i][0]), 1),
            summary::show(Spread::of(&per_call[i][1]), 1),
            format!("{:.2}×", ratio(0)),
            format!("{:.2}×", ratio(1)),
        ]);
    }
    Ok(Some(Extra {
        title: "tracing on vs off (local mesh)".into(),
        method: format!(
            "Three 2-service meshes from the release `deployer up`: without tracing, and with `--tracing` (a real Zipkin) \
             at `--sampling 100` (the local default) and `--sampling 1`; \
             {rounds} alternating rounds of {calls} calls `{PATH}` through each gateway on {CONNECTIONS} keep-alive connections. \
             CPU time of service-a's and service-b's sidecars (together) and of the gateway, from every thread's schedstat: \
             median (min–max) per call. The ratio is on over off in the same run: what building and sending the spans adds \
             (the gateway makes two spans per call, each sidecar one per side)."
        ),
        table,
    }))
}
