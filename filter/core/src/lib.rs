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

pub mod app;
pub mod config;
#[cfg(any(test, feature = "fake-host"))]
pub mod fake;
pub mod host;
pub mod identity;
#[cfg(any(test, feature = "fake-host"))]
pub mod ledger;
pub mod metrics;
pub mod stream;
#[cfg(test)]
mod stream_tests;
pub mod tagging;

pub use config::{Config, ConfigError, Direction, NodeMetadata};
pub use host::{Host, LogLevel};
pub use metrics::{parse_metric_name, CodeClass, MetricCache, MetricKind, ParsedMetric, Security};
pub use stream::{Flow, Plugin, Stream};
pub use tagging::{Caller, HopDecision};

/// Header names the filter owns. Anything a client sends under these names is replaced. The
/// demo app, `verify` and the tests read them by these names.
pub mod headers {
    pub const SOURCE: &str = "x-mesh-source";
    pub const DESTINATION: &str = "x-mesh-destination";
    pub const PEER_VERIFIED: &str = "x-mesh-peer-verified";
    pub const HOPS: &str = "x-mesh-hops";
    pub const SERVED_BY: &str = "x-mesh-served-by";
    /// Set by the callee's sidecar on the response: the version that answered. The caller's
    /// sidecar reads it back for its `destination_version` label.
    pub const SERVED_VERSION: &str = "x-mesh-served-version";
}
