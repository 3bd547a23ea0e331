//! Header names the filter owns. Anything a client sends under these names is replaced. The
//! demo app, `verify`, the access log and the tests read them by these names.

pub const SOURCE: &str = "x-mesh-source";
pub const DESTINATION: &str = "x-mesh-destination";
pub const PEER_VERIFIED: &str = "x-mesh-peer-verified";
pub const HOPS: &str = "x-mesh-hops";
pub const SERVED_BY: &str = "x-mesh-served-by";
