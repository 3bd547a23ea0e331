//! demo-service's integration tests, one binary: the built binary started as Kubernetes and
//! `deployer up` start it, on loopback, and read over HTTP.

mod common;

mod lifecycle;
mod mesh;
mod versions;
