//! The `deployer` command: the mesh model (`meshtally-mesh`) rendered for a cluster and applied
//! there (`cluster`), or run on this machine with real Envoy sidecars (`local`, over
//! `meshtally-envoy`), and read wherever it runs (`observe`, `dashboard`). `cli` holds the clap
//! structs only; `commands` turns each into a plan, runs it and prints its report. The binary is
//! a thin `main` over [`Cli`].
//!
//! Everything is private to the crate except this API, which the end-to-end tests (`tests/`)
//! build on, so that they read exactly the plan and state dir `deployer up` writes:
//! - [`Cli`] and [`run`]: the command line and its dispatch, for `main` (and [`Cli`] for the
//!   documentation's generated reference).
//! - [`kubectl`]: kubectl run the way `apply`, `delete` and the cluster readers run it.
//! - [`local_mesh`]: a local mesh's plan (`state.json`: services, ports) and its state dir
//!   (pids, logs), read the way `down`, `verify` and `stats` read them.

mod cli;
mod cluster;
mod commands;
mod dashboard;
mod local;
mod meshfile;
mod observe;
mod output;
mod table;

pub use cli::Cli;
pub use commands::canary::Finished;
pub use commands::run;

/// Running kubectl: one binary, one context, stdin fed without deadlocking.
pub mod kubectl {
    pub use crate::cluster::kubectl::{Kubectl, KubectlError};
}

/// A local mesh's plan and state dir, read-only.
pub mod local_mesh {
    pub use crate::local::layout::{GatewayPorts, Layout, LocalService};
    pub use crate::local::state::{alive, StateDir};
}
