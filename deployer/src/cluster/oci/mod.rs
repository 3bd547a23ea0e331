//! The filter as an OCI image: its layout ([`image`]), registry credentials ([`auth`]) and the
//! upload ([`registry`]). `deployer push` (in [`super::push`]) ties them together.

pub mod auth;
pub mod image;
pub mod registry;
