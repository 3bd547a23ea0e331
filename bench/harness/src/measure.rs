//! The measurement loop. All proxies run side by side (idle ones cost nothing measurable) in
//! front of one shared upstream, and the variants are measured in alternation — round 1 runs
//! every variant once, round 2 again, … — starting each round one variant later, so a slow
//! moment of the shared machine lands on different variants instead of biasing one.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::admin;
use crate::certs::Pki;
use crate::configs::{self, Modules};
use crate::envoy::{pinned, start, Envoy};
use crate::load::{self, Mode, Outcome, Target};
use crate::procfs;
use crate::variants::Variant;

/// How long and how hard each run loads the proxy.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub rounds: u32,
    pub saturate_seconds: f64,
    pub rate_seconds: f64,
    pub warmup_seconds: f64,
    /// Connections of the closed-loop (saturation) runs.
    pub connections: u32,
    /// Requests per second of the fixed-rate (latency) runs, and their connections.
    pub rate: u32,
    pub rate_connections: u32,
}

/// One variant's figures from one round.
#[derive(Debug, Clone)]
pub struct Sample {
    pub saturate: Outcome,
    pub fixed: Outcome,
    /// Proxy CPU time (all threads) per completed request over the saturation run, µs.
    pub cpu_us_per_request: f64,
    /// The same over the fixed-rate run, from per-thread `schedstat` nanoseconds (the run is
    /// too short in clock ticks): every variant sees the same arrivals, so no batching effect.
    pub fixed_cpu_us_per_request: f64,
    /// The shared upstream's CPU per request over the same run: should not depend on the variant.
    pub upstream_cpu_us_per_request: f64,
    pub rss_kib: u64,
    /// Requests the proxy's HTTP connection manager completed over both runs.
    pub proxied: u64,
    /// meshtally's own `meshtally_requests_total` over both runs (meshtally variants only).
    pub counted: Option<u64>,
}

impl Sample {
    pub fn completed(&self) -> u64 {
        self.saturate.completed + self.fixed.completed
    }
}

/// Everything measured for one variant.
#[derive(Debug, Clone)]
pub struct Measured {
    pub variant: Variant,
    pub rss_after_warmup_kib: u64,
    pub samples: Vec<Sample>,
}

/// A proxy under test and the variant it runs.
struct Proxy {
    variant: Variant,
    envoy: Envoy,
    port: u16,
}

/// Tools and files the loop needs.
pub struct Setup<'a> {
    pub envoy_bin: &'a Path,
    pub oha: &'a Path,
    pub modules: Modules<'a>,
    pub dir: &'a Path,
    pub pki: &'a Pki,
}

const MESHTALLY_COUNTER: &str = "meshtally_requests_total";
/// The HTTP connection manager's own count (exact name: the per-listener copy has a prefix).
const PROXIED_COUNTER: &str = "http.proxy.downstream_rq_completed";

