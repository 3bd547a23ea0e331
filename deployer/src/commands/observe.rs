//! `verify`, `stats` and `top`: pick the mesh the flags name (the local state dir, a gateway url, or a
//! cluster through kubectl), then run the one check or count in `crate::observe` on it.

use std::time::Duration;

use anyhow::{bail, Result};

use std::io::IsTerminal as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context as _;

use crate::cli::{
    ClusterMeshArgs, EdgesArgs, SidecarArgs, StatsArgs, TapArgs, TopArgs, VerifyArgs,
};
use crate::cluster::kubectl::Kubectl;
use crate::cluster::sidecars::{ClusterGateway, ClusterSidecars};
use crate::local::observed::LocalMesh;
use crate::observe::edges;
use crate::observe::tap::{self, Tapped};
use crate::observe::top::{self, Window};
use crate::observe::{stats, verify, Counted, Gateway, Reachable};
use crate::output::print;
use meshtally_mesh::model::{MeshInput, ServiceChoice};

/// A cluster mesh reached through a gateway url the user gave: the services come from the same
/// flags and file `render` reads.
struct GivenGateway {
    gateway: Gateway,
    services: Vec<String>,
}

impl Reachable for GivenGateway {
    fn gateway(&self) -> Result<Gateway> {
        Ok(self.gateway.clone())
    }
    fn services(&self) -> Result<Vec<String>> {
        Ok(self.services.clone())
    }
}

pub fn verify(mut args: VerifyArgs) -> Result<()> {
    let mesh: Box<dyn Reachable> = if let Some(url) = &args.gateway {
        Box::new(GivenGateway {
            gateway: Gateway::parse(url)?,
            services: cluster_services(&args)?,
        })
    } else if let Some(kubectl) = args.kubectl.take() {
        let services = cluster_services(&args)?;
        let kubectl = Kubectl::find(kubectl.as_deref(), args.context.take())?;
        Box::new(ClusterGateway::open(&kubectl, services)?)
    } else {
        Box::new(LocalMesh::open(&args.state.find())?)
    };
    let gateway = mesh.gateway()?;
    let services = mesh.services()?;
    let report = verify::verify(&gateway, &services, Duration::from_millis(args.timeout_ms));
    drop(mesh);
    if args.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        print(&report.matrix())?;
    }
    if !report.ok {
        let failed = report.pairs.iter().filter(|p| !p.ok).count();
        bail!("{failed} of {} pairs failed", report.pairs.len());
    }
    Ok(())
}

/// The sidecars the flags name: a cluster's through kubectl, or the local mesh's.
fn sidecars(from: SidecarArgs) -> Result<Box<dyn Counted>> {
    Ok(match open(from)? {
        Either::Cluster(c) => Box::new(c),
        Either::Local(l) => l,
    })
}

/// The access logs the flags name: a cluster's sidecars' through kubectl, or the local mesh's.
fn logs(from: SidecarArgs) -> Result<Box<dyn Tapped>> {
    Ok(match open(from)? {
        Either::Cluster(c) => Box::new(c),
        Either::Local(l) => l,
    })
}

enum Either {
    Cluster(ClusterSidecars),
    /// Boxed: a local mesh carries its whole plan.
    Local(Box<LocalMesh>),
}

fn open(from: SidecarArgs) -> Result<Either> {
    Ok(
        if let Some((kubectl, namespace)) = cluster_mesh(from.cluster)? {
            Either::Cluster(ClusterSidecars::open(kubectl, namespace)?)
        } else {
            Either::Local(Box::new(LocalMesh::open(&from.state.find())?))
        },
    )
}

pub fn stats(args: StatsArgs) -> Result<()> {
    let mesh = sidecars(args.from)?;
    let rows = stats::merge(mesh.counters()?);
    if args.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
    } else {
        print(&stats::matrices(&rows))?;
    }
    Ok(())
}

pub fn top(args: TopArgs) -> Result<()> {
    let mesh = sidecars(args.from)?;
    let redraw = args.watch && !args.json && std::io::stdout().is_terminal();
    let mut before = top::read(&*mesh)?;
    loop {
        if !redraw {
            eprintln!("counting calls for {:.1} s…", args.window.as_secs_f64());
        }
        std::thread::sleep(args.window);
        let after = top::read(&*mesh)?;
        let window = Window::between(&before, &after);
        let text = match (args.json, args.watch) {
            (true, false) => format!("{}\n", serde_json::to_string_pretty(&window.edges)?),
            (true, true) => format!("{}\n", serde_json::to_string(&window.edges)?),
            // Home and clear, then the tables: a terminal shows the newest window in place.
            (false, _) if redraw => format!("\x1b[H\x1b[2J{}", window.tables()),
            (false, _) => window.tables(),
        };
        print(&text)?;
        if !args.watch {
            return Ok(());
        }
        before = after;
    }
}

pub fn edges(args: EdgesArgs) -> Result<()> {
    let mesh = logs(args.from)?;
    let mut gathered = edges::Edges::default();
    mesh.history(&mut |line| {
        gathered.add(line);
        Ok(())
    })?;
    let rows = gathered.rows();
    if args.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
    } else {
        print(&edges::table(&rows))?;
    }
    Ok(())
}

pub fn tap(args: TapArgs) -> Result<()> {
    let filter = tap::Filter {
        from: args.from,
        to: args.to,
        status: args
            .status
            .as_deref()
            .map(tap::StatusMatch::parse)
            .transpose()?,
    };
    let mesh = logs(args.mesh)?;
    // Ctrl-C and SIGTERM end the tap after one last read; the flag is also how a failed write
    // (a closed pipe) stops it.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }
    // stdout is line-buffered: each tapped line reaches a pipe at once, and a closed pipe is
    // seen at the next line.
    tap::run(
        &*mesh,
        &filter,
        args.json,
        &stop,
        &mut std::io::stdout().lock(),
    )
}

/// The services of a cluster mesh, from the same flags and file `render` reads.
fn cluster_services(args: &VerifyArgs) -> Result<Vec<String>> {
    let flags = MeshInput {
        services: ServiceChoice::from_flags(args.services, args.names.as_deref()),
        ..MeshInput::default()
    };
    Ok(crate::meshfile::merged(flags, args.file.as_deref())?
        .services
        .into_iter()
        .map(|s| s.name)
        .collect())
}

/// kubectl and the mesh's namespace when `--kubectl` was given; `None` for the local mesh.
pub(crate) fn cluster_mesh(args: ClusterMeshArgs) -> Result<Option<(Kubectl, String)>> {
    let Some(kubectl) = args.kubectl else {
        return Ok(None);
    };
    let namespace = namespace(args.namespace, args.file.as_deref())?;
    let kubectl = Kubectl::find(kubectl.as_deref(), args.context)?;
    Ok(Some((kubectl, namespace)))
}

/// The mesh's namespace from `--namespace` over a mesh file's, checked like `render` checks it.
pub(crate) fn namespace(flag: Option<String>, file: Option<&std::path::Path>) -> Result<String> {
    let flags = MeshInput {
        namespace: flag,
        ..MeshInput::default()
    };
    Ok(crate::meshfile::merged(flags, file)?.namespace)
}
