//! Hooks for figures measured outside the proxy benchmark. Each returns an extra report section
//! (title, method note, table), or `None` while it is not implemented; the report prints every
//! section it is given after the proxy tables, so adding a figure means filling in a function
//! here and nothing else.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::procfs;
use crate::summary::{self, Spread};
use crate::table::Table;

/// A section of the report beyond the proxy variants.
#[derive(Debug, Clone)]
pub struct Extra {
    pub title: String,
    /// How the figures were taken, printed above the table.
    pub method: String,
    pub table: Table,
}

/// Everything the hooks may need from the run.
pub struct Context<'a> {
    pub root: &'a std::path::Path,
    pub quick: bool,
}

/// All extra sections, in report order.
pub fn extras(ctx: &Context<'_>) -> Result<Vec<Extra>> {
    let mut out = Vec::new();
    out.extend(deployer_render(ctx)?);
    out.extend(local_mesh_up(ctx)?);
    out.extend(crate::tracing_cost::tracing_cost(ctx)?);
    Ok(out)
}

/// `deployer render` wall time for 10, 100 and 1000 services (release build, output discarded).
/// Every service lists every other one (PEERS, authorization principals), so the output grows
/// with N²; the table shows time per MB of output, which is what must stay flat.
pub fn deployer_render(ctx: &Context<'_>) -> Result<Option<Extra>> {
    let deployer = ctx.root.join("target/release/deployer");
    let module = ctx
        .root
        .join("target/wasm32-wasip1/release/meshtally_filter.wasm");
    let runs = if ctx.quick { 1 } else { 5 };
    let mut table = Table::new(&["services", "render ms", "output MB", "ms per MB"]);
    for n in [10, 100, 1000] {
        let mut times = Vec::new();
        for _ in 0..runs {
            // Timed with stdout on /dev/null: what is measured is the render, not a pipe.
            let begin = Instant::now();
            let status = Command::new(&deployer)
                .args(["render", "--services", &n.to_string(), "--wasm-file"])
                .arg(&module)
                .stdout(std::process::Stdio::null())
                .status()
                .with_context(|| format!("running {}", deployer.display()))?;
            times.push(begin.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(status.success(), "deployer render --services {n} failed");
        }
        let out = Command::new(&deployer)
            .args(["render", "--services", &n.to_string(), "--wasm-file"])
            .arg(&module)
            .output()?;
        let bytes = out.stdout.len();
        let spread = Spread::of(&times);
        let mb = bytes as f64 / 1e6;
        table.row(vec![
            n.to_string(),
            summary::show(spread, 1),
            format!("{mb:.1}"),
            spread.map_or_else(|| "–".into(), |s| format!("{:.1}", s.median / mb)),
        ]);
    }
    Ok(Some(Extra {
        title: "deployer render".into(),
        method: format!(
            "`target/release/deployer render --services N > /dev/null`, wall time over {runs} run(s): median (min–max). \
             The output grows with N² (each service lists every other one), so time per MB is the figure that must stay flat."
        ),
        table,
    }))
}

/// Local-mesh `up --detach` time (until every Envoy and app is ready) and memory of everything
/// it starts, for 3 and 10 services. RSS counts the Envoy binary's shared read-only pages once
/// per process; PSS shares them out, so it is the memory the mesh really takes.
pub fn local_mesh_up(ctx: &Context<'_>) -> Result<Option<Extra>> {
    let deployer = ctx.root.join("target/release/deployer");
    let module = ctx
        .root
        .join("target/wasm32-wasip1/release/meshtally_filter.wasm");
    let runs = if ctx.quick { 1 } else { 3 };
    let mut table = Table::new(&[
        "services",
        "processes",
        "up s",
        "total RSS MiB",
        "total PSS MiB",
        "per sidecar RSS / private MiB",
    ]);
    for n in [3usize, 10] {
        let mut times = Vec::new();
        let mut last = (0, 0u64, 0u64, 0u64, 0u64);
        for _ in 0..runs {
            let state = tempfile::tempdir()?;
            let dir = state.path().join("mesh");
            let begin = Instant::now();
            let up = Command::new(&deployer)
                .args([
                    "up",
                    "--detach",
                    "--services",
                    &n.to_string(),
                    "--base-port",
                    "38000",
                    "--gateway-port",
                    "38990",
                    "--state-dir",
                ])
                .arg(&dir)
                .arg("--wasm")
                .arg(&module)
                .output()?;
            let elapsed = begin.elapsed();
            let measured = (|| -> Result<(usize, u64, u64, u64, u64)> {
                anyhow::ensure!(
                    up.status.success(),
                    "deployer up failed: {}",
                    String::from_utf8_lossy(&up.stderr)
                );
                let pids: std::collections::BTreeMap<String, u32> =
                    serde_json::from_slice(&std::fs::read(dir.join("pids.json"))?)?;
                let (mut rss, mut pss, mut sidecar_rss, mut sidecar_private) = (0, 0, 0, 0);
                for (name, pid) in &pids {
                    let r = procfs::rss_kib(*pid)?;
                    rss += r;
                    pss += smaps_kib(*pid, "Pss:")?;
                    if name.ends_with("-sidecar") {
                        sidecar_rss = sidecar_rss.max(r);
                        sidecar_private = sidecar_private.max(
                            smaps_kib(*pid, "Private_Dirty:")? + smaps_kib(*pid, "Private_Clean:")?,
                        );
                    }
                }
                Ok((pids.len(), rss, pss, sidecar_rss, sidecar_private))
            })();
            let _ = Command::new(&deployer)
                .args(["down", "--state-dir"])
                .arg(&dir)
                .output();
            last = measured?;
            times.push(elapsed.as_secs_f64());
        }
        let (procs, rss, pss, srss, spriv) = last;
        table.row(vec![
            n.to_string(),
            procs.to_string(),
            summary::show(Spread::of(&times), 2),
            format!("{:.0}", rss as f64 / 1024.0),
            format!("{:.0}", pss as f64 / 1024.0),
            format!("{:.0} / {:.0}", srss as f64 / 1024.0, spriv as f64 / 1024.0),
        ]);
    }
    Ok(Some(Extra {
        title: "local mesh (deployer up)".into(),
        method: format!(
            "`deployer up --detach` wall time until it returns (every Envoy /ready, every app /healthz), {runs} run(s); \
             memory read from /proc after start-up. A sidecar's RSS includes ~63 MiB of the Envoy binary's read-only pages, \
             shared by every Envoy on the machine; its private memory is what each sidecar adds."
        ),
        table,
    }))
}

/// A field of /proc/<pid>/smaps_rollup, in KiB.
fn smaps_kib(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in {path}"))
}
