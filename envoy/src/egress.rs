//! A local sidecar's calls that leave the mesh, as istiod builds them from a ServiceEntry,
//! DestinationRule and VirtualService: per declared host a virtual host whose route carries the
//! entry's timeout and retries, to a cluster named as istiod names it
//! (`outbound|<port>||<host>`) whose one endpoint is the loopback address `up`'s outside server
//! listens on (where a cluster would resolve the name by DNS), with TLS origination's
//! transport socket (the declared SNI, the server checked against the CA the mesh trusts);
//! and the catch-all virtual host of the outbound policy: istiod's `block_all` (a 502, the
//! BlackHoleCluster) or `allow_any`, to a `PassthroughCluster` that is Envoy's dynamic forward
//! proxy here, since a local app names its destination to the sidecar as to an HTTP proxy
//! rather than through an original destination address.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::cluster::socket;
use crate::routes;
use meshtally_mesh::model::traffic::{Millis, Traffic};
use meshtally_mesh::model::OutboundPolicy;

/// istiod's names for the catch-all virtual hosts and the passthrough cluster.
pub use meshtally_wire::metrics::{
    ALLOW_ANY_ROUTE as ALLOW_ANY, BLOCK_ALL_ROUTE as BLOCK_ALL, PASSTHROUGH as PASSTHROUGH_CLUSTER,
};
const DFP_FILTER: &str = "envoy.filters.http.dynamic_forward_proxy";
/// The DNS cache the passthrough filter and cluster share (by name).
const DNS_CACHE: &str = "passthrough";

/// One declared host as a sidecar that may call it sees it.
#[derive(Debug, Clone)]
pub struct ExternalUpstream {
    pub name: String,
    pub host: String,
    /// The port the app calls (80 for TLS origination).
    pub app_port: u16,
    /// The loopback port the declared host reaches.
    pub server_port: u16,
    /// TLS to the server, when the sidecar originates it.
    pub origination: Option<Origination>,
    pub timeout: Millis,
}

/// `tls: SIMPLE`: the SNI sent and the roots the server's certificate must chain to.
#[derive(Debug, Clone)]
pub struct Origination {
    pub sni: String,
    pub ca: PathBuf,
}

/// istiod's outbound cluster name for a ServiceEntry host and port.
pub fn cluster_name(host: &str, port: u16) -> String {
    format!("outbound|{port}||{host}")
}

/// The host's virtual host: the entry's timeout and the mesh's default retries, as its
/// VirtualService says.
pub fn virtual_host(e: &ExternalUpstream) -> Value {
    let rules = Traffic {
        timeout: e.timeout,
        ..Traffic::default()
    };
    let target = json!({"cluster": cluster_name(&e.host, e.app_port)});
    let mut route = routes::route(&rules, json!({"prefix": "/"}), target);
    // The VirtualService's route name, as istiod names it: the access log's `route`, which
    // tells `tap` and `edges` where the call went.
    route["name"] = json!(e.name);
    let domains = [e.host.clone(), format!("{}:{}", e.host, e.app_port)];
    json!({"name": format!("{}:{}", e.host, e.app_port), "domains": domains, "routes": [route]})
}

/// The host's cluster: the outside server on loopback, with TLS origination when asked.
pub fn cluster(e: &ExternalUpstream) -> Value {
    let name = cluster_name(&e.host, e.app_port);
    let mut c = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(e.server_port)}}]}]},
    });
    if let Some(o) = &e.origination {
        // As istiod writes `tls: SIMPLE` with caCertificates: the SNI, and the server's
        // certificate checked against the roots and for the host's name (its auto-SAN).
        c["transport_socket"] = json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": o.sni,
                "common_tls_context": {
                    "validation_context": {
                        "trusted_ca": {"filename": o.ca.display().to_string()},
                        "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": o.sni}}],
                    },
                },
            },
        });
    }
    c
}

/// The virtual host of every host the sidecar does not know, last in its route table.
pub fn catch_all(policy: OutboundPolicy) -> Value {
    match policy {
        OutboundPolicy::RegistryOnly => json!({
            "name": BLOCK_ALL,
            "domains": ["*"],
            "routes": [{"name": BLOCK_ALL, "match": {"prefix": "/"}, "direct_response": {"status": 502}}],
        }),
        OutboundPolicy::AllowAny => json!({
            "name": ALLOW_ANY,
            "domains": ["*"],
            "routes": [{"name": ALLOW_ANY, "match": {"prefix": "/"}, "route": {"cluster": PASSTHROUGH_CLUSTER, "timeout": "0s"}}],
        }),
    }
}

