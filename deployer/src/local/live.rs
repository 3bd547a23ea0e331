//! Live changes to a running local mesh: a new plan (shifted weights, a reloaded mesh file, a
//! new filter module) becomes a new generation of every proxy's xDS files, and the change is
//! confirmed by asking each proxy's admin endpoint which version it runs. A change that would
//! alter what a proxy started with (its listeners) cannot apply live, and says to restart.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::layout::{xds_dir, FilterState, Layout, MODULES};
use super::state::{write_atomic, StateDir};
use meshtally_envoy::admin::Admin;
use meshtally_envoy::bootstrap::{self, Delivery};
use meshtally_envoy::module;
use meshtally_envoy::xds;

/// How long a publication may take to show in every proxy.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// What a publication changed, to be confirmed in every proxy. Every route table of every
/// proxy carries each new version; a new module also shows in the sidecars' ECDS resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Routes,
    Module,
}

/// The one way a live change reaches a running local mesh, for `shift`, `reload` and the
/// supervisor's module watch alike: `edit` changes the saved plan, the result is published as a
/// new generation of every proxy's xDS files (and as the saved plan), and the new version is
/// confirmed in every proxy. `Unchanged` when `edit` says nothing changed.
pub fn publish(
    state: &StateDir,
    change: Change,
    edit: impl FnOnce(&mut Layout) -> Result<bool>,
) -> Result<Published> {
    let Some((layout, version)) = self::change(state, edit)? else {
        return Ok(Published::Unchanged);
    };
    let took = confirm(&layout, version, change)?;
    Ok(Published::Confirmed {
        proxies: layout.proxies().len(),
        layout: Box::new(layout),
        version,
        took,
    })
}

/// What one publication did.
#[derive(Debug)]
pub enum Published {
    /// Nothing to publish: the proxies already run what was asked.
    Unchanged,
    /// Every proxy runs `version`, `took` after it was written.
    Confirmed {
        layout: Box<Layout>,
        version: u64,
        proxies: usize,
        took: Duration,
    },
}

impl Published {
    /// One line for a terminal: what was published, and how long the proxies took to take it;
    /// `unchanged` when nothing was.
    pub fn line(&self, what: &str, unchanged: &str) -> String {
        match self {
            Published::Unchanged => unchanged.to_owned(),
            Published::Confirmed {
                version,
                proxies,
                took,
                ..
            } => format!(
                "{what}: config version {version} running in {proxies} proxies after {} ms",
                took.as_millis()
            ),
        }
    }
}

/// Applies `edit` to the saved plan and publishes the result as a new generation of every
/// proxy's xDS files (and as the saved plan); returns the plan and its version, or `None` when
/// `edit` says nothing changed. The state dir's xDS lock is held from reading the plan to
/// saving it, so concurrent changes (a `shift` while the supervisor reloads a module) take
/// turns and none is lost.
fn change(
    state: &StateDir,
    edit: impl FnOnce(&mut Layout) -> Result<bool>,
) -> Result<Option<(Layout, u64)>> {
    let lock_path = state.xds_lock_path();
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    let mut layout = state.read_layout()?;
    if !edit(&mut layout)? {
        return Ok(None);
    }
    let version = write_generation(state, &layout)?;
    drop(lock);
    Ok(Some((layout, version)))
}

