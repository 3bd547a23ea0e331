//! Pure logic of the meshtally filter, kept apart from the proxy-wasm host so it can be
//! unit-tested natively and, compiled to wasm32-wasip1 as the filter ships, in V8 under Node's WASI.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod config;
#[cfg(any(test, feature = "fake-host"))]
pub mod fake;
pub mod host;
pub mod json;
#[cfg(any(test, feature = "fake-host"))]
pub mod ledger;
pub mod metrics;
pub mod stream;
pub mod tagging;

pub use config::{Config, ConfigError, Direction, NodeMetadata};
pub use host::{Host, LogLevel};
pub use metrics::{parse_metric_name, CodeClass, MetricCache, MetricKind, ParsedMetric, Security};
pub use stream::{Flow, Plugin, Stream};
pub use tagging::{Caller, HopDecision};

/// The contracts the filter shares with every other side (see `meshtally-wire`).
pub use meshtally_wire::{app, headers, identity};
