//! `dashboard` and `graph`: open the mesh the flags name (the local state dir, or a cluster
//! through kubectl) as a [`MeshReader`], then serve it as a live page or print it once.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::target::Target;
use crate::cli::{DashboardArgs, GraphArgs, TargetArgs};
use crate::cluster::kubectl::Kubectl;
use crate::cluster::sidecars::ClusterSidecars;
use crate::dashboard::export;
use crate::dashboard::feed;
use crate::dashboard::graph::{self as map, Graph, Owner};
use crate::dashboard::reader::MeshReader;
use crate::dashboard::server::{self, Feed, TapQuery};
use crate::local::layout::{sidecar_name, Layout, GATEWAY};
use crate::local::observed::LocalReader;
use crate::local::state::StateDir;
use crate::local::status;
use crate::observe::tap::{Filter, Tapped as _};
use crate::observe::{Counted, Reachable as _};
use crate::output::outln;
use meshtally_mesh::render::security::INGRESS_SERVICE_ACCOUNT;

/// How many tap lines a click shows.
const TAP_LINES: usize = 8;

/// The caller name the gateway's calls carry, on a cluster and locally alike: the callee's
/// filter names a caller by its certificate, the gateway's service account.
const GATEWAY_CALLER: &str = INGRESS_SERVICE_ACCOUNT;

/// The mesh to read: what it is called, its reader, and where its tap lines come from.
struct Opened {
    what: String,
    reader: MeshReader,
    state_dir: Option<PathBuf>,
}

fn open(from: TargetArgs, window: std::time::Duration) -> Result<Opened> {
    let state = match Target::resolve(from)? {
        Target::Local(state) => state,
        Target::Cluster {
            kubectl, namespace, ..
        } => return Ok(open_cluster(kubectl, namespace, window)),
    };
    let hint = state.cmd("verify");
    let what = format!("the local mesh in {}", state.root.display());
    let state_dir = Some(state.root.clone());
    let checked = state.clone();
    // `deployer status`'s checks (pid alive and this mesh's, health URL answering): a node
    // whose app was killed is seen as such before its edges have a window of failures.
    let probe = move || {
        let layout = checked.read_layout()?;
        let status = status::read(&checked)?;
        Ok(map::down(&status.processes, &owners(&layout)))
    };
    let open = move || {
        let mesh = LocalReader::open(&state)?;
        let services = mesh.services()?;
        Ok((Box::new(mesh) as Box<dyn Counted + Send>, services))
    };
    Ok(Opened {
        what,
        reader: MeshReader::new(Box::new(open), Some(GATEWAY_CALLER.into()), window, hint)
            .with_probe(Box::new(probe)),
        state_dir,
    })
}

/// A cluster's mesh, read through kubectl.
fn open_cluster(kubectl: Kubectl, namespace: String, window: std::time::Duration) -> Opened {
    let what = format!("namespace {namespace} through {}", kubectl.bin.display());
    let hint = verify_hint(&kubectl, &namespace);
    let open = move || {
        let mesh = ClusterSidecars::open(kubectl.clone(), namespace.clone())?;
        Ok((Box::new(mesh) as Box<dyn Counted + Send>, Vec::new()))
    };
    let reader = MeshReader::new(Box::new(open), Some(GATEWAY_CALLER.into()), window, hint);
    Opened {
        what,
        reader,
        state_dir: None,
    }
}

/// The `verify` that checks the same cluster mesh, as typed.
fn verify_hint(kubectl: &Kubectl, namespace: &str) -> String {
    let mut args = vec!["verify".to_owned(), "--cluster".to_owned()];
    if let Some(context) = &kubectl.context {
        args.extend(["--context".to_owned(), context.clone()]);
    }
    if kubectl.bin.file_name() != Some("kubectl".as_ref()) {
        args.extend([
            "--kubectl".to_owned(),
            kubectl.bin.to_string_lossy().into_owned(),
        ]);
    }
    args.extend(["--namespace".to_owned(), namespace.to_owned()]);
    meshtally_envoy::shell::shell_line("deployer", &args)
}

/// The node each local process belongs to: an instance's app and sidecar to its service and
/// version, the gateway's proxy to the gateway's node (named by its callers' name for it).
fn owners(layout: &Layout) -> Vec<Owner> {
    let mut owners = Vec::new();
    for s in &layout.services {
        for i in s.instances() {
            let version = Some(i.version.clone());
            owners.push((sidecar_name(&i.name), s.name.clone(), version.clone()));
            owners.push((i.name, s.name.clone(), version));
        }
    }
    owners.push((GATEWAY.to_owned(), GATEWAY_CALLER.to_owned(), None));
    owners
}