/// Writes `layout` as a new generation of every proxy's xDS files (and as the saved plan) and
/// returns its version. The caller holds the xDS lock.
///
/// Make before break, as an xDS server orders its pushes: in each proxy's directory the
/// clusters are written before the routes (a route never names a cluster Envoy does not have
/// yet), and clusters that no route needs any more stay until every proxy runs the new routes;
/// only then does a second write of the cluster file remove them.
fn write_generation(state: &StateDir, layout: &Layout) -> Result<u64> {
    let mut splits = Vec::new();
    for (name, proxy) in layout.proxy_specs(&state.root) {
        let split = bootstrap::build(&proxy, Delivery::Files(&xds_dir(&state.root, &name)))?;
        let path = state.envoy_config(&name);
        let running: Value = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not JSON", path.display()))?;
        if running != split.bootstrap {
            bail!(
                "this change alters {name}'s listeners, which cannot change while it runs: restart the mesh (`{}`, then {})",
                state.cmd("down"),
                restart_hint(state, layout)
            );
        }
        splits.push((name, split.resources));
    }
    let version = current_version(state) + 1;
    let mut removes = false;
    let mut remove_unneeded = false;
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
    // Clusters no route needs go once every proxy that answers runs the new routes. A proxy
    // that does not answer (it died, or hangs) is not waited for: the supervisor restarts it
    // from these very files, so it comes back on this generation. One that answers but still
    // runs older routes keeps the old clusters in place (every proxy stays consistent), and
    // the change is saved before the error names it.
    let mut behind = None;
    if removes {
        match wait_for(layout, version, Change::Routes) {
            Ok(_) => remove_unneeded = true,
            Err(late) if late.all_silent() => remove_unneeded = true,
            Err(late) => behind = Some(late),
        }
        if remove_unneeded {
            for (name, resources) in &splits {
                xds::write_clusters(&xds_dir(&state.root, name), resources, version)?;
            }
        }
    }
    write_atomic(&state.xds_version_path(), version.to_string().as_bytes())?;
    write_atomic(&state.layout_path(), &serde_json::to_vec_pretty(layout)?)?;
    if let Some(late) = behind {
        bail!("{late}");
    }
    Ok(version)
}

/// The version of the xDS files last published (`up` writes the first).
pub fn current_version(state: &StateDir) -> u64 {
    std::fs::read_to_string(state.xds_version_path())
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(xds::FIRST_VERSION)
}

/// Waits until every proxy runs `version`; names the ones that do not, and why.
pub fn confirm(layout: &Layout, version: u64, change: Change) -> Result<Duration> {
    wait_for(layout, version, change).map_err(|late| anyhow::anyhow!("{late}"))
}

/// The proxies a publication did not reach in time: each with the versions it runs, or `None`
/// when its admin endpoint did not answer.
#[derive(Debug)]
pub struct Unconfirmed {
    version: u64,
    late: Vec<(String, Option<Vec<String>>)>,
    proxies: usize,
}

impl Unconfirmed {
    /// No late proxy answered: each died or hangs, and loads the files when it is back.
    fn all_silent(&self) -> bool {
        self.late.iter().all(|(_, runs)| runs.is_none())
    }
}

impl std::fmt::Display for Unconfirmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.version;
        let why: Vec<String> = self
            .late
            .iter()
            .map(|(name, runs)| match runs {
                None => format!(
                    "{name} does not answer (it died or hangs; restarted, it loads version {v})"
                ),
                Some(runs) => format!(
                    "{name} still runs version {} (its log in logs/ says why)",
                    runs.join("/")
                ),
            })
            .collect();
        write!(
            f,
            "version {v} did not reach {} of {} proxies within {} s: {}; every other proxy runs version {v}",
            self.late.len(),
            self.proxies,
            CONFIRM_TIMEOUT.as_secs(),
            why.join("; ")
        )
    }
}