fn dns_cache() -> Value {
    json!({"name": DNS_CACHE, "dns_lookup_family": "V4_ONLY"})
}

/// The filter that resolves a passed-through request's host (a no-op on every other route).
pub fn passthrough_filter() -> Value {
    json!({
        "name": DFP_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_forward_proxy.v3.FilterConfig",
            "dns_cache_config": dns_cache(),
        },
    })
}

/// The cluster a passed-through request goes to: wherever its host names.
pub fn passthrough_cluster() -> Value {
    json!({
        "name": PASSTHROUGH_CLUSTER,
        "connect_timeout": "1s",
        "lb_policy": "CLUSTER_PROVIDED",
        "cluster_type": {
            "name": "envoy.clusters.dynamic_forward_proxy",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.clusters.dynamic_forward_proxy.v3.ClusterConfig",
                "dns_cache_config": dns_cache(),
            },
        },
    })
}

/// The request header the outside TLS server adds: the SNI its client sent, so the server's
/// `/info` shows which name the sidecar asked for.
pub const SNI_HEADER: &str = "x-outside-sni";
/// And the TLS version the connection uses.
pub const TLS_VERSION_HEADER: &str = "x-outside-tls-version";

/// The TLS front of an outside server (not part of the mesh: no filter, no mesh identity): a
/// static Envoy that accepts TLS for `host` only (a client that sends another SNI finds no
/// filter chain and is closed), with `host`'s certificate from the outside CA, and passes the
/// requests to the plain server on `app_port`, telling it the SNI and TLS version it saw.
pub fn outside_tls_server(
    host: &str,
    port: u16,
    admin_port: u16,
    app_port: u16,
    tls: &crate::tls::Tls,
) -> Value {
    let hcm = json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "outside",
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            "route_config": {"name": "outside", "virtual_hosts": [{
                "name": "outside",
                "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "server", "timeout": "0s"}}],
                "request_headers_to_add": [
                    {"header": {"key": SNI_HEADER, "value": "%REQUESTED_SERVER_NAME%"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
                    {"header": {"key": TLS_VERSION_HEADER, "value": "%DOWNSTREAM_TLS_VERSION%"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
                ],
            }]},
        },
    });
    json!({
        "node": {"id": "meshtally-outside", "cluster": "outside"},
        "admin": {"address": socket(admin_port)},
        "static_resources": {
            "listeners": [{
                "name": "outside-tls",
                "address": socket(port),
                "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
                "filter_chains": [{
                    "filter_chain_match": {"server_names": [host]},
                    "filters": [hcm],
                    "transport_socket": {
                        "name": "envoy.transport_sockets.tls",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                            "common_tls_context": {"tls_certificates": [{
                                "certificate_chain": {"filename": tls.cert.display().to_string()},
                                "private_key": {"filename": tls.key.display().to_string()},
                            }]},
                        },
                    },
                }],
            }],
            "clusters": [crate::cluster::static_cluster("server", &[app_port], None)],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_origination_cluster_and_route() {
        let e = ExternalUpstream {
            name: "payments".into(),
            host: "api.payments.example".into(),
            app_port: 80,
            server_port: 19443,
            origination: Some(Origination {
                sni: "api.payments.example".into(),
                ca: "/ca.pem".into(),
            }),
            timeout: Millis(3000),
        };
        let c = cluster(&e);
        assert_eq!(c["name"], "outbound|80||api.payments.example");
        let tls = &c["transport_socket"]["typed_config"];
        assert_eq!(tls["sni"], "api.payments.example");
        let vh = virtual_host(&e);
        assert_eq!(vh["routes"][0]["route"]["timeout"], "3s");
        assert_eq!(
            vh["routes"][0]["route"]["cluster"],
            "outbound|80||api.payments.example"
        );
        assert_eq!(
            catch_all(OutboundPolicy::RegistryOnly)["routes"][0]["direct_response"]["status"],
            502
        );
    }
}
