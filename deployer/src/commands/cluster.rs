//! `apply`, `delete` and `push`: flags to a checked plan, then the work in `crate::cluster`.
//! (`verify --kubectl` and `stats --kubectl` are in `commands::observe`.)

use std::time::Duration;

use anyhow::Result;

use crate::cli::{ApplyArgs, DeleteArgs, PushArgs};
use crate::cluster::apply;
use crate::cluster::delete;
use crate::cluster::kubectl::Kubectl;
use crate::cluster::push::{self, PushRequest};
use crate::commands::observe::namespace;
use crate::commands::render::RenderPlan;

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
