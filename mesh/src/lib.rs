//! The mesh as meshtally understands it, and the Kubernetes + Istio objects that run it: a
//! mesh file or flags become one checked [`model::Mesh`], and [`render`] turns it into typed
//! manifests. Pure: text and bytes in, values out; reading files, running processes and
//! talking to a cluster belong to the callers (`deployer`), so every renderer and every check
//! here is tested without a machine around it. The local mesh's Envoy config is the other
//! renderer of the same model (`meshtally-envoy`).

pub mod model;
pub mod parallel;
pub mod render;
