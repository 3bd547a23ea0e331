//! Loopback endpoints as Envoy names them: a socket address, and a static cluster of local
//! ports with the mesh's mTLS, which listeners, routes and the gateway all point at.

use serde_json::{json, Value};

use crate::tls::{common_tls, Tls};

/// A loopback socket address.
pub fn socket(port: u16) -> Value {
    json!({"socket_address": {"address": "127.0.0.1", "port_value": port}})
}

/// A cluster of loopback endpoints, with the mesh's mTLS when `tls` is given.
pub fn static_cluster(name: &str, ports: &[u16], tls: Option<&(Tls, String)>) -> Value {
    let endpoints: Vec<Value> = ports
        .iter()
        .map(|p| json!({"endpoint": {"address": socket(*p)}}))
        .collect();
    let mut c = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]},
    });
    if let Some((tls, server_uri)) = tls {
        // The peer must prove it is the service we meant to call, as Istio checks the server's
        // SPIFFE identity.
        let validation = json!({
            "trusted_ca": {"filename": tls.ca.display().to_string()},
            "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"exact": server_uri}}],
        });
        c["transport_socket"] = json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "common_tls_context": common_tls(tls, validation),
            },
        });
    }
    c
}