pub fn dashboard(args: DashboardArgs) -> Result<()> {
    let opened = open(args.from, args.window)?;
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .with_context(|| format!("cannot listen on 127.0.0.1:{} (pass --port)", args.port))?;
    let url = format!("http://127.0.0.1:{}/", listener.local_addr()?.port());
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }
    let feed = Arc::new(Feed::default());
    let reading = feed::spawn(Box::new(opened.reader), feed.clone(), stop.clone());
    let state_dir = opened.state_dir;
    let traces_dir = state_dir.clone();
    let tap = Arc::new(move |q: &TapQuery| tap_lines(state_dir.as_deref(), q));
    let traces = Arc::new(move |q: &TapQuery| recent_traces(traces_dir.as_deref(), q));
    outln!("dashboard of {}: {url}\nCtrl-C stops it.", opened.what)?;
    let served = server::serve(listener, feed, tap, traces, stop.clone());
    stop.store(true, Ordering::SeqCst);
    let read = reading
        .join()
        .map_err(|_| anyhow::anyhow!("the reader thread panicked"))?;
    served.and(read)
}

pub fn graph(args: GraphArgs) -> Result<()> {
    let mut reader = open(args.from, args.window)?.reader;
    let first = feed::once(&mut reader, 1);
    if first.nodes.is_empty() {
        anyhow::bail!(first.hint.unwrap_or_else(|| "nothing to draw".into()));
    }
    eprintln!("counting calls for {:.1} s…", args.window.as_secs_f64());
    std::thread::sleep(args.window);
    let graph: Graph = feed::once(&mut reader, 2);
    if let Some(hint) = &graph.hint {
        eprintln!("{hint}");
    }
    crate::output::print(&export::render(&graph, args.format)?)?;
    Ok(())
}

/// How many recent traces a click lists.
const TRACES: usize = 5;

/// The last few traces of an edge (the callee's spans tagged with the verified caller) or of a
/// node, from the local mesh's Zipkin.
fn recent_traces(state_dir: Option<&std::path::Path>, q: &TapQuery) -> Result<serde_json::Value> {
    use crate::observe::trace::{Query, Zipkin};
    let Some(dir) = state_dir else {
        anyhow::bail!(
            "traces come from a local mesh's Zipkin (`deployer trace --url` reads a cluster's)"
        );
    };
    let state = crate::local::state::StateDir::new(dir);
    let layout = state.read_layout()?;
    let Some(t) = &layout.tracing else {
        anyhow::bail!(
            "no traces: the mesh was started without --tracing (`deployer up --tracing`)"
        );
    };
    let zipkin = Zipkin {
        url: t.url(),
        namespace: layout.namespace.clone(),
    };
    let (service, tag) = match (&q.source, &q.destination, &q.service) {
        (Some(s), Some(d), _) => (
            d.clone(),
            Some((meshtally_wire::trace::SOURCE.to_owned(), s.clone())),
        ),
        (_, _, Some(s)) => (s.clone(), None),
        _ => anyhow::bail!("name an edge (source and destination) or a service"),
    };
    let traces = zipkin.traces(&Query {
        service: Some(service),
        last: TRACES,
        tag,
        ..Query::default()
    })?;
    Ok(traces
        .iter()
        .map(|t| {
            serde_json::json!({
                "trace_id": t.trace_id,
                "status": t.status,
                "duration_ms": t.duration_ms,
                "url": zipkin.ui_trace(&t.trace_id),
            })
        })
        .collect())
}

/// The last few calls of an edge or a node, as `tap` prints them.
fn tap_lines(state_dir: Option<&std::path::Path>, q: &TapQuery) -> Result<Vec<String>> {
    let Some(dir) = state_dir else {
        anyhow::bail!("tap lines come from a local mesh's access logs (`deployer tap`)");
    };
    let mesh = LocalReader::open(&StateDir::new(dir))?;
    let filter = Filter {
        from: q.source.clone(),
        to: q.destination.clone(),
        status: None,
    };
    let mut taps = Vec::new();
    mesh.history(&mut |line| {
        if let Some(tap) = filter.tap(line) {
            let wanted = q
                .service
                .as_ref()
                .is_none_or(|s| *s == tap.source || *s == tap.destination);
            if wanted {
                taps.push(tap);
            }
        }
        Ok(())
    })?;
    // Each proxy's log is read in turn: put them back in time order, then keep the last.
    taps.sort_by(|a, b| a.time.cmp(&b.time));
    let skip = taps.len().saturating_sub(TAP_LINES);
    Ok(taps.iter().skip(skip).map(|t| t.line()).collect())
}
