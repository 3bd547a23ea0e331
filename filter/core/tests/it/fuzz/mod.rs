//! Property-based fuzzing of everything in meshtally-core that takes untrusted bytes: the plugin
//! config, the `x-mesh-*` header rules and the metric names. proptest rather than cargo-fuzz so
//! it runs on stable Rust inside `cargo test`.
//!
//! `cargo test -p meshtally-core --test it fuzz::` is the bounded pass (proptest's 256 cases per
//! property, half that for the two costly metric-cache ones; a few seconds). A longer pass only
//! raises the count, which proptest reads from the environment:
//! `PROPTEST_CASES=100000 cargo test --release -p meshtally-core --test it fuzz::` (about 8 minutes
//! of CPU).
//! A failing case is shrunk and saved under `tests/proptest-regressions/fuzz/`, and replayed first
//! on every later run; the ones worth keeping become plain tests in `tests/it/regressions.rs`.

mod config;
mod headers;
mod json;
mod metrics;
mod strategies;
mod tagging;
