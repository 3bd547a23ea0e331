//! demo-service: the workload every service in the demo mesh runs. It echoes what it
//! received, calls its peers on request, and keeps its own counts, so the mesh's
//! tagging and metrics can be checked from the application's side of the sidecar.

mod config;
mod headers;
mod peers;
mod routes;
mod stats;

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config::Config;
use crate::peers::PeerClient;
use crate::routes::App;
use crate::stats::Stats;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` puts the whole context chain on one line, which is what ends up
            // in `kubectl logs` / CrashLoopBackOff reasons.
            eprintln!("demo-service: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    // Configuration first, before any threads exist, so a bad env fails instantly.
    let config = Config::from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> Result<()> {
    // Handlers go in before the "listening" line: a supervisor (or test) that sends
    // SIGTERM the moment it sees that line must get a graceful stop, not a kill.
    let sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    let listener = TcpListener::bind((config.bind, config.port))
        .await
        .with_context(|| format!("binding {}:{}", config.bind, config.port))?;
    let addr = listener.local_addr().context("reading the bound address")?;

    let app = Arc::new(App {
        peers: PeerClient::new(&config)?,
        port: addr.port(),
        hostname: hostname(),
        stats: Stats::default(),
        // Seeded from the clock: each process draws its own sequence.
        draws: std::sync::atomic::AtomicU64::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        ),
        config,
    });
    let service = app.config.service.clone();

    // The first stdout line is the readiness contract: with PORT=0 it is the only way
    // to learn the port, and it is printed only once the socket accepts connections.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {addr}").context("writing the listening line")?;
    stdout.flush().context("flushing stdout")?;
    drop(stdout);

    axum::serve(listener, routes::router(app))
        .with_graceful_shutdown(shutdown_signal(service.clone(), sigterm, sigint))
        .await
        .context("serving HTTP")?;
    eprintln!("demo-service: {service} stopped");
    Ok(())
}

/// Resolves on the first SIGTERM or SIGINT; axum then stops accepting and lets
/// in-flight requests finish (each is bounded by PEER_TIMEOUT_MS at worst).
async fn shutdown_signal(service: String, mut sigterm: Signal, mut sigint: Signal) {
    let name = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    };
    eprintln!("demo-service: {service} got {name}, finishing in-flight requests");
}

/// Kubernetes sets HOSTNAME to the pod name; elsewhere fall back to the kernel's.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}
