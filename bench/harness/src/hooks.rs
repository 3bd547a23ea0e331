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
/// Each figure stands alone: one that cannot be taken (a busy port on a shared machine) is a
/// section saying why, and the others are still measured.
pub fn extras(ctx: &Context<'_>) -> Result<Vec<Extra>> {
    type Hook = fn(&Context<'_>) -> Result<Option<Extra>>;
    let hooks: [(&str, Hook); 3] = [
        ("deployer render", deployer_render),
        ("local mesh (deployer up)", local_mesh_up),
        (
            "tracing on vs off (local mesh)",
            crate::tracing_cost::tracing_cost,
        ),
    ];
    let mut out = Vec::new();
    for (title, hook) in hooks {
        match hook(ctx) {
            Ok(extra) => out.extend(extra),
            Err(err) => out.push(Extra {
                title: title.to_owned(),
                method: format!("Not measured in this run: {err:#}"),
                table: Table::new(&["–"]),
            }),
        }
    }
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

/// The local mesh at scale: `deployer up --detach` for 10, 30 and 60 services, each with
/// meshtally and, as the baseline, the same mesh with the filter skipped (the same Envoys, apps,
/// routes and mTLS, no Wasm): time until every process is ready, the memory of everything it
/// started (summed RSS, which counts the Envoy binary's shared pages once per process; PSS,
/// which shares them out; private, what each process alone holds), and `verify` of every
/// ordered pair through the gateway (meshtally only: it checks the filter's tags).
pub fn local_mesh_up(ctx: &Context<'_>) -> Result<Option<Extra>> {
    let deployer = ctx.root.join("target/release/deployer");
    let module = ctx
        .root
        .join("target/wasm32-wasip1/release/meshtally_filter.wasm");
    let runs = if ctx.quick { 1 } else { 2 };
    let sizes: &[usize] = if ctx.quick { &[10] } else { &[10, 30, 60] };
    let mut table = Table::new(&[
        "services",
        "mesh",
        "processes",
        "up s",
        "summed RSS MiB",
        "PSS MiB",
        "private MiB",
        "per sidecar private MiB",
        "verify",
    ]);
    for &n in sizes {
        for filtered in [true, false] {
            let mut times = Vec::new();
            let mut last = Footprint::default();
            let mut verified = String::from("–");
            let mut failed = None;
            for run in 0..runs {
                let state = tempfile::tempdir()?;
                let dir = state.path().join("mesh");
                let mut up = Command::new(&deployer);
                up.args([
                    "up",
                    "--detach",
                    "--services",
                    &n.to_string(),
                    // Below Linux's ephemeral range (32768 up), where the outgoing
                    // connections of a 60-service mesh could hold one of the ports, and above
                    // `up`'s private ports (10000-19999).
                    "--base-port",
                    "22000",
                    "--gateway-port",
                    "22990",
                    "--state-dir",
                ])
                .arg(&dir)
                .arg("--wasm")
                .arg(&module);
                if !filtered {
                    // A config the filter refuses, fail-open: every sidecar runs without it.
                    up.args([
                        "--fail-strategy",
                        "fail-open",
                        "--plugin-config",
                        r#"{"max_hops":0}"#,
                    ]);
                }
                let begin = Instant::now();
                let out = up.output()?;
                let elapsed = begin.elapsed();
                let measured = (|| -> Result<(Footprint, Option<String>)> {
                    anyhow::ensure!(
                        out.status.success(),
                        "deployer up --services {n} failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let footprint = Footprint::of(&dir)?;
                    // Every ordered pair, once per size (the last run), timed.
                    let verify = if filtered && run + 1 == runs {
                        let begin = Instant::now();
                        let v = Command::new(&deployer)
                            .args(["verify", "--json", "--state-dir"])
                            .arg(&dir)
                            .output()?;
                        let secs = begin.elapsed().as_secs_f64();
                        let pairs = n * (n - 1);
                        Some(if v.status.success() {
                            format!("{pairs} pairs ok in {secs:.1} s")
                        } else {
                            format!("FAILED ({pairs} pairs, {secs:.1} s)")
                        })
                    } else {
                        None
                    };
                    Ok((footprint, verify))
                })();
                let _ = Command::new(&deployer)
                    .args(["down", "--state-dir"])
                    .arg(&dir)
                    .output();
                let (footprint, verify) = match measured {
                    Ok(m) => m,
                    Err(e) => {
                        // A size this machine cannot start is a finding, not the end of the run.
                        failed = Some(first_line(&format!("{e:#}")));
                        break;
                    }
                };
                last = footprint;
                if let Some(v) = verify {
                    verified = v;
                }
                times.push(elapsed.as_secs_f64());
            }
            let label = if filtered {
                "meshtally"
            } else {
                "no filter (baseline)"
            };
            if let Some(why) = failed {
                let mut row = vec![n.to_string(), label.to_owned(), "–".into()];
                row.push(format!("did not start: {why}"));
                row.extend(std::iter::repeat_n("–".to_owned(), 5));
                table.row(row);
                continue;
            }
            let mib = |kib: u64| format!("{:.0}", kib as f64 / 1024.0);
            table.row(vec![
                n.to_string(),
                if filtered {
                    "meshtally"
                } else {
                    "no filter (baseline)"
                }
                .to_owned(),
                last.processes.to_string(),
                summary::show(Spread::of(&times), 2),
                mib(last.rss),
                mib(last.pss),
                mib(last.private),
                format!("{:.1}", last.sidecar_private as f64 / 1024.0),
                verified,
            ]);
        }
    }
    Ok(Some(Extra {
        title: "local mesh at scale (deployer up)".into(),
        method: format!(
            "`deployer up --detach --services N` wall time until it returns (every Envoy /ready, every app /healthz), {runs} run(s) \
             per row: median (min–max). The baseline is the same mesh with the filter skipped (`--fail-strategy fail-open` and a \
             plugin config the filter refuses): the same Envoys, apps, routes and mTLS, no Wasm. Memory is read from /proc after \
             start-up: summed RSS counts the Envoy binary's ~63 MiB of shared read-only pages once per process; PSS shares them \
             out (the memory the mesh really takes); private is what the processes hold alone, and per sidecar the largest \
             sidecar's. `verify` calls every ordered pair through the gateway and checks the filter's tags (meshtally rows)."
        ),
        table,
    }))
}

/// The line that says what went wrong, of an error with its causes and `up`'s output.
fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.contains("error") || l.contains("exited"))
        .unwrap_or_else(|| text.lines().next().unwrap_or_default());
    line.chars().take(200).collect()
}

/// The memory of every process a local mesh started.
#[derive(Debug, Default, Clone, Copy)]
struct Footprint {
    processes: usize,
    rss: u64,
    pss: u64,
    private: u64,
    sidecar_private: u64,
}

impl Footprint {
    fn of(dir: &std::path::Path) -> Result<Footprint> {
        let pids: std::collections::BTreeMap<String, u32> =
            serde_json::from_slice(&std::fs::read(dir.join("pids.json"))?)?;
        let mut f = Footprint {
            processes: pids.len(),
            ..Footprint::default()
        };
        for (name, pid) in &pids {
            f.rss += procfs::rss_kib(*pid)?;
            f.pss += smaps_kib(*pid, "Pss:")?;
            let private = smaps_kib(*pid, "Private_Dirty:")? + smaps_kib(*pid, "Private_Clean:")?;
            f.private += private;
            if name.ends_with("-sidecar") {
                f.sidecar_private = f.sidecar_private.max(private);
            }
        }
        Ok(f)
    }
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
