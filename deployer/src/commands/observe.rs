//! `verify`, `stats` and `top`: pick the mesh the flags name (the local state dir, a gateway url, or a
//! cluster through kubectl), then run the one check or count in `crate::observe` on it.

use std::time::Duration;

use anyhow::{bail, Result};

use std::io::IsTerminal as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context as _;

use super::target::{services, Target};
use crate::cli::{EdgesArgs, StatsArgs, TapArgs, TargetArgs, TopArgs, TraceArgs, VerifyArgs};
use crate::cluster::sidecars::{ClusterGateway, ClusterSidecars};
use crate::local::observed::LocalReader;
use crate::observe::edges;
use crate::observe::tap::{self, Tapped};
use crate::observe::top::{self, Window};
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

pub fn verify(args: VerifyArgs) -> Result<()> {
    let mesh: Box<dyn Reachable> = if let Some(url) = &args.gateway {
        if args.target.namespace.is_some() {
            bail!("--namespace names a cluster's mesh through kubectl: with --gateway, the services come from --services/--names/--file");
        }
        Box::new(GivenGateway {
            gateway: Gateway::parse(url)?,
            services: services(
                args.services,
                args.names.as_deref(),
                args.target.file.as_deref(),
            )?,
        })
    } else {
        match Target::resolve(args.target)? {
            Target::Cluster { kubectl, file, .. } => {
                let services = services(args.services, args.names.as_deref(), file.as_deref())?;
                Box::new(ClusterGateway::open(&kubectl, services)?)
            }
            Target::Local(state) => {
                if args.services.is_some() || args.names.is_some() {
                    bail!("--services and --names name a cluster's services: add --cluster or --gateway URL (the local mesh knows its own)");
                }
                Box::new(LocalReader::open(&state)?)
            }
        }
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
fn sidecars(target: TargetArgs) -> Result<Box<dyn Counted>> {
    Ok(match Target::resolve(target)? {
        Target::Cluster {
            kubectl, namespace, ..
        } => Box::new(ClusterSidecars::open(kubectl, namespace)?),
        Target::Local(state) => Box::new(LocalReader::open(&state)?),
    })
}

/// The access logs the flags name: a cluster's sidecars' through kubectl, or the local mesh's.
fn logs(target: TargetArgs) -> Result<Box<dyn Tapped>> {
    Ok(match Target::resolve(target)? {
        Target::Cluster {
            kubectl, namespace, ..
        } => Box::new(ClusterSidecars::open(kubectl, namespace)?),
        Target::Local(state) => Box::new(LocalReader::open(&state)?),
    })
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

pub fn trace(args: TraceArgs) -> Result<()> {
    use crate::observe::trace::{self, Query, Zipkin};
    let status = args
        .status
        .as_deref()
        .map(tap::StatusMatch::parse)
        .transpose()?;
    let zipkin = match &args.url {
        Some(url) => Zipkin {
            url: url.clone(),
            namespace: args
                .namespace
                .clone()
                .unwrap_or_else(|| meshtally_mesh::model::DEFAULT_NAMESPACE.to_owned()),
        },
        None => {
            let state = args.state.find();
            let layout = state.read_layout().with_context(|| {
                format!("no local mesh at {} (`deployer up --tracing` starts one; a cluster's Zipkin: --url)", state.root.display())
            })?;
            let Some(t) = &layout.tracing else {
                bail!(
                    "the mesh at {} was started without --tracing: `{}` traces it (after `{}`)",
                    state.root.display(),
                    state.cmd("up --tracing"),
                    state.cmd("down")
                );
            };
            if let Some(s) = &args.service {
                let known = layout.service(s).is_some() || s == "istio-ingressgateway";
                if !known {
                    let names: Vec<&str> =
                        layout.services.iter().map(|s| s.name.as_str()).collect();
                    bail!(
                        "--service {s}: not a service of this mesh ({})",
                        names.join(", ")
                    );
                }
            }
            Zipkin {
                url: t.url(),
                namespace: layout.namespace.clone(),
            }
        }
    };
    if let Some(id) = &args.id {
        let t = zipkin.trace(id)?;
        print(&if args.json {
            format!("{}\n", serde_json::to_string_pretty(&t)?)
        } else {
            trace::render(std::slice::from_ref(&t))
        })?;
        return Ok(());
    }
    let traces = zipkin.traces(&Query {
        service: args.service.clone(),
        last: args.last,
        min_duration: args.min_duration,
        status,
        tag: None,
    })?;
    print(&if args.json {
        format!("{}\n", serde_json::to_string_pretty(&traces)?)
    } else {
        trace::render(&traces)
    })?;
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
