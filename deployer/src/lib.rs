//! The meshtally deployer: a mesh model (`model`), renderers from it to Kubernetes and Istio
//! manifests (`render`), where the result goes (`output`), the mesh on this machine (`local`)
//! or in a cluster (`cluster`), what a running mesh shows (`observe`), and the command line over
//! them (`cli`, `commands`). The binary (`deployer`) is a thin `main` over [`Cli`].
//!
//! Everything is private to the crate except this API, which the end-to-end tests (`tests/`)
//! and the benchmark harness (`bench/harness`) build on, so that they run exactly the sidecars
//! and read exactly the plan `deployer up` does, and the manifest tests read renders back into
//! the types `render` writes:
//! - [`Cli`]: the command line, for `main`.
//! - [`sidecar`]: one Envoy sidecar's bootstrap (listeners, mTLS, the filter) from a
//!   [`sidecar::Proxy`], and the mesh CA ([`sidecar::Ca`]) that issues SPIFFE certificates.
//! - [`envoy`]: `envoy --mode validate`, and a running Envoy's admin endpoint.
//! - [`locate`]: where Envoy, the filter module and demo-service are found.
//! - [`kubectl`]: kubectl run the way `apply`, `delete` and the cluster readers run it.
//! - [`local_mesh`]: a local mesh's plan (`state.json`: services, ports) and its state dir
//!   (pids, logs), read the way `down`, `verify` and `stats` read them.
//! - [`manifests`]: the typed Istio kinds and the names `render` writes.

mod cli;
mod cluster;
mod commands;
mod dashboard;
mod http;
mod local;
pub mod locate;
mod model;
mod observe;
mod output;
mod parallel;
mod render;
mod shell;
mod table;

pub use cli::Cli;

/// One sidecar's Envoy bootstrap and the mesh PKI, as `up` writes them.
pub mod sidecar {
    pub use crate::local::bootstrap::{
        render, Filter, Inbound, Ingress, MtlsMode, Outbound, Proxy, Tls,
    };
    pub use crate::local::certs::Ca;
    pub use crate::local::routes::Upstream as Peer;
}

/// Envoy itself: whether a config is valid, and its admin endpoint (with the versions of the
/// dynamic config it runs).
pub mod envoy {
    pub use crate::local::envoy::{validate, Admin, ConfigVersions};
    /// A bootstrap whose routes, clusters and filter come from xDS files, with the files'
    /// resources put back in place (what `envoy --mode validate` can check as a whole).
    pub use crate::local::xds::inline;
}

/// Running kubectl: one binary, one context, stdin fed without deadlocking.
pub mod kubectl {
    pub use crate::cluster::kubectl::{Kubectl, KubectlError};
}

/// A local mesh's plan and state dir, read-only.
pub mod local_mesh {
    pub use crate::local::layout::{GatewayPorts, Layout, LocalService};
    pub use crate::local::state::{alive, tail, StateDir};
}

/// The typed Istio kinds `render` writes, and the names it gives.
pub mod manifests {
    pub use crate::render::istio;
    pub use crate::render::security::ingress_principal;
    pub use crate::render::FILTER_CONFIGMAP_FILE;
}
