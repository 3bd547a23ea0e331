//! The OCI images meshtally pushes: the filter ([`image`], Istio's compat Wasm layout) and the
//! demo-service workload ([`service_image`], built here without Docker); registry credentials
//! ([`auth`]) and the upload ([`registry`]). `deployer push` (in [`super::push`]) ties them
//! together.

pub mod auth;
pub mod image;
pub mod registry;
pub mod service_image;
