//! The meshtally deployer: a mesh model ([`model`]), renderers from it to Kubernetes and Istio
//! manifests ([`render`]), where the result goes ([`output`]), the mesh on this machine
//! ([`local`]) or in a cluster ([`cluster`]), and the command line over them ([`cli`],
//! [`commands`]). The binary (`deployer`) is a thin `main` over [`cli::Cli`].

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod http;
pub mod local;
pub mod locate;
pub mod model;
pub mod output;
pub mod render;
pub mod table;
