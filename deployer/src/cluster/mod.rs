//! Delivery to a real cluster. Kubernetes is reached only through `kubectl` (so kind, k3d or
//! GKE work with the contexts and credentials the user already has), registries through the
//! OCI distribution API. `apply`/`delete` change the cluster, `push` a registry (the filter, or
//! the demo-service image built here); `shift` patches a service's weights in place (VirtualServices, or with --api gateway-api
//! HTTPRoutes); `verify`
//! and `stats` read a cluster mesh through a port-forward and the sidecars.

pub mod apply;
pub mod checks;
pub mod delete;
pub mod kubectl;
pub(crate) mod logs;
pub mod oci;
pub mod portforward;
pub mod prune;
pub mod push;
pub mod service_push;
pub mod shift;
pub mod shift_routes;
pub mod sidecars;
