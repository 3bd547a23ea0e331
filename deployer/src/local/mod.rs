//! The mesh on one machine: real Envoy sidecars running the filter around local `demo-service`
//! processes, over mTLS with SPIFFE certificates, behind a gateway — what `deployer up` runs.

pub mod bootstrap;
pub mod certs;
pub mod envoy;
pub mod layout;
pub mod state;
pub mod stats;
pub mod supervisor;
pub mod up;
pub mod verify;