/// Polls every proxy's admin endpoint until all run `version`.
fn wait_for(layout: &Layout, version: u64, change: Change) -> Result<Duration, Unconfirmed> {
    let begin = Instant::now();
    let want = version.to_string();
    let proxies = layout.proxies();
    let mut waiting: Vec<(String, u16, Option<Vec<String>>)> = proxies
        .iter()
        .map(|(name, port)| (name.clone(), *port, None))
        .collect();
    while !waiting.is_empty() {
        waiting.retain_mut(|(_, port, runs)| {
            let Ok(versions) = Admin(*port).config_versions() else {
                *runs = None;
                return true;
            };
            let filter_ok = change != Change::Module
                || versions.filter.is_none()
                || versions.filter.as_deref() == Some(&want);
            let routes_ok =
                !versions.routes.is_empty() && versions.routes.iter().all(|(_, v)| *v == want);
            let mut seen: Vec<String> = versions.routes.iter().map(|(_, v)| v.clone()).collect();
            seen.dedup();
            *runs = Some(seen);
            !(routes_ok && filter_ok)
        });
        if waiting.is_empty() {
            break;
        }
        if begin.elapsed() > CONFIRM_TIMEOUT {
            return Err(Unconfirmed {
                version,
                late: waiting
                    .into_iter()
                    .map(|(name, _, runs)| (name, runs))
                    .collect(),
                proxies: proxies.len(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(begin.elapsed())
}

/// Loads the module at `src` into every sidecar of the mesh in `state`: copies it under its
/// content address and publishes it, confirmed in every sidecar — or `Unchanged` when the
/// sidecars already run this very module.
pub fn reload_module(state: &StateDir, src: &Path) -> Result<Published> {
    publish(state, Change::Module, |layout| {
        if let FilterState::Skipped(why) | FilterState::DenyAll(why) = &layout.filter {
            bail!(
                "the sidecars started without the filter ({why}): a module cannot be loaded into them live; restart the mesh with `{}`, then the command that started it with `--wasm {}`: {}",
                state.cmd("down"),
                meshtally_envoy::shell::quote(&src.to_string_lossy()),
                restart_hint(state, layout)
            );
        }
        let installed = module::install(src, &state.root.join(MODULES))?;
        if layout.module_sha256.as_deref() == Some(installed.sha256.as_str()) {
            return Ok(false);
        }
        layout.module_sha256 = Some(installed.sha256);
        check_module(state, layout)?;
        Ok(true)
    })
}

/// Runs `envoy --mode validate` on a sidecar's complete config with the new module, which
/// loads it in a Wasm VM: a module Envoy would refuse is reported here and never published.
fn check_module(state: &StateDir, layout: &Layout) -> Result<()> {
    let Some((name, proxy)) = layout.proxy_specs(&state.root).into_iter().next() else {
        return Ok(());
    };
    let config = bootstrap::render(&proxy);
    let file = tempfile::Builder::new()
        .prefix(".check-")
        .suffix(".json")
        .tempfile_in(&state.root)
        .context("creating a file for envoy --mode validate")?;
    std::fs::write(file.path(), serde_json::to_vec(&config)?)?;
    meshtally_envoy::validate::validate(&layout.envoy, file.path())
        .with_context(|| format!("the new module in {name}: nothing was changed"))
}

/// `deployer shift` on the local mesh: the service's version weights in the saved plan, then a
/// new generation of every proxy's routes, confirmed in each (callers' sidecars and the gateway
/// route to the versions; every proxy takes the version).
pub fn shift(state: &StateDir, service: &str, weights: &[(String, u32)]) -> Result<Published> {
    super::observed::LocalReader::open(state)?;
    publish(state, Change::Routes, |layout| {
        let mesh_file = layout.mesh_file.clone();
        let started = layout.clone();
        let names: Vec<String> = layout.services.iter().map(|s| s.name.clone()).collect();
        let Some(s) = layout.services.iter_mut().find(|s| s.name == service) else {
            bail!(
                "no service {service} in this mesh (its services: {})",
                names.join(", ")
            );
        };
        let versions: Vec<String> = s.traffic.versions.iter().map(|v| v.name.clone()).collect();
        if let Some((unknown, _)) = weights.iter().find(|(v, _)| !versions.contains(v)) {
            let how = match &mesh_file {
                Some(file) => format!(
                    "add it to {} and restart the mesh (`{}`, then {})",
                    file.display(),
                    state.cmd("down"),
                    restart_hint(state, &started)
                ),
                // The demo: no mesh file to add it to.
                None => without_file(state, &started, service),
            };
            bail!(
                "{service} has no version {unknown} (its versions: {}); a new version needs new processes: {how}",
                versions.join(", "),
            );
        }
        let before = s.traffic.clone();
        for v in &mut s.traffic.versions {
            let weight = weights
                .iter()
                .find(|(n, _)| *n == v.name)
                .map_or(0, |(_, w)| *w);
            v.weight = Some(weight);
        }
        Ok(s.traffic != before)
    })
}

/// What to do about a new version on a mesh started without a mesh file (the demo): start it
/// from one that gives the service its versions, on the same ports. With a checkout around, the
/// hint names its `examples/canary.yaml` (service-a with v1 and v2) so it runs as printed.
fn without_file(state: &StateDir, layout: &Layout, service: &str) -> String {
    let detach = layout
        .up_command
        .as_ref()
        .is_some_and(|up| up.args.iter().any(|a| a == "--detach"));
    let ports = match layout.services.first() {
        Some(first) => format!(
            " --base-port {} --gateway-port {}",
            first.port, layout.gateway.port
        ),
        None => String::new(),
    };
    let up = |file: &str| {
        state.cmd(&format!(
            "up{} -f {file}{ports}",
            if detach { " --detach" } else { "" }
        ))
    };
    match meshtally_envoy::locate::Places::here().example("canary.yaml") {
        Some(example) => format!(
            "this mesh was started without a mesh file; start it from one that gives {service} \
             its versions, e.g. the example (`{}`, then `{}`)",
            state.cmd("down"),
            up(&meshtally_envoy::shell::quote(&example.to_string_lossy()))
        ),
        None => format!(
            "this mesh was started without a mesh file; write one that gives {service} its \
             versions (as examples/canary.yaml in meshtally's repository does) and start the \
             mesh from it (`{}`, then `{}`)",
            state.cmd("down"),
            up("FILE")
        ),
    }
}

/// The command that started the mesh, to paste to start it again (`up` saves it as typed), in
/// backticks; for a mesh saved before that, `up` with its mesh file.
fn restart_hint(state: &StateDir, layout: &Layout) -> String {
    match (&layout.up_command, &layout.mesh_file) {
        (Some(up), _) => format!("`{}`", up.hint()),
        (None, Some(file)) => format!(
            "`{}`",
            state.cmd(&format!(
                "up -f {}",
                meshtally_envoy::shell::quote(&file.to_string_lossy())
            ))
        ),
        (None, None) => format!("`{}`", state.cmd("up")),
    }
}

/// `deployer reload` of a mesh file: each service's traffic rules as the file now says them,
/// published live. Anything else the file changed since `up` read it (namespace, ports, mTLS,
/// fail strategy, image, …) and services or versions other than the running ones are refused in
/// one line saying to restart; a file that no longer parses or checks is refused with its
/// one-line error.
pub fn reload_rules(state: &StateDir, file: &Path) -> Result<Published> {
    let mesh = crate::meshfile::merged(meshtally_mesh::model::MeshInput::default(), Some(file))?;
    let restart = |what: String, hint: &str| {
        anyhow::anyhow!(
            "{}: {what}, which cannot change while the mesh runs: restart it (`{}`, then {hint})",
            file.display(),
            state.cmd("down"),
        )
    };
    publish(state, Change::Routes, |layout| {
        let hint = restart_hint(state, layout);
        if let Some(what) = layout
            .file_mesh
            .as_ref()
            .and_then(|started| meshtally_mesh::model::needs_restart(started, &mesh))
        {
            return Err(restart(what, &hint));
        }
        let running: Vec<&str> = layout.services.iter().map(|s| s.name.as_str()).collect();
        let wanted: Vec<&str> = mesh.services.iter().map(|s| s.name.as_str()).collect();
        if running != wanted {
            return Err(restart(
                format!(
                    "the services ({}) are not the running mesh's ({})",
                    wanted.join(", "),
                    running.join(", ")
                ),
                &hint,
            ));
        }
        let mut changed = false;
        for (local, model) in layout.services.iter_mut().zip(&mesh.services) {
            let versions = |t: &meshtally_mesh::model::Traffic| {
                t.versions
                    .iter()
                    .map(|v| (v.name.clone(), v.app_env()))
                    .collect::<Vec<_>>()
            };
            if versions(&local.traffic) != versions(&model.traffic) {
                let names = |t: &meshtally_mesh::model::Traffic| -> String {
                    t.versions
                        .iter()
                        .map(|v| v.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(restart(
                    format!(
                        "{}'s versions ({}) are not the running ones ({}) or their apps changed",
                        local.name,
                        names(&model.traffic),
                        names(&local.traffic)
                    ),
                    &hint,
                ));
            }
            changed |= local.traffic != model.traffic;
            local.traffic = model.traffic.clone();
        }
        Ok(changed)
    })
}
