//! `deployer dashboard` and `deployer graph`: the mesh as a live map, Kiali's graph without a
//! cluster. [`graph`] decides what is drawn (nodes, edges, colours, locks, hints) from `top`'s
//! per-edge figures; [`feed`] reads the mesh once a second; [`server`] serves the page (built
//! into the binary from `assets/`) and `/api/graph` on 127.0.0.1; [`export`] prints the same
//! graph as dot, mermaid or JSON.

pub(crate) mod export;
pub(crate) mod feed;
pub(crate) mod graph;
pub(crate) mod reader;
pub(crate) mod server;
