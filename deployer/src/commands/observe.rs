//! `verify` and `stats`: pick the mesh the flags name (the local state dir, a gateway url, or a
//! cluster through kubectl), then run the one check or count in `crate::observe` on it.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::cli::{StatsArgs, VerifyArgs};
use crate::cluster::kubectl::Kubectl;
use crate::cluster::sidecars::{ClusterGateway, ClusterSidecars};
use crate::local::observed::LocalMesh;
use crate::local::state::StateDir;
use crate::model::{MeshInput, ServiceChoice};
use crate::observe::{stats, verify, Counted, Gateway, Reachable};
use crate::output::print;

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
        Box::new(LocalMesh::open(&StateDir::new(&args.state.state_dir))?)
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

pub fn stats(mut args: StatsArgs) -> Result<()> {
    let mesh: Box<dyn Counted> = if let Some(kubectl) = args.kubectl.take() {
        let namespace = namespace(args.namespace.take(), args.file.as_deref())?;
        let kubectl = Kubectl::find(kubectl.as_deref(), args.context.take())?;
        Box::new(ClusterSidecars::open(kubectl, namespace)?)
    } else {
        Box::new(LocalMesh::open(&StateDir::new(&args.state.state_dir))?)
    };
    let rows = stats::merge(mesh.counters()?);
    if args.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
    } else {
        print(&stats::matrices(&rows))?;
    }
    Ok(())
}

/// The services of a cluster mesh, from the same flags and file `render` reads.
fn cluster_services(args: &VerifyArgs) -> Result<Vec<String>> {
    let flags = MeshInput {
        services: ServiceChoice::from_flags(args.services, args.names.as_deref()),
        ..MeshInput::default()
    };
    Ok(crate::cli::merged(flags, args.file.as_deref())?
        .services
        .into_iter()
        .map(|s| s.name)
        .collect())
}

/// The mesh's namespace from `--namespace` over a mesh file's, checked like `render` checks it.
pub(crate) fn namespace(flag: Option<String>, file: Option<&std::path::Path>) -> Result<String> {
    let flags = MeshInput {
        namespace: flag,
        ..MeshInput::default()
    };
    Ok(crate::cli::merged(flags, file)?.namespace)
}
