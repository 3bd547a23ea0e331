//! The deployer's integration tests, one binary: the `deployer` command run as a user runs it,
//! against stand-ins (a recording kubectl), a real OCI registry, the loopback Kubernetes control
//! plane, Node's schema validators and the golden files. The support modules come first; one
//! module per area follows. `cargo test -p meshtally-deployer --test it AREA::` runs one area.

mod common;
mod controlplane;
mod registry;
mod standin;

mod bad_inputs;
mod cluster_apply;
mod cluster_canary;
mod cluster_delete;
mod cluster_gateway_api;
mod cluster_live;
mod cluster_read;
mod cluster_script;
mod crosscheck;
mod docs;
mod first_run;
mod golden;
mod house;
mod manifests;
mod push_registry;
mod push_service_image;
mod schema;
