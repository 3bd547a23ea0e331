//! The contracts every side of meshtally shares, written once: the filter writes them, the
//! demo app and the deployer read them, and both back-ends (Kubernetes and the local mesh) are
//! built from them. No logic beyond naming and parsing: each module is a contract.
//! - [`headers`]: the `x-mesh-*` header names the filter owns.
//! - [`metrics`]: metric names and the tags encoded in a stat name.
//! - [`identity`]: SPIFFE ids and AuthorizationPolicy principals.
//! - [`ingress`]: the ingress gateway's identity.
//! - [`app`]: the demo app's environment and its `PEERS` format.
//! - [`access`]: the JSON access-log format every proxy writes and the readers parse.
//! - [`module`]: where the filter module is built and installed.
//! - [`names`]: the DNS-1123 label rule.
//! - [`trace`]: the span tags that carry the filter's facts into traces.
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

pub mod access;
pub mod app;
pub mod headers;
pub mod identity;
pub mod ingress;
pub mod metrics;
pub mod module;
pub mod names;
pub mod trace;
