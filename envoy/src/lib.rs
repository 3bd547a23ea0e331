//! Envoy as a library: what meshtally's local mesh asks of Envoy, apart from the processes that
//! run it. The sidecar and gateway config is the local renderer of the mesh model (the Istio
//! objects are the other, in `meshtally-mesh`), delivered as a bootstrap plus xDS files; the
//! mesh PKI issues the SPIFFE certificates the listeners load; the real Envoy validates every
//! config; the admin client reads a running proxy. The deployer, the tests and the bench all
//! build on this one copy.
//! - [`bootstrap`], [`routes`], [`cluster`], [`tls`]: one proxy's config, static or as xDS
//!   resources the bootstrap references.
//! - [`egress`]: the routes and clusters of calls that leave the mesh, and the outbound policy.
//! - [`tracing`]: the Zipkin tracer of each connection manager, as istiod writes it.
//! - [`xds`]: that config cut into the files Envoy watches, and put back for validation.
//! - [`module`]: the content-addressed filter modules Envoy loads.
//! - [`pki`]: the mesh CA and workload certificates.
//! - [`validate`], [`admin`]: the real Envoy, checking and running.
//! - [`logs`]: the end of a log, for failure messages.
//! - [`locate`]: where Envoy, the module and demo-service are found; [`shell`] quotes the
//!   commands printed as hints; [`http`] is the one loopback HTTP client.

pub mod admin;
pub mod bootstrap;
pub mod cluster;
pub mod egress;
pub mod http;
pub mod locate;
pub mod logs;
pub mod module;
pub mod pki;
pub mod routes;
pub mod shell;
pub mod tls;
pub mod tracing;
pub mod validate;
pub mod xds;
