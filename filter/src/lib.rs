//! proxy-wasm entry point: Envoy's callbacks (`abi.rs`, the ABI with no SDK) reach the context
//! table (`contexts.rs`), where a root context parses its plugin config once and owns the metric
//! id cache, and every HTTP stream gets a small context. All decisions live in `meshtally-core`
//! (written against its `Host` trait); this crate is Envoy's side of that trait.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod abi;
mod contexts;
mod host;
