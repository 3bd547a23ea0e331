//! Command-line options. `--quick` trades precision for time so CI can smoke-run the harness.

use std::path::PathBuf;

use clap::Parser;

use crate::measure::Settings;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "meshtally-bench",
    about = "Measures Envoy with no filter, an empty Wasm filter, meshtally, Lua and native header rules under the same load on loopback."
)]
pub struct Options {
    /// Write BENCHMARKS.md content to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// One round of 1 s runs: a smoke run for CI, not figures to quote.
    #[arg(long)]
    pub quick: bool,
    /// Comma-separated variant ids (default: all): none, empty, outbound, inbound, lua, native,
    /// none-mtls, empty-mtls, inbound-mtls.
    #[arg(long)]
    pub variants: Option<String>,
    /// NAME[:inbound]=PATH: also measure meshtally (outbound unless `:inbound`) loaded from
    /// another build of the module, in the same alternation (an A/B test of a filter change).
    /// Repeatable.
    #[arg(long = "candidate", value_name = "NAME[:inbound]=PATH")]
    pub candidates: Vec<String>,
    /// Rounds of alternation (default 5, quick 1).
    #[arg(long)]
    pub rounds: Option<u32>,
    /// Seconds per saturation run (default 2, quick 1).
    #[arg(long)]
    pub saturate_seconds: Option<f64>,
    /// Seconds per fixed-rate latency run (default 2, quick 1).
    #[arg(long)]
    pub rate_seconds: Option<f64>,
    /// Requests per second of the latency runs.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Connections of the saturation runs.
    #[arg(long, default_value_t = 16)]
    pub connections: u32,
    /// Only the callgrind instruction counts (and the host-call ledger): no timed runs.
    #[arg(long)]
    pub callgrind_only: bool,
    /// Leave the probe filter's price list out of the callgrind run (fewer Wasm VMs: valgrind
    /// fits only about six).
    #[arg(long)]
    pub no_probes: bool,
    /// Rounds of callgrind instruction counts (default 3, quick 0 = none).
    #[arg(long)]
    pub callgrind_rounds: Option<u32>,
    /// Requests per variant and round under callgrind.
    #[arg(long, default_value_t = 200)]
    pub callgrind_requests: u32,
    /// The meshtally module as `cargo build` left it, before wasm-opt (for the size goal; else
    /// MESHTALLY_PLAIN_WASM).
    #[arg(long)]
    pub meshtally_plain_wasm: Option<PathBuf>,
    /// The empty module before wasm-opt (else MESHTALLY_EMPTY_PLAIN_WASM).
    #[arg(long)]
    pub empty_plain_wasm: Option<PathBuf>,
    /// `bench/probe-filter`'s module, for the callgrind price of each host call (else
    /// MESHTALLY_PROBE_WASM; without it there is no price list).
    #[arg(long)]
    pub probe_wasm: Option<PathBuf>,
    /// Envoy binary (else ENVOY_BIN, PATH, .venv/bin/envoy-bin).
    #[arg(long)]
    pub envoy: Option<PathBuf>,
    /// oha binary (else OHA_BIN, .tools/bin/oha, PATH).
    #[arg(long)]
    pub oha: Option<PathBuf>,
    /// The meshtally module (else MESHTALLY_WASM, else
    /// target/wasm32-wasip1/release/meshtally_filter.wasm).
    #[arg(long)]
    pub meshtally_wasm: Option<PathBuf>,
    /// The empty module (else MESHTALLY_EMPTY_WASM, else
    /// target/wasm32-wasip1/release/meshtally_empty_filter.wasm).
    #[arg(long)]
    pub empty_wasm: Option<PathBuf>,
}

impl Options {
    pub fn callgrind(&self) -> crate::callgrind::Settings {
        crate::callgrind::Settings {
            rounds: self
                .callgrind_rounds
                .unwrap_or(if self.quick { 0 } else { 3 })
                .min(20),
            requests: self.callgrind_requests.clamp(10, 100_000),
            warmup: 200,
        }
    }

    pub fn settings(&self) -> Settings {
        let (rounds, seconds, warmup) = if self.quick {
            (1, 1.0, 0.5)
        } else {
            (5, 2.0, 1.0)
        };
        Settings {
            rounds: self.rounds.unwrap_or(rounds).clamp(1, 50),
            saturate_seconds: self.saturate_seconds.unwrap_or(seconds).clamp(0.2, 60.0),
            rate_seconds: self.rate_seconds.unwrap_or(seconds).clamp(0.2, 60.0),
            warmup_seconds: warmup,
            connections: self.connections.clamp(1, 1000),
            rate: self.rate.clamp(1, 1_000_000),
            rate_connections: 8,
        }
    }
}
