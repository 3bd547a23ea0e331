//! The mesh on one machine: real Envoy sidecars running the filter around local `demo-service`
//! processes, over mTLS with SPIFFE certificates, behind a gateway — what `deployer up` runs.

pub(crate) mod follow;
pub(crate) mod inotify;
pub mod layout;
pub(crate) mod live;
pub(crate) mod observed;
pub(crate) mod process;
pub mod prometheus;
pub mod proxies;
pub(crate) mod signal;
pub mod state;
pub(crate) mod status;
pub(crate) mod supervisor;
pub mod tracing;
pub(crate) mod up;
