//! Live changes to a running local mesh: a new plan (shifted weights, a reloaded mesh file, a
//! new filter module) becomes a new generation of every proxy's xDS files, and the change is
//! confirmed by asking each proxy's admin endpoint which version it runs. A change that would
//! alter what a proxy started with (its listeners) cannot apply live, and says to restart.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::envoy::Admin;
use super::layout::{xds_dir, FilterState, Layout, MODULES};
use super::module;
use super::state::{write_atomic, StateDir};
use super::xds;

/// How long a publication may take to show in every proxy.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// What a publication changed, to be confirmed in every proxy. Every route table of every
/// proxy carries each new version; a new module also shows in the sidecars' ECDS resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Routes,
    Module,
}

/// Writes `layout` as a new generation of every proxy's xDS files (and as the saved plan) and
/// returns its version. Holds the state dir's xDS lock, so concurrent publishers take turns.
///
/// Make before break, as an xDS server orders its pushes: in each proxy's directory the
/// clusters are written before the routes (a route never names a cluster Envoy does not have
/// yet), and clusters that no route needs any more stay until every proxy runs the new routes;
/// only then does a second write of the cluster file remove them.
pub fn publish(state: &StateDir, layout: &Layout) -> Result<u64> {
    let lock_path = state.xds_lock_path();
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    let mut splits = Vec::new();
    for (name, config) in layout.bootstraps(&state.root) {
        let split = xds::split(&config, &xds_dir(&state.root, &name))?;
        let path = state.envoy_config(&name);
        let running: Value = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not JSON", path.display()))?;
        if running != split.bootstrap {
            bail!(
                "this change alters {name}'s listeners, which cannot change while it runs: restart the mesh (`deployer down{flag}`, then `deployer up{flag}` with the new settings)",
                flag = state.flag()
            );
        }
        splits.push((name, split.resources));
    }
    let version = current_version(state) + 1;
    let mut removes = false;
    for (name, resources) in &splits {
        let dir = xds_dir(&state.root, name);
        let mut first = resources.clone();
        let kept = xds::current_clusters(&dir)?
            .into_iter()
            .filter(|old| !resources.clusters.iter().any(|c| c["name"] == old["name"]));
        let before = first.clusters.len();
        first.clusters.extend(kept);
        removes |= first.clusters.len() > before;
        xds::write(&dir, &first, version)?;
    }
    if removes {
        confirm(layout, version, Change::Routes)?;
        for (name, resources) in &splits {
            xds::write_clusters(&xds_dir(&state.root, name), resources, version)?;
        }
    }
    write_atomic(&state.xds_version_path(), version.to_string().as_bytes())?;
    write_atomic(&state.layout_path(), &serde_json::to_vec_pretty(layout)?)?;
    drop(lock);
    Ok(version)
}

/// The version of the xDS files last published (`up` writes the first).
pub fn current_version(state: &StateDir) -> u64 {
    std::fs::read_to_string(state.xds_version_path())
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(xds::FIRST_VERSION)
}

/// Waits until every proxy runs `version` (for `change`); names the ones that do not.
pub fn confirm(layout: &Layout, version: u64, change: Change) -> Result<Duration> {
    let begin = Instant::now();
    let want = version.to_string();
    let mut waiting = layout.proxies();
    while !waiting.is_empty() {
        waiting.retain(|(_, port)| {
            let Ok(versions) = Admin(*port).config_versions() else {
                return true;
            };
            let filter_ok = change != Change::Module
                || versions.filter.is_none()
                || versions.filter.as_deref() == Some(&want);
            let routes_ok =
                !versions.routes.is_empty() && versions.routes.iter().all(|(_, v)| *v == want);
            !(routes_ok && filter_ok)
        });
        if waiting.is_empty() {
            break;
        }
        if begin.elapsed() > CONFIRM_TIMEOUT {
            let names: Vec<&str> = waiting.iter().map(|(n, _)| n.as_str()).collect();
            bail!(
                "version {version} did not reach {} within {} s: its log in logs/ says why",
                names.join(", "),
                CONFIRM_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(begin.elapsed())
}

/// Loads the module at `src` into every sidecar of the mesh in `state`: copies it under its
/// content address, publishes, and returns the plan and version published — or `None` when the
/// sidecars already run this very module.
pub fn reload_module(state: &StateDir, src: &Path) -> Result<Option<(Layout, u64)>> {
    let mut layout = state.read_layout()?;
    if let FilterState::Skipped(why) | FilterState::DenyAll(why) = &layout.filter {
        bail!(
            "the sidecars started without the filter ({why}): a module cannot be loaded into them live; restart the mesh with `deployer down{flag}`, then `deployer up{flag} --wasm {}`",
            crate::shell::quote(&src.to_string_lossy()),
            flag = state.flag()
        );
    }
    let installed = module::install(src, &state.root.join(MODULES))?;
    if layout.module.as_deref() == Some(installed.sha256.as_str()) {
        return Ok(None);
    }
    layout.module = Some(installed.sha256);
    check_module(state, &layout)?;
    let version = publish(state, &layout)?;
    Ok(Some((layout, version)))
}

/// Runs `envoy --mode validate` on a sidecar's complete config with the new module, which
/// loads it in a Wasm VM: a module Envoy would refuse is reported here and never published.
fn check_module(state: &StateDir, layout: &Layout) -> Result<()> {
    let Some((name, config)) = layout.bootstraps(&state.root).into_iter().next() else {
        return Ok(());
    };
    let file = tempfile::Builder::new()
        .prefix(".check-")
        .suffix(".json")
        .tempfile_in(&state.root)
        .context("creating a file for envoy --mode validate")?;
    std::fs::write(file.path(), serde_json::to_vec(&config)?)?;
    super::envoy::validate(&layout.envoy, file.path())
        .with_context(|| format!("the new module in {name}: nothing was changed"))
}

/// One line for a terminal: what was published, and how long the proxies took to take it.
pub fn report(what: &str, layout: &Layout, version: u64, took: Duration) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{what}: config version {version} running in {} proxies after {} ms",
        layout.proxies().len(),
        took.as_millis()
    );
}