pub fn run(
    setup: &Setup<'_>,
    variants: &[Variant],
    settings: &Settings,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Measured>> {
    let upstream = start(
        setup.dir,
        "upstream",
        &configs::upstream(),
        &pinned(setup.envoy_bin, Some(procfs::LOAD_CPU)),
    )?;
    let upstream_port = upstream.listener_port("upstream")?;

    let mut proxies = Vec::new();
    let mut measured = Vec::new();
    for variant in variants {
        let config = configs::proxy(variant, &setup.modules, upstream_port, setup.pki);
        let launch = pinned(setup.envoy_bin, Some(procfs::PROXY_CPU));
        let envoy = start(setup.dir, &variant.id, &config, &launch)
            .with_context(|| format!("starting the {} proxy", variant.id))?;
        let port = envoy.listener_port("proxy")?;
        let proxy = Proxy {
            variant: variant.clone(),
            envoy,
            port,
        };
        check_tagging(setup, &proxy)?;
        progress(&format!("warm-up {}", variant.id));
        let warm = load::run(
            setup.oha,
            &target(setup, &proxy),
            Mode::Saturate {
                connections: settings.connections,
            },
            settings.warmup_seconds,
        )?;
        check_outcome(variant, &warm)?;
        measured.push(Measured {
            variant: variant.clone(),
            rss_after_warmup_kib: procfs::rss_kib(proxy.envoy.pid())?,
            samples: Vec::new(),
        });
        proxies.push(proxy);
    }

    let n = proxies.len();
    for round in 0..settings.rounds as usize {
        for k in 0..n {
            let i = (round + k) % n;
            let (Some(proxy), Some(slot)) = (proxies.get(i), measured.get_mut(i)) else {
                continue;
            };
            progress(&format!(
                "round {}/{} {}",
                round + 1,
                settings.rounds,
                proxy.variant.id
            ));
            let sample = measure_once(setup, proxy, upstream.pid(), settings)
                .with_context(|| format!("measuring {}", proxy.variant.id))?;
            slot.samples.push(sample);
        }
    }
    Ok(measured)
}

fn target<'a>(setup: &'a Setup<'_>, proxy: &Proxy) -> Target<'a> {
    Target {
        port: proxy.port,
        mtls: proxy.variant.mtls.then_some(setup.pki),
    }
}

/// One request through the proxy: the upstream echoes what it received, so this proves the
/// variant's filter is in the path and tags as it should before any figure is taken.
fn check_tagging(setup: &Setup<'_>, proxy: &Proxy) -> Result<()> {
    check_tags(setup, &proxy.variant, &target(setup, proxy))
}

/// [`check_tagging`] for any listener serving `variant`.
pub fn check_tags(setup: &Setup<'_>, variant: &Variant, target: &Target<'_>) -> Result<()> {
    let headers = load::probe(setup.oha, target)?;
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let want = variant.expect();
    let got = [
        ("x-echo-source", get("x-echo-source"), want.source),
        ("x-echo-hops", get("x-echo-hops"), want.hops),
        ("x-echo-verified", get("x-echo-verified"), want.verified),
        ("x-mesh-served-by", get("x-mesh-served-by"), want.served_by),
    ];
    for (name, got, want) in got {
        if got != want {
            bail!(
                "variant {}: {name} is {got:?}, expected {want:?} (response headers: {headers:?})",
                variant.id
            );
        }
    }
    Ok(())
}

fn check_outcome(variant: &Variant, outcome: &Outcome) -> Result<()> {
    if outcome.completed == 0 || outcome.ok != outcome.completed || outcome.errors > 0 {
        bail!(
            "variant {}: {} responses, {} with 200, {} errors: the proxy path is broken",
            variant.id,
            outcome.completed,
            outcome.ok,
            outcome.errors
        );
    }
    Ok(())
}

fn measure_once(
    setup: &Setup<'_>,
    proxy: &Proxy,
    upstream_pid: u32,
    settings: &Settings,
) -> Result<Sample> {
    let target = target(setup, proxy);
    let stats_before = proxy.envoy.stats()?;
    let cpu_before = procfs::cpu_ticks(proxy.envoy.pid())?;
    let upstream_before = procfs::cpu_ticks(upstream_pid)?;
    let saturate = load::run(
        setup.oha,
        &target,
        Mode::Saturate {
            connections: settings.connections,
        },
        settings.saturate_seconds,
    )?;
    let cpu_ticks = procfs::cpu_ticks(proxy.envoy.pid())?.saturating_sub(cpu_before);
    let upstream_ticks = procfs::cpu_ticks(upstream_pid)?.saturating_sub(upstream_before);
    let rss_kib = procfs::rss_kib(proxy.envoy.pid())?;
    check_outcome(&proxy.variant, &saturate)?;

    // A fixed-rate run spans only a few dozen clock ticks: read nanoseconds instead.
    let fixed_cpu_before = procfs::cpu_ns(proxy.envoy.pid())?;
    let fixed = load::run(
        setup.oha,
        &target,
        Mode::FixedRate {
            rps: settings.rate,
            connections: settings.rate_connections,
        },
        settings.rate_seconds,
    )?;
    let fixed_ns = procfs::cpu_ns(proxy.envoy.pid())?.saturating_sub(fixed_cpu_before);
    check_outcome(&proxy.variant, &fixed)?;

    let expected = saturate.completed + fixed.completed;
    let proxied_before = admin::value(&stats_before, PROXIED_COUNTER);
    let counted_before = admin::sum_ending_with(&stats_before, MESHTALLY_COUNTER);
    // Streams are counted when they end; give the last ones a moment to be logged.
    let deadline = Instant::now() + Duration::from_secs(2);
    let (proxied, counted) = loop {
        let after = proxy.envoy.stats()?;
        let proxied = admin::value(&after, PROXIED_COUNTER).saturating_sub(proxied_before);
        let counted = proxy.variant.is_meshtally().then(|| {
            admin::sum_ending_with(&after, MESHTALLY_COUNTER).saturating_sub(counted_before)
        });
        let settled = proxied >= expected && counted.is_none_or(|c| c >= expected);
        if settled || Instant::now() > deadline {
            break (proxied, counted);
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    let per_request = |ticks: u64, requests: u64| {
        if requests == 0 {
            f64::NAN
        } else {
            procfs::ticks_to_micros(ticks) / requests as f64
        }
    };
    Ok(Sample {
        cpu_us_per_request: per_request(cpu_ticks, saturate.completed),
        fixed_cpu_us_per_request: if fixed.completed == 0 {
            f64::NAN
        } else {
            fixed_ns as f64 / 1e3 / fixed.completed as f64
        },
        upstream_cpu_us_per_request: per_request(upstream_ticks, saturate.completed),
        saturate,
        fixed,
        rss_kib,
        proxied,
        counted,
    })
}
