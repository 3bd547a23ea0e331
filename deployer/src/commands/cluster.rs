//! `apply`, `delete` and `push`: flags to a checked plan, then the work in `crate::cluster`.
//! (`verify --cluster` and the other readers are in `commands::observe`.)

use crate::output::{out, print};
use std::time::Duration;

use anyhow::Result;

use crate::cli::{ApplyArgs, DeleteArgs, PushArgs};
use crate::cluster::apply;
use crate::cluster::delete;
use crate::cluster::kubectl::Kubectl;
use crate::cluster::push::{self, PushRequest};
use crate::cluster::service_push::{self, ServicePushRequest};
use crate::commands::render::RenderPlan;
use crate::commands::target::namespace;

pub fn apply(args: ApplyArgs) -> Result<()> {
    let mesh = args.mesh.mesh()?;
    let delivery = crate::meshfile::delivery(&mesh.wasm)?;
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
    let options = apply::ApplyOptions {
        timeout: Duration::from_secs(args.timeout),
        force_conflicts: args.force_conflicts,
    };
    print(&apply::plan(kubectl, mesh, delivery, options)?.run()?)?;
    Ok(())
}

pub fn delete(args: DeleteArgs) -> Result<()> {
    let namespace = namespace(args.namespace, args.file.as_deref())?;
    let timeout = Duration::from_secs(args.timeout);
    if args.dry_run {
        // Printed as they would run, with the kubectl given; only `get` calls are made, to say
        // what would become of the namespace.
        let kubectl = Kubectl {
            bin: args.cluster.kubectl.unwrap_or_else(|| "kubectl".into()),
            context: args.cluster.context,
        };
        out!(
            "{}",
            delete::dry_run(&kubectl, &namespace, timeout, args.delete_namespace)
        )?;
        return Ok(());
    }
    let kubectl = Kubectl::find(args.cluster.kubectl.as_deref(), args.cluster.context)?;
    print(&delete::plan(kubectl, namespace, timeout, args.delete_namespace)?.run()?)?;
    Ok(())
}

pub fn push(args: PushArgs) -> Result<()> {
    let report = match (args.image, args.service_image) {
        (_, Some(image)) => service_push::plan(ServicePushRequest {
            image,
            binary: args.service_bin,
            insecure: args.insecure,
            pull_registry: args.pull_registry,
        })?
        .run(),
        (Some(image), None) => push::plan(PushRequest {
            image,
            wasm: args.wasm,
            insecure: args.insecure,
            pull_registry: args.pull_registry,
        })?
        .run(),
        // clap's group makes one of them required.
        (None, None) => anyhow::bail!("push: give --image (the filter) or --service-image"),
    }?;
    print(&report)?;
    Ok(())
}
