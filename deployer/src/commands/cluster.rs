//! `apply`, `delete`, `push`, and the `--kubectl` flavours of `verify` and `stats`: flags to a
//! checked plan, then the work in `crate::cluster`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::cli::{ApplyArgs, DeleteArgs, PushArgs, StatsArgs, VerifyArgs};
use crate::cluster::apply::{self, INGRESS_NAMESPACE, INGRESS_SERVICE};
use crate::cluster::kubectl::Kubectl;
use crate::cluster::portforward::PortForward;
use crate::cluster::push::{self, PushRequest};
use crate::cluster::{checks, delete, sidecars};
use crate::commands::{local, render::RenderPlan};
use crate::local::stats;
use crate::model::{Mesh, MeshInput};

pub fn apply(args: ApplyArgs) -> Result<()> {
    let mesh = args.mesh.mesh()?;
    let delivery = mesh.wasm.load()?;
    if args.dry_run {
        // Literally `render` to stdout: the same renderer and writer, and not one kubectl call.
        return RenderPlan {
            mesh,
            delivery,
            output: None,
        }
        .run();
    }
    let kubectl = Kubectl::find(args.cluster.kubectl.as_deref(), args.cluster.context)?;
    apply::plan(kubectl, mesh, delivery, Duration::from_secs(args.timeout))?.run()
}

pub fn delete(args: DeleteArgs) -> Result<()> {
    let namespace = namespace(args.namespace, args.file.as_deref())?;
    let timeout = Duration::from_secs(args.timeout);
    if args.dry_run {
        // Printed as they would run, with the kubectl given; nothing is looked up or run.
        let kubectl = Kubectl {
            bin: args.cluster.kubectl.unwrap_or_else(|| "kubectl".into()),
            context: args.cluster.context,
        };
        print!("{}", delete::dry_run(&kubectl, &namespace, timeout));
        return Ok(());
    }
    let kubectl = Kubectl::find(args.cluster.kubectl.as_deref(), args.cluster.context)?;
    delete::plan(kubectl, namespace, timeout)?.run()
}

pub fn push(args: PushArgs) -> Result<()> {
    push::plan(PushRequest {
        image: args.image,
        wasm: args.wasm,
        insecure: args.insecure,
        pull_registry: args.pull_registry,
    })?
    .run()
}

/// `verify --kubectl`: the local verify's checks, through a port-forward to the ingress
/// gateway that lives only as long as they run.
pub fn verify(mut args: VerifyArgs) -> Result<()> {
    let kubectl = Kubectl::find(
        args.kubectl.take().flatten().as_deref(),
        args.context.take(),
    )?;
    checks::reachable(&kubectl)?;
    let forward = PortForward::start(
        &kubectl,
        INGRESS_NAMESPACE,
        &format!("svc/{INGRESS_SERVICE}"),
        80,
    )
    .context("cannot port-forward to Istio's ingress gateway")?;
    eprintln!(
        "port-forwarding 127.0.0.1:{} to {INGRESS_NAMESPACE}/{INGRESS_SERVICE}:80",
        forward.port
    );
    args.gateway = Some(format!("http://127.0.0.1:{}", forward.port));
    let result = local::verify(args);
    drop(forward);
    result
}

/// `stats --kubectl`: the local stats' matrices, from the sidecars of the cluster's pods.
pub fn stats(mut args: StatsArgs) -> Result<()> {
    let namespace = namespace(args.namespace.take(), args.file.as_deref())?;
    let kubectl = Kubectl::find(
        args.kubectl.take().flatten().as_deref(),
        args.context.take(),
    )?;
    checks::reachable(&kubectl)?;
    let pods = sidecars::pods(&kubectl, &namespace)?;
    eprintln!("reading {} sidecars in {namespace}…", pods.len());
    let rows = sidecars::collect(&kubectl, &namespace, &pods)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", stats::matrices(&rows));
    }
    Ok(())
}

/// The mesh's namespace from `--namespace` over a mesh file's, checked like `render` checks it.
fn namespace(flag: Option<String>, file: Option<&Path>) -> Result<String> {
    let file = match file {
        Some(path) => MeshInput::from_file(path)?,
        None => MeshInput::default(),
    };
    let flags = MeshInput {
        namespace: flag,
        ..MeshInput::default()
    };
    let mesh = Mesh::from_input(flags.over(file)).context("invalid mesh")?;
    Ok(mesh.namespace)
}
