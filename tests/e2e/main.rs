//! The end-to-end tests, one binary: the built filter in real Envoy, and the local mesh
//! (`deployer up`) with real sidecars, gateway and apps, all on loopback and all stopped on
//! drop. `make e2e` builds the module, `deployer` and demo-service first.
//! `cargo test -p meshtally-tests --test e2e AREA::` runs one area.

mod canary;
mod dashboard;
mod egress;
mod filter_envoy;
mod live;
mod local_mesh;
mod reliability;
mod security;
mod seeing;
mod tracing;
mod traffic;
