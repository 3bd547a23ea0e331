//! `up`, `down`, `verify`, `stats` and the hidden `supervise`: flags to a checked plan, then
//! the work in `crate::local`.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::cli::{StateArgs, StatsArgs, UpArgs, VerifyArgs};
use crate::local::envoy::Admin;
use crate::local::state::StateDir;
use crate::local::stats;
use crate::local::up::{self, UpRequest};
use crate::local::verify::{self, Gateway};
use crate::model::{Mesh, MeshInput, ServiceChoice};

pub fn up(args: UpArgs) -> Result<()> {
    let mesh = args.mesh.mesh()?;
    let request = UpRequest {
        gateway_port: args.gateway_port,
        mtls: args.mtls,
        detach: args.detach,
        state_dir: args.state.state_dir,
        envoy: args.envoy,
        wasm: args.wasm,
        service_bin: args.service_bin,
        fail_strategy: args.fail_strategy,
        plugin_config: args.plugin_config,
    };
    up::plan(&mesh, request)?.run()
}

pub fn down(args: StateArgs) -> Result<()> {
    up::down(&args.state_dir)
}

pub fn supervise(args: StateArgs) -> Result<()> {
    up::supervise(&args.state_dir)
}

pub fn verify(args: VerifyArgs) -> Result<()> {
    let (gateway, services) = match &args.gateway {
        Some(url) => (Gateway::parse(url)?, cluster_services(&args)?),
        None => {
            let layout = StateDir::new(&args.state.state_dir).read_layout()?;
            let names = layout.services.iter().map(|s| s.name.clone()).collect();
            (
                Gateway {
                    host: "127.0.0.1".into(),
                    port: layout.gateway.port,
                },
                names,
            )
        }
    };
    let report = verify::verify(&gateway, &services, Duration::from_millis(args.timeout_ms));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.matrix());
    }
    if !report.ok {
        let failed = report.pairs.iter().filter(|p| !p.ok).count();
        bail!("{failed} of {} pairs failed", report.pairs.len());
    }
    Ok(())
}

/// The services of a cluster mesh, from the same flags and file `render` reads.
fn cluster_services(args: &VerifyArgs) -> Result<Vec<String>> {
    let services = ServiceChoice::from_flags(args.services, args.names.as_deref());
    let file = match &args.file {
        Some(path) => MeshInput::from_file(path)?,
        None => MeshInput::default(),
    };
    let flags = MeshInput {
        services,
        ..MeshInput::default()
    };
    let mesh = Mesh::from_input(flags.over(file)).context("invalid mesh")?;
    Ok(mesh.services.into_iter().map(|s| s.name).collect())
}

pub fn stats(args: StatsArgs) -> Result<()> {
    let layout = StateDir::new(&args.state.state_dir).read_layout()?;
    let mut admins: Vec<Admin> = layout
        .services
        .iter()
        .map(|s| Admin(s.admin_port))
        .collect();
    admins.push(Admin(layout.gateway.admin_port));
    let rows = stats::collect(&admins).context("is the mesh running? (`deployer up`)")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", stats::matrices(&rows));
    }
    Ok(())
}
