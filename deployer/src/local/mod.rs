//! The mesh on one machine: real Envoy sidecars running the filter around local `demo-service`
//! processes, over mTLS with SPIFFE certificates, behind a gateway — what `deployer up` runs.

pub(crate) mod access_log;
pub mod bootstrap;
pub mod certs;
pub mod envoy;
pub(crate) mod follow;
pub mod layout;
pub(crate) mod live;
pub mod module;
pub(crate) mod observed;
pub(crate) mod process;
pub mod prometheus;
pub mod proxies;
pub mod routes;
pub(crate) mod signal;
pub mod state;
pub(crate) mod status;
pub(crate) mod supervisor;
pub(crate) mod up;
pub mod xds;
