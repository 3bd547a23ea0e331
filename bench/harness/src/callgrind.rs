//! The deterministic counterpart of the CPU figures: one Envoy under valgrind's callgrind serves
//! every variant on a listener of its own, and the worker thread's instructions are counted over
//! a fixed number of requests per variant, in alternating rounds. Instructions do not depend on
//! what else the machine is doing, so these differences repeat where CPU time does not.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::configs;
use crate::envoy::Launch;
use crate::load::{self, Target};
use crate::measure::Setup;
use crate::procfs;
use crate::variants::Variant;

/// How much to count.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub rounds: u32,
    /// Requests per variant per round, over one keep-alive connection.
    pub requests: u32,
    /// Requests per variant before counting (V8 tiers up; metrics get defined).
    pub warmup: u32,
}

/// One variant's instructions per request, one value per round.
#[derive(Debug, Clone)]
pub struct Counted {
    pub variant: Variant,
    pub per_request: Vec<f64>,
}

/// The valgrind tools, from PATH (`bench/setup.sh` installs them).
fn tool(name: &str) -> Result<PathBuf> {
    meshtally_envoy::locate::Places::here()
        .on_path(name)
        .with_context(|| {
            format!("{name} not found on PATH: install valgrind (bench/setup.sh does)")
        })
}

/// One bootstrap with a listener per variant, named by the variant's id; the filter chains are
/// exactly the ones the timed runs use.
fn combined(setup: &Setup<'_>, variants: &[Variant], upstream_port: u16) -> Result<Value> {
    let mut base: Option<Value> = None;
    let mut listeners = Vec::new();
    for variant in variants {
        let config = configs::proxy(variant, &setup.modules, upstream_port, setup.pki);
        let mut listener = config["static_resources"]["listeners"][0].clone();
        if listener.is_null() {
            bail!("no listener in the {} config", variant.id);
        }
        listener["name"] = Value::String(variant.id.clone());
        listeners.push(listener);
        base.get_or_insert(config);
    }
    let mut base = base.context("no variants to count")?;
    base["node"]["id"] = Value::String("bench-callgrind".into());
    base["static_resources"]["listeners"] = Value::Array(listeners);
    Ok(base)
}

/// The worker thread's instruction total in one dump: callgrind writes a file per thread
/// (`<out>.<dump>-<thread>`), and the worker is the busiest thread while requests flow.
fn worker_instructions(dir: &Path, out: &str, dump: u32) -> Result<u64> {
    let prefix = format!("{out}.{dump}-");
    let mut best = None;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&prefix) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())?;
        let total = text
            .lines()
            .find_map(|l| l.strip_prefix("totals:"))
            .and_then(|t| t.split_whitespace().next())
            .and_then(|t| t.parse::<u64>().ok());
        best = best.max(total);
    }
    best.with_context(|| format!("callgrind wrote no dump {dump} in {}", dir.display()))
}

fn control(callgrind_control: &Path, args: &[&str], pid: u32) -> Result<()> {
    let out = Command::new(callgrind_control)
        .args(args)
        .arg(pid.to_string())
        .output()
        .context("running callgrind_control")?;
    if !out.status.success() {
        bail!(
            "callgrind_control {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

pub fn run(
    setup: &Setup<'_>,
    variants: &[Variant],
    settings: &Settings,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Counted>> {
    let valgrind = tool("valgrind")?;
    let callgrind_control = tool("callgrind_control")?;
    let dir = setup.dir.join("callgrind");
    std::fs::create_dir_all(&dir)?;
    let upstream = crate::envoy::start(
        &dir,
        "upstream",
        &configs::upstream(),
        &crate::envoy::pinned(setup.envoy_bin, Some(procfs::LOAD_CPU)),
    )?;
    let upstream_port = upstream.listener_port("upstream")?;

    let out = "callgrind.out";
    let mut prefix = procfs::pin_prefix(Some(procfs::PROXY_CPU));
    prefix.extend(
        [
            valgrind.display().to_string().as_str(),
            "--tool=callgrind",
            // V8 writes and rewrites its own code.
            "--smc-check=all-non-file",
            // Nothing is instrumented until the counting starts: startup under callgrind's
            // instrumentation would take minutes.
            "--instr-atstart=no",
            "--separate-threads=yes",
        ]
        .map(str::to_owned),
    );
    prefix.push(format!("--callgrind-out-file={}", dir.join(out).display()));
    let launch = Launch {
        prefix,
        ready_within: Duration::from_secs(600),
        ..crate::envoy::pinned(setup.envoy_bin, None)
    };
    progress("callgrind: starting Envoy under valgrind (a minute or more)");
    let proxy = crate::envoy::start(
        &dir,
        "proxy",
        &combined(setup, variants, upstream_port)?,
        &launch,
    )?;
    let mut targets = Vec::new();
    for variant in variants {
        let target = Target {
            port: proxy.listener_port(&variant.id)?,
            mtls: variant.mtls.then_some(setup.pki),
        };
        // A filter that failed to load on the worker would pass requests untouched: the same
        // tagging check as the timed runs proves each listener runs its filter.
        crate::measure::check_tags(setup, variant, &target)
            .with_context(|| format!("callgrind listener {}", variant.id))?;
        progress(&format!("callgrind: warm-up {}", variant.id));
        let warm = load::fixed_count(setup.oha, &target, settings.warmup)?;
        check(variant, &warm, settings.warmup)?;
        targets.push(target);
    }

    let mut counted: Vec<Counted> = variants
        .iter()
        .map(|v| Counted {
            variant: v.clone(),
            per_request: Vec::new(),
        })
        .collect();
    let pid = proxy.pid();
    let mut dump = 0;
    let n = variants.len();
    for round in 0..settings.rounds as usize {
        for k in 0..n {
            let i = (round + k) % n;
            let (Some(target), Some(slot)) = (targets.get(i), counted.get_mut(i)) else {
                continue;
            };
            progress(&format!(
                "callgrind: round {}/{} {}",
                round + 1,
                settings.rounds,
                slot.variant.id
            ));
            control(&callgrind_control, &["--zero"], pid)?;
            control(&callgrind_control, &["--instr=on"], pid)?;
            let outcome = load::fixed_count(setup.oha, target, settings.requests)?;
            control(&callgrind_control, &["--instr=off"], pid)?;
            control(&callgrind_control, &["--dump"], pid)?;
            dump += 1;
            check(&slot.variant, &outcome, settings.requests)?;
            let instructions = worker_instructions(&dir, out, dump)?;
            slot.per_request
                .push(instructions as f64 / f64::from(settings.requests));
        }
    }
    Ok(counted)
}

fn check(variant: &Variant, outcome: &load::Outcome, requests: u32) -> Result<()> {
    if outcome.ok != u64::from(requests) || outcome.errors != 0 {
        bail!(
            "callgrind {}: {} of {requests} requests got a 200 ({} errors)",
            variant.id,
            outcome.ok,
            outcome.errors
        );
    }
    Ok(())
}
